"""PPS crediting through a database outage: every share is paid exactly once, however late
it reaches the ledger, and compaction never folds away a share PPS has not paid.

The share ledger's writer gives each share its id before it is written anywhere, so the
shares spooled during an outage have lower ids than the fresh shares committed once the
database answers again, and reach the ledger after them (the spool is loaded a chunk per
writer pass, after the fresh shares). A PPS pass in between (a block arrived) must not leave
the spooled shares behind; nor may `farmpool ledger compact` under PPS fold them into hourly
rows, which keep no height and are never paid per share.

Real pieces throughout: the writer thread with its spool, a real outage (tests/integration/
test_ledger_writer.py: SQLite's write lock held by another connection; PostgreSQL refusing
connections), SQLite and PostgreSQL, and a private bcoin regtest node whose chain is mined
past 10 halvings so that regtest's tiny network difficulty does not value a tenant's shares
above all bitcoin.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
import regtest_peers
from regtest_peers import RegtestNode
from sqlalchemy import Engine, func, select

from pool.accounting.chainview import ChainView
from pool.accounting.pps import accrue_pps
from pool.accounting.schemes import network_difficulty
from pool.chain.rpc import NodeRPC
from pool.config import DEFAULT_CONFIG, PayoutSettings
from pool.ledger import db
from pool.ledger.models import Credit, PpsAccrual, Share, ShareHour, Tenant
from pool.ledger.writer import LedgerWriter, ShareRecord
from tests.helpers import wait_until
from tests.integration.test_ledger_writer import (
    SITES,
    TENANTS,
    Acks,
    Outage,
    ThreadReactor,
    prepare,
)

#: Regtest halves the subsidy every 150 blocks: at 10 halvings it is 4,882,812 satoshis, and a
#: share of work 1 (difficulty 2^-16) is worth 32,768.5 times that, 1.6e11 sat: a tenant's
#: few thousand shares stay below all bitcoin (a PPS batch worth more is refused).
HEIGHT = 150 * 10 + 20
#: Shares are three days old: older than any compaction cutoff (--keep-hours 1).
T_OLD = 1_790_000_000.0
SPOOLED = 3000


@pytest.fixture(scope="module")
def deep_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegtestNode]:
    node = regtest_peers.start_bcoin(tmp_path_factory.mktemp("bcoin-deep"), log_level="warning")
    try:
        address = node.new_address()
        while int(node.rpc("getblockcount")) < HEIGHT:
            node.mine(min(1000, HEIGHT - int(node.rpc("getblockcount"))), address)
        yield node
    finally:
        node.stop()


def record(tag: str, n: int, height: int) -> ShareRecord:
    difficulty = (1 + n % 3) / 65536  # work 1 to 3
    return ShareRecord(
        hash=hashlib.sha256(f"pps/{tag}/{n}".encode()).digest(),
        tenant=TENANTS[n % 2],
        worker=f"rig{n % 7}",
        site=SITES[(n // 2) % 2],
        job_id="1",
        height=height,
        difficulty=difficulty,
        share_difficulty=difficulty * 2,
        is_block=False,
        time=T_OLD + n * 0.01,
    )


def ledger_work(engine: Engine) -> tuple[dict[str, int], int]:
    """Work per tenant and the number of shares, raw and compacted together."""
    work: Counter[str] = Counter()
    count = 0
    with engine.connect() as conn:
        for name, w, n in conn.execute(
            select(Tenant.name, func.sum(Share.work), func.count())
            .join(Tenant, Tenant.id == Share.tenant_id)
            .group_by(Tenant.name)
        ):
            work[name] += int(w)
            count += int(n)
        for name, w, n in conn.execute(
            select(Tenant.name, func.sum(ShareHour.work), func.sum(ShareHour.shares))
            .join(Tenant, Tenant.id == ShareHour.tenant_id)
            .group_by(Tenant.name)
        ):
            work[name] += int(w)
            count += int(n)
    return dict(work), count


def credited(engine: Engine) -> tuple[dict[str, int], int, dict[str, int]]:
    """Work credited per tenant, shares credited, and net + fee satoshis per tenant."""
    with engine.connect() as conn:
        work = {
            name: int(w)
            for name, w in conn.execute(
                select(Tenant.name, func.sum(Credit.work))
                .join(Tenant, Tenant.id == Credit.tenant_id)
                .group_by(Tenant.name)
            )
        }
        sats = {
            name: int(s)
            for name, s in conn.execute(
                select(Tenant.name, func.sum(Credit.amount_sat + Credit.fee_sat))
                .join(Tenant, Tenant.id == Credit.tenant_id)
                .group_by(Tenant.name)
            )
        }
        shares = int(conn.execute(select(func.coalesce(func.sum(PpsAccrual.shares), 0))).scalar())
    return work, shares, sats


def compact_cli(url: str, workdir: Path) -> str:
    """`farmpool ledger compact --keep-hours 1` under PPS, as an operator runs it."""
    config = workdir / "pps.yaml"
    config.write_text(
        json.dumps(
            {
                **DEFAULT_CONFIG,
                "database_url": url,
                "log_level": "warning",
                "payout": {"scheme": "pps", "tracker_interval_s": 0},
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pool", "-c", str(config), "ledger", "compact", "--keep-hours", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_pps_pays_every_share_once_through_an_outage_a_late_spool_and_compaction(
    db_url: str, tmp_path: Path, deep_chain: RegtestNode
) -> None:
    prepare(db_url)
    outage = Outage(db_url)
    engine = outage.engine()  # the writer's (SQLite: a 200 ms lock timeout)
    money = db.make_engine(db_url)  # the tracker's
    chain = ChainView(NodeRPC(deep_chain.rpc_url), "regtest")
    settings = PayoutSettings(scheme="pps", fee_ppm=10_000)
    height = chain.tip() + 1  # the shares' height has no block yet: PPS waits for it
    reactor = ThreadReactor()
    acks = Acks(reactor)
    writer = LedgerWriter(
        engine, "node-a", tmp_path / "spool.jsonl", reactor, batch_max=5, retry_s=0.2
    )
    writer.open()
    writer.start()
    fresh: list[ShareRecord] = []
    stop_fresh = threading.Event()

    def keep_mining() -> None:  # fresh shares all along, as miners send them
        while not stop_fresh.is_set():
            share = record("fresh", len(fresh), height)
            fresh.append(share)
            acks.record(writer, share)
            stop_fresh.wait(0.002)

    try:
        before = [record("before", n, height) for n in range(200)]
        for share in before:
            acks.record(writer, share)
        acks.wait({r.hash for r in before}, writer)
        outage.start()
        try:
            spooled = [record("spooled", n, height) for n in range(SPOOLED)]
            for share in spooled:
                acks.record(writer, share)
            acks.wait({r.hash for r in spooled}, writer)
            assert writer.stats["spooled"] >= SPOOLED
        finally:
            outage.end()
        miner = threading.Thread(target=keep_mining)
        miner.start()
        try:
            # The database answers again: fresh shares (higher ids) are committed before the
            # spool is loaded; then a block arrives and PPS credits what is in the ledger.
            wait_until(lambda: writer.stats["committed"] > len(before) + 20, 30)
            assert writer.spool.size() > 0
            deep_chain.mine(1)
            first = accrue_pps(money, chain, settings)
            assert first.shares > 0
            assert writer.spool.size() > 0, "the spool was loaded before PPS ran: no overlap"
            wait_until(lambda: writer.db_ok and writer.spool.size() == 0, 60)
        finally:
            stop_fresh.set()
            miner.join()
        acks.wait({r.hash for r in fresh}, writer)
    finally:
        writer.stop()
    acks.check_once({r.hash for r in before + spooled + fresh})
    assert writer.stats["replayed"] > 0

    # Some of the ledger is not paid yet: the shares loaded after the PPS pass.
    total_work, total_shares = ledger_work(money)
    assert total_shares == len(before) + len(spooled) + len(fresh)
    assert credited(money)[1] < total_shares

    # Compaction under PPS (everything is three days old) keeps what PPS has not paid.
    compact_cli(db_url, tmp_path)
    assert ledger_work(money) == (total_work, total_shares)  # exact, whatever was compacted

    # The next pass pays the rest; a third pays nothing. Every share exactly once.
    chain = ChainView(NodeRPC(deep_chain.rpc_url), "regtest")  # bcoin drops idle connections
    accrue_pps(money, chain, settings)
    assert accrue_pps(money, chain, settings).shares == 0
    work, shares, sats = credited(money)
    assert shares == total_shares
    assert work == total_work
    # And in satoshis: each tenant's shares are worth work x subsidy / (2^16 x D), floored once
    # per (tenant, site) and pass: at most one satoshi per credit row below the exact value.
    value_per_work = Fraction(chain.subsidy(height), 65536) / network_difficulty(
        chain.bits_at(height)
    )
    with money.connect() as conn:
        rows = dict(
            conn.execute(
                select(Tenant.name, func.count())
                .select_from(Credit)
                .join(Tenant, Tenant.id == Credit.tenant_id)
                .group_by(Tenant.name)
            ).all()
        )
    for tenant, w in total_work.items():
        exact = w * value_per_work
        assert exact - rows[tenant] <= sats[tenant] <= exact, (tenant, sats[tenant], exact)
    engine.dispose()
    money.dispose()
