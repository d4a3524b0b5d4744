"""A hand-computed month of hosting accounting, reproduced by `farmpool report` and the report
views exactly, on SQLite and PostgreSQL.

September 2026 at two sites: north (Europe/Berlin, UTC+2 all month; 0.10 EUR/kWh with a
0.15 band from 08:00 to 20:00 local; half the energy sold as heat at 0.04 EUR/kWh) and south
(UTC; 0.08 EUR/kWh flat, no heat), three tenants. Terms, contracts and meter readings go in
through the CLI; shares, blocks, credits and payouts (which the pool's other parts write) are
written straight into the ledger. Every expected figure is worked out in the comments.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from pool import cli
from pool.accounting import report
from pool.config import DEFAULT_CONFIG
from pool.ledger import db
from pool.ledger.models import (
    Block,
    Credit,
    EnergyHour,
    MeterReading,
    Node,
    Payout,
    PayoutItem,
    Share,
    ShareHour,
    ShareReject,
    Site,
    Tenant,
    Worker,
)

NORTH, SOUTH = 1, 2
#: acme at north: 2 x 3250 W declared (6.5 kW), hosting 50 EUR per kW per month, from a date.
ACME_NORTH_CONTRACT = (
    "contract", "set", "acme", "north", "--hosting", "kw_month", "--hosting-price", "50",
    "--machine", "S19:2:95:3250", "--valid-from",
)  # fmt: skip
ACME, GLOBEX, INITECH = 1, 2, 3


def utc(text_: str) -> datetime:
    return datetime.fromisoformat(text_).astimezone(UTC)


@pytest.fixture
def farm(db_url: str, tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    config = tmp_path / "farmpool.yaml"
    config.write_text(
        json.dumps({**DEFAULT_CONFIG, "database_url": db_url, "log_level": "warning"})
    )
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(Node), [{"id": 1, "name": "n1", "created_at": now}])
        conn.execute(
            insert(Site),
            [
                {"id": NORTH, "name": "north", "timezone": "Europe/Berlin", "created_at": now},
                {"id": SOUTH, "name": "south", "timezone": "UTC", "created_at": now},
            ],
        )
        conn.execute(
            insert(Tenant),
            [
                {"id": i, "name": n, "created_at": now, "active": True}
                for i, n in ((ACME, "acme"), (GLOBEX, "globex"), (INITECH, "initech"))
            ],
        )
        conn.execute(
            insert(Worker),
            [{"id": i, "tenant_id": i, "name": "rig", "created_at": now} for i in (1, 2, 3)],
        )
    try:
        yield config, engine
    finally:
        engine.dispose()


def run(config: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["-c", str(config), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def set_up_month(config: Path, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    def ok(*argv: str) -> None:
        code, out, err = run(config, capsys, *argv)
        assert code == 0, f"{argv}: {out}{err}"

    ok(
        "site",
        "set",
        "north",
        "--currency",
        "EUR",
        "--price",
        "0.10",
        "--band",
        "08:00-20:00=0.15",
        "--heat-factor",
        "0.5",
        "--heat-price",
        "0.04",
    )
    ok("site", "set", "south", "--currency", "EUR", "--price", "0.08")
    # acme at north: 2 x 3250 W declared (6.5 kW), hosting 50 EUR per kW per month.
    ok(*ACME_NORTH_CONTRACT, "2026-09-01")
    # initech at south: hosting 0.02 EUR per kWh, no fleet declared.
    ok(
        "contract",
        "set",
        "initech",
        "south",
        "--hosting",
        "kwh",
        "--hosting-price",
        "0.02",
        "--valid-from",
        "2026-09-01",
    )
    readings = config.parent / "september.csv"
    readings.write_text(
        "site,tenant,period_start,period_end,kwh\r\n"
        "north,acme,2026-09-10T00:00:00,2026-09-11T00:00:00,100\r\n"  # local time (Berlin)
        "north,globex,2026-09-05T00:00:00+02:00,2026-09-05T12:00:00+02:00,30.000\r\n"
        "south,initech,2026-09-01T00:00:00Z,2026-09-16T00:00:00Z,1000\r\n"
        "south,initech,2026-09-16T00:00:00Z,2026-10-01T00:00:00Z,1200.5\r\n"
    )
    ok("meter", "import", str(readings))

    seq = iter(range(1, 1000))

    def share(tenant: int, site: int, work: int, when: str) -> dict[str, Any]:
        n = next(seq)
        return {
            "id": 1 << 48 | n,
            "hash": n.to_bytes(32, "big"),
            "node_id": 1,
            "worker_id": tenant,
            "tenant_id": tenant,
            "site_id": site,
            "job_id": "1",
            "height": 1,
            "difficulty": work / 65536,
            "share_difficulty": work / 65536,
            "work": work,
            "is_block": False,
            "created_at": utc(when),
        }

    with engine.begin() as conn:
        conn.execute(
            insert(Share),
            [
                share(ACME, NORTH, 1000, "2026-09-02T10:00:00+00:00"),
                share(ACME, NORTH, 1000, "2026-09-02T10:01:00+00:00"),
                share(ACME, NORTH, 1000, "2026-09-02T10:02:00+00:00"),
                share(ACME, NORTH, 111, "2026-08-31T22:30:00+00:00"),  # Berlin: 1 Sep, 00:30
                share(ACME, SOUTH, 500, "2026-09-10T08:00:00+00:00"),
                share(ACME, SOUTH, 500, "2026-09-10T09:00:00+00:00"),
                *[share(GLOBEX, NORTH, 250, f"2026-09-05T0{i}:00:00+00:00") for i in range(4)],
                share(GLOBEX, NORTH, 777, "2026-09-30T22:30:00+00:00"),  # Berlin: 1 Oct: not here
                share(INITECH, SOUTH, 6000, "2026-09-30T23:30:00+00:00"),  # south is UTC: here
            ],
        )
        conn.execute(
            insert(ShareHour),
            [
                {
                    "worker_id": ACME,
                    "tenant_id": ACME,
                    "site_id": NORTH,
                    "hour": utc("2026-09-03T05:00:00+00:00"),
                    "shares": 10,
                    "work": 5000,
                    "best_share_difficulty": 1.0,
                }
            ],
        )
        conn.execute(
            insert(ShareReject),
            [
                {
                    "worker_id": ACME,
                    "site_id": NORTH,
                    "reason": "low-difficulty",
                    "hour": utc("2026-09-02T10:00:00+00:00"),
                    "count": 2,
                }
            ],
        )

        def block(
            i: int, tenant: int, site: int, when: str, status: str, matured: str | None
        ) -> Any:
            return {
                "id": i,
                "hash": f"{i:064x}",
                "height": i,
                "reward_sat": 312_500_000,
                "node_id": 1,
                "worker_id": tenant,
                "tenant_id": tenant,
                "site_id": site,
                "accepted": True,
                "status": status,
                "created_at": utc(when),
                "matured_at": utc(matured) if matured else None,
            }

        conn.execute(
            insert(Block),
            [
                block(
                    1,
                    ACME,
                    NORTH,
                    "2026-09-02T10:05:00+00:00",
                    "mature",
                    "2026-09-03T02:00:00+00:00",
                ),
                block(2, INITECH, SOUTH, "2026-09-20T12:00:00+00:00", "orphaned", None),
                block(3, GLOBEX, NORTH, "2026-09-30T22:30:00+00:00", "immature", None),
            ],
        )
        t = utc("2026-09-03T02:00:00+00:00")

        def credit(b: int, tenant: int, site: int, amount: int, fee: int, status: str) -> Any:
            return {
                "block_id": b,
                "tenant_id": tenant,
                "site_id": site,
                "kind": "pplns",
                "work": 1,
                "amount_sat": amount,
                "fee_sat": fee,
                "status": status,
                "created_at": t,
                "updated_at": t,
            }

        conn.execute(
            insert(Credit),
            [
                # Block 1 (312,500,000): 200M + 2M fee, 100M + 1M fee, 9,375,000 + 125,000 fee.
                credit(1, ACME, NORTH, 200_000_000, 2_000_000, "mature"),
                credit(1, GLOBEX, NORTH, 100_000_000, 1_000_000, "mature"),
                credit(1, INITECH, SOUTH, 9_375_000, 125_000, "mature"),
                credit(2, INITECH, SOUTH, 50_000_000, 0, "void"),  # orphaned
                credit(3, GLOBEX, NORTH, 40_000_000, 400_000, "immature"),  # found in October
            ],
        )
        conn.execute(
            insert(Payout),
            [
                {
                    "id": 1,
                    "txid": "aa" * 32,
                    "raw_hex": "00",
                    "total_sat": 250_000_000,
                    "fee_sat": 500,
                    "outputs": 2,
                    "status": "confirmed",
                    "created_at": utc("2026-09-25T12:00:00+00:00"),
                },
                {
                    "id": 2,
                    "txid": "bb" * 32,
                    "raw_hex": "00",
                    "total_sat": 50_000_000,
                    "fee_sat": 500,
                    "outputs": 1,
                    "status": "void",
                    "created_at": utc("2026-09-26T12:00:00+00:00"),
                },
            ],
        )
        conn.execute(
            insert(PayoutItem),
            [
                {
                    "payout_id": 1,
                    "tenant_id": ACME,
                    "site_id": NORTH,
                    "address": "a",
                    "amount_sat": 150_000_000,
                },
                {
                    "payout_id": 1,
                    "tenant_id": GLOBEX,
                    "site_id": NORTH,
                    "address": "g",
                    "amount_sat": 100_000_000,
                },
                {
                    "payout_id": 2,
                    "tenant_id": ACME,
                    "site_id": NORTH,
                    "address": "a",
                    "amount_sat": 50_000_000,
                },
            ],
        )


# acme at north. Energy: 10 Sep (local) is metered, 100 kWh over 24 hours: 4,167 Wh in the
# first 16 hours, 4,166 in the last 8 (largest remainder, ties to the earlier hour); the band
# hours 08-19 take 8 x 4,167 + 4 x 4,166 = 50,000 Wh at 0.15 (7.50) and the other 12 hours
# 50,000 Wh at 0.10 (5.00). The other 29 days are estimated from 6,500 W: 29 x 12 x 6.5 kWh
# = 2,262 kWh in the band (339.30) and 2,262 outside it (226.20). Energy 4,624 kWh (4,524
# estimated), cost 578.00. Heat: half, 2,312 kWh x 0.04 = 92.48. Hosting: 6.5 kW x 50 =
# 325.00 for the whole month. Net 92.48 - 578.00 - 325.00 = -810.52.
# Work: 3 x 1000 + 111 (1 Sep 00:30 Berlin) + 5000 (a compacted hour of 10 shares) = 8,111 in
# 14 shares; 2 rejects: 2 / 16 = 12.5 %. The pool's September work: 8,111 + 1,000 + 1,000 +
# 6,000 = 16,111 (globex's 777 falls on 1 Oct in Berlin); 8,111 / 16,111 = 50.3445 %.
# Hashrate: 8,111 x 65,536 / (720 h x 3,600 s) = 205.08 H/s = 0.000000 TH/s (6 decimals).
ACME_NORTH = {
    "site": "north",
    "tenant": "acme",
    "period": "2026-09",
    "currency": "EUR",
    "shares": 14,
    "work": 8111,
    "hashrate_ths": "0.000000",
    "pool_share_percent": "50.3445",
    "rejects": 2,
    "reject_percent": "12.5000",
    "blocks": 1,
    "credited_btc": "2.00000000",
    "matured_btc": "2.00000000",
    "paid_btc": "1.50000000",
    "pool_fee_btc": "0.02000000",
    "energy_kwh": "4624.000",
    "estimated_kwh": "4524.000",
    "energy_cost": "578.00",
    "hosting_fee": "325.00",
    "heat_kwh": "2312.000",
    "heat_revenue": "92.48",
    "net": "-810.52",
}
# globex at north: 30 kWh over 00:00-12:00 on 5 Sep, 2,500 Wh an hour: 4 band hours (10 kWh,
# 1.50) and 8 others (20 kWh, 2.00): 3.50. Heat 15 kWh x 0.04 = 0.60. Net -2.90. Its block of
# 30 Sep 22:30 UTC is 1 Oct in Berlin: not in September; its credit of block 1 is.
GLOBEX_NORTH = {
    "site": "north",
    "tenant": "globex",
    "period": "2026-09",
    "currency": "EUR",
    "shares": 4,
    "work": 1000,
    "hashrate_ths": "0.000000",
    "pool_share_percent": "6.2069",
    "rejects": 0,
    "reject_percent": "0.0000",
    "blocks": 0,
    "credited_btc": "1.00000000",
    "matured_btc": "1.00000000",
    "paid_btc": "1.00000000",
    "pool_fee_btc": "0.01000000",
    "energy_kwh": "30.000",
    "estimated_kwh": "0.000",
    "energy_cost": "3.50",
    "hosting_fee": "0.00",
    "heat_kwh": "15.000",
    "heat_revenue": "0.60",
    "net": "-2.90",
}
ACME_SOUTH = {
    "site": "south",
    "tenant": "acme",
    "period": "2026-09",
    "currency": "EUR",
    "shares": 2,
    "work": 1000,
    "hashrate_ths": "0.000000",
    "pool_share_percent": "6.2069",
    "rejects": 0,
    "reject_percent": "0.0000",
    "blocks": 0,
    "credited_btc": "0.00000000",
    "matured_btc": "0.00000000",
    "paid_btc": "0.00000000",
    "pool_fee_btc": "0.00000000",
    "energy_kwh": "0.000",
    "estimated_kwh": "0.000",
    "energy_cost": "0.00",
    "hosting_fee": "0.00",
    "heat_kwh": "0.000",
    "heat_revenue": "0.00",
    "net": "0.00",
}
# initech at south: 1,000 + 1,200.5 = 2,200.5 kWh x 0.08 = 176.04; hosting x 0.02 = 44.01;
# net -220.05. Its orphaned block counts as found; its void credit does not count.
INITECH_SOUTH = {
    "site": "south",
    "tenant": "initech",
    "period": "2026-09",
    "currency": "EUR",
    "shares": 1,
    "work": 6000,
    "hashrate_ths": "0.000000",
    "pool_share_percent": "37.2416",
    "rejects": 0,
    "reject_percent": "0.0000",
    "blocks": 1,
    "credited_btc": "0.09375000",
    "matured_btc": "0.09375000",
    "paid_btc": "0.00000000",
    "pool_fee_btc": "0.00125000",
    "energy_kwh": "2200.500",
    "estimated_kwh": "0.000",
    "energy_cost": "176.04",
    "hosting_fee": "44.01",
    "heat_kwh": "0.000",
    "heat_revenue": "0.00",
    "net": "-220.05",
}


def test_the_month_is_reproduced_exactly_and_the_totals_reconcile(
    farm: tuple[Path, Engine], capsys: pytest.CaptureFixture[str]
) -> None:
    config, engine = farm
    set_up_month(config, engine, capsys)
    code, out, err = run(
        config, capsys, "report", "tenant", "--period", "2026-09", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out) == [ACME_NORTH, GLOBEX_NORTH, ACME_SOUTH, INITECH_SOUTH]

    code, out, err = run(
        config, capsys, "report", "site", "--period", "2026-09", "--format", "json"
    )
    assert code == 0, err
    north, south = json.loads(out)
    # The site rows are the sums of their tenant rows (cents included).
    assert north == {
        "site": "north",
        "period": "2026-09",
        "currency": "EUR",
        "shares": 18,
        "work": 9111,
        "hashrate_ths": "0.000000",
        "pool_share_percent": "56.5514",
        "rejects": 2,
        "reject_percent": "10.0000",
        "blocks": 1,
        "credited_btc": "3.00000000",
        "matured_btc": "3.00000000",
        "paid_btc": "2.50000000",
        "pool_fee_btc": "0.03000000",
        "energy_kwh": "4654.000",
        "estimated_kwh": "4524.000",
        "energy_cost": "581.50",
        "hosting_fee": "325.00",
        "heat_kwh": "2327.000",
        "heat_revenue": "93.08",
        "net": "-813.42",
    }
    assert south["work"] == 7000 and south["energy_cost"] == "176.04" and south["net"] == "-220.05"
    code, out, err = run(
        config, capsys, "report", "pool", "--period", "2026-09", "--format", "json"
    )
    assert code == 0, err
    [pool] = json.loads(out)
    assert pool == {
        "period": "2026-09",
        "currency": "EUR",
        "shares": 21,
        "work": 16111,
        "hashrate_ths": "0.000000",
        "pool_share_percent": "100.0000",
        "rejects": 2,
        "reject_percent": "8.6957",
        "blocks": 2,
        "credited_btc": "3.09375000",
        "matured_btc": "3.09375000",
        "paid_btc": "2.50000000",
        "pool_fee_btc": "0.03125000",
        "energy_kwh": "6854.500",
        "estimated_kwh": "4524.000",
        "energy_cost": "757.54",
        "hosting_fee": "369.01",
        "heat_kwh": "2327.000",
        "heat_revenue": "93.08",
        "net": "-1033.47",
    }

    # The views say the same, in integers.
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT site, tenant, work, credited_sat, energy_cost_cents, hosting_fee_cents, "
                "heat_revenue_cents, net_cents, wh_metered, wh_estimated "
                "FROM report_tenant_site_month WHERE period = '2026-09' ORDER BY site, tenant"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("north", "acme", 8111, 200_000_000, 57800, 32500, 9248, -81052, 100_000, 4_524_000),
        ("north", "globex", 1000, 100_000_000, 350, 0, 60, -290, 30_000, 0),
        ("south", "acme", 1000, 0, 0, 0, 0, 0, 0, 0),
        ("south", "initech", 6000, 9_375_000, 17604, 4401, 0, -22005, 2_200_500, 0),
    ]
    # One tenant, one site, as CSV that a spreadsheet opens (RFC 4180: CRLF, a header).
    code, out, err = run(
        config,
        capsys,
        "report",
        "tenant",
        "--period",
        "2026-09",
        "--site",
        "north",
        "--tenant",
        "acme",
        "--format",
        "csv",
    )
    assert code == 0, err
    assert out.endswith("\r\n") and "\r\n" in out.split("\r\n", 1)[0] + "\r\n"
    parsed = list(csv.DictReader(io.StringIO(out, newline="")))
    assert parsed == [{k: str(v) for k, v in ACME_NORTH.items()}]
    # A day in the site's time zone: 10 Sep at north is the metered day.
    code, out, err = run(
        config,
        capsys,
        "report",
        "tenant",
        "--period",
        "2026-09-10",
        "--site",
        "north",
        "--tenant",
        "acme",
        "--format",
        "json",
    )
    assert code == 0, err
    [day] = json.loads(out)
    assert (day["energy_kwh"], day["estimated_kwh"], day["energy_cost"]) == (
        "100.000",
        "0.000",
        "12.50",
    )
    # 325.00 / 30 days; each hour 451,388,888 or ...889 nano: the day's 24 hours.
    assert day["hosting_fee"] == "10.83"
    # A period with nothing in it: CSV is still a header row.
    code, out, err = run(config, capsys, "report", "pool", "--period", "2026-01", "--format", "csv")
    assert code == 0, err
    assert out == "period,currency," + ",".join(report.FIGURES) + "\r\n"


def test_a_bad_meter_file_is_refused_with_line_numbers_and_nothing_is_written(
    farm: tuple[Path, Engine], capsys: pytest.CaptureFixture[str]
) -> None:
    config, engine = farm
    good = config.parent / "good.csv"
    good.write_text(
        "site,tenant,period_start,period_end,kwh\n"
        "north,acme,2026-09-01T00:00:00Z,2026-09-02T00:00:00Z,10\n"
    )
    assert run(config, capsys, "meter", "import", str(good))[0] == 0
    bad = config.parent / "bad.csv"
    bad.write_text(
        "site,tenant,period_start,period_end,kwh\n"
        "north,acme,2026-09-03T00:00:00Z,2026-09-04T00:00:00Z,5\n"  # fine on its own
        "east,acme,2026-09-03T00:00:00Z,2026-09-04T00:00:00Z,5\n"  # 3: no such site
        "north,acme,2026-09-05T00:00:00Z,2026-09-04T00:00:00Z,5\n"  # 4: ends before it starts
        "north,globex,2026-09-05T00:00:00Z,2026-09-06T00:00:00Z,1.2345\n"  # 5: 4 decimals
        "north,acme,yesterday,2026-09-06T00:00:00Z,5\n"  # 6: not a time
        "north,acme,2026-09-01T12:00:00Z,2026-09-01T13:00:00Z,1\n"  # 7: overlaps good.csv
        "north,acme,2026-09-03T12:00:00Z,2026-09-03T13:00:00Z,1\n"  # 8: overlaps line 2
        "south,acme,2026-09-03T00:00:00Z,2026-09-04T00:00:00Z,-1\n"  # 9: negative
    )
    code, _, err = run(config, capsys, "meter", "import", str(bad))
    assert code == 2
    for line, words in [
        (3, "site 'east' does not exist"),
        (4, "period_end must be after period_start"),
        (5, "more than 3 decimals"),
        (6, "not an ISO 8601 time"),
        (7, "overlaps a reading already imported (good.csv:2)"),
        (8, "overlaps the reading on line 2"),
        (9, "is not a number of kWh"),
    ]:
        assert f"bad.csv:{line}: " in err and words in err, (line, words, err)
    assert "nothing imported" in err
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MeterReading)).scalar() == 1
        assert conn.execute(select(func.sum(EnergyHour.wh_metered))).scalar() == 10_000
    # Not CSV at all, and the wrong columns.
    junk = config.parent / "junk.csv"
    junk.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run(config, capsys, "meter", "import", str(junk))
    assert code == 2 and "not UTF-8" in err
    junk.write_text("when,kwh\n2026-09-01,5\n")
    code, _, err = run(config, capsys, "meter", "import", str(junk))
    assert code == 2 and "junk.csv:1: the header must name the columns" in err


def test_a_local_time_in_the_spring_forward_gap_is_refused_naming_the_gap(
    farm: tuple[Path, Engine], capsys: pytest.CaptureFixture[str]
) -> None:
    """Berlin's clocks jump from 02:00 to 03:00 on 29 March 2026: 02:30 local never happens.
    Read as a time anyway it became 01:30 UTC, which put a reading 02:30-03:00 (03:00 is 01:00
    UTC) "after its end", and let a reading 02:15-02:45 in as 01:15-01:45 UTC."""
    config, engine = farm
    gap = config.parent / "gap.csv"
    gap.write_text(
        "site,tenant,period_start,period_end,kwh\n"
        "north,acme,2026-03-29T02:30:00,2026-03-29T03:00:00,1\n"  # 2: starts in the gap
        "north,globex,2026-03-29T02:15:00,2026-03-29T02:45:00,1\n"  # 3: wholly in it
        "north,initech,2026-03-29T01:00:00,2026-03-29T03:00:00,1\n"  # 4: fine (1 h of UTC)
        "south,acme,2026-03-29T02:30:00,2026-03-29T03:00:00,1\n"  # 5: fine (UTC has no gap)
    )
    code, _, err = run(config, capsys, "meter", "import", str(gap))
    assert code == 2, err
    assert "must be after" not in err, err
    for line, key in ((2, "period_start"), (3, "period_start"), (3, "period_end")):
        assert (
            f"gap.csv:{line}: {key} '2026-03-29T02:" in err
            and "does not exist in Europe/Berlin" in err
            and "02:00 to 03:00" in err
        ), (line, key, err)
    assert "gap.csv:4" not in err and "gap.csv:5" not in err, err
    assert "3 problem(s)" in err, err
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MeterReading)).scalar() == 0
    # With an offset the instant is unambiguous, and the file goes in.
    gap.write_text(
        "site,tenant,period_start,period_end,kwh\n"
        "north,acme,2026-03-29T01:30:00+01:00,2026-03-29T03:00:00,1\n"
    )
    assert run(config, capsys, "meter", "import", str(gap))[0] == 0


def test_the_kw_month_fee_is_exact_over_a_month_of_745_hours(
    farm: tuple[Path, Engine], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = farm
    for argv in (
        ("site", "set", "north", "--price", "0.10"),
        (*ACME_NORTH_CONTRACT, "2026-10-01"),
    ):
        assert run(config, capsys, *argv)[0] == 0
    code, out, err = run(
        config, capsys, "report", "tenant", "--period", "2026-10", "--format", "json"
    )
    assert code == 0, err
    [row] = json.loads(out)
    # October in Berlin has 745 hours (the clocks go back on the 25th): 745 x 6.5 kWh =
    # 4,842.5 kWh estimated, x 0.10 = 484.25; the kW fee is 6.5 x 50 = 325.00 all the same.
    assert (row["estimated_kwh"], row["energy_cost"], row["hosting_fee"]) == (
        "4842.500",
        "484.25",
        "325.00",
    )
    code, out, _ = run(
        config, capsys, "report", "tenant", "--period", "2026-10", "--format", "table"
    )
    assert code == 0 and "hosting_fee" in out and "325.00" in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("site", "set", "east", "--price", "1"), "no site 'east'"),
        (("site", "set", "north", "--band", "08:00-20:00=0.2"), "--price"),
        (("site", "set", "north", "--heat-factor", "2"), "--heat-factor"),
        (("site", "set", "north", "--currency", "euro"), "--currency"),
        (("site", "set", "north", "--price", "0.1", "--band", "8-20=1"), "HH:00"),
        (("contract", "set", "nobody", "north"), "no tenant 'nobody'"),
        (("contract", "set", "acme", "north", "--hosting", "kwh"), "--hosting-price"),
        (("contract", "set", "acme", "north", "--machine", "S19:x:95:3250"), "count"),
        (("contract", "set", "acme", "north", "--valid-from", "1 May"), "--valid-from"),
        (("report", "tenant", "--period", "2026-13"), "--period"),
        (("report", "pool", "--period", "2026-09", "--site", "north"), "--site"),
        (("meter", "import", "/nonexistent.csv"), "cannot read it"),
    ],
)
def test_bad_input_exits_2_and_names_what_is_wrong(
    farm: tuple[Path, Engine],
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    words: str,
) -> None:
    config, engine = farm
    code, _, err = run(config, capsys, *argv)
    assert code == 2, err
    assert words in err, err
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM contracts")).scalar() == 0
        assert conn.execute(text("SELECT tariff FROM sites WHERE name = 'north'")).scalar() is None
