"""pool/errors.py: each layer's errors say what kind they are, and the CLI's exit code follows
(2: input someone must correct; 1: an operation that failed; a traceback for anything else)."""

from __future__ import annotations

import importlib

import pytest

from pool.cli.errors import EXIT_BAD_INPUT, EXIT_FAILED, known
from pool.errors import FieldError

#: Every error class the CLI reports, with its exit code (as before pool/errors.py).
CLASSIFIED = [
    ("pool.config", "ConfigError", EXIT_BAD_INPUT),
    ("pool.sharecheck", "InputError", EXIT_BAD_INPUT),
    ("pool.ledger.leases", "LeaseError", EXIT_BAD_INPUT),
    ("pool.api.tokens", "TokenError", EXIT_BAD_INPUT),
    ("pool.accounting.terms", "TermsError", EXIT_BAD_INPUT),
    ("pool.accounting.energy", "TariffError", EXIT_BAD_INPUT),
    ("pool.accounting.report", "ReportError", EXIT_BAD_INPUT),
    ("pool.accounting.meters", "MeterFileError", EXIT_BAD_INPUT),
    ("pool.ledger.admin", "AdminError", EXIT_BAD_INPUT),
    ("pool.chain.rpc", "NodeError", EXIT_FAILED),
    ("pool.chain.rpc", "NodeUnreachable", EXIT_FAILED),
    ("pool.chain.mining", "BlockRejected", EXIT_FAILED),
    ("pool.accounting.wallet", "WalletError", EXIT_FAILED),
    ("pool.accounting.payout", "PayoutError", EXIT_FAILED),
    ("pool.accounting.runlock", "LockBusy", EXIT_FAILED),
    ("pool.accounting.schemes", "SchemeError", EXIT_FAILED),
    ("pool.ledger.db", "DatabaseError", EXIT_FAILED),
    ("pool.ledger.compaction", "CompactionError", EXIT_FAILED),
]


@pytest.mark.parametrize(("module", "name", "code"), CLASSIFIED)
def test_each_error_gets_its_exit_code(module: str, name: str, code: int) -> None:
    cls = getattr(importlib.import_module(module), name)
    if issubclass(cls, FieldError):
        error = cls("name", "what went wrong")
    else:  # made without its own constructor's arguments: only its class matters here
        error = cls.__new__(cls)
        Exception.__init__(error, "what went wrong")
    reported = known(error)
    assert reported is not None and reported.code == code


@pytest.mark.parametrize("error", [ValueError("x"), RuntimeError("x"), KeyError("x")])
def test_an_unclassified_error_is_a_bug_with_its_traceback(error: Exception) -> None:
    assert known(error) is None


def test_a_field_error_names_the_place() -> None:
    from pool.accounting.terms import TermsError
    from pool.config import ConfigError
    from pool.ledger.admin import AdminError

    config = ConfigError("node.url", "bad")
    assert (str(config), config.path, config.where, config.message) == (
        "config: node.url: bad",
        "node.url",
        "node.url",
        "bad",
    )
    assert str(TermsError("--price", "not a number")) == "--price: not a number"
    admin = known(AdminError("payout_address", "not an address"))
    assert admin is not None and admin.code == EXIT_BAD_INPUT
    assert str(admin) == "--payout-address: not an address"
    assert isinstance(config, ValueError) and isinstance(config, FieldError)
