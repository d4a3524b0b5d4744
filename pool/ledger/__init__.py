"""The share ledger: models, database engines, the durable share writer, spool, compaction."""
