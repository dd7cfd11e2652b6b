"""In-memory stand-ins for the bot's store, claims, messenger and model.

They keep the same rules as the DynamoDB versions (conditions on the claim's owner, one count
per event, all-or-nothing finishes); ``tests/storage`` runs one contract against both, so a
rule that drifts here fails there.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from handler.claims import DONE, WORKING, Claim, ClaimLost, ClaimState, GuardFailed, Reply
from handler.llm import Completion, ModelError, Transcript
from handler.media import Media, MediaError, accepts
from handler.messenger import SendError
from handler.quota import STATUS_DEFAULT, STATUSES, Usage, effective_limit
from handler.store import (
    FAILURE_KINDS,
    MAX_OUTBOX,
    Notice,
    PageDay,
    Snapshot,
    Turn,
    User,
    UserDay,
)
from handler.takeover import Pause


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


@dataclass
class MemoryStore:
    users: dict[str, User] = field(default_factory=dict)
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    histories: dict[str, list[Turn]] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    # (psid, day) -> [tokens, nano-dollars]; day -> the page's totals and failures by name
    spent: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    pages: dict[str, dict[str, int]] = field(default_factory=dict)
    quiet: dict[str, int] = field(default_factory=dict)  # alert kind -> quiet until
    outboxes: dict[str, dict[str, Notice]] = field(default_factory=dict)  # psid -> key -> it
    pauses: dict[str, Pause] = field(default_factory=dict)
    photos: dict[str, tuple[tuple[str, ...], int]] = field(default_factory=dict)  # urls, until
    lock: threading.RLock = field(default_factory=threading.RLock)

    def snapshot(self, psid: str, day: str, outbox: bool = False) -> Snapshot:
        with self.lock:
            return Snapshot(
                self.users.get(psid),
                list(self.histories.get(psid, [])),
                self.counters.get((psid, day), 0),
                self.spent.get((psid, day), [0, 0])[0],
                self.summaries.get(psid, ""),
                self.page_day(day),
                self._outbox(psid) if outbox else [],
                self.pauses.get(psid),
                *self.photos.get(psid, ((), 0)),
            )

    def _outbox(self, psid: str) -> list[Notice]:
        return sorted(self.outboxes.get(psid, {}).values(), key=lambda n: (n.at, n.key))

    def page_day(self, day: str) -> PageDay:
        page = self.pages.get(day, {})
        return PageDay(
            day,
            page.get("questions", 0),
            page.get("tokens", 0),
            page.get("cost_nusd", 0),
            {k: page[f"failed_{k}"] for k in FAILURE_KINDS if page.get(f"failed_{k}")},
        )

    def usage_items(
        self, psid: str, day: str, expires_at: int, question: bool, tokens: int, cost_nusd: int
    ) -> list[tuple[str, Any]]:
        return [
            ("user_usage", (psid, day, int(question), tokens, cost_nusd)),
            ("page_usage", (day, int(question), tokens, cost_nusd)),
        ]

    def _page_add(self, day: str, **numbers: int) -> None:
        page = self.pages.setdefault(day, {})
        for name, n in numbers.items():
            if n:
                page[name] = page.get(name, 0) + n

    def note_failure(self, day: str, kind: str, expires_at: int) -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(kind)
        with self.lock:
            self._page_add(day, **{f"failed_{kind}": 1})

    def day_totals(self, psid: str, day: str) -> UserDay:
        with self.lock:
            tokens, cost = self.spent.get((psid, day), [0, 0])
            return UserDay(day, self.counters.get((psid, day), 0), tokens, cost)

    def page_month(self, day: str) -> list[PageDay]:
        with self.lock:
            return [self.page_day(d) for d in sorted(self.pages) if d[:7] == day[:7]]

    def user_month(self, psid: str, day: str) -> list[UserDay]:
        with self.lock:
            days = {d for p, d in [*self.counters, *self.spent] if p == psid and d[:7] == day[:7]}
            return [self.day_totals(psid, d) for d in sorted(days)]

    def take_alert(self, kind: str, now: int, quiet_until: int, psid: str | None = None) -> bool:
        name = kind if psid is None else f"{psid}:{kind}"
        with self.lock:
            if self.quiet.get(name, 0) > now:
                return False
            self.quiet[name] = quiet_until
            return True

    def keep_notice(self, psid: str, notice: Notice) -> None:
        with self.lock:
            notice = replace(notice, raw="")
            kept = self.outboxes.setdefault(psid, {})
            kept[notice.key] = replace(notice, raw=notice.to_json())
            for old in self._outbox(psid)[: max(0, len(kept) - MAX_OUTBOX)]:
                del kept[old.key]

    def drop_notice(self, psid: str, notice: Notice) -> None:
        with self.lock:
            kept = self.outboxes.get(psid, {})
            if (found := kept.get(notice.key)) is not None and found.raw == notice.raw:
                del kept[notice.key]

    def mark_mailed(self, psid: str, notice: Notice) -> None:
        with self.lock:
            kept = self.outboxes.get(psid, {})
            if (found := kept.get(notice.key)) is not None and found.raw == notice.raw:
                mailed = replace(found, mailed=True, raw="")
                kept[notice.key] = replace(mailed, raw=mailed.to_json())

    def read_outboxes(self, psids: list[str]) -> dict[str, list[Notice]]:
        with self.lock:
            return {psid: self._outbox(psid) for psid in psids}

    def extend_pause(self, psid: str, until: int, by: str, now: int) -> bool:
        with self.lock:
            before = self.pauses.get(psid)
            if before is not None and before.until >= until:
                return False
            self.pauses[psid] = Pause(until, by)
            return before is None or not before.active(now)

    def set_pause(self, psid: str, until: int, by: str) -> Pause | None:
        with self.lock:
            before = self.pauses.get(psid)
            self.pauses[psid] = Pause(until, by)
            return before

    def end_pause(self, psid: str) -> Pause | None:
        with self.lock:
            return self.pauses.pop(psid, None)

    def get_pause(self, psid: str) -> Pause | None:
        with self.lock:
            return self.pauses.get(psid)

    def unpaused_item(self, psid: str, now: int) -> tuple[str, Any]:
        return ("unpaused", (psid, now))

    def holds(self, condition: tuple[str, Any]) -> bool:
        """A transaction's condition (``unpaused_item``), as DynamoDB would judge it."""
        kind, (psid, now) = condition
        assert kind == "unpaused", condition
        with self.lock:
            pause = self.pauses.get(psid)
            return pause is None or not pause.active(now)

    def create_user(
        self, psid: str, now: datetime, ref_source: str = "", ref: str = ""
    ) -> tuple[User, bool]:
        if psid in self.users:
            return self.users[psid], False
        stamp = _iso(now)
        self.users[psid] = User(
            psid, first_seen=stamp, active_at=stamp, ref_source=ref_source, ref=ref, pending=True
        )
        return self.users[psid], True

    def touch_item(
        self, psid: str, now: datetime, ref_source: str = "", ref: str = ""
    ) -> tuple[str, Any]:
        return ("touch", (psid, now, ref_source, ref))

    def count_item(self, psid: str, day: str, expires_at: int) -> tuple[str, Any]:
        return ("count", (psid, day))

    def history_item(
        self,
        psid: str,
        turns: list[Turn],
        expires_at: int,
        summary: str = "",
        photos: tuple[str, ...] = (),
        photos_until: int = 0,
    ) -> tuple[str, Any]:
        if photos:
            return ("history", (psid, list(turns), summary, tuple(photos), photos_until))
        return ("history", (psid, list(turns), summary))

    def apply(self, item: tuple[str, Any]) -> None:
        with self.lock:
            self._apply(item)

    def _apply(self, item: tuple[str, Any]) -> None:
        kind, args = item
        if kind == "touch":
            psid, now, ref_source, ref = args
            user = self.users.get(psid) or User(psid, first_seen=_iso(now))
            user = replace(user, active_at=_iso(now))
            if (ref_source or ref) and not (user.ref_source or user.ref):
                user = replace(user, ref_source=ref_source, ref=ref)
            self.users[psid] = user
        elif kind == "count":
            self.counters[args] = self.counters.get(args, 0) + 1
        elif kind == "history":
            psid, turns, summary, *photos = args
            self.histories[psid] = turns
            if summary:
                self.summaries[psid] = summary
            else:
                self.summaries.pop(psid, None)
            if photos:  # the item is written whole: without photos, none wait any more
                self.photos[psid] = (photos[0], photos[1])
            else:
                self.photos.pop(psid, None)
        elif kind == "user_usage":
            psid, day, question, tokens, cost = args
            if question:
                self.counters[(psid, day)] = self.counters.get((psid, day), 0) + question
            if tokens or cost:
                spent = self.spent.setdefault((psid, day), [0, 0])
                spent[0] += tokens
                spent[1] += cost
        elif kind == "page_usage":
            day, question, tokens, cost = args
            self._page_add(day, questions=question, tokens=tokens, cost_nusd=cost)
        else:
            raise ValueError(kind)

    def get_user(self, psid: str) -> User | None:
        return self.users.get(psid)

    def set_status(self, psid: str, status: str, now: datetime) -> User:
        assert status in STATUSES
        user = self.users.get(psid) or User(psid, first_seen=_iso(now), active_at=_iso(now))
        self.users[psid] = replace(user, status=status, pending=False)
        return self.users[psid]

    def set_limit(self, psid: str, limit: int | None, now: datetime) -> User:
        user = self.users.get(psid) or User(psid, first_seen=_iso(now), active_at=_iso(now))
        self.users[psid] = replace(user, daily_limit=limit, pending=False)
        return self.users[psid]

    def recent_users(self, limit: int = 20) -> list[User]:
        return sorted(self.users.values(), key=lambda u: u.active_at, reverse=True)[:limit]

    def forget_user(self, psid: str, keep_pause: bool = False, now: float | None = None) -> int:
        gone = int(self.users.pop(psid, None) is not None)
        had_photos = self.photos.pop(psid, None) is not None
        gone += int(self.histories.pop(psid, None) is not None or had_photos)
        self.summaries.pop(psid, None)
        gone += int(self.outboxes.pop(psid, None) is not None)
        pause = self.pauses.get(psid)
        moment = int(time.time() if now is None else now)
        if pause is not None and not (keep_pause and pause.active(moment)):
            del self.pauses[psid]
            gone += 1
        for name in [n for n in self.quiet if n.startswith(f"{psid}:")]:
            del self.quiet[name]
            gone += 1
        days = {k for k in [*self.counters, *self.spent] if k[0] == psid}
        for key in days:
            self.counters.pop(key, None)
            self.spent.pop(key, None)
            gone += 1
        return gone

    def questions_used(self, psid: str, day: str) -> int:
        return self.counters.get((psid, day), 0)

    def usage(self, user: User, day: str, default_limit: int) -> Usage:
        return Usage(
            self.questions_used(user.psid, day),
            effective_limit(user.status, user.daily_limit, default_limit),
        )

    def load_history(self, psid: str) -> list[Turn]:
        return list(self.histories.get(psid, []))

    def load_conversation(self, psid: str) -> tuple[list[Turn], str]:
        return list(self.histories.get(psid, [])), self.summaries.get(psid, "")

    def clear_history(self, psid: str) -> None:
        self.histories.pop(psid, None)
        self.summaries.pop(psid, None)
        self.photos.pop(psid, None)


@dataclass
class MemoryClaims:
    store: MemoryStore
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, event_id: str, owner: str, now_ms: int, lease_until_ms: int) -> Claim:
        with self.lock:
            item = self.items.get(event_id)
            if item is None or (item["state"] == WORKING and item["lease_until"] < now_ms):
                item = item or {"attempts": 0, "sent": 0}
                item.update(state=WORKING, owner=owner, lease_until=lease_until_ms)
                item["attempts"] += 1
                self.items[event_id] = item
                state = ClaimState.NEW if item["attempts"] == 1 else ClaimState.RESUMED
                return self._claim(event_id, owner, state, item)
            if item["state"] == DONE:
                return self._claim(event_id, owner, ClaimState.DUPLICATE, item)
            return self._claim(event_id, owner, ClaimState.HELD, item)

    @staticmethod
    def _claim(event_id: str, owner: str, state: ClaimState, item: dict[str, Any]) -> Claim:
        return Claim(
            event_id=event_id,
            owner=owner,
            state=state,
            lease_until_ms=item.get("lease_until", 0),
            attempts=item["attempts"],
            reply=item.get("reply"),
            sent=item.get("sent", 0),
            counted=item.get("counted"),
            last_error=item.get("last_error"),
        )

    def get(self, event_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.items.get(event_id))

    def _owned(self, claim: Claim) -> dict[str, Any]:
        item = self.items.get(claim.event_id)
        if item is None or item["owner"] != claim.owner or item["state"] != WORKING:
            raise ClaimLost(claim.event_id)
        return item

    def record(
        self, claim: Claim, reply: Reply, count: Any = None, day: str = "", guard: Any = None
    ) -> Claim:
        with self.lock:
            item = self._owned(claim)
            if guard is not None and not self.store.holds(guard):
                raise GuardFailed()
            item.update(reply=reply, sent=0)
            extra = [] if count is None else count if isinstance(count, list) else [count]
            if extra and "counted" not in item:
                item["counted"] = day
                for write in extra:
                    self.store.apply(write)
            return replace(claim, reply=reply, sent=0, counted=item.get("counted"))

    def record_sent(self, claim: Claim, sent: int) -> Claim:
        with self.lock:
            self._owned(claim)["sent"] = sent
            return replace(claim, sent=sent)

    def release(self, claim: Claim, why: str) -> None:
        with self.lock:
            self._owned(claim).update(last_error=why, lease_until=0)

    def finish(self, claim: Claim, outcome: str, extra: list[Any] | None = None) -> None:
        with self.lock:
            item = self._owned(claim)
            item.update(state=DONE, outcome=outcome)
            item.pop("reply", None)
            item.pop("lease_until", None)
            for write in extra or []:
                self.store.apply(write)


@dataclass
class Sent:
    psid: str
    message: dict[str, Any] | None = None
    action: str | None = None

    @property
    def text(self) -> str | None:
        return (self.message or {}).get("text")


class FakeMessenger:
    """Records what reaches the person; ``fail`` makes the next sends fail as given.

    ``fail(error, times, after=True)`` records the message before raising (Graph took it,
    the answer was lost), as a read timeout does.
    """

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._faults: list[tuple[Callable[[], BaseException], bool, bool]] = []
        self.before_send: Callable[[int], None] | None = None  # called with the send's index

    def fail(
        self,
        error: Callable[[], BaseException],
        times: int = 1,
        *,
        delivered: bool = False,
        actions: bool = False,
    ) -> None:
        self._faults += [(error, delivered, actions)] * times

    def _fault(self, is_action: bool) -> tuple[Callable[[], BaseException], bool] | None:
        for index, (error, delivered, actions) in enumerate(self._faults):
            if actions == is_action:
                del self._faults[index]
                return error, delivered
        return None

    def send_message(self, psid: str, message: dict[str, Any], deadline: float) -> None:
        if self.before_send is not None:
            self.before_send(len(self.sent))
        fault = self._fault(False)
        if fault is not None:
            error, delivered = fault
            if delivered:
                self.sent.append(Sent(psid, message))
            raise error()
        self.sent.append(Sent(psid, message))

    def sender_action(self, psid: str, action: str, deadline: float) -> None:
        fault = self._fault(True)
        if fault is not None:
            raise fault[0]()
        self.sent.append(Sent(psid, action=action))

    def texts_to(self, psid: str) -> list[str]:
        return [s.text for s in self.sent if s.psid == psid and s.text is not None]

    def messages_to(self, psid: str) -> list[dict[str, Any]]:
        return [s.message for s in self.sent if s.psid == psid and s.message is not None]


class FakeModel:
    """Answers from a script (texts or errors); records every request it was asked. Voice
    messages are transcribed from ``transcripts`` (texts or errors) the same way."""

    def __init__(self, *answers: str | BaseException | Completion) -> None:
        self.script: list[str | BaseException | Completion] = list(answers)
        self.asked: list[list[dict[str, Any]]] = []
        self.default: str = "The answer is 42."
        self.transcripts: list[str | BaseException | Transcript] = []
        self.heard: list[tuple[bytes, str, str]] = []

    def __call__(self, messages: list[dict[str, Any]], deadline: float) -> Completion:
        self.asked.append(messages)
        answer = self.script.pop(0) if self.script else self.default
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, Completion):
            return answer
        return Completion(answer, "stop")

    def transcribe(self, audio: bytes, name: str, content_type: str, deadline: float) -> Transcript:
        self.heard.append((audio, name, content_type))
        said = self.transcripts.pop(0) if self.transcripts else "What time is it?"
        if isinstance(said, BaseException):
            raise said
        return said if isinstance(said, Transcript) else Transcript(said)


class FakeCdn:
    """Messenger's CDN: files by URL (``Media``), or the ``MediaError`` a download meets."""

    def __init__(self) -> None:
        self.files: dict[str, Media | MediaError] = {}
        self.fetched: list[tuple[str, int, tuple[str, ...]]] = []

    def host(self, url: str, data: bytes, content_type: str) -> str:
        self.files[url] = Media(data, content_type)
        return url

    def __call__(
        self, url: str, max_bytes: int, accepted: tuple[str, ...], deadline: float
    ) -> Media:
        self.fetched.append((url, max_bytes, accepted))
        found = self.files.get(url, MediaError("status_404"))
        if isinstance(found, MediaError):
            raise found
        if not accepts(found.content_type, accepted):
            raise MediaError("wrong_type")
        if len(found.data) > max_bytes:
            raise MediaError("too_large")
        return found


def send_error(reason: str, **fields: Any) -> Callable[[], SendError]:
    """What the real client raises, by the names ``handler.messenger.classify`` gives."""
    presets: dict[str, dict[str, Any]] = {
        "graph_unavailable": {"permanent": False, "status": 500, "code": 2},
        "rate_limited": {"permanent": False, "status": 400, "code": 613},
        "person_unavailable": {"permanent": True, "status": 400, "code": 551},
        "page_token_invalid": {"permanent": True, "status": 401, "code": 190},
        "no_answer:ReadTimeout": {"permanent": False, "maybe_delivered": True},
        "connection:ConnectionError": {"permanent": False},
    }
    merged = {**presets.get(reason, {"permanent": False}), **fields}
    return lambda: SendError(reason, **merged)


def model_error(reason: str, retryable: bool, retry_after: float | None = None) -> ModelError:
    return ModelError(reason, retryable, retry_after)


__all__ = [
    "STATUS_DEFAULT",
    "FakeCdn",
    "FakeMessenger",
    "FakeModel",
    "MemoryClaims",
    "MemoryStore",
    "model_error",
    "send_error",
]
