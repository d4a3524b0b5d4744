"""The demo behind `scripts/demo`: a regtest node, the pool serving it, simulated miners.

Starts bcoin in regtest (segwit), runs `farmpool serve` on the embedded defaults pointed at that
node (the node wallet's address as the pool's payout address, one site, tenants, a localhost
port with a difficulty CPU miners can meet), connects a small simulated fleet over TCP
(`farmpool simulate`: version rolling, real shares found by hashing), and then checks on the node
that the blocks the pool found are in its chain and pay the pool. Then the money: the node
mines 101 blocks so that the pool's blocks mature, `farmpool blocks update` credits them by
PPLNS, `farmpool payout --execute` pays the tenants from the node's wallet, and the node's
wallet must show each tenant's address holding exactly its credit. Last, hosting accounting:
the site's tariff and heat terms, a contract per tenant, a meter reading, and the month's
statement of the site. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import regtest_peers
from sqlalchemy import func, select

from pool.chain.addresses import address_to_script
from pool.chain.serialize import parse_block
from pool.config import DEFAULT_CONFIG
from pool.ledger.db import make_engine
from pool.ledger.models import Block, Share, Tenant

TENANTS = ["acme", "borealis", "greenhouse"]


SITES = {"north": "Europe/Berlin", "south": "UTC"}


def start_pool(config: Path, log: Path) -> tuple[subprocess.Popen[str], dict[str, int]]:
    pool = subprocess.Popen(
        [sys.executable, "-m", "pool", "-c", str(config), "serve"],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    assert pool.stdout is not None
    for line in pool.stdout:
        event = json.loads(line)
        if event["event"] == "listening":
            # Keep reading its event lines, or a full pipe would stall the pool.
            threading.Thread(target=pool.stdout.read, daemon=True).start()
            return pool, {name: int(port) for name, port in event["ports"].items()}
    raise RuntimeError(f"farmpool serve did not start:\n{log.read_text()[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="how long the fleet mines")
    parser.add_argument("--miners", type=int, default=2, help="simulated miners per tenant")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 600 or not 1 <= args.miners <= 100:
        parser.error("--seconds must be 1..600 and --miners 1..100")
    regtest_peers.install_bcoin()
    with tempfile.TemporaryDirectory(prefix="farmpool-demo-") as tmp:
        work = Path(tmp)
        with regtest_peers.start_bcoin(work / "bcoin") as node:
            address = node.new_address()
            config: dict[str, Any] = json.loads(json.dumps(DEFAULT_CONFIG))
            config["node"] = {"url": node.rpc_url, "refresh_interval_s": 10}
            config["pool"] = {"payout_address": address, "tag": "/farmpool-demo/"}
            config["tenants"] = [{"name": t, "payout_address": node.new_address()} for t in TENANTS]
            # PPLNS over the last N x network difficulty of shares: every share here is one
            # work unit and regtest's difficulty is 4.66e-10, so N = 200,000 is the last 7.
            config["payout"] = {
                "scheme": "pplns",
                "pplns_n": 200_000,
                "fee_percent": 1,
                "threshold_sat": 100_000,
                "wallet_url": node.wallet_rpc_url,
                "tracker_interval_s": 0,
            }
            config["data_dir"] = str(work / "data")
            config["api"] = {"bind": "127.0.0.1", "port": 0}  # any free port for the demo
            # Two sites, a stratum port each. Regtest's network target is 2^255: half of all
            # hashes are blocks. Share difficulty 1e-10 lets every hash be a share; 0.5 H/s
            # pretended gives ~1 share/s a miner, so blocks come every few hundred ms, and
            # siblings at one height are common.
            config["sites"] = list(SITES)
            config["listeners"] = [
                {
                    "name": site,
                    "site": site,
                    "bind": "127.0.0.1",
                    "port": 0,
                    "difficulty": {"start": 1e-10, "min": 1e-10, "max": 1e-10},
                    "vardiff": {"enabled": False},
                }
                for site in SITES
            ]
            path = work / "farmpool.yaml"
            path.write_text(json.dumps(config))
            print(f"regtest node: bcoin at 127.0.0.1:{node.rpc_port}; pool pays {address}")
            config["database_url"] = f"sqlite:///{work / 'farmpool.sqlite3'}"
            path.write_text(json.dumps(config))
            subprocess.run(
                [sys.executable, "-m", "pool", "-c", str(path), "db", "upgrade"],
                check=True,
                capture_output=True,
            )
            for site, zone in SITES.items():  # before serve, which would seed them in UTC
                farmpool(path, "site", "add", site, "--timezone", zone)
            start_height = node.rpc("getblockcount")
            pool, ports = start_pool(path, work / "pool.log")
            print(
                "pool: farmpool serve on "
                + ", ".join(f"{site} 127.0.0.1:{port}" for site, port in ports.items())
                + f" ({len(SITES)} sites x {len(TENANTS)} tenants x {args.miners} simulated "
                "ASICs; some send a stale or duplicate share, some restart and resume)"
            )
            try:
                sim = subprocess.run(
                    [
                        sys.executable, "-m", "pool", "simulate",
                        "--connect", ",".join(f"127.0.0.1:{port}" for port in ports.values()),
                        "--tenants", ",".join(TENANTS),
                        "--miners", str(args.miners),
                        "--hashrate", "0.5",
                        "--seconds", str(args.seconds),
                        "--stale-rate", "0.05",
                        "--duplicate-rate", "0.05",
                        "--reconnect-after", str(max(1.0, args.seconds / 2)),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=args.seconds + 60,
                )  # fmt: skip
            finally:
                pool.send_signal(signal.SIGTERM)
                code = pool.wait(timeout=30)
            if sim.returncode != 0 or code != 0:
                print(sim.stderr[-3000:], (work / "pool.log").read_text()[-3000:], file=sys.stderr)
                return 1
            result = json.loads(sim.stdout.strip().splitlines()[-1])
            print(
                f"\n{'tenant':12} {'miners':>6} {'accepted':>9} {'stale':>6} {'dup':>4} "
                f"{'blocks':>7} {'resumed':>8}"
            )
            for tenant, row in result["tenants"].items():
                print(
                    f"{tenant:12} {row['miners']:>6} {row['accepted']:>9} {row['stale']:>6} "
                    f"{row['duplicate']:>4} {row['blocks']:>7} "
                    f"{row['resumed']:>3}/{row['reconnects']:<4}"
                )
            engine = make_engine(config["database_url"])
            with engine.connect() as conn:
                records = [
                    {"hash": h, "height": height, "accepted": accepted}
                    for h, height, accepted in conn.execute(
                        select(Block.hash, Block.height, Block.accepted)
                    )
                ]
                ledger = conn.execute(
                    select(Tenant.name, func.count(Share.id), func.sum(Share.work))
                    .join(Share, Share.tenant_id == Tenant.id)
                    .group_by(Tenant.name)
                    .order_by(Tenant.name)
                ).all()
            engine.dispose()
            print(f"\n{'ledger':12} {'shares':>9} {'work (diff x 2^16)':>19}")
            for name, count, work_sum in ledger:
                print(f"{name:12} {count:>9} {work_sum:>19}")
            script = address_to_script(address, "regtest")
            in_chain = 0
            for record in records:
                if not record["accepted"]:
                    continue
                if node.rpc("getblockhash", record["height"]) != record["hash"]:
                    continue  # accepted, but another of our blocks won that height
                block = parse_block(bytes.fromhex(node.rpc("getblock", record["hash"], False)))
                if block.txs[0].outputs[0].script != script:
                    print(f"block {record['hash']} does not pay the pool", file=sys.stderr)
                    return 1
                in_chain += 1
            height = node.rpc("getblockcount")
            print(
                f"\n{len(records)} blocks found through the pool, {in_chain} in the node's chain "
                f"(height {start_height} -> {height}), every one paying the pool."
            )
            if in_chain == 0 or height - start_height != in_chain:
                print("expected the chain to consist of the pool's blocks", file=sys.stderr)
                return 1
            return pay_out(node, path, config)
    return 0


def farmpool(path: Path, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "pool", "-c", str(path), *args], capture_output=True, text=True
    )
    if run.returncode != 0:
        raise RuntimeError(f"farmpool {' '.join(args)} failed:\n{run.stdout}{run.stderr}")
    return run.stdout


def pay_out(node: regtest_peers.RegtestNode, path: Path, config: dict[str, Any]) -> int:
    """Mature the pool's blocks, credit them by PPLNS, pay the tenants through the node's
    wallet, and check on the node that each address received exactly what it was owed."""
    print("\nmaturing the blocks (101 more, mined by the node), then crediting them:")
    balance = node.wallet_rpc("getbalance")
    node.mine(101)
    node.wait_for(lambda: node.wallet_rpc("getbalance") > balance, timeout=20)
    print(farmpool(path, "blocks", "update").strip())
    owed = {b["tenant"]: b["owed_sat"] for b in json.loads(farmpool(path, "balances", "--json"))}
    print(farmpool(path, "balances").rstrip())
    print("\npayout run:")
    for _ in range(40):  # bcoin's wallet takes a moment to see the new coinbases
        run = subprocess.run(
            [sys.executable, "-m", "pool", "-c", str(path), "payout", "--execute"],
            capture_output=True,
            text=True,
        )
        if run.returncode == 0 or "not enough spendable funds" not in run.stdout:
            break
        time.sleep(0.5)
    print(run.stdout.rstrip())
    if run.returncode != 0:
        print(run.stderr[-3000:], file=sys.stderr)
        return 1
    node.mine(1)
    addresses = {t["name"]: t["payout_address"] for t in config["tenants"]}
    got = {}
    for _ in range(40):
        got = {
            t: round(node.wallet_rpc("getreceivedbyaddress", a, 1) * 100_000_000)
            for t, a in addresses.items()
        }
        if got == owed:
            break
        time.sleep(0.25)
    print("\nreceived, as the node's wallet sees it (satoshis): " + json.dumps(got))
    if got != owed:
        print(f"expected {owed}", file=sys.stderr)
        return 1
    print("every tenant received exactly its PPLNS credit, less the pool fee.")
    return statements(path, list(addresses))


def statements(path: Path, tenants: list[str]) -> int:
    """Hosting accounting on top: each site's tariff and heat terms, a contract per tenant and
    site (a declared fleet, a hosting fee), a meter reading, then the month's statement of
    every tenant at every site (docs/accounting.md)."""
    now = datetime.now(UTC)
    yesterday = (now - timedelta(days=1)).date()
    print(
        "\nhosting accounting: north 0.10 EUR/kWh (0.15 from 08:00 to 20:00), half the heat "
        "sold to the greenhouse at 0.04; south 0.08 flat"
    )
    farmpool(
        path, "site", "set", "north", "--currency", "EUR", "--price", "0.10",
        "--band", "08:00-20:00=0.15", "--heat-factor", "0.5", "--heat-price", "0.04",
    )  # fmt: skip
    farmpool(path, "site", "set", "south", "--currency", "EUR", "--price", "0.08")
    for n, tenant in enumerate(tenants):
        for site in SITES:
            hosting = ["--hosting", "kw_month", "--hosting-price", "40"]
            if site == "south":
                hosting = ["--hosting", "kwh", "--hosting-price", "0.02"]
            farmpool(
                path, "contract", "set", tenant, site, *hosting,
                "--machine", f"S19XP:{2 + n}:140:3010", "--valid-from", yesterday.isoformat(),
            )  # fmt: skip
    readings = path.parent / "meter.csv"
    readings.write_text(
        "site,tenant,period_start,period_end,kwh\r\n"
        f"south,{tenants[0]},{yesterday}T00:00:00Z,{yesterday}T12:00:00Z,130.5\r\n"
    )
    print(farmpool(path, "meter", "import", str(readings)).strip())
    month = now.strftime("%Y-%m")
    rows = json.loads(farmpool(path, "report", "tenant", "--period", month, "--format", "json"))
    print(f"\nstatements for {month} (farmpool report tenant --period {month}; csv and json too):")
    columns = [
        ("site", "site", 6), ("tenant", "tenant", 11), ("shares", "shares", 6),
        ("blocks", "blocks", 6), ("credited BTC", "credited_btc", 13),
        ("paid BTC", "paid_btc", 13), ("kWh", "energy_kwh", 9), ("est. kWh", "estimated_kwh", 9),
        ("energy", "energy_cost", 8), ("hosting", "hosting_fee", 8),
        ("heat", "heat_revenue", 7), ("net EUR", "net", 9),
    ]  # fmt: skip
    print("  ".join(title.rjust(width) for title, _, width in columns))
    for row in rows:
        print("  ".join(str(row[key]).rjust(width) for _, key, width in columns))
    if len(rows) != len(SITES) * len(tenants):
        print(f"expected a statement per tenant and site, got {len(rows)}", file=sys.stderr)
        return 1
    print("\nthe site and pool rows are the sums of these (farmpool report site|pool).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
