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

from pool.hashing import (
    BIP320_VERSION_MASK,
    HeaderWork,
    ShareError,
    bits_to_difficulty,
    difficulty_to_target,
    stratum_prevhash_to_header,
)
from pool.hexfields import HexError, parse_hex

#: An ntime more than this past the job's is refused (pools compare with their clock).
NTIME_AHEAD_S = 7200
MAX_EXTRANONCE2 = 8


class InputError(ValueError):
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


@dataclass(frozen=True)
class Submit:
    worker: str
    job_id: str
    extranonce2: bytes
    ntime: int
    nonce: int
    version_bits: int | None


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
    option = "--submit"
    p = _message(text, option, "mining.submit")
    if len(p) not in (5, 6):
        raise InputError(f"{option}: mining.submit has 5 or 6 params, got {len(p)}")
    for i, name in ((0, "worker"), (1, "job_id")):
        if not isinstance(p[i], str):
            raise InputError(f"{option} params[{i}] ({name}): expected text")
    return Submit(
        worker=p[0],
        job_id=p[1],
        extranonce2=_hex(option, 2, "extranonce2", p[2], extranonce2_size),
        ntime=_u32(option, 3, "ntime", p[3]),
        nonce=_u32(option, 4, "nonce", p[4]),
        version_bits=_u32(option, 5, "version_bits", p[5]) if len(p) == 6 else None,
    )


def parse_extranonce1(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise InputError(f"--extranonce1: not hex: {text!r}") from None
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
        raw = bytes.fromhex(text)
    except ValueError:
        raise InputError(f"--version-mask: not hex: {text!r}") from None
    if len(raw) != 4:
        raise InputError(f"--version-mask: expected 8 hex digits, got {text!r}")
    return int.from_bytes(raw, "big")


def check_share(
    notify: Notify,
    extranonce1: bytes,
    submit: Submit,
    difficulty: float,
    version_mask: int,
) -> dict[str, Any]:
    """Hash the share and give every intermediate and the verdict as a JSON-able dict."""
    work = HeaderWork(
        notify.coinb1, notify.coinb2, notify.branch, notify.version, notify.prevhash, notify.nbits
    )
    reasons: list[str] = []
    if submit.job_id != notify.job_id:
        reasons.append(
            f"job not found: submit names job {submit.job_id!r}, the job is {notify.job_id!r}"
        )
    if submit.ntime > notify.ntime + NTIME_AHEAD_S:
        reasons.append(
            f"ntime {submit.ntime:08x} is more than {NTIME_AHEAD_S} s "
            f"after the job's {notify.ntime:08x}"
        )
    try:
        version = work.rolled_version(submit.version_bits, version_mask)
    except ShareError as exc:
        reasons.append(str(exc))
        version = work.version
    share = work.explain_share(extranonce1, submit.extranonce2, submit.ntime, submit.nonce, version)
    share_target = difficulty_to_target(difficulty)
    meets_difficulty = share.value <= share_target
    meets_network = share.value <= work.network_target
    if not meets_difficulty:
        reasons.append(
            f"low difficulty share: {share.difficulty:.6g} "
            f"is below the pool difficulty {difficulty:g}"
        )
    return {
        "job_id": notify.job_id,
        "coinbase": (share.coinbase or b"").hex(),
        "merkle_root": share.merkle_root[::-1].hex(),
        "merkle_root_internal": share.merkle_root.hex(),
        "version": f"{version:08x}",
        "header": share.header.hex(),
        "hash": share.hash_hex,
        "share_difficulty": share.difficulty,
        "pool_difficulty": difficulty,
        "share_target": f"{share_target:064x}",
        "network_target": f"{work.network_target:064x}",
        "network_difficulty": bits_to_difficulty(notify.nbits),
        "meets_difficulty": meets_difficulty,
        "meets_network": meets_network,
        "verdict": "rejected" if reasons else "accepted",
        "reason": "; ".join(reasons) if reasons else None,
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
