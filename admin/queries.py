"""Reads the bot's ``Store`` has no call for: every user, and counters for many users at once.

All of them are Queries on a key or BatchGetItem, never a Scan: a Scan reads every item of
the table (conversation histories, event records) to find the few the CLI wants. Keys are
built by ``handler.schema`` only, so the CLI reads what the bot writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any

from handler import schema
from handler.store import User
from handler.store import user_from_item as user_from_item  # one parser for profile items

BATCH_GET_MAX_KEYS = 100  # DynamoDB's limit per BatchGetItem


def _pk(psid: str) -> dict[str, str]:
    return {"S": schema.user_pk(psid)}


def day_sort_key(day: date | str) -> str:
    """The counter's sort key for a day; ``schema`` owns its layout."""
    return schema.day_sk(day if isinstance(day, str) else day.isoformat())


class Reader:
    """Read-only access to one table through a boto3 DynamoDB client."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def users(self, limit: int | None = None) -> Iterator[User]:
        """Users by last activity, newest first, page by page from the sparse index."""
        start: dict[str, Any] | None = None
        seen = 0
        while True:
            page = self._db.query(
                TableName=self._table,
                IndexName=schema.USERS_INDEX,
                KeyConditionExpression="#entity = :user",
                ExpressionAttributeNames={"#entity": schema.USERS_INDEX_PARTITION_KEY},
                ExpressionAttributeValues={":user": {"S": schema.USER_ENTITY}},
                ScanIndexForward=False,
                **({"Limit": limit - seen} if limit is not None else {}),
                **({"ExclusiveStartKey": start} if start else {}),
            )
            for item in page.get("Items", []):
                psid = schema.psid_of(item[schema.PARTITION_KEY]["S"])
                yield user_from_item(psid, item)
                seen += 1
            start = page.get("LastEvaluatedKey")
            if not start or (limit is not None and seen >= limit):
                return

    def counts_on(
        self, psids: Iterable[str], day: str, on_batch: Callable[[int], None] | None = None
    ) -> dict[str, int]:
        """Each user's count on one day, 100 users per request; absent users counted 0."""
        wanted = list(dict.fromkeys(psids))
        counts = dict.fromkeys(wanted, 0)
        for first in range(0, len(wanted), BATCH_GET_MAX_KEYS):
            keys = [schema.counter_key(p, day) for p in wanted[first : first + BATCH_GET_MAX_KEYS]]
            for item in self._batch_get(keys):
                psid = schema.psid_of(item[schema.PARTITION_KEY]["S"])
                counts[psid] = int(item.get("count", {}).get("N", "0"))
            if on_batch:
                on_batch(min(first + BATCH_GET_MAX_KEYS, len(wanted)))
        return counts

    def _batch_get(self, keys: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """BatchGetItem until DynamoDB has answered for every key (it may defer some)."""
        request: dict[str, Any] = {
            self._table: {
                "Keys": keys,
                "ProjectionExpression": "#pk, #count",
                "ExpressionAttributeNames": {"#pk": schema.PARTITION_KEY, "#count": "count"},
            }
        }
        delay = 0.05
        while request:
            response = self._db.batch_get_item(RequestItems=request)
            yield from response.get("Responses", {}).get(self._table, [])
            request = response.get("UnprocessedKeys") or {}
            if request:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def counts_between(self, psid: str, first: date, last: date) -> dict[str, int]:
        """One user's counters from ``first`` to ``last`` (inclusive), by ``YYYY-MM-DD``."""
        counts: dict[str, int] = {}
        start: dict[str, Any] | None = None
        while True:
            page = self._db.query(
                TableName=self._table,
                KeyConditionExpression="#pk = :pk AND #sk BETWEEN :first AND :last",
                ExpressionAttributeNames={
                    "#pk": schema.PARTITION_KEY,
                    "#sk": schema.SORT_KEY,
                    "#count": "count",
                },
                ExpressionAttributeValues={
                    ":pk": _pk(psid),
                    ":first": {"S": day_sort_key(first)},
                    ":last": {"S": day_sort_key(last)},
                },
                ProjectionExpression="#sk, #count",
                **({"ExclusiveStartKey": start} if start else {}),
            )
            for item in page.get("Items", []):
                day = schema.day_of(item[schema.SORT_KEY]["S"])
                counts[day] = int(item.get("count", {}).get("N", "0"))
            start = page.get("LastEvaluatedKey")
            if not start:
                return counts

    def sort_keys(self, psid: str) -> list[str]:
        """What is stored about one user (profile, daily counters, history), sort keys only."""
        keys: list[str] = []
        start: dict[str, Any] | None = None
        while True:
            page = self._db.query(
                TableName=self._table,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": schema.PARTITION_KEY, "#sk": schema.SORT_KEY},
                ExpressionAttributeValues={":pk": _pk(psid)},
                ProjectionExpression="#sk",
                **({"ExclusiveStartKey": start} if start else {}),
            )
            keys.extend(item[schema.SORT_KEY]["S"] for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                return keys
