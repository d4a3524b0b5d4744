"""Benchmark: µs per share validation in the hashing core.

A 12-branch job (mainnet block 574200 recast as a Stratum job); each share goes the server's
way from a submit's params to the verdict (pool/stratum/judge.py: strict hex parse, version
mask, ntime window, header hash, duplicate and target checks; every share meets the target,
as an accepted share does):
- validate_fresh_us: a new extranonce2 every time (coinbase from the midstate, 12-hash fold,
  header hash);
- validate_repeat_us: the same extranonce2 with new nonces (cached merkle root; header only);
- sha256d_80_us: a bare double SHA-256 of 80 bytes through hashlib, for reference.
The same figures for the pure-Python path (no C accelerator) are reported beside them.

Run: python benchmarks/hashing.py [--shares N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import time
from pathlib import Path

from pool.hashing import (
    ACCELERATOR,
    BIP320_VERSION_MASK,
    NOTIFY_FIELDS,
    HeaderWork,
    difficulty_to_target,
)
from pool.stratum.judge import judge, parse_submit

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "blocks.json"


def load_job(accelerated: bool) -> HeaderWork:
    blocks = json.loads(VECTORS.read_text())
    notify = next(b for b in blocks if b["height"] == 574200)["synthetic_stratum"]["notify"]
    assert len(notify["merkle_branch"]) == 12
    return HeaderWork.from_notify([notify[f] for f in NOTIFY_FIELDS], accelerated=accelerated)


def per_share_us(accelerated: bool, shares: int, fresh: bool, rounds: int = 5) -> float:
    """Median over rounds of µs per share, parse and judge."""
    # Every share meets the target: the accepted share's path, the one the pool's throughput
    # is made of (a reject also formats its reason).
    target = difficulty_to_target(1e-9)
    extranonce1 = bytes.fromhex("2c150000")
    window = (0, 0xFFFFFFFF)
    seen: set[int] = set()
    results = []
    for r in range(rounds):
        work = load_job(accelerated)  # a new job: no cached roots from an earlier round
        if fresh:
            inputs = [
                ["w", "1", f"{r:02x}{i:06x}", "5cca7357", "9934f20e", "00002000"]
                for i in range(shares)
            ]
        else:
            inputs = [
                ["w", "1", "00000000", "5cca7357", f"{i:08x}", "00002000"] for i in range(shares)
            ]
        start = time.perf_counter()
        for params in inputs:
            judge(
                work,
                extranonce1,
                parse_submit(params, 4),
                version_mask=BIP320_VERSION_MASK,
                difficulty=1e-9,
                share_target=target,
                grace=None,
                ntime_range=window,
                seen=seen,
            )
        results.append((time.perf_counter() - start) / shares * 1e6)
    return statistics.median(results)


def sha256d_80_us(count: int) -> float:
    sha = hashlib.sha256
    data = [i.to_bytes(80, "little") for i in range(count)]
    start = time.perf_counter()
    for item in data:
        sha(sha(item).digest()).digest()
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=int, default=100_000, help="shares per round")
    args = parser.parse_args()
    if args.shares < 1000:
        parser.error("--shares must be at least 1000")
    n = args.shares
    accelerated = ACCELERATOR is not None
    fresh = per_share_us(accelerated, n, fresh=True)
    repeat = per_share_us(accelerated, n, fresh=False)
    fresh_py = per_share_us(False, n, fresh=True)
    repeat_py = per_share_us(False, n, fresh=False)
    bare = statistics.median(sha256d_80_us(n) for _ in range(5))
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print(f"C accelerator: {'yes' if accelerated else 'NO (pure Python)'}")
    print(f"validate fresh   {fresh:7.2f} us   (pure Python {fresh_py:.2f} us)")
    print(f"validate repeat  {repeat:7.2f} us   (pure Python {repeat_py:.2f} us)")
    print(f"sha256d(80)      {bare:7.2f} us")

    def fig(value: float, target: float) -> dict[str, object]:
        return {"value": round(value, 3), "unit": "us", "target": target, "better": "lower"}

    print(
        json.dumps(
            {
                "benchmark": "hashing",
                "figures": {
                    "validate_fresh_us": fig(fresh, 12),
                    "validate_repeat_us": fig(repeat, 2),
                    "sha256d_80_us": fig(bare, 1.1),
                    "validate_fresh_pure_python_us": fig(fresh_py, 12),
                    "validate_repeat_pure_python_us": fig(repeat_py, 2),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
