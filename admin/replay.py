"""What ``replay`` does with each message on the dead-letter queue, and doing it.

A message lands on the dead-letter queue after the worker failed it ``maxReceiveCount``
times (the Send API down, the page token invalid...). Sending it back to the FIFO queue
answers it once the cause is fixed: the worker's record of the event (``handler.claims``)
still says what was already done, so a recorded answer is sent as it was, without asking
the model (or counting the question) again. SQS drops a message whose deduplication id it
saw in the last five minutes, so a replay gets an id of its own; its message group stays the
person's, so their order holds. A message older than Messenger's 24-hour window can no
longer be answered: it is never sent back, only dropped when the owner says so.

The decisions are pure (``examine``, ``decide``); ``Replayer`` carries them out through
the thin SQS client and the bot's own ``Claims``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from handler.claims import DONE
from handler.events import Inbound, is_stale

from .queues import Letter, Sqs, walk

STALE = "no longer answerable (outside Messenger's 24-hour window)"
ANSWER_READY = "answer ready, will be re-sent without asking the model"
UNREADABLE = "not a message of this bot: it cannot be replayed"
BLOCKED = "an earlier message of this person could not be sent back"
MIN_ID_PREFIX = 8  # the table shows message ids this long


class Action(StrEnum):
    REPLAY = "replay"  # send back to the queue, then delete from the dead-letter queue
    DROP = "drop"  # delete: no longer answerable (--drop-stale)
    DISCARD = "discard"  # delete without answering (--discard)
    KEEP = "keep"  # leave it on the dead-letter queue


@dataclass(frozen=True)
class Selection:
    """Which messages the owner named; nothing named means look only."""

    everything: bool = False
    ids: frozenset[str] = frozenset()  # message ids (or their first characters), event ids
    psids: frozenset[str] = frozenset()

    @property
    def named(self) -> bool:
        return self.everything or bool(self.ids or self.psids)

    def matching_ids(self, message_id: str, event_id: str | None) -> set[str]:
        return {
            wanted
            for wanted in self.ids
            if wanted in (message_id, event_id)
            or (len(wanted) >= MIN_ID_PREFIX and message_id.startswith(wanted))
        }

    def matches(self, message_id: str, event_id: str | None, psid: str) -> bool:
        return (
            self.everything or psid in self.psids or bool(self.matching_ids(message_id, event_id))
        )


@dataclass(frozen=True)
class Plan:
    selection: Selection
    drop_stale: bool = False
    discard: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class Attempts:
    """What the worker's record of the event says about its attempts (no message text)."""

    found: bool = False
    count: int = 0
    last_error: str | None = None
    answer_ready: bool = False  # a reply was recorded: a replay sends it, the model is not asked
    answered: bool = False  # done: a replay finds it so and does nothing

    @property
    def why(self) -> str:
        """Why it failed, for the owner: the last error, and what a replay would send."""
        if self.answered:
            return "already answered (a replay does nothing)"
        why = self.last_error or (
            "unknown (no error recorded)" if self.found else "unknown (no record of an attempt)"
        )
        return f"{why}; {ANSWER_READY}" if self.answer_ready else why


def attempts_from_item(item: dict[str, Any] | None) -> Attempts:
    """The event's item as ``handler.claims`` writes it."""
    if not item:
        return Attempts()
    return Attempts(
        found=True,
        count=int(item.get("attempts", {}).get("N", "0")),
        last_error=item.get("last_error", {}).get("S"),
        answer_ready="reply" in item,
        answered=item.get("state", {}).get("S") == DONE,
    )


@dataclass(frozen=True)
class DeadLetter:
    """One message on the dead-letter queue as the owner sees it."""

    letter: Letter
    event: Inbound | None  # None: a body this bot did not write
    attempts: Attempts
    sent_ms: int  # when the person wrote it, else when SQS took it
    age_from: str  # "event" or "queue"
    stale: bool

    @property
    def psid(self) -> str:
        return self.event.psid if self.event else self.letter.group

    @property
    def event_id(self) -> str | None:
        return self.event.event_id if self.event else None

    @property
    def receives(self) -> int:
        """Receives before this look (SQS counted the one that read it for this run)."""
        return max(0, self.letter.receive_count - 1)


def parse_event(body: str) -> Inbound | None:
    try:
        return Inbound.from_dict(json.loads(body))
    except (ValueError, TypeError):  # json's errors are ValueErrors too
        return None


def examine(
    letter: Letter, event: Inbound | None, item: dict[str, Any] | None, now_ms: int
) -> DeadLetter:
    """Age from the event's own time when Facebook gave one, else from SQS's: stale by the
    same rule as the worker (``handler.events.is_stale``)."""
    known = event is not None and event.timestamp > 0
    sent_ms = event.timestamp if known and event else letter.sent_ms
    return DeadLetter(
        letter=letter,
        event=event,
        attempts=attempts_from_item(item),
        sent_ms=sent_ms,
        age_from="event" if known else "queue",
        stale=is_stale(sent_ms, now_ms),
    )


def decide(dead: DeadLetter, plan: Plan, blocked: bool) -> tuple[Action, str]:
    """What to do with one message, and the reason when it stays.

    ``blocked``: an earlier message of the same person could not be sent back; sending this
    one would put it ahead of that one.
    """
    selected = plan.selection.matches(dead.letter.message_id, dead.event_id, dead.psid)
    if selected and plan.discard:
        return Action.DISCARD, ""
    if dead.event is None:
        return Action.KEEP, UNREADABLE
    if not selected:
        if dead.stale and plan.drop_stale and not plan.selection.named:
            return Action.DROP, STALE
        return Action.KEEP, STALE if dead.stale else ""
    if dead.stale:
        return (Action.DROP if plan.drop_stale else Action.KEEP), STALE
    if blocked:
        return Action.KEEP, BLOCKED
    return Action.REPLAY, ""


def replay_dedupe_id(event_id: str, message_id: str) -> str:
    """New to SQS (the webhook's id was the event's alone), and the same for the same
    dead-letter message: a send repeated by a retry, or by a run after a lost delete within
    five minutes, is dropped by SQS, and a later one by the worker's record of the event."""
    basis = f"{event_id}\x00replay\x00{message_id}"
    return hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """What happened to one message (``done`` is False in a dry run and when it stays)."""

    dead: DeadLetter
    action: Action
    reason: str = ""
    done: bool = False
    new_message_id: str | None = None
    error: str | None = None  # the AWS error code when the action failed


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or "unknown")


@dataclass
class Replayer:
    """One pass over the dead-letter queue, doing what ``decide`` says (not in a dry run)."""

    sqs: Sqs
    event_item: Callable[[str], dict[str, Any] | None]  # the bot's ``Claims.get``
    dead_letter_url: str
    queue_url: str | None
    plan: Plan
    now_ms: int
    on_message: Callable[[int], None] | None = None  # progress: messages read so far
    outcomes: list[Outcome] = field(default_factory=list, init=False)  # the ones shown
    others: int = field(default=0, init=False)  # read, but not among the chosen ones
    found_ids: set[str] = field(default_factory=set, init=False)  # chosen ids seen
    _blocked: set[str] = field(default_factory=set, init=False)  # groups with a failed send
    _read: int = field(default=0, init=False)

    def run(self) -> list[Outcome]:
        walk(self.sqs, self.dead_letter_url, self._visit)
        return self.outcomes

    def unknown_ids(self) -> list[str]:
        return sorted(self.plan.selection.ids - self.found_ids)

    def _visit(self, letter: Letter) -> bool:
        """Decide on one message and carry it out; True when it left the dead-letter queue."""
        self._read += 1
        if self.on_message:
            self.on_message(self._read)
        event = parse_event(letter.body)
        selection = self.plan.selection
        event_id, psid = (event.event_id, event.psid) if event else (None, letter.group)
        shown = not selection.named or selection.matches(letter.message_id, event_id, psid)
        # Only the messages shown need the worker's record (why they failed).
        item = self.event_item(event_id) if event_id and shown else None
        dead = examine(letter, event, item, self.now_ms)
        self.found_ids |= selection.matching_ids(letter.message_id, event_id)
        action, reason = decide(dead, self.plan, letter.group in self._blocked)
        outcome = self._carry_out(dead, action, reason)
        if shown:
            self.outcomes.append(outcome)
        else:
            self.others += 1
        return outcome.done

    def _carry_out(self, dead: DeadLetter, action: Action, reason: str) -> Outcome:
        if action is Action.KEEP or self.plan.dry_run:
            return Outcome(dead, action, reason)
        new_id = None
        try:
            if action is Action.REPLAY:
                new_id = self._send_back(dead)
        except ClientError as error:
            self._blocked.add(dead.letter.group)
            return Outcome(dead, action, "could not be sent back", error=_code(error))
        try:
            self.sqs.delete(self.dead_letter_url, dead.letter.receipt_handle)
        except ClientError as error:
            # Sent but kept: a later replay is dropped by SQS within five minutes, and after
            # that the worker's record of the event keeps it from being answered twice.
            note = "sent back, but still on the dead-letter queue" if new_id else "not deleted"
            return Outcome(dead, action, note, new_message_id=new_id, error=_code(error))
        return Outcome(dead, action, reason, done=True, new_message_id=new_id)

    def _send_back(self, dead: DeadLetter) -> str:
        assert dead.event is not None and self.queue_url is not None
        return self.sqs.send(
            self.queue_url,
            dead.letter.body,
            dead.letter.group or dead.event.psid,
            replay_dedupe_id(dead.event.event_id, dead.letter.message_id),
        )
