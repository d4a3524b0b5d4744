"""Money: blocks to credits to balances to payouts, and reports."""
