"""A tenant's own view through its token, and nothing of anyone else's (issue 14, part 1).

One `farmpool serve` on the bcoin regtest node with its API (an operator token, reads not
public), two tenants mining (acme finds a block), and a real payout through bcoin's wallet
that pays both in one transaction. Tokens are made with `farmpool tenant token`. Every
endpoint, query parameter and path variant is read with each tenant's token, and no answer
carries the other tenant's name, workers, address or amount. The tenant page is loaded in
headless Chromium with a real token and with a wrong one.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from regtest_peers import RegtestNode

from pool.units import btc_text
from tests.e2e.farmpool_serve import ServeProcess, fixed_listener
from tests.e2e.money import MoneyPool
from tests.e2e.stratum_client import StratumClient
from tests.helpers import chromium

OPERATOR = "e2e-operator-token-0123456789"
PAID = {"acme": 2_345_678, "globex": 3_456_789}


class Farm:
    def __init__(self, pool: MoneyPool, server: ServeProcess) -> None:
        self.pool = pool
        self.server = server
        self.tokens: dict[str, str] = {}
        self.txid = ""

    @property
    def api(self) -> int:
        return int(self.server.wait_event(lambda e: e.get("event") == "listening")["api"])

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes, str]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api}{path}",
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as reply:
                return reply.status, reply.read(), reply.headers.get("content-type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("content-type", "")

    def json(self, path: str, token: str | None) -> Any:
        status, body, _ = self.get(path, token)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def token(self, tenant: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.pool.farmpool("tenant", "token", tenant, *extra)


@pytest.fixture(scope="module")
def farm(
    bcoin_node: RegtestNode,
    tmp_path_factory: pytest.TempPathFactory,
    serve_factory: Callable[[dict[str, Any]], ServeProcess],
) -> Farm:
    workdir = tmp_path_factory.mktemp("tenant-access")
    pool = MoneyPool.create(
        bcoin_node,
        workdir,
        f"sqlite:///{workdir / 'farmpool.sqlite3'}",
        {"scheme": "pps"},
        tenants=("acme", "globex"),
    )
    config = json.loads(json.dumps(pool.config))
    config["listeners"] = [fixed_listener()]
    config["api"] = {"bind": "127.0.0.1", "port": 0, "admin_token": OPERATOR, "sample_s": 0.5}
    server = serve_factory(config)
    farm = Farm(pool, server)
    for tenant, workers in (("acme", ("rig-a1", "rig-a2")), ("globex", ("rig-g1",))):
        for worker in workers:
            client = StratumClient(server.port("main"), log=server.log_tail)
            client.start(f"{tenant}.{worker}")
            for _ in range(3):
                assert client.submit(client.find_accepted())["result"] is True
            if worker == "rig-a1":
                assert client.submit(client.find_block())["result"] is True
            client.close()
    # A real payout transaction paying both tenants (credits as PPS crediting writes them).
    pool.mine_to_wallet(101)
    pool.credit(PAID)
    run = pool.farmpool("payout", "--execute", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    (sent,) = json.loads(run.stdout.strip().splitlines()[-1])["sent"]
    farm.txid = sent["txid"]
    for tenant in PAID:
        made = farm.token(tenant, "--create", "--label", "e2e")
        assert made.returncode == 0, made.stderr
        farm.tokens[tenant] = made.stdout.strip().splitlines()[-1]
    time.sleep(1.2)  # two hashrate samples
    return farm


TENANT_PATHS = [
    "/api/tenant",
    "/api/tenant/workers",
    "/api/tenant/hashrate",
    "/api/tenant/hours",
    "/api/tenant/hours?hours=744",
    "/api/tenant/blocks",
    "/api/tenant/credits",
    "/api/tenant/payouts",
    "/api/tenant/statement",
    "/api/tenant/statement?format=csv",
    "/api/events",
]


def test_operator_endpoints_need_the_operator_token(farm: Farm) -> None:
    for path in ("/api/pool", "/api/tenants", "/api/workers", "/api/blocks", "/api/payouts"):
        assert farm.get(path)[0] == 401, path
        assert farm.get(path, farm.tokens["acme"])[0] == 403, path
        assert farm.get(path, "wrong")[0] == 403, path
        assert farm.get(path, OPERATOR)[0] == 200, path
    assert farm.get("/health")[0] == 200 and farm.get("/metrics")[0] == 200
    metrics = farm.get("/metrics")[1].decode()
    for address in farm.pool.addresses.values():
        assert address not in metrics  # no payout address in /metrics


def test_a_tenant_sees_its_own_numbers(farm: Farm) -> None:
    token = farm.tokens["acme"]
    me = farm.json("/api/tenant", token)
    assert me["tenant"] == "acme" and me["active"] is True
    assert me["balance"]["paid_sat"] == PAID["acme"]
    workers = farm.json("/api/tenant/workers", token)
    assert sorted(w["worker"] for w in workers) == ["rig-a1", "rig-a2"]
    assert all(w["tenant"] == "acme" and w["hashrate_hs"]["5m"] > 0 for w in workers)
    hours = farm.json("/api/tenant/hours", token)
    assert sum(h["shares"] for h in hours) == 7  # 6 shares and the block
    blocks = farm.json("/api/tenant/blocks", token)
    assert len(blocks) == 1 and blocks[0]["tenant"] == "acme"
    credits = farm.json("/api/tenant/credits", token)
    assert [c["amount_sat"] for c in credits if c["kind"] == "pps"] == [PAID["acme"]]
    payouts = farm.json("/api/tenant/payouts", token)
    assert [(p["txid"], p["amount_sat"]) for p in payouts] == [(farm.txid, PAID["acme"])]
    assert payouts[0]["address"] == farm.pool.addresses["acme"]
    # The payout run wrote a payout_sent event per tenant; the tenant lists its own.
    sent = [e for e in farm.json("/api/events", token) if e["kind"] == "payout_sent"]
    assert [(e["subject"], e["data"]["amount_sat"]) for e in sent] == [(farm.txid, PAID["acme"])]
    statement = farm.json("/api/tenant/statement", token)
    assert statement["rows"] and {r["tenant"] for r in statement["rows"]} == {"acme"}
    status, body, kind = farm.get("/api/tenant/statement?format=csv", token)
    assert status == 200 and kind.startswith("text/csv")
    assert body.decode().startswith("site,tenant,period,currency,") and "\r\n" in body.decode()
    # The same numbers as `farmpool report tenant`.
    period = statement["period"]
    report = farm.pool.farmpool(
        "report", "tenant", "--period", period, "--tenant", "acme", "--format", "json"
    )
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == statement["rows"]
    # The operator reads the same endpoints by naming the tenant.
    assert farm.json("/api/tenant?tenant=globex", OPERATOR)["tenant"] == "globex"
    assert farm.get("/api/tenant", OPERATOR)[0] == 400


def test_no_token_of_one_tenant_returns_anything_of_the_other(farm: Farm) -> None:
    other = {
        "acme": ["globex", "rig-g1", farm.pool.addresses["globex"], str(PAID["globex"])],
        "globex": ["acme", "rig-a1", "rig-a2", farm.pool.addresses["acme"], str(PAID["acme"])],
    }
    for tenant, secrets in other.items():
        token = farm.tokens[tenant]
        stranger = "globex" if tenant == "acme" else "acme"
        variants = []
        for path in TENANT_PATHS:
            joiner = "&" if "?" in path else "?"
            variants += [
                path,
                f"{path}{joiner}tenant={tenant}",
                f"{path}{joiner}tenant_id=1&tenant_id=2",
                f"{path}{joiner}tenant={tenant}&tenant={stranger}",
            ]
        variants += [
            f"/api/tenant/{stranger}",
            f"/api/tenant/workers/{stranger}",
            "/api/tenant/../workers",
            "/api/tenant/%2e%2e/workers",
            "/api/tenant//workers",
            "/API/TENANT",
            "/api/workers",
            "/api/tenants",
            "/api/payouts",
            "/api/blocks",
            "/api/pool",
            "/api/hashrate",
        ]
        for path in variants:
            status, body, _ = farm.get(path, token)
            text = body.decode(errors="replace")
            for secret in secrets:
                assert secret not in text, f"{tenant}'s token got {secret!r} from {path}: {text}"
            assert status in (200, 400, 403, 404), (path, status)
        for path in TENANT_PATHS:
            joiner = "&" if "?" in path else "?"
            assert farm.get(f"{path}{joiner}tenant={stranger}", token)[0] == 403, path


def test_tokens_are_stored_hashed_listed_and_revoked(farm: Farm) -> None:
    made = farm.token("globex", "--create")
    token = made.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"fpt_[A-Za-z0-9_-]{43}", token)
    database = Path(farm.pool.config["database_url"].removeprefix("sqlite:///")).read_bytes()
    assert token.encode() not in database  # only its hash is kept
    assert farm.json("/api/tenant", token)["tenant"] == "globex"
    listed = json.loads(farm.token("globex", "--list", "--json").stdout)
    newest = listed[-1]
    assert newest["prefix"] == token[:10] and newest["last_used_at"] is not None
    assert token not in farm.token("globex", "--list").stdout
    revoke = farm.token("globex", "--revoke", str(newest["id"]))
    assert revoke.returncode == 0, revoke.stderr
    assert farm.get("/api/tenant", token)[0] == 403  # at once
    again = farm.token("globex", "--revoke", str(newest["id"]))
    assert again.returncode == 2 and "not revoked already" in again.stderr
    assert farm.token("nobody", "--create").returncode == 2
    assert farm.token("globex").returncode == 2  # one of --create, --revoke, --list


def chromium_dom(url: str, profile: Path) -> str:
    run = subprocess.run(
        [*chromium(profile), "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_the_tenant_page_in_chromium(farm: Farm, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{farm.api}/tenant"
    dom = chromium_dom(f"{base}#token={farm.tokens['acme']}", tmp_path / "a")
    body = re.search(r'<body data-points="(\d+)" data-series="(\d+)" data-workers="(\d+)" '
                     r'data-state="(\w[\w-]*)"', dom)  # fmt: skip
    assert body, dom[:2000]
    points, series, workers, state = body.groups()
    assert state == "ok" and int(workers) == 2 and int(series) >= 1 and int(points) > 0, dom[:3000]
    assert "rig-a1" in dom and "rig-a2" in dom and farm.txid in dom
    # Amounts are written from integer satoshis, digit for digit as the CLI writes them.
    paid = farm.json("/api/tenant", farm.tokens["acme"])["balance"]["paid_sat"]
    assert paid > 0 and f"<td>{btc_text(paid)} BTC</td>" in dom, dom[:3000]
    assert "globex" not in dom and "rig-g1" not in dom
    wrong = chromium_dom(f"{base}#token=fpt_{'x' * 43}", tmp_path / "w")
    assert 'data-state="forbidden"' in wrong, wrong[:2000]
    for secret in ("acme", "globex", "rig-a1", "rig-g1", farm.txid):
        assert secret not in wrong
