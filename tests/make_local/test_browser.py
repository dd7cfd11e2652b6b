"""The chat page in headless Chromium: chat, go over the limit, let the user in as Owner.

Chromium is Debian's ``chromium`` (``.ci/run`` installs it), driven by Playwright for Python
through ``executable_path``: no browser download. A missing Chromium fails, never skips.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.make_local.conftest import FAST, LocalProcess, running_local

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


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.fail(
            "Chromium is not installed: run `apt-get install -y chromium` (.ci/run does it); "
            "the browser tests drive Debian's chromium through Playwright's executable_path."
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site() -> Iterator[LocalProcess]:
    # A little model latency, so the typing indicator is there to be seen.
    with running_local(*FAST, "--daily-limit", "2", "--model-latency", "0.3") as process:
        yield process


@pytest.fixture
def page(browser: Browser, site: LocalProcess, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site.url)
    expect(page.get_by_label("Message")).to_be_enabled()  # a person is chosen, history shown
    try:
        yield page
    except BaseException:
        page.screenshot(path=tmp_path / "failure.png")
        raise
    finally:
        page.screenshot(path=tmp_path / "last.png")
        context.close()
    assert errors == [], f"the page raised: {errors}"


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


def last_reply(page: Page):
    return page.locator(".msg.bot").last


def test_chat_go_over_the_limit_and_the_owner_lets_the_user_in(page: Page):
    expect(page.get_by_role("note")).to_contain_text(
        "Offline echo model: set OPENAI_API_KEY for real answers."
    )
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

    say(page, "One more, please")
    expect(last_reply(page)).to_contain_text(
        "You've used your 2 questions for today.", timeout=REPLY_TIMEOUT_MS
    )

    page.get_by_role("button", name="Switch to Owner").click()
    expect(page.locator("#quota")).to_have_text("Owner: no daily limit")
    notice = page.locator(".card").filter(has_text=f"New user {psid} wrote for the first time")
    expect(notice).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    notice.get_by_role("button", name="Allow unlimited").click()
    expect(last_reply(page)).to_contain_text(
        f"Done. {psid}: unlimited, no limit", timeout=REPLY_TIMEOUT_MS
    )

    page.locator(f'.person[data-psid="{psid}"]').click()
    expect(page.locator(f'.person[data-psid="{psid}"] .badge')).to_have_text("Unlimited")
    expect(page.locator(".msg.bot")).to_have_count(3)  # the conversation is still there
    say(page, "Am I back?")
    expect(last_reply(page)).to_contain_text("Echo: Am I back?", timeout=REPLY_TIMEOUT_MS)


def test_a_long_answer_comes_as_several_bubbles_and_buttons_send_postbacks(page: Page):
    new_user(page)
    expect(page.get_by_role("button", name="Get Started")).to_be_visible()
    page.get_by_role("button", name="Get Started").click()
    expect(last_reply(page)).to_contain_text("Ask me anything", timeout=REPLY_TIMEOUT_MS)

    say(page, "Could I have a long answer?")
    expect(page.locator(".msg.bot")).to_have_count(4, timeout=REPLY_TIMEOUT_MS)
    expect(page.locator(".msg.bot").nth(2)).to_contain_text("second bubble of three")

    page.get_by_role("button", name="Menu").click()
    page.get_by_role("menuitem", name="Questions left today").click()
    expect(last_reply(page)).to_contain_text(
        "Today you've asked 1 of 2 questions; 1 left.", timeout=REPLY_TIMEOUT_MS
    )
