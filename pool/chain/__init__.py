"""The node side: RPC, block templates, coinbase, jobs, the work source, addresses, CPU mining."""
