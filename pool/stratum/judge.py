"""One share's verdict: the submit parsed once, then judged by one pure function.

The share path's check step, between the session (which knows the worker, the job and the
difficulty) and the ledger. `parse_submit` turns a `mining.submit`'s params into a `Submit`
(every hex field exactly the right number of `[0-9a-fA-F]` digits, nothing else: no sign, no
`0x`, no `_`, no spaces), and that one value travels on to hashing and, for a block, to block
assembly. `judge` gives the verdict, with the Stratum error code and reason of a reject; the
server and `farmpool share-check` both call it, so the tool explains exactly what the pool
decides. The ntime window is defined here, once.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, NamedTuple

from pool.hashing import HeaderWork, ShareError, target_to_difficulty
from pool.stratum import errors as E

#: The params of `mining.submit`, in order (the sixth, version bits, is optional).
SUBMIT_FIELDS = ("worker", "job_id", "extranonce2", "ntime", "nonce", "version_bits")

#: Longest job id a submit may name (the pool's own are at most 8 hex digits).
MAX_JOB_ID = 64


class SubmitError(ValueError):
    """A submit that is not well-formed; `index` and `field` name the param."""

    def __init__(self, index: int | None, field: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.field = field
        self.message = message


_new = tuple.__new__


class Submit(NamedTuple):
    """A `mining.submit`, parsed: the only form the share path reads its fields in."""

    worker: str
    job_id: str
    extranonce2: bytes
    ntime: int
    nonce: int
    version_bits: int | None


def exact_hex(value: Any, size: int) -> bytes | None:
    """Exactly `size` bytes written as 2*size hex digits, else None.

    `bytes.fromhex` takes hex digits and white space only (no sign, `0x` or `_`, which
    `int(x, 16)` would take); equal lengths mean there was no white space either.
    """
    if type(value) is not str or len(value) != 2 * size:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) == size else None


def _shown(value: Any) -> str:
    """A bad value, short, as a message may quote it."""
    text = repr(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 24 else text[:21] + "..."


def _u32(params: list[Any], index: int) -> int:
    value = params[index]
    if type(value) is str and len(value) == 8:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            pass
        else:
            if len(raw) == 4:  # no white space (fromhex skips it)
                return int.from_bytes(raw, "big")
    name = SUBMIT_FIELDS[index]
    raise SubmitError(index, name, f"{name} must be 8 hex digits, got {_shown(value)}")


def parse_submit(params: list[Any], extranonce2_size: int) -> Submit:
    """`mining.submit` params to a Submit; SubmitError names the first bad param."""
    n = len(params)
    if n != 5 and n != 6:
        raise SubmitError(None, "params", f"submit takes 5 or 6 params, got {n}")
    worker, job_id = params[0], params[1]
    if type(worker) is not str:
        raise SubmitError(0, "worker", f"worker must be text, got {_shown(worker)}")
    if type(job_id) is not str or not 0 < len(job_id) <= MAX_JOB_ID:
        raise SubmitError(
            1, "job_id", f"job_id must be 1 to {MAX_JOB_ID} characters, got {_shown(job_id)}"
        )
    extranonce2 = exact_hex(params[2], extranonce2_size)
    if extranonce2 is None:
        raise SubmitError(
            2,
            "extranonce2",
            f"extranonce2 must be {2 * extranonce2_size} hex digits ({extranonce2_size} bytes),"
            f" got {_shown(params[2])}",
        )
    # tuple.__new__: a NamedTuple's own constructor costs twice as much, once per share.
    return _new(
        Submit,
        (
            worker,
            job_id,
            extranonce2,
            _u32(params, 3),
            _u32(params, 4),
            _u32(params, 5) if n == 6 else None,
        ),
    )


def ntime_window(mintime: int, curtime: int, now: float | None, ahead_s: int) -> tuple[int, int]:
    """The ntime values a share on a template may carry: from the template's mintime up to
    its curtime or the clock (whichever is later) plus `ahead_s`."""
    latest = curtime if now is None else max(curtime, int(now))
    return mintime, latest + ahead_s


class Grace(NamedTuple):
    """The difficulty before the last change, while shares at it are still accepted."""

    difficulty: float
    target: int


class Verdict(NamedTuple):
    """What one share is: accepted (`code` None) or the Stratum error that refuses it."""

    code: int | None
    reason: str | None
    digest: bytes  # the header hash, internal byte order
    value: int  # the hash as a number
    version: int  # the header's version (rolled bits applied)
    is_block: bool  # meets the network target
    credited: float  # the difficulty an accepted share is credited with
    share_difficulty: float  # the difficulty the hash achieved

    @property
    def accepted(self) -> bool:
        return self.code is None


def judge(
    work: HeaderWork,
    extranonce1: bytes,
    submit: Submit,
    *,
    version_mask: int,
    difficulty: float,
    share_target: int,
    grace: Grace | None,
    ntime_range: tuple[int, int],
    seen: Container[int] = (),
) -> Verdict:
    """The verdict on one parsed submit, in the pool's order of checks: version bits inside
    the negotiated mask (20), ntime window (20), duplicate header (22, `seen` holds the low
    64 bits of the hashes already accepted), difficulty (23, with the grace of the previous
    difficulty). A hash that meets the network target is a block and never refused as low:
    it is credited at the session's difficulty, or at its own when that is lower."""
    try:
        version = work.rolled_version(submit.version_bits, version_mask)
    except ShareError as exc:
        return _refused(E.OTHER, str(exc), work.version)
    low, high = ntime_range
    if not low <= submit.ntime <= high:
        return _refused(
            E.OTHER, f"ntime {submit.ntime:08x} out of range ({low:08x} to {high:08x})", version
        )
    digest, value = work.hash_share(
        extranonce1, submit.extranonce2, submit.ntime, submit.nonce, version
    )
    is_block = value <= work.network_target
    if int.from_bytes(digest[:8], "little") in seen:  # duplicate_key, inlined
        return Verdict(E.DUPLICATE, "Duplicate share", digest, value, version, is_block, 0.0, 0.0)
    credited = difficulty
    if value > share_target and not is_block:
        if grace is not None and value <= grace.target:
            credited = grace.difficulty
        else:
            achieved = target_to_difficulty(value)
            return Verdict(
                E.LOW_DIFFICULTY,
                f"Low difficulty share ({achieved:.6g} < {difficulty:g})",
                digest,
                value,
                version,
                False,
                0.0,
                achieved,
            )
    achieved = target_to_difficulty(value)
    if value > share_target:  # a block below the session's difficulty
        credited = min(credited, achieved)
    return _new(Verdict, (None, None, digest, value, version, is_block, credited, achieved))


def duplicate_key(digest: bytes) -> int:
    """What a job's `seen` set remembers of an accepted share's hash (its low 64 bits)."""
    return int.from_bytes(digest[:8], "little")


def _refused(code: int, reason: str, version: int) -> Verdict:
    return Verdict(code, reason, b"", 0, version, False, 0.0, 0.0)
