"""The kinds of events, and what each means (the config checks webhook filters against them)."""

KINDS = {
    "worker_down": "a worker sent no share for longer than its tenant's limit",
    "worker_up": "a worker that was down sent a share again",
    "hashrate_drop": "a tenant's hashrate fell by more than the set fraction",
    "hashrate_recovered": "a tenant's hashrate is back",
    "block_found": "a worker found a block (and the node's answer)",
    "block_orphaned": "a block the pool found left the main chain: its credits are void",
    "payout_sent": "a payout transaction paid the tenant",
    "payout_failed": "a payout run failed",
    "node_unreachable": "the stratum node cannot reach its Bitcoin node",
    "node_reachable": "the Bitcoin node answers again",
    "ledger_spooling": "the share ledger's database is down: shares go to the local spool",
    "ledger_recovered": "the share ledger's database answers again",
}
