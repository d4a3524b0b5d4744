"""farmpool: a Stratum v1 mining pool for a hosting farm (share path, ledger, money, API)."""
