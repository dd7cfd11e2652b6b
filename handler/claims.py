"""One webhook event's attempts, in one item: who works on it, what it says, what was sent.

This is what makes "answered once" hold when Facebook, SQS or Lambda repeat themselves:

- An attempt **claims** the event for itself until its invocation's deadline (the lease).
  Another attempt can take it over only after that, when Lambda has ended the first.
- The reply is **recorded** before its first bubble is sent (the model's answer together
  with the question's count, in one transaction), so a later attempt sends the same reply
  and never asks the model again, and the count never happens twice.
- Each bubble the Send API confirms is **recorded** before the next is sent, so a later
  attempt sends only the rest.
- Every change is conditional on the attempt still owning the claim: one that has lost it
  learns so (``ClaimLost``) before it sends anything more.

The worst case is one repeated bubble: Graph accepted it, and the attempt ended before it
could write so. Never a lost message and never a whole second answer.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from . import schema
from .store import TransactItem
from .text import bubbles

# Longer than Facebook redelivers and than Messenger's 24-hour window: a repeat of an event
# always finds its item, and one older than that is refused as stale before it gets here.
EVENT_RETENTION = timedelta(hours=48)
WORKING = "working"
DONE = "done"

_NAMES = {"#state": "state", "#owner": "owner", "#lease": "lease_until"}
# A transaction that met another on the same item (the page's daily totals) is tried again
# this many times, after a short random wait.
CONFLICT_TRIES = 5
CONFLICT_WAIT_SECONDS = 0.05


def _names(*expressions: str) -> dict[str, str]:
    """The placeholders the expressions use: DynamoDB refuses unused ones."""
    return {k: v for k, v in _NAMES.items() if any(k in e for e in expressions)}


class ClaimState(Enum):
    NEW = "new"  # first attempt: do the work
    RESUMED = "resumed"  # an earlier attempt ended without finishing: carry on from its record
    DUPLICATE = "duplicate"  # finished before: do nothing
    HELD = "held"  # another attempt owns it and may still be running: not now


class ClaimLost(RuntimeError):
    """Another attempt owns the event now: this one must not send or write anything more."""


class GuardFailed(RuntimeError):
    """The condition a write was made on no longer holds (a takeover began): nothing of the
    transaction was written."""


@dataclass(frozen=True)
class Reply:
    """What the bot says to one event: Send API messages, sent in order, and the exchange
    to add to the conversation once they are."""

    messages: tuple[dict[str, Any], ...]
    question: str | None = None  # remembered with the answer when both are set
    answer: str | None = None

    def to_json(self) -> str:
        """The answer once: its bubbles are derived from it again unless they are not its
        own (the bot's note about an empty answer, say). Every byte is paid for twice."""
        data: dict[str, Any] = {"question": self.question, "answer": self.answer}
        if not self.answer or self.messages != bubbles(self.answer):
            data["messages"] = list(self.messages)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Reply:
        data = json.loads(raw)
        answer = data.get("answer")
        messages = data.get("messages")
        return cls(
            tuple(messages) if messages is not None else bubbles(answer),
            data.get("question"),
            answer,
        )


@dataclass(frozen=True)
class Claim:
    event_id: str
    owner: str
    state: ClaimState
    lease_until_ms: int = 0
    attempts: int = 0
    reply: Reply | None = None  # recorded: send it (from ``sent``) instead of deciding again
    sent: int = 0  # bubbles of ``reply`` the Send API confirmed
    counted: str | None = None  # the quota day this event's question was counted on
    last_error: str | None = field(default=None, compare=False)


def claim_from_item(event_id: str, owner: str, state: ClaimState, item: dict[str, Any]) -> Claim:
    reply = item.get("reply", {}).get("S")
    return Claim(
        event_id=event_id,
        owner=owner,
        state=state,
        lease_until_ms=int(item.get("lease_until", {}).get("N", "0")),
        attempts=int(item.get("attempts", {}).get("N", "0")),
        reply=Reply.from_json(reply) if reply else None,
        sent=int(item.get("sent", {}).get("N", "0")),
        counted=item.get("counted", {}).get("S"),
        last_error=item.get("last_error", {}).get("S"),
    )


class Claims:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def claim(self, event_id: str, owner: str, now_ms: int, lease_until_ms: int) -> Claim:
        """Take the event for ``owner`` until ``lease_until_ms``, or learn who has it."""
        expires = now_ms // 1000 + int(EVENT_RETENTION.total_seconds())
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key=schema.event_key(event_id),
                UpdateExpression="SET #state = :working, #owner = :owner, #lease = :until, "
                "attempts = if_not_exists(attempts, :zero) + :one, "
                "#ttl = if_not_exists(#ttl, :ttl)",
                ConditionExpression="attribute_not_exists(#pk) OR "
                "(#state = :working AND #lease < :now)",
                ExpressionAttributeNames={
                    **_NAMES,
                    "#pk": schema.PARTITION_KEY,
                    "#ttl": schema.TTL_ATTRIBUTE,
                },
                ExpressionAttributeValues={
                    ":working": {"S": WORKING},
                    ":owner": {"S": owner},
                    ":until": {"N": str(lease_until_ms)},
                    ":now": {"N": str(now_ms)},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":ttl": {"N": str(expires)},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if not schema.is_condition_failure(error):
                raise
            return self._taken(event_id, owner)
        item = response["Attributes"]
        fresh = int(item["attempts"]["N"]) == 1
        return claim_from_item(
            event_id, owner, ClaimState.NEW if fresh else ClaimState.RESUMED, item
        )

    def _taken(self, event_id: str, owner: str) -> Claim:
        item = self.get(event_id) or {}
        if item.get("state", {}).get("S") == DONE:
            return claim_from_item(event_id, owner, ClaimState.DUPLICATE, item)
        if item.get("owner", {}).get("S") == owner:
            # botocore sent the claim again after its answer was lost: it is ours.
            fresh = int(item.get("attempts", {}).get("N", "0")) <= 1
            return claim_from_item(
                event_id, owner, ClaimState.NEW if fresh else ClaimState.RESUMED, item
            )
        return claim_from_item(event_id, owner, ClaimState.HELD, item)

    def get(self, event_id: str) -> dict[str, Any] | None:
        return self._db.get_item(
            TableName=self._table, Key=schema.event_key(event_id), ConsistentRead=True
        ).get("Item")

    # -- conditional changes ----------------------------------------------------------------

    def _owned_update(
        self, claim: Claim, sets: str, values: dict[str, Any], extra_condition: str = ""
    ) -> TransactItem:
        condition = "#owner = :me AND #state = :working" + extra_condition
        return {
            "Update": {
                "TableName": self._table,
                "Key": schema.event_key(claim.event_id),
                "UpdateExpression": sets,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": _names(sets, condition),
                "ExpressionAttributeValues": {
                    ":me": {"S": claim.owner},
                    ":working": {"S": WORKING},
                    **values,
                },
            }
        }

    def _write(
        self,
        event_update: TransactItem,
        extra: list[TransactItem],
        guard: TransactItem | None = None,
    ) -> None:
        """The event's change alone, or in one transaction with ``extra`` and ``guard`` (a
        ``ConditionCheck``); ``ClaimLost`` when the event's condition fails, ``GuardFailed``
        when the guard's does."""
        extra = [*extra, guard] if guard is not None else extra
        if not extra:
            try:
                self._db.update_item(**event_update["Update"])
            except ClientError as error:
                if schema.is_condition_failure(error):
                    raise ClaimLost(event_update["Update"]["Key"]) from None
                raise
            return
        for attempt in range(CONFLICT_TRIES):
            try:
                self._db.transact_write_items(TransactItems=[event_update, *extra])
                return
            except ClientError as error:
                failed = schema.cancelled_conditions(error)
                if failed and failed[0]:
                    raise ClaimLost(event_update["Update"]["Key"]) from None
                if failed and guard is not None and len(failed) == len(extra) + 1 and failed[-1]:
                    raise GuardFailed() from None
                if not schema.cancelled_by_conflict(error) or attempt == CONFLICT_TRIES - 1:
                    raise
            time.sleep(random.uniform(0.5, 1.5) * CONFLICT_WAIT_SECONDS * 2**attempt)

    def record(
        self,
        claim: Claim,
        reply: Reply,
        count: TransactItem | list[TransactItem] | None = None,
        day: str = "",
        guard: TransactItem | None = None,
    ) -> Claim:
        """Record the reply before sending it; with ``count`` (the counter's transaction item,
        or the answer's usage items: the person's count and tokens, the page's totals) they
        are added on ``day`` in the same transaction, once ever. With ``guard`` (a
        ``ConditionCheck``) nothing is written unless it holds: ``GuardFailed``."""
        sets = "SET reply = :reply, sent = :zero"
        values: dict[str, Any] = {":reply": {"S": reply.to_json()}, ":zero": {"N": "0"}}
        extra = [] if count is None else count if isinstance(count, list) else [count]
        if not extra or claim.counted:
            self._write(self._owned_update(claim, sets, values), [], guard)
            return replace(claim, reply=reply, sent=0)
        update = self._owned_update(
            claim,
            sets + ", counted = :day",
            {**values, ":day": {"S": day}},
            " AND attribute_not_exists(counted)",
        )
        try:
            self._write(update, extra, guard)
        except ClaimLost:
            # Either another owner, or counted by an attempt whose answer was lost: look.
            item = self.get(claim.event_id) or {}
            if item.get("owner", {}).get("S") != claim.owner or "counted" not in item:
                raise
            self._write(self._owned_update(claim, sets, values), [], guard)
        return replace(claim, reply=reply, sent=0, counted=day)

    def record_sent(self, claim: Claim, sent: int) -> Claim:
        """``sent`` bubbles of the recorded reply have reached the Send API."""
        self._write(self._owned_update(claim, "SET sent = :sent", {":sent": {"N": str(sent)}}), [])
        return replace(claim, sent=sent)

    def release(self, claim: Claim, why: str) -> None:
        """End this attempt without finishing: the lease goes at once, so the queue's retry
        can claim the event, and why it failed stays for the owner reading the dead-letter
        queue. (An attempt that dies leaves its lease to run out with the invocation.)"""
        update = self._owned_update(
            claim,
            "SET last_error = :why, #lease = :zero",
            {":why": {"S": why[:200]}, ":zero": {"N": "0"}},
        )
        self._write(update, [])

    def finish(self, claim: Claim, outcome: str, extra: list[TransactItem] | None = None) -> None:
        """Done, with what else the answer changes (the conversation, the user's activity),
        all or nothing. The reply's text is not kept once it is sent."""
        update = self._owned_update(
            claim,
            "SET #state = :done, outcome = :outcome REMOVE reply, #lease",
            {":done": {"S": DONE}, ":outcome": {"S": outcome}},
        )
        self._write(update, list(extra or []))
