"""A pool's money side against a real regtest node: its config file, the `farmpool` commands
run as processes, the ledger, and what the node's wallet says each tenant received."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from regtest_peers import RegtestNode
from sqlalchemy import Engine, insert, select

from pool.config import settings_from_mapping
from pool.ledger import admin, db
from pool.ledger.models import Credit, Tenant

TENANTS = ("acme", "globex", "initech")


def sat(btc: Any) -> int:
    return int(Decimal(str(btc)) * 100_000_000)


@dataclass
class MoneyPool:
    """A config (on disk), its database (migrated, tenants seeded) and the node."""

    node: RegtestNode
    config: dict[str, Any]
    workdir: Path
    addresses: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        node: RegtestNode,
        workdir: Path,
        database_url: str,
        payout: dict[str, Any],
        tenants: tuple[str, ...] = TENANTS,
    ) -> MoneyPool:
        addresses = {name: node.new_address() for name in tenants}
        payout = dict(payout)
        if node.kind == "bcoin":
            payout.setdefault("wallet_url", node.wallet_rpc_url)
        config = {
            "network": "regtest",
            "log_level": "info",
            "node": {"url": node.rpc_url},
            "pool": {"payout_address": node.new_address(), "tag": "/farmpool-e2e/"},
            "sites": ["north", "south"],
            "tenants": [{"name": n, "payout_address": a} for n, a in addresses.items()],
            "data_dir": str(workdir / "data"),
            "database_url": database_url,
            "payout": {"tracker_interval_s": 0, **payout},
        }
        pool = cls(node, config, workdir, addresses)
        pool.write_config()
        run = pool.farmpool("db", "upgrade")
        assert run.returncode == 0, run.stderr
        engine = pool.engine()
        try:
            admin.seed_from_config(engine, settings_from_mapping(config))
        finally:
            engine.dispose()
        return pool

    @property
    def config_path(self) -> Path:
        return self.workdir / "farmpool.yaml"

    def write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config, indent=2))

    def set_payout(self, **changes: Any) -> None:
        self.config["payout"] = {**self.config["payout"], **changes}
        self.write_config()

    def farmpool(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        import os

        return subprocess.run(
            [sys.executable, "-m", "pool", "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )

    def engine(self) -> Engine:
        return db.make_engine(self.config["database_url"])

    def tenant_ids(self) -> dict[str, int]:
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return {n: i for i, n in conn.execute(select(Tenant.id, Tenant.name))}
        finally:
            engine.dispose()

    def credit(self, amounts: dict[str, int]) -> None:
        """Mature credits for tenants, as PPS crediting would write them."""
        ids = self.tenant_ids()
        now = datetime.now(UTC)
        engine = self.engine()
        try:
            with engine.begin() as conn:
                conn.execute(
                    insert(Credit),
                    [
                        {
                            "tenant_id": ids[name],
                            "kind": "pps",
                            "work": 0,
                            "amount_sat": amount,
                            "fee_sat": 0,
                            "status": "mature",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for name, amount in amounts.items()
                    ],
                )
        finally:
            engine.dispose()

    def balances(self) -> dict[str, dict[str, Any]]:
        run = self.farmpool("balances", "--json")
        assert run.returncode == 0, run.stderr
        return {b["tenant"]: b for b in json.loads(run.stdout)}

    def received(self, minconf: int = 1) -> dict[str, int]:
        """What the wallet has seen arrive at each tenant's address."""
        return {
            name: sat(self.node.wallet_rpc("getreceivedbyaddress", address, minconf))
            for name, address in self.addresses.items()
        }

    def wait_received(self, expected: dict[str, int], timeout: float = 20.0) -> dict[str, int]:
        """Wait for the wallet to catch up (bcoin's wallet follows the chain a little late)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received()
            if all(got[name] == want for name, want in expected.items()):
                return got
            if time.monotonic() > deadline:
                return got
            time.sleep(0.2)

    def mine_to_wallet(self, n: int) -> list[str]:
        """Mine n blocks paying the node's wallet, and wait until the wallet has seen them
        (bcoin's wallet follows the chain a little late: its balance grows when it has)."""
        balance = sat(self.node.wallet_rpc("getbalance"))
        hashes = self.node.mine(n)
        if self.node.kind == "bcoin":
            seen = [balance]

            def caught_up() -> bool:  # grown, and the same twice in a row
                now = sat(self.node.wallet_rpc("getbalance"))
                seen.append(now)
                return now > balance and seen[-2] == now

            assert self.node.wait_for(caught_up, timeout=20, interval=0.2), (
                "bcoin's wallet did not see the blocks"
            )
        return hashes
