"""Run every benchmark in benchmarks/ once, on this machine, and write docs/benchmarks.md.

Each benchmark is one command (`python benchmarks/NAME.py`) whose last stdout line is
`{"benchmark": NAME, "figures": {FIGURE: {"value", "unit", "target", "better"}}}`. This
runner starts them one at a time (they each take the whole machine), keeps their output in
`.run/benchmarks/NAME.log`, and writes the report: the machine, then for each benchmark the
command, its wall time and every figure with its target and whether it is met. A benchmark
that fails is reported as failed, with the tail of its output; the others still run.
Explanations of gaps and the history of each figure are in docs/benchmark-notes.md.

Run: benchmarks/run_all [--only hashing,ledger] [--quick]  (--quick: smaller, for a smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: name -> (arguments of a full run, arguments of a quick one)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "hashing": ([], ["--shares", "20000"]),
    "stratum_submit": ([], ["--rates", "5000,10000", "--step-seconds", "3", "--refine", "0"]),
    "notify_fanout": ([], ["--sessions", "2000", "--rounds", "2"]),
    "connections": ([], ["--sessions", "2000"]),
    "ledger": ([], ["--rates", "5000", "--step-seconds", "3"]),
    "ledger_compaction": ([], ["--rows", "30000"]),
}


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        total_kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    sys.path.insert(0, str(REPO))
    import pool.hashing as hashing

    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{total_kib / 1024 / 1024:.1f} GiB",
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "hashing core": "C accelerator" if hashing.ACCELERATOR else "pure Python",
    }


def run(name: str, args: list[str], logs: Path) -> dict[str, Any]:
    command = [sys.executable, f"benchmarks/{name}.py", *args]
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    with (logs / f"{name}.log").open("w") as log:
        proc = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
        log.write(proc.stdout)
    seconds = time.monotonic() - started
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result: dict[str, Any] = {
        "name": name,
        "command": f"python benchmarks/{name}.py" + (" " + " ".join(args) if args else ""),
        "seconds": seconds,
        "figures": {},
        "error": None,
    }
    try:
        last = json.loads(lines[-1])
        if last.get("benchmark") != name or not isinstance(last.get("figures"), dict):
            raise ValueError("the last line is not this benchmark's figures")
        result["figures"] = last["figures"]
    except (IndexError, ValueError) as exc:
        tail = (logs / f"{name}.log").read_text()[-1500:]
        result["error"] = f"exit {proc.returncode}; {exc}\n{tail}"
    if proc.returncode != 0 and result["error"] is None:
        result["error"] = f"exit {proc.returncode}"
    print(
        f"   {seconds:.0f} s, {len(result['figures'])} figures"
        + ("" if result["error"] is None else f", FAILED: {result['error'].splitlines()[0]}"),
        flush=True,
    )
    return result


def verdict(figure: dict[str, Any]) -> str:
    target, value, better = figure.get("target"), figure.get("value"), figure.get("better")
    if target is None or value is None:
        return "—"
    met = value <= target if better == "lower" else value >= target
    return "met" if met else "**missed**"


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def report(results: list[dict[str, Any]], host: dict[str, str], quick: bool) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Benchmarks",
        "",
        f"Written by `benchmarks/run_all`{' --quick' if quick else ''} on {now}; every figure",
        "below comes from that one run on this machine. How each benchmark works, the history",
        "of the figures and the explanation of any gap are in",
        "[benchmark-notes.md](benchmark-notes.md).",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in host.items()),
        "",
        "## Summary",
        "",
        "| benchmark | figure | value | target | |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for fig, f in r["figures"].items():
            if f.get("target") is None:
                continue
            sign = "≤" if f.get("better") == "lower" else "≥"
            out.append(
                f"| {r['name']} | `{fig}` | {number(f.get('value'))} {f.get('unit', '')} | "
                f"{sign} {number(f['target'])} {f.get('unit', '')} | {verdict(f)} |"
            )
    for r in results:
        out += ["", f"## {r['name']}", "", f"`{r['command']}` ({r['seconds']:.0f} s)", ""]
        if r["error"]:
            out += ["**Failed:**", "", "```", r["error"].strip(), "```"]
            continue
        out += ["| figure | value | target | |", "|---|---|---|---|"]
        for fig, f in r["figures"].items():
            target = "—"
            if f.get("target") is not None:
                sign = "≤" if f.get("better") == "lower" else "≥"
                target = f"{sign} {number(f['target'])}"
            out.append(
                f"| `{fig}` | {number(f.get('value'))} {f.get('unit', '')} | {target} | "
                f"{verdict(f)} |"
            )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke test)")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    names = list(BENCHMARKS)
    if args.only:
        names = [n for n in args.only.split(",") if n]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"--only: unknown benchmarks {unknown}; known: {', '.join(BENCHMARKS)}")
    logs = REPO / ".run" / "benchmarks"
    logs.mkdir(parents=True, exist_ok=True)
    host = machine()
    results = [run(n, BENCHMARKS[n][1 if args.quick else 0], logs) for n in names]
    Path(args.out).write_text(report(results, host, args.quick))
    print(f"wrote {args.out}")
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
