"""A pytest plugin that reads every log record of the test session for secret values.

``handler/logs.py`` redacts the secrets it knows in its formatter, but that is the second
line of defence: the first is that the code never passes a secret to the logger. So this
audit looks at what the code passed, unredacted: the message, the structured ``fields``,
the log context (request id and the like) and the text of any exception, chained ones
included; and at the line as the formatter writes it. Records are kept for the whole
session and checked at its end against every secret known by then, so a value registered
late still counts. A hit fails the run, whatever the tests said.

Known secrets: ``tests/support/bridge.py``'s ``SECRET_VALUES``, whatever a test registers
with ``known_secret(value)``, and every secret the handler itself loaded during the session
(``handler.logs.register_secrets``), so a suite that configures its own secrets is covered
without knowing about this plugin.

Registered in ``tests/conftest.py``: ``pytest_plugins = ["tests.support.log_audit"]``.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Any

import pytest

from handler import logs as handler_logs  # first, so the handler's own stdout handler exists

AUDITED_LOGGERS = ("bridge", "")  # the handler's logger (it does not propagate) and the root
MIN_HANDLER_SECRET = 8  # shorter values the handler registered could be ordinary words

_known: set[str] = set()
_known_lock = threading.Lock()


def known_secret(*values: str) -> None:
    """Add values that must never appear in any log line of the session."""
    with _known_lock:
        _known.update(v for v in values if v)


def known_secrets() -> frozenset[str]:
    """Every secret value the audit checks for, as of now."""
    from tests.support.bridge import SECRET_VALUES

    loaded = getattr(handler_logs, "_secrets", ())
    handler_loaded = {s for s in loaded if len(s) >= MIN_HANDLER_SECRET}
    with _known_lock:
        return frozenset(_known | set(SECRET_VALUES) | handler_loaded)


@dataclass(frozen=True)
class Finding:
    """A secret found in one record: where it was and which of the record's texts held it."""

    logger: str
    event: str
    where: str  # "raw" (what the code passed) or "line" (what the formatter wrote)
    secret_hint: str  # never the secret itself: its length and first two characters

    def __str__(self) -> str:
        return f"{self.logger or 'root'}: {self.event!r} ({self.where}): secret {self.secret_hint}"


def _flatten(value: Any, out: list[str], depth: int = 0) -> None:
    """Every string a value holds, as str and repr, nested containers included."""
    if depth > 20:
        out.append(repr(value))
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(key, out, depth + 1)
            _flatten(item, out, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _flatten(item, out, depth + 1)
    elif isinstance(value, bytes):
        out.append(value.decode("utf-8", errors="replace"))
    else:
        out.append(str(value))
        out.append(repr(value))


def _exception_texts(error: BaseException | None, out: list[str]) -> None:
    """The traceback and the text of every exception in the chain, suppressed ones too."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        out.extend(traceback.format_exception(error))
        _flatten(error.args, out)
        error = error.__cause__ or error.__context__


def raw_texts(record: logging.LogRecord) -> list[str]:
    """What the code handed to the logger for this record, before any redaction."""
    out: list[str] = []
    try:
        out.append(record.getMessage())
    except Exception:  # a bad format string is not this audit's business
        out.append(str(record.msg))
        _flatten(record.args, out)
    _flatten(getattr(record, "fields", {}), out)
    context = getattr(handler_logs, "_context", None)
    if record.name == "bridge" and context is not None:
        _flatten(context.get() or {}, out)
    if record.exc_info and record.exc_info[1] is not None:
        _exception_texts(record.exc_info[1], out)
    if record.exc_text:
        out.append(record.exc_text)
    if record.stack_info:
        out.append(record.stack_info)
    return out


class LogAudit(logging.Handler):
    """Keeps the unredacted texts and the formatted line of every record it sees."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self._bridge_format = handler_logs.JsonFormatter()
        self._plain_format = logging.Formatter("%(levelname)s %(name)s %(message)s")
        self._records: list[tuple[str, str, str, str]] = []  # logger, event, raw, line
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            raw = "\n".join(raw_texts(record))
            formatter = self._bridge_format if record.name == "bridge" else self._plain_format
            line = formatter.format(record)
        except Exception as error:  # never break the code under test; still count the record
            raw, line = f"<unreadable record: {type(error).__name__}>", ""
        with self._records_lock:
            self._records.append((record.name, str(record.msg), raw, line))

    @property
    def count(self) -> int:
        with self._records_lock:
            return len(self._records)

    def lines(self) -> list[str]:
        with self._records_lock:
            return [line for _, _, _, line in self._records]

    def findings(self, secrets: frozenset[str] | None = None) -> list[Finding]:
        secrets = known_secrets() if secrets is None else secrets
        with self._records_lock:
            records = list(self._records)
        found: list[Finding] = []
        for logger, event, raw, line in records:
            shown = event
            for secret in secrets:
                shown = shown.replace(secret, "[secret]")  # the report must not leak it either
            for where, text in (("raw", raw), ("line", line)):
                for secret in sorted(secrets):
                    if secret in text:
                        hint = f"of {len(secret)} characters starting {secret[:2]!r}"
                        found.append(Finding(logger, shown, where, hint))
        return found

    def attach(self) -> None:
        for name in AUDITED_LOGGERS:
            logging.getLogger(name).addHandler(self)

    def detach(self) -> None:
        for name in AUDITED_LOGGERS:
            logging.getLogger(name).removeHandler(self)


_session_audit: LogAudit | None = None
_session_findings: list[Finding] = []


def session_audit() -> LogAudit | None:
    """The audit attached for this session (None outside pytest or before configure)."""
    return _session_audit


# -- pytest hooks -------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    global _session_audit
    if _session_audit is None:
        _session_audit = LogAudit()
        _session_audit.attach()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any record of the session carried a secret value."""
    if _session_audit is None:
        return
    _session_findings[:] = _session_audit.findings()
    if _session_findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _session_audit is None:
        return
    if _session_findings:
        terminalreporter.section("log audit: SECRET VALUES IN LOG LINES", sep="!", red=True)
        for finding in _session_findings[:50]:
            terminalreporter.write_line(str(finding), red=True)
        terminalreporter.write_line(
            f"{len(_session_findings)} findings in {_session_audit.count} records; "
            "the run fails (exit status 1).",
            red=True,
        )
    else:
        terminalreporter.write_line(
            f"log audit: {_session_audit.count} log records read, "
            f"no secret value in any of them ({len(known_secrets())} secrets checked)."
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    global _session_audit
    if _session_audit is not None:
        _session_audit.detach()
        _session_audit = None
