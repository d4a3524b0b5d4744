"""Benchmark: from a new tip to the clean `mining.notify` on the last of 10,000 sessions.

10,000 idle sessions, subscribed and authorized (scripts/loadgen.py, one epoll process), then
five times: a block is mined on the regtest node and the time is measured from the server's
`tip_detected_at` (its `job` event on stdout) to the moment the LAST session received the
clean notify. Receive times are the kernel's receive timestamps on the client sockets
(SO_TIMESTAMPNS, wall clock, same machine), so the figure does not depend on how fast the
load generator reads 10,000 sockets. By default (`--read after`) the load generator does not
even read while the server pushes: it waits for the server's `job` event (printed after the
push) and then collects every socket's notify with its timestamp, so it takes no CPU from the
server during the fan-out (the machine has 2 cores; reading 10,000 sockets in Python costs
about as much as the server's push). `--read live` reads while the server pushes and also
gives the user-space receive time (when epoll handed the data over). Figures:

- fanout_10k_ms: median over the rounds of tip_detected_at -> last session received
  (target 100, better lower); it includes the template fetch and the job build;
- fanout_10k_max_ms: the worst round;
- server_push_10k_ms: median of the server's own `elapsed_ms` (the notify handed to the
  kernel for every session);
- template_ms: median of tip_detected_at -> the start of the push (getblocktemplate, job);
- detect_ms: median of generatetoaddress returning -> tip_detected_at (negative when the
  server noticed the block before the RPC answer reached us), for information;
- fanout_10k_user_ms (--read live only): as fanout_10k_ms with user-space receive times;
- mined_to_last_ms: generatetoaddress returning -> last session received (no server stamp).

A `tip_detected_at` earlier than the mining RPC's start is a stale stamp (the server's work
source keeps the stamp of a tip hint that turned out to be nothing new, e.g. the second of
ZMQ + long-poll for the same block, and hands it to the next real tip): such a round is
flagged, measured from the RPC's start instead and left out of detect_ms.

Nodes: bcoin (default; the pool learns of the block by getblocktemplate long-poll, the block
is mined on the pool's node itself) or the Bitcoin SV pair (`--node svnode`: mined on the
second node, the pool's node learns by P2P and tells the pool by ZMQ hashblock). Vardiff is off
(idle sessions would otherwise be retargeted on the server's sweep during the run).

Run: python benchmarks/notify_fanout.py [--node bcoin|svnode] [--sessions 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _harness as H


def _ms(value: float | None) -> str:
    return "stale" if value is None else f"{value:.1f}"


def one_round(
    gen: H.loadgen.LoadGen,
    server: H.ServerProcess,
    nodes: H.Nodes,
    meter: H.CpuMeter,
    timeout: float,
    live: bool,
) -> dict[str, Any]:
    gen.hold(1.0)  # settle; read anything pending
    gen.arm_notify()
    mined: dict[str, Any] = {}

    def mine() -> None:
        try:
            mined["before"], mined["after"], mined["hash"] = nodes.mine_block()
        except Exception as exc:  # reported below
            mined["error"] = repr(exc)

    def job_event() -> dict[str, Any]:
        return server.wait_event(
            "job", timeout, lambda e: e.get("clean") is True and e.get("prevhash") == mined["hash"]
        )

    cpu0 = H.self_cpu()
    meter.start()
    if live:
        # Read the sockets while the server pushes (the load generator competes for the CPUs).
        miner = threading.Thread(target=mine, name="mine", daemon=True)
        miner.start()
        got = gen.wait_notify(timeout)
        miner.join(timeout)
        machine = meter.stop()
        if "hash" not in mined:
            raise RuntimeError(f"mining failed: {mined.get('error', 'timed out')}")
        event = job_event()
    else:
        # Stay off the CPUs until the server has pushed to everyone (its job event comes after
        # the push), then read: the kernel's receive timestamps say when each notify arrived.
        mine()
        if "hash" not in mined:
            raise RuntimeError(f"mining failed: {mined.get('error')}")
        event = job_event()
        machine = meter.stop()
        got = gen.wait_notify(timeout)
    cpu1 = H.self_cpu()
    detected = float(event["tip_detected_at"])
    stale = detected < mined["before"]
    if stale:
        # The server's tip_detected_at predates the block: a stamp left over from an earlier
        # hint that found no new tip (see the module docstring). Measure from the moment the
        # block was mined instead (the RPC's start), and say so.
        print(
            f"  warning: tip_detected_at is {1000 * (mined['before'] - detected):.0f} ms "
            "before the block was mined (stale stamp in the server); using the mining RPC's "
            "start instead",
            flush=True,
        )
        detected = mined["before"]
    same_job = sum(1 for s in gen.sessions if s.job_id == event["job_id"] and s.notify_at > 0)
    if got["received"] < got["sessions"] or same_job < got["sessions"]:
        raise RuntimeError(
            f"only {got['received']} (of them {same_job} with job {event['job_id']}) of "
            f"{got['sessions']} sessions got the new job within {timeout} s"
        )
    push_start = float(event["sent_at"]) - float(event["elapsed_ms"]) / 1000
    last_kernel = got["last_kernel"] or got["last_wall"]
    first_kernel = got["first_kernel"] or got["first_wall"]
    return {
        "height": event["height"],
        "server_sessions": event["sessions"],
        "fanout_ms": 1000 * (last_kernel - detected),
        "fanout_user_ms": 1000 * (got["last_wall"] - detected),
        "first_ms": 1000 * (first_kernel - detected),
        "median_session_ms": 1000 * ((got["median_kernel"] or got["last_wall"]) - detected),
        "server_push_ms": float(event["elapsed_ms"]),
        "template_ms": 1000 * (push_start - detected),
        "detect_ms": None if stale else 1000 * (detected - mined["after"]),
        "stale_tip_detected_at": stale,
        "mined_to_last_ms": 1000 * (last_kernel - mined["after"]),
        "rpc_ms": 1000 * (mined["after"] - mined["before"]),
        "loadgen_cpu_s": round(cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1], 3),
        "read": "live" if live else "after",
        "loadgen_read_s": got["wait_s"],
        "cpu_pct": machine,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", choices=["bcoin", "svnode"], default="bcoin")
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500, help="sessions opened at a time")
    parser.add_argument(
        "--read",
        choices=["after", "live"],
        default="after",
        help="read the notifies after the server's push (default) or while it pushes",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    if not 1 <= args.sessions <= 15_000 or not 1 <= args.rounds <= 20:
        parser.error("--sessions 1..15000, --rounds 1..20")
    H.raise_nofile(args.sessions + 256)

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="farmpool-bench-fanout-"))
    print(f"workdir {workdir}", flush=True)
    nodes = H.start_nodes(args.node, workdir)
    rounds: list[dict[str, Any]] = []
    try:
        with (
            H.running_server(
                workdir,
                nodes,
                difficulty={"start": 1, "min": 1, "max": 65536},
                vardiff=False,
            ) as server,
            H.loadgen.LoadGen("127.0.0.1", server.port, H.TENANT, kernel_timestamps=True) as gen,
        ):
            opened = gen.open(
                args.sessions,
                batch=args.batch,
                timeout=120,
                progress=lambda n: n % 5000 or print(f"  {n} sessions", flush=True),
            )
            print(
                f"{args.node} node, server pid {server.pid} port {server.port}: "
                f"{opened['sessions']} sessions in {opened['seconds']} s "
                f"(server RSS {server.rss_kib() / 1024:.0f} MiB)",
                flush=True,
            )
            print(
                f"{'round':>5} {'height':>6} {'fanout':>8} {'user':>8} {'first':>8} "
                f"{'median':>8} {'push':>8} {'template':>8} {'detect':>8} {'rpc':>7} "
                f"{'gen cpu':>7} {'other':>7}  (ms from tip_detected_at; gen cpu in s; other: "
                "CPU of unrelated processes, % of one core)",
                flush=True,
            )
            meter = H.CpuMeter(server, nodes)
            for i in range(args.rounds):
                r = one_round(gen, server, nodes, meter, timeout=15, live=args.read == "live")
                rounds.append(r)
                print(
                    f"{i + 1:>5} {r['height']:>6} {r['fanout_ms']:>8.1f} "
                    f"{r['fanout_user_ms']:>8.1f} {r['first_ms']:>8.1f} "
                    f"{r['median_session_ms']:>8.1f} {r['server_push_ms']:>8.1f} "
                    f"{r['template_ms']:>8.1f} {_ms(r['detect_ms']):>8} {r['rpc_ms']:>7.1f} "
                    f"{r['loadgen_cpu_s']:>7.3f} {r['cpu_pct']['other']:>6.0f}%",
                    flush=True,
                )
    finally:
        nodes.stop()

    def med(key: str) -> float | None:
        values = [r[key] for r in rounds if r[key] is not None]
        return statistics.median(values) if values else None

    wall = time.monotonic() - started
    detail = {
        "node": args.node,
        "sessions": args.sessions,
        "read": args.read,
        "wall_s": round(wall, 1),
    }
    print(f"detail: {json.dumps({**detail, 'rounds': rounds})}", flush=True)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    H.print_result(
        "notify_fanout",
        {
            "fanout_10k_ms": H.figure(med("fanout_ms"), "ms", 100, "lower"),
            "fanout_10k_max_ms": H.figure(max(r["fanout_ms"] for r in rounds), "ms", None, "lower"),
            "server_push_10k_ms": H.figure(med("server_push_ms"), "ms", None, "lower"),
            "template_ms": H.figure(med("template_ms"), "ms", None, "lower"),
            "detect_ms": H.figure(med("detect_ms"), "ms", None, "lower"),
            "mined_to_last_ms": H.figure(med("mined_to_last_ms"), "ms", None, "lower"),
            **(
                {"fanout_10k_user_ms": H.figure(med("fanout_user_ms"), "ms", None, "lower")}
                if args.read == "live"
                else {}
            ),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
