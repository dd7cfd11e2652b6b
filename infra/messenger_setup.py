"""Messenger's side of a bridge as Pulumi resources: the app's webhook subscription, the page's
subscription to the app and the page's Messenger profile, each set through the Graph API.

They are dynamic resources (``pulumi.dynamic``: Python that Pulumi runs itself, no plugin to
install) with a real create, update and delete:

- ``diff`` compares the old and new inputs, secrets included, and calls nothing, so a preview
  makes no Graph call; ``update`` calls only for what changed (a new greeting is one profile
  call) and ``delete`` undoes what ``create`` did.
- The secrets (app secret, page token, verify token) arrive as secret inputs and stay secret
  outputs (``delete`` needs them). The token rides in the Authorization header and a secret
  only in a request body, never in a URL, and every error message is scrubbed of them. A
  failed call raises ``MessengerSetupError``, one readable line naming the call, Graph's code
  and message, and the fix (Pulumi prints it under the provider's traceback, which shows
  code lines, never values, and no chained exception).

The provider module is imported by Pulumi's dynamic-provider process too: it has no side
effect and needs nothing but the standard library and ``pulumi``.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult
from pulumi.runtime import rpc

# The webhook fields the bridge takes, for the app and for the page. message_echoes (the page's
# own outgoing messages, also those someone types in the Page Inbox) is human takeover: a
# reply typed by hand pauses the bot for that person (handler/takeover.py).
WEBHOOK_FIELDS = ("messages", "messaging_postbacks", "messaging_referrals", "message_echoes")
WEBHOOK_OBJECT = "page"
# Meta calls the function's verify challenge inside the subscription call, cold start included.
TIMEOUT_SECONDS = 60.0
PROVIDER_KEY = "__provider"
HIDDEN = "[secret]"
# Graph's rate-limit codes: application, user, page, and the API's own (613).
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
# The permission(s) Graph names as missing, in its several wordings: "(#200) Requires
# pages_messaging permission to manage the object", "requires the 'pages_messaging'
# permission", "(#200) ... one of these permissions is needed: pages_messaging" and "requires
# one of the permissions: pages_manage_metadata, pages_messaging".
_NAME = r"[a-z]+(?:_[a-z]+)+"  # pages_messaging, pages_manage_metadata
_PERMISSION = re.compile(
    rf"\brequires (?:the )?'?(?P<one>{_NAME})'? permission\b"
    rf"|\bpermissions?\b[^:.]*:\s*(?P<some>{_NAME}(?:\s*(?:,|\bor\b|\band\b)\s*{_NAME})*)",
    re.IGNORECASE,
)


class MessengerSetupError(Exception):
    """A Graph call of the set-up failed. The message is for the owner and holds no secret."""


@dataclass(frozen=True)
class GraphClient:
    """Just enough of a Graph API client: one call, errors made readable and secret-free."""

    base_url: str  # with the version: https://graph.facebook.com/v26.0
    token: str
    token_label: str  # "the page token", for messages
    fix: str  # what the owner runs to give a new token
    secrets: tuple[str, ...] = ()  # values no message may show (the token is one)

    def call(
        self,
        method: str,
        path: str,
        purpose: str,
        *,
        query: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        """``method /path``; ``query`` holds nothing secret (it is part of the URL), a secret
        goes in ``form`` or ``body``. Raises MessengerSetupError."""
        call = f"{method} /{path}"
        url = f"{self.base_url.rstrip('/')}/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, _read(error)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            host = urllib.parse.urlsplit(self.base_url).netloc
            raise self._error(call, purpose, f"cannot reach {host}: {reason}") from None
        try:
            payload = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            text = raw[:200].decode("utf-8", "replace")
            raise self._error(call, purpose, f"HTTP {status}, not Graph's JSON: {text!r}")
        error = payload.get("error")
        if status >= 400 or isinstance(error, dict):
            explained = self.explain(error if isinstance(error, dict) else {}, status)
            raise self._error(call, purpose, explained)
        if payload.get("success") is False:
            raise self._error(call, purpose, f"Graph answered {payload!r}")
        return payload

    def explain(self, error: Mapping[str, Any], status: int) -> str:
        """Graph's error as the owner needs it: what is wrong and what to do."""
        code, subcode = error.get("code"), error.get("error_subcode")
        message = str(error.get("message") or f"HTTP {status}")
        said = f"(Graph error {code}{f'/{subcode}' if subcode else ''}) {message.rstrip('.')}"
        permission = _PERMISSION.search(message)
        if permission:
            names = re.findall(_NAME, permission["one"] or permission["some"], re.IGNORECASE)
            lacks = names[0] if len(names) == 1 else f"one of {', '.join(names)}"
            return (
                f"{self.token_label} lacks {lacks}: {said}. Give the token that "
                f"permission (docs/DEPLOY.md) and run `{self.fix}`"
            )
        if code == 190:
            return f"{self.token_label} is invalid or expired: {said}. Run `{self.fix}`"
        if code in RATE_LIMIT_CODES:
            return (
                f"rate limited by Meta: {said}. Try again in ten minutes (Messenger allows 10 "
                "profile calls per 10 minutes per page)"
            )
        if code == 2200:
            return (
                f"Meta could not verify the webhook: {said}. The function must answer the "
                "verify challenge with the stack's verifyToken: see its logs"
            )
        return said

    def _error(self, call: str, purpose: str, why: str) -> MessengerSetupError:
        said = f"Messenger set-up: {call} ({purpose}) failed: {why}"
        return MessengerSetupError(self.scrub(said))

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced, the longest first (one may hold another)."""
        for secret in sorted({self.token, *self.secrets}, key=len, reverse=True):
            if secret:
                text = text.replace(secret, HIDDEN)
        return text


def _read(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read()
    except OSError:
        return b""


def _plain(value: Any) -> Any:
    """A property as plain Python: secret wrappers removed, recursively."""
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """What the resource was declared with: the serialized provider left out."""
    return {k: _plain(v) for k, v in props.items() if k != PROVIDER_KEY}


def _changed(old: Mapping[str, Any], new: Mapping[str, Any], keys: Sequence[str]) -> bool:
    return any(old.get(key) != new.get(key) for key in keys)


# DO NOT MOVE OR RENAME this module or the three provider classes below. Pulumi stores each
# resource's provider in the stack's state (the `__provider` input: dill's pickle of it, which
# names the class by reference, `infra.messenger_setup.<Class>`), and every later `pulumi up`,
# refresh or `pulumi destroy` loads it from there in its dynamic-provider process, started in
# the project's root directory: a moved or renamed class fails them all with
# ModuleNotFoundError or AttributeError on existing stacks. tests/infra/test_messenger_setup.py
# loads the pickle in a fresh process started from the root, as Pulumi does.
class _GraphProvider(ResourceProvider):
    """The diff all three share: any input that differs is a change (secrets compared as
    values, never shown); one naming another Graph object replaces the resource."""

    replace_on: tuple[str, ...] = ()

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = _inputs(olds), _inputs(news)
        changed = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
        replaces = [key for key in changed if key in self.replace_on]
        return DiffResult(changes=bool(changed), replaces=replaces)


def app_client(props: Mapping[str, Any]) -> GraphClient:
    """Calls with the app access token, ``{app-id}|{app-secret}``."""
    secret = str(props["app_secret"])
    return GraphClient(
        str(props["graph_api_url"]),
        f"{props['app_id']}|{secret}",
        "the app token ({app-id}|{app-secret})",
        "pulumi config set --secret appSecret",
        (secret, str(props.get("verify_token") or "")),
    )


def page_client(props: Mapping[str, Any]) -> GraphClient:
    return GraphClient(
        str(props["graph_api_url"]),
        str(props["page_access_token"]),
        "the page token",
        "pulumi config set --secret pageAccessToken",
    )


class WebhookSubscriptionProvider(_GraphProvider):
    """``/{app-id}/subscriptions``: Meta delivers the page's events to the callback URL."""

    replace_on = ("app_id", "object")

    def create(self, props: dict[str, Any]) -> CreateResult:
        p = _inputs(props)
        self._subscribe(p)
        return CreateResult(f"{p['app_id']}/subscriptions/{p['object']}", p)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old, new = _inputs(olds), _inputs(news)
        # A new app secret alone changes nothing at Meta: it is only how the call signs. A new
        # Graph version subscribes again: Meta delivers in the version that subscribed.
        if _changed(old, new, ("graph_api_url", "callback_url", "verify_token", "fields")):
            self._subscribe(new)  # adds fields to those subscribed
            dropped = [field for field in old["fields"] if field not in new["fields"]]
            if dropped:
                app_client(new).call(
                    "DELETE",
                    f"{new['app_id']}/subscriptions",
                    "dropping webhook fields",
                    query={"object": new["object"], "fields": ",".join(dropped)},
                )
        return UpdateResult(new)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        p = _inputs(props)
        app_client(p).call(
            "DELETE",
            f"{p['app_id']}/subscriptions",
            "removing the app's webhook",
            query={"object": p["object"]},
        )

    @staticmethod
    def _subscribe(p: Mapping[str, Any]) -> None:
        # Meta calls the callback's verify challenge before it answers this.
        app_client(p).call(
            "POST",
            f"{p['app_id']}/subscriptions",
            "subscribing the app's webhook to the function",
            form={
                "object": p["object"],
                "callback_url": p["callback_url"],
                "verify_token": p["verify_token"],
                "fields": ",".join(p["fields"]),
            },
        )


class PageSubscriptionProvider(_GraphProvider):
    """``/{page-id}/subscribed_apps``: the page sends its events to the app's webhook."""

    replace_on = ("page_id", "app_id")

    def create(self, props: dict[str, Any]) -> CreateResult:
        p = _inputs(props)
        self._subscribe(p)
        return CreateResult(f"{p['page_id']}/subscribed_apps/{p['app_id']}", p)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old, new = _inputs(olds), _inputs(news)
        # A new page token alone changes nothing at Meta; the fields are replaced as a whole.
        if _changed(old, new, ("graph_api_url", "fields")):
            self._subscribe(new)
        return UpdateResult(new)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        p = _inputs(props)
        page_client(p).call(
            "DELETE", f"{p['page_id']}/subscribed_apps", "unsubscribing the page from the app"
        )

    @staticmethod
    def _subscribe(p: Mapping[str, Any]) -> None:
        page_client(p).call(
            "POST",
            f"{p['page_id']}/subscribed_apps",
            "subscribing the page to the app's webhook",
            form={"subscribed_fields": ",".join(p["fields"])},
        )


class MessengerProfileProvider(_GraphProvider):
    """``/me/messenger_profile``: Get Started, greeting, ice breakers, persistent menu. One call
    sets them all (Messenger allows ten profile calls per ten minutes per page)."""

    replace_on = ("page_id",)

    def create(self, props: dict[str, Any]) -> CreateResult:
        p = _inputs(props)
        self._set(p)
        return CreateResult(f"{p['page_id']}/messenger_profile", p)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old, new = _inputs(olds), _inputs(news)
        # A new page token alone changes nothing at Meta.
        if _changed(old, new, ("graph_api_url", "profile")):
            self._set(new)
            dropped = sorted(set(old["profile"]) - set(new["profile"]))
            if dropped:
                page_client(new).call(
                    "DELETE",
                    "me/messenger_profile",
                    "removing dropped profile fields",
                    body={"fields": dropped},
                )
        return UpdateResult(new)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        p = _inputs(props)
        page_client(p).call(
            "DELETE",
            "me/messenger_profile",
            "removing the page's Messenger profile",
            body={"fields": sorted(p["profile"])},
        )

    @staticmethod
    def _set(p: Mapping[str, Any]) -> None:
        purpose = "setting the page's Messenger profile"
        page_client(p).call("POST", "me/messenger_profile", purpose, body=p["profile"])


def _options(
    opts: pulumi.ResourceOptions | None, secret_outputs: Sequence[str]
) -> pulumi.ResourceOptions:
    """The caller's options, with the outputs that carry secrets marked secret."""
    return pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(additional_secret_outputs=list(secret_outputs))
    )


class WebhookSubscription(Resource, module="messenger", name="WebhookSubscription"):
    """The app's webhook for pages: Meta verifies ``callback_url`` with ``verify_token`` during
    the create, so the function and its public URL must exist first (``depends_on``)."""

    SECRETS = ("app_secret", "verify_token")

    def __init__(
        self,
        name: str,
        *,
        graph_api_url: pulumi.Input[str],
        app_id: pulumi.Input[str],
        app_secret: pulumi.Input[str],
        callback_url: pulumi.Input[str],
        verify_token: pulumi.Input[str],
        fields: Sequence[str] = WEBHOOK_FIELDS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "graph_api_url": graph_api_url,
            "app_id": app_id,
            "app_secret": pulumi.Output.secret(app_secret),
            "object": WEBHOOK_OBJECT,
            "callback_url": callback_url,
            "verify_token": pulumi.Output.secret(verify_token),
            "fields": list(fields),
        }
        super().__init__(WebhookSubscriptionProvider(), name, props, _options(opts, self.SECRETS))


class PageSubscription(Resource, module="messenger", name="PageSubscription"):
    """The page subscribed to the app (the page token needs ``pages_manage_metadata``)."""

    SECRETS = ("page_access_token",)

    def __init__(
        self,
        name: str,
        *,
        graph_api_url: pulumi.Input[str],
        app_id: pulumi.Input[str],
        page_id: pulumi.Input[str],
        page_access_token: pulumi.Input[str],
        fields: Sequence[str] = WEBHOOK_FIELDS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "graph_api_url": graph_api_url,
            "app_id": app_id,
            "page_id": page_id,
            "page_access_token": pulumi.Output.secret(page_access_token),
            "fields": list(fields),
        }
        super().__init__(PageSubscriptionProvider(), name, props, _options(opts, self.SECRETS))


class MessengerProfile(Resource, module="messenger", name="MessengerProfile"):
    """The page's whole Messenger profile (``handler.profile.messenger_profile``)."""

    SECRETS = ("page_access_token",)

    def __init__(
        self,
        name: str,
        *,
        graph_api_url: pulumi.Input[str],
        page_id: pulumi.Input[str],
        page_access_token: pulumi.Input[str],
        profile: Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "graph_api_url": graph_api_url,
            "page_id": page_id,
            "page_access_token": pulumi.Output.secret(page_access_token),
            "profile": dict(profile),
        }
        super().__init__(MessengerProfileProvider(), name, props, _options(opts, self.SECRETS))
