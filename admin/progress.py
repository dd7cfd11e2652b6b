"""A one-line status on stderr ("Scanning… 120 users") while a long read runs.

Only when stderr is a terminal: in a pipe, a cron job or a test, progress lines would be
noise mixed into logs, and stdout must stay clean for ``--format json``/``csv`` anyway.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"
MIN_INTERVAL_SECONDS = 0.1  # redrawing faster than the eye reads only costs time


class Progress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        isatty = getattr(self._stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self._shown = False
        self._last = 0.0

    def show(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and self._shown and now - self._last < MIN_INTERVAL_SECONDS:
            return
        self._stream.write(CLEAR_LINE + text)
        self._stream.flush()
        self._shown, self._last = True, now

    def clear(self) -> None:
        """Take the line away, so the result (or an error) starts on a clean line."""
        if self._shown:
            self._stream.write(CLEAR_LINE)
            self._stream.flush()
            self._shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.clear()
