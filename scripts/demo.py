"""The demo behind `scripts/demo`: a regtest node, the pool's work pipeline, blocks found.

Starts bcoin in regtest (segwit), points farmpool at it with the node wallet's address as the
payout address, runs `farmpool work --mine N` (templates -> jobs -> CPU loop -> assembled
blocks -> submitblock) and then checks on the node that every block is in its chain and
pays the pool. Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import regtest_peers

from pool.chain.addresses import address_to_script
from pool.chain.serialize import parse_block


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5, help="blocks to mine (1..100)")
    args = parser.parse_args()
    if not 1 <= args.blocks <= 100:
        parser.error("--blocks must be from 1 to 100")
    regtest_peers.install_bcoin()
    with tempfile.TemporaryDirectory(prefix="farmpool-demo-") as tmp:
        work = Path(tmp)
        with regtest_peers.start_bcoin(work / "bcoin") as node:
            address = node.new_address()
            config = work / "farmpool.yaml"
            config.write_text(
                json.dumps(
                    {
                        "network": "regtest",
                        "node": {"url": node.rpc_url},
                        "pool": {"payout_address": address, "tag": "/farmpool-demo/"},
                    }
                )
            )
            print(f"regtest node: bcoin at 127.0.0.1:{node.rpc_port}; pool pays {address}")
            farmpool = [sys.executable, "-m", "pool", "-c", str(config)]
            subprocess.run([*farmpool, "node", "check"], check=True)
            run = subprocess.run(
                [*farmpool, "work", "--mine", str(args.blocks)], capture_output=True, text=True
            )
            events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
            for event in events:
                print(json.dumps(event))
            if run.returncode != 0:
                print(run.stderr, file=sys.stderr)
                return run.returncode
            blocks = [e for e in events if e["event"] == "block"]
            script = address_to_script(address, "regtest")
            print(f"\n{'height':>6}  {'block hash':64}  paid to pool (sat)")
            for event in blocks:
                raw = node.rpc("getblock", event["hash"], False)
                block = parse_block(bytes.fromhex(raw))
                paid = sum(o.value for o in block.txs[0].outputs if o.script == script)
                in_chain = node.rpc("getblockhash", event["height"]) == event["hash"]
                print(
                    f"{event['height']:>6}  {event['hash']}  {paid}"
                    f"{'' if in_chain else '  NOT IN CHAIN'}"
                )
                if not in_chain or paid <= 0:
                    return 1
            print(
                f"\n{len(blocks)} blocks found through the pool, accepted by the node, "
                f"tip height {node.rpc('getblockcount')}."
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
