"""Alerts: events about workers, tenants, blocks, payouts, the node and the ledger, kept in
the database and delivered to webhooks, never on the share path's time."""
