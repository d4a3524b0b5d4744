"""Benchmark: the server's memory per idle session, with 15,000 sessions open.

The server starts against a regtest node (bcoin) with one listener on the default difficulty
and vardiff settings. Its resident set (VmRSS from /proc/PID/status) is read once it is
listening and settled (0 sessions), then 15,000 sessions are opened in batches of 500
(scripts/loadgen.py, one epoll process: connect, subscribe, authorize, and wait for
set_difficulty and the first job on each), and the RSS is read again once it is stable.
Figures:

- kib_per_idle_session: (RSS with 15k sessions - RSS with 0 sessions) / 15000, in KiB
  (target 10, better lower);
- rss_base_mib, rss_15k_mib: the two readings;
- open_15k_s: how long opening the 15,000 sessions took (information);
- kernel_tcp_mib_per_1k: the growth of the kernel's TCP buffer memory (/proc/net/sockstat,
  both ends of every connection, this machine) per 1000 sessions, for information.

Note: the kernel's socket buffers are not in the server's RSS (they are kernel memory), so
kib_per_idle_session is the Python-side cost of a session (protocol, transport, session
state, socket object, epoll registration bookkeeping); idle sockets hold almost no buffer
memory, but a session with unread or unsent data holds up to its buffer sizes in the kernel.

Run: python benchmarks/connections.py [--sessions 15000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _harness as H

PAGE = resource.getpagesize()


def kernel_tcp_pages() -> int:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()
            return int(parts[parts.index("mem") + 1])
    return 0


def stable_rss(server: H.ServerProcess, timeout: float = 20.0) -> int:
    """VmRSS once three readings 0.5 s apart agree within 0.5 % (or at the timeout)."""
    readings = [server.rss_kib()]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        readings.append(server.rss_kib())
        last = readings[-3:]
        if len(last) == 3 and max(last) - min(last) <= 0.005 * max(last):
            break
    return readings[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", choices=["bcoin", "svnode"], default="bcoin")
    parser.add_argument("--sessions", type=int, default=15_000)
    parser.add_argument("--batch", type=int, default=500, help="sessions opened at a time")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    if not 1 <= args.sessions <= 19_000:
        parser.error("--sessions 1..19000 (20,000 open files per process)")
    H.raise_nofile(args.sessions + 256)

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="farmpool-bench-connections-"))
    print(f"workdir {workdir}", flush=True)
    nodes = H.start_nodes(args.node, workdir)
    try:
        with (
            H.running_server(
                workdir,
                nodes,
                difficulty={"start": 8192, "min": 512, "max": 2**32},
                vardiff=True,
            ) as server,
            H.loadgen.LoadGen("127.0.0.1", server.port, H.TENANT) as gen,
        ):
            time.sleep(1.0)
            rss_base = stable_rss(server)
            tcp0 = kernel_tcp_pages()
            print(
                f"server pid {server.pid} port {server.port}: RSS {rss_base / 1024:.1f} MiB "
                "with 0 sessions",
                flush=True,
            )
            cpu0 = server.cpu_seconds()
            opened = gen.open(
                args.sessions,
                batch=args.batch,
                timeout=150,
                progress=lambda n: (
                    n % 5000
                    or print(
                        f"  {n} sessions, server RSS {server.rss_kib() / 1024:.1f} MiB", flush=True
                    )
                ),
            )
            cpu1 = server.cpu_seconds()
            print(flush=True)
            gen.hold(1.0)
            rss_full = stable_rss(server)
            tcp1 = kernel_tcp_pages()
            threads = server.status("Threads")
            fds = len(list(Path(f"/proc/{server.pid}/fd").iterdir()))
            print(
                f"{opened['sessions']} sessions in {opened['seconds']} s "
                f"(loadgen CPU {opened['cpu_user_s'] + opened['cpu_sys_s']:.2f} s, server CPU "
                f"{cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1]:.2f} s); server RSS "
                f"{rss_full / 1024:.1f} MiB, {fds} fds, {threads} threads; kernel TCP memory "
                f"+{(tcp1 - tcp0) * PAGE / 2**20:.1f} MiB",
                flush=True,
            )
            closed = gen.closed
    finally:
        nodes.stop()

    n = opened["sessions"]
    per_session = (rss_full - rss_base) / n
    wall = time.monotonic() - started
    detail = {
        "node": args.node,
        "sessions": n,
        "closed_during_run": closed,
        "rss_base_kib": rss_base,
        "rss_full_kib": rss_full,
        "kernel_tcp_pages": [tcp0, tcp1],
        "wall_s": round(wall, 1),
    }
    print(f"detail: {json.dumps(detail)}", flush=True)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    H.print_result(
        "connections",
        {
            "kib_per_idle_session": H.figure(per_session, "KiB", 10, "lower"),
            "rss_base_mib": H.figure(rss_base / 1024, "MiB", None, "lower"),
            "rss_15k_mib": H.figure(rss_full / 1024, "MiB", None, "lower"),
            "open_15k_s": H.figure(opened["seconds"], "s", None, "lower"),
            "kernel_tcp_mib_per_1k": H.figure(
                (tcp1 - tcp0) * PAGE / 2**20 / n * 1000, "MiB", None, "lower"
            ),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
