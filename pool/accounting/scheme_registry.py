"""The payout schemes by name, with what each one does: the one place that says which schemes
pay per share, which split a block over a round of shares, and which include fees.

Where it sits: the config takes `payout.scheme` from `NAMES`; the block tracker
(pool/accounting/tracker.py), PPS crediting (pool/accounting/pps.py) and the CLI ask
`scheme(name)` for a scheme's properties instead of comparing names. The arithmetic of each
scheme is in pool/accounting/schemes.py; docs/payouts.md describes them. Pure data: nothing
here imports the database or the config (the config imports this).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scheme:
    """One payout scheme. Exactly one of `per_share`, `per_round` and `solo` is true."""

    name: str
    #: Each share is credited as it comes in (its expected value); the blocks are the pool's.
    per_share: bool = False
    #: A found block's reward is split over a round of shares (PPLNS, PROP).
    per_round: bool = False
    #: The round is the last N x network difficulty of shares (PPLNS); otherwise it is the
    #: shares since the previous block (PROP). Only for `per_round` schemes.
    round_window_is_shares: bool = False
    #: The finder takes the block it finds.
    solo: bool = False
    #: The transaction fees are paid out (in a found block's reward, or per share as the
    #: average fees of recent blocks: FPPS); PPS pays the subsidy only.
    includes_tx_fees: bool = True

    def __post_init__(self) -> None:
        if self.per_share + self.per_round + self.solo != 1:
            raise ValueError(f"scheme {self.name}: one of per_share, per_round and solo")
        if self.round_window_is_shares and not self.per_round:
            raise ValueError(f"scheme {self.name}: a share window is for round schemes")


class UnknownScheme(ValueError):
    """A scheme name that is not in the registry."""


#: The schemes, in the order the config lists them (docs/payouts.md).
SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("pplns", per_round=True, round_window_is_shares=True),
        Scheme("prop", per_round=True),
        Scheme("solo", solo=True),
        Scheme("pps", per_share=True, includes_tx_fees=False),
        Scheme("fpps", per_share=True),
    )
}

#: The schemes' names (`payout.scheme`'s choices).
NAMES: tuple[str, ...] = tuple(SCHEMES)

#: The schemes that split found blocks over rounds of shares (blocks.scheme of the blocks
#: whose shares were paid by their block).
PER_ROUND: tuple[str, ...] = tuple(name for name, s in SCHEMES.items() if s.per_round)


def scheme(name: str) -> Scheme:
    """The scheme called `name`; UnknownScheme for any other name."""
    found = SCHEMES.get(name)
    if found is None:
        raise UnknownScheme(f"unknown payout scheme {name!r} (one of {', '.join(NAMES)})")
    return found
