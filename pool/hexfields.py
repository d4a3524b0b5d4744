"""Strict hex decoding for fields that come from outside (node answers, Stratum messages, CLI).

`bytes.fromhex` skips white space, so `"00 01"` would pass as one byte short of what was
meant; here only hex digits are hex. Errors say what was wrong; callers add where it was.
"""

from __future__ import annotations

import json
import re
from typing import Any

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


class HexError(ValueError):
    """A value that is not the hex it should be."""


def parse_hex(value: Any, size: int | None = None) -> bytes:
    """Hex text to bytes, optionally of exactly `size` bytes."""
    if not isinstance(value, str):
        raise HexError(f"expected hex text, got {json.dumps(value, default=repr)[:80]}")
    if not _HEX.fullmatch(value):
        raise HexError(f"not hex: {value[:80]!r}")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise HexError(f"expected {size} bytes ({2 * size} hex digits), got {len(raw)}")
    return raw
