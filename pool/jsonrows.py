"""Rows as JSON for the CLI's --json and the API: a dataclass row's fields, in order, with
times in ISO 8601 (what `json.dumps` cannot write by itself)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any


def json_fields(row: Any) -> dict[str, Any]:
    """A dataclass instance's fields by name, in declaration order; datetimes as ISO 8601."""
    return {
        field.name: value.isoformat() if isinstance(value, datetime) else value
        for field in fields(row)
        for value in (getattr(row, field.name),)
    }
