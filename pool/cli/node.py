"""`farmpool node check|release` and `farmpool work`: the node as the pool sees it."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from pool.cli.common import admin_call, config_settings
from pool.cli.errors import EXIT_BAD_INPUT, CliError, known
from pool.config import Settings

log = logging.getLogger("farmpool")


def _prepare_node(settings: Settings, wait_s: float = 0.0) -> tuple[Any, bool, str]:
    from pool.service import prepare_node

    return prepare_node(settings, wait_s)


def cmd_node_check(args: argparse.Namespace) -> int:
    from pool.chain.template import fetch_template

    settings = config_settings(args)
    rpc, segwit, chain = _prepare_node(settings)
    template = fetch_template(rpc, segwit)
    print(
        json.dumps(
            {
                "node": settings.node.redacted_url,
                "chain": chain,
                "segwit": segwit,
                "height": template.height,
                "prevhash": template.prevhash_hex,
                "transactions": len(template.transactions),
                "coinbasevalue": template.coinbasevalue,
                "witness_commitment": template.witness_commitment is not None,
                "longpoll": template.longpollid is not None,
            }
        )
    )
    return 0


def cmd_node_release(args: argparse.Namespace) -> int:
    """farmpool node release NAME: a decommissioned stratum node's prefix byte is free again."""
    from pool.ledger.leases import release_prefix

    settings = config_settings(args)
    held = admin_call(settings, lambda engine: release_prefix(engine, args.name))
    if held is None:
        print(f"node {args.name} held no extranonce1 prefix")
    else:
        print(f"node {args.name}: extranonce1 prefix {held:02x} released (do not start it again)")
    return 0


def cmd_work(args: argparse.Namespace) -> int:
    """Run the work source; print every job; with --mine, mine and submit blocks (regtest)."""
    from twisted.internet import defer
    from twisted.internet import reactor as _reactor

    from pool.chain.job import Job, JobFactory
    from pool.chain.mining import MinedBlock, mine_blocks, sleep
    from pool.chain.rpc import AsyncNode, NodeRPC
    from pool.chain.worksource import WorkSource

    reactor: Any = _reactor
    settings = config_settings(args)
    if args.mine and settings.network != "regtest":
        raise CliError("--mine is for regtest only", EXIT_BAD_INPUT)
    if args.mine < 0 or args.seconds <= 0 or args.wait_node < 0:
        raise CliError(
            "--mine and --wait-node must be 0 or more, --seconds positive", EXIT_BAD_INPUT
        )
    failed: list[Exception] = []
    factory = JobFactory(settings.coinbase)
    rpc = NodeRPC(settings.node.url, settings.node.rpc_timeout_s)
    node = AsyncNode(rpc, reactor)
    extranonce1 = b"\x00" * settings.coinbase.extranonce1_size

    def report(job: Job) -> None:
        print(
            json.dumps(
                {
                    "event": "job",
                    "job_id": job.job_id,
                    "height": job.height,
                    "clean": job.clean,
                    "transactions": len(job.template.transactions),
                    "prevhash": job.prevhash_hex,
                }
            ),
            flush=True,
        )

    def found(block: MinedBlock) -> None:
        print(
            json.dumps(
                {
                    "event": "block",
                    "height": block.height,
                    "hash": block.hash,
                    "accepted": block.accepted,
                    "reason": block.reason,
                }
            ),
            flush=True,
        )

    @defer.inlineCallbacks
    def main() -> Any:
        try:
            _, segwit, chain = yield node.run(_prepare_node, settings, args.wait_node)
            log.info("node %s: chain %s, segwit %s", settings.node.redacted_url, chain, segwit)
            source = WorkSource(node, factory, settings.node, segwit, reactor)
            source.listeners.append(report)
            yield source.start()
            yield mine_blocks(
                source,
                node,
                args.mine,
                extranonce1,
                settings.coinbase.extranonce2_size,
                reactor,
                found,
            )
            if not args.mine:
                yield sleep(reactor, args.seconds)
            source.stop()
        except Exception as exc:
            if known(exc) is None:
                raise
            failed.append(exc)
        finally:
            reactor.stop()

    reactor.callWhenRunning(main)
    reactor.run()
    if failed:
        raise failed[0]
    return 0
