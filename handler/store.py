"""DynamoDB access for people: profiles, daily counters and conversation history.

One person's messages reach the worker one at a time (the FIFO queue's message group), so
what is read before an answer still holds when it is written. The counter is a single
number per day; what makes counting idempotent lives on the event's item (``claims``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from . import schema
from .quota import STATUS_DEFAULT, STATUSES, Usage, effective_limit

Turn = dict[str, str]
TransactItem = dict[str, Any]


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
    )


def history_from_item(item: dict[str, Any] | None, now: float) -> list[Turn]:
    if not item:
        return []
    expires = int(item.get(schema.TTL_ATTRIBUTE, {}).get("N", "0"))
    if expires and expires < now:
        return []  # TTL deletes late; an expired conversation is already forgotten
    try:
        turns = json.loads(item["turns"]["S"])
    except (KeyError, TypeError, json.JSONDecodeError):
        return []
    if not isinstance(turns, list):
        return []
    return [t for t in turns if isinstance(t, dict) and {"role", "content"} <= t.keys()]


@dataclass(frozen=True)
class Snapshot:
    """What the worker needs to know about a person, read in one request."""

    user: User | None  # None: never seen
    history: list[Turn]
    used_today: int


class Store:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    @property
    def table(self) -> str:
        return self._table

    # -- one read for the worker ---------------------------------------------------------

    def snapshot(self, psid: str, day: str) -> Snapshot:
        """Profile, conversation and today's count, in one consistent BatchGetItem."""
        wanted = {
            schema.PROFILE: schema.profile_key(psid),
            schema.HISTORY: schema.history_key(psid),
            schema.day_sk(day): schema.counter_key(psid, day),
        }
        found: dict[str, dict[str, Any]] = {}
        keys = list(wanted.values())
        for _ in range(5):  # unprocessed keys come back under load: ask for those again
            response = self._db.batch_get_item(
                RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
            )
            for item in response.get("Responses", {}).get(self._table, []):
                found[item[schema.SORT_KEY]["S"]] = item
            keys = response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
            if not keys:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("BatchGetItem left keys unprocessed")
        profile = found.get(schema.PROFILE)
        counter = found.get(schema.day_sk(day))
        return Snapshot(
            user=user_from_item(psid, profile) if profile else None,
            history=history_from_item(found.get(schema.HISTORY), time.time()),
            used_today=int(counter["count"]["N"]) if counter and "count" in counter else 0,
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
        return User(psid, first_seen=stamp, active_at=stamp, ref_source=ref_source, ref=ref), True

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
        """Change a user's profile, creating a complete one (index keys included) if new."""
        sets = [
            "#entity = :user",
            "first_seen = if_not_exists(first_seen, :now)",
            "#active = if_not_exists(#active, :now)",
            "#status = if_not_exists(#status, :default)" if "#status = :status" not in sets else "",
            "changed_at = :now",
            *sets,
        ]
        expression = "SET " + ", ".join(s for s in sets if s)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
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

    def forget_user(self, psid: str) -> int:
        """Delete everything stored about one user; returns how many items went."""
        deleted = 0
        start: dict[str, Any] | None = None
        while True:
            page = self._db.query(
                TableName=self._table,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY, "#sk": schema.SORT_KEY},
                ExpressionAttributeValues={":pk": {"S": schema.user_pk(psid)}},
                ProjectionExpression="#pk, #sk",
                ConsistentRead=True,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            for item in page.get("Items", []):
                self._db.delete_item(TableName=self._table, Key=item)
                deleted += 1
            start = page.get("LastEvaluatedKey")
            if not start:
                return deleted

    # -- quota ----------------------------------------------------------------------------

    def count_item(self, psid: str, day: str, expires_at: int) -> TransactItem:
        """A transaction item that counts one question: a number that never grows an item."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": schema.counter_key(psid, day),
                "UpdateExpression": "ADD #count :one SET #ttl = :ttl",
                "ExpressionAttributeNames": {"#count": "count", "#ttl": schema.TTL_ATTRIBUTE},
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":ttl": {"N": str(expires_at)},
                },
            }
        }

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

    def history_item(self, psid: str, turns: list[Turn], expires_at: int) -> TransactItem:
        """A transaction item that stores the conversation as it now stands."""
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    **schema.history_key(psid),
                    "turns": {"S": json.dumps(turns, ensure_ascii=False)},
                    schema.TTL_ATTRIBUTE: {"N": str(expires_at)},
                },
            }
        }

    def clear_history(self, psid: str) -> None:
        self._db.delete_item(TableName=self._table, Key=schema.history_key(psid))
