"""The bot with its store, claims, messenger, model, photos and voice in memory: what the unit
tests of the conversation rules drive (``tests/unit/test_bot*.py``)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from handler.bot import Attempt, Bot
from handler.events import Inbound
from handler.settings import Settings
from tests.support.fakes import FakeCdn, FakeMessenger, FakeModel, MemoryClaims, MemoryStore

ALICE = "1000000000000001"
BOB = "1000000000000002"
ADMIN = "1000000000009999"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = "2026-11-30"
NOW_MS = int(NOW.timestamp() * 1000)


@dataclass
class World:
    bot: Bot
    store: MemoryStore
    claims: MemoryClaims
    messenger: FakeMessenger
    model: FakeModel
    cdn: FakeCdn

    def handle(self, event: Inbound, receive: int = 1, last: bool = False) -> str:
        return self.bot.handle(event, attempt(receive, last))

    def texts(self, psid: str = ALICE) -> list[str]:
        return self.messenger.texts_to(psid)

    def state(self, event: Inbound) -> str | None:
        item = self.claims.get(event.event_id)
        return item and item["state"]


def attempt(receive: int = 1, last: bool = False, seconds: float = 60) -> Attempt:
    return Attempt(
        owner=uuid.uuid4().hex,
        deadline=time.monotonic() + seconds,
        lease_until_ms=NOW_MS + 60_000,
        receive=receive,
        last=last,
    )


def message(text: str, mid: str | None = None, psid: str = ALICE) -> Inbound:
    return Inbound(mid or f"m_{uuid.uuid4().hex}", psid, "page", NOW_MS - 1000, "text", text)


def postback(payload: str, title: str = "", psid: str = ALICE) -> Inbound:
    return Inbound(f"m_{uuid.uuid4().hex}", psid, "page", NOW_MS - 1000, "postback", title, payload)


def photo(*urls: str, text: str = "", psid: str = ALICE) -> Inbound:
    media = tuple(("image", url) for url in urls)
    return Inbound(f"m_{uuid.uuid4().hex}", psid, "page", NOW_MS - 1000, "image", text, media=media)


def voice(url: str, psid: str = ALICE) -> Inbound:
    return Inbound(
        f"m_{uuid.uuid4().hex}", psid, "page", NOW_MS - 1000, "audio", media=(("audio", url),)
    )


def make_world(**settings: Any) -> World:
    """A bot whose settings are the defaults but for a limit of 3, one owner, and ``settings``;
    ALICE has written before, BOB is new."""
    store = MemoryStore()
    claims = MemoryClaims(store)
    messenger = FakeMessenger()
    model = FakeModel()
    cdn = FakeCdn()
    config = Settings(
        **{"table_name": "t", "daily_limit": 3, "admin_psids": frozenset({ADMIN})} | settings
    )
    bot = Bot(
        config,
        store,  # type: ignore[arg-type]
        claims,  # type: ignore[arg-type]
        messenger,  # type: ignore[arg-type]
        model,
        clock=lambda: NOW,
        transcribe=model.transcribe,
        fetch=cdn,
    )
    store.create_user(ALICE, NOW)
    return World(bot, store, claims, messenger, model, cdn)
