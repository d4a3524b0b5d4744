"""The alert watches (pool/alerts/watch.py) and the node's alerts on a Clock: which events,
when, and only once per episode."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from pool.alerts.service import Alerts
from pool.alerts.watch import Flag, HashrateWatch, WorkerWatch
from pool.config import AlertSettings, ConfigError, settings_from_mapping
from tests.unit.stratum_harness import ADDRESS


def kinds(events: list[Any]) -> list[str]:
    return [e.kind for e in events]


def test_a_worker_is_down_once_per_episode_and_back_up_with_its_next_share() -> None:
    watch = WorkerWatch(lambda tenant: 60.0)
    for t in range(0, 50, 5):
        assert watch.share("acme", "rig1", float(t)) is None
    assert watch.check(45 + 59) == [] and watch.state("acme", "rig1") == "up"
    (down,) = watch.check(45 + 61)
    assert (down.kind, down.tenant, down.subject) == ("worker_down", "acme", "acme.rig1")
    assert down.data["silent_s"] == 61 and down.data["usual_interval_s"] == 5
    assert watch.check(45 + 600) == []  # one alert per episode
    assert watch.state("acme", "rig1") == "down"
    up = watch.share("acme", "rig1", 45 + 700)
    assert up is not None and up.kind == "worker_up" and up.data["down_s"] == 639
    assert watch.state("acme", "rig1") == "up" and watch.check(45 + 701) == []


def test_a_slow_worker_gets_three_of_its_intervals_and_tenants_their_own_limit() -> None:
    limits = {"acme": 60.0, "globex": 600.0}
    watch = WorkerWatch(limits.__getitem__)
    for t in (0, 100, 200, 300):  # a share every 100 s: 3 intervals is more than 60 s
        watch.share("acme", "slow", float(t))
        watch.share("globex", "rig", float(t))
    assert watch.check(300 + 299) == []
    assert kinds(watch.check(300 + 301)) == ["worker_down"]  # acme.slow, at 300 s
    assert [e.subject for e in watch.check(300 + 601)] == ["globex.rig"]


def test_hashrate_drop_and_recovery_against_the_tenants_own_baseline() -> None:
    watch = HashrateWatch(fraction=0.5, window_s=600, baseline_s=3600)
    work, t, events = 0.0, 0.0, []
    for _ in range(60):  # an hour at 10 difficulty units a second
        work += 600
        t += 60
        events += watch.sample({"acme": work}, t)
    assert events == []
    for _ in range(10):  # ten minutes at 4 a second: below half
        work += 240
        t += 60
        events += watch.sample({"acme": work}, t)
    assert kinds(events) == ["hashrate_drop"]
    assert events[0].data["baseline_hs"] == 10 * 2**32 and events[0].tenant == "acme"
    for _ in range(5):  # still low: told once
        work += 240
        t += 60
        assert watch.sample({"acme": work}, t) == []
    back = []
    for _ in range(12):
        work += 600
        t += 60
        back += watch.sample({"acme": work}, t)
    assert kinds(back) == ["hashrate_recovered"]


def test_no_hashrate_verdict_before_a_baseline_exists() -> None:
    watch = HashrateWatch(fraction=0.5, window_s=600, baseline_s=3600)
    assert watch.sample({"acme": 0.0}, 0.0) == []
    assert watch.sample({"acme": 1.0}, 1800.0) == []  # a new tenant, mostly idle


def test_a_flag_tells_after_its_delay_and_when_it_is_back() -> None:
    flag = Flag("node_unreachable", "node_reachable", "node", after_s=30)
    assert flag.check(False, "refused", now=0) is None
    assert flag.check(False, now=29) is None
    bad = flag.check(False, "refused", now=31)
    assert bad is not None and bad.kind == "node_unreachable" and bad.data["why"] == "refused"
    assert flag.check(False, now=90) is None
    good = flag.check(True, now=95)
    assert good is not None and good.kind == "node_reachable"
    assert flag.check(True, now=96) is None
    blip = Flag("node_unreachable", "node_reachable", "node", after_s=30)
    assert blip.check(False, now=0) is None and blip.check(True, now=10) is None  # no episode


def test_the_nodes_alerts_on_a_clock_never_stop_and_count_each_kind() -> None:
    clock = Clock()
    alerts = Alerts(AlertSettings(node_down_after_s=5), "node-a", None, clock, clock=clock.seconds)
    node = {"ok": True}
    alerts.node_ok = lambda: (node["ok"], "" if node["ok"] else "connection refused")
    db = {"ok": True}
    alerts.ledger_ok = lambda: db["ok"]

    def broken() -> dict[str, float]:
        raise ValueError("a bug in a source")

    alerts.start()
    clock.advance(1)
    node["ok"] = db["ok"] = False
    for _ in range(7):
        clock.advance(1)
    assert alerts.stats["node_unreachable"] == 1 and alerts.stats["ledger_spooling"] == 1
    node["ok"] = db["ok"] = True
    alerts.work_by_tenant = broken  # one pass fails: logged, the next one runs
    clock.advance(61)
    assert alerts.stats["errors"] >= 1 and alerts._loop is not None and alerts._loop.running
    assert alerts.stats["node_reachable"] == 1 and alerts.stats["ledger_recovered"] == 1
    alerts.stop()


def base(alerts: dict[str, Any]) -> dict[str, Any]:
    return {"pool": {"payout_address": ADDRESS}, "tenants": [{"name": "acme"}], "alerts": alerts}


def test_alert_settings_are_checked_by_name() -> None:
    settings = settings_from_mapping(
        base(
            {
                "worker_down_after_s": 300,
                "tenants": {"acme": {"worker_down_after_s": 120}},
                "webhooks": [
                    {"url": "https://ops.example/hook", "kinds": ["worker_down"], "secret": "s"}
                ],
            }
        )
    )
    assert settings.alerts.down_after("acme") == 120 and settings.alerts.down_after("x") == 300
    assert settings.alerts.webhooks[0].kinds == ("worker_down",)
    for alerts, where in [
        ({"webhooks": [{"url": "ftp://x/"}]}, r"alerts.webhooks\[0\].url"),
        (
            {"webhooks": [{"url": "http://x/", "kinds": ["nope"]}]},
            r"alerts.webhooks\[0\].kinds\[0\]",
        ),
        ({"webhooks": "http://x/"}, "alerts.webhooks"),
        ({"worker_down_after_s": 0}, "alerts.worker_down_after_s"),
        ({"hashrate_window_s": 600, "hashrate_baseline_s": 300}, "alerts.hashrate_baseline_s"),
        ({"tenants": {"acme": {"worker_down": 5}}}, "alerts.tenants.acme.worker_down"),
    ]:
        with pytest.raises(ConfigError, match=where):
            settings_from_mapping(base(alerts))
