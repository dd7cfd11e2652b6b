"""How Lambda reads the level of a JSON log line, for its application log-level filter.

From AWS's "Log-level filtering" page: a line needs a valid ``level`` and a ``timestamp`` in
RFC 3339; if either is missing or invalid, Lambda files the line as INFO, and a filter set
to WARN or above drops it.
"""

from __future__ import annotations

import json
import re

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")


def level_lambda_reads(line: str) -> str:
    document = json.loads(line)
    level = str(document.get("level", "")).upper()
    stamp = document.get("timestamp")
    if level not in LEVELS or not isinstance(stamp, str) or not RFC3339.match(stamp):
        return "INFO"
    return level


def kept_at(line: str, filter_level: str) -> bool:
    """Whether Lambda stores ``line`` when the function's application log level is this."""
    return LEVELS.index(level_lambda_reads(line)) >= LEVELS.index(filter_level)
