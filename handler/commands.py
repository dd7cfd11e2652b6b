"""Pure: which command, if any, a message or postback is, and its checked arguments; a
command the owner got wrong says why, and how it is written."""

from __future__ import annotations

from dataclasses import dataclass

from .quota import STATUS_BLOCKED, STATUS_DEFAULT, STATUS_UNLIMITED
from .replies import ADMIN_ACTION_PREFIX
from .settings import MAX_PAUSE_MINUTES

USER_COMMANDS = {"help", "reset", "usage", "start", "delete", "human"}
# Postback payloads of the persistent menu, the Get Started button and the bot's own buttons.
USER_PAYLOADS = {
    "HELP": "help",
    "RESET": "reset",
    "USAGE": "usage",
    "HUMAN": "human",
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
ADMIN_COMMANDS = {"users", "stats", "limit", "forget", "pause", "resume", *ADMIN_STATUS_COMMANDS}
# What the owners' buttons do: new users' decisions, and taking a conversation over.
ADMIN_ACTIONS = {"unlimited", "default", "blocked", "pause", "resume"}
MAX_LIMIT = 100_000
USAGE = {
    "users": "/users",
    "stats": "/stats",
    "limit": "/limit <psid> <n>",
    "pause": "/pause <psid> [minutes]",
}
PSID_EXPECTED = "5 to 32 digits expected (the number in a new-user notice, or in /users)"


@dataclass(frozen=True)
class Command:
    name: str
    psid: str = ""
    number: int | None = None
    error: str = ""  # set when the command is known but its arguments are not right


def is_psid(arg: str) -> bool:
    return arg.isascii() and arg.isdigit() and 5 <= len(arg) <= 32


def _word(arg: str) -> str:
    """An argument quoted back in a reply: short, on one line."""
    return repr(arg if len(arg) <= 40 else arg[:39] + "\u2026")


def _refused(name: str, why: str) -> Command:
    return Command(name, error=f"{why}. Usage: {USAGE.get(name, f'/{name} <psid>')}")


def _whole(arg: str, low: int, high: int) -> int | None:
    return int(arg) if arg.isascii() and arg.isdigit() and low <= int(arg) <= high else None


def _counted(
    name: str, psid: str, word: str, what: str, low: int, high: int, note: str = ""
) -> Command:
    """``/name <psid> <number>``, or why the number is refused."""
    number = _whole(word, low, high)
    if number is None:
        return _refused(
            name,
            f"{_word(word)} is not a number of {what}: a whole number from {low} to "
            f"{high:,}{note} expected",
        )
    return Command(name, psid, number)


def _admin(name: str, args: list[str]) -> Command:
    if name in ("users", "stats"):
        if args:
            return _refused(name, f"/{name} takes nothing after it")
        return Command(name)
    if not args:
        return _refused(name, f"/{name} needs a page-scoped id (PSID): {PSID_EXPECTED}")
    if not is_psid(args[0]):
        return _refused(name, f"{_word(args[0])} is not a page-scoped id: {PSID_EXPECTED}")
    psid, rest = args[0], args[1:]
    if name == "limit":
        if len(rest) != 1:
            return _refused(name, "/limit needs a PSID and a number of questions a day")
        return _counted(name, psid, rest[0], "questions", 0, MAX_LIMIT)
    if name == "pause":
        if len(rest) > 1:
            return _refused(name, "/pause takes a PSID and, if you like, minutes")
        if not rest:
            return Command(name, psid)
        return _counted(name, psid, rest[0], "minutes", 1, MAX_PAUSE_MINUTES, " (a week)")
    if rest:
        return _refused(name, f"/{name} takes one PSID, got {len(args)} words")
    return Command(name, psid)


def parse_text(text: str, is_admin: bool) -> Command | None:
    """A ``/command``, or ``None`` for an ordinary question (also admin words from non-admins).
    An owner's unknown command is answered as such, not asked of the model."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return None
    name = words[0][1:].lower()
    if name in USER_COMMANDS:
        return Command(name)
    if is_admin and name in ADMIN_COMMANDS:
        return _admin(name, words[1:])
    if is_admin and name.isascii() and name.isalpha():
        return Command("unknown", error=f"There is no command /{name}. /help lists them.")
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
        if action in ADMIN_ACTIONS and is_psid(psid):
            return Command("block" if action == "blocked" else action, psid)
        return Command("ignored", error="malformed admin payload")
    return parse_text(payload, is_admin)
