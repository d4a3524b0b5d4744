"""The operator's dashboard page at /: hashrate per site and tenant over time, workers,
blocks. One self-contained HTML page (no outside scripts: farms run offline), drawing on a
canvas from /api/hashrate, /api/workers and /api/blocks, refreshed every 10 s. When the chart
is drawn, the page marks `data-points` and `data-series` on its body (what the Chromium test
reads). COMMON_JS writes BTC amounts from integer satoshis with integer arithmetic only. STYLE
and COMMON_JS serve the tenant's page too: the bearer token comes from the URL
fragment (`#token=...`, taken off the address bar at once and kept for the tab only) or from
a form the page shows when the API answers 401 or 403.
"""

STYLE = """<style>
 body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
 h1{font-size:1.3em;margin:0 0 .5em} h2{font-size:1.05em;margin:1.2em 0 .4em}
 table{border-collapse:collapse;background:#fff} td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
 td:first-child,th:first-child{text-align:left} #legend span{margin-right:1em}
 canvas{background:#fff;border:1px solid #ddd} #login{margin:1em 0} .down{color:#c00}
 #login input{width:30em}
</style>"""

COMMON_JS = """
const COLORS=["#1f77b4","#d62728","#2ca02c","#9467bd","#ff7f0e","#17becf","#8c564b","#e377c2"];
const TOKEN_KEY="farmpool_token";
(function(){const h=new URLSearchParams(location.hash.slice(1)),t=h.get("token");
 if(t){sessionStorage.setItem(TOKEN_KEY,t);history.replaceState(null,"",location.pathname+location.search)}})();
function rate(h){const u=["H/s","kH/s","MH/s","GH/s","TH/s","PH/s","EH/s"];let i=0;while(h>=1000&&i<u.length-1){h/=1000;i++}return h.toFixed(2)+" "+u[i]}
function btc(sat){const a=Math.abs(sat),f=a%1e8;return (sat<0?"-":"")+(a-f)/1e8+"."+String(f).padStart(8,"0")+" BTC"}
function cell(row,values,cls){const tr=document.createElement("tr");if(cls)tr.className=cls;for(const v of values){const td=document.createElement("td");td.textContent=v;tr.appendChild(td)}row.appendChild(tr)}
function fill(id,rows){const b=document.querySelector("#"+id+" tbody");b.textContent="";for(const r of rows)cell(b,r.values,r.cls)}
async function get(path){const t=sessionStorage.getItem(TOKEN_KEY);
 const r=await fetch(path,{cache:"no-store",headers:t?{Authorization:"Bearer "+t}:{}});
 if(!r.ok){const e=new Error(path+": "+r.status);e.status=r.status;throw e}return r.json()}
function locked(status){
 document.body.dataset.state=status==401?"token-needed":"forbidden";
 for(const el of document.querySelectorAll(".data"))el.hidden=true;
 const f=document.getElementById("login");f.hidden=false;
 document.getElementById("why").textContent=status==401?"This page needs a token.":"This token does not open this page (403).";
}
function login(ev){ev.preventDefault();sessionStorage.setItem(TOKEN_KEY,document.getElementById("token").value.trim());location.reload()}
function draw(points){
 const c=document.getElementById("chart"),g=c.getContext("2d");g.clearRect(0,0,c.width,c.height);
 const keys=[...new Set(points.flatMap(p=>Object.keys(p.hashrate_hs)))].sort();
 let max=0;for(const p of points)for(const k of keys)max=Math.max(max,p.hashrate_hs[k]||0);
 const t0=points.length?points[0].t:0,t1=points.length?points[points.length-1].t:1,w=c.width-60,h=c.height-30;
 g.strokeStyle="#ccc";g.beginPath();g.moveTo(50,10);g.lineTo(50,h+10);g.lineTo(c.width-10,h+10);g.stroke();
 g.fillStyle="#555";g.fillText(rate(max),2,14);g.fillText("0",38,h+10);
 const legend=document.getElementById("legend");legend.textContent="";let drawn=0;
 keys.forEach((k,i)=>{const col=COLORS[i%COLORS.length];g.strokeStyle=col;g.lineWidth=2;g.beginPath();
  points.forEach((p,j)=>{const x=50+(t1>t0?(p.t-t0)/(t1-t0):0)*w,y=10+h-(max?((p.hashrate_hs[k]||0)/max)*h:0);j?g.lineTo(x,y):g.moveTo(x,y);drawn++});
  g.stroke();const s=document.createElement("span");s.style.color=col;s.textContent="\\u25a0 "+k;legend.appendChild(s)});
 document.body.dataset.points=String(drawn);document.body.dataset.series=String(keys.length);
}
"""

LOGIN = """<form id="login" hidden onsubmit="login(event)"><p id="why"></p>
<input id="token" type="password" placeholder="token" autocomplete="off"> <button>open</button></form>"""

PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>farmpool</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
"""
    + STYLE
    + """</head>
<body data-points="0" data-series="0" data-state="loading">
<h1>farmpool <small id="node"></small></h1>
"""
    + LOGIN
    + """<div class="data"><div id="summary"></div>
<h2>Hashrate per site and tenant</h2>
<canvas id="chart" width="900" height="300"></canvas><div id="legend"></div>
<h2>Workers</h2><table id="workers"><thead><tr><th>worker</th><th>5 min</th><th>1 h</th><th>24 h</th><th>last share</th><th>rejects</th></tr></thead><tbody></tbody></table>
<h2>Blocks</h2><table id="blocks"><thead><tr><th>height</th><th>status</th><th>conf</th><th>tenant</th><th>site</th><th>found</th></tr></thead><tbody></tbody></table></div>
<script>"""
    + COMMON_JS
    + """
async function refresh(){
 try{
  const [pool,hist,workers,blocks]=await Promise.all([get("/api/pool"),get("/api/hashrate"),get("/api/workers"),get("/api/blocks")]);
  document.getElementById("node").textContent=pool.node+" \\u00b7 height "+pool.tip_height+" \\u00b7 "+pool.sessions+" sessions";
  document.getElementById("summary").textContent="accepted "+(pool.stats.accepted||0)+" shares \\u00b7 blocks "+(pool.stats.blocks_accepted||0);
  draw(hist.points);
  fill("workers",workers.map(w=>({values:[w.tenant+"."+w.worker,rate(w.hashrate_hs["5m"]),rate(w.hashrate_hs["1h"]),rate(w.hashrate_hs["24h"]),w.last_share||"-",w.reject_percent+" %"]})));
  fill("blocks",blocks.map(b=>({values:[b.height,b.status,b.confirmations,b.tenant,b.site,b.found_at]})));
  document.body.dataset.state="ok";
 }catch(e){if(e.status==401||e.status==403)return locked(e.status);document.getElementById("summary").textContent="error: "+e.message}
}
refresh();setInterval(refresh,10000);
</script></body></html>
"""
)
