"""The log audit itself: it reads what the code passed, it sees the whole session, and a
secret in any log line fails the run."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from handler import logs
from tests.reliability.harness import question
from tests.support import log_audit
from tests.support.bridge import SECRET_VALUES, Bridge

AREA = "Secrets in logs"
ROOT = Path(__file__).resolve().parents[2]
FAKE = "fake-secret-only-in-this-test-31c9"


def record(message: str, fields: dict, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    made = logging.getLogger("bridge").makeRecord(
        "bridge", logging.ERROR, __file__, 1, message, (), exc_info, extra={"fields": fields}
    )
    return made


def test_the_audit_reads_what_the_code_passed_before_redaction(monkeypatch, scenario):
    monkeypatch.setattr(logs, "_secrets", {FAKE})  # the formatter redacts it, as in production
    audit = log_audit.LogAudit()
    try:
        try:
            raise KeyError(f"lookup of {FAKE} failed")
        except KeyError:
            raise RuntimeError("wrapped") from None  # suppressed context: not in the traceback
    except RuntimeError as error:
        wrapped = error
    with logs.log_context(request_id=FAKE):
        audit.handle(record("ctx.only", {}))
    audit.handle(record("field.only", {"nested": [{"token": FAKE}]}))
    audit.handle(record("exception.only", {}, wrapped))
    audit.handle(record(f"message {FAKE}", {}))
    audit.handle(record("clean", {"psid": "1000000000000001"}))
    findings = audit.findings(frozenset({FAKE}))
    where = sorted({(f.event, f.where) for f in findings})
    scenario.tried(
        "records carrying a registered secret in the log context, a nested field, the "
        "suppressed context of an exception, the message; and a clean record",
        "every carrier found in what the code passed (raw), although the formatted line is "
        "redacted; the clean record not flagged",
    )
    scenario.saw(f"found in {[e for e, _ in where]}", records=audit.count)
    assert {e for e, w in where if w == "raw"} == {
        "ctx.only",
        "field.only",
        "exception.only",
        "message [secret]",  # the finding names the record, never the secret
    }
    assert all(FAKE not in line for line in audit.lines())  # the formatter did redact
    assert not any(f.event == "clean" for f in findings)
    assert all(FAKE not in str(f) for f in findings)  # the report names no secret either


def test_the_session_audit_sees_every_line_the_bridge_writes(bridge: Bridge, scenario):
    audit = log_audit.session_audit()
    assert audit is not None, "tests/conftest.py must register tests.support.log_audit"
    before = audit.count
    bridge.say("1000000000000001", question("1000000000000001"))
    seen = set(audit.lines())
    scenario.tried(
        "one message through the bridge, its log lines captured by the test's own handler",
        "each of those lines also read by the session audit; every secret of the bridge "
        "among the audited values",
    )
    scenario.saw(
        f"{len(bridge.logs.lines)} lines written, all audited",
        audited_so_far=audit.count,
    )
    assert audit.count - before >= len(bridge.logs.lines) > 0
    assert all(line in seen for line in bridge.logs.lines)
    assert set(SECRET_VALUES) <= log_audit.known_secrets()


@pytest.mark.parametrize("leak", [True, False], ids=["a-leaking-line", "clean-lines"])
def test_a_secret_in_any_log_line_fails_the_whole_run(tmp_path, scenario, leak: bool):
    test = tmp_path / "test_leak.py"
    value = SECRET_VALUES[1] if leak else "nothing-to-see"
    test.write_text(
        textwrap.dedent(
            f"""
            import logging

            def test_passes():
                logging.getLogger("bridge").warning("send.failed", extra={{"fields": {{
                    "url": "https://graph/me/messages?access_token={value}"}}}})
            """
        )
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.support.log_audit",
            "-c",
            "/dev/null",
            "--rootdir",
            str(tmp_path),
            str(test),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    scenario.tried(
        "a pytest run whose only test passes but logs "
        + ("the page token in a field" if leak else "nothing secret"),
        "exit status 1 and a log-audit section naming the line" if leak else "exit status 0",
    )
    scenario.saw(f"exit status {run.returncode}")
    assert "1 passed" in run.stdout
    if leak:
        assert run.returncode == 1
        assert "SECRET VALUES IN LOG LINES" in run.stdout
        assert SECRET_VALUES[1] not in run.stdout.split("SECRET VALUES", 1)[1]
    else:
        assert run.returncode == 0, run.stdout
