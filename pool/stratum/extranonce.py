"""Extranonce1 allocation: a unique value for every open connection, resumable by session id.

The session id a miner gets is its extranonce1 in hex (as ckpool does), so a miner that
reconnects with its old session id gets the same extranonce1 back when no other connection
holds it. Values come from a counter that starts at a random point, so a restarted pool does
not hand out the same sequence again.
"""

from __future__ import annotations

import os


class ExtranonceExhausted(RuntimeError):
    """Every extranonce1 value is in use."""


class ExtranonceAllocator:
    """Hands out `size`-byte extranonce1 values that begin with `prefix`."""

    def __init__(self, size: int = 4, prefix: bytes = b"") -> None:
        if not 0 <= len(prefix) < size:
            raise ValueError("the prefix must be shorter than the extranonce1")
        self.size = size
        self.prefix = prefix
        self._free_bits = 8 * (size - len(prefix))
        self._space = 1 << self._free_bits
        self._next = int.from_bytes(os.urandom(8), "big") % self._space
        self.in_use: set[bytes] = set()

    def _value(self, n: int) -> bytes:
        return self.prefix + n.to_bytes(self.size - len(self.prefix), "big")

    def allocate(self, wanted: bytes | None = None) -> bytes:
        """A free extranonce1: `wanted` if it is ours and free (session resume), else the next."""
        if (
            wanted is not None
            and len(wanted) == self.size
            and wanted.startswith(self.prefix)
            and wanted not in self.in_use
        ):
            self.in_use.add(wanted)
            return wanted
        if len(self.in_use) >= self._space:
            raise ExtranonceExhausted(f"all {self._space} extranonce1 values are in use")
        while True:
            value = self._value(self._next)
            self._next = (self._next + 1) % self._space
            if value not in self.in_use:
                self.in_use.add(value)
                return value

    def release(self, value: bytes) -> None:
        self.in_use.discard(value)
