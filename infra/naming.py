"""Physical names, all derived from project and stack, so two stacks share an account safely.

Names are explicit (not Pulumi auto-names) because people read them: in the Lambda console,
in ``/aws/lambda/<function>`` and in the SSM parameter paths the handler is pointed at.

Project and stack names may hold hyphens, so joining them with one is ambiguous (``x`` +
``a-b`` and ``x-a`` + ``b`` both give ``x-a-b``): every name ends in a short tag hashed
from the parts themselves. IAM role names are account-wide, not regional: the role's name
carries the region too, so one stack deployed to two regions does not collide; so does the
CloudWatch dashboard's, as dashboards are global to the account as well.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# The tightest character set of the services named here (Lambda, SQS, EventBridge, IAM).
_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
# Service limits on name length; a queue's counts its ".fifo".
QUEUE_NAME_LIMIT = 80
_LIMITS = {
    "function": 64,
    "role": 64,
    "dashboard": 255,
    "keep_warm_rule": 64,
    "queue": QUEUE_NAME_LIMIT,
    "dead_letter_queue": QUEUE_NAME_LIMIT,
    "table": 255,
}
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
# SQS wants this ending on every FIFO queue's name.
FIFO_SUFFIX = ".fifo"


class NamingError(ValueError):
    """The project or stack name cannot make valid AWS resource names."""


@dataclass(frozen=True)
class Names:
    """Every physical name of one bridge. ``parts`` is (project, stack[, bot])."""

    parts: tuple[str, ...]
    region: str

    @property
    def tag(self) -> str:
        """Six hex digits of the parts, told apart by a separator no part can hold."""
        return hashlib.sha256("/".join(self.parts).encode()).hexdigest()[:6]

    @property
    def prefix(self) -> str:
        return "-".join((*self.parts, self.tag))

    @property
    def function(self) -> str:
        return self.prefix

    @property
    def table(self) -> str:
        return self.prefix

    @property
    def role(self) -> str:
        """IAM is global to the account: the region keeps two regions' roles apart."""
        return f"{self.prefix}-{self.region}"

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
    def topic(self) -> str:
        """The owner's SNS topic: alarms and "owner must act" alerts."""
        return f"{self.prefix}-owner"

    @property
    def dashboard(self) -> str:
        """CloudWatch dashboards are global to the account, like IAM: the region is in it."""
        return f"{self.prefix}-{self.region}"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.prefix}-secrets"

    def parameter(self, secret: str) -> str:
        """``app_secret`` -> ``/messenger-bridge/dev/app-secret``."""
        return "/" + "/".join((*self.parts, secret.replace("_", "-")))


def names_for(project: str, stack: str, region: str, bot: str | None = None) -> Names:
    """Names for one bridge; ``bot`` tells apart several bridges (pages) in one stack."""
    parts = (project, stack) if bot is None else (project, stack, bot)
    bad = [part for part in parts if not _SAFE.match(part)]
    if bad:
        raise NamingError(
            f"{bad[0]!r} cannot be part of AWS resource names: use letters, digits, '-' and '_'"
        )
    if not _REGION.match(region):
        raise NamingError(f"{region!r} is not an AWS region name")
    names = Names(parts, region)
    for attribute, limit in _LIMITS.items():
        value = getattr(names, attribute)
        if len(value) > limit:
            raise NamingError(
                f"the {attribute.replace('_', ' ')} name {value!r} is longer than {limit} "
                "characters: use a shorter stack (or bot) name"
            )
    return names
