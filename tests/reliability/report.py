"""``docs/RELIABILITY.md``, written from the reliability suite's own results.

Every test says what it injected and what it expected (``scenario.tried``) and what it saw
(``scenario.saw``); pytest says whether it passed. The document is those rows in collection
order, so two runs of the same code differ only in the date, timings and counts.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md"


@dataclass
class Scenario:
    """One row of the report, filled in by the test that plays it."""

    area: str
    name: str
    injected: str = ""
    expected: str = ""
    observed: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    result: str = "not run"
    why: str = ""  # the first line of the failure, for a failed row
    seconds: float = 0.0

    def tried(self, injected: str, expected: str) -> None:
        """What this scenario does to the bridge, and what must come of it."""
        self.injected, self.expected = injected, expected

    def saw(self, observed: str, **counts: int) -> None:
        """What came of it (recorded before the assertions, so a failure shows it too)."""
        self.observed = observed
        self.counts.update(counts)


@dataclass(frozen=True)
class RunFacts:
    mode: str  # "default" or "--slow"
    command: str
    started: datetime
    seconds: float  # the reliability tests' own time (setup, call and teardown)
    session_tests: int  # every test of the session, all directories
    audited_records: int
    audit_findings: int
    secrets_checked: int
    profile: str


HOW = """\
Every scenario runs the real handler (`handler.app.lambda_handler`) against the local
stand-ins: the Messenger simulator for the Graph API, the fake OpenAI server, the Lambda Invoke
stand-in (asynchronous retries, on-failure destination, reserved concurrency), moto or
DynamoDB Local for DynamoDB (the table and the per-person inboxes), and moto's SQS for the
failure queue where workers park what they gave up on. Faults are made where real ones
happen: in the stand-ins' answers, in the handler's own boto3 clients (throttling, lost
answers), or in the Lambda runtime (a worker process that dies, which no `except Exception`
sees).

Wherever a message is accepted, the suite checks that it ends in exactly one answer, or one
apology, or one record on the failure queue, and that the person's daily count equals the
answers they got. "Observed" is read from the stand-ins' own records (what the Send API
delivered, what the model was asked, what the failure queue holds: Lambda's records and the
workers' parked messages) and from the table. One person's messages are answered one at a
time in the order sent (each waits in their inbox); the load scenarios check that order."""

LIMITS = """\
- Time is compressed. The Lambda stand-in retries after 0.2 s instead of 1 and 2 minutes;
  where a lease decides the outcome (a dying worker, a throttled clean-up) the worker's clock
  is moved on by 1 and 3 minutes for the retries, as in AWS. botocore's backoff waits are
  scaled down 20x and the Send API client's to 10 ms; the number of tries is the real one.
- A stand-in attempt that runs past its timeout is reported as timed out, as Lambda does,
  but its thread is not killed.
- Webhook calls are made directly, so they do not count against reserved concurrency; in
  AWS a flood can also throttle the webhook (Facebook then redelivers).
- moto's conditional writes are not atomic under concurrent requests; the race and load
  scenarios run on DynamoDB Local, whose are.
- Per-person order: the guarantee checked is the one Messenger users see: a person who
  sends messages one after the other (each delivered once the previous delivery was
  acknowledged) gets the answers in that order, each question counted in that order. A
  message whose delivery arrives after a later one was already answered is answered next,
  not before it: a worker cannot wait for what has not arrived."""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or "-"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()) or "-"


def _total(scenarios: list[Scenario], key: str) -> int:
    return sum(s.counts.get(key, 0) for s in scenarios)


def render(scenarios: list[Scenario], facts: RunFacts) -> str:
    passed = sum(1 for s in scenarios if s.result == "passed")
    failed = [s for s in scenarios if s.result == "failed"]
    skipped = sum(1 for s in scenarios if s.result == "skipped")
    gaps = sum(1 for s in scenarios if s.result == "known gap")
    sent = _total(scenarios, "messages") + _total(scenarios, "flood")
    lines = [
        "# Reliability and security: what was tried and what held",
        "",
        "<!-- Generated by tests/reliability/report.py when a run covers the whole",
        "     tests/reliability directory. Do not edit; run `make test` or `make test-slow`. -->",
        "",
        f"- Date: {facts.started:%Y-%m-%d %H:%M} UTC",
        f"- Command: `{facts.command}` ({facts.mode} run, Hypothesis profile `{facts.profile}`)",
        f"- Machine: {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}",
        f"- Reliability scenarios: {len(scenarios)}; {passed} held, {len(failed)} did not"
        + (f", {gaps} known gap (expected to fail, listed below)" if gaps else "")
        + (f", {skipped} skipped" if skipped else "")
        + f"; {facts.seconds:.0f} s",
        f"- Generated requests (fuzzing): {_total(scenarios, 'examples')}; messages sent "
        f"in the load, batch and flood scenarios: {sent}",
        f"- Log audit over the whole session ({facts.session_tests} tests, every directory "
        f"that ran): {facts.audited_records} log records read unredacted, "
        f"{facts.secrets_checked} secret values looked for, {facts.audit_findings} found",
        "",
        HOW,
        "",
    ]
    if failed:
        lines += ["## Did not hold", ""]
        lines += [f"- **{s.area}: {s.name}**: {_cell(s.why)}" for s in failed]
        lines.append("")
    known = [s for s in scenarios if s.result == "known gap"]
    if known:
        lines += ["## Known gaps (expected to fail until fixed)", ""]
        lines += [f"- **{s.area}: {s.name}**: {_cell(s.why)}" for s in known]
        lines.append("")
    for area, rows in groupby(scenarios, key=lambda s: s.area):
        lines += [
            f"## {area}",
            "",
            "| Scenario | Injected | Expected | Observed | Counts | Result |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for s in rows:
            result = {
                "passed": "held",
                "failed": "**did not hold**",
                "known gap": "**does not hold: known gap**",
            }.get(s.result, s.result)
            lines.append(
                f"| {_cell(s.name)} | {_cell(s.injected)} | {_cell(s.expected)} | "
                f"{_cell(s.observed)} | {_cell(_counts(s.counts))} | {result} |"
            )
        lines.append("")
    lines += ["## What the stand-ins do not model", "", LIMITS, ""]
    return "\n".join(lines).rstrip() + "\n"


def write(scenarios: list[Scenario], facts: RunFacts, path: Path = DOC) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(scenarios, facts), encoding="utf-8")
    return path


def now() -> datetime:
    return datetime.now(UTC)


def humanize(test_name: str, param: Any = None) -> str:
    """``test_a_retry_is_answered_once[429]`` -> ``a retry is answered once (429)``."""
    name = test_name.split("[", 1)[0].removeprefix("test_").replace("_", " ")
    return f"{name} ({param})" if param not in (None, "") else name
