"""The accountants' SQL views, as the migrations create them (one text for SQLite and
PostgreSQL but for the hour floor of a timestamp).

Where it sits: the report side. `report_tenant_site_day` and `report_tenant_site_month` have
one row per tenant, site and local period (the site's calendar, `site_hours`); the site and
pool views add those rows up, so every total is the sum of the tenant rows, to the satoshi and
to the cent. `farmpool report` reads these views; docs/accounting.md documents each column.

Money columns: satoshis (integers) and cents (integers): each tenant row's fiat sums (exact,
in 1e-9 of the currency) are rounded half up to the cent once; site and pool rows add up the
rounded tenant rows. Energy in Wh, heat in micro-Wh thermal (integers).
"""

from __future__ import annotations

from pool.ledger.dialect import hour_floor_sql

PERIODS = {"day": "local_day", "month": "local_month"}

#: The views, in the order they are created (dropped in reverse).
VIEW_NAMES = [
    f"report_{level}_{period}" for period in PERIODS for level in ("tenant_site", "site", "pool")
]

#: The integer facts each source contributes to a tenant row (0 where it has none).
FACTS = [
    "shares",
    "work",
    "rejects",
    "blocks",
    "credited_sat",
    "fee_sat",
    "matured_sat",
    "paid_sat",
    "wh_metered",
    "wh_estimated",
    "cost_nano",
    "heat_uwh",
    "heat_nano",
    "hosting_nano",
]

#: The fiat facts (nano-units), rounded to cents per tenant row.
NANO = ("cost_nano", "heat_nano", "hosting_nano")

#: Integer columns the site and pool views add up.
SUMMED = [name for name in FACTS if name not in NANO] + [
    "energy_cost_cents",
    "heat_revenue_cents",
    "hosting_fee_cents",
    "net_cents",
]


def _cents(column: str) -> str:
    """Nano-units summed, rounded half up to the cent (amounts are never negative)."""
    return f"(CAST(SUM({column}) AS BIGINT) + 5000000) / 10000000"


def tenant_site_view(dialect: str, period: str) -> str:
    col = PERIODS[period]

    def hour(column: str) -> str:
        return hour_floor_sql(dialect, column)

    zeros = {name: "0" for name in FACTS}

    def fact(select_from: str, **values: str) -> str:
        cols = ", ".join(f"{values.get(name, zero)} AS {name}" for name, zero in zeros.items())
        return f"SELECT site_id, tenant_id, period, {cols} FROM {select_from}"

    facts = [
        fact(
            f"(SELECT s.site_id, s.tenant_id, c.{col} AS period, s.work FROM shares s "
            f"JOIN site_hours c ON c.site_id = s.site_id AND c.hour = {hour('s.created_at')}) x",
            shares="1",
            work="work",
        ),
        fact(
            f"(SELECT h.site_id, h.tenant_id, c.{col} AS period, h.shares, h.work "
            "FROM share_hours h JOIN site_hours c ON c.site_id = h.site_id AND c.hour = h.hour) x",
            shares="shares",
            work="work",
        ),
        fact(
            f"(SELECT r.site_id, w.tenant_id, c.{col} AS period, r.count FROM share_rejects r "
            "JOIN workers w ON w.id = r.worker_id "
            "JOIN site_hours c ON c.site_id = r.site_id AND c.hour = r.hour) x",
            rejects="count",
        ),
        fact(
            f"(SELECT b.site_id, b.tenant_id, c.{col} AS period FROM blocks b "
            f"JOIN site_hours c ON c.site_id = b.site_id AND c.hour = {hour('b.created_at')} "
            "WHERE b.status <> 'rejected') x",
            blocks="1",
        ),
        # Credited: a block's credits in the period the block was found (unless void); PPS
        # credits when they were credited.
        fact(
            f"(SELECT k.site_id, k.tenant_id, c.{col} AS period, k.amount_sat, k.fee_sat "
            "FROM credits k JOIN blocks b ON b.id = k.block_id "
            f"JOIN site_hours c ON c.site_id = k.site_id AND c.hour = {hour('b.created_at')} "
            "WHERE k.tenant_id IS NOT NULL AND k.status <> 'void') x",
            credited_sat="amount_sat",
            fee_sat="fee_sat",
        ),
        fact(
            f"(SELECT k.site_id, k.tenant_id, c.{col} AS period, k.amount_sat, k.fee_sat "
            "FROM credits k JOIN pps_accruals a ON a.id = k.accrual_id "
            f"JOIN site_hours c ON c.site_id = k.site_id AND c.hour = {hour('a.created_at')} "
            "WHERE k.tenant_id IS NOT NULL) x",
            credited_sat="amount_sat",
            fee_sat="fee_sat",
            matured_sat="amount_sat",
        ),
        # Matured: a block's credits in the period the block matured.
        fact(
            f"(SELECT k.site_id, k.tenant_id, c.{col} AS period, k.amount_sat "
            "FROM credits k JOIN blocks b ON b.id = k.block_id "
            f"JOIN site_hours c ON c.site_id = k.site_id AND c.hour = {hour('b.matured_at')} "
            "WHERE k.tenant_id IS NOT NULL AND k.status = 'mature') x",
            matured_sat="amount_sat",
        ),
        # Paid: payout items of live payouts, in the period the payout was recorded.
        fact(
            f"(SELECT i.site_id, i.tenant_id, c.{col} AS period, i.amount_sat "
            "FROM payout_items i JOIN payouts p ON p.id = i.payout_id "
            f"JOIN site_hours c ON c.site_id = i.site_id AND c.hour = {hour('p.created_at')} "
            "WHERE p.status IN ('signed', 'sent', 'confirmed')) x",
            paid_sat="amount_sat",
        ),
        fact(
            f"(SELECT site_id, tenant_id, {col} AS period, wh_metered, wh_estimated, "
            "cost_nano, heat_uwh, heat_nano, hosting_nano FROM energy_hours) x",
            wh_metered="wh_metered",
            wh_estimated="wh_estimated",
            cost_nano="cost_nano",
            heat_uwh="heat_uwh",
            heat_nano="heat_nano",
            hosting_nano="hosting_nano",
        ),
    ]
    union = "\n  UNION ALL\n  ".join(facts)
    sums = ",\n  ".join(
        f"CAST(SUM(f.{name}) AS BIGINT) AS {name}" for name in FACTS if name not in NANO
    )
    energy, heat, hosting = _cents("f.cost_nano"), _cents("f.heat_nano"), _cents("f.hosting_nano")
    return f"""SELECT f.site_id, s.name AS site, f.tenant_id, t.name AS tenant,
  f.period, s.currency,
  {sums},
  {energy} AS energy_cost_cents,
  {heat} AS heat_revenue_cents,
  {hosting} AS hosting_fee_cents,
  {heat} - {energy} - {hosting} AS net_cents,
  (SELECT COUNT(*) FROM site_hours n WHERE n.site_id = f.site_id AND n.{col} = f.period)
    * 3600 AS seconds
FROM (
  {union}
) f
JOIN sites s ON s.id = f.site_id
JOIN tenants t ON t.id = f.tenant_id
GROUP BY f.site_id, s.name, f.tenant_id, t.name, f.period, s.currency"""


def site_view(period: str) -> str:
    sums = ", ".join(f"CAST(SUM({name}) AS BIGINT) AS {name}" for name in SUMMED)
    return (
        f"SELECT site_id, site, period, currency, {sums}, MAX(seconds) AS seconds "
        f"FROM report_tenant_site_{period} GROUP BY site_id, site, period, currency"
    )


def pool_view(period: str) -> str:
    sums = ", ".join(f"CAST(SUM({name}) AS BIGINT) AS {name}" for name in SUMMED)
    return (
        f"SELECT period, currency, {sums} FROM report_tenant_site_{period} "
        "GROUP BY period, currency"
    )


def create_statements(dialect: str) -> list[str]:
    out = []
    for period in PERIODS:
        out.append(
            f"CREATE VIEW report_tenant_site_{period} AS\n{tenant_site_view(dialect, period)}"
        )
        out.append(f"CREATE VIEW report_site_{period} AS\n{site_view(period)}")
        out.append(f"CREATE VIEW report_pool_{period} AS\n{pool_view(period)}")
    return out


def drop_statements() -> list[str]:
    return [f"DROP VIEW IF EXISTS {name}" for name in reversed(VIEW_NAMES)]
