"""`farmpool share-check`: replays one share through the hashing core and explains the verdict.

The operator's answer to "why did my ASIC's share get rejected": it takes the job and the submit
exactly as the miner saw and sent them (whole Stratum messages), rebuilds the coinbase, merkle
root and header, and reports the hash, its difficulty and every check. Input errors name the
field (`--submit params[4] (nonce)`) and never produce a verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pool.config import StratumSettings
from pool.errors import BadInput
from pool.hashing import (
    BIP320_VERSION_MASK,
    HeaderWork,
    bits_to_difficulty,
    difficulty_to_target,
    stratum_prevhash_to_header,
)
from pool.hexfields import HexError, parse_hex
from pool.stratum.judge import Submit, SubmitError, judge, ntime_window
from pool.stratum.judge import parse_submit as parse_submit_params

MAX_EXTRANONCE2 = 8


class InputError(ValueError, BadInput):
    """A share-check argument that is not what it must be; the message names the field."""


@dataclass(frozen=True)
class Notify:
    job_id: str
    prevhash: bytes
    coinb1: bytes
    coinb2: bytes
    branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean: bool


def _message(text: str, option: str, method: str) -> list[Any]:
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{option}: not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(message, dict):
        raise InputError(f"{option}: expected a JSON object (a whole Stratum message)")
    if message.get("method") != method:
        raise InputError(f"{option}: method must be {method!r}, got {message.get('method')!r}")
    params = message.get("params")
    if not isinstance(params, list):
        raise InputError(f"{option}: params must be a list")
    return params


def _hex(option: str, index: int, name: str, value: Any, size: int | None = None) -> bytes:
    try:
        return parse_hex(value, size)
    except HexError as exc:
        raise InputError(f"{option} params[{index}] ({name}): {exc}") from None


def _u32(option: str, index: int, name: str, value: Any) -> int:
    return int.from_bytes(_hex(option, index, name, value, 4), "big")


def parse_notify(text: str) -> Notify:
    option = "--notify"
    p = _message(text, option, "mining.notify")
    if len(p) < 9:
        raise InputError(f"{option}: mining.notify has 9 params, got {len(p)}")
    if not isinstance(p[0], str):
        raise InputError(f"{option} params[0] (job_id): expected text")
    if not isinstance(p[4], list):
        raise InputError(f"{option} params[4] (merkle_branch): expected a list of hashes")
    branch = tuple(_hex(option, 4, f"merkle_branch[{i}]", h, 32) for i, h in enumerate(p[4]))
    if not isinstance(p[8], bool):
        raise InputError(f"{option} params[8] (clean_jobs): expected true or false")
    return Notify(
        job_id=p[0],
        prevhash=stratum_prevhash_to_header(_hex(option, 1, "prevhash", p[1], 32).hex()),
        coinb1=_hex(option, 2, "coinb1", p[2]),
        coinb2=_hex(option, 3, "coinb2", p[3]),
        branch=branch,
        version=_u32(option, 5, "version", p[5]),
        nbits=_u32(option, 6, "nbits", p[6]),
        ntime=_u32(option, 7, "ntime", p[7]),
        clean=p[8],
    )


def parse_submit(text: str, extranonce2_size: int) -> Submit:
    """The whole `mining.submit` message, parsed as the pool parses it."""
    option = "--submit"
    p = _message(text, option, "mining.submit")
    try:
        return parse_submit_params(p, extranonce2_size)
    except SubmitError as exc:
        where = option if exc.index is None else f"{option} params[{exc.index}] ({exc.field})"
        raise InputError(f"{where}: {exc.message}") from None


def parse_extranonce1(text: str) -> bytes:
    try:
        raw = parse_hex(text)
    except HexError as exc:
        raise InputError(f"--extranonce1: {exc}") from None
    if not 1 <= len(raw) <= 16:
        raise InputError(f"--extranonce1: expected 1 to 16 bytes, got {len(raw)}")
    return raw


def parse_extranonce2_size(value: int) -> int:
    if not 1 <= value <= MAX_EXTRANONCE2:
        raise InputError(
            f"--extranonce2-size: expected 1 to {MAX_EXTRANONCE2} "
            f"(larger breaks cgminer-derived firmware), got {value}"
        )
    return value


def parse_difficulty(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--difficulty: expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise InputError(f"--difficulty: expected a positive number, got {text!r}")
    return value


def parse_mask(text: str | None) -> int:
    if text is None:
        return BIP320_VERSION_MASK
    try:
        return int.from_bytes(parse_hex(text, 4), "big")
    except HexError as exc:
        raise InputError(f"--version-mask: {exc}") from None


def check_share(
    notify: Notify,
    extranonce1: bytes,
    submit: Submit,
    difficulty: float,
    version_mask: int,
) -> dict[str, Any]:
    """Hash the share and give every intermediate and the verdict as a JSON-able dict.

    The verdict is the pool's own (pool/stratum/judge.py), with what a replay cannot know
    taken as the notify gives it: the job is the one the submit names or not, the ntime
    window runs from 0 (the template's mintime is not in a notify) to the job's ntime plus
    the pool's default `ntime_ahead_s`, and no share was seen before."""
    work = HeaderWork(
        notify.coinb1, notify.coinb2, notify.branch, notify.version, notify.prevhash, notify.nbits
    )
    share_target = difficulty_to_target(difficulty)
    verdict = judge(
        work,
        extranonce1,
        submit,
        version_mask=version_mask,
        difficulty=difficulty,
        share_target=share_target,
        grace=None,
        ntime_range=ntime_window(0, notify.ntime, None, StratumSettings().ntime_ahead_s),
    )
    reason = verdict.reason
    if submit.job_id != notify.job_id:  # the pool answers this first (error 21)
        reason = f"job not found: submit names job {submit.job_id!r}, the job is {notify.job_id!r}"
    share = work.explain_share(
        extranonce1, submit.extranonce2, submit.ntime, submit.nonce, verdict.version
    )
    return {
        "job_id": notify.job_id,
        "coinbase": (share.coinbase or b"").hex(),
        "merkle_root": share.merkle_root[::-1].hex(),
        "merkle_root_internal": share.merkle_root.hex(),
        "version": f"{verdict.version:08x}",
        "header": share.header.hex(),
        "hash": share.hash_hex,
        "share_difficulty": share.difficulty,
        "pool_difficulty": difficulty,
        "share_target": f"{share_target:064x}",
        "network_target": f"{work.network_target:064x}",
        "network_difficulty": bits_to_difficulty(notify.nbits),
        "meets_difficulty": share.value <= share_target,
        "meets_network": share.value <= work.network_target,
        "verdict": "rejected" if reason else "accepted",
        "reason": reason,
    }


def format_text(result: dict[str, Any]) -> str:
    lines = [
        f"coinbase       {result['coinbase']}",
        f"merkle root    {result['merkle_root']}",
        f"version        {result['version']}",
        f"header         {result['header']}",
        f"hash           {result['hash']}",
        f"share diff     {result['share_difficulty']:.6g}"
        f" (pool difficulty {result['pool_difficulty']:g})",
        f"network diff   {result['network_difficulty']:.6g}"
        f" -> {'BLOCK' if result['meets_network'] else 'not a block'}",
        f"verdict        {result['verdict']}"
        + (f": {result['reason']}" if result["reason"] else ""),
    ]
    return "\n".join(lines)
