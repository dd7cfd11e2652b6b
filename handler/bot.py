"""The conversation rules: who may ask, what counts, what is said, for one event at a time.

``Bot`` knows nothing of queues. It takes its store, claims, messenger, model and clock as
arguments (the unit tests give it in-memory fakes) and answers one event: claim it, know the
user, run a command or ask the model, record the reply, send it. It raises ``RetryLater``
when the event should be tried again later; the queue side (``batch``) decides when.

A question counts when the model has answered (HTTP 200, so the owner paid for it), in the
same write that records the answer; nothing is counted before that, so a failure before the
answer costs the person nothing, and a retry after it sends the recorded answer again
without asking (or counting) twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from . import commands, replies
from .claims import Claim, ClaimLost, Claims, ClaimState, Reply
from .commands import Command
from .conversation import build_messages, remember, trim_history
from .events import Inbound, is_stale
from .llm import Completion, ModelError
from .logs import log, log_context
from .messenger import Messenger, SendError
from .quota import STATUS_BLOCKED, STATUS_UNLIMITED, counter_expiry, day_key, effective_limit
from .settings import Settings
from .store import Snapshot, Store, TransactItem, Turn, User
from .text import bubbles

AskModel = Callable[[list[Turn], float], Completion]  # (messages, monotonic deadline)
RECENT_USERS_SHOWN = 20
# Kept back from the model call for sending the answer (Graph gets ten seconds a try).
SEND_RESERVE_SECONDS = 10.0
# No bubble is sent this close to the end of the claim's lease.
LEASE_MARGIN_MS = 1_000
# How fresh a user's last activity must be before the bot writes it again: the owner's list
# of recent users is at most this stale, and a busy user costs one write less per message.
ACTIVITY_RESOLUTION = timedelta(minutes=10)


class RetryLater(Exception):
    """Nothing final happened yet: try the event again later. ``after`` is a wait the cause
    asked for (a Retry-After), if any."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


def utcnow() -> datetime:
    return datetime.now(UTC)


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def text_reply(text: str, question: str | None = None, answer: str | None = None) -> Reply:
    """Text as Messenger bubbles of at most 2,000 characters."""
    return Reply(bubbles(text), question, answer)


@dataclass(frozen=True)
class Attempt:
    """One try at one event, as the queue side starts it."""

    owner: str  # this attempt's id: the claim is conditional on it
    deadline: float  # time.monotonic() by which all work must be done
    lease_until_ms: int  # the claim's end (epoch ms): when Lambda ends this invocation
    receive: int = 1  # which receive of the queued message this is
    last: bool = False  # the last receive before the dead-letter queue
    queued_ms: int = 0  # when the message entered the queue (for events with no time)


@dataclass
class Job:
    """One claimed event while it is being answered."""

    event: Inbound
    claim: Claim  # replaced as the claim's record grows
    attempt: Attempt
    now: datetime
    active_at: str | None = None  # the user's last activity as stored; None: not known
    new_referral: bool = False  # the event says where the user came from, and they had none
    forgotten: bool = False  # the user's data was just deleted: write nothing about them

    @property
    def psid(self) -> str:
        return self.event.psid


@dataclass
class Bot:
    settings: Settings
    store: Store
    claims: Claims
    messenger: Messenger
    ask_model: AskModel
    clock: Callable[[], datetime] = field(default=utcnow)

    def handle(self, event: Inbound, attempt: Attempt) -> str:
        """Answer one event; returns what happened (for the log and the tests)."""
        now = self.clock()
        with log_context(psid=event.psid, event_id=event.event_id):
            if is_stale(event.timestamp or attempt.queued_ms, epoch_ms(now)):
                log.warning("event.stale", receive=attempt.receive)
                return "stale"
            claim = self.claims.claim(
                event.event_id, attempt.owner, epoch_ms(now), attempt.lease_until_ms
            )
            if claim.state is ClaimState.DUPLICATE:
                log.info("event.duplicate")
                return "duplicate"
            if claim.state is ClaimState.HELD:
                raise RetryLater("held by another attempt")
            job = Job(event, claim, attempt, now)
            try:
                outcome = self._claimed(job)
            except ClaimLost:
                log.warning("event.claim_lost")  # its new owner answers it
                return "claim_lost"
            except Exception as error:
                why = error.reason if isinstance(error, RetryLater) else type(error).__name__
                self._release(job.claim, why)
                raise
            log.info(
                "event.done",
                outcome=outcome,
                kind=event.kind,
                attempts=claim.attempts,
                resumed=claim.state is ClaimState.RESUMED,
            )
            return outcome

    def _activity(self, job: Job) -> list[TransactItem]:
        """Mark the user active, unless the record already says so to within
        ``ACTIVITY_RESOLUTION``: the write (and its index update) is most of a busy user's.
        A referral not yet on the record rides along."""
        if job.forgotten:
            return []
        event = job.event
        if job.new_referral:
            return [self.store.touch_item(job.psid, job.now, event.ref_source, event.ref)]
        if job.active_at:
            try:
                last = datetime.fromisoformat(job.active_at)
            except ValueError:
                last = None
            if last is not None:
                last = last if last.tzinfo else last.replace(tzinfo=UTC)
                if timedelta(0) <= job.now - last < ACTIVITY_RESOLUTION:
                    return []
        return [self.store.touch_item(job.psid, job.now)]

    def _end(self, job: Job, outcome: str) -> str:
        """Finish an event that needs nothing more sent."""
        self.claims.finish(job.claim, outcome, self._activity(job))
        return outcome

    def _release(self, claim: Claim, why: str) -> None:
        try:
            self.claims.release(claim, why)
        except Exception:  # the failure itself is what matters; it is logged by the caller
            log.warning("event.release_failed")

    # -- one claimed event ----------------------------------------------------------------

    def _claimed(self, job: Job) -> str:
        event, claim = job.event, job.claim
        if claim.reply is not None:  # an earlier attempt decided what to say: say the rest
            log.info("event.resumed", sent=claim.sent, bubbles=len(claim.reply.messages))
            return self._deliver(job, claim.reply, "answered")
        snapshot = self.store.snapshot(event.psid, day_key(job.now, self.settings.tz))
        is_admin = self.settings.is_admin(event.psid)
        user = snapshot.user
        if user is None:
            user, created = self.store.create_user(event.psid, job.now, event.ref_source, event.ref)
            if created and not is_admin:
                self._notify_admins(user, job.attempt)
        job.active_at = user.active_at
        job.new_referral = bool(event.ref_source or event.ref) and not (user.ref_source or user.ref)
        if event.kind == "referral":  # an m.me link or ad opened the chat: noted, not answered
            return self._end(job, "referral")
        if user.status == STATUS_BLOCKED and not is_admin:
            return self._end(job, "blocked")

        question = event.text
        if event.payload:
            command = commands.parse_payload(event.payload, is_admin)
            question = commands.asked(event.text, event.payload)
        else:
            command = commands.parse_text(event.text, is_admin)
        if command is not None:
            return self._command(job, command, is_admin, user)
        if event.kind == "attachments":
            return self._say(job, replies.ATTACHMENTS_ONLY, "attachments")
        if not question.strip():
            log.info("payload.empty", kind=event.kind)
            return self._end(job, "ignored")
        return self._question(job, question, user, snapshot, is_admin)

    def _question(
        self, job: Job, question: str, user: User, snapshot: Snapshot, is_admin: bool
    ) -> str:
        event, attempt, now = job.event, job.attempt, job.now
        settings, tz = self.settings, self.settings.tz
        limit = (
            None
            if is_admin
            else effective_limit(user.status, user.daily_limit, settings.daily_limit)
        )
        if limit is not None and snapshot.used_today >= limit:
            return self._say(job, replies.over_limit(limit, now, tz), "over_limit")
        try:
            self.messenger.sender_action(event.psid, "mark_seen", attempt.deadline)
            self.messenger.sender_action(event.psid, "typing_on", attempt.deadline)
        except SendError as error:
            if error.owner_must_act:
                raise RetryLater(error.reason) from None  # to the dead-letter queue, for the owner
            if error.permanent:  # nobody to answer: spare the model call
                return self._end(job, "unreachable")

        history = trim_history(snapshot.history, settings.history_turns, settings.history_max_chars)
        messages = build_messages(settings.system_prompt, history, question)
        try:
            completion = self.ask_model(messages, attempt.deadline - SEND_RESERVE_SECONDS)
        except ModelError as error:
            log.warning("model.failed", reason=error.reason, retryable=error.retryable)
            if error.retryable and not attempt.last:
                if attempt.receive == 1:
                    self._tell(event.psid, replies.MODEL_TROUBLE, attempt)
                raise RetryLater(f"model:{error.reason}", error.retry_after) from None
            return self._say(job, replies.APOLOGY, "model_failed")

        if not completion.text:
            log.warning("model.empty", finish_reason=completion.finish_reason)
        reply = text_reply(completion.text or replies.EMPTY_ANSWER, question, completion.text)
        day = day_key(now, tz)
        count = self.store.count_item(event.psid, day, counter_expiry(now, tz))
        job.claim = self.claims.record(job.claim, reply, count, day)
        outcome = "answered" if completion.text else "empty_answer"
        return self._deliver(job, reply, outcome, history)

    # -- saying it --------------------------------------------------------------------------

    def _say(self, job: Job, text: str, outcome: str) -> str:
        """A text of the bot's own."""
        return self._send(job, text_reply(text), outcome)

    def _send(self, job: Job, reply: Reply, outcome: str) -> str:
        """A reply of the bot's own; recorded first only if it takes more than one message."""
        if len(reply.messages) > 1:
            job.claim = self.claims.record(job.claim, reply)
        return self._deliver(job, reply, outcome)

    def _deliver(
        self, job: Job, reply: Reply, outcome: str, history: list[Turn] | None = None
    ) -> str:
        """Send the bubbles not yet confirmed, recording each, then finish the event together
        with the conversation. A bubble that may have arrived is never sent again."""
        psid, attempt = job.psid, job.attempt
        recorded = job.claim.reply is not None
        last = len(reply.messages) - 1
        for index in range(job.claim.sent, last + 1):
            if epoch_ms(self.clock()) > attempt.lease_until_ms - LEASE_MARGIN_MS:
                raise RetryLater("lease ending")
            try:
                self.messenger.send_message(psid, reply.messages[index], attempt.deadline)
            except SendError as error:
                if error.maybe_delivered:
                    log.warning("reply.maybe_delivered", bubble=index + 1, reason=error.reason)
                elif error.permanent and not error.owner_must_act:
                    return self._end(job, "unreachable")
                else:
                    raise RetryLater(f"send:{error.reason}", error.retry_after) from None
            if recorded and index < last:
                job.claim = self.claims.record_sent(job.claim, index + 1)
        writes = self._activity(job)
        if reply.question and reply.answer and self.settings.history_turns > 0:
            if history is None:
                history = self.store.load_history(psid)
            turns = remember(
                history,
                reply.question,
                reply.answer,
                self.settings.history_turns,
                self.settings.history_max_chars,
            )
            expires = int((job.now + timedelta(hours=self.settings.history_ttl_hours)).timestamp())
            writes.append(self.store.history_item(psid, turns, expires))
        try:
            self.claims.finish(job.claim, outcome, writes)
        except ClaimLost:
            raise
        except Exception:
            # Everything is sent: a retry from the queue would send the last bubble again,
            # so this write is worth one more try of its own first.
            log.warning("event.finish_retried")
            self.claims.finish(job.claim, outcome, writes)
        if reply.answer is not None:
            log.info("reply.sent", bubbles=len(reply.messages), answer_chars=len(reply.answer))
        return outcome

    def _tell(self, psid: str, text: str, attempt: Attempt) -> None:
        """A best-effort note outside the event's reply (it is not recorded)."""
        with contextlib.suppress(SendError):  # logged by the client
            self.messenger.send_message(psid, {"text": text}, attempt.deadline)

    def _notify_admins(self, user: User, attempt: Attempt) -> None:
        notice = replies.new_user_notice(user, self.settings.daily_limit, user.ref_source, user.ref)
        told = 0
        for admin in sorted(self.settings.admin_psids):
            try:
                self.messenger.send_message(admin, notice, attempt.deadline)
                told += 1
            except SendError:
                continue
        log.info("user.new", admins_told=told, admins=len(self.settings.admin_psids))

    # -- commands -------------------------------------------------------------------------

    def _command(self, job: Job, command: Command, is_admin: bool, user: User) -> str:
        outcome = f"command:{command.name}"
        if command.name == "ignored":
            log.warning("payload.ignored", why=command.error)
            return self._end(job, "ignored")
        if command.error:
            return self._say(job, command.error, f"command_error:{command.name}")
        if command.name == "start":
            limit = (
                None
                if is_admin
                else effective_limit(user.status, user.daily_limit, self.settings.daily_limit)
            )
            welcome = replies.welcome(
                self.settings.welcome_message, limit, self.settings.ice_breakers
            )
            return self._send(job, Reply((welcome,)), outcome)
        if command.name == "delete":
            return self._send(job, Reply((replies.delete_question(),)), outcome)
        if command.name == "delete_confirmed":
            deleted = self.store.forget_user(job.psid)
            job.forgotten = True  # finishing must not write the record back
            log.info("user.deleted_own_data", items=deleted)
            return self._say(job, replies.deleted(deleted), outcome)
        if command.name == "delete_cancelled":
            return self._say(job, replies.DELETE_CANCELLED, outcome)
        text = self._command_reply(job.psid, command, is_admin, job.now)
        return self._say(job, text, outcome)

    def _command_reply(self, psid: str, command: Command, is_admin: bool, now: datetime) -> str:
        store, settings = self.store, self.settings
        day = day_key(now, settings.tz)
        if command.name == "help":
            return replies.USER_HELP + (replies.ADMIN_HELP if is_admin else "")
        if command.name == "reset":
            store.clear_history(psid)
            return replies.RESET_DONE
        if command.name == "usage":
            user = store.get_user(psid) or User(psid)
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
