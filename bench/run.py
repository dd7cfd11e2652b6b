"""``python -m bench``: run the benchmarks, keep the figures, rewrite docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import CACHE, ROOT, load, machine

PARTS = ("cold", "warm", "package", "e2e", "powertools", "cost")
RESULTS = CACHE / "results.json"
# Bump when a part's figures change shape: older kept figures are dropped, not misread.
# 2: the FIFO queue design (SQS hand-off, the poller, requests on the wire, powertools).
# 3: the metric lines written and counted (METRICS_STACK set), the token-based OpenAI cost.
RESULTS_FORMAT = 3
DOC = ROOT / "docs" / "BENCHMARKS.md"


def _runner(part: str) -> Callable[..., dict[str, Any]]:
    if part == "cold":
        from bench.cold import run
    elif part == "warm":
        from bench.warm import run
    elif part == "package":
        from bench.package import run
    elif part == "e2e":
        from bench.e2e import run
    elif part == "powertools":
        from bench.powertools import run
    else:
        raise ValueError(part)
    return run


def _parts(only: list[str] | None) -> list[str]:
    if not only:
        return list(PARTS)
    chosen = {p.strip() for item in only for p in item.split(",") if p.strip()}
    unknown = chosen - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s): {', '.join(sorted(unknown))}; choose from {PARTS}")
    return [p for p in PARTS if p in chosen]


def load_results() -> dict[str, Any]:
    try:
        results = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(results, dict) or results.get("format") != RESULTS_FORMAT:
        return {}  # figures of an older layout: measure again rather than misread them
    return results


def _save(results: dict[str, Any]) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the bridge against local stand-ins and rewrite docs/BENCHMARKS.md.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="PART",
        help=f"run only these parts ({'|'.join(PARTS)}; repeat or comma-separate)",
    )
    parser.add_argument(
        "--no-doc", action="store_true", help="print the summary but leave docs/BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    parts = _parts(args.only)
    command = "python -m bench" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))

    results = load_results()
    results["format"] = RESULTS_FORMAT
    results["machine"] = machine()
    busy = load()[0]
    if busy > 0.5 * (results["machine"]["cores"] or 1):
        print(
            f"warning: load average {busy} on {results['machine']['cores']} cores: other work "
            "is running and the figures will be noisier (see `uptime`)",
            flush=True,
        )
    started = time.monotonic()
    for part in parts:
        if part == "cost":
            continue
        print(f"[{part}] load {load()}", flush=True)
        before = load()
        t0 = time.monotonic()
        figures = _runner(part)(quick=args.quick, progress=lambda m: print(m, flush=True))
        results[part] = {
            **figures,
            "meta": {
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "quick": args.quick,
                "seconds": round(time.monotonic() - t0, 1),
                "load_before": before,
                "load_after": load(),
                "command": command,
            },
        }
        _save(results)  # a later part's failure must not lose this one's figures
    if "cost" in parts or "e2e" in parts:
        if "e2e" not in results:
            print("[cost] no end-to-end figures yet: running e2e --quick first", flush=True)
            return main(["--only", "e2e,cost", "--quick", *(["--no-doc"] if args.no_doc else [])])
        from bench.cost import run as cost

        results["cost"] = {
            **cost(results),
            "meta": {
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "from_e2e_of": results["e2e"]["meta"]["date"],
                "command": command,
            },
        }
    results["last_command"] = command
    _save(results)

    from bench.report import render, summary_lines

    print()
    for line in summary_lines(results):
        print(line)
    print(f"\n({time.monotonic() - started:.0f} s; figures in {RESULTS.relative_to(ROOT)})")
    if not args.no_doc:
        DOC.write_text(render(results))
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0
