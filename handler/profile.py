"""What a person sees of the page before writing: the Get Started button, the greeting, the ice
breakers and the persistent menu, as one Messenger profile (pure).

The stack applies it through the Graph API (``infra/messenger_setup.py``) and ``make local``
to the Messenger simulator, so the local page shows exactly what a real page will; the bot
answers every payload it names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

GET_STARTED = "GET_STARTED"
ICE_BREAKER = "ICE_BREAKER"  # its title is the question: the bot asks the model that
# Messenger's limits (the profile API refuses more).
GREETING_LIMIT = 160
ICE_BREAKERS_LIMIT = 4
MENU_ITEMS_LIMIT = 20
MENU_TITLE_LIMIT = 30
DEFAULT_LOCALE = "default"
# Shown above Get Started or, when ice breakers are set, above them instead (Meta shows API ice
# breakers in place of the button): it names neither.
DEFAULT_GREETING = (
    "Hi {{user_first_name}}! This page answers with an AI assistant, not a person. Ask me anything."
)
# (title, payload): the menu's own entries, each a command the bot runs (commands.py).
MENU_COMMANDS: tuple[tuple[str, str], ...] = (
    ("Help", "HELP"),
    ("Usage", "USAGE"),
    ("New conversation", "RESET"),
    ("Talk to a person", "HUMAN"),  # /human: the owners are told, the bot keeps quiet
)
FIELDS = ("get_started", "greeting", "ice_breakers", "persistent_menu")


def greeting(texts: Mapping[str, str]) -> list[dict[str, str]]:
    """Per locale, the default first; the default greeting when none is configured."""
    texts = dict(texts) or {DEFAULT_LOCALE: DEFAULT_GREETING}
    texts.setdefault(DEFAULT_LOCALE, DEFAULT_GREETING)
    ordered = [DEFAULT_LOCALE, *sorted(k for k in texts if k != DEFAULT_LOCALE)]
    return [{"locale": locale, "text": texts[locale]} for locale in ordered]


def ice_breakers(questions: Sequence[str]) -> list[dict[str, Any]]:
    if not questions:
        return []
    actions = [{"question": q, "payload": ICE_BREAKER} for q in questions]
    return [{"locale": DEFAULT_LOCALE, "call_to_actions": actions}]


def persistent_menu(links: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = [
        {"type": "postback", "title": title, "payload": payload} for title, payload in MENU_COMMANDS
    ]
    actions += [{"type": "web_url", "title": title, "url": url} for title, url in links]
    return [
        {"locale": DEFAULT_LOCALE, "composer_input_disabled": False, "call_to_actions": actions}
    ]


def messenger_profile(
    greetings: Mapping[str, str] | None = None,
    questions: Sequence[str] = (),
    links: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The whole profile, set in one call (Messenger allows ten profile calls in ten minutes)."""
    profile: dict[str, Any] = {
        "get_started": {"payload": GET_STARTED},
        "greeting": greeting(greetings or {}),
        "persistent_menu": persistent_menu(links),
    }
    if questions:
        profile["ice_breakers"] = ice_breakers(questions)
    return profile


def problems(
    greetings: Mapping[str, str], questions: Sequence[str], links: Sequence[tuple[str, str]]
) -> list[str]:
    """What Messenger would refuse, said before anything is sent (empty when all is well)."""
    found = []
    for locale, text in greetings.items():
        if len(text) > GREETING_LIMIT:
            found.append(f"greeting for {locale} is {len(text)} characters, over {GREETING_LIMIT}")
    if len(questions) > ICE_BREAKERS_LIMIT:
        found.append(f"{len(questions)} ice breakers, over Messenger's {ICE_BREAKERS_LIMIT}")
    if len(MENU_COMMANDS) + len(links) > MENU_ITEMS_LIMIT:
        found.append(f"{len(links)} menu links, over {MENU_ITEMS_LIMIT - len(MENU_COMMANDS)}")
    for title, url in links:
        if len(title) > MENU_TITLE_LIMIT:
            found.append(f"menu title {title!r} is over {MENU_TITLE_LIMIT} characters")
        if not url.startswith("https://"):
            found.append(f"menu link {url!r} must be https")
    return found
