"""The Stratum v1 server: listeners, admission, bans, protocol, sessions, jobs, judge, blocks."""
