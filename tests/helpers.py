"""Helpers shared by the unit, integration and end-to-end tests (one place; the pytest
config puts the repository on the path, so `from tests.helpers import ...` works anywhere).

- waiting for something outside the test process: `wait_until`;
- Stratum replies: `error_code`, `assert_accepted`, `assert_rejected`;
- which hashes a test wants: `Accept` predicates (`is_block`, `no_block`, `between`);
- configs: `listener_config` (one listener as the config file writes it) and
  `tenants_config` (the tenants a config seeds);
- databases: `seed_ledger` (the schema, the sites and the tenants a test needs);
- the browser the page tests drive: `chromium` (headless, with the flags every test uses).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: A test's choice of share: `accept(hash_value, network_target)`.
Accept = Callable[[int, int], bool]

#: Difficulties the stratum tests use: 3e-10 puts the share target at ~0.78 * 2**256 and
#: regtest's network target is ~0.5 * 2**256, so a share below the difficulty, an accepted
#: share and a block each take a few hashes.
TEST_DIFFICULTY = {"start": 3e-10, "min": 1e-11, "max": 16.0}

#: The tenants most test configs seed.
TENANTS = ("acme", "globex")


# --- waiting -------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    explain: Callable[[], str] = lambda: "",
    step: float = 0.02,
) -> None:
    """Poll `predicate` every `step` s until it holds; AssertionError (with `explain()`)
    after `timeout` s. For other processes and threads only: in-memory tests advance a
    Clock instead."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {explain()}")
        time.sleep(step)


# --- Stratum replies -----------------------------------------------------------------------


def error_code(reply: dict[str, Any]) -> int | None:
    """The reply's error code (None for a success), after checking the error's shape:
    `[code, message, null]`."""
    error = reply["error"]
    if error is None:
        return None
    assert isinstance(error, list) and len(error) == 3, f"error is not [code, msg, null]: {reply}"
    assert isinstance(error[1], str) and error[2] is None, reply
    return int(error[0])


def assert_rejected(reply: dict[str, Any], code: int) -> None:
    assert error_code(reply) == code, f"expected error {code}, got {reply}"
    assert reply["result"] in (None, False), reply


def assert_accepted(reply: dict[str, Any]) -> None:
    assert reply["result"] is True and reply["error"] is None, f"share not accepted: {reply}"


# --- which share ---------------------------------------------------------------------------


def is_block(value: int, network: int) -> bool:
    return value <= network


def no_block(value: int, network: int) -> bool:
    return value > network


def between(low: int, high: int) -> Accept:
    """Hashes in (low, high] that are no block."""
    return lambda value, network: low < value <= high and value > network


# --- configs -------------------------------------------------------------------------------


def listener_config(name: str = "main", **extra: Any) -> dict[str, Any]:
    """One listener as a config file writes it: localhost, any free port, the test
    difficulties, no vardiff; `extra` keys override or add."""
    return {
        "name": name,
        "bind": "127.0.0.1",
        "port": 0,
        "difficulty": dict(TEST_DIFFICULTY),
        "vardiff": {"enabled": False},
        **extra,
    }


def tenants_config(*names: str) -> list[dict[str, Any]]:
    """The `tenants:` list of a config (TENANTS when no names are given)."""
    return [{"name": name} for name in names or TENANTS]


# --- databases -------------------------------------------------------------------------------


def seed_ledger(url: str, sites: tuple[str, ...] = (), tenants: tuple[str, ...] = TENANTS) -> None:
    """Bring a database's schema to head and add the sites and (regtest) tenants."""
    from pool.ledger import admin, db

    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        for site in sites:
            admin.add_site(engine, site)
        for tenant in tenants:
            admin.add_tenant(engine, tenant, "regtest")
    finally:
        engine.dispose()


# --- the browser ---------------------------------------------------------------------------


def chromium(profile: Path) -> list[str]:
    """Headless Chromium's command line with its own profile; a failure under CI (bootstrap
    installs it), a skip elsewhere, when it is not installed."""
    import pytest

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/bootstrap installs it as root)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return [
        found, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        f"--user-data-dir={profile}", "--virtual-time-budget=8000",
    ]  # fmt: skip
