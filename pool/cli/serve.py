"""`farmpool serve`: the stratum server (pool/service.py) until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging

from pool.cli.common import config_settings
from pool.cli.errors import EXIT_BAD_INPUT, CliError

log = logging.getLogger("farmpool")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the stratum server until SIGTERM/SIGINT."""
    from twisted.internet import reactor

    from pool import service

    settings = config_settings(args)
    if not settings.listeners:
        raise CliError(f"{settings.source}: listeners: none configured", EXIT_BAD_INPUT)
    if args.wait_node < 0:
        raise CliError("--wait-node must be 0 or more", EXIT_BAD_INPUT)
    error = service.run(settings, reactor, args.wait_node)
    if error is not None:
        raise CliError(error)
    log.info("stopped")
    return 0
