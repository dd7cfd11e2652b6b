"""The stand-ins wired together, in one place: what ``make local``, the tests and the benchmarks
run the real handler against.

AWS is moto (embedded in this process, or a server given by URL), with the table, the FIFO
queue and its dead-letter queue made as the stack makes them, and the secrets in SSM as
deployed (or in plain variables, as local runs read them). The Graph API is the Messenger
simulator, the model a fake OpenAI server, and Lambda's event source mapping the queue
poller, which calls the handler. ``start`` writes the function's environment into the
environment it is given (``os.environ`` by default); ``stop`` puts it back.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Self

import boto3
from botocore.config import Config

from handler.defaults import DEFAULTS
from handler.settings import SECRET_SOURCES, Env
from local.aws import (
    REGION,
    EmbeddedAWS,
    create_queues,
    create_table,
    create_topic,
    read_mail,
    store_secrets,
)
from local.event_source import Handler, QueuePoller
from local.graph import MessengerSimulator
from local.model import FakeOpenAI

FUNCTION_NAME = "messenger-bridge-local"
PAGE_ID = "100000000000001"
SECRET_NAMES = tuple(SECRET_SOURCES)  # app_secret, page_access_token, verify_token, openai...

_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 3})


@dataclass
class HarnessOptions:
    aws_url: str | None = None  # a running moto server; None embeds one
    dynamodb_url: str | None = None  # DynamoDB elsewhere (DynamoDB Local); None: aws_url
    name: str | None = None  # table and queue names; None: a fresh one
    secrets: Mapping[str, str] = field(default_factory=dict)  # by secret name
    secrets_in_ssm: bool = True  # as deployed; False: plain variables, as local runs
    # The mapping and redrive settings of a fresh stack (Pulumi.yaml's defaults).
    batch_size: int = DEFAULTS["batchSize"]
    max_concurrency: int = DEFAULTS["maxConcurrency"]
    max_receives: int = DEFAULTS["maxReceiveCount"]
    visibility_timeout: int = 30
    retry_delay_seconds: int = DEFAULTS["retryDelaySeconds"]
    function_timeout: float = 60.0
    settings: Mapping[str, str] = field(default_factory=dict)  # other handler variables
    handler: Handler | None = None  # None: handler.app.lambda_handler
    graph: MessengerSimulator | None = None  # None: a new simulator
    model: FakeOpenAI | None = None  # None: a new fake with its default echo
    use_model: bool = True  # False: no fake model (a real or compatible one is configured)
    use_graph: bool = True  # False: no simulator (the real Graph API is configured)
    poll: bool = True  # False: no poller (the caller consumes the queue itself)


class Harness:
    """``Harness(HarnessOptions(...)).start()``; everything stops with ``stop()``."""

    def __init__(self, options: HarnessOptions | None = None) -> None:
        self.options = options or HarnessOptions()
        self.name = self.options.name or f"bridge-{uuid.uuid4().hex[:12]}"
        self.embedded: EmbeddedAWS | None = None
        self.aws_url = ""
        self.dynamodb: Any = None
        self.sqs: Any = None
        self.ssm: Any = None
        self.queue_url = ""
        self.dead_letter_url = ""
        self.topic_arn = ""  # the owner's SNS topic (e-mail, when ownerEmail is set)
        self.mail_url = ""  # a queue subscribed to it: what the e-mail would say
        self.graph: MessengerSimulator | None = None
        self.model: FakeOpenAI | None = None
        self.poller: QueuePoller | None = None
        self.env: dict[str, str] = {}
        self._environ: MutableMapping[str, str] | None = None
        self._saved: dict[str, str | None] = {}
        self._owned: list[Any] = []  # what this harness started, and so stops

    @property
    def table(self) -> str:
        return self.name

    def client(self, service: str, endpoint: str | None = None) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint or self.aws_url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=_CLIENT_CONFIG,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, environ: MutableMapping[str, str] | None = None) -> Self:
        """Start everything, or nothing: a failure stops what had started and re-raises."""
        try:
            self._start(os.environ if environ is None else environ)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, environ: MutableMapping[str, str]) -> None:
        options = self.options
        if options.aws_url:
            self.aws_url = options.aws_url
        else:
            self.embedded = EmbeddedAWS().start()
            self._owned.append(self.embedded)
            self.aws_url = self.embedded.url
        dynamodb_url = options.dynamodb_url or self.aws_url
        self.dynamodb = self.client("dynamodb", dynamodb_url)
        self.sqs = self.client("sqs")
        self.ssm = self.client("ssm")
        create_table(self.dynamodb, self.table)
        self.queue_url, self.dead_letter_url = create_queues(
            self.sqs,
            self.name,
            visibility_timeout=options.visibility_timeout,
            max_receives=options.max_receives,
        )
        self.topic_arn, self.mail_url = create_topic(self.client("sns"), self.sqs, self.name)
        if options.use_graph:
            self.graph = options.graph or self._own(
                MessengerSimulator(options.secrets.get("page_access_token"), page_id=PAGE_ID)
            )
        if options.use_model:
            self.model = options.model or self._own(
                FakeOpenAI(api_key=options.secrets.get("openai_api_key") or None)
            )
        self.env = self.function_environment(dynamodb_url)
        if options.secrets_in_ssm and options.secrets:
            store_secrets(self.ssm, self.parameter_names(), options.secrets)
        self._apply(environ)
        from handler import app

        app.reset()
        if options.poll:
            self.poller = QueuePoller(
                self.sqs,
                self.queue_url,
                options.handler or app.lambda_handler,
                function_name=FUNCTION_NAME,
                batch_size=options.batch_size,
                max_concurrency=options.max_concurrency,
                timeout_seconds=options.function_timeout,
            ).start()

    def _own(self, server: Any) -> Any:
        server.start()
        self._owned.append(server)
        return server

    def parameter_names(self) -> dict[str, str]:
        return {secret: f"/{self.name}/{secret.replace('_', '-')}" for secret in SECRET_NAMES}

    def function_environment(self, dynamodb_url: str) -> dict[str, str]:
        """The variables the deployed function has, pointed at the stand-ins."""
        options = self.options
        env = {
            # Fake credentials and every AWS endpoint on loopback: nothing reaches an account.
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.aws_url,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
            "AWS_ENDPOINT_URL_SQS": self.aws_url,
            "AWS_ENDPOINT_URL_SSM": self.aws_url,
            "AWS_ENDPOINT_URL_SNS": self.aws_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            Env.TABLE_NAME: self.table,
            Env.QUEUE_URL: self.queue_url,
            Env.OWNER_TOPIC_ARN: self.topic_arn,
            Env.MAX_RECEIVES: str(options.max_receives),
            Env.RETRY_DELAY_SECONDS: str(options.retry_delay_seconds),
        }
        if self.graph is not None:
            env[Env.GRAPH_API_URL] = self.graph.graph_api_url
        if self.model is not None:
            env[Env.OPENAI_BASE_URL] = self.model.base_url
        if options.secrets_in_ssm and options.secrets:
            for secret, name in self.parameter_names().items():
                env[SECRET_SOURCES[secret][0]] = name
        else:
            for secret, value in options.secrets.items():
                env[SECRET_SOURCES[secret][1]] = value
        env.update(options.settings)
        return env

    def _apply(self, environ: MutableMapping[str, str]) -> None:
        self._environ = environ
        cleared = ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"]
        if self.options.secrets_in_ssm and self.options.secrets:
            cleared += [plain for _variable, plain in SECRET_SOURCES.values()]
        else:
            cleared += [variable for variable, _plain in SECRET_SOURCES.values()]
        for name in [*cleared, *self.env]:
            if name not in self._saved:
                self._saved[name] = environ.get(name)
        for name in cleared:
            environ.pop(name, None)
        environ.update(self.env)

    def set(self, name: str, value: str | None) -> None:
        """Change one variable of the function's environment (restored by ``stop``)."""
        assert self._environ is not None, "not started"
        if name not in self._saved:
            self._saved[name] = self._environ.get(name)
        if value is None:
            self._environ.pop(name, None)
            self.env.pop(name, None)
        else:
            self._environ[name] = value
            self.env[name] = value

    def stop(self) -> None:
        """Stop every part (newest first) and put the environment back; idempotent."""
        if self.poller is not None:
            self.poller.stop()
            self.poller = None
        for part in reversed(self._owned):
            with contextlib.suppress(Exception):  # stop the others whatever one of them does
                part.stop()
        self._owned.clear()
        if self._environ is not None:
            for name, value in self._saved.items():
                if value is None:
                    self._environ.pop(name, None)
                else:
                    self._environ[name] = value
            self._saved.clear()
            self._environ = None
        from handler import app

        app.reset()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests and the page look at -----------------------------------------------------

    def dead_letters(self) -> list[dict[str, Any]]:
        """What the dead-letter queue holds now (read without taking it)."""
        messages = self.sqs.receive_message(
            QueueUrl=self.dead_letter_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            AttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def owner_mail(self) -> list[dict[str, str]]:
        """What the owner's topic published since the last look (``subject``, ``body``)."""
        return read_mail(self.sqs, self.mail_url)

    def settle(self, timeout: float = 30.0) -> None:
        if self.poller is not None:
            self.poller.wait_idle(timeout)
