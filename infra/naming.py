"""Physical names, all derived from project and stack, so two stacks share an account safely.

Names are explicit (not Pulumi auto-names) because people read them: in the Lambda console,
in ``/aws/lambda/<function>`` and in the SSM parameter paths the handler is pointed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The tightest character set of the services named here (Lambda, SQS, EventBridge, IAM).
_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
# Service limits on name length; a queue's counts its ".fifo".
QUEUE_NAME_LIMIT = 80
_LIMITS = {
    "function": 64,
    "role": 64,
    "keep_warm_rule": 64,
    "queue": QUEUE_NAME_LIMIT,
    "dead_letter_queue": QUEUE_NAME_LIMIT,
    "table": 255,
}
# SQS wants this ending on every FIFO queue's name.
FIFO_SUFFIX = ".fifo"


class NamingError(ValueError):
    """The project or stack name cannot make valid AWS resource names."""


@dataclass(frozen=True)
class Names:
    """Every physical name of one bridge. ``parts`` is (project, stack[, bot])."""

    parts: tuple[str, ...]

    @property
    def prefix(self) -> str:
        return "-".join(self.parts)

    @property
    def function(self) -> str:
        return self.prefix

    @property
    def table(self) -> str:
        return self.prefix

    @property
    def role(self) -> str:
        return f"{self.prefix}-function"

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.function}"

    @property
    def queue(self) -> str:
        """The FIFO queue between the webhook and the worker."""
        return f"{self.prefix}{FIFO_SUFFIX}"

    @property
    def dead_letter_queue(self) -> str:
        """A FIFO queue's dead-letter queue must be FIFO too."""
        return f"{self.prefix}-dead{FIFO_SUFFIX}"

    @property
    def keep_warm_rule(self) -> str:
        return f"{self.prefix}-keep-warm"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.prefix}-secrets"

    def parameter(self, secret: str) -> str:
        """``app_secret`` -> ``/messenger-bridge/dev/app-secret``."""
        return "/" + "/".join((*self.parts, secret.replace("_", "-")))


def names_for(project: str, stack: str, bot: str | None = None) -> Names:
    """Names for one bridge; ``bot`` tells apart several bridges (pages) in one stack."""
    parts = (project, stack) if bot is None else (project, stack, bot)
    bad = [part for part in parts if not _SAFE.match(part)]
    if bad:
        raise NamingError(
            f"{bad[0]!r} cannot be part of AWS resource names: use letters, digits, '-' and '_'"
        )
    names = Names(parts)
    for attribute, limit in _LIMITS.items():
        value = getattr(names, attribute)
        if len(value) > limit:
            raise NamingError(
                f"the {attribute.replace('_', ' ')} name {value!r} is longer than {limit} "
                "characters: use a shorter stack (or bot) name"
            )
    return names
