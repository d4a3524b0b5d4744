"""A third-party miner library against the server: the npm package `stratum-client` 1.1.0.

It is installed with npm into ``<repo>/.peers/npm-clients`` (gitignored, reused when the
right version is there; an install failure fails the test). A small node script connects
with it, subscribes and authorizes, and prints every callback as a JSON line. The library
sends string ids ("mining.subscribe", "mining.authorize") and parses each TCP chunk line by
line, as it does against any pool.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.farmpool_serve import REPO, ServeProcess

PACKAGE = "stratum-client"
VERSION = "1.1.0"
CLIENTS_DIR = REPO / ".peers" / "npm-clients"
START = 3e-10

SCRIPT = r"""
const path = require('path');
const [modules, port, worker] = process.argv.slice(2);
const stratum = require(path.join(modules, 'stratum-client'));
const out = (kind, data) =>
  console.log(JSON.stringify({ kind, data: data === undefined ? null : data }));
const timer = setTimeout(() => { out('timeout'); process.exit(3); }, 10000);
let handle = null;
const done = (code) => { clearTimeout(timer); if (handle) handle.shutdown(); process.exit(code); };
handle = stratum({
  server: '127.0.0.1',
  port: Number(port),
  worker,
  password: 'x',
  autoReconnectOnError: false,
  onConnect: () => out('connect'),
  onClose: () => out('close'),
  onError: (error) => { out('error', String(error && error.message)); done(4); },
  onSubscribe: (data) => out('subscribe', data),
  onAuthorizeSuccess: (error, result) => out('authorize', { error, result }),
  onAuthorizeFail: (error, result) => { out('authorize', { error, result }); done(0); },
  onNewDifficulty: (difficulty) => out('difficulty', difficulty),
  onNewMiningWork: (work) => { out('work', work); done(0); },
});
"""


def install_stratum_client() -> Path:
    """npm install stratum-client@1.1.0 into the cache folder unless it is there already."""
    modules = CLIENTS_DIR / "node_modules"
    manifest = modules / PACKAGE / "package.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("version") == VERSION:
        return modules
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: it is needed for the stratum-client test")
    CLIENTS_DIR.mkdir(parents=True, exist_ok=True)
    package_json = CLIENTS_DIR / "package.json"
    if not package_json.exists():
        package_json.write_text('{"name": "farmpool-npm-clients", "private": true}\n')
    run = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", f"{PACKAGE}@{VERSION}"],
        cwd=CLIENTS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if run.returncode != 0 or not manifest.exists():
        pytest.fail(f"npm install {PACKAGE}@{VERSION} failed:\n{run.stdout}\n{run.stderr}")
    assert json.loads(manifest.read_text())["version"] == VERSION
    return modules


@pytest.fixture(scope="module")
def modules() -> Path:
    return install_stratum_client()


@pytest.fixture(scope="module")
def server(
    bcoin_config: dict[str, Any], serve_factory: Callable[[dict[str, Any]], ServeProcess]
) -> ServeProcess:
    config = bcoin_config
    config["listeners"] = [
        {
            "name": "cpu",
            "bind": "127.0.0.1",
            "port": 0,
            "difficulty": {"start": START, "min": 1e-11, "max": 16},
        }
    ]
    return serve_factory(config)


def run_client(
    modules: Path, server: ServeProcess, worker: str, tmp_path: Path
) -> tuple[int, list[dict[str, Any]]]:
    node = shutil.which("node")
    assert node is not None, "node is not installed"
    script = tmp_path / "stratum_client_run.js"
    script.write_text(SCRIPT)
    run = subprocess.run(
        [node, str(script), str(modules), str(server.port("cpu")), worker],
        capture_output=True,
        text=True,
        timeout=30,
    )
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert not run.stderr.strip() or "EBADENGINE" in run.stderr, run.stderr
    return run.returncode, events


def test_stratum_client_subscribes_authorizes_and_gets_the_current_job(
    modules: Path, server: ServeProcess, tmp_path: Path
) -> None:
    code, events = run_client(modules, server, "acme.npm1", tmp_path)
    kinds = [e["kind"] for e in events]
    assert code == 0, f"{events}\n{server.log_tail()}"
    assert kinds[:2] == ["connect", "subscribe"], events
    subscribe = events[1]["data"]
    assert len(subscribe["extraNonce1"]) == 8 and bytes.fromhex(subscribe["extraNonce1"])
    assert subscribe["extraNonce2Size"] == 4
    authorize = next(e["data"] for e in events if e["kind"] == "authorize")
    assert authorize == {"error": None, "result": True}
    assert [e["data"] for e in events if e["kind"] == "difficulty"] == [START]
    work = next(e["data"] for e in events if e["kind"] == "work")
    current = server.jobs()[-1]
    assert work["jobId"] == current["job_id"]
    assert work["clean_jobs"] is True
    assert work["extraNonce1"] == subscribe["extraNonce1"]
    assert work["miningDiff"] == START
    assert len(work["prevhash"]) == 64 and len(work["nbits"]) == 8
    assert kinds.index("authorize") < kinds.index("difficulty") < kinds.index("work")


def test_stratum_client_unknown_tenant_fails_to_authorize(
    modules: Path, server: ServeProcess, tmp_path: Path
) -> None:
    code, events = run_client(modules, server, "nobody.npm1", tmp_path)
    assert code == 0, events
    authorize = next(e["data"] for e in events if e["kind"] == "authorize")
    assert authorize["result"] is False
    assert authorize["error"][0] == 24
    assert "work" not in [e["kind"] for e in events]
