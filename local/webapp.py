"""The one HTTP server of ``make local``: the chat page, its JSON API and the webhook.

``/webhook`` (and ``/``, as on a Function URL) becomes a Lambda Function URL event for the
real ``lambda_handler``. The page never calls the handler directly: ``/api/send`` and
``/api/tap`` build the body Facebook would deliver, sign it with the app secret and POST it
to ``/webhook`` over HTTP, so the signature check runs exactly as in production. What the bot
sends comes back from the Messenger simulator's outbox, long-polled by the page. ``/api/reply``
is someone of the page answering by hand in the Page Inbox: the simulator shows it to the
person and delivers its echo to the webhook, signed the same way (``post_webhook``).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from handler.signature import sign
from local._http import LocalServer, Request, Response, random_token
from local.graph import MessengerSimulator
from local.runtime import lambda_context

Handler = Callable[[Any, Any], Any]

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page's assets come from this process only; nothing inline, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# Headers a tunnel or proxy adds: the page and its API answer this machine only.
PROXY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "X-Real-IP")
MAX_TEXT = 20_000
MAX_REPLY = 2000  # a Messenger text, typed by hand in the Page Inbox
MAX_POLL_SECONDS = 30.0
FUNCTION_TIMEOUT_SECONDS = 30.0
GRAPH_TIMEOUT_SECONDS = 10.0
# What a person sees of a page before writing (the messenger profile's fields Graph returns).
PROFILE_FIELDS = ("get_started", "greeting", "ice_breakers", "persistent_menu")

log = logging.getLogger(__name__)


class Directory(Protocol):
    """What the page may know about a person: status and today's questions, from the store."""

    def usage(self, psid: str) -> dict[str, Any]: ...

    def recent(self) -> list[str]: ...


# -- what Facebook and the Function URL put on the wire -----------------------------------


def function_url_event(
    request: Request, source_ip: str = "127.0.0.1", domain: str = "localhost"
) -> dict[str, Any]:
    """A Function URL event (payload format 2.0) for ``request``, as AWS builds it.

    Header names are lowercased and repeated headers joined with commas; the body is always
    base64 so the handler checks the signature over exactly the bytes that arrived.
    """
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": urlencode(request.query),
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": base64.b64encode(request.body).decode("ascii"),
        "isBase64Encoded": True,
    }
    if cookies:
        event["cookies"] = cookies
    if request.query:
        event["queryStringParameters"] = dict(request.query)
    return event


def function_url_response(result: Any) -> Response:
    """The HTTP answer a Function URL makes of what the function returned."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Anything else is taken as a JSON body with status 200, as Lambda does.
        return Response(200, json.dumps(result).encode(), {"Content-Type": "application/json"})
    body = result.get("body") or ""
    if isinstance(body, str):
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    else:
        raw = json.dumps(body).encode()
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    headers.setdefault("Content-Type", "application/json")
    return Response(int(result["statusCode"]), raw, headers)


def new_mid() -> str:
    """A message id shaped like Facebook's: what the handler dedupes deliveries on."""
    return f"m_{random_token(40)}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def text_event(psid: str, page_id: str, text: str, quick_reply: str | None = None) -> dict:
    """One ``messaging`` item for a typed message, or a tapped quick reply."""
    message: dict[str, Any] = {"mid": new_mid(), "text": text}
    if quick_reply is not None:
        message["quick_reply"] = {"payload": quick_reply}
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": _now_ms(),
        "message": message,
    }


def postback_event(psid: str, page_id: str, payload: str, title: str) -> dict:
    """One ``messaging`` item for a tapped button (button template, menu, Get Started)."""
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": _now_ms(),
        "postback": {"mid": new_mid(), "title": title, "payload": payload},
    }


def webhook_body(page_id: str, *messaging: dict) -> bytes:
    """A page webhook delivery; compact ASCII JSON with ``\\u`` escapes, like Facebook's."""
    delivery = {
        "object": "page",
        "entry": [{"id": page_id, "time": _now_ms(), "messaging": list(messaging)}],
    }
    return json.dumps(delivery, separators=(",", ":")).encode("ascii")


def is_psid(value: Any) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit() and 5 <= len(value) <= 32


def new_psid() -> str:
    """A random page-scoped id: 16 digits, as Messenger's are."""
    return str(secrets.randbelow(9 * 10**15) + 10**15)


# -- the Graph API, over HTTP --------------------------------------------------------------


class GraphError(Exception):
    """Graph answered with an error (its message), or did not answer."""


def graph_call(
    method: str, url: str, token: str | None, body: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One Graph API call with the page token, as the stack makes them (``infra/``): the
    token in the Authorization header, never in the URL; a body as JSON."""
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=GRAPH_TIMEOUT_SECONDS) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as error:
        raw = error.read()
        error.close()
        try:
            message = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {error.code}"
        raise GraphError(message) from None
    except OSError as error:
        raise GraphError(f"no answer ({error})") from None
    try:
        result = json.loads(raw)
    except ValueError:
        raise GraphError("the answer is not JSON") from None
    if not isinstance(result, dict):
        raise GraphError("the answer is not a JSON object")
    return result


# -- the server ----------------------------------------------------------------------------


class ApiError(Exception):
    """A request the page should not have made: answered as JSON with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ChatServer(LocalServer):
    """Serves the page, its API and the webhook on one loopback port.

    ``simulator`` is None when the bot talks to the real Graph API: the webhook still
    works (for a tunnel), the chat API is off since the replies go to real people.
    """

    name = "chat"

    def __init__(
        self,
        *,
        lambda_handler: Handler,
        function_name: str,
        app_secret: str,
        page_id: str,
        simulator: MessengerSimulator | None,
        directory: Directory,
        page_token: str | None = None,
        config: Mapping[str, Any],
        owners: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.lambda_handler = lambda_handler
        self.function_name = function_name
        self.page_id = page_id
        self.simulator = simulator
        self.directory = directory
        self.config = dict(config)
        self._app_secret = app_secret
        self._page_token = page_token  # reads the page's profile from the simulator
        self._people: dict[str, str] = {}  # psid -> name shown on the page, in order
        self._inbound: dict[str, list[dict[str, Any]]] = {}  # what each person sent
        for n, psid in enumerate(owners):
            self._people[psid] = "Owner" if n == 0 else f"Owner {n + 1}"
        self._guests = 0
        self._people_lock = threading.Lock()

    # -- routing ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/webhook" or (path == "/" and _is_webhook_call(request)):
            return self._webhook(request)
        if not self._from_this_machine(request):
            return _text(403, "The chat page answers on this machine only.\n")
        if path == "/" and request.method == "GET":
            return self._static("index.html")
        if path.startswith("/static/") and request.method == "GET":
            return self._static(path.removeprefix("/static/"))
        if path == "/favicon.ico":
            return Response(204)
        if path.startswith("/api/"):
            try:
                return self._api(request)
            except ApiError as error:
                return Response.json(error.status, {"error": str(error)})
        return _text(404, "Not Found\n")

    def _from_this_machine(self, request: Request) -> bool:
        """Refuses tunnels, other sites (CSRF) and DNS rebinding: the page signs as anyone."""
        if any(request.header(name) for name in PROXY_HEADERS):
            return False
        hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        if request.header("Host").lower() not in hosts:
            return False
        origin = request.header("Origin").lower()
        if origin and origin not in {f"http://{host}" for host in hosts}:
            return False
        return request.method == "GET" or request.header("Content-Type").lower().startswith(
            "application/json"
        )

    # -- the webhook: Function URL -> lambda_handler ---------------------------------------

    def _webhook(self, request: Request) -> Response:
        event = function_url_event(request, domain=f"127.0.0.1:{self.port}")
        context = lambda_context(self.function_name, FUNCTION_TIMEOUT_SECONDS)
        context.aws_request_id = event["requestContext"]["requestId"]  # one id, as on AWS
        try:
            result = self.lambda_handler(event, context)
        except Exception:
            log.exception("the function raised on %s %s", request.method, request.path)
            return Response.json(502, {"Message": "Internal Server Error"})
        return function_url_response(result)

    # -- static files ----------------------------------------------------------------------

    def _static(self, name: str) -> Response:
        file = STATIC_DIR / name
        kind = CONTENT_TYPES.get(file.suffix)
        # Only plain names of files in the folder: no sub-paths, no dot-files.
        if "/" in name or "\\" in name or name.startswith(".") or kind is None:
            return _text(404, "Not Found\n")
        try:
            body = file.read_bytes()
        except OSError:
            return _text(404, "Not Found\n")
        return Response(200, body, {"Content-Type": kind, **SECURITY_HEADERS})

    # -- the page's API --------------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        route = (request.method, request.path.removeprefix("/api/").rstrip("/"))
        if route == ("GET", "config"):
            return Response.json(200, self.config)
        if route == ("GET", "users"):
            return Response.json(200, {"users": self.users()})
        if route == ("POST", "users"):
            return Response.json(201, self.add_person(_body(request).get("psid")))
        if self.simulator is None:
            raise ApiError(
                409, "The bot talks to the real Graph API: chat with your page in Messenger."
            )
        if route == ("GET", "profile"):
            return Response.json(200, self.profile())
        if route == ("GET", "history"):
            return Response.json(200, self.history(_psid(request.query.get("psid"))))
        if route == ("GET", "poll"):
            psid = _psid(request.query.get("psid"))
            after = _number(request.query.get("after", "0"), "after")
            wait = min(MAX_POLL_SECONDS, _number(request.query.get("timeout", "25"), "timeout"))
            return Response.json(200, self.poll(psid, int(after), wait))
        if route == ("POST", "send"):
            body = _body(request)
            text = body.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
                raise ApiError(400, f"text must be 1 to {MAX_TEXT} characters")
            return Response.json(200, self.send(_psid(body.get("psid")), text))
        if route == ("POST", "reply"):
            body = _body(request)
            text = body.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_REPLY:
                raise ApiError(400, f"text must be 1 to {MAX_REPLY} characters")
            return Response.json(200, self.reply(_psid(body.get("psid")), text.strip()))
        if route == ("POST", "tap"):
            body = _body(request)
            payload, title = body.get("payload"), body.get("title") or ""
            kind = body.get("kind", "postback")
            if not isinstance(payload, str) or not payload or not isinstance(title, str):
                raise ApiError(400, "payload (and title) must be strings")
            if kind not in ("postback", "quick_reply"):
                raise ApiError(400, "kind must be postback or quick_reply")
            return Response.json(200, self.tap(_psid(body.get("psid")), payload, title, kind))
        raise ApiError(404, f"no such endpoint: {request.method} {request.path}")

    # -- people ----------------------------------------------------------------------------

    def add_person(self, psid: Any = None) -> dict[str, Any]:
        """A new person for the page to chat as (a random PSID unless one is given)."""
        if psid is not None and not is_psid(psid):
            raise ApiError(400, "psid must be 5 to 32 digits")
        with self._people_lock:
            psid = psid or new_psid()
            if psid not in self._people:
                self._guests += 1
                self._people[psid] = f"User {self._guests}"
            name = self._people[psid]
        return {"psid": psid, "name": name, **self.directory.usage(psid)}

    def users(self) -> list[dict[str, Any]]:
        """Everyone the page knows, then anyone else the store has seen (a tunnel's users)."""
        with self._people_lock:
            people = dict(self._people)
        for psid in self.directory.recent():
            people.setdefault(psid, f"User …{psid[-4:]}")
        return [{"psid": p, "name": name, **self.directory.usage(p)} for p, name in people.items()]

    # -- the page, as Messenger shows it before a conversation -----------------------------

    def profile(self) -> dict[str, Any]:
        """The page's name and Messenger profile, read from the simulator as Messenger does.

        Whatever set the profile (``make local`` at start, as ``pulumi up`` does for a real
        page, or anything else that calls the simulator), the page shows what it holds now.
        """
        assert self.simulator is not None
        base = f"{self.simulator.graph_api_url}/me"
        try:
            page = graph_call("GET", f"{base}?fields=id,name", self._page_token)
            fields = ",".join(PROFILE_FIELDS)
            found = graph_call("GET", f"{base}/messenger_profile?fields={fields}", self._page_token)
        except GraphError as error:
            raise ApiError(502, f"the Messenger simulator: {error}") from None
        data = found.get("data") or [{}]
        profile = data[0] if isinstance(data[0], dict) else {}
        return {
            "page": {"id": str(page.get("id", self.page_id)), "name": page.get("name", "")},
            "profile": {name: profile[name] for name in PROFILE_FIELDS if name in profile},
        }

    # -- chatting --------------------------------------------------------------------------

    def send(self, psid: str, text: str) -> dict[str, Any]:
        item = text_event(psid, self.page_id, text)
        return self._deliver(psid, item, {"kind": "text", "text": text})

    def tap(self, psid: str, payload: str, title: str, kind: str) -> dict[str, Any]:
        if kind == "quick_reply":
            item = text_event(psid, self.page_id, title or payload, quick_reply=payload)
        else:
            item = postback_event(psid, self.page_id, payload, title)
        shown = {"kind": kind, "text": title or payload, "payload": payload}
        return self._deliver(psid, item, shown)

    def reply(self, psid: str, text: str) -> dict[str, Any]:
        """Someone of the page answers ``psid`` by hand (the Page Inbox): the person sees it,
        and its echo goes to the webhook."""
        assert self.simulator is not None
        self.add_person(psid)
        item = self.simulator.reply_as_page(psid, text)
        return {"ok": True, "seq": item.seq, "time": item.time}

    def post_webhook(self, body: bytes) -> int:
        """A delivery Facebook would make (an echo, say), signed, to our own webhook."""
        return self._post_webhook(body)

    def _deliver(self, psid: str, item: dict, shown: dict[str, Any]) -> dict[str, Any]:
        """Sign the delivery as Facebook does and POST it to our own webhook, over HTTP."""
        self.add_person(psid)
        body = webhook_body(self.page_id, item)
        record = {"from": "user", "time": time.time(), **shown}
        with self._changed:
            self._inbound.setdefault(psid, []).append(record)
        status = self._post_webhook(body)
        record["status"] = status
        return {"status": status, "ok": status == 200, "time": record["time"]}

    def _post_webhook(self, body: bytes) -> int:
        request = urllib.request.Request(
            f"{self.url}/webhook",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "facebookexternalua",
                "X-Hub-Signature-256": sign(body, self._app_secret),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=FUNCTION_TIMEOUT_SECONDS) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            error.close()
            return int(error.code)
        except OSError:
            return 0  # the server is stopping

    def history(self, psid: str) -> dict[str, Any]:
        """Both sides of the conversation so far, oldest first, and the outbox position."""
        assert self.simulator is not None
        bot = [_outbox_item(item) for item in self.simulator.outbox_since(psid, 0)]
        with self._changed:
            sent = [dict(record) for record in self._inbound.get(psid, [])]
        items = sorted([*sent, *bot], key=lambda item: item["time"])
        return {"items": items, "seq": max((item["seq"] for item in bot), default=0)}

    def poll(self, psid: str, after: int, timeout: float) -> dict[str, Any]:
        """What the bot sent ``psid`` after ``after``, waiting up to ``timeout`` seconds."""
        simulator = self.simulator
        assert simulator is not None
        deadline = time.monotonic() + timeout
        items = simulator.outbox_since(psid, after)
        while not items and simulator.running and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Short waits, so that stopping this server ends a pending poll at once.
            items = simulator.wait_outbox(psid, after, timeout=min(remaining, 0.25))
        found = [_outbox_item(item) for item in items]
        return {"items": found, "seq": max((item["seq"] for item in found), default=after)}


def _is_webhook_call(request: Request) -> bool:
    """``/`` is the deployed Function URL's webhook too: deliveries and verify challenges."""
    return request.method != "GET" or "hub.mode" in request.query


def _outbox_item(item: Any) -> dict[str, Any]:
    return {"from": "bot", **item.to_dict()}


def _text(status: int, text: str) -> Response:
    return Response(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})


def _body(request: Request) -> dict[str, Any]:
    try:
        body = request.json() if request.body else {}
    except ValueError:
        raise ApiError(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _psid(value: Any) -> str:
    if not is_psid(value):
        raise ApiError(400, "psid must be 5 to 32 digits")
    return str(value)


def _number(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number") from None
    if value < 0:
        raise ApiError(400, f"{name} must not be negative")
    return value


__all__ = [
    "ChatServer",
    "Directory",
    "GraphError",
    "function_url_event",
    "function_url_response",
    "graph_call",
    "postback_event",
    "text_event",
    "webhook_body",
]
