"""The slow path, run in the asynchronous self-invocation: one webhook event at a time.

For each event: claim it (dedupe), know the user, run a command or count the question,
ask the model, reply. A question is counted only while an answer is on its way: every path
that ends without one gives it back.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from . import commands, replies
from .commands import Command
from .conversation import build_messages, remember, trim_history
from .events import Inbound
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
from .settings import Settings
from .store import ClaimState, Store, User

AskModel = Callable[[list[dict[str, str]], float], str]  # (messages, monotonic deadline)
RECENT_USERS_SHOWN = 20
# An attempt holds its event with a short lease that it renews while it works: a second
# delivery meanwhile finds the event held, a retry of an attempt that died (Lambda retries
# after a minute or more) finds the lease run out.
CLAIM_LEASE = timedelta(seconds=30)
CLAIM_RENEW_EVERY = timedelta(seconds=10)


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


@dataclass
class Worker:
    settings: Settings
    store: Store
    messenger: Messenger
    ask_model: AskModel
    clock: Callable[[], datetime] = field(default=utcnow)

    def run(self, events: list[Inbound], remaining: timedelta) -> None:
        """Handle every event; raise at the end if any must be retried."""
        deadline = time.monotonic() + remaining.total_seconds()
        failed = 0
        for event in events:
            try:
                self.handle(event, deadline)
            except Exception:
                failed += 1
                log.exception("event.failed", event_id=event.event_id, psid=event.psid)
        if failed:
            raise RetryLater(f"{failed} of {len(events)} events failed")

    def handle(self, event: Inbound, deadline: float) -> str:
        with log_context(psid=event.psid, event_id=event.event_id):
            owner = uuid.uuid4().hex  # this attempt, not the request: Lambda may run one twice
            claim = self.store.claim_event(event.event_id, self.clock(), CLAIM_LEASE, owner)
            if claim.state is ClaimState.DUPLICATE:
                log.info("event.duplicate")
                return "duplicate"
            attempt = Attempt(event, deadline, counted_day=claim.counted_day)
            with self._holding(event.event_id, owner):
                try:
                    outcome = self._answer(attempt)
                except Exception:
                    self._undo(attempt)
                    raise
            self.store.mark_event(event.event_id, "done")
            log.info("event.done", outcome=outcome, kind=event.kind, retaken=claim.state.value)
            return outcome

    @contextmanager
    def _holding(self, event_id: str, owner: str) -> Iterator[None]:
        """Renew the claim's short lease while this attempt works on it."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(CLAIM_RENEW_EVERY.total_seconds()):
                try:
                    if not self.store.renew_claim(event_id, owner, self.clock() + CLAIM_LEASE):
                        return
                except Exception:  # a missed renewal only shortens the lease
                    log.warning("claim.renew_failed")

        beat = threading.Thread(target=contextvars.copy_context().run, args=(renew,), daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()

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
