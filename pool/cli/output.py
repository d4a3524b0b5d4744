"""How the `farmpool` commands print: the one table printer, and times as the tables show them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> None:
    """Columns aligned, two spaces apart, no trailing blanks; `empty` when there are no rows."""
    if not rows:
        print(empty)
        return
    lines = [list(header), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def when(moment: Any) -> str:
    """A stored UTC time, to the second."""
    return str(moment.strftime("%Y-%m-%d %H:%M:%S"))
