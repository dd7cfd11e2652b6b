"""The Messenger set-up's dynamic providers, called as Pulumi's engine calls them, against the
Messenger simulator (a real HTTP server) and a callback that answers Meta's verify challenge
the way the handler does (``handler.webhook.verify_challenge``).

Each test checks the exact Graph calls: what a create, an update and a destroy send, and that
a diff (all a preview does) sends nothing.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from handler import profile
from handler.events import HttpRequest
from handler.webhook import verify_challenge
from infra.messenger_setup import (
    HIDDEN,
    PROVIDER_KEY,
    WEBHOOK_FIELDS,
    GraphClient,
    MessengerProfileProvider,
    MessengerSetupError,
    PageSubscriptionProvider,
    WebhookSubscriptionProvider,
)
from local._http import LocalServer, Request, Response
from local.graph import MessengerSimulator
from tests.infra.conftest import SECRETS, VERIFY_TOKEN

APP_ID = "1234567890123"
PAGE_ID = "100000000000001"
APP_SECRET = SECRETS["appSecret"]
PAGE_TOKEN = SECRETS["pageAccessToken"]
APP_TOKEN = f"{APP_ID}|{APP_SECRET}"
ALL_SECRETS = (APP_SECRET, PAGE_TOKEN, VERIFY_TOKEN)
FIELDS = ",".join(WEBHOOK_FIELDS)
ROOT = Path(__file__).resolve().parents[2]  # where Pulumi.yaml is: Pulumi runs from there
PROFILE = profile.messenger_profile(
    {"default": "Hello!", "fr_FR": "Bonjour !"},
    ["What can you do?", "Who made you?"],
    [("Our site", "https://example.com")],
)


class Clock:
    """The simulator's clock, moved by hand (its profile rate limit counts ten minutes)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Callback(LocalServer):
    """The function's URL as far as the verify challenge goes: the handler's own answer."""

    name = "callback"

    def __init__(self, verify_token: str) -> None:
        super().__init__()
        self.verify_token = verify_token
        self.challenges: list[dict[str, str]] = []

    def handle(self, request: Request) -> Response:
        with self._changed:
            self.challenges.append(dict(request.query))
        inbound = HttpRequest(request.method, request.path, request.query, {}, request.body)
        answer = verify_challenge(inbound, self.verify_token)
        return Response(answer["statusCode"], answer["body"].encode(), answer["headers"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def graph(clock: Clock) -> Iterator[MessengerSimulator]:
    simulator = MessengerSimulator(
        PAGE_TOKEN, page_id=PAGE_ID, app_id=APP_ID, app_secret=APP_SECRET, clock=clock
    )
    with simulator:
        yield simulator


@pytest.fixture
def callback() -> Iterator[Callback]:
    with Callback(VERIFY_TOKEN) as server:
        yield server


# --- inputs as the engine hands them over (with the serialized provider) ----------------------


def webhook_props(graph: MessengerSimulator, callback: Callback, **changes: Any) -> dict:
    return {
        "graph_api_url": graph.graph_api_url,
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "object": "page",
        "callback_url": f"{callback.url}/",
        "verify_token": VERIFY_TOKEN,
        "fields": list(WEBHOOK_FIELDS),
        PROVIDER_KEY: "serialized-provider",
        **changes,
    }


def page_props(graph: MessengerSimulator, **changes: Any) -> dict:
    return {
        "graph_api_url": graph.graph_api_url,
        "app_id": APP_ID,
        "page_id": PAGE_ID,
        "page_access_token": PAGE_TOKEN,
        "fields": list(WEBHOOK_FIELDS),
        PROVIDER_KEY: "serialized-provider",
        **changes,
    }


def profile_props(graph: MessengerSimulator, **changes: Any) -> dict:
    return {
        "graph_api_url": graph.graph_api_url,
        "page_id": PAGE_ID,
        "page_access_token": PAGE_TOKEN,
        "profile": PROFILE,
        PROVIDER_KEY: "serialized-provider",
        **changes,
    }


def state(outs: dict[str, Any] | None) -> dict[str, Any]:
    """What the engine keeps and hands back as ``olds``: the outputs and the provider."""
    return {**(outs or {}), PROVIDER_KEY: "serialized-provider"}


def calls(graph: MessengerSimulator, since: int = 0) -> list[tuple[str, str, dict, str | None]]:
    return [(c.method, c.path, c.params, c.access_token) for c in graph.setup_calls[since:]]


def created(graph: MessengerSimulator, callback: Callback) -> dict[str, dict[str, Any]]:
    """All three created in dependency order; their states by resource."""
    webhook = WebhookSubscriptionProvider().create(webhook_props(graph, callback))
    page = PageSubscriptionProvider().create(page_props(graph))
    setup = MessengerProfileProvider().create(profile_props(graph))
    return {"webhook": state(webhook.outs), "page": state(page.outs), "profile": state(setup.outs)}


def assert_no_secret(error: BaseException) -> None:
    """Neither the message nor the traceback Pulumi prints holds a secret."""
    printed = "".join(traceback.format_exception(error))
    for secret in ALL_SECRETS:
        assert secret not in printed
    # No chained exception either (a urllib error would carry the URL and headers).
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


# --- create -----------------------------------------------------------------------------------


def test_create_makes_exactly_the_expected_graph_calls(
    graph: MessengerSimulator, callback: Callback
) -> None:
    webhook = WebhookSubscriptionProvider().create(webhook_props(graph, callback))
    page = PageSubscriptionProvider().create(page_props(graph))
    setup = MessengerProfileProvider().create(profile_props(graph))
    subscription = {
        "object": "page",
        "callback_url": f"{callback.url}/",
        "verify_token": VERIFY_TOKEN,
        "fields": FIELDS,
    }
    assert calls(graph) == [
        ("POST", f"/{APP_ID}/subscriptions", subscription, APP_TOKEN),
        ("POST", f"/{PAGE_ID}/subscribed_apps", {"subscribed_fields": FIELDS}, PAGE_TOKEN),
        ("POST", "/me/messenger_profile", PROFILE, PAGE_TOKEN),
    ]
    # Meta checked the callback during the first call, with the stack's verify token.
    [challenge] = callback.challenges
    assert challenge["hub.mode"] == "subscribe"
    assert challenge["hub.verify_token"] == VERIFY_TOKEN
    assert graph.app_subscriptions["page"]["fields"] == list(WEBHOOK_FIELDS)
    assert graph.subscribed_fields == list(WEBHOOK_FIELDS)
    assert graph.profile == PROFILE
    assert (webhook.id, page.id, setup.id) == (
        f"{APP_ID}/subscriptions/page",
        f"{PAGE_ID}/subscribed_apps/{APP_ID}",
        f"{PAGE_ID}/messenger_profile",
    )
    # The outputs are the inputs (delete needs them); the engine keeps the provider itself.
    assert webhook.outs == {
        k: v for k, v in webhook_props(graph, callback).items() if k != PROVIDER_KEY
    }
    assert PROVIDER_KEY not in page.outs and PROVIDER_KEY not in setup.outs


def test_the_profile_is_one_call_with_every_field(
    graph: MessengerSimulator, callback: Callback
) -> None:
    created(graph, callback)
    [post] = [c for c in graph.setup_calls if c.path.endswith("messenger_profile")]
    assert set(post.params) == {"get_started", "greeting", "ice_breakers", "persistent_menu"}
    assert post.params["get_started"] == {"payload": profile.GET_STARTED}


def test_a_callback_that_does_not_echo_the_challenge_fails_the_create_readably(
    graph: MessengerSimulator,
) -> None:
    with Callback("another-token") as wrong, pytest.raises(MessengerSetupError) as raised:
        WebhookSubscriptionProvider().create(webhook_props(graph, wrong))
    message = str(raised.value)
    assert f"POST /{APP_ID}/subscriptions" in message
    assert "Meta could not verify the webhook" in message and "Graph error 2200" in message
    assert graph.app_subscriptions == {}
    assert_no_secret(raised.value)


# --- diff: what a preview does, without a call ------------------------------------------------


def test_diff_without_a_change_reports_none_and_calls_nothing(
    graph: MessengerSimulator, callback: Callback
) -> None:
    olds = created(graph, callback)
    before = len(graph.setup_calls)
    news = {
        "webhook": webhook_props(graph, callback, **{PROVIDER_KEY: "rebuilt-provider"}),
        "page": page_props(graph),
        "profile": profile_props(graph),
    }
    providers = {
        "webhook": WebhookSubscriptionProvider(),
        "page": PageSubscriptionProvider(),
        "profile": MessengerProfileProvider(),
    }
    for key, provider in providers.items():
        diff = provider.diff("id", olds[key], news[key])
        assert diff.changes is False, key
        assert not diff.replaces, key
    assert len(graph.setup_calls) == before


@pytest.mark.parametrize(
    "provider", [WebhookSubscriptionProvider, PageSubscriptionProvider, MessengerProfileProvider]
)
def test_a_preview_checks_and_diffs_without_any_network(
    provider: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a preview made a network call")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    nowhere = "http://127.0.0.1:9/v26.0"
    olds = {
        "graph_api_url": nowhere,
        "app_id": APP_ID,
        "app_secret": "old-secret",
        "page_id": PAGE_ID,
        "page_access_token": "old-token",
        "fields": ["messages"],
        "profile": {},
    }
    news = {**olds, "app_secret": "new", "page_access_token": "new", "profile": PROFILE}
    news["fields"] = list(WEBHOOK_FIELDS)
    checked = provider().check(state(olds), state(news))
    assert checked.inputs == state(news) and checked.failures == []
    diff = provider().diff("id", state(olds), state(news))
    assert diff.changes is True and diff.replaces == []


def test_diff_compares_secrets_too_and_replaces_for_another_page_or_app() -> None:
    base = {"graph_api_url": "u", "app_id": APP_ID, "page_id": PAGE_ID, "fields": ["messages"]}
    olds = state({**base, "page_access_token": "old-token"})
    token_only = PageSubscriptionProvider().diff(
        "id", olds, state({**olds, "page_access_token": "new"})
    )
    assert (token_only.changes, token_only.replaces) == (True, [])
    other_page = PageSubscriptionProvider().diff("id", olds, state({**olds, "page_id": "42"}))
    assert other_page.changes is True and other_page.replaces == ["page_id"]
    webhook = {"graph_api_url": "u", "app_id": APP_ID, "app_secret": "s", "fields": []}
    other_app = WebhookSubscriptionProvider().diff(
        "id", state(webhook), state({**webhook, "app_id": "99"})
    )
    assert other_app.replaces == ["app_id"]


def test_an_unknown_input_during_a_preview_is_a_change() -> None:
    from pulumi.runtime import rpc

    olds = state({"graph_api_url": "u", "callback_url": "https://old/", "app_id": APP_ID})
    news = state({**olds, "callback_url": rpc.UNKNOWN})
    assert WebhookSubscriptionProvider().diff("id", olds, news).changes is True


# --- update -----------------------------------------------------------------------------------


def test_an_update_that_changes_only_the_greeting_is_one_profile_post(
    graph: MessengerSimulator, callback: Callback
) -> None:
    olds = created(graph, callback)
    before = len(graph.setup_calls)
    greeted = profile.messenger_profile(
        {"default": "Welcome back!", "fr_FR": "Bonjour !"},
        ["What can you do?", "Who made you?"],
        [("Our site", "https://example.com")],
    )
    news = {
        "webhook": webhook_props(graph, callback),
        "page": page_props(graph),
        "profile": profile_props(graph, profile=greeted),
    }
    # The engine updates only what its diff says changed.
    assert (
        WebhookSubscriptionProvider().diff("id", olds["webhook"], news["webhook"]).changes is False
    )
    assert PageSubscriptionProvider().diff("id", olds["page"], news["page"]).changes is False
    provider = MessengerProfileProvider()
    assert provider.diff("id", olds["profile"], news["profile"]).changes is True
    result = provider.update("id", olds["profile"], news["profile"])
    assert calls(graph, before) == [("POST", "/me/messenger_profile", greeted, PAGE_TOKEN)]
    assert graph.profile["greeting"][0] == {"locale": "default", "text": "Welcome back!"}
    assert result.outs["profile"] == greeted
    assert len(callback.challenges) == 1  # the webhook was not touched


def test_an_update_that_drops_the_ice_breakers_posts_then_deletes_them(
    graph: MessengerSimulator, callback: Callback
) -> None:
    olds = created(graph, callback)
    before = len(graph.setup_calls)
    plain = profile.messenger_profile({"default": "Hello!"})
    MessengerProfileProvider().update("id", olds["profile"], profile_props(graph, profile=plain))
    assert calls(graph, before) == [
        ("POST", "/me/messenger_profile", plain, PAGE_TOKEN),
        ("DELETE", "/me/messenger_profile", {"fields": ["ice_breakers"]}, PAGE_TOKEN),
    ]
    assert set(graph.profile) == {"get_started", "greeting", "persistent_menu"}
    assert [g["locale"] for g in graph.profile["greeting"]] == ["default"]


def test_an_update_of_a_token_alone_calls_nothing_and_keeps_the_new_token(
    graph: MessengerSimulator, callback: Callback
) -> None:
    olds = created(graph, callback)
    before = len(graph.setup_calls)
    news = profile_props(graph, page_access_token="rotated-page-token")
    result = MessengerProfileProvider().update("id", olds["profile"], news)
    page = PageSubscriptionProvider().update("id", olds["page"], page_props(graph))
    webhook = WebhookSubscriptionProvider().update(
        "id", olds["webhook"], webhook_props(graph, callback, app_secret="rotated-secret")
    )
    assert calls(graph, before) == []
    assert result.outs["page_access_token"] == "rotated-page-token"  # delete will use it
    assert page.outs["page_access_token"] == PAGE_TOKEN
    assert webhook.outs["app_secret"] == "rotated-secret"


def test_an_update_that_drops_a_webhook_field_resubscribes_then_removes_it(
    graph: MessengerSimulator, callback: Callback
) -> None:
    olds = created(graph, callback)
    before = len(graph.setup_calls)
    fewer = [f for f in WEBHOOK_FIELDS if f != "message_echoes"]
    WebhookSubscriptionProvider().update(
        "id", olds["webhook"], webhook_props(graph, callback, fields=fewer)
    )
    PageSubscriptionProvider().update("id", olds["page"], page_props(graph, fields=fewer))
    subscription = {
        "object": "page",
        "callback_url": f"{callback.url}/",
        "verify_token": VERIFY_TOKEN,
        "fields": ",".join(fewer),
    }
    assert calls(graph, before) == [
        ("POST", f"/{APP_ID}/subscriptions", subscription, APP_TOKEN),
        (
            "DELETE",
            f"/{APP_ID}/subscriptions",
            {"object": "page", "fields": "message_echoes"},
            APP_TOKEN,
        ),
        ("POST", f"/{PAGE_ID}/subscribed_apps", {"subscribed_fields": ",".join(fewer)}, PAGE_TOKEN),
    ]
    assert graph.app_subscriptions["page"]["fields"] == fewer
    assert graph.subscribed_fields == fewer


def test_a_new_verify_token_is_verified_again(graph: MessengerSimulator) -> None:
    with Callback(VERIFY_TOKEN) as first:
        olds = state(WebhookSubscriptionProvider().create(webhook_props(graph, first)).outs)
    with Callback("a-new-verify-token") as second:
        news = webhook_props(graph, second, verify_token="a-new-verify-token")
        WebhookSubscriptionProvider().update("id", olds, news)
        assert second.challenges[0]["hub.verify_token"] == "a-new-verify-token"
        assert graph.app_subscriptions["page"]["callback_url"] == f"{second.url}/"


# --- destroy ----------------------------------------------------------------------------------


def test_destroy_removes_the_profile_unsubscribes_the_page_and_deletes_the_webhook(
    graph: MessengerSimulator, callback: Callback
) -> None:
    olds = created(graph, callback)
    before = len(graph.setup_calls)
    # Pulumi deletes dependents first: the profile, the page's subscription, the webhook.
    MessengerProfileProvider().delete("id", olds["profile"])
    PageSubscriptionProvider().delete("id", olds["page"])
    WebhookSubscriptionProvider().delete("id", olds["webhook"])
    every_field = sorted(PROFILE)
    assert calls(graph, before) == [
        ("DELETE", "/me/messenger_profile", {"fields": every_field}, PAGE_TOKEN),
        ("DELETE", f"/{PAGE_ID}/subscribed_apps", {}, PAGE_TOKEN),
        ("DELETE", f"/{APP_ID}/subscriptions", {"object": "page"}, APP_TOKEN),
    ]
    assert graph.profile == {}
    assert graph.subscribed_fields is None
    assert graph.app_subscriptions == {}


# --- errors: readable, never a secret ---------------------------------------------------------


def test_a_missing_permission_is_named_without_a_secret(graph: MessengerSimulator) -> None:
    graph.revoke_permission("pages_manage_metadata")
    with pytest.raises(MessengerSetupError) as raised:
        PageSubscriptionProvider().create(page_props(graph))
    message = str(raised.value)
    assert message.startswith(f"Messenger set-up: POST /{PAGE_ID}/subscribed_apps (")
    assert (
        "the page token lacks pages_manage_metadata: (Graph error 200) (#200) Requires" in message
    )
    assert "pulumi config set --secret pageAccessToken" in message
    assert graph.subscribed_fields is None
    assert_no_secret(raised.value)


@pytest.mark.parametrize(
    ("message", "lacks"),
    [
        ("(#200) Requires pages_messaging permission to manage the object", "pages_messaging"),
        (
            "(#200) To subscribe to the messages field, one of these permissions is needed: "
            "pages_messaging",
            "pages_messaging",
        ),
        (
            "(#200) This endpoint requires one of the permissions: pages_manage_metadata",
            "pages_manage_metadata",
        ),
        (
            "(#10) This endpoint requires the 'pages_messaging' permission or the "
            "'Page Public Content Access' feature",
            "pages_messaging",
        ),
        (
            "(#200) One of these permissions is needed: pages_messaging, pages_manage_metadata",
            "one of pages_messaging, pages_manage_metadata",
        ),
    ],
)
def test_every_wording_of_a_missing_permission_names_it_with_the_fix(
    message: str, lacks: str
) -> None:
    client = GraphClient("http://g", PAGE_TOKEN, "the page token", "pulumi config set x")
    said = client.explain({"code": 200, "message": message, "type": "OAuthException"}, 403)
    assert said.startswith(f"the page token lacks {lacks}: (Graph error 200) {message}")
    assert said.endswith(
        "Give the token that permission (docs/DEPLOY.md) and run `pulumi config set x`"
    )


def test_an_error_that_names_no_permission_is_not_taken_for_one() -> None:
    client = GraphClient("http://g", PAGE_TOKEN, "the page token", "fix")
    for message in (
        "(#10) Application does not have permission for this action",
        "(#100) Param fields[0] must be one of {messages, messaging_postbacks}",
    ):
        assert "lacks" not in client.explain({"code": 10, "message": message}, 400)


def test_the_rate_limit_says_to_wait_ten_minutes(graph: MessengerSimulator, clock: Clock) -> None:
    provider = MessengerProfileProvider()
    for _ in range(10):
        provider.create(profile_props(graph))
    with pytest.raises(MessengerSetupError) as raised:
        provider.create(profile_props(graph))
    message = str(raised.value)
    assert "POST /me/messenger_profile" in message
    assert "rate limited by Meta: (Graph error 613)" in message
    assert "Try again in ten minutes" in message
    assert_no_secret(raised.value)
    clock.now += 600
    provider.create(profile_props(graph))


def test_an_invalid_token_says_which_token_and_how_to_replace_it(
    graph: MessengerSimulator, callback: Callback
) -> None:
    with pytest.raises(MessengerSetupError) as raised:
        MessengerProfileProvider().create(
            profile_props(graph, page_access_token="EAAG-revoked-TOKEN")
        )
    assert "the page token is invalid or expired: (Graph error 190)" in str(raised.value)
    with pytest.raises(MessengerSetupError) as raised:
        WebhookSubscriptionProvider().create(
            webhook_props(graph, callback, app_secret="wrong-app-secret")
        )
    message = str(raised.value)
    assert "the app token ({app-id}|{app-secret}) is invalid or expired" in message
    assert "pulumi config set --secret appSecret" in message
    assert "wrong-app-secret" not in message
    assert_no_secret(raised.value)


def test_graph_out_of_reach_is_one_line_without_the_url_or_a_secret() -> None:
    nowhere = {
        "graph_api_url": "http://127.0.0.1:9/v26.0",
        "page_id": PAGE_ID,
        "page_access_token": PAGE_TOKEN,
        "profile": PROFILE,
    }
    with pytest.raises(MessengerSetupError) as raised:
        MessengerProfileProvider().create(state(nowhere))
    assert "cannot reach 127.0.0.1:9" in str(raised.value)
    assert_no_secret(raised.value)


def test_graphs_own_words_are_scrubbed_of_every_secret() -> None:
    client = GraphClient("http://g", PAGE_TOKEN, "the page token", "fix", (VERIFY_TOKEN,))
    said = client.explain({"code": 100, "message": f"bad token {PAGE_TOKEN} {VERIFY_TOKEN}"}, 400)
    error = client._error("POST /me/messenger_profile", "setting", said)
    assert PAGE_TOKEN not in str(error) and VERIFY_TOKEN not in str(error)
    assert str(error).count(HIDDEN) == 2


# --- what the engine stores and runs ----------------------------------------------------------


@pytest.mark.parametrize(
    "provider", [WebhookSubscriptionProvider, PageSubscriptionProvider, MessengerProfileProvider]
)
def test_the_provider_survives_the_engines_serialization(provider: type) -> None:
    """Pulumi pickles the provider into the state and its own process loads it back."""
    loaded = dill.loads(base64.b64decode(serialize_provider(provider())))
    assert type(loaded) is provider


LOAD_PROVIDER = """
import base64, sys
import dill  # what pulumi.dynamic.__main__.get_provider does with the state's __provider
provider = dill.loads(base64.b64decode(sys.argv[1]))
print(type(provider).__module__ + "." + type(provider).__qualname__)
"""


def load_in_a_fresh_process(serialized: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A new interpreter, as Pulumi's dynamic-provider process is: nothing of this one's
    imports or sys.path, only its working directory on the path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", LOAD_PROVIDER, serialized],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "provider", [WebhookSubscriptionProvider, PageSubscriptionProvider, MessengerProfileProvider]
)
def test_the_stored_provider_loads_in_a_fresh_process_started_from_the_project_root(
    provider: type, tmp_path: Path
) -> None:
    """The state keeps the provider as a reference to ``infra.messenger_setup.<class>``:
    Pulumi's own process, started from the project root, must find it there, for every later
    ``pulumi up`` and ``destroy`` of an existing stack. Hence: never move or rename them."""
    serialized = serialize_provider(provider())
    loaded = load_in_a_fresh_process(serialized, ROOT)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == f"infra.messenger_setup.{provider.__name__}"
    # A reference, not a copy of the code: from elsewhere the module is not found.
    elsewhere = load_in_a_fresh_process(serialized, tmp_path)
    assert elsewhere.returncode != 0
    assert "No module named 'infra'" in elsewhere.stderr
