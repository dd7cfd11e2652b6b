"""Human takeover: when someone of the page answers a person by hand, the bot keeps quiet for
that person for a while.

A reply typed in the Page Inbox or the Business Suite app comes back to the webhook as an
echo (``message_echoes``) with the Page Inbox's app id, or none; the bot's own messages echo
with this app's id and the ``metadata`` it puts on every message (``events.BOT_METADATA``),
and are dropped when parsed. The webhook writes the pause at once (one conditional write on the
person's ``PAUSE`` item, before it answers Facebook) and hands the human's message to the
person's FIFO group like any other, so that the conversation keeps what was said, in order.
The worker reads the pause when it starts a message and again before it sends: a pause ends
when its time has passed, by comparison; nothing is scheduled.

The webhook imports this: only the standard library, botocore's errors, ``schema`` and
``metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from . import metrics, schema
from .events import Inbound
from .logs import log

# Who paused the bot for a person: someone of the page answering by hand, the person asking
# for a person (/human), an owner's /pause.
BY_HUMAN = "human"
BY_PERSON = "person"
BY_OWNER = "owner"
# An echo event that started a pause (rather than extending one) says so in its payload: the
# worker then tells the owners, if they want to hear of takeovers.
STARTED = "TAKEOVER_STARTED"
# A pause's item outlives its end by a day (DynamoDB's TTL deletes it late anyway).
RETENTION_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Pause:
    """The bot keeps quiet for a person until ``until`` (epoch seconds)."""

    until: int
    by: str = BY_HUMAN

    def active(self, now: int) -> bool:
        return self.until > now


def pause_from_item(item: dict[str, Any] | None) -> Pause | None:
    if not item or "until" not in item:
        return None
    try:
        until = int(item["until"]["N"])
    except (KeyError, TypeError, ValueError):
        return None
    return Pause(until, item.get("by", {}).get("S", BY_HUMAN))


class Pauses:
    """The ``PAUSE`` items: the webhook writes a human's takeover, the worker reads them and
    writes /human, /pause and /resume."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def extend(self, psid: str, until: int, by: str, now: int) -> bool:
        """Pause until ``until`` unless a longer pause runs (never shortened); True when this
        started a pause (none was running)."""
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key=schema.pause_key(psid),
                UpdateExpression="SET #until = :until, #by = :by, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(#until) OR #until < :until",
                ExpressionAttributeNames={
                    "#until": "until",
                    "#by": "by",
                    "#ttl": schema.TTL_ATTRIBUTE,
                },
                ExpressionAttributeValues={
                    ":until": {"N": str(until)},
                    ":by": {"S": by},
                    ":ttl": {"N": str(until + RETENTION_SECONDS)},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if schema.is_condition_failure(error):
                return False  # a longer pause runs: it goes on
            raise
        before = pause_from_item(response.get("Attributes"))
        return before is None or not before.active(now)

    def set(self, psid: str, until: int, by: str) -> Pause | None:
        """Pause until ``until``, shorter or longer than before (an owner's /pause); returns
        the pause it replaced."""
        response = self._db.put_item(
            TableName=self._table,
            Item={
                **schema.pause_key(psid),
                "until": {"N": str(until)},
                "by": {"S": by},
                schema.TTL_ATTRIBUTE: {"N": str(until + RETENTION_SECONDS)},
            },
            ReturnValues="ALL_OLD",
        )
        return pause_from_item(response.get("Attributes"))

    def end(self, psid: str) -> Pause | None:
        """No pause any more; returns the one there was."""
        response = self._db.delete_item(
            TableName=self._table, Key=schema.pause_key(psid), ReturnValues="ALL_OLD"
        )
        return pause_from_item(response.get("Attributes"))

    def get(self, psid: str) -> Pause | None:
        item = self._db.get_item(
            TableName=self._table, Key=schema.pause_key(psid), ConsistentRead=True
        ).get("Item")
        return pause_from_item(item)


def take_over(
    events: Sequence[Inbound],
    pauses: Pauses,
    minutes: int,
    admins: frozenset[str],
    now: int,
) -> list[Inbound]:
    """The events to hand off. A reply by hand (an ``echo``) pauses the bot for its person
    and goes on to the queue for the conversation, marked when it started the pause; one
    whose pause would already be over (a redelivery ``minutes`` late) pauses nothing. With
    takeover off (``minutes`` 0), or to an owner, it is dropped, as echoes were before."""
    kept: list[Inbound] = []
    for event in events:
        if event.kind != "echo":
            kept.append(event)
            continue
        if minutes <= 0 or event.psid in admins:
            log.info("takeover.ignored", psid=event.psid, off=minutes <= 0)
            continue
        # From when the page wrote, not when the webhook heard of it (a late redelivery).
        wrote = min(now, event.timestamp // 1000) if event.timestamp > 0 else now
        until = wrote + minutes * 60
        if until <= now:  # so late that its pause is over: the conversation keeps it, that's all
            log.info("takeover.too_late", psid=event.psid, minutes=minutes)
            kept.append(replace(event, payload=""))
            continue
        started = pauses.extend(event.psid, until, BY_HUMAN, now)
        if started:
            metrics.add("HumanTakeovers")
            log.info("takeover.started", by=BY_HUMAN, psid=event.psid, minutes=minutes)
        else:
            log.info("takeover.extended", by=BY_HUMAN, psid=event.psid, minutes=minutes)
        kept.append(replace(event, payload=STARTED if started else ""))
    return kept
