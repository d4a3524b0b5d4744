"""`farmpool share-check` and `farmpool config check`: checks that need no node or database."""

from __future__ import annotations

import argparse
import json

from pool.cli.common import config_settings


def cmd_share_check(args: argparse.Namespace) -> int:
    from pool import sharecheck as sc

    extranonce2_size = sc.parse_extranonce2_size(args.extranonce2_size)
    notify = sc.parse_notify(args.notify)
    submit = sc.parse_submit(args.submit, extranonce2_size)
    extranonce1 = sc.parse_extranonce1(args.extranonce1)
    difficulty = sc.parse_difficulty(args.difficulty)
    mask = sc.parse_mask(args.version_mask)
    result = sc.check_share(notify, extranonce1, submit, difficulty, mask)
    if args.json:
        print(json.dumps(result))
    else:
        print(sc.format_text(result))
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = config_settings(args)
    print(f"{settings.source}: OK (network {settings.network}, node {settings.node.redacted_url})")
    return 0
