"""DynamoDB access for people: profiles, daily counters and conversation history.

One person's messages reach the worker one at a time (the FIFO queue's message group), so
what is read before an answer still holds when it is written. The counter is a single
number per day; what makes counting idempotent lives on the event's item (``claims``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from . import schema
from .quota import STATUS_DEFAULT, STATUSES, Usage, effective_limit
from .takeover import Pause, Pauses, pause_from_item

Turn = dict[str, str]
TransactItem = dict[str, Any]
# An owner's kept notices, and an alert's quiet period's item, outlive a week of not writing.
ALERT_RETENTION_SECONDS = 7 * 24 * 3600
# An owner's outbox keeps this many notices, the newest: a long absence costs one message.
MAX_OUTBOX = 20


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


@dataclass(frozen=True)
class User:
    psid: str
    status: str = STATUS_DEFAULT
    daily_limit: int | None = None
    first_seen: str = ""
    active_at: str = ""
    ref_source: str = ""  # where they first came from (an m.me link, an ad...), if known
    ref: str = ""
    pending: bool = False  # new, and no owner has decided about them yet


def user_from_item(psid: str, item: dict[str, Any]) -> User:
    limit = item.get("daily_limit", {}).get("N")
    status = item.get("status", {}).get("S", STATUS_DEFAULT)
    return User(
        psid=psid,
        status=status if status in STATUSES else STATUS_DEFAULT,
        daily_limit=int(limit) if limit is not None else None,
        first_seen=item.get("first_seen", {}).get("S", ""),
        active_at=item.get("active_at", {}).get("S", ""),
        ref_source=item.get("ref_source", {}).get("S", ""),
        ref=item.get("ref", {}).get("S", ""),
        pending=bool(item.get("pending", {}).get("BOOL", False)),
    )


def conversation_from_item(item: dict[str, Any] | None, now: float) -> tuple[list[Turn], str]:
    """The remembered turns and the summary of older ones; nothing once expired."""
    if not item:
        return [], ""
    expires = int(item.get(schema.TTL_ATTRIBUTE, {}).get("N", "0"))
    if expires and expires < now:
        return [], ""  # TTL deletes late; an expired conversation is already forgotten
    summary = item.get("summary", {}).get("S", "")
    try:
        turns = json.loads(item["turns"]["S"])
    except (KeyError, TypeError, json.JSONDecodeError):
        return [], summary
    if not isinstance(turns, list):
        return [], summary
    kept = [t for t in turns if isinstance(t, dict) and {"role", "content"} <= t.keys()]
    return kept, summary


def history_from_item(item: dict[str, Any] | None, now: float) -> list[Turn]:
    return conversation_from_item(item, now)[0]


def photos_from_item(item: dict[str, Any] | None) -> tuple[tuple[str, ...], int]:
    """The photo URLs waiting on the conversation for the person's next message, and until
    when (epoch seconds; the caller compares it with its clock)."""
    if not item or "photos" not in item:
        return (), 0
    try:
        urls = json.loads(item["photos"]["S"])
        until = int(item.get("photos_until", {}).get("N", "0"))
    except (KeyError, TypeError, ValueError):
        return (), 0
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        return (), 0
    return tuple(urls), until


@dataclass(frozen=True)
class UserDay:
    """One person's day: questions counted, tokens used, estimated cost (nano-dollars)."""

    day: str = ""
    questions: int = 0
    tokens: int = 0
    cost_nusd: int = 0


@dataclass(frozen=True)
class PageDay:
    """The whole page's day: the same totals, and the failures by kind."""

    day: str = ""
    questions: int = 0
    tokens: int = 0
    cost_nusd: int = 0
    failures: dict[str, int] = field(default_factory=dict)


# What /stats counts by kind: a model that failed, a Send API call that failed, OpenAI's
# billing refusal, a parameter the model refused. Fixed names: the item never grows.
FAILURE_KINDS = ("model", "send", "token", "insufficient_quota", "unsupported_parameter")
_FAILURE_PREFIX = "failed_"


def _number(item: dict[str, Any] | None, name: str) -> int:
    value = (item or {}).get(name, {}).get("N")
    return int(value) if value is not None else 0


def user_day_from_item(day: str, item: dict[str, Any] | None) -> UserDay:
    return UserDay(day, _number(item, "count"), _number(item, "tokens"), _number(item, "cost_nusd"))


def page_day_from_item(day: str, item: dict[str, Any] | None) -> PageDay:
    failures = {
        kind: _number(item, _FAILURE_PREFIX + kind)
        for kind in FAILURE_KINDS
        if _number(item, _FAILURE_PREFIX + kind)
    }
    return PageDay(
        day,
        _number(item, "questions"),
        _number(item, "tokens"),
        _number(item, "cost_nusd"),
        failures,
    )


# An owner's kept notices are attributes of their OUTBOX item, one per key: "notice:<key>".
_NOTICE_ATTRIBUTE = "notice:"


@dataclass(frozen=True)
class Notice:
    """What the owners must hear about: never a person's words, never a secret. ``buttons``
    (postbacks) when they can act on it in Messenger; ``hint`` says what to do in an e-mail,
    which has no buttons."""

    key: str  # one kept per key, the newest: "alert:spend_cap", "new_user:<psid>"...
    text: str
    title: str = ""  # a card's title when merged with others (Messenger shows 80 characters)
    subtitle: str = ""  # and its second line
    buttons: tuple[tuple[str, str], ...] = ()  # (title, payload), at most 3
    hint: str = ""
    at: int = 0  # epoch seconds, when it was raised
    mailed: bool = False  # e-mailed already, while it waited for the owner
    raw: str = ""  # as stored: what a conditional delete compares

    def to_json(self) -> str:
        data: dict[str, Any] = {"text": self.text, "at": self.at}
        extra = {"title": self.title, "subtitle": self.subtitle, "hint": self.hint}
        data.update({name: value for name, value in extra.items() if value})
        if self.buttons:
            data["buttons"] = [list(button) for button in self.buttons]
        if self.mailed:
            data["mailed"] = True
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def notice_from_json(key: str, raw: str) -> Notice | None:
    try:
        data = json.loads(raw)
        buttons = tuple((str(t), str(p)) for t, p in data.get("buttons", []))
        return Notice(
            key,
            str(data["text"]),
            str(data.get("title", "")),
            str(data.get("subtitle", "")),
            buttons,
            str(data.get("hint", "")),
            int(data["at"]),
            bool(data.get("mailed", False)),
            raw,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def notices_from_item(item: dict[str, Any] | None) -> list[Notice]:
    """An outbox's notices, oldest first."""
    found = []
    for name, value in (item or {}).items():
        if not name.startswith(_NOTICE_ATTRIBUTE) or "S" not in value:
            continue
        notice = notice_from_json(name[len(_NOTICE_ATTRIBUTE) :], value["S"])
        if notice is not None:
            found.append(notice)
    return sorted(found, key=lambda n: (n.at, n.key))


@dataclass(frozen=True)
class Snapshot:
    """What the worker needs to know about a person, read in one request."""

    user: User | None  # None: never seen
    history: list[Turn]
    used_today: int
    tokens_today: int = 0
    summary: str = ""  # the older turns of the conversation, summarised
    page_today: PageDay = field(default_factory=PageDay)  # for the page's spend cap
    outbox: list[Notice] = field(default_factory=list)  # an owner's notices not yet delivered
    pause: Pause | None = None  # the bot keeps quiet for this person until then
    # Photos sent without text, waiting for the person's next message (URLs), and until when.
    photos: tuple[str, ...] = ()
    photos_until: int = 0


class Store:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    @property
    def table(self) -> str:
        return self._table

    # -- one read for the worker ---------------------------------------------------------

    def snapshot(self, psid: str, day: str, outbox: bool = False) -> Snapshot:
        """Profile, conversation, today's counts (the person's and the page's), a takeover's
        pause and, for an owner (``outbox``), the notices kept for them: one consistent
        BatchGetItem."""
        wanted = [
            schema.profile_key(psid),
            schema.history_key(psid),
            schema.counter_key(psid, day),
            schema.page_day_key(day),
            schema.pause_key(psid),
        ]
        if outbox:
            wanted.append(schema.outbox_key(psid))
        found: dict[tuple[str, str], dict[str, Any]] = {}
        keys = list(wanted)
        for _ in range(5):  # unprocessed keys come back under load: ask for those again
            response = self._db.batch_get_item(
                RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
            )
            for item in response.get("Responses", {}).get(self._table, []):
                found[(item[schema.PARTITION_KEY]["S"], item[schema.SORT_KEY]["S"])] = item
            keys = response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
            if not keys:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("BatchGetItem left keys unprocessed")

        def get(key: schema.Key) -> dict[str, Any] | None:
            return found.get((key[schema.PARTITION_KEY]["S"], key[schema.SORT_KEY]["S"]))

        profile = get(schema.profile_key(psid))
        counter = user_day_from_item(day, get(schema.counter_key(psid, day)))
        conversation = get(schema.history_key(psid))
        turns, summary = conversation_from_item(conversation, time.time())
        photos, photos_until = photos_from_item(conversation)
        return Snapshot(
            user=user_from_item(psid, profile) if profile else None,
            history=turns,
            used_today=counter.questions,
            tokens_today=counter.tokens,
            summary=summary,
            page_today=page_day_from_item(day, get(schema.page_day_key(day))),
            outbox=notices_from_item(get(schema.outbox_key(psid))) if outbox else [],
            pause=pause_from_item(get(schema.pause_key(psid))),
            photos=photos,
            photos_until=photos_until,
        )

    # -- users ----------------------------------------------------------------------------

    def create_user(
        self, psid: str, now: datetime, ref_source: str = "", ref: str = ""
    ) -> tuple[User, bool]:
        """The user's record, created unless it exists; ``True`` when this call created it."""
        stamp = _iso(now)
        referral = {
            name: {"S": value}
            for name, value in (("ref_source", ref_source), ("ref", ref))
            if value
        }
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **schema.profile_key(psid),
                    schema.USERS_INDEX_PARTITION_KEY: {"S": schema.USER_ENTITY},
                    schema.USERS_INDEX_SORT_KEY: {"S": stamp},
                    "first_seen": {"S": stamp},
                    "status": {"S": STATUS_DEFAULT},
                    "pending": {"BOOL": True},
                    **referral,
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY},
            )
        except ClientError as error:
            if not schema.is_condition_failure(error):
                raise
            user = self.get_user(psid)
            return (user or User(psid, first_seen=stamp, active_at=stamp)), False
        user = User(psid, first_seen=stamp, active_at=stamp, ref_source=ref_source, ref=ref)
        return replace(user, pending=True), True

    def touch_item(
        self, psid: str, now: datetime, ref_source: str = "", ref: str = ""
    ) -> TransactItem:
        """A transaction item that marks the user active now (the recent-users index) and keeps
        where they came from the first time that is known (one item: a transaction may not
        touch it twice)."""
        sets = [
            "#entity = :user",
            "#active = :now",
            "first_seen = if_not_exists(first_seen, :now)",
            "#status = if_not_exists(#status, :default)",
        ]
        names = {
            "#entity": schema.USERS_INDEX_PARTITION_KEY,
            "#active": schema.USERS_INDEX_SORT_KEY,
            "#status": "status",
        }
        values = {
            ":user": {"S": schema.USER_ENTITY},
            ":now": {"S": _iso(now)},
            ":default": {"S": STATUS_DEFAULT},
        }
        if ref_source or ref:
            sets += [
                "ref_source = if_not_exists(ref_source, :source)",
                "#ref = if_not_exists(#ref, :ref)",
            ]
            names["#ref"] = "ref"
            values.update({":source": {"S": ref_source}, ":ref": {"S": ref}})
        return {
            "Update": {
                "TableName": self._table,
                "Key": schema.profile_key(psid),
                "UpdateExpression": "SET " + ", ".join(sets),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def get_user(self, psid: str) -> User | None:
        item = self._db.get_item(
            TableName=self._table, Key=schema.profile_key(psid), ConsistentRead=True
        ).get("Item")
        return user_from_item(psid, item) if item else None

    def set_status(self, psid: str, status: str, now: datetime) -> User:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return self._update_profile(
            psid, now, ["#status = :status"], [], {":status": {"S": status}}
        )

    def set_limit(self, psid: str, limit: int | None, now: datetime) -> User:
        """A user's own daily limit; ``None`` goes back to the configured default."""
        if limit is None:
            return self._update_profile(psid, now, [], ["daily_limit"])
        if limit < 0:
            raise ValueError("limit must not be negative")
        return self._update_profile(
            psid, now, ["daily_limit = :limit"], [], {":limit": {"N": str(limit)}}
        )

    def _update_profile(
        self,
        psid: str,
        now: datetime,
        sets: list[str],
        removes: list[str],
        values: dict[str, Any] | None = None,
    ) -> User:
        """Change a user's profile, creating a complete one (index keys included) if new: an
        owner's decision, so they are no longer waiting for one."""
        sets = [
            "#entity = :user",
            "first_seen = if_not_exists(first_seen, :now)",
            "#active = if_not_exists(#active, :now)",
            "#status = if_not_exists(#status, :default)" if "#status = :status" not in sets else "",
            "changed_at = :now",
            *sets,
        ]
        expression = "SET " + ", ".join(s for s in sets if s)
        expression += " REMOVE " + ", ".join([*removes, "pending"])
        response = self._db.update_item(
            TableName=self._table,
            Key=schema.profile_key(psid),
            UpdateExpression=expression,
            ExpressionAttributeNames={
                "#entity": schema.USERS_INDEX_PARTITION_KEY,
                "#active": schema.USERS_INDEX_SORT_KEY,
                "#status": "status",
            },
            ExpressionAttributeValues={
                ":user": {"S": schema.USER_ENTITY},
                ":now": {"S": _iso(now)},
                **({} if ":status" in (values or {}) else {":default": {"S": STATUS_DEFAULT}}),
                **(values or {}),
            },
            ReturnValues="ALL_NEW",
        )
        return user_from_item(psid, response["Attributes"])

    def recent_users(self, limit: int = 20) -> list[User]:
        """Users by last activity, newest first, from the sparse index."""
        response = self._db.query(
            TableName=self._table,
            IndexName=schema.USERS_INDEX,
            KeyConditionExpression="#entity = :user",
            ExpressionAttributeNames={"#entity": schema.USERS_INDEX_PARTITION_KEY},
            ExpressionAttributeValues={":user": {"S": schema.USER_ENTITY}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [
            user_from_item(schema.psid_of(item[schema.PARTITION_KEY]["S"]), item)
            for item in response.get("Items", [])
        ]

    def forget_user(self, psid: str, keep_pause: bool = False, now: float | None = None) -> int:
        """Delete everything stored about one user; returns how many items went. With
        ``keep_pause`` (the person's own /delete) a pause still running at ``now`` stays: a
        person of the page is talking to them, and it holds only the PSID and its end."""
        moment = time.time() if now is None else now
        deleted = 0
        start: dict[str, Any] | None = None
        while True:
            page = self._db.query(
                TableName=self._table,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={
                    "#pk": schema.PARTITION_KEY,
                    "#sk": schema.SORT_KEY,
                    "#until": "until",
                },
                ExpressionAttributeValues={":pk": {"S": schema.user_pk(psid)}},
                ProjectionExpression="#pk, #sk, #until",
                ConsistentRead=True,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            for item in page.get("Items", []):
                if keep_pause and item[schema.SORT_KEY]["S"] == schema.PAUSE:
                    pause = pause_from_item(item)
                    if pause is not None and pause.active(int(moment)):
                        continue  # it ends by itself
                key = {name: item[name] for name in (schema.PARTITION_KEY, schema.SORT_KEY)}
                self._db.delete_item(TableName=self._table, Key=key)
                deleted += 1
            start = page.get("LastEvaluatedKey")
            if not start:
                return deleted

    # -- quota ----------------------------------------------------------------------------

    def count_item(self, psid: str, day: str, expires_at: int) -> TransactItem:
        """A transaction item that counts one question: a number that never grows an item."""
        return self._add_item(schema.counter_key(psid, day), {"count": 1}, expires_at)

    def _add_item(self, key: schema.Key, numbers: dict[str, int], expires_at: int) -> TransactItem:
        """A transaction item that adds ``numbers`` to an item's (zero ones left out)."""
        added = {name: n for name, n in numbers.items() if n}
        names = {f"#a{i}": name for i, name in enumerate(added)}
        values = {f":a{i}": {"N": str(n)} for i, n in enumerate(added.values())}
        expression = (
            ("ADD " + ", ".join(f"{p} :a{i}" for i, p in enumerate(names))) if added else ""
        )
        return {
            "Update": {
                "TableName": self._table,
                "Key": key,
                "UpdateExpression": f"{expression} SET #ttl = :ttl".strip(),
                "ExpressionAttributeNames": {**names, "#ttl": schema.TTL_ATTRIBUTE},
                "ExpressionAttributeValues": {**values, ":ttl": {"N": str(expires_at)}},
            }
        }

    def usage_items(
        self, psid: str, day: str, expires_at: int, question: bool, tokens: int, cost_nusd: int
    ) -> list[TransactItem]:
        """What one answer adds to the person's day (their question count, tokens, cost) and
        to the page's: written with the recorded reply, in its transaction, once."""
        count = int(question)
        return [
            self._add_item(
                schema.counter_key(psid, day),
                {"count": count, "tokens": tokens, "cost_nusd": cost_nusd},
                expires_at,
            ),
            self._add_item(
                schema.page_day_key(day),
                {"questions": count, "tokens": tokens, "cost_nusd": cost_nusd},
                expires_at,
            ),
        ]

    def note_failure(self, day: str, kind: str, expires_at: int) -> None:
        """Count one failure of ``kind`` (``FAILURE_KINDS``) on the page's day, for /stats."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        update = self._add_item(schema.page_day_key(day), {_FAILURE_PREFIX + kind: 1}, expires_at)
        self._db.update_item(**update["Update"])

    def day_totals(self, psid: str, day: str) -> UserDay:
        item = self._db.get_item(
            TableName=self._table, Key=schema.counter_key(psid, day), ConsistentRead=True
        ).get("Item")
        return user_day_from_item(day, item)

    def _month(self, pk: str, day: str) -> list[tuple[str, dict[str, Any]]]:
        """The ``DAY#`` items of ``day``'s month under ``pk``, as (day, item)."""
        found: list[tuple[str, dict[str, Any]]] = []
        start: dict[str, Any] | None = None
        while True:
            page = self._db.query(
                TableName=self._table,
                KeyConditionExpression="#pk = :pk AND begins_with(#sk, :month)",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY, "#sk": schema.SORT_KEY},
                ExpressionAttributeValues={
                    ":pk": {"S": pk},
                    ":month": {"S": schema.month_prefix(day)},
                },
                ConsistentRead=True,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            found += [
                (schema.day_of(item[schema.SORT_KEY]["S"]), item) for item in page.get("Items", [])
            ]
            start = page.get("LastEvaluatedKey")
            if not start:
                return found

    def page_month(self, day: str) -> list[PageDay]:
        """The page's days of ``day``'s month so far (one Query), oldest first."""
        return [page_day_from_item(d, item) for d, item in self._month(schema.PAGE, day)]

    def user_month(self, psid: str, day: str) -> list[UserDay]:
        """One person's days of ``day``'s month (one Query), oldest first."""
        return [user_day_from_item(d, item) for d, item in self._month(schema.user_pk(psid), day)]

    def questions_used(self, psid: str, day: str) -> int:
        item = self._db.get_item(
            TableName=self._table, Key=schema.counter_key(psid, day), ConsistentRead=True
        ).get("Item")
        return int(item["count"]["N"]) if item and "count" in item else 0

    def usage(self, user: User, day: str, default_limit: int) -> Usage:
        return Usage(
            self.questions_used(user.psid, day),
            effective_limit(user.status, user.daily_limit, default_limit),
        )

    # -- conversation ---------------------------------------------------------------------

    def load_history(self, psid: str) -> list[Turn]:
        item = self._db.get_item(
            TableName=self._table, Key=schema.history_key(psid), ConsistentRead=True
        ).get("Item")
        return history_from_item(item, time.time())

    def load_conversation(self, psid: str) -> tuple[list[Turn], str]:
        """The remembered turns and the summary of the older ones."""
        item = self._db.get_item(
            TableName=self._table, Key=schema.history_key(psid), ConsistentRead=True
        ).get("Item")
        return conversation_from_item(item, time.time())

    def history_item(
        self,
        psid: str,
        turns: list[Turn],
        expires_at: int,
        summary: str = "",
        photos: tuple[str, ...] = (),
        photos_until: int = 0,
    ) -> TransactItem:
        """A transaction item that stores the conversation as it now stands, with the photos
        waiting for the person's next message, if any (a conversation written without them
        lets them go)."""
        item = {
            **schema.history_key(psid),
            "turns": {"S": json.dumps(turns, ensure_ascii=False)},
            schema.TTL_ATTRIBUTE: {"N": str(max(expires_at, photos_until))},
        }
        if summary:
            item["summary"] = {"S": summary}
        if photos:
            item["photos"] = {"S": json.dumps(list(photos))}
            item["photos_until"] = {"N": str(photos_until)}
        return {"Put": {"TableName": self._table, "Item": item}}

    def clear_history(self, psid: str) -> None:
        self._db.delete_item(TableName=self._table, Key=schema.history_key(psid))

    # -- owner alerts ---------------------------------------------------------------------

    def take_alert(self, kind: str, now: int, quiet_until: int, psid: str | None = None) -> bool:
        """True when an alert of ``kind`` (about ``psid``: kept with that person's items) may
        go out now (epoch seconds), and none other until ``quiet_until``: one conditional
        write, so it holds across containers."""
        key = schema.alert_key(kind) if psid is None else schema.person_alert_key(psid, kind)
        try:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET quiet_until = :until, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(quiet_until) OR quiet_until <= :now",
                ExpressionAttributeNames={"#ttl": schema.TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":until": {"N": str(quiet_until)},
                    ":now": {"N": str(now)},
                    ":ttl": {"N": str(quiet_until + ALERT_RETENTION_SECONDS)},
                },
            )
        except ClientError as error:
            if schema.is_condition_failure(error):
                return False
            raise
        return True

    def keep_notice(self, psid: str, notice: Notice) -> None:
        """Keep a notice for an owner's next message: one per key, the newest, and at most
        ``MAX_OUTBOX`` of them (the oldest go)."""
        notice = replace(notice, raw="")
        response = self._db.update_item(
            TableName=self._table,
            Key=schema.outbox_key(psid),
            UpdateExpression="SET #notice = :notice, #ttl = :ttl",
            ExpressionAttributeNames={
                "#notice": _NOTICE_ATTRIBUTE + notice.key,
                "#ttl": schema.TTL_ATTRIBUTE,
            },
            ExpressionAttributeValues={
                ":notice": {"S": notice.to_json()},
                ":ttl": {"N": str(notice.at + ALERT_RETENTION_SECONDS)},
            },
            ReturnValues="ALL_NEW",
        )
        kept = notices_from_item(response.get("Attributes"))
        for old in kept[: max(0, len(kept) - MAX_OUTBOX)]:
            self.drop_notice(psid, old)

    def drop_notice(self, psid: str, notice: Notice) -> None:
        """Forget a delivered notice, unless a newer one has replaced it."""
        self._change_notice(psid, notice, "REMOVE #notice", {})

    def mark_mailed(self, psid: str, notice: Notice) -> None:
        """A kept notice was e-mailed: not again (unless a newer one replaces it)."""
        mailed = replace(notice, mailed=True).to_json()
        self._change_notice(psid, notice, "SET #notice = :mailed", {":mailed": {"S": mailed}})

    def _change_notice(
        self, psid: str, notice: Notice, expression: str, values: dict[str, Any]
    ) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=schema.outbox_key(psid),
                UpdateExpression=expression,
                ConditionExpression="#notice = :seen",
                ExpressionAttributeNames={"#notice": _NOTICE_ATTRIBUTE + notice.key},
                ExpressionAttributeValues={":seen": {"S": notice.raw}, **values},
            )
        except ClientError as error:
            if not schema.is_condition_failure(error):
                raise

    def read_outboxes(self, psids: list[str]) -> dict[str, list[Notice]]:
        """The notices kept for each of these owners (one BatchGetItem), oldest first."""
        found: dict[str, list[Notice]] = {psid: [] for psid in psids}
        keys = [schema.outbox_key(psid) for psid in psids]
        for _ in range(5):
            if not keys:
                break
            response = self._db.batch_get_item(
                RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
            )
            for item in response.get("Responses", {}).get(self._table, []):
                psid = schema.psid_of(item[schema.PARTITION_KEY]["S"])
                found[psid] = notices_from_item(item)
            keys = response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
            if keys:
                time.sleep(0.05)
        return found

    # -- takeover: the bot's pause for one person -------------------------------------------

    def extend_pause(self, psid: str, until: int, by: str, now: int) -> bool:
        """Pause until ``until`` unless a longer pause runs; True when it started one."""
        return Pauses(self._db, self._table).extend(psid, until, by, now)

    def set_pause(self, psid: str, until: int, by: str) -> Pause | None:
        """Pause until ``until`` (an owner's word); the pause it replaced."""
        return Pauses(self._db, self._table).set(psid, until, by)

    def end_pause(self, psid: str) -> Pause | None:
        """No pause any more; the one there was."""
        return Pauses(self._db, self._table).end(psid)

    def unpaused_item(self, psid: str, now: int) -> TransactItem:
        """A transaction's condition that no pause runs for ``psid`` at ``now``: the answer is
        recorded (and counted) only if no takeover began while the model was asked, without
        a read of its own."""
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": schema.pause_key(psid),
                "ConditionExpression": "attribute_not_exists(#until) OR #until <= :now",
                "ExpressionAttributeNames": {"#until": "until"},
                "ExpressionAttributeValues": {":now": {"N": str(now)}},
            }
        }

    def get_pause(self, psid: str) -> Pause | None:
        return Pauses(self._db, self._table).get(psid)
