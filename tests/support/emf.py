"""The Embedded Metric Format specification, as a checker for the lines the handler writes.

From AWS's specification: a JSON object with ``_aws`` holding ``Timestamp`` (epoch ms) and
``CloudWatchMetrics``, a list of directives, each with a ``Namespace``, ``Dimensions`` (a
list of dimension sets, each a list of at most 30 property names) and ``Metrics`` (at most
100 of ``{"Name", "Unit"}``); every dimension is a top-level string property and every
metric a top-level number or list of at most 100 numbers.
"""

from __future__ import annotations

import json
from typing import Any

UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def problems(line: str) -> list[str]:
    """What in ``line`` breaks the specification; empty for a valid EMF document."""
    try:
        document = json.loads(line)
    except json.JSONDecodeError:
        return ["not JSON"]
    if not isinstance(document, dict) or not isinstance(document.get("_aws"), dict):
        return ["no _aws object"]
    meta = document["_aws"]
    found = []
    if not isinstance(meta.get("Timestamp"), int) or meta["Timestamp"] < 10**12:
        found.append("Timestamp is not epoch milliseconds")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*found, "no CloudWatchMetrics"]
    for directive in directives:
        found += _directive_problems(directive, document)
    return found


def _directive_problems(directive: Any, document: dict[str, Any]) -> list[str]:
    found = []
    if not isinstance(directive.get("Namespace"), str) or not directive["Namespace"]:
        found.append("no Namespace")
    for dimension_set in directive.get("Dimensions", []):
        if not isinstance(dimension_set, list) or len(dimension_set) > 30:
            found.append("a dimension set is not a list of at most 30 names")
            continue
        for name in dimension_set:
            if not isinstance(document.get(name), str):
                found.append(f"dimension {name} is not a top-level string")
    metrics = directive.get("Metrics")
    if not isinstance(metrics, list) or not 0 < len(metrics) <= 100:
        return [*found, "Metrics is not a list of 1 to 100"]
    for metric in metrics:
        name, unit = metric.get("Name"), metric.get("Unit", "None")
        if unit not in UNITS:
            found.append(f"{name}: unit {unit!r} is not CloudWatch's")
        value = document.get(name)
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > 100:
            found.append(f"{name}: 1 to 100 values")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            found.append(f"{name}: values are not numbers")
    return found


def metric_lines(text: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines of ``text`` (a log stream)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            found.append(json.loads(line))
    return found
