"""pool/accounting/scheme_registry.py: the payout schemes and what each one does."""

from __future__ import annotations

import pytest

from pool import config
from pool.accounting import scheme_registry
from pool.accounting.scheme_registry import NAMES, PER_ROUND, SCHEMES, Scheme, UnknownScheme, scheme


def test_names_in_the_configs_order() -> None:
    assert NAMES == ("pplns", "prop", "solo", "pps", "fpps")
    assert config.SCHEMES == NAMES
    assert all(SCHEMES[name].name == name for name in NAMES)


@pytest.mark.parametrize(
    ("name", "per_share", "per_round", "window_is_shares", "solo", "tx_fees"),
    [
        ("pplns", False, True, True, False, True),
        ("prop", False, True, False, False, True),
        ("solo", False, False, False, True, True),
        ("pps", True, False, False, False, False),
        ("fpps", True, False, False, False, True),
    ],
)
def test_properties(
    name: str, per_share: bool, per_round: bool, window_is_shares: bool, solo: bool, tx_fees: bool
) -> None:
    s = scheme(name)
    assert (s.per_share, s.per_round, s.round_window_is_shares, s.solo, s.includes_tx_fees) == (
        per_share,
        per_round,
        window_is_shares,
        solo,
        tx_fees,
    )


def test_the_comparisons_it_replaces() -> None:
    """Each property picks exactly the names the modules compared with before."""
    assert PER_ROUND == ("pplns", "prop")  # pps.py: blocks paid by their round
    assert [n for n in NAMES if scheme(n).per_share] == ["pps", "fpps"]  # tracker, CLI
    assert [n for n in NAMES if scheme(n).solo] == ["solo"]  # tracker
    assert [n for n in NAMES if scheme(n).round_window_is_shares] == ["pplns"]  # tracker
    fee_averaged = [n for n in NAMES if scheme(n).per_share and scheme(n).includes_tx_fees]
    assert fee_averaged == ["fpps"]  # pps.py: FPPS averages the blocks' fees


@pytest.mark.parametrize("name", ["", "PPLNS", "pplns ", "fpps2", "pool"])
def test_unknown_names(name: str) -> None:
    with pytest.raises(UnknownScheme, match="unknown payout scheme"):
        scheme(name)
    assert issubclass(UnknownScheme, ValueError)


def test_a_scheme_is_one_kind() -> None:
    with pytest.raises(ValueError):
        Scheme("none")
    with pytest.raises(ValueError):
        Scheme("both", per_share=True, per_round=True)
    with pytest.raises(ValueError):
        Scheme("window", per_share=True, round_window_is_shares=True)


def test_pure() -> None:
    """The config imports the registry: it must not import the database or the config."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(scheme_registry.__file__).read_text())
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported <= {"__future__", "dataclasses"}


#: The least a config needs (a regtest payout address).
POOL = {"payout_address": "bcrt1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup"}


def test_config_takes_only_registered_schemes() -> None:
    for name in NAMES:
        settings = config.settings_from_mapping({"pool": POOL, "payout": {"scheme": name}})
        assert settings.payout.scheme == name
    with pytest.raises(config.ConfigError, match="scheme"):
        config.settings_from_mapping({"pool": POOL, "payout": {"scheme": "nope"}})
