"""Fixtures of the reliability suite, its Hypothesis profiles, and the report it can write.

``make test`` runs the quick profile (a fixed set of examples, so CI sees the same inputs
every time); ``make test-slow`` (``--slow``) runs the slow tests too and many more random
examples.

``docs/RELIABILITY.md`` is written from the results only when asked: with
``RELIABILITY_REPORT=1`` in the environment (``make reliability-report``, ``make test-slow``)
and a run that covered the whole directory. A plain ``make test`` or ``pytest`` never
writes it, so running the tests leaves the tree as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from handler.store import Store
from tests.reliability import report
from tests.reliability.harness import echo_answers, ledger
from tests.support import log_audit
from tests.support.bridge import Bridge

HERE = Path(__file__).resolve().parent
QUICK, SLOW = "reliability-quick", "reliability-slow"
REPORT_VARIABLE = "RELIABILITY_REPORT"

# The queue as most scenarios have it: Lambda's event source mapping with batches of up to
# ten records, three receives before the dead-letter queue, retries at once (no backoff, so
# a scenario's retries take milliseconds), and a visibility timeout longer than the
# function's timeout, as AWS asks (the stack makes it six times as long).
QUEUE = {
    "batch_size": 10,
    "max_receives": 3,
    "retry_delay_seconds": 0,
    "function_timeout": 20,
    "visibility_timeout": 22,
}
# For a worker that dies after claiming an event: its lease lasts until its invocation's
# deadline, and the message comes back once the visibility timeout is over, after it. The
# worker keeps 2 s to report the batch and 10 s to send the answer, so 20 s leaves the model
# call 8 s (a loaded machine needs some of them).
DYING = {"function_timeout": 20, "visibility_timeout": 21}
# ALICE and BOB, for the scenarios whose faults hit the Send API: as people who have written
# before (``make_bridge(known=KNOWN)``), their first message's faults hit its own sends, not
# the welcome a new person gets once before their first answer (tests/unit/test_bot.py and
# tests/integration cover that one).
KNOWN = ("1000000000000001", "1000000000000002")

settings.register_profile(
    QUICK,
    max_examples=100,
    derandomize=True,  # the same examples on every run: a gate, not a lottery
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    SLOW,
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_STATE: dict[str, Any] = {
    "scenarios": {},  # nodeid -> Scenario, in collection order
    "unexpected_deselections": 0,  # by -k, -m, --deselect...: then no report is written
    "started": None,
    "report": None,  # what became of the report, said at the end of the run
}


def _is_ours(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).parents


def _slow(config: pytest.Config) -> bool:
    return bool(config.getoption("--slow"))


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def slow(request: pytest.FixtureRequest) -> bool:
    """True in ``make test-slow``: tests may then play bigger versions of themselves."""
    return _slow(request.config)


@pytest.fixture
def fuzz(request: pytest.FixtureRequest) -> settings:
    """The Hypothesis settings of this run: ``@fuzz`` on a ``@given`` function."""
    return settings(settings.get_profile(SLOW if _slow(request.config) else QUICK))


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> report.Scenario:
    return _STATE["scenarios"][request.node.nodeid]


@pytest.fixture
def make_bridge(bridges: Callable[..., Bridge]) -> Callable[..., Bridge]:
    """``make_bridge(engine="dynamodb-local", queue={...}, DAILY_LIMIT="5")``: the whole
    bridge on loopback, with ``QUEUE`` as its queue unless ``queue`` says otherwise.

    The model answers ``Answer to: <question>``, and its billed answers are kept
    (``harness.ledger``). The people of ``known`` have written before (none unless said).
    ``engine="dynamodb-local"`` puts the table in DynamoDB Local, AWS's own engine, whose
    conditional writes are atomic under concurrency as DynamoDB's are (moto's are not
    guaranteed to be).
    """

    def make(
        engine: str = "moto",
        queue: dict[str, Any] | None = None,
        known: tuple[str, ...] = (),
        **env: str,
    ) -> Bridge:
        bridge = bridges(engine, queue={**QUEUE, **(queue or {})}, **env)
        bridge.model.responder = echo_answers
        ledger(bridge)
        store = Store(bridge.dynamodb, bridge.table)
        for psid in known:  # as if they had written before: no welcome, no new-user notice
            store.create_user(psid, datetime.now(UTC))
        return bridge

    return make


@pytest.fixture
def bridge(make_bridge: Callable[..., Bridge]) -> Bridge:
    return make_bridge()


# -- the report ---------------------------------------------------------------------------


def report_requested(environ: Mapping[str, str]) -> bool:
    """Whether this run was asked to write the report (``RELIABILITY_REPORT=1``)."""
    return environ.get(REPORT_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def report_decision(environ: Mapping[str, str], whole_directory: bool) -> str | None:
    """None when the report is to be written; otherwise why it is not."""
    if not report_requested(environ):
        return f"not asked for ({REPORT_VARIABLE}=1, as `make reliability-report` sets it)"
    if not whole_directory:
        return "asked for, but the run did not cover the whole tests/reliability directory"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_ours(item):
            param = getattr(getattr(item, "callspec", None), "id", None)
            area = getattr(item.module, "AREA", item.module.__name__)
            name = report.humanize(getattr(item, "originalname", item.name), param)
            _STATE["scenarios"][item.nodeid] = report.Scenario(area=area, name=name)


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        if not _is_ours(item):
            continue
        if "slow" in item.keywords and not _slow(item.config):
            _STATE["scenarios"].pop(item.nodeid, None)  # the quick run leaves these out
        else:
            _STATE["unexpected_deselections"] += 1


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    if nodeid in _STATE["scenarios"] and _STATE["started"] is None:
        _STATE["started"] = report.now()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    row = _STATE["scenarios"].get(item.nodeid)
    if row is None:
        return outcome
    row.seconds += call.duration
    if outcome.when == "call" or (outcome.when == "setup" and not outcome.passed):
        row.result = "known gap" if hasattr(outcome, "wasxfail") else outcome.outcome
        if row.result == "known gap":
            row.why = str(outcome.wasxfail).removeprefix("reason: ")
        if outcome.failed:
            crash = getattr(outcome.longrepr, "reprcrash", None)
            message = crash.message if crash is not None else str(outcome.longrepr)
            row.why = message.strip().splitlines()[0][:300] if message.strip() else "failed"
    elif outcome.when == "teardown" and outcome.failed and row.result == "passed":
        row.result = "failed"
        row.why = "teardown failed"
    return outcome


def _whole_directory_ran(session: pytest.Session) -> bool:
    config = session.config
    if _STATE["unexpected_deselections"] or session.shouldstop or session.shouldfail:
        return False
    if any("::" in arg for arg in config.invocation_params.args):
        return False
    rows = _STATE["scenarios"]
    files = {nodeid.split("::", 1)[0].rsplit("/", 1)[-1] for nodeid in rows}
    present = {p.name for p in HERE.glob("test_*.py")}
    return bool(rows) and files == present and all(r.result != "not run" for r in rows.values())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _STATE["scenarios"]:
        return  # this run had none of the suite's tests: nothing to say
    why_not = report_decision(os.environ, _whole_directory_ran(session))
    if why_not is not None:
        _STATE["report"] = f"docs/RELIABILITY.md not written: {why_not}"
        return
    rows = list(_STATE["scenarios"].values())
    audit = log_audit.session_audit()
    slow = _slow(session.config)
    facts = report.RunFacts(
        mode="--slow" if slow else "default",
        command=report.command_line(session.config.invocation_params.args, os.environ),
        started=_STATE["started"] or report.now(),
        seconds=sum(row.seconds for row in rows),
        session_tests=len(session.items),
        audited_records=audit.count if audit else 0,
        audit_findings=len(audit.findings()) if audit else 0,
        secrets_checked=len(log_audit.known_secrets()),
        profile=SLOW if slow else QUICK,
    )
    path = report.write(rows, facts)
    _STATE["report"] = f"{path.relative_to(report.DOC.parents[1])} written ({len(rows)} rows)"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STATE["report"]:
        terminalreporter.write_line(f"reliability report: {_STATE['report']}")
