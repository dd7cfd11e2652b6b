"""The slow path, run in the asynchronous self-invocation: a person's inbox, in order.

A worker takes the lease on one person's inbox and answers their messages one at a time, in
the order they were sent. For each: claim it (dedupe), know the user, run a command or count
the question, ask the model, reply. A question is counted only while an answer is on its
way: every path that ends without one gives it back. A message that fails is tried again
(Lambda retries the drain) before any later one; after ``MAX_TRIES`` it is parked on the
failure queue so that the messages behind it are answered.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from . import commands, replies
from .commands import Command
from .conversation import build_messages, remember, trim_history
from .events import Inbound
from .inbox import Entry, Inbox
from .llm import ModelError
from .logs import log, log_context
from .messenger import TOKEN_INVALID, Messenger, SendError
from .quota import (
    STATUS_BLOCKED,
    STATUS_UNLIMITED,
    counter_expiry,
    day_key,
    effective_limit,
)
from .settings import ASYNC_RETRIES, Settings
from .store import ClaimState, Store, User

AskModel = Callable[[list[dict[str, str]], float], str]  # (messages, monotonic deadline)
RECENT_USERS_SHOWN = 20
# An attempt holds its event with a short lease that it renews while it works: a second
# delivery meanwhile finds the event held, a retry of an attempt that died (Lambda retries
# after a minute or more) finds the lease run out.
CLAIM_LEASE = timedelta(seconds=30)
CLAIM_RENEW_EVERY = timedelta(seconds=10)
# The same for a person's inbox: one worker drains it; a worker that died lets it go soon.
DRAIN_LEASE = timedelta(seconds=30)
# Tries at one message, as Lambda's own (one attempt, two retries), counting tries that died.
MAX_TRIES = 3
# Time kept for sending after the model call, when deciding whether one more message fits.
SEND_BUDGET_SECONDS = 10.0


class RetryLater(RuntimeError):
    """Nothing reached the user and the cause may pass: let Lambda invoke again."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def must_retry(error: SendError) -> bool:
    """Worth Lambda's retries (and then the failure queue): it may pass, or the owner can fix it."""
    return not error.permanent or error.code == TOKEN_INVALID


@dataclass
class Attempt:
    """What one attempt at an event has done so far, for undoing it on failure."""

    event: Inbound
    deadline: float  # time.monotonic() by which the invocation must be done
    counted_day: str | None = None
    replying: bool = False


class DrainEnd(Enum):
    EMPTY = "empty"  # nothing left
    OUT_OF_TIME = "out_of_time"  # another invocation carries on
    RETRIES_USED = "retries_used"  # a message failed on Lambda's last attempt: a fresh one
    LEASE_LOST = "lease_lost"  # another worker has the inbox now


@dataclass
class Budget:
    """One invocation's time: its first message is always tried, a later one only if it fits."""

    deadline: float  # time.monotonic() by which the invocation must be done
    started: bool = False


class Lease:
    """Renews a lease in the background while work goes on; notes when it is lost."""

    def __init__(self, renew: Callable[[], bool], every: timedelta) -> None:
        self._renew = renew
        self._every = every.total_seconds()
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._beat = threading.Thread(
            target=contextvars.copy_context().run, args=(self._run,), daemon=True
        )

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                if not self._renew():
                    self.lost.set()
                    return
            except Exception:  # a missed renewal only shortens the lease
                log.warning("lease.renew_failed")

    def __enter__(self) -> Lease:
        self._beat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._beat.join()


@dataclass
class Worker:
    settings: Settings
    store: Store
    inbox: Inbox
    messenger: Messenger
    ask_model: AskModel
    hand_on: Callable[[str], None]  # start another invocation to drain this person's inbox
    park: Callable[[Inbound, int, str], None]  # (event, tries, why) to the failure queue
    clock: Callable[[], datetime] = field(default=utcnow)

    def run(
        self,
        drain: Sequence[str],
        remaining: timedelta,
        events: Sequence[Inbound] = (),
        request_id: str = "",
        replay: bool = False,
    ) -> None:
        """Drain each person's inbox; raise at the end if a message must be tried again.

        ``events`` are the ones this invocation was started for; the webhook posted them.
        A ``replay`` (the owner invoking the function with a parked message's record) posts
        again those neither waiting nor answered, in their place in the order. Lambda's
        own retry of a drain does not: a message parked meanwhile stays parked.
        """
        budget = Budget(time.monotonic() + remaining.total_seconds())
        if replay:
            for event in events:
                if not self.inbox.waiting(event) and not self.store.answered(event.event_id):
                    log.info("event.reposted", event_id=event.event_id, psid=event.psid)
                    self.inbox.post([event])
        people = list(dict.fromkeys([*drain, *(e.psid for e in events)]))
        failed = 0
        for psid in people:
            try:
                self.drain(psid, budget, request_id)
            except Exception:
                failed += 1
                log.exception("drain.failed", psid=psid)
        if failed:
            raise RetryLater(f"{failed} of {len(people)} inboxes left to try again")

    @property
    def entry_budget(self) -> float:
        """Seconds one more message may need: every model attempt, then sending."""
        model = self.settings.openai_timeout_seconds * (self.settings.openai_max_retries + 1)
        return model + SEND_BUDGET_SECONDS

    def drain(self, psid: str, budget: Budget, request_id: str = "") -> DrainEnd | None:
        """Answer what waits in one inbox, unless another worker is already at it."""
        holder = uuid.uuid4().hex
        with log_context(psid=psid):
            while True:
                if not self.inbox.lock(psid, holder, self.clock(), DRAIN_LEASE):
                    log.info("inbox.busy")  # its holder looks again after letting go
                    return None

                def renew() -> bool:
                    return self.inbox.renew(psid, holder, self.clock() + DRAIN_LEASE)

                try:
                    with Lease(renew, CLAIM_RENEW_EVERY) as lease:
                        end = self._drain_held(psid, budget, lease, request_id)
                finally:
                    self.inbox.unlock(psid, holder)
                if end in (DrainEnd.OUT_OF_TIME, DrainEnd.RETRIES_USED):
                    log.info("inbox.handed_on", why=end.value)
                    self.hand_on(psid)
                    return end
                # A message posted just before this worker let go found the lease taken:
                # look once more, now that it is free.
                if end is DrainEnd.LEASE_LOST or self.inbox.next(psid) is None:
                    return end

    def _drain_held(self, psid: str, budget: Budget, lease: Lease, request_id: str) -> DrainEnd:
        deadline = budget.deadline
        while not lease.lost.is_set():
            entry = self.inbox.next(psid)
            if entry is None:
                return DrainEnd.EMPTY
            if budget.started and time.monotonic() + self.entry_budget > deadline:
                return DrainEnd.OUT_OF_TIME
            budget.started = True
            tries = self.inbox.start(entry)
            if tries is None:
                continue  # answered and removed by a worker that held the lease before
            if tries > MAX_TRIES:  # the earlier tries died without a word (crash, timeout)
                self._give_up(entry, tries - 1, "died")
                continue
            try:
                self.handle(entry.event, deadline)
            except Exception as error:
                log.exception("event.failed", event_id=entry.event.event_id, tries=tries)
                if tries >= MAX_TRIES:
                    self._give_up(entry, tries, type(error).__name__)
                    continue
                # The messages behind this one wait: Lambda tries the drain again, unless
                # this was its last attempt (its failures may have been other messages').
                if request_id and self.inbox.note_failure(psid, request_id) > ASYNC_RETRIES:
                    return DrainEnd.RETRIES_USED
                raise RetryLater(f"try {tries} of {MAX_TRIES} failed") from None
            self.inbox.remove(entry)
        return DrainEnd.LEASE_LOST

    def _give_up(self, entry: Entry, tries: int, why: str) -> None:
        """Park the message for the owner, so that the ones behind it are answered."""
        log.error("event.parked", event_id=entry.event.event_id, tries=tries, why=why)
        self.park(entry.event, tries, why)
        self.inbox.remove(entry)

    def handle(self, event: Inbound, deadline: float) -> str:
        with log_context(psid=event.psid, event_id=event.event_id):
            owner = uuid.uuid4().hex  # this attempt, not the request: Lambda may run one twice
            claim = self.store.claim_event(event.event_id, self.clock(), CLAIM_LEASE, owner)
            if claim.state is ClaimState.DUPLICATE:
                log.info("event.duplicate")
                return "duplicate"
            if claim.state is ClaimState.HELD:  # a worker that died, until its lease runs out
                raise RetryLater("held by another attempt")
            attempt = Attempt(event, deadline, counted_day=claim.counted_day)

            def renew() -> bool:
                return self.store.renew_claim(event.event_id, owner, self.clock() + CLAIM_LEASE)

            with Lease(renew, CLAIM_RENEW_EVERY):
                try:
                    outcome = self._answer(attempt)
                except Exception:
                    self._undo(attempt)
                    raise
            self.store.mark_event(event.event_id, "done")
            log.info("event.done", outcome=outcome, kind=event.kind, retaken=claim.state.value)
            return outcome

    def _undo(self, attempt: Attempt) -> None:
        """Leave no trace of an attempt that sent nothing, so that a retry starts clean."""
        if attempt.replying:
            return  # part of an answer may have arrived: never answer twice
        if attempt.counted_day:
            self.store.give_back_question(
                attempt.event.psid, attempt.counted_day, attempt.event.event_id
            )
        self.store.release_event(attempt.event.event_id)

    # -- one event ------------------------------------------------------------------------

    def _answer(self, attempt: Attempt) -> str:
        event = attempt.event
        now = self.clock()
        user, created = self.store.touch_user(event.psid, now)
        is_admin = self.settings.is_admin(event.psid)
        if created and not is_admin:
            self._notify_admins(event.psid, user)
        if user.status == STATUS_BLOCKED and not is_admin:
            return "blocked"

        if event.payload:
            command = commands.parse_payload(event.payload, is_admin)
            if command is None and (event.kind == "postback" or not event.text.strip()):
                log.info("payload.unknown", kind=event.kind)
                return "ignored"
        else:
            command = commands.parse_text(event.text, is_admin)
        if command is not None:
            return self._command(attempt, command, is_admin, now)
        if event.kind == "attachments":
            self._say(attempt, replies.ATTACHMENTS_ONLY)
            return "attachments_only"
        return self._question(attempt, user.status, user.daily_limit, is_admin, now)

    def _question(
        self, attempt: Attempt, status: str, own_limit: int | None, is_admin: bool, now: datetime
    ) -> str:
        event, settings, tz = attempt.event, self.settings, self.settings.tz
        limit = None if is_admin else effective_limit(status, own_limit, settings.daily_limit)
        if attempt.counted_day is None:
            day = day_key(now, tz)
            expiry = counter_expiry(now, tz)
            if not self.store.take_question(event.psid, day, limit, expiry, event.event_id):
                self._say(attempt, replies.over_limit(limit or 0, now, tz))
                return "over_limit"
            attempt.counted_day = day
            self.store.note_counted(event.event_id, day)

        try:
            self.messenger.sender_action(event.psid, "mark_seen")
            self.messenger.sender_action(event.psid, "typing_on")
        except SendError as error:
            if error.code == TOKEN_INVALID:
                raise RetryLater(error.reason) from None  # to the failure queue, for the owner
            if error.permanent:  # nobody to answer: spare the model call
                return self._uncount(attempt, "unreachable")

        remembering = settings.history_turns > 0
        history = self.store.load_history(event.psid) if remembering else []
        history = trim_history(history, settings.history_turns, settings.history_max_chars)
        try:
            messages = build_messages(settings.system_prompt, history, event.text)
            answer = self.ask_model(messages, attempt.deadline)
        except ModelError as error:
            log.warning("model.failed", reason=error.reason)
            self._uncount(attempt, "model_failed")
            self._say(attempt, replies.APOLOGY)
            return "model_failed"

        self.store.mark_event(event.event_id, "replying")
        attempt.replying = True
        try:
            bubbles = self.messenger.send_text(event.psid, answer)
        except SendError as error:
            if error.delivered:
                log.warning("reply.partial", delivered=error.delivered)
                return "partly_sent"
            attempt.replying = False
            if must_retry(error):
                raise RetryLater(error.reason) from None
            return self._uncount(attempt, "send_failed")
        if remembering:
            turns = remember(
                history, event.text, answer, settings.history_turns, settings.history_max_chars
            )
            expires = int((now + timedelta(hours=settings.history_ttl_hours)).timestamp())
            self.store.save_history(event.psid, turns, expires)
        log.info("reply.sent", bubbles=bubbles, answer_chars=len(answer))
        return "answered"

    def _uncount(self, attempt: Attempt, outcome: str) -> str:
        if attempt.counted_day:
            self.store.give_back_question(
                attempt.event.psid, attempt.counted_day, attempt.event.event_id
            )
            attempt.counted_day = None
        return outcome

    def _say(self, attempt: Attempt, text: str) -> None:
        """A message of the bot's own. Once it may have arrived the event is never retaken.
        Failures are logged by the client; those that may pass (or that the owner can fix)
        fail the event so that Lambda tries it again."""
        self.store.mark_event(attempt.event.event_id, "replying")
        attempt.replying = True
        try:
            self.messenger.send_text(attempt.event.psid, text)
        except SendError as error:
            if error.delivered:
                return
            attempt.replying = False
            if must_retry(error):
                raise RetryLater(error.reason) from None

    def _notify_admins(self, psid: str, user: User) -> None:
        notice = replies.new_user_notice(user, self.settings.daily_limit)
        for admin in sorted(self.settings.admin_psids):
            try:
                self.messenger.send_message(admin, notice)
            except SendError:
                continue
        log.info("user.new", admins_told=len(self.settings.admin_psids))

    # -- commands -------------------------------------------------------------------------

    def _command(self, attempt: Attempt, command: Command, is_admin: bool, now: datetime) -> str:
        psid = attempt.event.psid
        if command.name == "ignored":
            log.warning("payload.ignored", why=command.error)
            return "ignored"
        if command.error:
            self._say(attempt, command.error)
            return f"command_error:{command.name}"
        self._say(attempt, self._command_reply(psid, command, is_admin, now))
        return f"command:{command.name}"

    def _command_reply(self, psid: str, command: Command, is_admin: bool, now: datetime) -> str:
        store, settings = self.store, self.settings
        day = day_key(now, settings.tz)
        if command.name == "help":
            return replies.USER_HELP + (replies.ADMIN_HELP if is_admin else "")
        if command.name == "reset":
            store.clear_history(psid)
            return replies.RESET_DONE
        if command.name == "usage":
            user = store.get_user(psid)
            assert user is not None  # touched at the start of this event
            if is_admin:
                user = User(psid, STATUS_UNLIMITED)
            return replies.usage(store.usage(user, day, settings.daily_limit), now, settings.tz)
        if command.name == "users":
            users = store.recent_users(RECENT_USERS_SHOWN)
            if not users:
                return "No users yet."
            lines = [
                replies.describe_user(u, store.usage(u, day, settings.daily_limit)) for u in users
            ]
            return f"Recent users ({len(users)}):\n" + "\n".join(lines)
        if command.name == "forget":
            deleted = store.forget_user(command.psid)
            if not deleted:
                return f"Nothing is stored for {command.psid}."
            return f"Forgot {command.psid}: {deleted} records deleted."
        if command.name == "limit":
            assert command.number is not None
            current = store.get_user(command.psid)
            user = store.set_limit(command.psid, command.number, now)
            if current is not None and current.status == STATUS_UNLIMITED:
                user = store.set_status(command.psid, "default", now)
        else:
            status = commands.ADMIN_STATUS_COMMANDS[command.name]
            user = store.set_status(command.psid, status, now)
        return replies.status_changed(user, store.usage(user, day, settings.daily_limit))
