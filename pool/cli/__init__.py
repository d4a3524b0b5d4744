"""The `farmpool` command (console entry point `pool.cli:main`; `python -m pool` too).

It parses arguments, calls the layer below and prints: pool/cli/app.py is the parser and the
entry point, pool/cli/errors.py the one error handler, pool/cli/output.py the table printer,
the other modules the commands by subject (node and work, serve, database and ledger, sites
and tenants, money, terms and reports, simulate, offline checks).
"""

from pool.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
