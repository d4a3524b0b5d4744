"""A tenant's page at /tenant: its workers (up or down), hashrate per site, balance, payouts
with txids, this month's statement and its recent events, from the /api/tenant endpoints with
the tenant's token (from the URL fragment `#token=...` or the form shown on 401/403). Same
style as the operator's dashboard; nothing but the token's tenant is ever requested. The body
carries `data-state` (ok, forbidden, token-needed), `data-workers`, `data-points` and
`data-series` for the Chromium test."""

from pool.api.dashboard import COMMON_JS, LOGIN, STYLE

TENANT_PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>farmpool: tenant</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
"""
    + STYLE
    + """</head>
<body data-points="0" data-series="0" data-workers="0" data-state="loading">
<h1>farmpool <small id="who"></small></h1>
"""
    + LOGIN
    + """<div class="data">
<h2>Balance</h2><table id="balance"><thead><tr><th>immature</th><th>mature</th><th>paid</th><th>owed</th><th>paid above</th></tr></thead><tbody></tbody></table>
<h2>Hashrate per site</h2>
<canvas id="chart" width="900" height="260"></canvas><div id="legend"></div>
<h2>Workers</h2><table id="workers"><thead><tr><th>worker</th><th>state</th><th>5 min</th><th>1 h</th><th>24 h</th><th>last share</th><th>rejects</th></tr></thead><tbody></tbody></table>
<h2>Payouts</h2><table id="payouts"><thead><tr><th>when</th><th>txid</th><th>amount</th><th>status</th></tr></thead><tbody></tbody></table>
<h2>This month</h2><table id="statement"><thead><tr><th>site</th><th>shares</th><th>hashrate</th><th>credited</th><th>paid</th><th>energy</th><th>energy cost</th><th>hosting</th><th>heat revenue</th><th>net</th></tr></thead><tbody></tbody></table>
<h2>Events</h2><table id="events"><thead><tr><th>when</th><th>what</th><th>about</th></tr></thead><tbody></tbody></table>
</div>
<script>"""
    + COMMON_JS
    + """
async function refresh(){
 try{
  const [me,hist,workers,payouts,month,events]=await Promise.all([get("/api/tenant"),get("/api/tenant/hashrate"),
   get("/api/tenant/workers"),get("/api/tenant/payouts"),get("/api/tenant/statement"),get("/api/events?limit=20")]);
  document.getElementById("who").textContent=me.tenant+(me.active?"":" (inactive)");
  const b=me.balance;
  fill("balance",[{values:[btc(b.immature_sat||0),btc(b.mature_sat||0),btc(b.paid_sat||0),btc(b.owed_sat||0),btc(b.threshold_sat||0)]}]);
  draw(hist.points);
  fill("workers",workers.map(w=>({cls:w.state=="down"?"down":"",values:[w.worker,w.state,rate(w.hashrate_hs["5m"]),rate(w.hashrate_hs["1h"]),rate(w.hashrate_hs["24h"]),w.last_share||"-",w.reject_percent+" %"]})));
  document.body.dataset.workers=String(workers.length);
  fill("payouts",payouts.map(p=>({values:[p.created_at,p.txid,btc(p.amount_sat),p.status]})));
  fill("statement",month.rows.map(r=>({values:[r.site,r.shares,r.hashrate_ths+" TH/s",r.credited_btc,r.paid_btc,r.energy_kwh+" kWh",r.energy_cost+" "+r.currency,r.hosting_fee,r.heat_revenue,r.net]})));
  fill("events",events.map(e=>({values:[e.created_at,e.kind,e.subject]})));
  document.body.dataset.state="ok";
 }catch(e){if(e.status==401||e.status==403)return locked(e.status);document.getElementById("who").textContent="error: "+e.message;document.body.dataset.state="error"}
}
refresh();setInterval(refresh,10000);
</script></body></html>
"""
)
