"""How the `farmpool` commands print: the one table printer, and times as the tables show them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Row = TypeVar("Row")


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


def print_rows(
    rows: Sequence[Row],
    as_json: bool,
    header: Sequence[str],
    cells: Callable[[Row], Sequence[str]],
    empty: str,
    to_json: Callable[[Row], Any] = lambda row: row.to_json(),  # type: ignore[attr-defined]
) -> None:
    """A listing: one JSON list (`--json`), or a table of `cells` per row."""
    if as_json:
        print(json.dumps([to_json(row) for row in rows]))
    else:
        print_table(header, [cells(row) for row in rows], empty)


def when(moment: Any) -> str:
    """A stored UTC time, to the second."""
    return str(moment.strftime("%Y-%m-%d %H:%M:%S"))
