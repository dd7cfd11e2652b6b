"""A fake Facebook Graph API: the Messenger Send API, the page's messenger profile, and the
webhook set-up (the app's subscriptions, the page's subscribed apps); and Messenger's CDN,
which hosts the photos and voice messages people send (``host_attachment``).

It answers and fails the way graph.facebook.com does (same paths, same error envelope, same
limits), so the handler's Graph client and the stack's set-up (``infra/messenger_setup.py``)
are tested against the wire format rather than a mock, and it records every call so tests
and the local chat page can see what the bot sent. Subscribing the app's webhook calls the
callback URL's verify challenge, as Meta does, and fails as Meta does when it is not echoed.

With an echo sink (``deliver_echoes``), it sends the page's ``message_echoes`` to the webhook
as Meta does for a page subscribed to them: every message the bot sends comes back with this
app's id and the metadata the bot put on it, and a reply typed by hand in the Page Inbox
(``reply_as_page``) with the Page Inbox's app id and no metadata.
"""

from __future__ import annotations

import json
import queue
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode

from handler import profile as messenger_profile
from handler.settings import DEFAULT_GRAPH_API_VERSION
from local._http import RESET, FaultQueue, LocalServer, Request, Reset, Response, random_token

T = TypeVar("T")

DEFAULT_VERSION = DEFAULT_GRAPH_API_VERSION  # the stack's: the handler calls what it calls
TEXT_LIMIT = 2000
QUICK_REPLY_LIMIT = 13
BUTTON_LIMIT = 3
SENDER_ACTIONS = ("mark_seen", "typing_on", "typing_off")
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
DEFAULT_APP_ID = "100000000000002"
# The Page Inbox's (and the Business Suite app's) app id, on the echoes of replies typed there.
PAGE_INBOX_APP_ID = "263902037430900"
# The generic template's limits: cards in one carousel, characters of a title or subtitle.
ELEMENT_LIMIT = 10
ELEMENT_TEXT_LIMIT = 80
# What a page token generated in the dashboard carries; ``revoke_permission`` takes one away.
PAGE_PERMISSIONS = ("pages_messaging", "pages_manage_metadata", "pages_show_list")
# Messenger allows this many profile writes per page in this many seconds.
PROFILE_CALLS_LIMIT = 10
PROFILE_WINDOW_SECONDS = 600.0
PROFILE_FIELDS = (
    "get_started",
    "greeting",
    "ice_breakers",
    "persistent_menu",
    "whitelisted_domains",
    "account_linking_url",
)
GET_STARTED_PAYLOAD_LIMIT = 1000
# The webhook fields a page subscription may name (Messenger's, and the page feed).
PAGE_WEBHOOK_FIELDS = frozenset(
    {
        "messages",
        "messaging_postbacks",
        "messaging_optins",
        "messaging_referrals",
        "messaging_handovers",
        "messaging_policy_enforcement",
        "messaging_account_linking",
        "message_deliveries",
        "message_reads",
        "message_echoes",
        "message_reactions",
        "standby",
        "feed",
    }
)
WEBHOOK_OBJECTS = ("page", "user", "permissions", "instagram", "whatsapp_business_account")
VERIFY_TIMEOUT_SECONDS = 10.0

Kind = Literal["message", "sender_action"]

_PATH = re.compile(r"^(?:/(?P<version>v\d+\.\d+))?/(?P<node>[^/]+)(?:/(?P<edge>[^/]+))?/?$")

# Default messages of the error codes a Messenger bot meets, as Graph words them.
_ERROR_MESSAGES: dict[int, str] = {
    1: "An unknown error occurred",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) This message is sent outside of allowed window.",
    15: "(#15) This method must be called with an app access_token.",
    100: "(#100) Invalid parameter",
    190: "Invalid OAuth access token.",
    200: "(#200) Requires pages_messaging permission to manage the object",
    551: "(#551) This person isn't available right now.",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    2200: "(#2200) callback verification failed",
}


def missing_permission(permission: str) -> str:
    """Graph's words when the token lacks ``permission``."""
    return f"(#200) Requires {permission} permission to manage the object"


@dataclass(frozen=True)
class SendCall:
    """One request to the Send API, whatever it was answered."""

    psid: str | None
    kind: Kind
    body: dict[str, Any]
    status: int  # 0 when the connection was reset instead of answered
    at: float  # time.monotonic() when received
    access_token: str | None
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class GraphCall:
    """One set-up call: the app's subscriptions, the page's subscribed apps, its profile."""

    method: str
    path: str  # without the version: "/<app-id>/subscriptions", "/me/messenger_profile"
    params: dict[str, Any]  # query and body together, the access token left out
    status: int
    access_token: str | None
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Download:
    """One GET of a hosted attachment: what the worker sent Messenger's CDN."""

    path: str
    query: dict[str, str]
    authorization: str
    status: int


CDN_PREFIX = "/cdn/"


@dataclass(frozen=True)
class OutboxItem:
    """One thing the bot delivered to a person, in the order a chat page should show it."""

    seq: int
    psid: str
    kind: Kind
    message: dict[str, Any] | None  # the Send API ``message`` object, for kind "message"
    action: str | None  # "typing_on", ... for kind "sender_action"
    message_id: str | None
    time: float  # wall clock (time.time()), for display
    by: str = "bot"  # "bot": through the Send API; "page": typed by hand in the Page Inbox

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _GraphFault:
    status: int
    code: int
    subcode: int | None
    message: str
    retry_after: int | None

    def response(self) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return graph_error(self.status, self.code, self.message, self.subcode, headers)


@dataclass(frozen=True)
class _Delay:
    seconds: float


def graph_error(
    status: int,
    code: int,
    message: str,
    subcode: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An answer in Graph's error envelope."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = random_token(11)
    extra = dict(headers or {})
    if code == 190:
        extra["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{message}"'
    return Response.json(status, {"error": error}, extra)


def _param_error(message: str) -> Response:
    return graph_error(400, 100, f"(#100) {message}")


class MessengerSimulator(LocalServer):
    """A stand-in for graph.facebook.com that records every Send API call.

    ``access_token``: the page token the calls must carry (None accepts any, even none).
    ``app_id`` and ``app_secret``: the app whose token, ``{app_id}|{app_secret}``, the app's
    subscriptions take (``app_secret`` None accepts any secret of that app).
    Point the handler at ``graph_api_url`` (``GRAPH_API_URL``).
    """

    name = "graph"

    def __init__(
        self,
        access_token: str | None = None,
        *,
        version: str = DEFAULT_VERSION,
        page_id: str = "100000000000001",
        page_name: str = "Local Page",
        app_id: str = DEFAULT_APP_ID,
        app_secret: str | None = None,
        app_name: str = "Local App",
        profile_calls_limit: int = PROFILE_CALLS_LIMIT,
        profile_window_seconds: float = PROFILE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.access_token = access_token
        self.version = version
        self.page_id = page_id
        self.page_name = page_name
        self.app_id = app_id
        self.app_secret = app_secret
        self.app_name = app_name
        self.profile_calls_limit = profile_calls_limit
        self.profile_window_seconds = profile_window_seconds
        self._clock = clock
        self._calls: list[SendCall] = []
        self._profile_calls: list[dict[str, Any]] = []
        self._profile: dict[str, Any] = {}
        self._profile_writes: deque[float] = deque()
        self._setup_calls: list[GraphCall] = []
        # object -> {"callback_url", "verify_token", "fields"}: the app's webhook subscriptions
        self._app_subscriptions: dict[str, dict[str, Any]] = {}
        self._subscribed_fields: list[str] | None = None  # the page's, for this app
        self._permissions = set(PAGE_PERMISSIONS)
        # app-scoped user id -> this page's PSID, for /{asid}/ids_for_pages
        self._page_scoped_ids: dict[str, str] = {}
        self._outbox: dict[str, list[OutboxItem]] = {}
        self._seq = 0
        self._faults: FaultQueue[_GraphFault | _Delay | Reset] = FaultQueue()
        # Messenger's CDN: token -> (bytes, content type, HTTP status to answer instead)
        self._attachments: dict[str, tuple[bytes, str, int]] = {}
        self._downloads: list[Download] = []
        # message_echoes: delivered in order by one thread, as webhook bodies to the sink.
        self._echo_sink: Callable[[bytes], Any] | None = None
        self._echoes: queue.Queue[bytes | None] = queue.Queue()
        self._echo_thread: threading.Thread | None = None
        self._echoes_sent = 0
        self._echoes_queued = 0

    @property
    def graph_api_url(self) -> str:
        """What the handler's ``GRAPH_API_URL`` should be: base URL plus version."""
        return f"{self.url}/{self.version}"

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        code: int,
        subcode: int | None = None,
        message: str | None = None,
        times: int = 1,
        retry_after: int | None = None,
        *,
        only: Kind | None = None,
        psid: str | None = None,
    ) -> None:
        """Answer the next ``times`` Send API calls with a Graph error.

        ``message`` defaults to Graph's wording for ``code``. ``only`` limits the fault to
        message sends or to sender actions (so typing indicators don't use it up), ``psid``
        to one recipient (so, say, a notice to an admin doesn't either).
        """
        text = message if message is not None else _ERROR_MESSAGES.get(code, _ERROR_MESSAGES[2])
        fault = _GraphFault(status, code, subcode, text, retry_after)
        self._faults.add(fault, times, _target(only, psid))

    def reset_connection_next(
        self, times: int = 1, *, only: Kind | None = None, psid: str | None = None
    ) -> None:
        """Drop the next ``times`` Send API connections after reading the request."""
        self._faults.add(RESET, times, _target(only, psid))

    def delay_next(
        self, seconds: float, times: int = 1, *, only: Kind | None = None, psid: str | None = None
    ) -> None:
        """Stall the next ``times`` Send API calls, then answer normally (client timeouts)."""
        self._faults.add(_Delay(seconds), times, _target(only, psid))

    # -- Messenger's CDN ---------------------------------------------------------------------

    def host_attachment(
        self, data: bytes, content_type: str, name: str = "attachment", *, status: int = 200
    ) -> str:
        """Serve ``data`` at a new URL, as Messenger's CDN serves what people send (a photo,
        a voice message); the webhook's ``payload.url`` is that URL. ``status`` other than
        200 answers that instead (403: the signed URL has expired)."""
        token = random_token(24)
        with self._changed:
            self._attachments[token] = (data, content_type, status)
        return f"{self.url}{CDN_PREFIX}{token}/{name}?oh=sig{random_token(8)}&oe=expiry"

    def expire_attachment(self, url: str) -> None:
        """The URL's signature expires: the CDN answers 403 from now on."""
        token = url.split(CDN_PREFIX, 1)[1].split("/", 1)[0]
        with self._changed:
            data, content_type, _status = self._attachments[token]
            self._attachments[token] = (data, content_type, 403)

    @property
    def downloads(self) -> list[Download]:
        """Every GET of a hosted attachment, in order."""
        with self._changed:
            return list(self._downloads)

    def _cdn(self, request: Request) -> Response:
        token = request.path[len(CDN_PREFIX) :].split("/", 1)[0]
        with self._changed:
            found = self._attachments.get(token)
            status = 404 if found is None else found[2]
            self._downloads.append(
                Download(request.path, dict(request.query), request.header("Authorization"), status)
            )
            self._changed.notify_all()
        if found is None or request.method != "GET":
            return Response(404, b"Not Found", {"Content-Type": "text/plain"})
        data, content_type, status = found
        if status != 200:
            return Response(status, b"URL signature expired", {"Content-Type": "text/plain"})
        return Response(200, data, {"Content-Type": content_type})

    def revoke_permission(self, permission: str) -> None:
        """The page token loses ``permission`` until ``grant_permission`` or ``clear``: the
        calls that need it answer Graph's (#200) error."""
        with self._changed:
            self._permissions.discard(permission)

    def grant_permission(self, permission: str) -> None:
        with self._changed:
            self._permissions.add(permission)

    # -- recordings ------------------------------------------------------------------------

    @property
    def calls(self) -> list[SendCall]:
        """Every Send API call so far, in arrival order (a copy)."""
        with self._changed:
            return list(self._calls)

    @property
    def profile_calls(self) -> list[dict[str, Any]]:
        """Bodies posted to ``/me/messenger_profile``."""
        with self._changed:
            return list(self._profile_calls)

    @property
    def setup_calls(self) -> list[GraphCall]:
        """Every call to the app's subscriptions, the page's subscribed apps and its profile."""
        with self._changed:
            return list(self._setup_calls)

    @property
    def profile(self) -> dict[str, Any]:
        """The page's Messenger profile as it stands (a copy)."""
        with self._changed:
            return json.loads(json.dumps(self._profile))

    @property
    def app_subscriptions(self) -> dict[str, dict[str, Any]]:
        """The app's webhook subscriptions by object: callback URL, verify token, fields."""
        with self._changed:
            return json.loads(json.dumps(self._app_subscriptions))

    @property
    def subscribed_fields(self) -> list[str] | None:
        """The fields the page sends the app, None when the page is not subscribed to it."""
        with self._changed:
            return None if self._subscribed_fields is None else list(self._subscribed_fields)

    @property
    def app_token(self) -> str | None:
        """The app access token the subscriptions take, when the secret is known."""
        return None if self.app_secret is None else f"{self.app_id}|{self.app_secret}"

    def messages_to(self, psid: str) -> list[dict[str, Any]]:
        """The ``message`` objects delivered (answered 200) to ``psid``, as the person sees
        them (the ``metadata`` goes to the app's echo only)."""
        with self._changed:
            return [
                _seen(c.body["message"])
                for c in self._calls
                if c.ok and c.kind == "message" and c.psid == psid
            ]

    def texts_to(self, psid: str) -> list[str]:
        """The texts delivered to ``psid`` (messages without text are left out)."""
        return [m["text"] for m in self.messages_to(psid) if isinstance(m.get("text"), str)]

    def actions_to(self, psid: str) -> list[str]:
        """The sender actions delivered to ``psid``, e.g. ``["mark_seen", "typing_on"]``."""
        with self._changed:
            return [
                c.body["sender_action"]
                for c in self._calls
                if c.ok and c.kind == "sender_action" and c.psid == psid
            ]

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Block until ``predicate()`` is truthy and return its value; TimeoutError if not."""
        return self._wait_for(predicate, timeout, lambda: f"{len(self.calls)} calls recorded")

    def wait_for_texts(self, psid: str, count: int = 1, timeout: float = 5.0) -> list[str]:
        """Block until ``psid`` got at least ``count`` texts; returns all of them."""

        def enough() -> list[str] | None:
            texts = self.texts_to(psid)
            return texts if len(texts) >= count else None

        return self._wait_for(
            enough,
            timeout,
            lambda: f"{psid} got {self.texts_to(psid)!r}, wanted {count} texts",
        )

    def outbox_since(self, psid: str, seq: int = 0) -> list[OutboxItem]:
        """What ``psid`` was sent after sequence number ``seq`` (0 = everything)."""
        with self._changed:
            return [item for item in self._outbox.get(psid, []) if item.seq > seq]

    def wait_outbox(self, psid: str, seq: int = 0, timeout: float = 25.0) -> list[OutboxItem]:
        """Long-poll form of ``outbox_since``: an empty list when nothing came in time.

        Returns at once when the simulator stops, so a page's pending poll never holds it up.
        """
        try:
            self._wait_for(lambda: self.outbox_since(psid, seq) or self._stopping.is_set(), timeout)
        except TimeoutError:
            return []
        return self.outbox_since(psid, seq)

    def clear(self) -> None:
        """Forget recordings, the page's set-up and queued faults (revoked permissions come
        back, the profile's rate limit starts over); sequence numbers keep increasing."""
        with self._changed:
            self._calls.clear()
            self._profile_calls.clear()
            self._profile.clear()
            self._profile_writes.clear()
            self._setup_calls.clear()
            self._app_subscriptions.clear()
            self._subscribed_fields = None
            self._permissions = set(PAGE_PERMISSIONS)
            self._outbox.clear()
            self._faults.clear()
            self._downloads.clear()
            self._changed.notify_all()

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | Reset:
        if request.path.startswith(CDN_PREFIX):
            return self._cdn(request)
        match = _PATH.match(request.path)
        if match is None:
            return graph_error(400, 2500, f"Unknown path components: {request.path}")
        node, edge = match["node"], match["edge"]
        if node != "me" and node != self.page_id and not node.isdigit():
            return graph_error(
                400, 803, f"(#803) Some of the aliases you requested do not exist: {node}"
            )
        if edge == "messages" and node in ("me", self.page_id):
            if request.method != "POST":
                return _unsupported(request.method, node)
            return self._send(request)
        if edge == "messenger_profile" and node in ("me", self.page_id):
            return self._messenger_profile(request, node)
        if edge == "subscriptions" and node not in ("me", self.page_id):
            return self._app_subscriptions_call(request, node)
        if edge == "subscribed_apps" and node in ("me", self.page_id):
            return self._subscribed_apps_call(request, node)
        if edge == "ids_for_pages" and node not in ("me", self.page_id):
            return self._ids_for_pages(request, node)
        if edge is None and request.method == "GET":
            if (denied := self._check_token(_token_of(request, {}))) is not None:
                return denied
            if node in ("me", self.page_id):
                return Response.json(200, {"name": self.page_name, "id": self.page_id})
            return Response.json(200, {"first_name": "Local", "last_name": "User", "id": node})
        if edge is None:
            return _unsupported(request.method, node)
        return graph_error(400, 2500, f"Unknown path components: /{edge}")

    def _send(self, request: Request) -> Response | Reset:
        received = time.monotonic()
        try:
            body = _parse_body(request)
        except ValueError:
            answer = _param_error("Invalid JSON for postbody")
            token = _token_of(request, {})
            self._record(SendCall(None, "message", {}, 400, received, token, _loads(answer)))
            return answer
        token = _token_of(request, body)
        recipient = body.get("recipient")
        psid = str(recipient["id"]) if isinstance(recipient, dict) and "id" in recipient else None
        kind: Kind = "sender_action" if "sender_action" in body else "message"

        fault = self._faults.take((kind, psid))
        if isinstance(fault, _Delay):
            if not self._pause(fault.seconds):
                return RESET
            fault = None
        if isinstance(fault, Reset):
            self._record(SendCall(psid, kind, body, 0, received, token))
            return RESET
        if fault is not None:
            answer = fault.response()
        else:
            answer = (
                self._check_token(token)
                or self._check_permission("pages_messaging")
                or self._validate(body, kind, psid)
            )
        if answer is None:
            answer = self._deliver(body, kind, psid or "")
        self._record(SendCall(psid, kind, body, answer.status, received, token, _loads(answer)))
        return answer

    def _check_token(self, token: str | None) -> Response | None:
        if self.access_token is None or token == self.access_token:
            return None
        return graph_error(400, 190, "Invalid OAuth access token.")

    def _check_page_token(self, token: str | None) -> Response | None:
        """A page token, not the app's: the page's own edges refuse an app token."""
        if token is not None and self._is_app_token(token):
            return graph_error(
                400, 210, "(#210) A page access token is required to request this resource."
            )
        return self._check_token(token)

    def _is_app_token(self, token: str) -> bool:
        app, bar, secret = token.partition("|")
        return bool(bar) and app == self.app_id and bool(secret)

    def _check_app_token(self, token: str | None, node: str) -> Response | None:
        if node != self.app_id:
            return _unsupported("POST", node)
        if token is None or "|" not in token:
            return graph_error(400, 15, _ERROR_MESSAGES[15])
        app, _bar, secret = token.partition("|")
        if app != self.app_id or (self.app_secret is not None and secret != self.app_secret):
            return graph_error(400, 190, "Invalid OAuth access token signature.")
        return None

    def _check_permission(self, permission: str) -> Response | None:
        with self._changed:
            granted = permission in self._permissions
        return None if granted else graph_error(403, 200, missing_permission(permission))

    def _validate(self, body: dict[str, Any], kind: Kind, psid: str | None) -> Response | None:
        """The checks the real Send API makes before it accepts a call."""
        if psid is None:
            return _param_error("The parameter recipient is required")
        if kind == "sender_action":
            if "message" in body:
                return _param_error("Param sender_action cannot be combined with message")
            if body["sender_action"] not in SENDER_ACTIONS:
                return _param_error(
                    "Param sender_action must be one of {mark_seen, typing_on, typing_off}"
                )
            return None
        message = body.get("message")
        if not isinstance(message, dict):
            return _param_error("The parameter message is required")
        messaging_type = body.get("messaging_type", "RESPONSE")
        if messaging_type not in MESSAGING_TYPES:
            return _param_error(
                "Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}"
            )
        if messaging_type == "MESSAGE_TAG" and not body.get("tag"):
            return _param_error("The parameter tag is required for messaging_type MESSAGE_TAG")
        text, attachment = message.get("text"), message.get("attachment")
        if text is None and attachment is None:
            return _param_error("Param message must contain text or attachment")
        if text is not None and attachment is not None:
            return _param_error("Param message cannot contain both text and attachment")
        if text is not None:
            if not isinstance(text, str) or not text:
                return _param_error("Param message[text] must be a non-empty UTF-8 encoded string")
            if len(text) > TEXT_LIMIT:
                return _param_error(
                    f"Length of param message[text] must be less than or equal to {TEXT_LIMIT}"
                )
        quick_replies = message.get("quick_replies")
        if quick_replies is not None:
            if not isinstance(quick_replies, list):
                return _param_error("Param message[quick_replies] must be an array")
            if len(quick_replies) > QUICK_REPLY_LIMIT:
                return _param_error(
                    f"param message[quick_replies] must have at most {QUICK_REPLY_LIMIT} elements"
                )
        if isinstance(attachment, dict) and attachment.get("type") == "template":
            payload = attachment.get("payload") or {}
            buttons = payload.get("buttons") if isinstance(payload, dict) else None
            if payload.get("template_type") == "button" and (
                not isinstance(payload.get("text"), str) or not payload.get("text")
            ):
                return _param_error("Param message[attachment][payload][text] must be non-empty")
            if isinstance(buttons, list) and len(buttons) > BUTTON_LIMIT:
                return _param_error(
                    "param message[attachment][payload][buttons] must have at most "
                    f"{BUTTON_LIMIT} elements"
                )
            if payload.get("template_type") == "generic" and (problem := _generic_problem(payload)):
                return _param_error(problem)
        metadata = message.get("metadata")
        if metadata is not None and (not isinstance(metadata, str) or len(metadata) > 1000):
            return _param_error("Param message[metadata] must be a string of at most 1000")
        return None

    def _deliver(self, body: dict[str, Any], kind: Kind, psid: str) -> Response:
        if kind == "sender_action":
            self._append_outbox(psid, kind, None, body["sender_action"], None)
            return Response.json(200, {"recipient_id": psid})
        message_id = f"m_{random_token(40)}"
        self._append_outbox(psid, kind, _seen(body["message"]), None, message_id)
        self._echo(psid, body["message"], message_id, self.app_id)
        return Response.json(200, {"recipient_id": psid, "message_id": message_id})

    def _append_outbox(
        self,
        psid: str,
        kind: Kind,
        message: dict[str, Any] | None,
        action: str | None,
        message_id: str | None,
        by: str = "bot",
    ) -> OutboxItem:
        with self._changed:
            self._seq += 1
            item = OutboxItem(self._seq, psid, kind, message, action, message_id, time.time(), by)
            self._outbox.setdefault(psid, []).append(item)
            self._changed.notify_all()
            return item

    # -- message_echoes ------------------------------------------------------------------------

    def deliver_echoes(self, sink: Callable[[bytes], Any] | None) -> None:
        """From now on, send the page's echoes to ``sink`` (None: stop): each a webhook body
        as Meta delivers it (the sink signs and posts it), in the order the messages were
        sent, from a thread of its own, after the Send API answered."""
        with self._changed:
            self._echo_sink = sink
            if sink is not None and self._echo_thread is None:
                self._echo_thread = threading.Thread(
                    target=self._send_echoes, name=f"{self.name}-echoes", daemon=True
                )
                self._echo_thread.start()

    def reply_as_page(self, psid: str, text: str, app_id: str = PAGE_INBOX_APP_ID) -> OutboxItem:
        """Someone of the page answers ``psid`` by hand in the Page Inbox: the person sees it,
        and the webhook gets its echo (with the Page Inbox's app id, no metadata)."""
        message_id = f"m_{random_token(40)}"
        item = self._append_outbox(psid, "message", {"text": text}, None, message_id, by="page")
        self._echo(psid, {"text": text}, message_id, app_id)
        return item

    @property
    def echoes_delivered(self) -> int:
        """Echoes the sink has taken so far."""
        with self._changed:
            return self._echoes_sent

    def wait_echoes(self, timeout: float = 10.0) -> int:
        """Until every echo so far is delivered; returns how many were."""
        self._wait_for(
            lambda: self._echoes_sent >= self._echoes_queued,
            timeout,
            lambda: f"{self._echoes_sent} of {self._echoes_queued} echoes delivered",
        )
        return self.echoes_delivered

    def _echo(self, psid: str, message: dict[str, Any], message_id: str, app_id: str) -> None:
        """Queue the echo of a message the page sent, if echoes go anywhere."""
        with self._changed:
            if self._echo_sink is None:
                return
            self._echoes_queued += 1
        now = int(time.time() * 1000)
        echo: dict[str, Any] = {"is_echo": True, "app_id": int(app_id), "mid": message_id}
        if isinstance(message.get("metadata"), str):
            echo["metadata"] = message["metadata"]
        if "text" in message:
            echo["text"] = message["text"]
        if "attachment" in message:
            echo["attachments"] = [message["attachment"]]
        item = {
            "sender": {"id": self.page_id},
            "recipient": {"id": psid},
            "timestamp": now,
            "message": echo,
        }
        body = {"object": "page", "entry": [{"id": self.page_id, "time": now, "messaging": [item]}]}
        self._echoes.put(json.dumps(body, separators=(",", ":")).encode("ascii"))

    def _send_echoes(self) -> None:
        while True:
            body = self._echoes.get()
            if body is None:
                return
            with self._changed:
                sink = self._echo_sink
            try:
                if sink is not None:
                    sink(body)
            except Exception:  # the webhook's answer is its own business, as at Meta
                pass
            with self._changed:
                self._echoes_sent += 1
                self._changed.notify_all()

    def stop(self, timeout: float = 2.0) -> None:
        with self._changed:
            thread, self._echo_thread = self._echo_thread, None
            self._echo_sink = None
        if thread is not None:
            self._echoes.put(None)
            thread.join(timeout)
        super().stop(timeout)

    def _record(self, call: SendCall) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _messenger_profile(self, request: Request, node: str) -> Response:
        """The page's profile: writes are validated and rate limited as Messenger does."""
        token = _token_of(request, {})
        if request.method == "GET":
            params = {k: v for k, v in request.query.items() if k != "access_token"}
            answer = self._check_page_token(token) or self._check_permission("pages_messaging")
            wanted = _field_list(request.query.get("fields"))
            with self._changed:
                if answer is None:
                    stored = {k: v for k, v in self._profile.items() if not wanted or k in wanted}
                    answer = Response.json(200, {"data": [stored] if stored else []})
                self._record_setup(request, f"/{node}/messenger_profile", params, token, answer)
            return answer
        try:
            body = _parse_body(request) if request.body else {}
        except ValueError:
            return _param_error("Invalid JSON for postbody")
        token = _token_of(request, body)
        if request.method == "DELETE" and "fields" not in body and "fields" in request.query:
            body["fields"] = _field_list(request.query["fields"])
        answer = self._check_page_token(token) or self._check_permission("pages_messaging")
        if answer is None and request.method not in ("POST", "DELETE"):
            answer = _unsupported(request.method, "messenger_profile")
        with self._changed:
            if answer is None:
                answer = self._rate_limited()
            if answer is None:
                # Every write counts, the refused ones too.
                self._profile_writes.append(self._clock())
                problem = (
                    _profile_delete_problem(body, self._profile)
                    if request.method == "DELETE"
                    else _profile_problem(body, self._profile)
                )
                answer = _param_error(problem) if problem else None
            if answer is None:
                if request.method == "DELETE":
                    for name in body["fields"]:
                        self._profile.pop(name, None)
                else:
                    self._profile.update(body)
                answer = Response.json(200, {"result": "success"})
                self._profile_calls.append({"method": request.method, **body})
            self._record_setup(request, f"/{node}/messenger_profile", body, token, answer)
        return answer

    def _rate_limited(self) -> Response | None:
        """Messenger's ten profile writes per ten minutes per page (hold ``_changed``)."""
        now = self._clock()
        while self._profile_writes and now - self._profile_writes[0] >= self.profile_window_seconds:
            self._profile_writes.popleft()
        if len(self._profile_writes) < self.profile_calls_limit:
            return None
        return graph_error(400, 613, _ERROR_MESSAGES[613])

    def link_app_user(self, app_scoped_id: str, psid: str) -> None:
        """Say which PSID on this page belongs to an app-scoped user id (as when the app and the
        page are in one business): what ``/{asid}/ids_for_pages`` then answers."""
        with self._changed:
            self._page_scoped_ids[app_scoped_id] = psid

    def _ids_for_pages(self, request: Request, node: str) -> Response:
        """``GET /{app-scoped id}/ids_for_pages?page=...`` with the app token."""
        params = _raw_params(request)
        token = _token_of(request, params)
        if request.method != "GET":
            return _unsupported(request.method, node)
        if token is None or not self._is_app_token(token):
            return graph_error(400, 190, "Invalid OAuth access token signature.")
        with self._changed:
            psid = self._page_scoped_ids.get(node)
        wanted = params.get("page")
        data = []
        if psid is not None and wanted in (None, self.page_id):
            data.append({"id": psid, "page": {"id": self.page_id, "name": self.page_name}})
        return Response.json(200, {"data": data})

    def _app_subscriptions_call(self, request: Request, node: str) -> Response:
        """``/{app-id}/subscriptions`` with the app token: the app's webhooks."""
        params = _raw_params(request)
        token = _token_of(request, params)
        params.pop("access_token", None)
        answer = self._check_app_token(token, node)
        if answer is None:
            if request.method == "GET":
                answer = self._list_app_subscriptions()
            elif request.method == "POST":
                answer = self._subscribe_app(params)
            elif request.method == "DELETE":
                answer = self._unsubscribe_app(params)
            else:
                answer = _unsupported(request.method, node)
        with self._changed:
            self._record_setup(request, f"/{node}/subscriptions", params, token, answer)
        return answer

    def _list_app_subscriptions(self) -> Response:
        with self._changed:
            data = [
                {
                    "object": name,
                    "callback_url": subscription["callback_url"],
                    "active": True,
                    "fields": [
                        {"name": f, "version": self.version} for f in subscription["fields"]
                    ],
                }
                for name, subscription in self._app_subscriptions.items()
            ]
        return Response.json(200, {"data": data})

    def _subscribe_app(self, params: dict[str, Any]) -> Response:
        """Meta checks the callback's verify challenge before it keeps anything."""
        name = str(params.get("object") or "")
        if name not in WEBHOOK_OBJECTS:
            return _param_error(f"Param object must be one of {{{', '.join(WEBHOOK_OBJECTS)}}}")
        fields = _field_list(params.get("fields"))
        if not fields:
            return _param_error("The parameter fields is required")
        if name == "page":
            unknown = [f for f in fields if f not in PAGE_WEBHOOK_FIELDS]
            if unknown:
                return _param_error(
                    f"Param fields[{fields.index(unknown[0])}] is not a valid field"
                )
        with self._changed:
            existing = dict(self._app_subscriptions.get(name) or {})
        callback = str(params.get("callback_url") or existing.get("callback_url") or "")
        if not callback:
            return _param_error("The parameter callback_url is required")
        verify_token = str(params.get("verify_token") or "")
        if "callback_url" in params or not existing:
            if not verify_token:
                return _param_error("The parameter verify_token is required")
            failed = _verify_callback(callback, verify_token)
            if failed is not None:
                return graph_error(400, 2200, f"{_ERROR_MESSAGES[2200]}: {failed}")
        else:
            verify_token = str(existing.get("verify_token") or "")
        with self._changed:
            kept = [f for f in existing.get("fields", []) if f not in fields]
            self._app_subscriptions[name] = {
                "callback_url": callback,
                "verify_token": verify_token,
                "fields": kept + fields,  # Graph adds fields to those subscribed
            }
            self._changed.notify_all()
        return Response.json(200, {"success": True})

    def _unsubscribe_app(self, params: dict[str, Any]) -> Response:
        name = params.get("object")
        fields = _field_list(params.get("fields"))
        with self._changed:
            if name is None:
                self._app_subscriptions.clear()
            elif name not in WEBHOOK_OBJECTS:
                return _param_error(f"Param object must be one of {{{', '.join(WEBHOOK_OBJECTS)}}}")
            elif fields and name in self._app_subscriptions:
                subscription = self._app_subscriptions[name]
                subscription["fields"] = [f for f in subscription["fields"] if f not in fields]
                if not subscription["fields"]:
                    del self._app_subscriptions[name]
            else:
                self._app_subscriptions.pop(name, None)
            self._changed.notify_all()
        return Response.json(200, {"success": True})

    def _subscribed_apps_call(self, request: Request, node: str) -> Response:
        """``/{page-id}/subscribed_apps`` with the page token (``pages_manage_metadata``)."""
        params = _raw_params(request)
        token = _token_of(request, params)
        params.pop("access_token", None)
        answer = self._check_page_token(token) or self._check_permission("pages_manage_metadata")
        with self._changed:
            if answer is None:
                answer = self._page_subscription(request, node, params)
            self._record_setup(request, f"/{node}/subscribed_apps", params, token, answer)
        return answer

    def _page_subscription(self, request: Request, node: str, params: dict[str, Any]) -> Response:
        """The page's subscription to the app (hold ``_changed``)."""
        if request.method == "GET":
            data = []
            if self._subscribed_fields is not None:
                app = {"category": "Business", "link": f"https://local.test/{self.app_id}"}
                app.update(name=self.app_name, id=self.app_id)
                data.append({**app, "subscribed_fields": list(self._subscribed_fields)})
            return Response.json(200, {"data": data})
        if request.method == "POST":
            fields = _field_list(params.get("subscribed_fields"))
            unknown = [f for f in fields if f not in PAGE_WEBHOOK_FIELDS]
            if not fields:
                return _param_error("The parameter subscribed_fields is required")
            if unknown:
                return _param_error(
                    f"Param subscribed_fields[{fields.index(unknown[0])}] must be one of "
                    f"{{{', '.join(sorted(PAGE_WEBHOOK_FIELDS))}}}"
                )
            self._subscribed_fields = fields  # the app's list is replaced whole
            return Response.json(200, {"success": True})
        if request.method == "DELETE":
            self._subscribed_fields = None
            return Response.json(200, {"success": True})
        return _unsupported(request.method, node)

    def _record_setup(
        self,
        request: Request,
        path: str,
        params: dict[str, Any],
        token: str | None,
        answer: Response,
    ) -> None:
        """Keep one set-up call (hold ``_changed``)."""
        call = GraphCall(request.method, path, dict(params), answer.status, token, _loads(answer))
        self._setup_calls.append(call)
        self._changed.notify_all()


def _verify_callback(callback: str, verify_token: str) -> str | None:
    """Meta's verification: GET the callback with a challenge; None when it is echoed, else
    what went wrong, in Meta's words."""
    challenge = str(secrets.randbelow(9 * 10**9) + 10**9)
    query = urlencode(
        {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge}
    )
    url = f"{callback}{'&' if '?' in callback else '?'}{query}"
    try:
        with urllib.request.urlopen(url, timeout=VERIFY_TIMEOUT_SECONDS) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"Couldn't connect to the callback URL ({getattr(error, 'reason', error)})"
    received = body.decode("utf-8", "replace").strip()
    if status == 200 and received == challenge:
        return None
    return (
        "The URL couldn't be validated. Response does not match challenge, "
        f'expected value="{challenge}", received="{received[:100]}" (HTTP {status})'
    )


def _field_list(value: Any) -> list[str]:
    """Graph's list parameters: a JSON array, or names separated by commas."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                return [text]
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(item) for item in value]
    return [str(value)]


def _raw_params(request: Request) -> dict[str, Any]:
    """Query and body parameters as sent: form values stay text (a verify token of digits is
    still text), a JSON body's values keep their types."""
    params: dict[str, Any] = dict(request.query)
    content_type = request.header("Content-Type").lower()
    if "application/x-www-form-urlencoded" in content_type:
        params.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    elif request.body:
        try:
            body = request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            params.update(body)
    return params


def _profile_problem(body: dict[str, Any], stored: dict[str, Any]) -> str | None:
    """What the profile API refuses in a POST, in its words (None when all is well)."""
    limits = messenger_profile
    if not body:
        return f"Requires one of the params: {', '.join(PROFILE_FIELDS)}"
    unknown = [name for name in body if name not in PROFILE_FIELDS]
    if unknown:
        return f"Param {unknown[0]} is not a valid Messenger profile field"
    get_started = body.get("get_started")
    if "get_started" in body:
        payload = get_started.get("payload") if isinstance(get_started, dict) else None
        if not isinstance(payload, str) or not payload:
            return "Param get_started[payload] must be a non-empty string"
        if len(payload) > GET_STARTED_PAYLOAD_LIMIT:
            return f"Param get_started[payload] must be at most {GET_STARTED_PAYLOAD_LIMIT} long"
    if "greeting" in body:
        greetings = body["greeting"]
        if not isinstance(greetings, list) or not all(isinstance(g, dict) for g in greetings):
            return "Param greeting must be an array of {locale, text}"
        if limits.DEFAULT_LOCALE not in [g.get("locale") for g in greetings]:
            return "Param greeting must have a greeting for the default locale"
        for n, item in enumerate(greetings):
            text = item.get("text")
            if not isinstance(text, str) or not text:
                return f"Param greeting[{n}][text] must be a non-empty string"
            if len(text) > limits.GREETING_LIMIT:
                return (
                    f"Param greeting[{n}][text] must be at most {limits.GREETING_LIMIT} "
                    "characters long"
                )
    if "ice_breakers" in body:
        problem = _actions_problem(body["ice_breakers"], "ice_breakers", limits.ICE_BREAKERS_LIMIT)
        if problem:
            return problem
    if "persistent_menu" in body:
        if "get_started" not in body and "get_started" not in stored:
            return "You must set a Get Started button if you also wish to use persistent menu."
        problem = _actions_problem(
            body["persistent_menu"], "persistent_menu", limits.MENU_ITEMS_LIMIT
        )
        if problem:
            return problem
        for n, menu in enumerate(body["persistent_menu"]):
            for m, action in enumerate(menu["call_to_actions"]):
                where = f"persistent_menu[{n}][call_to_actions][{m}]"
                title = action.get("title") if isinstance(action, dict) else None
                if not isinstance(title, str) or not title:
                    return f"Param {where}[title] must be a non-empty string"
                if len(title) > limits.MENU_TITLE_LIMIT:
                    return f"Param {where}[title] must be at most {limits.MENU_TITLE_LIMIT} long"
                kind = action.get("type")
                if kind == "web_url" and not str(action.get("url") or "").startswith("https://"):
                    return f"Param {where}[url] must be a valid https URL"
                if kind == "postback" and not action.get("payload"):
                    return f"Param {where}[payload] must be a non-empty string"
                if kind not in ("web_url", "postback"):
                    return f"Param {where}[type] must be one of {{web_url, postback}}"
    return None


def _actions_problem(value: Any, name: str, limit: int) -> str | None:
    """Per locale, a list of call_to_actions of at most ``limit`` items."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return f"Param {name} must be an array of {{locale, call_to_actions}}"
    for n, item in enumerate(value):
        actions = item.get("call_to_actions")
        if not isinstance(actions, list) or not actions:
            return f"Param {name}[{n}][call_to_actions] must be a non-empty array"
        if len(actions) > limit:
            return f"Param {name}[{n}][call_to_actions] must have at most {limit} elements"
        if name == "ice_breakers":
            for m, action in enumerate(actions):
                question = action.get("question") if isinstance(action, dict) else None
                if not isinstance(question, str) or not question or not action.get("payload"):
                    return f"Param {name}[{n}][call_to_actions][{m}] needs a question and a payload"
    return None


def _profile_delete_problem(body: dict[str, Any], stored: dict[str, Any]) -> str | None:
    fields = body.get("fields")
    if not isinstance(fields, list) or not fields:
        return "The parameter fields is required"
    unknown = [name for name in fields if name not in PROFILE_FIELDS]
    if unknown:
        allowed = ", ".join(PROFILE_FIELDS)
        return f"Param fields[{fields.index(unknown[0])}] must be one of {{{allowed}}}"
    if "get_started" in fields and "persistent_menu" in stored and "persistent_menu" not in fields:
        return "You must delete the persistent menu before deleting the Get Started button."
    return None


def _seen(message: dict[str, Any]) -> dict[str, Any]:
    """A message as its recipient sees it: the sender's ``metadata`` goes to its echo only."""
    return {key: value for key, value in message.items() if key != "metadata"}


def _generic_problem(payload: dict[str, Any]) -> str | None:
    """What the Send API refuses in a generic template (cards), in its words."""
    elements = payload.get("elements")
    where = "message[attachment][payload][elements]"
    if not isinstance(elements, list) or not elements:
        return f"param {where} must be a non-empty array"
    if len(elements) > ELEMENT_LIMIT:
        return f"param {where} must have at most {ELEMENT_LIMIT} elements"
    for n, element in enumerate(elements):
        title = element.get("title") if isinstance(element, dict) else None
        if not isinstance(title, str) or not title:
            return f"param {where}[{n}][title] must be a non-empty string"
        for name in ("title", "subtitle"):
            if len(str(element.get(name, ""))) > ELEMENT_TEXT_LIMIT:
                return f"param {where}[{n}][{name}] must be at most {ELEMENT_TEXT_LIMIT} long"
        if len(element.get("buttons") or []) > BUTTON_LIMIT:
            return f"param {where}[{n}][buttons] must have at most {BUTTON_LIMIT} elements"
    return None


def _target(kind: Kind | None, psid: str | None) -> Callable[[Any], bool] | None:
    """Which calls a fault applies to; the subject is the call's ``(kind, psid)``."""
    if kind not in ("message", "sender_action", None):
        raise ValueError(f"only must be 'message', 'sender_action' or None, got {kind!r}")
    if kind is None and psid is None:
        return None

    def applies(subject: tuple[Kind, str | None]) -> bool:
        return kind in (None, subject[0]) and psid in (None, subject[1])

    return applies


def _parse_body(request: Request) -> dict[str, Any]:
    """JSON, or a form whose values are JSON (Graph accepts both for the Send API)."""
    content_type = request.header("Content-Type").lower()
    if "application/x-www-form-urlencoded" in content_type:
        form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        parsed: dict[str, Any] = {}
        for key, value in form.items():
            try:
                parsed[key] = json.loads(value)
            except ValueError:
                parsed[key] = value
        return parsed
    if not request.body:
        return {}
    body = request.json()
    if not isinstance(body, dict):
        raise ValueError("body is not a JSON object")
    return body


def _token_of(request: Request, body: dict[str, Any]) -> str | None:
    """Graph takes the token as query parameter, body field or Authorization header."""
    if "access_token" in request.query:
        return request.query["access_token"]
    if isinstance(body.get("access_token"), str):
        token: str = body.pop("access_token")
        return token
    authorization = request.header("Authorization")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value:
        return value.strip()
    return None


def _unsupported(method: str, node: str) -> Response:
    return graph_error(
        400,
        100,
        f"Unsupported {method.lower()} request. Object with ID '{node}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation.",
        subcode=33,
    )


def _loads(response: Response) -> dict[str, Any] | None:
    try:
        value = json.loads(response.body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


__all__ = [
    "Download",
    "GraphCall",
    "MessengerSimulator",
    "OutboxItem",
    "SendCall",
    "graph_error",
    "missing_permission",
]
