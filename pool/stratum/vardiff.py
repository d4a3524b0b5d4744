"""Vardiff: retargets one session's difficulty so that it sends a share every few seconds.

It acts only on evidence: a window closes after `min_shares` shares or `max_window_s`
seconds, the share rate of that window gives the difficulty that would have met the target
interval, and the difficulty changes only when that is off by more than `tolerance` (x2 by
default). A window with no share at all halves the difficulty, no more: the miner may only
have been reconnecting, and a deep drop for an ASIC floods the pool.
"""

from __future__ import annotations

from pool.config import VardiffSettings


class Vardiff:
    """The retargeting state of one session."""

    __slots__ = ("settings", "shares", "window_start")

    def __init__(self, settings: VardiffSettings, now: float) -> None:
        self.settings = settings
        self.window_start = now
        self.shares = 0

    def restart(self, now: float) -> None:
        self.window_start = now
        self.shares = 0

    def on_share(self, difficulty: float, now: float) -> float | None:
        """Count an accepted share; the new difficulty when the window shows one is due."""
        self.shares += 1
        if self.shares < self.settings.min_shares and (
            now - self.window_start < self.settings.max_window_s
        ):
            return None
        return self._close_window(difficulty, now)

    def on_idle(self, difficulty: float, now: float) -> float | None:
        """Periodic check for sessions whose shares stopped or never came."""
        if now - self.window_start < self.settings.max_window_s:
            return None
        return self._close_window(difficulty, now)

    def _close_window(self, difficulty: float, now: float) -> float | None:
        elapsed = max(now - self.window_start, 1e-3)
        shares = self.shares
        self.restart(now)
        target = self.settings.target_share_interval_s
        if shares == 0:
            return difficulty / 2
        ideal = difficulty * shares * target / elapsed
        ratio = ideal / difficulty
        tolerance = self.settings.tolerance
        if 1 / tolerance <= ratio <= tolerance:
            return None
        return ideal


def clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def nice_difficulty(value: float) -> float:
    """Round to a number miners and logs show well: a power of two at or above 1, else 3
    significant digits."""
    if value >= 1:
        power = 1
        while power * 2 <= value:
            power *= 2
        return float(power)
    return float(f"{value:.3g}")
