"""DynamoDB access: dedupe claims, user records, daily counters and conversation history.

Every rule that must hold under concurrency (one reply per event, never more questions than
the limit) is a conditional write here, so DynamoDB itself enforces it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from . import schema
from .inbox import inbox_pk
from .quota import STATUS_DEFAULT, STATUSES, Usage, effective_limit

EVENT_RETENTION = timedelta(hours=48)  # Facebook retries for up to a day; keep claims longer


def _user_pk(psid: str) -> str:
    return f"USER#{psid}"


def _event_key(event_id: str) -> dict[str, Any]:
    return {schema.PARTITION_KEY: {"S": f"EVENT#{event_id}"}, schema.SORT_KEY: {"S": "EVENT"}}


def _key(psid: str, sort: str) -> dict[str, Any]:
    return {schema.PARTITION_KEY: {"S": _user_pk(psid)}, schema.SORT_KEY: {"S": sort}}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


class ClaimState(Enum):
    NEW = "new"  # first time: do the work
    RETAKEN = "retaken"  # an earlier attempt died or gave up before replying: do it again
    DUPLICATE = "duplicate"  # done or already replying: do nothing
    HELD = "held"  # another attempt is working on it under a live lease: not now


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    counted_day: str | None = None  # the quota day an earlier attempt already counted


@dataclass(frozen=True)
class User:
    psid: str
    status: str = STATUS_DEFAULT
    daily_limit: int | None = None
    first_seen: str = ""
    active_at: str = ""


def user_from_item(psid: str, item: dict[str, Any]) -> User:
    limit = item.get("daily_limit", {}).get("N")
    status = item.get("status", {}).get("S", STATUS_DEFAULT)
    return User(
        psid=psid,
        status=status if status in STATUSES else STATUS_DEFAULT,
        daily_limit=int(limit) if limit is not None else None,
        first_seen=item.get("first_seen", {}).get("S", ""),
        active_at=item.get("active_at", {}).get("S", ""),
    )


class Store:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    # -- dedupe ---------------------------------------------------------------------------

    def claim_event(self, event_id: str, now: datetime, lease: timedelta, owner: str) -> Claim:
        """Take the right to answer one webhook event, or learn that someone has it.

        A claim still ``working`` is taken over only once its lease ran out. The holder keeps
        the lease short and renews it while it works (``renew_claim``), so a second delivery
        of the same event at the same time finds it held, while the retry of an attempt that
        died (Lambda waits a minute or more) finds it free.
        """
        try:
            response = self._db.put_item(
                TableName=self._table,
                Item={
                    **_event_key(event_id),
                    "state": {"S": "working"},
                    "owner": {"S": owner},
                    "lease_until": {"N": str(int((now + lease).timestamp()))},
                    schema.TTL_ATTRIBUTE: {"N": str(int((now + EVENT_RETENTION).timestamp()))},
                },
                ConditionExpression="attribute_not_exists(#pk) OR (#state = :working "
                "AND lease_until < :now)",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY, "#state": "state"},
                ExpressionAttributeValues={
                    ":working": {"S": "working"},
                    ":now": {"N": str(int(now.timestamp()))},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if not schema.is_condition_failure(error):
                raise
            # botocore sends a write again when its answer was lost: then the claim is ours.
            held = self._db.get_item(
                TableName=self._table, Key=_event_key(event_id), ConsistentRead=True
            ).get("Item", {})
            if held.get("state", {}).get("S") == "working":
                ours = held.get("owner", {}).get("S") == owner
                return Claim(ClaimState.NEW if ours else ClaimState.HELD)
            return Claim(ClaimState.DUPLICATE)
        old = response.get("Attributes")
        if not old:
            return Claim(ClaimState.NEW)
        return Claim(ClaimState.RETAKEN, old.get("counted_day", {}).get("S"))

    def renew_claim(self, event_id: str, owner: str, until: datetime) -> bool:
        """Extend a working claim that ``owner`` still holds; False if it no longer does."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_event_key(event_id),
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="#state = :working AND #owner = :owner",
                ExpressionAttributeNames={"#state": "state", "#owner": "owner"},
                ExpressionAttributeValues={
                    ":until": {"N": str(int(until.timestamp()))},
                    ":working": {"S": "working"},
                    ":owner": {"S": owner},
                },
            )
        except ClientError as error:
            if schema.is_condition_failure(error):
                return False
            raise
        return True

    def note_counted(self, event_id: str, day: str) -> None:
        """Remember that this event's question was counted, so a retry does not count it again."""
        self._db.update_item(
            TableName=self._table,
            Key=_event_key(event_id),
            UpdateExpression="SET counted_day = :day",
            ExpressionAttributeValues={":day": {"S": day}},
        )

    def mark_event(self, event_id: str, state: str) -> None:
        """``replying`` before the Send API call, ``done`` after: neither is ever retaken."""
        self._db.update_item(
            TableName=self._table,
            Key=_event_key(event_id),
            UpdateExpression="SET #state = :state REMOVE lease_until",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":state": {"S": state}},
        )

    def answered(self, event_id: str) -> bool:
        """Whether a reply to the event was sent or is being sent (it is never retaken)."""
        item = self._db.get_item(
            TableName=self._table,
            Key=_event_key(event_id),
            ConsistentRead=True,
            ProjectionExpression="#state",
            ExpressionAttributeNames={"#state": "state"},
        ).get("Item")
        return item is not None and item["state"]["S"] in ("replying", "done")

    def release_event(self, event_id: str) -> None:
        """Give the event back after a failure, so that a retry answers it."""
        self._db.delete_item(TableName=self._table, Key=_event_key(event_id))

    # -- users ----------------------------------------------------------------------------

    def touch_user(self, psid: str, now: datetime) -> tuple[User, bool]:
        """The user's record, created on first sight; ``True`` when it was just created."""
        stamp = _iso(now)
        response = self._db.update_item(
            TableName=self._table,
            Key=_key(psid, "PROFILE"),
            UpdateExpression="SET #entity = :user, #active = :now, "
            "first_seen = if_not_exists(first_seen, :now), "
            "#status = if_not_exists(#status, :default)",
            ExpressionAttributeNames={
                "#entity": schema.USERS_INDEX_PARTITION_KEY,
                "#active": schema.USERS_INDEX_SORT_KEY,
                "#status": "status",
            },
            ExpressionAttributeValues={
                ":user": {"S": schema.USER_ENTITY},
                ":now": {"S": stamp},
                ":default": {"S": STATUS_DEFAULT},
            },
            ReturnValues="ALL_OLD",
        )
        old = response.get("Attributes") or {}
        user = user_from_item(psid, old)
        first_seen = user.first_seen or stamp
        return replace(user, first_seen=first_seen, active_at=stamp), "first_seen" not in old

    def get_user(self, psid: str) -> User | None:
        item = self._db.get_item(
            TableName=self._table, Key=_key(psid, "PROFILE"), ConsistentRead=True
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
            Key=_key(psid, "PROFILE"),
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
        users = []
        for item in response.get("Items", []):
            psid = item[schema.PARTITION_KEY]["S"].removeprefix("USER#")
            users.append(user_from_item(psid, item))
        return users

    def forget_user(self, psid: str) -> int:
        """Delete everything stored about one user, waiting messages included; returns how
        many items went."""
        return sum(self._delete_partition(pk) for pk in (_user_pk(psid), inbox_pk(psid)))

    def _delete_partition(self, pk: str) -> int:
        deleted = 0
        start: dict[str, Any] | None = None
        while True:
            page = self._db.query(
                TableName=self._table,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY, "#sk": schema.SORT_KEY},
                ExpressionAttributeValues={":pk": {"S": pk}},
                ProjectionExpression="#pk, #sk",
                **({"ExclusiveStartKey": start} if start else {}),
            )
            for item in page.get("Items", []):
                self._db.delete_item(TableName=self._table, Key=item)
                deleted += 1
            start = page.get("LastEvaluatedKey")
            if not start:
                return deleted

    # -- quota ----------------------------------------------------------------------------

    def take_question(
        self, psid: str, day: str, limit: int | None, expires_at: int, event_id: str
    ) -> bool:
        """Count one question if the user has one left today; atomic under concurrency.

        Idempotent per event: the counter remembers which events it counted, so a write
        sent again (a lost response, a retried attempt) never counts the same one twice.
        """
        if limit is not None and limit <= 0:
            return False
        values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":zero": {"N": "0"},
            ":ttl": {"N": str(expires_at)},
            ":event": {"S": event_id},
            ":events": {"SS": [event_id]},
        }
        condition = "NOT contains(#events, :event)"
        if limit is not None:
            condition += " AND (attribute_not_exists(#count) OR #count < :limit)"
            values[":limit"] = {"N": str(limit)}
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(psid, f"DAY#{day}"),
                UpdateExpression="SET #count = if_not_exists(#count, :zero) + :one, #ttl = :ttl "
                "ADD #events :events",
                ConditionExpression=condition,
                ExpressionAttributeNames={
                    "#count": "count",
                    "#ttl": schema.TTL_ATTRIBUTE,
                    "#events": "events",
                },
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if schema.is_condition_failure(error):
                return event_id in self._counted_events(psid, day)
            raise
        return True

    def _counted_events(self, psid: str, day: str) -> set[str]:
        item = self._db.get_item(
            TableName=self._table,
            Key=_key(psid, f"DAY#{day}"),
            ConsistentRead=True,
            ProjectionExpression="#events",
            ExpressionAttributeNames={"#events": "events"},
        ).get("Item", {})
        return set(item.get("events", {}).get("SS", []))

    def give_back_question(self, psid: str, day: str, event_id: str) -> None:
        """Undo ``take_question`` when the user got no answer; idempotent too."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(psid, f"DAY#{day}"),
                UpdateExpression="SET #count = #count - :one DELETE #events :events",
                ConditionExpression="contains(#events, :event) AND #count > :zero",
                ExpressionAttributeNames={"#count": "count", "#events": "events"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":zero": {"N": "0"},
                    ":event": {"S": event_id},
                    ":events": {"SS": [event_id]},
                },
            )
        except ClientError as error:
            if not schema.is_condition_failure(error):
                raise

    def questions_used(self, psid: str, day: str) -> int:
        item = self._db.get_item(
            TableName=self._table, Key=_key(psid, f"DAY#{day}"), ConsistentRead=True
        ).get("Item")
        return int(item["count"]["N"]) if item else 0

    def usage(self, user: User, day: str, default_limit: int) -> Usage:
        return Usage(
            self.questions_used(user.psid, day),
            effective_limit(user.status, user.daily_limit, default_limit),
        )

    # -- conversation ---------------------------------------------------------------------

    def load_history(self, psid: str) -> list[dict[str, str]]:
        item = self._db.get_item(TableName=self._table, Key=_key(psid, "HISTORY")).get("Item")
        if not item:
            return []
        expires = int(item.get(schema.TTL_ATTRIBUTE, {}).get("N", "0"))
        if expires and expires < time.time():
            return []  # TTL deletes late; an expired conversation is already forgotten
        try:
            turns = json.loads(item["turns"]["S"])
        except (KeyError, json.JSONDecodeError):
            return []
        return [t for t in turns if isinstance(t, dict) and {"role", "content"} <= t.keys()]

    def save_history(self, psid: str, turns: list[dict[str, str]], expires_at: int) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                **_key(psid, "HISTORY"),
                "turns": {"S": json.dumps(turns, ensure_ascii=False)},
                schema.TTL_ATTRIBUTE: {"N": str(expires_at)},
            },
        )

    def clear_history(self, psid: str) -> None:
        self._db.delete_item(TableName=self._table, Key=_key(psid, "HISTORY"))
