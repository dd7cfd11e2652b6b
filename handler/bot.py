"""The conversation rules: who may ask, what counts, what is said, for one event at a time.

``Bot`` knows nothing of queues. It takes its store, claims, messenger, model and clock as
arguments (the unit tests give it in-memory fakes) and answers one event: claim it, know the
user, run a command or ask the model, record the reply, send it. It raises ``RetryLater``
when the event should be tried again later; the queue side (``batch``) decides when.

A question counts when the model has answered (HTTP 200, so the owner paid for it), in the
same write that records the answer, together with its tokens and estimated cost (the
person's day and the page's); nothing is counted before that, so a failure before the
answer costs the person nothing, and a retry after it sends the recorded answer again
without asking (or counting) twice.

Before the model is asked: the person's questions and tokens today, and the page's spend
today, against their budgets. A photo is downloaded and sent inline with the person's text
(a photo sent alone waits, as its URL on the conversation, for the person's next message); a
voice message is transcribed and its words are the question. An answer cut at the token cap
is continued once if there is time, else ended on a whole sentence with a note and a
Continue button. Older turns of a long conversation are summarised, not dropped. What the
owner must hear about (billing, the cap, a refused parameter or photo) goes through
``alerts``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import alerts, budget, commands, metrics, notices, quota, replies
from .claims import Claim, ClaimLost, Claims, ClaimState, GuardFailed, Reply
from .commands import Command
from .conversation import (
    build_messages,
    clip_summary,
    continuation_request,
    join_continuation,
    keep_latest,
    split_history,
    summary_request,
)
from .events import MAX_IMAGES, PHOTO_WAIT_SECONDS, Inbound, is_stale
from .llm import Completion, ModelError, Transcript, Usage
from .logs import log, log_context
from .mail import Mailer
from .media import AUDIO_TYPES, IMAGE_TYPES, MAX_VOICE_SECONDS, Media, MediaError, mp4_seconds
from .messenger import Messenger, SendError
from .quota import STATUS_BLOCKED, STATUS_UNLIMITED, counter_expiry, day_key, effective_limit
from .settings import Settings
from .store import PageDay, Snapshot, Store, TransactItem, Turn, User, UserDay
from .takeover import BY_OWNER, BY_PERSON, STARTED
from .text import bubbles, last_whole_sentence

Message = dict[str, Any]
AskModel = Callable[[list[Message], float], Completion]  # (messages, monotonic deadline)
# (audio, file name, content type, monotonic deadline): what a voice message says.
Transcribe = Callable[[bytes, str, str, float], Transcript]
# (url, most bytes, accepted content types, monotonic deadline): a photo or voice message.
Fetch = Callable[[str, int, tuple[str, ...], float], Media]
RECENT_USERS_SHOWN = 20
# /users looks at this many of the most recently active people for those waiting for a
# decision, and shows this many of them as cards.
PENDING_USERS_READ = 100
PENDING_CARDS = 10
# An owner's /pause without minutes, when human takeover is off (humanPauseMinutes 0).
DEFAULT_PAUSE_MINUTES = 30
# The model's refusals only the owner can fix with another key (``llm`` names them): 401, and
# 403 (the key's project or role may not use the model).
KEY_REFUSED = frozenset({"authentication", "status_403"})
# A person's /human tells the owners at most this often.
HUMAN_NOTICE_QUIET_SECONDS = 30 * 60
# While paused, a person may still delete their data: nothing else they send is answered.
PAUSE_PROOF_COMMANDS = frozenset({"delete", "delete_confirmed", "delete_cancelled"})
# /stats looks at this many of the most recently active people for the costliest ones.
STATS_USERS_READ = 50
STATS_TOP_USERS = 5
# Kept back from the model call for sending the answer (Graph gets ten seconds a try).
SEND_RESERVE_SECONDS = 10.0
# No bubble is sent this close to the end of the claim's lease.
LEASE_MARGIN_MS = 1_000
# How fresh a user's last activity must be before the bot writes it again: the owner's list
# of recent users is at most this stale, and a busy user costs one write less per message.
ACTIVITY_RESOLUTION = timedelta(minutes=10)
# A cut answer is continued only with this much of the model's time left (one more call).
CONTINUE_MIN_SECONDS = 20.0
# The summary of older turns leaves the answer this much time, and is not tried with less
# than MIN_SUMMARY_SECONDS of its own.
ANSWER_RESERVE_SECONDS = 25.0
MIN_SUMMARY_SECONDS = 5.0
# An event's outcome, as the metric that counts it.
OUTCOME_METRICS = {
    "answered": "Answered",
    "shortened": "Answered",
    "empty_answer": "Answered",
    "filtered": "Answered",
    "over_limit": "RefusedByLimit",
    "over_tokens": "RefusedByLimit",
    "resting": "RefusedByLimit",
    "blocked": "Blocked",
}
# A failure kind of /stats, as the metrics' kind.
FAILURE_METRIC_KINDS = {
    "model": "model",
    "send": "send",
    "token": "token",
    "insufficient_quota": "quota",
    "unsupported_parameter": "unsupported",
}


class RetryLater(Exception):
    """Nothing final happened yet: try the event again later. ``after`` is a wait the cause
    asked for (a Retry-After), if any."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class Said(Exception):
    """The event is answered already (a reply of the bot's own): ``outcome`` says how."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


@dataclass(frozen=True)
class Ask:
    """What the person asks: their text, and their photos or voice message (URLs)."""

    text: str
    images: tuple[str, ...] = ()
    audio: str | None = None
    keep: bool = False  # photos without text: kept for the next message, not asked yet


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
    day: str = ""  # the quota day (the settings' time zone): counts and totals go there
    expiry: int = 0  # when that day's counters expire
    watch_pause: bool = False  # a takeover stops the reply: look just before each bubble
    pause_checked: bool = False  # looked just now: the next bubble need not look again
    # The conversation with photos kept for the next message, or without the ones this event
    # used: written when the event ends, unless the conversation is written anyway.
    photos_write: TransactItem | None = None

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
    transcribe: Transcribe | None = None
    fetch: Fetch | None = None
    mailer: Mailer | None = None  # the owner's e-mail (the stack's SNS topic)

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
                # Not before its lease ends: the attempt holding it may still be at work, and a
                # dead one's lease lasts until its invocation's deadline.
                held_for = max(1.0, (claim.lease_until_ms - epoch_ms(now)) / 1000)
                if attempt.last:  # this copy goes to the dead-letter queue; say why
                    log.warning("event.held_on_last_receive", receive=attempt.receive)
                raise RetryLater("held by another attempt", after=held_for)
            tz = self.settings.tz
            job = Job(event, claim, attempt, now, day=day_key(now, tz))
            job.expiry = counter_expiry(now, tz)
            try:
                outcome = self._claimed(job)
            except ClaimLost:
                log.warning("event.claim_lost")  # its new owner answers it
                return "claim_lost"
            except Exception as error:
                why = error.reason if isinstance(error, RetryLater) else type(error).__name__
                self._release(job.claim, why)
                if attempt.last:  # on its way to the dead-letter queue: the owner must act
                    self._alert(
                        job,
                        alerts.DEAD_LETTER,
                        replies.dead_letter_alert(attempt.receive, why),
                        replies.DEAD_LETTER_HINT,
                    )
                raise
            latency_ms = self._count(outcome, attempt)
            log.info(
                "event.done",
                outcome=outcome,
                latency_ms=latency_ms,
                kind=event.kind,
                attempts=claim.attempts,
                resumed=claim.state is ClaimState.RESUMED,
            )
            self._notices().mail_overdue()  # at most every few minutes; never raises
            return outcome

    def _count(self, outcome: str, attempt: Attempt) -> int | None:
        """The outcome in the invocation's metrics; for an answer, the time from the webhook
        to its last bubble (None otherwise)."""
        name = OUTCOME_METRICS.get(outcome)
        if name is None:
            return None
        metrics.add(name)
        if outcome == "resting":
            metrics.add("SpendCapReached")
        if name != "Answered" or not attempt.queued_ms:
            return None
        latency_ms = max(0, epoch_ms(self.clock()) - attempt.queued_ms)
        metrics.add("ReplyLatency", latency_ms)
        return latency_ms

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
        is_admin = self.settings.is_admin(event.psid)
        if claim.reply is not None:  # an earlier attempt decided what to say: say the rest
            log.info("event.resumed", sent=claim.sent, bubbles=len(claim.reply.messages))
            job.watch_pause = not is_admin
            return self._deliver(job, claim.reply, "answered")
        snapshot = self.store.snapshot(event.psid, job.day, outbox=is_admin)
        if event.kind == "echo":  # someone of the page wrote to the person by hand
            return self._by_hand(job, snapshot)
        user, created = snapshot.user, False
        if user is None:
            user, created = self.store.create_user(event.psid, job.now, event.ref_source, event.ref)
            if created and not is_admin:
                self._announce(user, job.attempt)
        # A new person's first event that is not Get Started gets the welcome first: ice
        # breakers replace the Get Started button on a real page, and anyone may type before
        # tapping anything. Not to an owner: they set the bot up and know what it is.
        welcome_due = created and not is_admin
        job.active_at = user.active_at
        job.new_referral = bool(event.ref_source or event.ref) and not (user.ref_source or user.ref)
        if event.kind == "referral":  # an m.me link or ad opened the chat: noted, not answered
            if welcome_due:  # (but a new person is welcomed, as Get Started would have)
                self._welcome_new(job, user, snapshot)
            return self._end(job, "referral")
        if user.status == STATUS_BLOCKED and not is_admin:
            return self._end(job, "blocked")
        if snapshot.outbox:  # an owner's notices kept while they were outside the window
            self._notices().deliver(event.psid, snapshot.outbox, job.attempt.deadline)

        question = event.text
        if event.payload:
            command = commands.parse_payload(event.payload, is_admin)
            question = commands.asked(event.text, event.payload)
        else:
            command = commands.parse_text(event.text, is_admin)
        pause = snapshot.pause
        paused = not is_admin and pause is not None and pause.active(int(job.now.timestamp()))
        if paused and (command is None or command.name not in PAUSE_PROOF_COMMANDS):
            return self._held(job, snapshot, question if command is None else "")
        if welcome_due and (command is None or command.name != "start"):
            self._welcome_new(job, user, snapshot)
        if command is not None:
            return self._command(job, command, is_admin, user)
        if event.kind == "like":  # the thumbs-up sticker: seen, nothing to answer
            return self._end(job, "like")
        if event.kind == "attachments":
            return self._say(job, replies.media_unsupported(self.settings.vision), "attachments")
        urls = tuple(url for _kind, url in event.media)
        waiting = self._waiting_photos(job, snapshot)
        if event.kind == "image":
            if not self.settings.vision:
                return self._say(job, replies.VISION_OFF, "vision_off")
            if not question.strip() and all(kind == "image" for kind, _ in event.media):
                # A photo alone: its question mostly follows, in a delivery of its own. (A
                # sticker alone is looked at now: it says something by itself.)
                ask = Ask("", images=(*waiting, *urls)[-MAX_IMAGES:], keep=True)
                return self._question(job, ask, user, snapshot, is_admin)
            if not question.strip():
                return self._question(job, Ask("", images=urls), user, snapshot, is_admin)
            ask = self._with_photos(job, snapshot, question, waiting, urls)
            return self._question(job, ask, user, snapshot, is_admin)
        if event.kind == "audio" and urls:
            return self._question(job, Ask("", audio=urls[0]), user, snapshot, is_admin)
        if not question.strip():
            log.info("payload.empty", kind=event.kind)
            return self._end(job, "ignored")
        if event.payload == replies.DESCRIBE_PAYLOAD and not waiting:
            return self._say(job, replies.PHOTO_GONE, "photo_gone")
        ask = self._with_photos(job, snapshot, question, waiting)
        return self._question(job, ask, user, snapshot, is_admin)

    def _waiting_photos(self, job: Job, snapshot: Snapshot) -> tuple[str, ...]:
        """The photos the person sent without text within ``PHOTO_WAIT_SECONDS``, for this
        message to ask about (none while photos are not read)."""
        if not self.settings.vision or snapshot.photos_until <= int(job.now.timestamp()):
            return ()
        return snapshot.photos

    def _with_photos(
        self,
        job: Job,
        snapshot: Snapshot,
        question: str,
        waiting: tuple[str, ...],
        urls: tuple[str, ...] = (),
    ) -> Ask:
        """The question with the photos waiting for it: one question. They are used up now,
        whatever the answer: the conversation is written without them when the event ends."""
        if waiting:
            job.photos_write = self.store.history_item(
                job.psid, snapshot.history, self._expires(job), snapshot.summary
            )
            log.info("photo.asked", waiting=len(waiting))
        return Ask(question, images=(*waiting, *urls)[-MAX_IMAGES:])

    def _keep_photos(self, job: Job, ask: Ask, snapshot: Snapshot) -> str:
        """A photo without text: its URL waits on the conversation for ``PHOTO_WAIT_SECONDS``
        (never logged), and the person is asked what they want to know; not counted."""
        until = int(job.now.timestamp()) + PHOTO_WAIT_SECONDS
        job.photos_write = self.store.history_item(
            job.psid, snapshot.history, self._expires(job), snapshot.summary, ask.images, until
        )
        log.info("photo.kept", photos=len(ask.images))
        return self._send(job, Reply((replies.photo_kept(),)), "photo_kept")

    def _question(self, job: Job, ask: Ask, user: User, snapshot: Snapshot, is_admin: bool) -> str:
        try:
            return self._answer(job, ask, user, snapshot, is_admin)
        except Said as said:
            return said.outcome

    def _answer(self, job: Job, ask: Ask, user: User, snapshot: Snapshot, is_admin: bool) -> str:
        event, attempt, now = job.event, job.attempt, job.now
        settings, tz = self.settings, self.settings.tz
        limit = (
            None
            if is_admin
            else effective_limit(user.status, user.daily_limit, settings.daily_limit)
        )
        if limit is not None and snapshot.used_today >= limit:
            return self._say(job, replies.over_limit(limit, now, tz), "over_limit")
        if (
            not is_admin
            and user.status != STATUS_UNLIMITED
            and budget.over_tokens(snapshot.tokens_today, settings.daily_token_limit)
        ):
            return self._say(
                job, replies.over_tokens(settings.daily_token_limit, now, tz), "over_tokens"
            )
        if not is_admin and budget.over_spend(
            snapshot.page_today.cost_nusd, settings.daily_spend_limit_usd
        ):
            self._alert(
                job,
                alerts.SPEND_CAP,
                replies.spend_cap_alert(settings.daily_spend_limit_usd, now, tz),
            )
            return self._say(job, replies.resting(now, tz), "resting")
        if ask.keep:  # a photo alone: kept for the question that mostly follows it
            return self._keep_photos(job, ask, snapshot)
        # From here on a download or the model takes seconds: whatever the bot then says (the
        # answer, an apology) is not sent after someone of the page wrote meanwhile.
        job.watch_pause = not is_admin
        try:
            self.messenger.sender_action(event.psid, "mark_seen", attempt.deadline)
            self.messenger.sender_action(event.psid, "typing_on", attempt.deadline)
        except SendError as error:
            if error.owner_must_act:
                self._failure(job, "token")
                self._token_refused(job)
                raise RetryLater(error.reason) from None  # to the dead-letter queue, for the owner
            if error.permanent:  # nobody to answer: spare the model call
                return self._end(job, "unreachable")

        usages: list[Usage] = []
        model_deadline = attempt.deadline - SEND_RESERVE_SECONDS
        heard = ""
        if ask.audio:
            text = self._hear(job, ask.audio, model_deadline, usages)
            heard = replies.heard(text)
            content: str | list[Message] = text
            remembered = text
        elif ask.images:
            content = self._look(job, ask)
            remembered = f"{replies.PHOTO_MARK} {ask.text}".strip()
        else:
            content = remembered = ask.text

        turns, summary = snapshot.history, snapshot.summary
        older, history = split_history(turns, settings.history_turns, settings.history_max_chars)
        if older:
            summary = self._summarise(job, summary, older, model_deadline, usages)
        messages = build_messages(settings.system_prompt, history, content, summary)
        try:
            completion = self._ask(messages, model_deadline)
        except ModelError as error:
            return self._model_failed(job, error)
        self._dropped(job, completion.dropped)
        usages += completion.usage
        text, cut = completion.text, completion.finish_reason == "length"
        filtered = completion.finish_reason == "content_filter"
        if cut and text.strip() and model_deadline - time.monotonic() >= CONTINUE_MIN_SECONDS:
            text, cut = self._continue(job, messages, text, model_deadline, usages)
        answer = text.strip()
        if (cut or filtered) and answer:
            answer = last_whole_sentence(answer)
            log.info("answer.shortened", answer_chars=len(answer), filtered=filtered)
        if answer:
            said = f"{heard}\n\n{answer}" if heard else answer
            extra: tuple[Message, ...] = ()
            if filtered:  # stopped by the provider: never passed off as a whole answer
                extra = ({"text": replies.FILTERED_NOTE},)
            elif cut:
                extra = (replies.continue_button(),)
            reply = Reply((*bubbles(said), *extra), remembered, answer)
            outcome = "filtered" if filtered else "shortened" if cut else "answered"
        elif cut:  # the whole budget went on thinking: Continue asks again after the question
            log.warning("model.empty", finish_reason=completion.finish_reason)
            note = replies.continue_button(replies.CUT_BEFORE_ANSWER)
            reply = Reply((note,), remembered, replies.CUT_MARK)
            outcome = "shortened"
        else:
            log.warning("model.empty", finish_reason=completion.finish_reason)
            said = replies.FILTERED if filtered else replies.EMPTY_ANSWER
            reply = text_reply(said, remembered, "")
            outcome = "filtered" if filtered else "empty_answer"
        job.watch_pause = not is_admin
        try:  # recorded and counted only if no one of the page wrote meanwhile
            self._record(job, reply, usages, question=True)
        except GuardFailed:
            return self._held_answer(job, remembered, usages, history, summary)
        job.pause_checked = job.watch_pause
        return self._deliver(job, reply, outcome, history, summary)

    # -- the model's parts ------------------------------------------------------------------

    def _record(self, job: Job, reply: Reply, usages: list[Usage], question: bool) -> None:
        """Record the reply with what it cost: the question's count (when it counts), its
        tokens and estimated cost, the person's and the page's, once, in one transaction."""
        settings = self.settings
        spent = budget.spend(usages, settings.model_prices)
        items = self.store.usage_items(
            job.psid, job.day, job.expiry, question, spent.tokens, spent.cost_nusd
        )
        guard = None
        if job.watch_pause and question:  # a takeover stops the answer: the condition
            guard = self.store.unpaused_item(job.psid, int(self.clock().timestamp()))
        job.claim = self.claims.record(job.claim, reply, items, job.day, guard)
        metrics.add("TokensIn", sum(u.input_tokens for u in usages))
        metrics.add("TokensOut", sum(u.output_tokens for u in usages))
        metrics.add("EstimatedCost", spent.cost_nusd / budget.NANO)
        log.info("answer.usage", tokens=spent.tokens, cost_nusd=spent.cost_nusd, counted=question)
        for model in budget.unpriced(usages, settings.model_prices):  # priced high: say so
            priced_as, price = budget.dearest(settings.model_prices)
            text = replies.unpriced_alert(model, priced_as, price)
            self._alert(job, f"{alerts.MODEL_UNPRICED}:{model}", text)

    def _ask(self, messages: list[Message], deadline: float) -> Completion:
        """One model call, timed for the metrics (a failed call too)."""
        started = time.monotonic()
        try:
            return self.ask_model(messages, deadline)
        finally:
            metrics.add("ModelLatency", round((time.monotonic() - started) * 1000))

    def _model_failed(self, job: Job, error: ModelError) -> str:
        """No answer: tell the person once and try later, or end with the right apology."""
        attempt = job.attempt
        log.warning("model.failed", reason=error.reason, retryable=error.retryable)
        self._dropped(job, error.dropped)
        if error.reason == "insufficient_quota":
            self._failure(job, "insufficient_quota")
            self._alert(job, alerts.INSUFFICIENT_QUOTA, replies.quota_alert())
            return self._say(job, replies.QUOTA_APOLOGY, "insufficient_quota")
        if error.reason == "image_invalid":  # the photo's fault, not the model's: no alert
            return self._say(job, replies.PHOTO_UNREADABLE, "photo_unreadable")
        self._failure(job, "model")
        if error.reason in KEY_REFUSED:  # a bad or powerless key: only the owner can fix it
            text = replies.openai_key_alert(error.reason, self.settings.model)
            self._alert(job, alerts.OPENAI_KEY, text, replies.OPENAI_KEY_HINT)
        if error.reason == "image_unsupported":
            self._alert(job, alerts.VISION_UNSUPPORTED, replies.vision_alert(self.settings.model))
            return self._say(job, replies.VISION_UNSUPPORTED, "vision_unsupported")
        if error.retryable and not attempt.last:
            if attempt.receive == 1:
                self._tell(job, replies.MODEL_TROUBLE)
            raise RetryLater(f"model:{error.reason}", error.retry_after) from None
        return self._say(job, replies.APOLOGY, "model_failed")

    def _continue(
        self, job: Job, messages: list[Message], partial: str, deadline: float, usages: list
    ) -> tuple[str, bool]:
        """Ask once for the rest of a cut answer; (the joined text, still cut)."""
        try:
            more = self._ask(continuation_request(messages, partial), deadline)
        except ModelError as error:
            log.warning("answer.continue_failed", reason=error.reason)
            return partial, True
        self._dropped(job, more.dropped)
        usages += more.usage
        log.info("answer.continued", finish_reason=more.finish_reason)
        return join_continuation(partial, more.text), more.finish_reason == "length"

    def _summarise(
        self, job: Job, summary: str, older: list[Turn], deadline: float, usages: list
    ) -> str:
        """The older turns folded into the summary (one cheap call, billed with the answer);
        when it cannot be had, they are dropped and the summary stays as it was."""
        until = deadline - ANSWER_RESERVE_SECONDS
        if until - time.monotonic() < MIN_SUMMARY_SECONDS:
            log.info("history.summary_skipped", turns=len(older))
            return summary
        try:
            done = self._ask(summary_request(summary, older), until)
        except ModelError as error:
            log.warning("history.summary_failed", reason=error.reason)
            return summary
        self._dropped(job, done.dropped)
        usages += done.usage
        folded = clip_summary(done.text) if done.text.strip() else summary
        log.info("history.summarised", turns=len(older), summary_chars=len(folded))
        return folded

    def _download(
        self,
        job: Job,
        url: str,
        accepted: tuple[str, ...],
        failed: str,
        wrong_type: str | None = None,
    ) -> Media:
        """A photo or voice message, or a reply (``Said``) saying why not (``wrong_type``: for
        a type the bot does not take, if not ``failed``)."""
        if self.fetch is None:
            raise RuntimeError("no media fetcher")
        attempt = job.attempt
        try:
            return self.fetch(url, self.settings.media_max_bytes, accepted, attempt.deadline)
        except MediaError as error:
            log.warning("media.failed", reason=error.reason, retryable=error.retryable)
            if error.retryable and not attempt.last:
                raise RetryLater(f"media:{error.reason}") from None
            text = replies.MEDIA_TOO_LARGE if error.reason == "too_large" else failed
            if error.reason == "wrong_type" and wrong_type:
                text = wrong_type
            raise Said(self._say(job, text, f"media_{error.reason.split(':')[0]}")) from None

    def _look(self, job: Job, ask: Ask) -> list[Message]:
        """The question as the model takes a photo: the person's text and the images, inline."""
        question = ask.text or replies.DEFAULT_PHOTO_QUESTION
        parts: list[Message] = [{"type": "text", "text": question}]
        for url in ask.images:
            image = self._download(
                job, url, IMAGE_TYPES, replies.PHOTO_FAILED, replies.PHOTO_UNREADABLE
            )
            parts.append({"type": "image_url", "image_url": {"url": image.data_url()}})
        metrics.add("Images", len(ask.images))
        return parts

    def _hear(self, job: Job, url: str, deadline: float, usages: list[Usage]) -> str:
        """What a voice message says; a failure ends as a model failure does, silence with
        a reply (the transcription is billed, so its tokens are recorded, but not counted)."""
        if self.transcribe is None:
            raise RuntimeError("no transcriber")
        voice = self._download(job, url, AUDIO_TYPES, replies.VOICE_FAILED)
        seconds = mp4_seconds(voice.data)  # None: not said (another format): the size cap
        if seconds is not None and seconds > MAX_VOICE_SECONDS:
            log.info("voice.too_long", seconds=round(seconds))
            text = replies.voice_too_long(MAX_VOICE_SECONDS)
            raise Said(self._say(job, text, "voice_too_long"))
        try:
            transcript = self.transcribe(voice.data, voice.filename, voice.content_type, deadline)
        except ModelError as error:
            if not error.retryable and error.reason.startswith("status_4"):
                log.warning("voice.refused", reason=error.reason)
                self._failure(job, "model")
                raise Said(self._say(job, replies.VOICE_FAILED, "voice_refused")) from None
            raise Said(self._model_failed(job, error)) from None
        usages += transcript.usage
        metrics.add("Transcriptions")
        log.info("voice.transcribed", chars=len(transcript.text))
        if not transcript.text.strip():
            reply = text_reply(replies.VOICE_EMPTY)
            self._record(job, reply, usages, question=False)
            raise Said(self._deliver(job, reply, "voice_empty"))
        return transcript.text.strip()

    # -- what the owner hears about ---------------------------------------------------------

    def _alerts(self) -> alerts.Alerts:
        return alerts.Alerts(self.settings, self.store, self.messenger, self.clock, self.mailer)

    def _notices(self) -> notices.Notices:
        return notices.Notices(self.settings, self.store, self.messenger, self.mailer, self.clock)

    def _alert(self, job: Job, kind: str, text: str, hint: str = "") -> None:
        self._alerts().alert(kind, text, job.attempt.deadline, hint)

    def _token_refused(self, job: Job) -> None:
        """Graph refused the page token: nothing reaches anyone until the owner renews it."""
        self._alert(job, alerts.PAGE_TOKEN, replies.token_alert(), replies.TOKEN_HINT)

    def _dropped(self, job: Job, parameters: tuple[str, ...]) -> None:
        """Parameters the model refused for the first time in this container."""
        for parameter in parameters:
            self._failure(job, "unsupported_parameter")
            self._alert(
                job,
                f"{alerts.UNSUPPORTED_PARAMETER}:{parameter}",
                replies.parameter_refused(self.settings.model, parameter),
            )

    def _failure(self, job: Job, kind: str) -> None:
        """Counted in the metrics and for /stats; a failure to count it costs nobody their
        answer."""
        metrics.add("Failed", kind=FAILURE_METRIC_KINDS[kind])
        try:
            self.store.note_failure(job.day, kind, job.expiry)
        except Exception:
            log.warning("stats.failure_not_counted", kind=kind)

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
        self,
        job: Job,
        reply: Reply,
        outcome: str,
        history: list[Turn] | None = None,
        summary: str | None = None,
    ) -> str:
        """Send the bubbles not yet confirmed, recording each, then finish the event together
        with the conversation. A bubble that may have arrived is never sent again. When a
        takeover may stop the reply (``watch_pause``), the pause is looked at just before each
        bubble: what someone of the page writes is never followed by the bot's answer."""
        psid, attempt = job.psid, job.attempt
        recorded = job.claim.reply is not None
        last = len(reply.messages) - 1
        for index in range(job.claim.sent, last + 1):
            if epoch_ms(self.clock()) > attempt.lease_until_ms - LEASE_MARGIN_MS:
                raise RetryLater("lease ending")
            if job.watch_pause:
                if job.pause_checked:  # looked an instant ago, before recording the answer
                    job.pause_checked = False
                elif self._paused_now(job):
                    return self._stopped(job, reply, index)
            try:
                self.messenger.send_message(psid, reply.messages[index], attempt.deadline)
            except SendError as error:
                if error.maybe_delivered:
                    log.warning("reply.maybe_delivered", bubble=index + 1, reason=error.reason)
                else:
                    self._failure(job, "token" if error.owner_must_act else "send")
                    if error.owner_must_act:
                        self._token_refused(job)
                    if error.permanent and not error.owner_must_act:
                        return self._end(job, "unreachable")
                    raise RetryLater(f"send:{error.reason}", error.retry_after) from None
            if recorded and index < last:
                job.claim = self.claims.record_sent(job.claim, index + 1)
        writes = self._activity(job)
        settings = self.settings
        if reply.question and reply.answer and settings.history_turns > 0:
            if history is None:  # resumed: the stored conversation, its older turns let go
                turns, summary = self.store.load_conversation(psid)
                budget_ = (settings.history_turns, settings.history_max_chars)
                history = split_history(turns, *budget_)[1]
            turns = [
                *history,
                {"role": "user", "content": reply.question},
                {"role": "assistant", "content": reply.answer},
            ]
            expires = int((job.now + timedelta(hours=settings.history_ttl_hours)).timestamp())
            writes.append(self.store.history_item(psid, turns, expires, summary or ""))
        elif job.photos_write is not None:  # photos kept, or used: the conversation says so
            writes.append(job.photos_write)
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

    def _tell(self, job: Job, text: str) -> None:
        """A best-effort note outside the event's reply (it is not recorded), unless someone
        of the page has taken the conversation over meanwhile."""
        if job.watch_pause and self._paused_now(job):
            return
        with contextlib.suppress(SendError):  # logged by the client
            self.messenger.send_message(job.psid, {"text": text}, job.attempt.deadline)

    def _announce(self, user: User, attempt: Attempt) -> None:
        """A new user: the owners' notice with its buttons, now or with their next message."""
        notice = replies.new_user_notice(user, self.settings.daily_limit, user.ref_source, user.ref)
        told = self._notices().tell(notice, attempt.deadline)
        log.info("user.new", delivered=told.delivered, queued=told.queued, emailed=told.emailed)

    # -- the owner in the conversation: human takeover ----------------------------------------

    def _paused_now(self, job: Job) -> bool:
        """The person's pause as stored this instant: a takeover may have begun meanwhile."""
        pause = self.store.get_pause(job.psid)
        return pause is not None and pause.active(int(self.clock().timestamp()))

    def _expires(self, job: Job) -> int:
        return int((job.now + timedelta(hours=self.settings.history_ttl_hours)).timestamp())

    def _remember(self, job: Job, turns: list[Turn], summary: str) -> list[TransactItem]:
        """The conversation with what was said while the bot kept quiet (none when stateless)."""
        if self.settings.history_turns <= 0 or not turns:
            return [job.photos_write] if job.photos_write is not None else []
        return [self.store.history_item(job.psid, keep_latest(turns), self._expires(job), summary)]

    def _by_hand(self, job: Job, snapshot: Snapshot) -> str:
        """What someone of the page wrote to the person: the page's turn in the conversation
        (so that the bot knows what was said when it answers again), nothing sent."""
        event = job.event
        said = {"role": "assistant", "content": event.text}
        writes = self._remember(job, [*snapshot.history, said], snapshot.summary)
        self.claims.finish(job.claim, "by_hand", writes)
        log.info("takeover.remembered", chars=len(event.text))
        if event.payload == STARTED and self.settings.takeover_notices:
            moment = int(job.now.timestamp())
            pause = snapshot.pause
            until = pause.until if pause else moment + self.settings.human_pause_minutes * 60
            notice = replies.takeover_notice(job.psid, until, self.settings.tz)
            self._notices().tell(notice, job.attempt.deadline)
        return "by_hand"

    def _held(self, job: Job, snapshot: Snapshot, question: str) -> str:
        """A message while the bot keeps quiet for the person: kept in the conversation, not
        answered, not counted."""
        event = job.event
        content = {
            "image": f"{replies.PHOTO_MARK} {question}".strip(),
            "audio": replies.VOICE_MARK,
            "attachments": replies.ATTACHMENT_MARK,
            "like": "",
        }.get(event.kind, question.strip())
        turns = snapshot.history
        if content:
            turns = [*turns, {"role": "user", "content": content}]
        writes = [*self._activity(job), *self._remember(job, turns, snapshot.summary)]
        self.claims.finish(job.claim, "paused", writes if content else self._activity(job))
        log.info("takeover.held", kind=event.kind)
        return "paused"

    def _held_answer(
        self, job: Job, remembered: str, usages: list[Usage], history: list[Turn], summary: str
    ) -> str:
        """The model answered, but someone of the page wrote to the person meanwhile: the
        answer is not sent and the question not counted; what the model cost is."""
        settings = self.settings
        spent = budget.spend(usages, settings.model_prices)
        writes = self._activity(job)
        if spent.tokens or spent.cost_nusd:
            writes += self.store.usage_items(
                job.psid, job.day, job.expiry, False, spent.tokens, spent.cost_nusd
            )
        question = {"role": "user", "content": remembered}
        writes += self._remember(job, [*history, question], summary)
        self.claims.finish(job.claim, "paused", writes)
        log.info("takeover.held", kind=job.event.kind, answered=False, tokens=spent.tokens)
        return "paused"

    def _stopped(self, job: Job, reply: Reply, sent: int) -> str:
        """A takeover began while the reply was going out: the rest is not sent."""
        log.info("takeover.cut", bubbles=len(reply.messages), sent=sent)
        writes = self._activity(job)
        if reply.question:
            turns, summary = self.store.load_conversation(job.psid)
            turns = [*turns, {"role": "user", "content": reply.question}]
            if sent and reply.answer:
                turns.append({"role": "assistant", "content": reply.answer})
            writes += self._remember(job, turns, summary)
        self.claims.finish(job.claim, "paused", writes)
        return "paused"

    # -- commands -------------------------------------------------------------------------

    def _command(self, job: Job, command: Command, is_admin: bool, user: User) -> str:
        outcome = f"command:{command.name}"
        if command.name == "ignored":
            log.warning("payload.ignored", why=command.error)
            return self._end(job, "ignored")
        if command.error:
            return self._say(job, command.error, f"command_error:{command.name}")
        if command.name == "start":
            return self._send(job, Reply((self._welcome(user, is_admin),)), outcome)
        if command.name == "delete":
            return self._send(job, Reply((replies.delete_question(),)), outcome)
        if command.name == "delete_confirmed":
            # A running pause stays: someone of the page is talking to them (it ends itself).
            deleted = self.store.forget_user(job.psid, keep_pause=True, now=job.now.timestamp())
            job.forgotten = True  # finishing must not write the record back
            log.info("user.deleted_own_data", items=deleted)
            return self._say(job, replies.deleted(deleted), outcome)
        if command.name == "delete_cancelled":
            return self._say(job, replies.DELETE_CANCELLED, outcome)
        if command.name == "human":
            return self._say(job, self._human(job, is_admin), outcome)
        if command.name == "users":
            return self._send(job, Reply(self._users(job.now)), outcome)
        if command.name == "pause":
            return self._say(job, self._pause(job, command), outcome)
        if command.name == "resume":
            return self._say(job, self._resume(job, command), outcome)
        text = self._command_reply(job.psid, command, is_admin, job.now)
        return self._say(job, text, outcome)

    def _welcome(self, user: User, is_admin: bool) -> Message:
        """What Get Started answers: the welcome, with the ice breakers as quick replies."""
        settings = self.settings
        limit = (
            None
            if is_admin
            else effective_limit(user.status, user.daily_limit, settings.daily_limit)
        )
        return replies.welcome(
            settings.welcome_message,
            limit,
            settings.ice_breakers,
            photos=settings.vision,
            voice=self.transcribe is not None,  # voice messages are always transcribed
        )

    def _welcome_new(self, job: Job, user: User, snapshot: Snapshot) -> None:
        """A new person's first event was not Get Started: the same welcome, sent before the
        answer, never counted. Once at most: only the attempt that created their record sends
        it (a retry of the event finds the record), and a failed send is not repeated (the
        answer still goes). Not while someone of the page is answering them."""
        pause = snapshot.pause
        if pause is not None and pause.active(int(job.now.timestamp())):
            return
        with contextlib.suppress(SendError):  # logged by the client
            self.messenger.send_message(job.psid, self._welcome(user, False), job.attempt.deadline)
            log.info("user.welcomed", kind=job.event.kind)

    def _human(self, job: Job, is_admin: bool) -> str:
        """A person asks for a person: the owners are told, with buttons to take over or to
        let the bot answer (by e-mail at once if none can get it in Messenger now), and the
        bot keeps quiet for them (if takeover is on). With nobody to tell, it says so and
        goes on answering."""
        if is_admin:
            return replies.HUMAN_FROM_OWNER
        settings = self.settings
        if not settings.admin_psids and not (self.mailer is not None and self.mailer.enabled):
            log.warning("human.nobody_to_tell")
            return replies.HUMAN_NOBODY
        minutes, moment = settings.human_pause_minutes, int(job.now.timestamp())
        until = moment + minutes * 60 if minutes > 0 else None
        quiet_until = moment + HUMAN_NOTICE_QUIET_SECONDS
        if self.store.take_alert("human", moment, quiet_until, psid=job.psid):
            notice = replies.human_notice(job.psid, until, settings.tz)
            told = self._notices().tell(notice, job.attempt.deadline, pressing=True)
            if not (told.delivered or told.queued or told.emailed):
                log.warning("human.nobody_told")
                return replies.HUMAN_NOBODY
        else:
            log.info("human.told_already")
        if until is not None and self.store.extend_pause(job.psid, until, BY_PERSON, moment):
            metrics.add("HumanTakeovers")
            log.info("takeover.started", by=BY_PERSON, minutes=minutes)
        return replies.human_asked(minutes)

    def _pause(self, job: Job, command: Command) -> str:
        """An owner's /pause: the bot keeps quiet for someone, as long as the owner says."""
        psid = command.psid
        if self.settings.is_admin(psid):
            return replies.owner_never_paused(psid)
        minutes = command.number or self.settings.human_pause_minutes or DEFAULT_PAUSE_MINUTES
        moment = int(job.now.timestamp())
        until = moment + minutes * 60
        before = self.store.set_pause(psid, until, BY_OWNER)
        if before is None or not before.active(moment):
            metrics.add("HumanTakeovers")
            log.info("takeover.started", by=BY_OWNER, paused=psid, minutes=minutes)
        return replies.paused(psid, until, minutes, self.settings.tz)

    def _resume(self, job: Job, command: Command) -> str:
        """An owner's /resume (or the button on a notice): the bot answers again."""
        psid = command.psid
        before = self.store.end_pause(psid)
        was_paused = before is not None and before.active(int(job.now.timestamp()))
        if was_paused:
            assert before is not None
            log.info("takeover.ended", by=before.by, ended_by=BY_OWNER, paused=psid)
            others = self.settings.admin_psids - {job.psid}
            if self.settings.takeover_notices and others:
                notice = replies.takeover_ended_notice(psid)
                self._notices().tell(notice, job.attempt.deadline, to=others)
        return replies.resumed(psid, was_paused)

    def _users(self, now: datetime) -> tuple[Message, ...]:
        """The owner's /users: the most recently active people (owners as such), and those
        waiting for a decision, as cards with the new-user buttons."""
        store, settings = self.store, self.settings
        day = day_key(now, settings.tz)
        read = store.recent_users(PENDING_USERS_READ)
        if not read:
            return ({"text": "No users yet."},)
        users = read[:RECENT_USERS_SHOWN]
        lines = [
            replies.describe_user(
                u, store.usage(u, day, settings.daily_limit), settings.is_admin(u.psid)
            )
            for u in users
        ]
        waiting = [u for u in read if u.pending and not settings.is_admin(u.psid)]
        shown = waiting[:PENDING_CARDS]
        text = (
            f"Recent users ({len(users)}):\n"
            + "\n".join(lines)
            + "\n\n"
            + replies.pending(len(waiting), len(shown))
        )
        cards = [
            replies.new_user_notice(u, settings.daily_limit, u.ref_source, u.ref) for u in shown
        ]
        extra: tuple[Message, ...] = ()
        if len(cards) == 1:
            extra = (notices.message(cards[0]),)
        elif cards:
            extra = (notices.carousel(cards),)
        return (*bubbles(text), *extra)

    def _stats(self, day: str, now: datetime) -> str:
        """The owner's /stats: the page's days this month (one Query), and the costliest of
        the people active this month (one Query each, for the most recent few)."""
        store, settings = self.store, self.settings
        month = store.page_month(day)
        today = next((d for d in month if d.day == day), PageDay(day))
        local = now.astimezone(settings.tz)
        first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        since = first - ACTIVITY_RESOLUTION  # activity is written at most that often
        costs: list[tuple[str, UserDay]] = []
        for user in store.recent_users(STATS_USERS_READ):
            try:
                active = datetime.fromisoformat(user.active_at)
            except ValueError:
                continue
            if (active if active.tzinfo else active.replace(tzinfo=UTC)) < since:
                break  # newest first: the rest were not active this month
            days = store.user_month(user.psid, day)
            total = UserDay(
                day,
                sum(d.questions for d in days),
                sum(d.tokens for d in days),
                sum(d.cost_nusd for d in days),
            )
            if total.cost_nusd or total.tokens:
                costs.append((user.psid, total))
        costs.sort(key=lambda c: (-c[1].cost_nusd, c[0]))
        return replies.stats(today, month, costs[:STATS_TOP_USERS], settings.daily_spend_limit_usd)

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
            totals = store.day_totals(psid, day)
            usage = quota.Usage(
                totals.questions,
                effective_limit(user.status, user.daily_limit, settings.daily_limit),
            )
            unlimited = user.status == STATUS_UNLIMITED
            token_limit = None if unlimited else settings.daily_token_limit
            return replies.usage(usage, now, settings.tz, totals.tokens, token_limit)
        if command.name == "stats":
            return self._stats(day, now)
        if command.name == "forget":
            deleted = store.forget_user(command.psid)
            if not deleted:
                return f"Nothing is stored for {command.psid}."
            return f"Forgot {command.psid}: {deleted} records deleted."
        if settings.is_admin(command.psid):
            return replies.owner_has_no_limit(command.psid)
        if command.name == "limit":
            assert command.number is not None
            current = store.get_user(command.psid)
            user = store.set_limit(command.psid, command.number, now)
            if current is not None and current.status == STATUS_BLOCKED:
                return replies.limit_kept_blocked(command.psid, command.number)
            if current is not None and current.status == STATUS_UNLIMITED:
                user = store.set_status(command.psid, "default", now)
                usage = store.usage(user, day, settings.daily_limit)
                return replies.limit_from_unlimited(user, usage)
        else:
            status = commands.ADMIN_STATUS_COMMANDS[command.name]
            user = store.set_status(command.psid, status, now)
        return replies.status_changed(user, store.usage(user, day, settings.daily_limit))
