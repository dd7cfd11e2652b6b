"""Each person's inbox: their messages in the order they sent them, drained by one worker.

The webhook posts every event here before it answers Facebook, so a message whose delivery
was acknowledged is always ahead of any message sent after it. Workers then take a short,
renewed lease on the person's inbox and answer what is in it one message at a time: one
person's messages are answered in order, each seeing the exchange before it, while other
people's inboxes are drained in parallel.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from . import schema
from .events import Inbound

# Messages wait here only while a worker gets to them; the expiry bounds how long the text
# of one that is somehow never drained stays stored: past the failure queue's 14 days, so
# that a drain's record replayed in that time still finds its messages.
INBOX_RETENTION = timedelta(days=15)
BATCH_WRITE_MAX = 25  # DynamoDB's BatchWriteItem limit
_ORDER_DIGITS = 16
_UNPROCESSED_RETRIES = 5
MESSAGE_PREFIX = "MSG#"
LOCK_SORT_KEY = "LOCK"
FAILURES_PREFIX = "FAILED#"
# The lease item's own expiry, well after its lease: TTL never deletes a lease in use.
LOCK_EXPIRY_MARGIN_SECONDS = 3600
FAILURE_COUNT_RETENTION = timedelta(hours=12)  # longer than Lambda keeps retrying an event


class InboxError(RuntimeError):
    """DynamoDB kept some writes unprocessed: the events are not all posted."""


def inbox_pk(psid: str) -> str:
    return f"INBOX#{psid}"


def order_of(event: Inbound, arrived_ms: int) -> int:
    """When the person sent it (Facebook's timestamp), or when it arrived if that is unusable."""
    if 0 < event.timestamp < 10**_ORDER_DIGITS:
        return event.timestamp
    return arrived_ms


def in_order(events: Iterable[Inbound], arrived_ms: int | None = None) -> list[Inbound]:
    """The events of one delivery with what orders them written into each: the time (the
    arrival when Facebook's is unusable) and the place among the sender's events of the same
    millisecond. Every later post of one (a retry, a replay) then finds the same entry."""
    arrived_ms = _now_ms() if arrived_ms is None else arrived_ms
    seen: Counter[tuple[str, int]] = Counter()
    ordered = []
    for event in events:
        timestamp = order_of(event, arrived_ms)
        seq = seen[(event.psid, timestamp)]
        seen[(event.psid, timestamp)] += 1
        ordered.append(replace(event, timestamp=timestamp, seq=seq))
    return ordered


def message_sort_key(event: Inbound, arrived_ms: int) -> str:
    """Sorts by send time; the same event always gets the same key, so a redelivery overwrites
    its own entry instead of adding one. Ids are hashed: a key holds at most 1 KB."""
    digest = hashlib.sha256(event.event_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    order = order_of(event, arrived_ms)
    return f"{MESSAGE_PREFIX}{order:0{_ORDER_DIGITS}d}#{event.seq:06d}#{digest}"


@dataclass(frozen=True)
class Entry:
    """One waiting message and how many times a worker has started on it."""

    psid: str
    sort_key: str
    event: Inbound
    tries: int = 0

    @property
    def key(self) -> dict[str, Any]:
        return {
            schema.PARTITION_KEY: {"S": inbox_pk(self.psid)},
            schema.SORT_KEY: {"S": self.sort_key},
        }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _entry_item(event: Inbound, arrived_ms: int) -> dict[str, Any]:
    expires = arrived_ms // 1000 + int(INBOX_RETENTION.total_seconds())
    return {
        schema.PARTITION_KEY: {"S": inbox_pk(event.psid)},
        schema.SORT_KEY: {"S": message_sort_key(event, arrived_ms)},
        "event": {"S": json.dumps(event.to_dict(), ensure_ascii=False)},
        schema.TTL_ATTRIBUTE: {"N": str(expires)},
    }


class Inbox:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    # -- posting (the webhook) ------------------------------------------------------------

    def post(self, events: Iterable[Inbound], arrived_ms: int | None = None) -> None:
        """Store each event in its sender's inbox, in one batch write per 25."""
        arrived_ms = _now_ms() if arrived_ms is None else arrived_ms
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            item = _entry_item(event, arrived_ms)
            # One batch may not name a key twice; the first delivery of an event wins.
            items.setdefault((event.psid, item[schema.SORT_KEY]["S"]), item)
        puts = [{"PutRequest": {"Item": item}} for item in items.values()]
        for start in range(0, len(puts), BATCH_WRITE_MAX):
            self._write(puts[start : start + BATCH_WRITE_MAX])

    def waiting(self, event: Inbound) -> bool:
        """Whether the event is in its sender's inbox now (a consistent read)."""
        key = {
            schema.PARTITION_KEY: {"S": inbox_pk(event.psid)},
            schema.SORT_KEY: {"S": message_sort_key(event, _now_ms())},
        }
        item = self._db.get_item(
            TableName=self._table,
            Key=key,
            ConsistentRead=True,
            ProjectionExpression="#pk",
            ExpressionAttributeNames={"#pk": schema.PARTITION_KEY},
        ).get("Item")
        return item is not None

    def _write(self, requests: list[dict[str, Any]]) -> None:
        pending = {self._table: requests}
        for attempt in range(_UNPROCESSED_RETRIES):
            response = self._db.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(0.02 * 2**attempt)
        raise InboxError(f"{len(pending.get(self._table, []))} events left unprocessed")

    # -- reading (the worker) -------------------------------------------------------------

    def next(self, psid: str) -> Entry | None:
        """The oldest waiting message, read consistently: it may have been posted just now."""
        response = self._db.query(
            TableName=self._table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :messages)",
            ExpressionAttributeNames={"#pk": schema.PARTITION_KEY, "#sk": schema.SORT_KEY},
            ExpressionAttributeValues={
                ":pk": {"S": inbox_pk(psid)},
                ":messages": {"S": MESSAGE_PREFIX},
            },
            ConsistentRead=True,
            Limit=1,
        )
        items = response.get("Items") or []
        if not items:
            return None
        item = items[0]
        return Entry(
            psid=psid,
            sort_key=item[schema.SORT_KEY]["S"],
            event=Inbound.from_dict(json.loads(item["event"]["S"])),
            tries=int(item.get("tries", {}).get("N", "0")),
        )

    def start(self, entry: Entry) -> int | None:
        """Count one more try at this message before it is made; None if it is gone."""
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key=entry.key,
                UpdateExpression="ADD tries :one",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY},
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            if schema.is_condition_failure(error):
                return None
            raise
        return int(response["Attributes"]["tries"]["N"])

    def remove(self, entry: Entry) -> None:
        self._db.delete_item(TableName=self._table, Key=entry.key)

    def note_failure(self, psid: str, request_id: str) -> int:
        """Count a failed attempt of one drain invocation (Lambda keeps the request id across
        its retries); returns how many it has had."""
        expires = _now_ms() // 1000 + int(FAILURE_COUNT_RETENTION.total_seconds())
        response = self._db.update_item(
            TableName=self._table,
            Key={
                schema.PARTITION_KEY: {"S": inbox_pk(psid)},
                schema.SORT_KEY: {"S": f"{FAILURES_PREFIX}{request_id}"},
            },
            UpdateExpression="ADD failures :one SET #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": schema.TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":ttl": {"N": str(expires)},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["failures"]["N"])

    # -- the drain lease --------------------------------------------------------------------

    def _lock_key(self, psid: str) -> dict[str, Any]:
        return {
            schema.PARTITION_KEY: {"S": inbox_pk(psid)},
            schema.SORT_KEY: {"S": LOCK_SORT_KEY},
        }

    def lock(self, psid: str, holder: str, now: datetime, lease: timedelta) -> bool:
        """Become the one worker draining this inbox, unless another holds a live lease."""
        until = now + lease
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self._lock_key(psid),
                    "holder": {"S": holder},
                    "lease_until": {"N": str(int(until.timestamp() * 1000))},
                    schema.TTL_ATTRIBUTE: {
                        "N": str(int(until.timestamp()) + LOCK_EXPIRY_MARGIN_SECONDS)
                    },
                },
                ConditionExpression="attribute_not_exists(#pk) OR lease_until < :now",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY},
                ExpressionAttributeValues={":now": {"N": str(int(now.timestamp() * 1000))}},
            )
        except ClientError as error:
            if not schema.is_condition_failure(error):
                raise
            # botocore sends a write again when its answer was lost: then the lease is ours.
            return self._holder(psid) == holder
        return True

    def renew(self, psid: str, holder: str, until: datetime) -> bool:
        """Extend the lease ``holder`` still has; False if it has lost it."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._lock_key(psid),
                UpdateExpression="SET lease_until = :until, #ttl = :ttl",
                ConditionExpression="holder = :holder",
                ExpressionAttributeNames={"#ttl": schema.TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":until": {"N": str(int(until.timestamp() * 1000))},
                    ":ttl": {"N": str(int(until.timestamp()) + LOCK_EXPIRY_MARGIN_SECONDS)},
                    ":holder": {"S": holder},
                },
            )
        except ClientError as error:
            if schema.is_condition_failure(error):
                return False
            raise
        return True

    def unlock(self, psid: str, holder: str) -> None:
        """Give the lease up, unless it has already passed to another worker."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=self._lock_key(psid),
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": {"S": holder}},
            )
        except ClientError as error:
            if not schema.is_condition_failure(error):
                raise

    def _holder(self, psid: str) -> str | None:
        item = self._db.get_item(
            TableName=self._table, Key=self._lock_key(psid), ConsistentRead=True
        ).get("Item")
        return item["holder"]["S"] if item else None
