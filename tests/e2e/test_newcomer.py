"""A newcomer's first steps, as processes: a second `scripts/bootstrap` and `farmpool db
upgrade` print nothing but their outcome; a failed command leaves no database file behind and
`.gitignore` covers what a run does leave."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from pool.config import DEFAULT_CONFIG, Settings

REPO = Path(__file__).resolve().parents[2]
CLOSED_NODE = "http://u:p@127.0.0.1:9"  # the discard port: nothing answers RPC there


def farmpool(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pool", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_a_second_bootstrap_and_db_upgrade_print_no_noise(tmp_path: Path) -> None:
    subprocess.run(["scripts/bootstrap"], cwd=REPO, capture_output=True, check=True, timeout=900)
    again = subprocess.run(
        ["scripts/bootstrap"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert (again.stdout, again.stderr) == ("", ""), "nothing to install, so nothing to say"
    upgrade = farmpool(tmp_path, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stderr == "", "log lines at the default level"
    assert upgrade.stdout.splitlines() == [
        f"{Settings.database_url}: at {head_revision()} (up to date)"
    ]


def head_revision() -> str | None:
    from pool.ledger import db

    return db.head_revision(Settings.database_url)


def test_a_failed_command_leaves_no_database_behind(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    config = tmp_path / "pool.yaml"  # the defaults, with a node that is not there
    config.write_text(
        json.dumps({**DEFAULT_CONFIG, "node": {"url": CLOSED_NODE, "rpc_timeout_s": 2}})
    )
    nested = tmp_path / "nested.yaml"
    nested.write_text(json.dumps({**DEFAULT_CONFIG, "database_url": "sqlite:///db/pool.sqlite3"}))
    for args in (
        ["balances"],  # the embedded defaults
        ["-c", str(config), "blocks", "update"],
        ["-c", str(config), "serve", "--wait-node", "0"],
        ["-c", str(nested), "site", "list"],
    ):
        run = farmpool(work, *args)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert "create it with `farmpool db upgrade`" in run.stderr, (args, run.stderr)
        assert list(work.iterdir()) == [], (args, "left behind")


def test_gitignore_covers_what_farmpool_and_the_scripts_leave() -> None:
    database = make_url(Settings.database_url).database
    assert database
    left = [
        database,
        f"{database}-wal",
        f"{database}-shm",
        f"{database}.tracker.lock",
        f"{database}.payout.lock",
        f"{Settings.data_dir}/ledger-spool.jsonl",
        ".venv/bin/python",
        ".peers/bcoin/package.json",
        ".run/bcoin/bcoin.log",
        "farmpool.egg-info/PKG-INFO",
        "pool/__pycache__/cli.cpython-311.pyc",
    ]
    run = subprocess.run(
        ["git", "check-ignore", "--no-index", *left], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode in (0, 1), run.stderr  # 1: none ignored
    assert sorted(run.stdout.splitlines()) == sorted(left)
