"""Output for people (aligned tables, readable dates) and for programs (CSV, JSON).

Tables are for reading in a terminal; CSV and JSON keep ISO dates and plain numbers so a
spreadsheet or ``jq`` gets exact values. No colours: output is often piped or pasted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MISSING = "-"


@dataclass(frozen=True)
class Column:
    title: str
    right: bool = False  # numbers line up on the right


def table(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> str:
    """A header and rows, columns two spaces apart, no trailing spaces."""
    cells = [[c.title for c in columns], *[[str(v) for v in row] for row in rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [
            cell.rjust(width) if column.right else cell.ljust(width)
            for cell, width, column in zip(line, widths, columns, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def to_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV with ``\\n`` line ends; ``None`` is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue()


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def parse_stamp(stamp: str) -> datetime | None:
    """The store's ISO timestamps; one without a zone is UTC, as the bot writes UTC."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ago(delta: timedelta) -> str:
    """'just now', '5 min ago', '3 h ago', '2 days ago': how long, at a glance."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return "just now" if seconds > -60 else "in the future"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h ago"
    days = hours // 24
    if days < 60:
        return f"{days} days ago"
    return f"{days // 30} months ago"


def human_time(stamp: str, now: datetime, tz: ZoneInfo) -> str:
    """'2026-11-25 12:00 (2 h ago)' in the quota's zone; the raw text if it is not a date."""
    moment = parse_stamp(stamp)
    if moment is None:
        return stamp or MISSING
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M} ({ago(now - moment)})"


def human_date(stamp: str, tz: ZoneInfo) -> str:
    moment = parse_stamp(stamp)
    if moment is None:
        return stamp or MISSING
    return f"{moment.astimezone(tz):%Y-%m-%d}"


def iso_stamp(stamp: str) -> str | None:
    """The stamp for machines: ISO 8601 in UTC (``+00:00``), or ``None`` when unset."""
    moment = parse_stamp(stamp)
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def limit_text(limit: int | None) -> str:
    return "unlimited" if limit is None else str(limit)


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """'Label   value' lines with the values lined up: one record for reading."""
    width = max((len(label) for label, _ in pairs), default=0)
    return "".join(f"{label.ljust(width)}  {value}".rstrip() + "\n" for label, value in pairs)
