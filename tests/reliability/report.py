"""``docs/RELIABILITY.md``, written from the reliability suite's own results.

Every test says what it injected and what it expected (``scenario.tried``) and what it saw
(``scenario.saw``); pytest says whether it passed. The document is those rows in collection
order, so two runs of the same code differ only in the date, timings and counts.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
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
stand-ins, over real loopback HTTP: the Messenger simulator for the Graph API, the fake OpenAI
server, and AWS on moto (or DynamoDB Local for the table where races matter). The webhook
hands each event to an SQS FIFO queue on moto (one message group per person, the event's
hash as deduplication id), made as the stack makes it, with its FIFO dead-letter queue
behind a redrive policy. Lambda's SQS event source mapping is played by a poller
(`local/event_source.py`): it receives batches, invokes the function with at most
`MaximumConcurrency` invocations at once, deletes what the partial batch response does not
report failed, and fails the whole batch on a crash, a timeout or an invalid response, so
the messages come back after the visibility timeout; SQS counts each receive and moves a
message to the dead-letter queue after `maxReceiveCount` of them.

Faults are made where real ones happen: in the stand-ins' answers (Graph errors, resets and
stalls; model errors, stalls and malformed bodies), in the handler's own boto3 clients
(DynamoDB and SQS throttling, internal errors, lost answers, unprocessed keys, a request
that hangs), in its own HTTP session (the container dying right after Graph's 200), and in
the Lambda runtime (a worker that dies, which no `except Exception` sees, or that Lambda
ends at its timeout). No handler code has a branch for tests.

Wherever a message is accepted, the suite checks that it ends in exactly one answer, or one
apology, or one record on the dead-letter queue (or, when Graph says the person cannot be
messaged, in nothing to retry), that no bubble reaches the person twice unless the scenario
is the documented worst case, and that the person's daily count equals the questions of
theirs the model answered (HTTP 200 with a completion, by the fake OpenAI server's own
record). "Observed" is read from the stand-ins' own records (what the Send API delivered
and refused, what the model was asked and answered, what the dead-letter queue holds, how
the poller's invocations ended) and from the table. Unless a scenario says otherwise the
queue is set up with batches of up to 10 records, 3 receives before the dead-letter queue,
retries without backoff, a 20 s function timeout and a 22 s visibility timeout (longer than
the function's, as AWS asks)."""

LIMITS = """\
- Time is compressed. Retries come at once instead of after 10 s, 30 s, 90 s (the backoff
  itself is checked where it matters: the retries come when `ChangeMessageVisibility` says);
  botocore's backoff waits are scaled down 20x and the Send API client's to 10 ms; the
  number of tries is the real one. A worker that dies after its claim holds the event until
  its invocation's deadline, so those scenarios use a 20 s function timeout and a 21 s
  visibility timeout and take that long.
- Python cannot kill a thread: an invocation past its timeout is reported as timed out, as
  Lambda does, and a fault that lasts until the timeout ends its thread with the same
  `BaseException` as a dying container; other threads of a crashed invocation run to the end
  (in Lambda the whole process goes).
- Two faults the suite found in the stand-ins are mended there, each with a scenario of its
  own: moto's ReceiveMessage was not atomic (two pollers could get the same message, or one
  person's next message while another poller held the group): `local.aws.fix_moto_sqs`
  makes it so; and the poller's idle check could miss a message whose visibility ran out
  between moto's two counts: it now trusts an idle queue only when it is still idle 0.2 s on.
- moto does not enforce SQS's limits on message characters or Lambda's scaling; the poller
  receives with `WaitTimeSeconds=0` every 20 ms instead of long polling. moto forgets a
  deduplication id once its message is deleted (SQS keeps it for five minutes): a later
  redelivery is then dropped by the event's item instead. moto ignores a transaction's
  `ClientRequestToken` (DynamoDB honours it for ten minutes): the lost-answer scenarios run
  on DynamoDB Local, and the moto case is a scenario of its own.
- The fake model's record counts an answer it sent after the worker had given up waiting
  (OpenAI bills those too); the scenarios where that happens say so.
- Webhook calls are made directly, not through a Function URL, so they do not count against
  concurrency; in AWS a flood can also throttle the webhook (Facebook then redelivers).
- moto's conditional writes are not atomic under concurrent requests; the race and load
  scenarios run on DynamoDB Local, whose are.
- Per-person order: the guarantee checked is the one Messenger users see: a person who
  sends messages one after the other gets the answers in that order, each question counted
  in that order (the FIFO queue's message group). A message whose delivery arrives after a
  later one was queued is answered after it."""


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
        "<!-- Generated by tests/reliability/report.py when a run that covers the whole",
        "     tests/reliability directory is asked for it (RELIABILITY_REPORT=1). Do not edit;",
        "     run `make reliability-report` (quick) or `make test-slow` (everything). -->",
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


def command_line(args: Sequence[str], environ: Mapping[str, str]) -> str:
    """The command as it could be typed again, with the variable that asked for the report."""
    asked = (
        [f"RELIABILITY_REPORT={environ['RELIABILITY_REPORT']}"]
        if "RELIABILITY_REPORT" in environ
        else []
    )
    return " ".join([*asked, "python -m pytest", *args])


def now() -> datetime:
    return datetime.now(UTC)


def humanize(test_name: str, param: Any = None) -> str:
    """``test_a_retry_is_answered_once[429]`` -> ``a retry is answered once (429)``."""
    name = test_name.split("[", 1)[0].removeprefix("test_").replace("_", " ")
    return f"{name} ({param})" if param not in (None, "") else name
