"""The Stratum v1 server: listeners, protocol, sessions, jobs, vardiff, bans."""
