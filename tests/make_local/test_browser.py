"""The chat page in headless Chromium, as a person uses it, at desktop and phone sizes.

The welcome screen (the ice breakers, or Get Started when there are none, as on a real page)
and the persistent menu come from the Messenger profile ``make local`` sets on the
simulator; a chat goes over the limit and the owner lets the person in; the page reads as
Messenger (grouped bubbles with the page's avatar, taps as the person's bubbles, one offline
note); a phone keeps the count of questions left in sight; and "Not delivered" shows whole
when the server is gone.

Chromium is Debian's ``chromium`` (``.ci/run`` installs it), driven by Playwright for Python
through ``executable_path``: no browser download. A missing Chromium fails, never skips.
Screenshots go to ``.cache/test-artifacts/browser/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from handler.profile import DEFAULT_GREETING, GET_STARTED, ICE_BREAKER
from local.model import ECHO_NOTE
from tests.make_local.conftest import FAST, ROOT, ChatApi, LocalProcess, running_local

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPLY_TIMEOUT_MS = 10_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ARTIFACTS = ROOT / ".cache" / "test-artifacts" / "browser"
QUESTION = "What can you do?"  # the site's one ice breaker
WELCOME = "automated assistant"  # in the bot's welcome, whatever the person did first
GREETING = "Hi {{user_first_name}}! Ask us about opening hours."  # the plain site's
LINK = ("Our site", "https://example.com/")  # the plain site's menu link
BLUE = "rgb(8, 102, 255)"  # the person's bubbles (--blue)
WHITE = "rgb(255, 255, 255)"


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.fail(
            "Chromium is not installed: run `apt-get install -y chromium` (.ci/run does it); "
            "the browser tests drive Debian's chromium through Playwright's executable_path."
        )
    return path


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where the screenshots go: git-ignored, emptied of an earlier run's first."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site() -> Iterator[LocalProcess]:
    # A little model latency, so the typing indicator is there to be seen; one ice breaker,
    # which `make local` puts in the page's Messenger profile as the stack would.
    env = {"ICE_BREAKERS": f'["{QUESTION}"]'}
    with running_local(*FAST, "--daily-limit", "2", "--model-latency", "0.3", env=env) as process:
        yield process


@pytest.fixture(scope="module")
def plain_site() -> Iterator[LocalProcess]:
    """A page with no ice breakers: Messenger shows its Get Started button. Its greeting and
    menu link are the stack's settings, which `make local` applies as `pulumi up` does."""
    env = {"GREETING": GREETING, "MENU_LINKS": f'["{LINK[0]}={LINK[1]}"]'}
    with running_local(*FAST, "--model-latency", "0.3", env=env) as process:
        yield process


@contextlib.contextmanager
def open_page(
    browser: Browser, url: str, viewport: dict[str, int], artifacts: Path, name: str
) -> Iterator[Page]:
    """The chat page with a person chosen; a screenshot if the test fails; no script error."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url)
        expect(page.get_by_label("Message")).to_be_enabled()  # a person is chosen, history shown
        yield page
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=artifacts / f"{name}-failure.png")
        raise
    finally:
        context.close()
    assert errors == [], f"the page raised: {errors}"


@pytest.fixture
def page(
    browser: Browser, site: LocalProcess, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    with open_page(browser, site.url, DESKTOP, artifacts, request.node.name) as opened:
        yield opened


@pytest.fixture
def phone(
    browser: Browser, site: LocalProcess, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    with open_page(browser, site.url, PHONE, artifacts, f"{request.node.name}-phone") as opened:
        yield opened


def new_user(page: Page) -> str:
    """Click New user; returns the PSID once the page chats as that person."""
    people = page.locator(".person")
    before = people.count()
    page.get_by_role("button", name="New user").click()
    expect(people).to_have_count(before + 1)
    expect(people.last).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_label("Message")).to_be_enabled()
    psid = people.last.get_attribute("data-psid")
    assert psid
    return psid


def say(page: Page, text: str) -> None:
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")
    expect(page.locator(".msg.me .bubble").last).to_have_text(text)


def watch_typing(page: Page) -> None:
    """Notes whether the typing indicator ever shows: it may be up for a moment only."""
    page.evaluate(
        """() => {
            const typing = document.getElementById("typing");
            window.typingWasShown = false;
            new MutationObserver(() => {
                if (!typing.hidden) window.typingWasShown = true;
            }).observe(typing, { attributes: true });
        }"""
    )


def last_reply(page: Page) -> Locator:
    return page.locator(".msg.bot").last


def style(locator: Locator, *names: str) -> dict[str, str]:
    return locator.evaluate(
        "(el, names) => Object.fromEntries(names.map((n) => [n, getComputedStyle(el)[n]]))",
        list(names),
    )


def assert_persons_bubble(item: Locator, text: str) -> None:
    """The person's own blue bubble with ``text``, as Messenger shows a tap: not an outline."""
    bubble = item.locator(".bubble")
    expect(bubble).to_have_text(text)
    seen = style(bubble, "backgroundColor", "color", "borderTopWidth")
    assert seen == {"backgroundColor": BLUE, "color": WHITE, "borderTopWidth": "0px"}


def classes(locator: Locator) -> set[str]:
    return set(locator.evaluate("(el) => [...el.classList]"))


def box_of(locator: Locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not laid out"
    return box


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


def viewport_box(page: Page) -> dict[str, float]:
    size = page.viewport_size
    assert size is not None
    return {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}


def tapped(site: LocalProcess, psid: str) -> list[dict[str, Any]]:
    """What the page delivered to the webhook for ``psid`` by taps, and the webhook's answer."""
    items = ChatApi(site.base).get("history", psid=psid)["items"]
    return [
        {k: i.get(k) for k in ("kind", "text", "payload", "status")}
        for i in items
        if i["from"] == "user" and i["kind"] != "text"
    ]


# -- first contact --------------------------------------------------------------------------


def test_a_new_person_sees_the_ice_breakers_in_place_of_get_started_and_is_welcomed_first(
    page: Page, site: LocalProcess, artifacts: Path
):
    """With ice breakers set, a real page shows them instead of the Get Started button (API
    ice breakers take precedence): the first tap gets the welcome, then its answer."""
    psid = new_user(page)
    name = page.locator(f'.person[data-psid="{psid}"] .name').inner_text()
    welcome = page.get_by_role("region", name="Welcome screen")
    expect(welcome).to_be_visible()
    # The page's name and avatar, and what the profile `make local` set on the simulator
    # holds: the stack's default greeting, for this person, and the ice breaker.
    expect(welcome.get_by_role("heading")).to_have_text("Local Page")
    expect(welcome.locator(".page-avatar")).to_have_text("LP")
    greeting = DEFAULT_GREETING.replace("{{user_first_name}}", name)
    expect(welcome.locator("#greeting")).to_have_text(greeting)
    expect(welcome.get_by_role("button", name=QUESTION)).to_be_visible()
    expect(welcome.locator("#get-started")).to_be_hidden()
    expect(page.get_by_role("button", name="Menu")).to_be_visible()
    page.screenshot(path=artifacts / "desktop-welcome-ice-breakers.png")

    welcome.get_by_role("button", name=QUESTION).click()
    expect(welcome).to_be_hidden()
    assert_persons_bubble(page.locator(".msg.me").first, QUESTION)
    expect(last_reply(page)).to_contain_text(QUESTION, timeout=REPLY_TIMEOUT_MS)
    bot = page.locator(".msg.bot")
    expect(bot.first).to_contain_text(WELCOME)  # first, and once
    expect(bot.filter(has_text=WELCOME)).to_have_count(1)
    assert tapped(site, psid) == [
        {"kind": "postback", "text": QUESTION, "payload": ICE_BREAKER, "status": 200}
    ]


def test_without_ice_breakers_a_new_person_sees_get_started_and_tapping_it_sends_the_postback(
    browser: Browser, plain_site: LocalProcess, artifacts: Path, request: pytest.FixtureRequest
):
    with open_page(browser, plain_site.url, DESKTOP, artifacts, request.node.name) as page:
        psid = new_user(page)
        name = page.locator(f'.person[data-psid="{psid}"] .name').inner_text()
        welcome = page.get_by_role("region", name="Welcome screen")
        expect(welcome).to_be_visible()
        # The stack's own greeting (GREETING), not the default one.
        expect(welcome.locator("#greeting")).to_have_text(
            GREETING.replace("{{user_first_name}}", name)
        )
        expect(welcome.locator("#ice-breakers")).to_be_hidden()
        expect(welcome.get_by_role("button", name="Get Started")).to_be_visible()
        page.screenshot(path=artifacts / "desktop-get-started.png")

        welcome.get_by_role("button", name="Get Started").click()
        expect(welcome).to_be_hidden()
        assert_persons_bubble(page.locator(".msg.me").first, "Get Started")
        expect(last_reply(page)).to_contain_text(WELCOME, timeout=REPLY_TIMEOUT_MS)
        expect(page.locator(".msg.bot")).to_have_count(1)  # the welcome, once
        assert tapped(plain_site, psid) == [
            {"kind": "postback", "text": "Get Started", "payload": GET_STARTED, "status": 200}
        ]
        # The stack's menu link (MENU_LINKS) after the bot's own items, opening a new tab.
        page.get_by_role("button", name="Menu").click()
        expect(page.get_by_role("menuitem")).to_have_text(
            ["Help", "Usage", "New conversation", "Talk to a person", LINK[0]]
        )
        link = page.get_by_role("menuitem", name=LINK[0])
        expect(link).to_have_attribute("href", LINK[1])
        expect(link).to_have_attribute("target", "_blank")


# -- chatting ---------------------------------------------------------------------------------


def test_chat_go_over_the_limit_and_the_owner_lets_the_user_in(page: Page):
    banner = page.get_by_role("note")
    expect(banner).to_have_text("Offline echo model: set OPENAI_API_KEY for real answers.")
    psid = new_user(page)
    expect(page.locator("#quota")).to_have_text("2 questions left today (of 2)")

    watch_typing(page)
    say(page, "Hello there")
    expect(last_reply(page)).to_contain_text("Echo: Hello there", timeout=REPLY_TIMEOUT_MS)
    assert page.evaluate("window.typingWasShown") is True
    expect(page.locator("#typing")).to_be_hidden()
    say(page, "What is a PSID?")
    expect(last_reply(page)).to_contain_text("Echo: What is a PSID?", timeout=REPLY_TIMEOUT_MS)
    expect(page.locator("#quota")).to_have_text("0 questions left today (of 2)")
    # The welcome first (they did not tap Get Started), once; the offline note once, under
    # the first echo: not under every reply.
    expect(page.locator(".msg.bot").first).to_contain_text(WELCOME)
    expect(page.locator(".msg.bot").filter(has_text=WELCOME)).to_have_count(1)
    expect(page.locator(".msg.bot").filter(has_text=ECHO_NOTE)).to_have_count(1)
    expect(page.locator(".msg.bot").nth(1)).to_contain_text(ECHO_NOTE)

    say(page, "One more, please")
    expect(last_reply(page)).to_contain_text(
        "You've used your 2 questions for today.", timeout=REPLY_TIMEOUT_MS
    )

    page.get_by_role("button", name="Switch to Owner").click()
    expect(page.locator("#quota")).to_have_text("Owner: no daily limit")
    expect(page.locator("#page-reply")).to_be_hidden()  # the owner is not someone to answer
    # Notices wait for the owner's next message (Messenger's 24-hour window), then arrive.
    say(page, "/help")
    notice = page.locator(".card").filter(has_text=f"New user {psid}").last
    expect(notice).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    notice.get_by_role("button", name="Allow unlimited").click()
    assert_persons_bubble(page.locator(".msg.me").last, "Allow unlimited")
    expect(last_reply(page)).to_contain_text(
        f"Done. {psid}: unlimited, no limit", timeout=REPLY_TIMEOUT_MS
    )

    page.locator(f'.person[data-psid="{psid}"]').click()
    expect(page.locator(f'.person[data-psid="{psid}"] .badge')).to_have_text("Unlimited")
    expect(page.locator(".msg.bot")).to_have_count(4)  # the conversation is still there
    expect(page.get_by_role("region", name="Welcome screen")).to_be_hidden()
    say(page, "Am I back?")
    expect(last_reply(page)).to_contain_text("Echo: Am I back?", timeout=REPLY_TIMEOUT_MS)


def test_replying_as_the_page_by_hand_keeps_the_bot_quiet_for_that_person(page: Page):
    psid = new_user(page)
    say(page, "Hello there")
    expect(last_reply(page)).to_contain_text("Echo: Hello there", timeout=REPLY_TIMEOUT_MS)
    reply = page.get_by_label("Reply as the page", exact=False)
    reply.fill("Hi, Anna from the shop here: how can I help?")
    page.get_by_role("button", name="Send as the page").click()
    by_hand = page.locator(".msg.bot.by-hand")
    expect(by_hand).to_contain_text("Anna from the shop", timeout=REPLY_TIMEOUT_MS)
    expect(by_hand).to_contain_text("Sent by hand by the page")
    say(page, "Thanks Anna, one question")
    expect(page.locator(f'.person[data-psid="{psid}"] .badge')).to_have_text(
        "With a person", timeout=REPLY_TIMEOUT_MS
    )
    expect(page.locator("#quota")).to_contain_text("the bot keeps quiet until")
    page.wait_for_timeout(1500)  # the echo model answers in 0.3 s: it would have by now
    expect(page.locator(".msg.bot")).to_have_count(3)  # the welcome, the echo, Anna
    expect(last_reply(page)).to_contain_text("Anna from the shop")


def test_bubbles_are_grouped_with_one_avatar_and_the_menu_sends_its_postbacks(
    page: Page, site: LocalProcess, artifacts: Path
):
    psid = new_user(page)
    say(page, "Could I have a long answer?")
    replies = page.locator(".msg.bot")  # the welcome (a new person), then three bubbles
    expect(replies).to_have_count(4, timeout=REPLY_TIMEOUT_MS)
    expect(replies.first).to_contain_text(WELCOME)
    expect(replies.nth(2)).to_contain_text("second bubble of three")

    # One group of four: the page's avatar by the last one only, tight corners between.
    assert [classes(replies.nth(i)) & {"group-start", "group-end"} for i in range(4)] == [
        {"group-start"},
        set(),
        set(),
        {"group-end"},
    ]
    expect(page.locator(".msg.bot .avatar:visible")).to_have_count(1)
    expect(replies.nth(3).locator(".avatar")).to_be_visible()
    expect(replies.nth(3).locator(".avatar")).to_have_text("LP")
    corners = [
        style(replies.nth(i).locator(".bubble"), "borderTopLeftRadius", "borderBottomLeftRadius")
        for i in range(4)
    ]
    assert corners == [
        {"borderTopLeftRadius": "18px", "borderBottomLeftRadius": "4px"},
        {"borderTopLeftRadius": "4px", "borderBottomLeftRadius": "4px"},
        {"borderTopLeftRadius": "4px", "borderBottomLeftRadius": "4px"},
        {"borderTopLeftRadius": "4px", "borderBottomLeftRadius": "18px"},
    ]
    page.screenshot(path=artifacts / "desktop-conversation.png")

    menu = page.get_by_role("button", name="Menu")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("menuitem")).to_have_text(
        ["Help", "Usage", "New conversation", "Talk to a person"]
    )
    page.screenshot(path=artifacts / "desktop-menu.png")
    page.get_by_role("menuitem", name="Usage").click()
    expect(page.get_by_role("menu")).to_be_hidden()
    assert_persons_bubble(page.locator(".msg.me").last, "Usage")
    expect(last_reply(page)).to_contain_text(
        "Today you've asked 1 of 2 questions; 1 left.", timeout=REPLY_TIMEOUT_MS
    )
    assert tapped(site, psid) == [
        {"kind": "postback", "text": "Usage", "payload": "USAGE", "status": 200}
    ]
    # Two groups of the page's now, each with its avatar.
    expect(page.locator(".msg.bot .avatar:visible")).to_have_count(2)


# -- a phone ----------------------------------------------------------------------------------


def test_on_a_phone_the_questions_left_stay_in_sight_and_the_people_take_little_room(
    phone: Page, artifacts: Path
):
    for _ in range(3):  # enough people to overflow a row
        new_user(phone)
    view = viewport_box(phone)
    quota = phone.locator("#quota")
    expect(quota).to_have_text("2 questions left today (of 2)")
    expect(quota).to_be_visible()
    assert inside(box_of(quota), view)
    assert box_of(phone.locator(".people"))["height"] < view["height"] / 4
    welcome = phone.get_by_role("region", name="Welcome screen")
    expect(welcome.get_by_role("button", name=QUESTION)).to_be_in_viewport()
    expect(welcome.locator("#get-started")).to_be_hidden()  # the ice breaker in its place
    assert inside(box_of(phone.locator("#composer")), view)
    phone.screenshot(path=artifacts / "phone-welcome.png")

    welcome.get_by_role("button", name=QUESTION).click()
    expect(last_reply(phone)).to_contain_text(QUESTION, timeout=REPLY_TIMEOUT_MS)
    expect(quota).to_have_text("1 question left today (of 2)")
    say(phone, "Could I have a long answer?")
    expect(phone.locator(".msg.bot").filter(has_text="second bubble of three")).to_have_count(
        1, timeout=REPLY_TIMEOUT_MS
    )
    expect(last_reply(phone)).to_contain_text("third bubble", timeout=REPLY_TIMEOUT_MS)
    expect(quota).to_have_text("0 questions left today (of 2)")
    assert inside(box_of(quota), view)
    phone.screenshot(path=artifacts / "phone-conversation.png")
    phone.get_by_role("button", name="Menu").click()
    expect(phone.get_by_role("menuitem", name="New conversation")).to_be_in_viewport()
    phone.screenshot(path=artifacts / "phone-menu.png")


# -- the server gone ------------------------------------------------------------------------


def test_not_delivered_shows_whole_when_the_server_is_gone(browser: Browser, artifacts: Path):
    with running_local(*FAST) as gone, contextlib.ExitStack() as pages:
        opened: dict[str, Page] = {}
        for size, viewport in {"desktop": DESKTOP, "phone": PHONE}.items():
            page = pages.enter_context(
                open_page(browser, gone.url, viewport, artifacts, f"not-delivered-{size}")
            )
            new_user(page)
            say(page, "Could I have a long answer?")  # more than a screen of bubbles
            # The welcome (a new person) and the answer's three bubbles.
            expect(page.locator(".msg.bot")).to_have_count(4, timeout=REPLY_TIMEOUT_MS)
            opened[size] = page
        gone.stop()
        for size, page in opened.items():
            say(page, "Are you still there?")
            note = page.locator(".msg.me").last.locator(".note")
            expect(note).to_have_text("Not delivered: the server did not answer")
            expect(note).to_be_in_viewport(ratio=1)
            assert inside(box_of(note), viewport_box(page))
            assert inside(box_of(note), box_of(page.locator("#scroller")))
            page.screenshot(path=artifacts / f"{size}-not-delivered.png")
