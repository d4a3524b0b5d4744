"""The `farmpool` command as a process: the demo, share-check's verdicts and input errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE: dict[str, Any] = json.loads(
    (REPO.parent / "shared" / "vectors" / "stratum_examples.json").read_text()
)[0]


def farmpool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pool", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def submit_json(params: list[str]) -> str:
    return json.dumps({"id": 4, "method": "mining.submit", "params": params})


def share_check(as_json: bool = True, **overrides: str) -> subprocess.CompletedProcess[str]:
    options = {
        "--notify": EXAMPLE["notify"],
        "--extranonce1": EXAMPLE["extranonce1"],
        "--extranonce2-size": "4",
        "--submit": EXAMPLE["submit"],
    }
    options.update(overrides)
    args = [item for pair in options.items() for item in pair]
    return farmpool("share-check", *args, *(["--json"] if as_json else []))


def test_demo_finds_blocks_through_the_pool() -> None:
    run = subprocess.run(
        [sys.executable, "scripts/demo.py", "--seconds", "6", "--miners", "2"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    found = re.search(
        r"(\d+) blocks found through the pool, (\d+) in the node's chain .*; (\d+) orphaned", out
    )
    assert found, out
    assert int(found.group(2)) >= 1
    assert "every one paying the pool" in out
    assert "every tenant received exactly its PPLNS credit" in out, out
    # Progress while the fleet mines.
    assert re.search(r"^ +\d+ s: the node's chain is at height \d+$", out, re.M), out
    # The fleet: every tenant's miners mined; duplicates are answered as duplicates; the
    # blocks split into those in the chain and those orphaned, adding up to the total found;
    # restarted miners resumed their sessions.
    fleet = re.findall(r"^(acme|borealis|greenhouse)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+"
                       r"(\d+)\s+(\d+)\s+(\d+)/(\d+)", out, re.M)  # fmt: skip
    assert len(fleet) == 3 and all(int(row[2]) > 0 for row in fleet), out
    assert sum(int(row[4]) for row in fleet) > 0, "no duplicate answered as one"
    assert sum(int(row[5]) for row in fleet) == int(found.group(2)), out
    assert sum(int(row[6]) for row in fleet) == int(found.group(3)), out
    assert sum(int(row[7]) for row in fleet) > 0, "no miner resumed its session"
    # The payout is printed once.
    txids = re.findall(r"^  ([0-9a-f]{64}) \(network fee \d+ sat\)$", out, re.M)
    assert len(txids) == 1 and out.count(txids[0]) == 1, out
    # A statement per tenant and site, with energy priced; the meter reading is in it (the
    # metered part of that tenant's energy), and the sign of net is explained.
    statements = out.split("statements for ", 1)[1]
    rows = {
        (m["site"], m["tenant"]): m
        for m in re.finditer(
            r"^\s*(?P<site>north|south)\s+(?P<tenant>acme|borealis|greenhouse)\s+\d+\s+\d+\s+"
            r"[\d.]+\s+[\d.]+\s+(?P<kwh>[\d.]+)\s+(?P<est>[\d.]+)\s.*\s-?\d+\.\d\d$",
            statements,
            re.M,
        )
    }
    assert len(rows) == 6, statements
    reading = re.search(r"^meter reading of (\w+) at (\w+), ", out, re.M)
    kwh = re.search(r"^imported 1 readings \(([\d.]+) kWh\)", out, re.M)
    assert reading and kwh, out
    row = rows[(reading.group(2), reading.group(1))]
    assert Decimal(row["kwh"]) - Decimal(row["est"]) == Decimal(kwh.group(1)), statements
    assert "net = heat - energy - hosting" in statements and "negative, the tenant owes" in out


def test_share_check_accepts_the_published_share() -> None:
    run = share_check()
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["hash"] == "000000002076870fe65a2b6eeed84fa892c0db924f1482243a6247d931dcab32"
    assert (result["verdict"], result["reason"]) == ("accepted", None)


def test_share_check_explains_rejections() -> None:
    # The published share is a block on its testnet job: above its own difficulty it is
    # still accepted (the server never throws a block away), and says so.
    block = share_check(**{"--difficulty": "64"})
    assert json.loads(block.stdout)["verdict"] == "accepted"
    text = share_check(False, **{"--difficulty": "64"}).stdout
    assert "-> BLOCK" in text and "verdict        accepted" in text
    submit = json.loads(EXAMPLE["submit"])
    submit["params"][4] = "00000000"
    low = json.loads(share_check(**{"--submit": json.dumps(submit)}).stdout)
    assert low["verdict"] == "rejected" and low["meets_difficulty"] is False
    assert low["reason"].startswith("Low difficulty share")
    submit = json.loads(EXAMPLE["submit"])
    submit["params"][1] = "c0"
    stale = json.loads(share_check(**{"--submit": json.dumps(submit)}).stdout)
    assert stale["verdict"] == "rejected" and "job not found" in stale["reason"]
    submit = json.loads(EXAMPLE["submit"])
    submit["params"].append("e0000000")
    rolled = json.loads(share_check(**{"--submit": json.dumps(submit)}).stdout)
    assert "outside the negotiated mask 1fffe000" in rolled["reason"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"--notify": "{not json"}, "--notify: not JSON"),
        (
            {"--notify": '{"method": "mining.notify", "params": [1]}'},
            "--notify: mining.notify has 9 params",
        ),
        (
            {"--submit": submit_json(["w", "bf", "00000001", "504e86ed", "b2957c"])},
            "--submit params[4] (nonce): nonce must be 8 hex digits, got 'b2957c'",
        ),
        (
            {"--submit": submit_json(["w", "bf", "zz000001", "504e86ed", "b2957c02"])},
            "--submit params[2] (extranonce2): extranonce2 must be 8 hex digits",
        ),
        (
            {"--submit": '{"method": "mining.authorize", "params": []}'},
            "--submit: method must be 'mining.submit'",
        ),
        ({"--extranonce1": "xyz"}, "--extranonce1: not hex"),
        ({"--extranonce1": "0800 0002"}, "--extranonce1: not hex"),
        ({"--extranonce2-size": "9"}, "--extranonce2-size: expected 1 to 8"),
        ({"--difficulty": "-1"}, "--difficulty: expected a positive number"),
        ({"--version-mask": "1fffe0"}, "--version-mask: expected 4 bytes (8 hex digits)"),
        ({"--version-mask": "0x1fffe0"}, "--version-mask: not hex"),
    ],
)
def test_share_check_bad_input_exits_2_naming_the_field(
    overrides: dict[str, str], message: str
) -> None:
    run = share_check(**overrides)
    assert run.returncode == 2
    assert message in run.stderr
    assert run.stdout == ""


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "pool.yaml"
    config.write_text(
        "network: regtest\nnode:\n  poll_interval_ms: fast\npool:\n  payout_address: x\n"
    )
    run = farmpool("-c", str(config), "config", "check")
    assert run.returncode == 2
    assert "node.poll_interval_ms" in run.stderr and "expected a whole number" in run.stderr


def test_node_check_on_a_closed_port_fails_clearly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "pool.yaml"
    config.write_text(
        f"node:\n  url: http://u:p@127.0.0.1:{port}\n  rpc_timeout_s: 2\n"
        "pool:\n  payout_address: bcrt1qxa7qhr6hdzsp08xkm9r3rf863s8kh4s9auesup\n"
    )
    run = farmpool("-c", str(config), "node", "check")
    assert run.returncode == 1
    assert f"cannot reach node 127.0.0.1:{port}" in run.stderr
