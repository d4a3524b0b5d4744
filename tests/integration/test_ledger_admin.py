"""`farmpool site ...` and `farmpool tenant ...` against real databases (SQLite and PostgreSQL):
the commands run as processes on a config whose database_url is the test database, and every
bad input exits 2 with the field named and the database exactly as it was; plus
admin.seed_from_config, which adds what the config has and the database lacks, and never
overwrites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pool import cli
from pool.config import settings_from_mapping
from pool.ledger import admin, db
from pool.ledger.models import Site, Tenant

REPO = Path(__file__).resolve().parents[2]
#: A valid regtest address (Bitcoin Core form), and one of the same kind for mainnet.
REGTEST_ADDRESS = "bcrt1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup"
OTHER_REGTEST_ADDRESS = "2N2JD6wb56AfK4tfmM6PwdVmoYk2dCKf4Br"
MAINNET_ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"

Run = Callable[..., subprocess.CompletedProcess[str]]


def config_for(url: str) -> dict[str, Any]:
    return {
        "network": "regtest",
        "pool": {"payout_address": REGTEST_ADDRESS},
        "database_url": url,
        "sites": ["main"],
        "tenants": [{"name": "demo"}],
    }


def runner(tmp_path: Path, url: str) -> Run:
    config = tmp_path / "farmpool.yaml"
    config.write_text(json.dumps(config_for(url)))  # JSON is YAML

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pool", "-c", str(config), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            timeout=60,
        )

    return run


@pytest.fixture
def farmpool(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """Runs `farmpool -c CONFIG ARGS...` on the test database, upgraded to head: in this
    process (cli.main, its output captured), since what is tested is the commands' answers;
    the tests above run the real `python -m pool` process for what only a process shows."""
    config = tmp_path / "farmpool.yaml"
    config.write_text(json.dumps(config_for(db_url)))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        try:
            code = cli.main(["-c", str(config), *args])
        except SystemExit as exc:  # argparse's own checks exit
            code = exc.code if isinstance(exc.code, int) else 2
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["farmpool", *args], code, out.out, out.err)

    upgraded = run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def snapshot(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every column of every site and tenant."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            sites = conn.execute(select(Site.__table__).order_by(Site.id)).all()
            tenants = conn.execute(select(Tenant.__table__).order_by(Tenant.id)).all()
        return [tuple(r) for r in sites], [tuple(r) for r in tenants]
    finally:
        engine.dispose()


def test_refuses_a_database_without_the_schema(tmp_path: Path, db_url: str) -> None:
    run = runner(tmp_path, db_url)
    for args in (["tenant", "list"], ["site", "add", "north"]):
        result = run(*args)
        assert result.returncode == 1, result.stderr
        assert "farmpool db upgrade" in result.stderr


def test_unreachable_database_is_a_failure_not_bad_input(tmp_path: Path) -> None:
    run = runner(tmp_path, "postgresql://postgres@127.0.0.1:1/farmpool")
    result = run("tenant", "list")
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr


def test_site_add_and_list_round_trip(farmpool: Run, db_url: str) -> None:
    assert "north" in ok(farmpool("site", "add", "north", "--timezone", "Europe/Berlin"))
    ok(farmpool("site", "add", "south-2"))
    sites = json.loads(ok(farmpool("site", "list", "--json")))
    assert [(s["name"], s["timezone"]) for s in sites] == [
        ("north", "Europe/Berlin"),
        ("south-2", "UTC"),
    ]
    assert all(s["created_at"].endswith("+00:00") for s in sites)
    table = ok(farmpool("site", "list")).splitlines()
    assert table[0].split() == ["NAME", "TIMEZONE", "CREATED", "(UTC)"]
    assert table[1].split()[:2] == ["north", "Europe/Berlin"]
    assert table[2].split()[:2] == ["south-2", "UTC"]


def test_tenant_add_list_set_round_trip(farmpool: Run, db_url: str) -> None:
    assert "no tenants yet" in ok(farmpool("tenant", "list"))
    ok(farmpool("tenant", "add", "acme", "--payout-address", REGTEST_ADDRESS))
    ok(farmpool("tenant", "add", "Bob_2"))
    tenants = json.loads(ok(farmpool("tenant", "list", "--json")))
    assert [(t["name"], t["payout_address"], t["active"]) for t in tenants] == [
        ("Bob_2", None, True),
        ("acme", REGTEST_ADDRESS, True),
    ]
    table = ok(farmpool("tenant", "list")).splitlines()
    assert table[0].split()[:4] == ["NAME", "PAYOUT", "ADDRESS", "ACTIVE"]
    assert table[1].split()[:3] == ["Bob_2", "-", "yes"]
    assert table[2].split()[:3] == ["acme", REGTEST_ADDRESS, "yes"]

    ok(farmpool("tenant", "set", "Bob_2", "--payout-address", OTHER_REGTEST_ADDRESS, "--inactive"))
    ok(farmpool("tenant", "set", "acme", "--inactive"))
    ok(farmpool("tenant", "set", "acme", "--active"))
    tenants = json.loads(ok(farmpool("tenant", "list", "--json")))
    assert [(t["name"], t["payout_address"], t["active"]) for t in tenants] == [
        ("Bob_2", OTHER_REGTEST_ADDRESS, False),
        ("acme", REGTEST_ADDRESS, True),
    ]
    engine = db.make_engine(db_url)
    try:
        assert admin.active_tenants(engine) == {"acme"}
    finally:
        engine.dispose()


#: (arguments, what stderr must contain): each is bad input that must change nothing.
BAD_INPUT: list[tuple[list[str], list[str]]] = [
    (["site", "add", "north.1"], ["NAME", "'north.1'"]),
    (["site", "add", "x" * 65], ["NAME", "1-64"]),
    (["site", "add", "east", "--timezone", "Mars/Olympus"], ["--timezone", "'Mars/Olympus'"]),
    (["site", "add", "east", "--timezone", "europe/berlin"], ["--timezone", "'europe/berlin'"]),
    (["site", "add", "east", "--timezone", "../etc/passwd"], ["--timezone", "'../etc/passwd'"]),
    (["site", "add", "east", "--timezone", "localtime"], ["--timezone", "'localtime'"]),
    (["site", "add", "north"], ["NAME", "'north'", "exists"]),
    (["tenant", "add", "acme corp"], ["NAME", "'acme corp'"]),
    (["tenant", "add", "acme.rig1"], ["NAME", "'acme.rig1'"]),
    (
        ["tenant", "add", "beta", "--payout-address", MAINNET_ADDRESS],
        ["--payout-address", MAINNET_ADDRESS, "regtest"],
    ),
    (
        ["tenant", "add", "beta", "--payout-address", "bcrt1qnotanaddress"],
        ["--payout-address", "bcrt1qnotanaddress", "regtest"],
    ),
    (["tenant", "add", "acme"], ["NAME", "'acme'", "exists"]),
    (["tenant", "set", "ghost", "--inactive"], ["NAME", "'ghost'", "no tenant"]),
    (
        ["tenant", "set", "acme", "--payout-address", MAINNET_ADDRESS, "--inactive"],
        ["--payout-address", MAINNET_ADDRESS, "regtest"],
    ),
    (["tenant", "set", "acme"], ["nothing to change"]),
    (
        ["tenant", "set", "acme", "--payout-threshold-sat", "300"],
        ["--payout-threshold-sat", "at least 546", "dust", "300"],
    ),
    (["tenant", "set", "acme", "--payout-threshold-sat", "0"], ["--payout-threshold-sat", "546"]),
    (["tenant", "set", "acme", "--payout-threshold-sat", "-5"], ["--payout-threshold-sat", "546"]),
]


def test_bad_input_exits_2_names_the_field_and_writes_nothing(farmpool: Run, db_url: str) -> None:
    ok(farmpool("site", "add", "north", "--timezone", "Europe/Berlin"))
    ok(farmpool("tenant", "add", "acme", "--payout-address", REGTEST_ADDRESS))
    before = snapshot(db_url)
    for args, expected in BAD_INPUT:
        result = farmpool(*args)
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith("farmpool: "), (args, result.stderr)
        for part in expected:
            assert part in message, (args, part, message)
        assert result.stdout == "", (args, result.stdout)
        assert snapshot(db_url) == before, args
    # argparse's own checks are bad input too
    assert farmpool("tenant", "set", "acme", "--active", "--inactive").returncode == 2
    assert snapshot(db_url) == before


def test_seed_from_config_adds_only_missing_rows_and_never_overwrites(db_url: str) -> None:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        admin.add_site(engine, "north", "Asia/Tokyo")
        admin.add_tenant(engine, "acme", "regtest", OTHER_REGTEST_ADDRESS)
        admin.set_tenant(engine, "acme", "regtest", active=False)
        before = snapshot(db_url)
        settings = settings_from_mapping(
            {
                **config_for(db_url),
                "sites": ["north", "south"],
                "tenants": [
                    {"name": "acme", "payout_address": REGTEST_ADDRESS},
                    {"name": "beta", "payout_address": REGTEST_ADDRESS},
                    {"name": "gamma"},
                ],
            }
        )
        assert admin.seed_from_config(engine, settings) == (["south"], ["beta", "gamma"])
        sites, tenants = snapshot(db_url)
        assert sites[: len(before[0])] == before[0]  # north untouched (time zone and all)
        assert tenants[: len(before[1])] == before[1]  # acme keeps its address, stays inactive
        assert {s.name: s.timezone for s in admin.list_sites(engine)} == {
            "north": "Asia/Tokyo",
            "south": "UTC",
        }
        assert {t.name: (t.payout_address, t.active) for t in admin.list_tenants(engine)} == {
            "acme": (OTHER_REGTEST_ADDRESS, False),
            "beta": (REGTEST_ADDRESS, True),
            "gamma": (None, True),
        }
        seeded = snapshot(db_url)
        assert admin.seed_from_config(engine, settings) == ([], [])
        assert snapshot(db_url) == seeded
        assert admin.active_tenants(engine) == {"beta", "gamma"}
    finally:
        engine.dispose()
