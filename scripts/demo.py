"""The demo behind `scripts/demo`: a regtest node, the pool serving it, simulated miners.

Starts bcoin in regtest (segwit), runs `farmpool serve` on the embedded defaults pointed at that
node (the node wallet's address as the pool's payout address, one site, tenants, a localhost
port with a difficulty CPU miners can meet), connects a small simulated fleet over TCP
(`farmpool simulate`: version rolling, real shares found by hashing, the odd stale or duplicate
share), and then checks on the node that the blocks the pool found are in its chain or
orphaned, and that those in the chain pay the pool. Then the money: the node mines 101 blocks
so that the pool's blocks mature, `farmpool blocks update` credits them by PPLNS, `farmpool
payout --execute` pays the tenants from the node's wallet, and the node's wallet must show
each tenant's address holding exactly its credit. Last, hosting accounting: the sites' tariff
and heat terms, a contract per tenant, a meter reading inside the reported month, and the
month's statement of every tenant at every site. Every table says what its columns mean.
Everything it starts is stopped at the end.
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
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
#: Every tenant's declared machines at every site: S19XP, 140 TH/s, this many watts each.
MACHINE_W = 3010
#: Seconds between progress lines while the fleet mines.
PROGRESS_S = 3.0


def machines(n: int) -> int:
    """How many machines the n-th tenant declares at each site."""
    return 2 + n


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
            config["database_url"] = f"sqlite:///{work / 'farmpool.sqlite3'}"
            path = work / "farmpool.yaml"
            path.write_text(json.dumps(config))
            print(f"regtest node: bcoin at 127.0.0.1:{node.rpc_port}; pool pays {address}")
            farmpool(path, "db", "upgrade")
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
                sim = mine(node, list(ports.values()), args.miners, args.seconds)
            finally:
                pool.send_signal(signal.SIGTERM)
                code = pool.wait(timeout=30)
            if sim.returncode != 0 or code != 0:
                print(sim.stderr[-3000:], (work / "pool.log").read_text()[-3000:], file=sys.stderr)
                return 1
            fleet = json.loads(sim.stdout.strip().splitlines()[-1])["tenants"]
            blocks = chain_check(node, config["database_url"], address)
            if blocks is None:
                return 1
            print_fleet(fleet, blocks)
            print_ledger(config["database_url"])
            height = node.rpc("getblockcount")
            in_chain = sum(blocks["chain"].values())
            orphaned = sum(blocks["orphaned"].values())
            print(
                f"\n{in_chain + orphaned} blocks found through the pool, {in_chain} in the node's "
                f"chain (height {start_height} -> {height}), every one paying the pool; "
                f"{orphaned} orphaned (another of the pool's blocks took their height first)."
            )
            if in_chain == 0 or height - start_height != in_chain:
                print("expected the chain to consist of the pool's blocks", file=sys.stderr)
                return 1
            return pay_out(node, path, config)
    return 0


def mine(
    node: regtest_peers.RegtestNode, ports: list[int], miners: int, seconds: float
) -> subprocess.CompletedProcess[str]:
    """Run the simulated fleet for `seconds`, printing the node's height as it goes."""
    argv = [
        sys.executable, "-m", "pool", "simulate",
        "--connect", ",".join(f"127.0.0.1:{port}" for port in ports),
        "--tenants", ",".join(TENANTS),
        "--miners", str(miners),
        "--hashrate", "0.5",
        "--seconds", str(seconds),
        "--stale-rate", "0.1",
        "--duplicate-rate", "0.1",
        "--reconnect-after", str(max(1.0, seconds / 2)),
    ]  # fmt: skip
    print(f"mining for {seconds:g} s:", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        sim = subprocess.Popen(argv, stdout=out, stderr=err, text=True)
        while True:
            try:
                code = sim.wait(timeout=PROGRESS_S)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - started
                if elapsed > seconds + 60:
                    sim.kill()
                elif elapsed < seconds:
                    height = node.rpc("getblockcount")
                    print(f"  {elapsed:3.0f} s: the node's chain is at height {height}", flush=True)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, code, out.read(), err.read())


def chain_check(
    node: regtest_peers.RegtestNode, database_url: str, address: str
) -> dict[str, Counter[str]] | None:
    """Per tenant, the blocks the pool found that are in the node's chain and those that are
    not (orphaned: a sibling at their height won; or refused by the node). Every block in the
    chain must pay the pool's address; None (after saying why) if one does not."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        records = conn.execute(
            select(Block.hash, Block.height, Tenant.name).join(Tenant, Tenant.id == Block.tenant_id)
        ).all()
    engine.dispose()
    script = address_to_script(address, "regtest")
    blocks: dict[str, Counter[str]] = {"chain": Counter(), "orphaned": Counter()}
    for block_hash, height, tenant in records:
        if node.rpc("getblockhash", height) != block_hash:
            blocks["orphaned"][tenant] += 1
            continue
        block = parse_block(bytes.fromhex(node.rpc("getblock", block_hash, False)))
        if block.txs[0].outputs[0].script != script:
            print(f"block {block_hash} does not pay the pool", file=sys.stderr)
            return None
        blocks["chain"][tenant] += 1
    return blocks


def print_fleet(fleet: dict[str, dict[str, Any]], blocks: dict[str, Counter[str]]) -> None:
    print(
        f"\n{'tenant':12} {'miners':>6} {'accepted':>9} {'stale':>6} {'dup':>4} "
        f"{'in chain':>9} {'orphaned':>9} {'resumed':>8}"
    )
    for tenant, row in fleet.items():
        print(
            f"{tenant:12} {row['miners']:>6} {row['accepted']:>9} {row['stale']:>6} "
            f"{row['duplicate']:>4} {blocks['chain'][tenant]:>9} {blocks['orphaned'][tenant]:>9} "
            f"{row['resumed']:>4}/{row['reconnects']:<3}"
        )
    print(
        "accepted: shares the pool took; stale: sent for a job gone with the last block (21);\n"
        "dup: the same share sent twice while its job was current (22); in chain / orphaned:\n"
        "the tenant's blocks that are in the node's chain / that lost their height to another\n"
        "of the pool's blocks (regtest blocks come every few hundred ms); resumed: restarted\n"
        "miners that got their session back / restarts."
    )


def print_ledger(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
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


def farmpool(path: Path, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "pool", "-c", str(path), *args], capture_output=True, text=True
    )
    if run.returncode != 0:
        raise RuntimeError(f"farmpool {' '.join(args)} failed:\n{run.stdout}{run.stderr}")
    return run.stdout


def btc(sat: int) -> str:
    return f"{Decimal(sat) / 100_000_000:.8f}"


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
    for _ in range(40):  # bcoin's wallet takes a moment to see the new coinbases
        run = subprocess.run(
            [sys.executable, "-m", "pool", "-c", str(path), "payout", "--execute", "--json"],
            capture_output=True,
            text=True,
        )
        if run.returncode == 0 or "not enough spendable funds" not in run.stdout + run.stderr:
            break
        time.sleep(0.5)
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-3000:], file=sys.stderr)
        return 1
    summary = json.loads(run.stdout)
    total = sum(batch["total_sat"] for batch in summary["sent"])
    print(
        f"\npayout run (farmpool payout --execute): {btc(total)} BTC in "
        f"{len(summary['sent'])} transaction(s)"
    )
    for batch in summary["sent"]:
        print(f"  {batch['txid']} (network fee {batch['fee_sat']} sat)")
        for p in batch["payments"]:
            print(f"    {p['tenant']:<12} {btc(p['amount_sat']):>16} BTC to {p['address']}")
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


def meter_period(now: datetime) -> tuple[datetime, datetime]:
    """The meter reading's period: up to 12 hours before `now`, but never before the start of
    now's month (UTC, the south site's time zone), so that the month's statement shows it
    whatever the date."""
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = max(month, now - timedelta(hours=12)).replace(microsecond=0)
    return start, max(now.replace(microsecond=0), start + timedelta(seconds=1))


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
                "--machine", f"S19XP:{machines(n)}:140:{MACHINE_W}",
                "--valid-from", yesterday.isoformat(),
            )  # fmt: skip
    # A reading of tenants[0] at south: its meter shows 90 % of its machines' nameplate draw.
    start, end = meter_period(now)
    hours = Decimal((end - start).total_seconds()) / 3600
    kwh = max(Decimal("0.001"), (machines(0) * MACHINE_W * hours * Decimal("0.0009")))
    kwh = kwh.quantize(Decimal("0.001"))
    readings = path.parent / "meter.csv"
    readings.write_text(
        "site,tenant,period_start,period_end,kwh\r\n"
        f"south,{tenants[0]},{start.isoformat()},{end.isoformat()},{kwh}\r\n"
    )
    print(
        f"meter reading of {tenants[0]} at south, {start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} "
        f"UTC: 90 % of its declared machines' draw"
    )
    print(farmpool(path, "meter", "import", str(readings)).strip())
    month = now.strftime("%Y-%m")
    rows = json.loads(farmpool(path, "report", "tenant", "--period", month, "--format", "json"))
    print(f"\nstatements for {month} (farmpool report tenant --period {month}; csv and json too):")
    columns = [
        ("site", "site", 6), ("tenant", "tenant", 11), ("shares", "shares", 6),
        ("found", "blocks", 6), ("credited BTC", "credited_btc", 13),
        ("paid BTC", "paid_btc", 13), ("kWh", "energy_kwh", 9), ("est. kWh", "estimated_kwh", 9),
        ("energy", "energy_cost", 8), ("hosting", "hosting_fee", 8),
        ("heat", "heat_revenue", 7), ("net EUR", "net", 9),
    ]  # fmt: skip
    print("  ".join(title.rjust(width) for title, _, width in columns))
    for row in rows:
        print("  ".join(str(row[key]).rjust(width) for _, key, width in columns))
    print(
        "found: blocks found there this month, in the chain or orphaned (only those in the\n"
        "chain are credited); kWh: used, metered where a reading covers the hour, else\n"
        "estimated from the declared machines (est. kWh: the estimated part); energy, hosting\n"
        "and heat in EUR. net = heat - energy - hosting, the hosting account from the\n"
        "tenant's side: negative, the tenant owes the farm that much for the month (its mining\n"
        "income is the BTC credited, paid in BTC); positive, the farm owes the tenant."
    )
    if len(rows) != len(SITES) * len(tenants):
        print(f"expected a statement per tenant and site, got {len(rows)}", file=sys.stderr)
        return 1
    print("\nthe site and pool rows are the sums of these (farmpool report site|pool).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
