"""Benchmark: accepted shares per second through `farmpool serve` at a bounded reply latency.

1,000 sessions (scripts/loadgen.py, one lean epoll process) submit distinct valid shares,
open-loop and spread evenly over the sessions, at a stepped total rate (default 5k, 10k, 15k,
20k, 25k, 30k shares/s, 8 s each), then a short binary search between the last rate that
passed and the first that failed. A step passes when every share got its reply, at least
99.9 % were accepted, the p99 reply latency was at most 20 ms and the load generator kept its
schedule. Figures, at the highest passing step:

- accepted_shares_per_s: accepted shares / s (target 15000, better higher);
- reply_p50_ms, reply_p99_ms: reply latency by request id, from the send() to the epoll
  wake-up that brought the reply (targets 5 and 20 ms);
- server_cpu_pct: the server process's user+sys CPU / wall (all its threads, /proc/PID/stat);
- loadgen_cpu_pct: the load generator's own user+sys CPU / wall (it must not be the limit);
- server_cpu_us_per_share: server CPU time per accepted share.

The server runs against a real regtest node (bcoin by default) with a share difficulty of
2**-32: the share target is ~2**256, so shares are found with a hash or two, and the load
generator keeps only those whose hash is above the network target (regtest's target is
~2**255: half of all hashes would be blocks, and a block moves the tip and makes every later
share stale). Vardiff is off, the job refresh is 120 s, bans and per-address limits are
opened up. Shares are precomputed before each step, outside the timed phase; every share has
a fresh extranonce2 (the server's merkle-root cache never hits: the full validation path).

The table also shows softirq (mostly the loopback traffic itself) and `other`: CPU used by
unrelated processes during the step, in % of one core (the machine has 2 cores; the server,
the load generator and the kernel's loopback work share them). A step that fails while
`other` is above 10 % is run once more.

Run: python benchmarks/stratum_submit.py [--rates 5000,10000,...] [--step-seconds 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _harness as H

SHARE_DIFFICULTY = 2.0**-32
#: A failed step is run once more when other processes used more than this (% of one core).
OTHER_CPU_RETRY_PCT = 10.0


def run_step(
    gen: H.loadgen.LoadGen,
    server: H.ServerProcess,
    meter: H.CpuMeter,
    rate: float,
    seconds: float,
    burst: int,
) -> dict[str, Any]:
    t = time.monotonic()
    plan = gen.prepare_submit(rate, seconds, burst)
    precompute_s = time.monotonic() - t
    rss0 = server.rss_kib()
    s0 = server.cpu_seconds()
    w0 = time.monotonic()
    meter.start()
    result = gen.run_submit(plan, max_errors=max(1000, int(rate)))
    result["machine_cpu"] = meter.stop()
    wall = time.monotonic() - w0
    s1 = server.cpu_seconds()
    server_cpu = (s1[0] - s0[0]) + (s1[1] - s0[1])
    result["server_cpu"] = {
        "user_s": round(s1[0] - s0[0], 3),
        "sys_s": round(s1[1] - s0[1], 3),
        "pct": round(H.percent(server_cpu, wall), 1),
        "us_per_share": round(1e6 * server_cpu / max(result["accepted"], 1), 1),
    }
    result["server_rss_kib"] = {"before": rss0, "after": server.rss_kib()}
    result["precompute_s"] = round(precompute_s, 2)
    return result


def passed(result: dict[str, Any], p99_ms: float, min_pct: float) -> tuple[bool, str]:
    why = []
    if result["aborted"]:
        why.append(f"aborted: {result['aborted']}")
    if result["missing"]:
        why.append(f"{result['missing']} replies missing")
    if result["accepted_pct"] < min_pct:
        why.append(f"accepted {result['accepted_pct']} % < {min_pct} %")
    p99 = result["latency_ms"]["p99"]
    if p99 is None or p99 > p99_ms:
        why.append(f"p99 {p99} ms > {p99_ms} ms")
    if result["send_rate"] < 0.98 * result["target_rate"]:
        why.append(f"load generator behind: sent {result['send_rate']}/s")
    return not why, "; ".join(why)


def row(result: dict[str, Any], ok: bool, why: str) -> str:
    lat = result["latency_ms"]
    machine = result["machine_cpu"]
    return (
        f"{result['target_rate']:>8.0f} {result['accepted_rate']:>10.0f} "
        f"{result['accepted_pct']:>8.3f} {lat['p50'] or 0:>8.2f} {lat['p90'] or 0:>8.2f} "
        f"{lat['p99'] or 0:>8.2f} {lat['max'] or 0:>8.1f} "
        f"{result['server_cpu']['pct']:>7.1f} {result['client_cpu']['pct']:>7.1f} "
        f"{result['server_cpu']['us_per_share']:>7.1f} {machine['softirq']:>7.1f} "
        f"{machine['other']:>7.1f}  {'pass' if ok else 'FAIL ' + why}"
    )


HEADER = (
    f"{'target/s':>8} {'accepted/s':>10} {'accept%':>8} {'p50 ms':>8} {'p90 ms':>8} "
    f"{'p99 ms':>8} {'max ms':>8} {'srv cpu':>7} {'gen cpu':>7} {'us/shr':>7} {'softirq':>7} "
    f"{'other':>7}  verdict"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", choices=["bcoin", "svnode"], default="bcoin")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--rates", default="5000,10000,15000,20000,25000,30000")
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--refine", type=int, default=2, help="binary-search steps after a fail")
    parser.add_argument("--burst", type=int, default=1, help="share lines per send per session")
    parser.add_argument("--p99-ms", type=float, default=20.0)
    parser.add_argument("--min-accepted-pct", type=float, default=99.9)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if not rates or any(r <= 0 or r > 100_000 for r in rates):
        parser.error("--rates: positive numbers up to 100000")
    if not 1 <= args.step_seconds <= 30 or not 1 <= args.sessions <= 15_000:
        parser.error("--step-seconds 1..30, --sessions 1..15000")
    H.raise_nofile(args.sessions + 256)

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="farmpool-bench-submit-"))
    print(f"workdir {workdir}", flush=True)
    nodes = H.start_nodes(args.node, workdir)
    results: list[tuple[dict[str, Any], bool, str]] = []
    best: dict[str, Any] | None = None
    try:
        with (
            H.running_server(
                workdir,
                nodes,
                difficulty={"start": SHARE_DIFFICULTY, "min": SHARE_DIFFICULTY, "max": 1},
                vardiff=False,
            ) as server,
            H.loadgen.LoadGen("127.0.0.1", server.port, H.TENANT) as gen,
        ):
            rss_idle = server.rss_kib()
            meter = H.CpuMeter(server, nodes)
            opened = gen.open(args.sessions, batch=500, timeout=60)
            print(
                f"{args.node} node, server pid {server.pid} port {server.port}; "
                f"{opened['sessions']} sessions in {opened['seconds']} s",
                flush=True,
            )
            # Warm-up (not reported): every session's coinbase midstate, allocator, caches.
            warm = run_step(gen, server, meter, 2000, 2, args.burst)
            if warm["aborted"] or warm["accepted_pct"] < 99:
                raise RuntimeError(f"warm-up failed: {json.dumps(warm)}")
            print(HEADER, flush=True)

            def step(rate: float) -> bool:
                nonlocal best
                for attempt in (1, 2):
                    result = run_step(gen, server, meter, rate, args.step_seconds, args.burst)
                    ok, why = passed(result, args.p99_ms, args.min_accepted_pct)
                    other = result["machine_cpu"]["other"]
                    if ok or attempt == 2 or other <= OTHER_CPU_RETRY_PCT:
                        break
                    # Unrelated processes took CPU from the server or the load generator.
                    print(row(result, ok, why + f"; other CPU {other:.0f} %: again"), flush=True)
                    time.sleep(1.0)
                results.append((result, ok, why))
                print(row(result, ok, why), flush=True)
                if ok and (best is None or result["accepted_rate"] > best["accepted_rate"]):
                    best = result
                time.sleep(1.0)  # let the server settle (and any backlog drain)
                return ok

            failed_at = None
            for rate in rates:
                if not step(rate):
                    failed_at = rate
                    break
            if failed_at is not None and best is not None:
                low, high = best["target_rate"], failed_at
                for _ in range(args.refine):
                    mid = round((low + high) / 2 / 500) * 500
                    if mid <= low or mid >= high:
                        break
                    if step(mid):
                        low = mid
                    else:
                        high = mid
            rss_end = server.rss_kib()
            stats = {
                "rss_idle_kib": rss_idle,
                "rss_end_kib": rss_end,
                "shares_accepted_total": sum(r["accepted"] for r, _, _ in results)
                + warm["accepted"],
            }
    finally:
        nodes.stop()

    wall = time.monotonic() - started
    print(
        f"server RSS {stats['rss_idle_kib'] / 1024:.1f} MiB idle -> "
        f"{stats['rss_end_kib'] / 1024:.1f} MiB after {stats['shares_accepted_total']} "
        f"accepted shares on one job; benchmark wall {wall:.0f} s",
        flush=True,
    )
    if best is None:
        figures = {
            "accepted_shares_per_s": H.figure(0, "shares/s", 15000, "higher"),
            "reply_p50_ms": H.figure(None, "ms", 5, "lower"),
            "reply_p99_ms": H.figure(None, "ms", 20, "lower"),
            "loadgen_cpu_pct": H.figure(None, "%", None, "lower"),
            "server_cpu_pct": H.figure(None, "%", None, "lower"),
        }
    else:
        figures = {
            "accepted_shares_per_s": H.figure(best["accepted_rate"], "shares/s", 15000, "higher"),
            "reply_p50_ms": H.figure(best["latency_ms"]["p50"], "ms", 5, "lower"),
            "reply_p99_ms": H.figure(best["latency_ms"]["p99"], "ms", 20, "lower"),
            "loadgen_cpu_pct": H.figure(best["client_cpu"]["pct"], "%", None, "lower"),
            "server_cpu_pct": H.figure(best["server_cpu"]["pct"], "%", None, "lower"),
            "server_cpu_us_per_share": H.figure(
                best["server_cpu"]["us_per_share"], "us", None, "lower"
            ),
        }
        # The latency target is stated at 15k shares/s: report that step too.
        at_target = [r for r, _, _ in results if r["target_rate"] == 15000]
        if at_target:
            figures["reply_p99_at_15k_ms"] = H.figure(
                at_target[-1]["latency_ms"]["p99"], "ms", 20, "lower"
            )
    detail = {
        "node": args.node,
        "sessions": args.sessions,
        "burst": args.burst,
        "wall_s": round(wall, 1),
        "steps": [
            {
                "target": r["target_rate"],
                "accepted_per_s": r["accepted_rate"],
                "p50_ms": r["latency_ms"]["p50"],
                "p99_ms": r["latency_ms"]["p99"],
                "server_cpu_pct": r["server_cpu"]["pct"],
                "loadgen_cpu_pct": r["client_cpu"]["pct"],
                "other_cpu_pct": r["machine_cpu"]["other"],
                "pass": ok,
            }
            for r, ok, _ in results
        ],
    }
    print(f"detail: {json.dumps(detail)}", flush=True)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    H.print_result("stratum_submit", figures)
    return 0 if best is not None else 1


if __name__ == "__main__":
    sys.exit(main())
