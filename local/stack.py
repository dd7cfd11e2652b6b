"""The whole bridge on this machine, with no account anywhere: what ``make local`` starts.

The real handler code runs in this process, wired to the stand-ins by ``local.harness``:
DynamoDB, the SQS FIFO queue and its dead-letter queue are moto's server (in-process, on
loopback), a queue poller standing in for Lambda's event source mapping hands the queued
messages to the handler, the Graph API is the Messenger simulator, and without an OpenAI key
the model is an offline echo. The chat page and the webhook share one port in front. Every
part binds 127.0.0.1; ``stop()`` ends them all and restores the environment it changed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Self

from handler import app
from handler.defaults import DEFAULTS
from handler.profile import DEFAULT_LOCALE, messenger_profile, problems
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
from local.aws import REGION, EmbeddedAWS, create_table
from local.event_source import QueuePoller
from local.graph import MessengerSimulator
from local.harness import FUNCTION_NAME, PAGE_ID, Harness, HarnessOptions
from local.model import ECHO_NOTE, FakeOpenAI, echo_responder, last_user_text
from local.webapp import ChatServer, GraphError, graph_call

OWNER_PSID = "1000000000000001"
PAGE_NAME = "Local Page"  # the simulator's
TABLE_NAME = "messenger-bridge-local"  # the queues are named after it
DEFAULT_PORT = 8000
DEFAULT_MODEL_LATENCY = 0.6
# The queue as deployed, with quicker retries: someone is watching the page. A message the
# worker reports failed is tried again after 1 s, 3 s, 9 s and 27 s (deployed: 10 s, 30 s...),
# and after MAX_RECEIVES receives SQS moves it to the dead-letter queue.
RETRY_DELAY_SECONDS = 1
MAX_RECEIVES: int = DEFAULTS["maxReceiveCount"]
BATCH_SIZE: int = DEFAULTS["batchSize"]
MAX_CONCURRENCY: int = DEFAULTS["maxConcurrency"]
# Room for a slow model (a local Ollama, say). Lambda refuses a mapping whose queue hides a
# message for less than the function may run, so the visibility timeout, after which a batch
# that crashed or timed out comes back, is the same.
FUNCTION_TIMEOUT_SECONDS = 60.0
VISIBILITY_TIMEOUT_SECONDS = 60
# How long stopping waits for a batch in progress (the echo model is cut off first).
STOP_WAIT_SECONDS = 3.0
DEAD_LETTER_CHECK_SECONDS = 1.0
LONG_ANSWER_WORDS = "long answer"
FACEBOOK_SECRETS = ("APP_SECRET", "PAGE_ACCESS_TOKEN", "VERIFY_TOKEN")
# A FIFO queue name is letters, digits, - and _, at most 80 characters with "-dead.fifo".
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{3,70}")
# The page's profile settings the stack keeps to itself (the function never reads them):
# here from the environment, in the shapes of the stack's config keys greeting, greetings and
# menuLinks, as ICE_BREAKERS is (a JSON list, like the function's).
GREETING = "GREETING"  # the default locale's greeting, plain text
GREETINGS = "GREETINGS"  # JSON list of "locale=text", like '["fr_FR=Bonjour !"]'
MENU_LINKS = "MENU_LINKS"  # JSON list of "Title=https://url"
LOCALE = re.compile(r"[a-z]{2,3}_[A-Z]{2}")  # Messenger's, as the stack checks them

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
    # Three paragraphs of about 1000 characters: three bubbles (any two are over 2000, with
    # the echo's note or without), within the default max_tokens (2000 tokens, about 8000
    # characters) that would cut a longer answer.
    "When you send a message, the page signs it with the app secret exactly as Facebook "
    "signs a webhook delivery and posts it to this process's /webhook. There it becomes a "
    "Lambda Function URL event for the real handler, which checks the signature, puts the "
    "message on an SQS FIFO queue, one message group per person, and answers 200 within "
    "milliseconds: Facebook wants quick answers, and a model may take many seconds. A "
    "poller standing in for Lambda's event source mapping takes batches off the queue and "
    "hands them to the worker, the same function: each person's messages one at a time, in "
    "the order they were sent, and different people in parallel. The worker claims the "
    "event in DynamoDB first, so that a delivery Facebook repeats is answered once only. "
    "Then it looks the person up, telling the owner about a newcomer with three buttons: "
    "allow unlimited questions, keep the default daily limit, or block. Commands such as "
    "/help, /usage and /reset are answered right there, without the model and without "
    "counting a question.",
    "An ordinary question is counted only once the model has answered, in the same write "
    "that records the answer, and the answer is recorded before it is sent: a failure "
    "before the answer costs the person nothing, and a retry after it sends the recorded "
    "answer without asking the model, or counting, a second time. The worker marks the "
    "message seen, shows the typing indicator, loads the last turns of the conversation "
    "and asks the model. A Messenger text bubble holds at most 2000 characters, so a long "
    "answer like this one is split at the most natural boundary that fits: after a "
    "paragraph if there is one, else after a sentence, else between words. Each part is "
    "sent as its own bubble, in order, and a retry never sends again the parts already "
    "sent. When the model or the Send API fails, the worker reports the message failed and "
    "the queue hands it back a little later, here after one second, then three, then nine, "
    "while the person's later messages wait behind it. This paragraph is the second bubble "
    "of three.",
    "Everything here runs the code that is deployed; only the addresses change. DynamoDB "
    "and the FIFO queue live in moto's server inside this process, the poller plays the "
    "event source mapping with its batches, partial batch responses and concurrency cap, "
    "and a message that fails five times goes to the dead-letter queue instead of holding "
    "up the person's next ones. The Graph API is a simulator that records what the bot "
    "sends so that this page can show it, and the model is this offline echo: set "
    "OPENAI_API_KEY and start again for real answers. docs/LOCAL.md shows how to point a "
    "real page's webhook at this very process through a tunnel, and docs/DEPLOY.md how to "
    "deploy the same code to AWS with Pulumi. Until then, switch between people on the "
    "left, go over the daily limit, and approve newcomers as the Owner. Nothing here "
    "needs an account, and everything is gone when you press Ctrl-C: the table and the "
    "queues live in memory, and every server that this process started stops with it. "
    "This is the third bubble.",
)


def offline_responder(body: dict[str, Any]) -> str:
    """The echo model, plus a long canned answer on request to show bubbles being split.

    It says it is an echo in the first answer of a conversation only (the request then holds
    no earlier answer), not under every reply: the page says so once, in its banner, too.
    """
    note = [] if _has_earlier_answer(body) else [ECHO_NOTE]
    if LONG_ANSWER_WORDS in last_user_text(body).lower():
        return "\n\n".join([*_LONG_ANSWER, *note])
    if note:
        return echo_responder(body)
    return f"Echo: {last_user_text(body)}"


def _has_earlier_answer(body: dict[str, Any]) -> bool:
    """Whether a chat-completions (or Responses API) request carries an earlier answer."""
    items = body.get("messages", body.get("input"))
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("role") == "assistant" for item in items
    )


# -- what the page reads --------------------------------------------------------------------


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
        now = datetime.now(UTC)
        usage = self.store.usage(counted, day_key(now, self.settings.tz), self.settings.daily_limit)
        pause = self.store.get_pause(psid)
        paused_until = pause.until if pause and pause.active(int(now.timestamp())) else None
        return {
            "admin": admin,
            "seen": seen,
            "status": user.status,
            "used": usage.used,
            "limit": usage.limit,
            "left": usage.left,
            "pausedUntil": paused_until,
        }

    def recent(self) -> list[str]:
        return [user.psid for user in self.store.recent_users(50)]


# -- the stack ------------------------------------------------------------------------------


class LocalStack:
    """Starts every part, points the handler at them through its environment, stops them.

    ``env`` is the environment the handler reads (``os.environ``); what ``start`` changes
    in it is put back by ``stop``. The AWS side, the simulator and the queue poller are a
    ``local.harness.Harness``; this adds the chat page, the echo model and the choices.
    """

    def __init__(self, options: Options, env: MutableMapping[str, str] | None = None) -> None:
        self.options = options
        self.env: MutableMapping[str, str] = os.environ if env is None else env
        self._saved: dict[str, str | None] = {}
        self.harness: Harness | None = None
        self.model: FakeOpenAI | None = None  # the echo model (a harness never stops it)
        self.chat: ChatServer | None = None
        self.settings: Settings | None = None
        self.graph_mode: GraphMode = "simulator"
        self.model_choice = ModelChoice("echo", "")
        self.table_name = TABLE_NAME
        self.generated_secrets: list[str] = []
        self.admins: tuple[str, ...] = ()
        self.notes: list[str] = []
        self.profile: dict[str, Any] | None = None  # the Messenger profile set on the simulator
        self._secrets: dict[str, str] = {}  # by secret name, as the harness takes them
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- the parts -------------------------------------------------------------------------

    @property
    def aws(self) -> EmbeddedAWS | None:
        return self.harness.embedded if self.harness is not None else None

    @property
    def graph(self) -> MessengerSimulator | None:
        return self.harness.graph if self.harness is not None else None

    @property
    def poller(self) -> QueuePoller | None:
        return self.harness.poller if self.harness is not None else None

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
            app_secret=self._secrets["app_secret"],
            page_id=PAGE_ID,
            simulator=None,
            page_token=self._secrets["page_access_token"],
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

        # Whatever ~/.aws holds, nothing here can reach a real account.
        self._set("AWS_CONFIG_FILE", os.devnull)
        self._set("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        if self.model_choice.kind == "echo":
            self.model = FakeOpenAI(offline_responder, latency=options.model_latency).start()
            self._set("OPENAI_API_KEY", None)  # a key set anyway never leaves for the echo
        self.harness = Harness(
            HarnessOptions(
                name=self.table_name,
                secrets=self._secrets,
                secrets_in_ssm=False,  # local runs read the plain variables
                batch_size=BATCH_SIZE,
                max_concurrency=MAX_CONCURRENCY,
                max_receives=MAX_RECEIVES,
                visibility_timeout=VISIBILITY_TIMEOUT_SECONDS,
                retry_delay_seconds=RETRY_DELAY_SECONDS,
                function_timeout=FUNCTION_TIMEOUT_SECONDS,
                handler=app.lambda_handler,
                model=self.model,
                use_model=self.model is not None,
                use_graph=self.graph_mode == "simulator",
            )
        ).start(self.env)

        try:
            self.settings = load_settings(self.env)
        except SettingsError as error:
            raise StackError(str(error)) from None
        if self.profile is not None:
            self._apply_profile()
        self.chat.simulator = self.harness.graph
        if self.harness.graph is not None:  # message_echoes, as a page subscribed to them
            self.harness.graph.deliver_echoes(self.chat.post_webhook)
        self.chat.directory = StoreDirectory(
            Store(self.harness.dynamodb, self.harness.table), self.settings
        )
        self.chat.config = self.page_config()
        self._watch_dead_letters()

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
        plain = {plain: secret for secret, (_variable, plain) in SECRET_SOURCES.items()}
        for name in FACEBOOK_SECRETS:
            value = self._get(name)
            if not value:
                value = secrets.token_urlsafe(24)
                self.generated_secrets.append(name)
            self._secrets[plain[name]] = value
        for variable, _plain in SECRET_SOURCES.values():
            if self._get(variable):  # the harness clears them for the run
                self.notes.append(f"{variable} is ignored: local runs read secrets from env")

        table = self._get(Env.TABLE_NAME) or TABLE_NAME
        if not QUEUE_NAME.fullmatch(table):
            raise StackError(
                f"{Env.TABLE_NAME} names the queues too: use 3 to 70 letters, digits, - or _"
            )
        self.table_name = table

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
        try:  # every other setting, before anything starts
            settings = load_settings({**self.env, Env.TABLE_NAME: table})
        except SettingsError as error:
            raise StackError(str(error)) from None
        # The page's Messenger profile, from the same settings as the stack's: the ice breakers
        # the function gets (ICE_BREAKERS), the greetings and menu links it never reads.
        greetings = dict(_pairs(self._get(GREETINGS), GREETINGS, "locale=text"))
        for locale in greetings:
            if locale == DEFAULT_LOCALE or not LOCALE.fullmatch(locale):
                raise StackError(
                    f"{GREETINGS}: {locale!r} is not a Messenger locale like fr_FR "
                    f"(the default locale's greeting is {GREETING})"
                )
        greeting = self._get(GREETING)
        links = _pairs(self._get(MENU_LINKS), MENU_LINKS, "Title=https://url")
        for name, found in (
            (GREETING, problems({DEFAULT_LOCALE: greeting}, (), ())),
            (GREETINGS, problems(greetings, (), ())),
            (Env.ICE_BREAKERS, problems({}, settings.ice_breakers, ())),
            (MENU_LINKS, problems({}, (), links)),
        ):
            if found:
                raise StackError(f"{name}: " + "; ".join(found))
        if greeting:
            greetings[DEFAULT_LOCALE] = greeting
        if self.graph_mode == "simulator":  # a real page's profile is `pulumi up`'s to set
            self.profile = messenger_profile(greetings, settings.ice_breakers, links)

        key, base = self._get("OPENAI_API_KEY"), self._get(Env.OPENAI_BASE_URL)
        model = self._get(Env.OPENAI_MODEL) or DEFAULT_MODEL
        if options.echo or not (key or base):
            why = "--echo" if options.echo else "no OPENAI_API_KEY"
            self.model_choice = ModelChoice("echo", f"offline echo model ({why})")
            return
        if key:
            self._secrets["openai_api_key"] = key
        if base:
            self.model_choice = ModelChoice(
                "compatible", f"OpenAI-compatible server at {base}, model {model}"
            )
        else:
            self.model_choice = ModelChoice("openai", f"OpenAI API, model {model}")

    def _apply_profile(self) -> None:
        """Set the page's Messenger profile on the simulator, over HTTP, as the stack does.

        One ``POST /me/messenger_profile`` with the page token, of what the handler's
        ``messenger_profile`` builds from the stack's settings: the page reads it back from
        the simulator, so it shows the Get Started screen and the menu a real page gets.
        """
        assert self.settings is not None and self.profile is not None
        url = f"{self.settings.graph_api_url}/me/messenger_profile"
        try:
            graph_call("POST", url, self._secrets["page_access_token"], self.profile)
        except GraphError as error:
            raise StackError(f"the simulator refused the Messenger profile: {error}") from None

    def _watch_dead_letters(self) -> None:
        """Lambda's failures would wait on the dead-letter queue for the owner, and the owner's
        e-mails (``ownerEmail``) go out through the stack's topic: say so here."""
        harness = self.harness
        assert harness is not None
        sqs = harness.client("sqs")
        queue, name = harness.dead_letter_url, _queue_name(harness.dead_letter_url)

        def watch() -> None:
            seen = 0
            while not self._watching.wait(DEAD_LETTER_CHECK_SECONDS):
                try:
                    count = _depth(sqs, queue)
                except Exception:  # stopping, say: look again
                    continue
                if count > seen:
                    moved = count - seen
                    print(
                        f"local: {moved} message{'s' if moved > 1 else ''} moved to the "
                        f"dead-letter queue {name} after {MAX_RECEIVES} receives; the "
                        "record.retry log lines above say why",
                        file=sys.stderr,
                        flush=True,
                    )
                seen = count
                try:
                    mails = harness.owner_mail()
                except Exception:  # stopping, say: look again
                    mails = []
                for mail in mails:
                    print(
                        f"local: e-mail to the owner (ownerEmail): {mail['subject']}",
                        file=sys.stderr,
                        flush=True,
                    )

        self._watching.clear()
        self._watcher = threading.Thread(target=watch, name="dead-letters", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """Stop every part (newest first) and put the environment back; idempotent."""
        self._watching.set()
        if self._watcher is not None:
            self._watcher.join(DEAD_LETTER_CHECK_SECONDS + 5)
            self._watcher = None
        harness, poller = self.harness, self.poller
        steps: list[tuple[str, Any]] = [("chat page", self.chat and self.chat.stop)]
        if poller is not None:
            # No new batches; the echo model cut off, so the batch in progress ends quickly.
            steps.append(("queue poller", poller.pause))
        steps.append(("echo model", self.model and self.model.stop))
        if poller is not None:
            steps.append(("queue poller", lambda: poller.stop(STOP_WAIT_SECONDS)))
        steps.append(("AWS, simulator", harness and harness.stop))
        for name, step in steps:
            if not step:
                continue
            try:
                step()
            except Exception:  # stop the others whatever one of them does
                log.exception("stopping the %s failed", name)
        self.chat = self.model = self.harness = None
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
            "humanPauseMinutes": self.settings.human_pause_minutes,
            "owner": self.admins[0],
            "admins": list(self.admins),
            "webhook": "/webhook",
            "longAnswerWords": LONG_ANSWER_WORDS if self.model_choice.kind == "echo" else None,
        }

    def summary(self) -> list[str]:
        """The lines printed at start: where to go, what answers, what is real."""
        from handler.batch import backoff_seconds

        assert self.chat is not None and self.harness is not None and self.settings is not None
        harness = self.harness
        base = self.chat.url
        verify = (
            f"{self._secrets['verify_token']} (random for this run)"
            if "VERIFY_TOKEN" in self.generated_secrets
            else "from VERIFY_TOKEN"
        )
        waits = [f"{backoff_seconds(n, RETRY_DELAY_SECONDS)} s" for n in range(1, MAX_RECEIVES)]
        retries = f"{', '.join(waits[:-1])} and {waits[-1]}" if len(waits) > 1 else "".join(waits)
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
            if self.profile is not None:
                lines.append(f"  Page profile: {self.profile_summary()}")
        else:
            lines.append(
                f"  Graph API:    REAL, {self.settings.graph_api_url}: replies go to real people; "
                "the chat page is off"
            )
        lines += [
            f"  Storage:      embedded DynamoDB (moto) at {harness.aws_url}, table "
            f"{self.settings.table_name}; gone when this stops",
            "  Queue:        FIFO queue (moto) + queue poller standing in for Lambda's event "
            "source mapping",
            f"                {_queue_name(harness.queue_url)}, one message group per person; "
            f"a failed message is tried again after {retries}",
            f"  Dead letters: FIFO dead-letter queue {_queue_name(harness.dead_letter_url)}, "
            f"after {MAX_RECEIVES} receives",
            f"  Daily limit:  {self.settings.daily_limit} questions; owner PSID "
            + ", ".join(self.admins),
            "  Admin CLI:    in another terminal, for this bot's table and queues:",
            f"                {self.admin_command('users')}",
            *(f"  Note: {note}" for note in self.notes),
            "Press Ctrl-C to stop.",
        ]
        return lines

    def profile_summary(self) -> str:
        """What the Messenger profile set on the simulator holds, in a line."""
        profile = self.profile or {}
        menu = [
            action.get("title", "")
            for locale in profile.get("persistent_menu", [])[:1]
            for action in locale.get("call_to_actions", [])
        ]
        questions = sum(
            len(locale.get("call_to_actions", [])) for locale in profile.get("ice_breakers", [])
        )
        locales = len(profile.get("greeting", []))
        greeting = f"greeting ({locales} locales)" if locales > 1 else "greeting"
        parts = ["Get Started" if "get_started" in profile else "", greeting]
        if questions:
            # Meta shows ice breakers set by the API instead of the Get Started button.
            shown = " (shown instead of Get Started)" if "get_started" in profile else ""
            parts.append(f"{questions} ice breaker{'s' if questions > 1 else ''}{shown}")
        parts.append(f"menu ({', '.join(menu)})")
        return ", ".join(p for p in parts if p) + ": the stack's, set on the simulator"

    def admin_command(self, command: str) -> str:
        """``python -m admin`` pointed at this run: endpoint, region, dummy credentials, names."""
        assert self.harness is not None and self.settings is not None
        env = (
            f"AWS_ENDPOINT_URL={self.harness.aws_url} AWS_REGION={REGION} "
            "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
        )
        where = (
            f"--table {self.settings.table_name} "
            f"--dead-letter-url {_queue_name(self.harness.dead_letter_url)}"
        )
        return f"{env} {sys.executable} -m admin {where} {command}"


class _NoDirectory:
    """Stands in until the store is up (the server binds its port first)."""

    def usage(self, psid: str) -> dict[str, Any]:
        return {"admin": False, "seen": False, "status": "default", "used": 0}

    def recent(self) -> list[str]:
        return []


def _pairs(raw: str, name: str, shape: str) -> tuple[tuple[str, str], ...]:
    """A JSON list of ``name=value`` items (split at the first ``=``: a URL may hold more),
    as the stack's config takes them; empty when unset."""
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise StackError(f"{name} must be a JSON list of {shape} items")
    pairs = []
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise StackError(f"{name}: each item is {shape}; got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _depth(sqs: Any, queue_url: str) -> int:
    """Messages on a queue, visible or not."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


# EmbeddedAWS and create_table live in local.aws; importable from here as they were.
__all__ = [
    "REGION",
    "EmbeddedAWS",
    "LocalStack",
    "Options",
    "StackError",
    "create_table",
    "offline_responder",
]
