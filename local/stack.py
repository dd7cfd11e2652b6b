"""The whole bridge on this machine, with no account anywhere: what ``make local`` starts.

The real handler code runs in this process. Only endpoints change: DynamoDB is moto's server
(in-process, on loopback), the asynchronous self-invocation goes to the Lambda Invoke
stand-in, the Graph API is the Messenger simulator, and without an OpenAI key the model is
an offline echo. Every part binds 127.0.0.1; ``stop()`` ends them all and restores the
environment it changed.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Self

import boto3
from botocore.config import Config

from handler import app, schema
from handler.quota import STATUS_UNLIMITED, day_key
from handler.settings import (
    DEFAULT_GRAPH_API_URL,
    DEFAULT_MODEL,
    SECRET_SOURCES,
    Env,
    Settings,
    SettingsError,
    load_settings,
    parse_admin_psids,
)
from handler.store import Store, User
from local.graph import MessengerSimulator
from local.invoke import LambdaInvokeStandIn
from local.model import ECHO_NOTE, FakeOpenAI, echo_responder, last_user_text
from local.webapp import ChatServer

OWNER_PSID = "1000000000000001"
PAGE_ID = "100000000000001"
PAGE_NAME = "Local Page"
TABLE_NAME = "messenger-bridge-local"
FUNCTION_NAME = "messenger-bridge-local"
REGION = "us-east-1"
DEFAULT_PORT = 8000
DEFAULT_MODEL_LATENCY = 0.6
# Lambda retries failed events after 1 and 2 minutes; locally a second is plenty.
RETRY_DELAY_SECONDS = 1.0
LONG_ANSWER_WORDS = "long answer"
FACEBOOK_SECRETS = ("APP_SECRET", "PAGE_ACCESS_TOKEN", "VERIFY_TOKEN")

GraphMode = Literal["simulator", "real"]
ModelKind = Literal["echo", "openai", "compatible"]

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """The stack cannot start as configured; the message says what to change."""


@dataclass(frozen=True)
class Options:
    """What ``python -m local`` was asked for; None means "from the environment, or default"."""

    port: int = DEFAULT_PORT
    daily_limit: int | None = None
    admins: tuple[str, ...] = ()
    model_latency: float = DEFAULT_MODEL_LATENCY
    echo: bool = False
    graph: GraphMode | None = None
    log_level: str | None = None


@dataclass(frozen=True)
class ModelChoice:
    kind: ModelKind
    label: str


# -- the offline model ----------------------------------------------------------------------

_LONG_ANSWER = (
    # Three paragraphs of about 1000 characters: three bubbles, within the default
    # max_tokens (800 tokens, about 3200 characters) that would cut a longer answer.
    "When you send a message, the page signs it with the app secret exactly as Facebook "
    "signs a webhook delivery and posts it to this process's /webhook. There it becomes a "
    "Lambda Function URL event for the real handler, which checks the signature and hands "
    "the message to an asynchronous invocation of itself before answering 200 within "
    "milliseconds: Facebook wants quick answers, and a model may take many seconds. The "
    "invocation is the worker. It claims the event in DynamoDB first, so that a delivery "
    "Facebook repeats is answered once only. Then it looks the person up, creating their "
    "record on first sight and telling the owner about the newcomer with three buttons: "
    "allow unlimited questions, keep the default daily limit, or block. Commands such as "
    "/help, /usage and /reset, and the menu's buttons, are answered right there, without "
    "the model and without counting a question. The owner's commands work for owners only; "
    "from anyone else they are ordinary questions, so that nobody can guess their way in.",
    "An ordinary question is counted against the daily limit with a conditional write, so "
    "two messages arriving together cannot both take the last question of the day. The "
    "worker marks the message seen, shows the typing indicator, loads the last turns of the "
    "conversation and asks the model. If the model fails, the question is given back and "
    "the person gets a short apology instead of silence. A Messenger text bubble holds at "
    "most 2000 characters, so a long answer like this one is split at the most natural "
    "boundary that fits: after a paragraph if there is one, else after a sentence, else "
    "between words. Each part is sent as its own bubble, in order, and if sending fails "
    "half-way the worker never sends the first parts again, since answering twice is "
    "worse than answering once in part. The conversation is remembered for a while, so "
    "that follow-up questions make sense, and forgotten after a day of silence or at once "
    "with /reset, so that each answer only ever sees what it needs. This paragraph is the "
    "second bubble of three.",
    "Everything here runs the code that is deployed; only the addresses change. DynamoDB "
    "is moto's server inside this process, the self-invocation goes to a local stand-in "
    "for the Lambda Invoke API, the Graph API is a simulator that records what the bot "
    "sends so that this page can show it, and the model is this offline echo. Set "
    "OPENAI_API_KEY and start again for real answers. When you are ready for a real page, "
    "docs/LOCAL.md shows how to point its webhook at this very process through a tunnel, "
    "and docs/DEPLOY.md how to deploy the same code to AWS with Pulumi. Until then, switch "
    "between people on the left, go over the daily limit, and approve newcomers as the "
    "Owner, or type /users as the Owner to see everyone with their status and today's "
    "count. Nothing here needs an account, and everything disappears when you press "
    "Ctrl-C in the terminal: the table lives in memory only, and every server that this "
    "process started stops with it, leaving nothing behind on your machine.",
)


def offline_responder(body: dict[str, Any]) -> str:
    """The echo model, plus a long canned answer on request to show bubbles being split."""
    if LONG_ANSWER_WORDS in last_user_text(body).lower():
        return "\n\n".join([*_LONG_ANSWER, ECHO_NOTE])
    return echo_responder(body)


# -- embedded AWS ---------------------------------------------------------------------------


class EmbeddedAWS:
    """moto's server in a thread of this process, on loopback: AWS with no account.

    moto's own ``ThreadedMotoServer`` never closes its listening socket; this one does.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self._server = make_server(
            *self._address,
            DomainDispatcherApplication(create_backend_app),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="moto",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded AWS is not running")
        return f"http://{self._address[0]}:{self._server.server_port}"

    def stop(self, timeout: float = 2.0) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = None
        self._thread = None


def create_table(client: Any, table_name: str) -> None:
    """The table as the Pulumi stack makes it: same keys and index, TTL on."""
    client.create_table(**schema.create_table_request(table_name))
    client.get_waiter("table_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.TTL_ATTRIBUTE},
    )


class StoreDirectory:
    """Status and today's questions of a person, read from the table the handler writes."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def usage(self, psid: str) -> dict[str, Any]:
        admin = self.settings.is_admin(psid)
        user = self.store.get_user(psid)
        seen = user is not None
        user = user or User(psid)
        counted = User(psid, STATUS_UNLIMITED) if admin else user
        day = day_key(datetime.now(UTC), self.settings.tz)
        usage = self.store.usage(counted, day, self.settings.daily_limit)
        return {
            "admin": admin,
            "seen": seen,
            "status": user.status,
            "used": usage.used,
            "limit": usage.limit,
            "left": usage.left,
        }

    def recent(self) -> list[str]:
        return [user.psid for user in self.store.recent_users(50)]


# -- the stack ------------------------------------------------------------------------------


class LocalStack:
    """Starts every part, points the handler at them through its environment, stops them.

    ``env`` is the environment the handler reads (``os.environ``); what ``start`` changes
    in it is put back by ``stop``.
    """

    def __init__(self, options: Options, env: MutableMapping[str, str] | None = None) -> None:
        self.options = options
        self.env: MutableMapping[str, str] = os.environ if env is None else env
        self._saved: dict[str, str | None] = {}
        self.aws: EmbeddedAWS | None = None
        self.model: FakeOpenAI | None = None
        self.graph: MessengerSimulator | None = None
        self.invoke: LambdaInvokeStandIn | None = None
        self.chat: ChatServer | None = None
        self.settings: Settings | None = None
        self.graph_mode: GraphMode = "simulator"
        self.model_choice = ModelChoice("echo", "")
        self.generated_secrets: list[str] = []
        self.admins: tuple[str, ...] = ()
        self.notes: list[str] = []

    # -- environment -----------------------------------------------------------------------

    def _get(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def _set(self, name: str, value: str | None) -> None:
        if name not in self._saved:
            self._saved[name] = self.env.get(name)
        if value is None:
            self.env.pop(name, None)
        else:
            self.env[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self._saved.clear()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start everything, or nothing: a failure stops what had started and re-raises."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        options = self.options
        self._decide()
        # The page and webhook port first: if it is taken, fail before starting the rest.
        self.chat = ChatServer(
            lambda_handler=app.lambda_handler,
            function_name=FUNCTION_NAME,
            app_secret=self._get("APP_SECRET"),
            page_id=PAGE_ID,
            simulator=None,
            directory=_NoDirectory(),
            config={},
            owners=self.admins,
            port=options.port,
        )
        try:
            self.chat.start()
        except OSError as error:
            raise StackError(
                f"cannot listen on 127.0.0.1:{options.port} ({error.strerror or error}); "
                "pick another with LOCAL_PORT=N or --port N (0 takes any free port)"
            ) from None

        self.aws = EmbeddedAWS().start()
        self._point_aws_here(self.aws.url)
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=self.aws.url,
            region_name=REGION,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2}),
        )
        table = self._get(Env.TABLE_NAME) or TABLE_NAME
        self._set(Env.TABLE_NAME, table)
        create_table(dynamodb, table)

        if self.model_choice.kind == "echo":
            self.model = FakeOpenAI(offline_responder, latency=options.model_latency).start()
            self._set(Env.OPENAI_BASE_URL, self.model.base_url)
            self._set("OPENAI_API_KEY", None)  # a key set anyway never leaves for the echo
        if self.graph_mode == "simulator":
            self.graph = MessengerSimulator(
                self._get("PAGE_ACCESS_TOKEN"), page_id=PAGE_ID, page_name=PAGE_NAME
            ).start()
            self._set(Env.GRAPH_API_URL, self.graph.graph_api_url)
        self.invoke = LambdaInvokeStandIn(
            {FUNCTION_NAME: app.lambda_handler},
            retry_delay=RETRY_DELAY_SECONDS,
            on_failure=_report_failure,
        ).start()
        self._set("AWS_ENDPOINT_URL_LAMBDA", self.invoke.url)
        self._set("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)

        try:
            self.settings = load_settings(self.env)
        except SettingsError as error:
            raise StackError(str(error)) from None
        app.reset()

        self.chat.simulator = self.graph
        self.chat.directory = StoreDirectory(Store(dynamodb, table), self.settings)
        self.chat.config = self.page_config()

    def _decide(self) -> None:
        """Settle mode, secrets, admins and model from options and environment; set env."""
        options = self.options
        url = self._get(Env.GRAPH_API_URL)
        self.graph_mode = options.graph or ("real" if url else "simulator")
        if self.graph_mode == "real":
            missing = [name for name in FACEBOOK_SECRETS if not self._get(name)]
            if missing:
                raise StackError(
                    "the real Graph API needs your page's secrets: set "
                    + ", ".join(missing)
                    + " (see docs/LOCAL.md)"
                )
            self._set(Env.GRAPH_API_URL, url or DEFAULT_GRAPH_API_URL)
        for name in FACEBOOK_SECRETS:
            if not self._get(name):
                self._set(name, secrets.token_urlsafe(24))
                self.generated_secrets.append(name)
        for variable, _plain in SECRET_SOURCES.values():
            if self._get(variable):
                self.notes.append(f"{variable} is ignored: local runs read secrets from env")
            self._set(variable, None)

        admins = options.admins or tuple(self._get(Env.ADMIN_PSIDS).replace(",", " ").split())
        try:
            parse_admin_psids(" ".join(admins))
        except SettingsError as error:
            raise StackError(str(error)) from None
        self.admins = tuple(dict.fromkeys(admins)) or (OWNER_PSID,)
        self._set(Env.ADMIN_PSIDS, ",".join(self.admins))
        if options.daily_limit is not None:
            if options.daily_limit < 0:
                raise StackError("--daily-limit must be 0 or more")
            self._set(Env.DAILY_LIMIT, str(options.daily_limit))
        if options.log_level:
            self._set(Env.LOG_LEVEL, options.log_level.upper())

        key, base = self._get("OPENAI_API_KEY"), self._get(Env.OPENAI_BASE_URL)
        model = self._get(Env.OPENAI_MODEL) or DEFAULT_MODEL
        if options.echo or not (key or base):
            why = "--echo" if options.echo else "no OPENAI_API_KEY"
            self.model_choice = ModelChoice("echo", f"offline echo model ({why})")
        elif base:
            self.model_choice = ModelChoice(
                "compatible", f"OpenAI-compatible server at {base}, model {model}"
            )
        else:
            self.model_choice = ModelChoice("openai", f"OpenAI API, model {model}")

    def _point_aws_here(self, url: str) -> None:
        """Fake credentials, a fixed region and every AWS endpoint on loopback."""
        for name, value in {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": url,  # anything not redirected below still stays here
            "AWS_ENDPOINT_URL_DYNAMODB": url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }.items():
            self._set(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
            self._set(name, None)

    def stop(self) -> None:
        """Stop every part (newest first) and put the environment back; idempotent."""
        for part in (self.chat, self.invoke, self.graph, self.model, self.aws):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:  # stop the others whatever one of them does
                log.exception("stopping %r failed", part)
        self.chat = self.invoke = self.graph = self.model = self.aws = None
        self._restore_env()
        app.reset()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what to show ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.chat is None:
            raise RuntimeError("the stack is not running")
        return f"{self.chat.url}/"

    def page_config(self) -> dict[str, Any]:
        """What the page needs to know about this run (no secret in it)."""
        assert self.settings is not None
        return {
            "mode": self.graph_mode,
            "page": {"id": PAGE_ID, "name": PAGE_NAME},
            "model": {
                "kind": self.model_choice.kind,
                "label": self.model_choice.label,
                "offline": self.model_choice.kind == "echo",
            },
            "dailyLimit": self.settings.daily_limit,
            "owner": self.admins[0],
            "admins": list(self.admins),
            "webhook": "/webhook",
            "longAnswerWords": LONG_ANSWER_WORDS if self.model_choice.kind == "echo" else None,
        }

    def summary(self) -> list[str]:
        """The lines printed at start: where to go, what answers, what is real."""
        assert self.chat is not None and self.aws is not None and self.settings is not None
        base = self.chat.url
        verify = (
            f"{self._get('VERIFY_TOKEN')} (random for this run)"
            if "VERIFY_TOKEN" in self.generated_secrets
            else "from VERIFY_TOKEN"
        )
        lines = [
            "Messenger bridge running locally: the real handler, no account needed.",
            f"  Chat page:    {base}/",
            f"  Webhook:      POST {base}/webhook (deliveries), GET {base}/webhook (verification)",
            f"  Verify token: {verify}",
            f"  Model:        {self.model_choice.label}",
        ]
        if self.model_choice.kind == "echo":
            lines.append("                Set OPENAI_API_KEY for real answers.")
        if self.graph_mode == "simulator":
            lines.append("  Graph API:    local Messenger simulator (replies appear on the page)")
        else:
            lines.append(
                f"  Graph API:    REAL, {self.settings.graph_api_url}: replies go to real people; "
                "the chat page is off"
            )
        lines += [
            f"  Storage:      embedded DynamoDB (moto) at {self.aws.url}, table "
            f"{self.settings.table_name}; gone when this stops",
            f"  Daily limit:  {self.settings.daily_limit} questions; owner PSID "
            + ", ".join(self.admins),
            *(f"  Note: {note}" for note in self.notes),
            "Press Ctrl-C to stop.",
        ]
        return lines


class _NoDirectory:
    """Stands in until the store is up (the server binds its port first)."""

    def usage(self, psid: str) -> dict[str, Any]:
        return {"admin": False, "seen": False, "status": "default", "used": 0}

    def recent(self) -> list[str]:
        return []


def _report_failure(event: Any, error: BaseException) -> None:
    """Lambda would send this to the failure queue; locally, say it where it is seen."""
    print(
        f"local: a worker invocation failed after its retries ({type(error).__name__}); "
        "see the log lines above",
        file=sys.stderr,
        flush=True,
    )


__all__ = ["EmbeddedAWS", "LocalStack", "Options", "StackError", "offline_responder"]
