"""The report itself: written only when asked for, so running the tests leaves the tree alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.reliability import report
from tests.reliability.conftest import REPORT_VARIABLE, report_decision

AREA = "This report"
ROOT = Path(__file__).resolve().parents[2]


def make_dry_run(target: str) -> str:
    """What ``make -n <target>`` would run (nothing is run)."""
    run = subprocess.run(
        ["make", "-n", "--no-print-directory", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_a_plain_run_does_not_write_the_report(scenario):
    runs = {
        "plain pytest (no variable)": ({}, True),
        f"{REPORT_VARIABLE}=0": ({REPORT_VARIABLE: "0"}, True),
        f"{REPORT_VARIABLE}=": ({REPORT_VARIABLE: ""}, True),
        f"{REPORT_VARIABLE}=1, part of the directory": ({REPORT_VARIABLE: "1"}, False),
        f"{REPORT_VARIABLE}=1, the whole directory": ({REPORT_VARIABLE: "1"}, True),
    }
    scenario.tried(
        "the end-of-run decision for a plain run, runs with the variable off or empty, one "
        "that covered part of the directory and one asked for and complete; the commands "
        "`make test`, `make test-slow` and `make reliability-report` would run",
        f"only a run with {REPORT_VARIABLE}=1 that covered the whole directory writes "
        f"{report.DOC.name}; `make test` does not set the variable, the other two do",
    )
    decisions = {name: report_decision(env, whole) for name, (env, whole) in runs.items()}
    written = [name for name, why in decisions.items() if why is None]
    commands = {target: make_dry_run(target) for target in ("test", "test-slow")}
    commands["reliability-report"] = make_dry_run("reliability-report")
    asking = sorted(t for t, text in commands.items() if f"{REPORT_VARIABLE}=1" in text)
    scenario.saw(f"written only for: {written}; make targets that ask for it: {asking}")
    assert written == [f"{REPORT_VARIABLE}=1, the whole directory"]
    assert asking == ["reliability-report", "test-slow"]
    assert all("pytest" in text for text in commands.values())
