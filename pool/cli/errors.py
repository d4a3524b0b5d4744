"""The CLI's one error handler: which failures it knows, and their message and exit code.

Exit codes: 2 bad input (an argument, the config, a file the admin gave), 1 a failure of the
node, the wallet, the database or the environment, 0 done. `known` maps an exception to a
`CliError` (message and code); `farmpool` prints it as `farmpool: MESSAGE` on stderr and exits
with the code (pool/cli/app.py). `blame_database` words the driver's own errors (unreachable,
refused, locked, bad URL) as the database's, for the commands that open one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pool.errors import BadInput, OperationFailed

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

#: How the fields of pool.ledger.admin's errors are spelled on the command line.
ADMIN_FIELDS = {
    "name": "NAME",
    "timezone": "--timezone",
    "payout_address": "--payout-address",
    "changes": "--payout-address/--active/--inactive/--fee-percent/--payout-threshold-sat/--solo",
    "fee_ppm": "--fee-percent",
    "payout_threshold_sat": "--payout-threshold-sat",
}


class CliError(Exception):
    """A failure to report on one line and exit with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def known(exc: BaseException) -> CliError | None:
    """The message and exit code of a failure the CLI knows (pool/errors.py: bad input exits
    2, a failed operation 1); None for any other (a bug: its traceback is shown)."""
    if isinstance(exc, CliError):
        return exc
    # Imported here: `farmpool --help` and share-check load no database layer.
    from pool.ledger.admin import AdminError

    if isinstance(exc, AdminError):
        option = ADMIN_FIELDS.get(exc.where, exc.where)
        return CliError(f"{option}: {exc.message}", EXIT_BAD_INPUT)
    if isinstance(exc, BadInput):
        return CliError(str(exc), EXIT_BAD_INPUT)
    if isinstance(exc, OperationFailed):
        return CliError(str(exc), EXIT_FAILED)
    return None


@contextmanager
def blame_database(url: str, *kinds: type[BaseException]) -> Iterator[None]:
    """Failures of `kinds` (default: the driver's and the OS's) that `known` does not map are
    the database's: `database URL: Type: message`, exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from pool.ledger.db import redacted

    try:
        yield
    except Exception as exc:
        if known(exc) is not None or not isinstance(exc, kinds or (SQLAlchemyError, OSError)):
            raise
        raise CliError(f"database {redacted(url)}: {type(exc).__name__}: {exc}") from None
