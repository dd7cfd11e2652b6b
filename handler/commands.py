"""Pure: which command, if any, a message or postback is, and its checked arguments."""

from __future__ import annotations

from dataclasses import dataclass

from .quota import STATUS_BLOCKED, STATUS_DEFAULT, STATUS_UNLIMITED
from .replies import ADMIN_ACTION_PREFIX

USER_COMMANDS = {"help", "reset", "usage", "start", "delete"}
# Postback payloads of the persistent menu, the Get Started button and the bot's own buttons.
USER_PAYLOADS = {
    "HELP": "help",
    "RESET": "reset",
    "USAGE": "usage",
    "GET_STARTED": "start",
    "DELETE_CONFIRMED": "delete_confirmed",
    "DELETE_CANCELLED": "delete_cancelled",
}
# A quick reply the bot offers (an ice breaker under the welcome) carries its whole question:
# the title a person taps is cut at 20 characters.
ASK_PREFIX = "ASK:"
ADMIN_STATUS_COMMANDS = {
    "unlimited": STATUS_UNLIMITED,
    "default": STATUS_DEFAULT,
    "block": STATUS_BLOCKED,
    "blocked": STATUS_BLOCKED,
}
ADMIN_COMMANDS = {"users", "stats", "limit", "forget", *ADMIN_STATUS_COMMANDS}
MAX_LIMIT = 100_000


@dataclass(frozen=True)
class Command:
    name: str
    psid: str = ""
    number: int | None = None
    error: str = ""  # set when the command is known but its arguments are not right


def _psid(arg: str) -> bool:
    return arg.isdigit() and 5 <= len(arg) <= 32


def _admin(name: str, args: list[str]) -> Command:
    usage = {
        "users": "/users",
        "stats": "/stats",
        "limit": "/limit <psid> <n>",
    }.get(name, f"/{name} <psid>")
    if name in ("users", "stats"):
        return Command(name) if not args else Command(name, error=f"Usage: {usage}")
    if not args or not _psid(args[0]):
        return Command(name, error=f"Usage: {usage} (a PSID is the number in the new-user message)")
    if name == "limit":
        if len(args) != 2 or not args[1].isdigit() or int(args[1]) > MAX_LIMIT:
            return Command(name, error=f"Usage: {usage}, with n a whole number up to {MAX_LIMIT}")
        return Command(name, args[0], int(args[1]))
    if len(args) != 1:
        return Command(name, error=f"Usage: {usage}")
    return Command(name, args[0])


def parse_text(text: str, is_admin: bool) -> Command | None:
    """A ``/command``, or ``None`` for an ordinary question (also admin words from non-admins)."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return None
    name = words[0][1:].lower()
    if name in USER_COMMANDS:
        return Command(name)
    if is_admin and name in ADMIN_COMMANDS:
        return _admin(name, words[1:])
    return None


def asked(text: str, payload: str) -> str:
    """What a tap that is no command asks: the question a quick reply of ours carries, else
    what the person saw (the text or title), else the payload itself."""
    if payload.startswith(ASK_PREFIX) and payload[len(ASK_PREFIX) :].strip():
        return payload[len(ASK_PREFIX) :].strip()
    return text.strip() or payload.strip()


def parse_payload(payload: str, is_admin: bool) -> Command | None:
    """A postback or quick-reply payload; admin buttons only count from admins."""
    if payload in USER_PAYLOADS:
        return Command(USER_PAYLOADS[payload])
    if payload.startswith(ADMIN_ACTION_PREFIX):
        if not is_admin:
            return Command("ignored", error="admin payload from a non-admin")
        _, action, psid = [*payload.split(":", 2), "", ""][:3]
        if action in ("unlimited", "default", "blocked") and _psid(psid):
            return Command("block" if action == "blocked" else action, psid)
        return Command("ignored", error="malformed admin payload")
    return parse_text(payload, is_admin)
