"""The owner's e-mail: one SNS Publish to the stack's topic, which ``ownerEmail`` subscribes to.

The topic is the stack's own (encrypted with its key; the CloudWatch alarms go there too). What
is published says what happened and what to do, and nothing else: no one's words, no secret,
no name; people only by their page-scoped id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .logs import log

# SNS takes a subject of printable ASCII, without line breaks, "less than 100 characters".
SUBJECT_LIMIT = 99
SUBJECT_PREFIX = "Messenger bot: "
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def subject_line(text: str) -> str:
    """``text`` as SNS takes a subject: printable ASCII, one line, under 100 characters."""
    plain = _UNPRINTABLE.sub("?", " ".join(text.split()))
    line = SUBJECT_PREFIX + plain
    return line if len(line) <= SUBJECT_LIMIT else line[: SUBJECT_LIMIT - 3] + "..."


class Mailer:
    """Publishes to the owner's topic; ``topic_arn`` None (a local run): nothing is sent.
    ``client`` gives the SNS client (``clients.aws``: made on the first e-mail, once per
    container)."""

    def __init__(self, client: Callable[[], Any], topic_arn: str | None) -> None:
        self._client = client
        self._topic = topic_arn

    @property
    def enabled(self) -> bool:
        return bool(self._topic)

    def send(self, subject: str, body: str) -> bool:
        """True when SNS took it. Never raises: an e-mail must not cost anyone an answer."""
        if not self._topic:
            return False
        try:
            self._client().publish(
                TopicArn=self._topic, Subject=subject_line(subject), Message=body
            )
        except Exception as error:  # botocore raises many types; all mean "not sent"
            log.error("mail.failed", why=type(error).__name__)
            return False
        log.info("mail.sent", chars=len(body))
        return True
