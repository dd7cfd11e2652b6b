"""A fake Facebook Graph API: the Messenger Send API and the page's messenger profile.

It answers and fails the way graph.facebook.com does (same paths, same error envelope, same
limits), so the handler's Graph client is tested against the wire format rather than a
mock, and it records every call so tests and the local chat page can see what the bot sent.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl

from handler.settings import DEFAULT_GRAPH_API_VERSION
from local._http import RESET, FaultQueue, LocalServer, Request, Reset, Response, random_token

T = TypeVar("T")

DEFAULT_VERSION = DEFAULT_GRAPH_API_VERSION  # the stack's: the handler calls what it calls
TEXT_LIMIT = 2000
QUICK_REPLY_LIMIT = 13
BUTTON_LIMIT = 3
SENDER_ACTIONS = ("mark_seen", "typing_on", "typing_off")
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")

Kind = Literal["message", "sender_action"]

_PATH = re.compile(r"^(?:/(?P<version>v\d+\.\d+))?/(?P<node>[^/]+)(?:/(?P<edge>[^/]+))?/?$")

# Default messages of the error codes a Messenger bot meets, as Graph words them.
_ERROR_MESSAGES: dict[int, str] = {
    1: "An unknown error occurred",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) This message is sent outside of allowed window.",
    100: "(#100) Invalid parameter",
    190: "Invalid OAuth access token.",
    200: "(#200) Requires pages_messaging permission to manage the object",
    551: "(#551) This person isn't available right now.",
    613: "(#613) Calls to this api have exceeded the rate limit.",
}


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
class OutboxItem:
    """One thing the bot delivered to a person, in the order a chat page should show it."""

    seq: int
    psid: str
    kind: Kind
    message: dict[str, Any] | None  # the Send API ``message`` object, for kind "message"
    action: str | None  # "typing_on", ... for kind "sender_action"
    message_id: str | None
    time: float  # wall clock (time.time()), for display

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
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.access_token = access_token
        self.version = version
        self.page_id = page_id
        self.page_name = page_name
        self._calls: list[SendCall] = []
        self._profile_calls: list[dict[str, Any]] = []
        self._profile: dict[str, Any] = {}
        self._outbox: dict[str, list[OutboxItem]] = {}
        self._seq = 0
        self._faults: FaultQueue[_GraphFault | _Delay | Reset] = FaultQueue()

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

    def messages_to(self, psid: str) -> list[dict[str, Any]]:
        """The ``message`` objects delivered (answered 200) to ``psid``."""
        with self._changed:
            return [
                c.body["message"]
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
        """Forget recordings and queued faults; sequence numbers keep increasing."""
        with self._changed:
            self._calls.clear()
            self._profile_calls.clear()
            self._profile.clear()
            self._outbox.clear()
            self._faults.clear()
            self._changed.notify_all()

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | Reset:
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
            return self._messenger_profile(request)
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
            answer = self._check_token(token) or self._validate(body, kind, psid)
        if answer is None:
            answer = self._deliver(body, kind, psid or "")
        self._record(SendCall(psid, kind, body, answer.status, received, token, _loads(answer)))
        return answer

    def _check_token(self, token: str | None) -> Response | None:
        if self.access_token is None or token == self.access_token:
            return None
        return graph_error(400, 190, "Invalid OAuth access token.")

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
        return None

    def _deliver(self, body: dict[str, Any], kind: Kind, psid: str) -> Response:
        if kind == "sender_action":
            self._append_outbox(psid, kind, None, body["sender_action"], None)
            return Response.json(200, {"recipient_id": psid})
        message_id = f"m_{random_token(40)}"
        self._append_outbox(psid, kind, body["message"], None, message_id)
        return Response.json(200, {"recipient_id": psid, "message_id": message_id})

    def _append_outbox(
        self,
        psid: str,
        kind: Kind,
        message: dict[str, Any] | None,
        action: str | None,
        message_id: str | None,
    ) -> None:
        with self._changed:
            self._seq += 1
            item = OutboxItem(self._seq, psid, kind, message, action, message_id, time.time())
            self._outbox.setdefault(psid, []).append(item)

    def _record(self, call: SendCall) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _messenger_profile(self, request: Request) -> Response:
        token = _token_of(request, {})
        if request.method == "GET":
            if (denied := self._check_token(token)) is not None:
                return denied
            with self._changed:
                return Response.json(200, {"data": [dict(self._profile)] if self._profile else []})
        try:
            body = _parse_body(request) if request.body else {}
        except ValueError:
            return _param_error("Invalid JSON for postbody")
        token = _token_of(request, body)
        if (denied := self._check_token(token)) is not None:
            return denied
        with self._changed:
            self._profile_calls.append({"method": request.method, **body})
            if request.method == "DELETE":
                for name in body.get("fields") or []:
                    self._profile.pop(name, None)
            else:
                self._profile.update(body)
            self._changed.notify_all()
        return Response.json(200, {"result": "success"})


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


__all__ = ["MessengerSimulator", "OutboxItem", "SendCall", "graph_error"]
