"""Which table and queues the CLI works on, in which account and region, with which quota
settings.

The CLI cannot read the Lambda's environment unless asked (``--function``), so each setting
comes from the first of: its option, the function's environment, a local variable, a default.
The table name and the queue URLs may also come from the Pulumi stack that created them; the
dead-letter queue also from the queue's redrive policy, and the queue from the dead-letter
queue's list of source queues.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from handler.defaults import DEFAULTS
from handler.settings import Env

from .errors import AdminError, UsageError

TABLE_VARIABLE = "BRIDGE_TABLE"
QUEUE_VARIABLE = "BRIDGE_QUEUE_URL"
DEAD_LETTER_VARIABLE = "BRIDGE_DLQ_URL"
# The Pulumi stack's outputs (``__main__.py`` exports them).
TABLE_OUTPUT = "tableName"
QUEUE_OUTPUT = "queueUrl"
DEAD_LETTER_OUTPUT = "deadLetterQueueUrl"
# A stack's own defaults (Pulumi.yaml, through handler/defaults.py) when nothing says more.
DEFAULT_DAILY_LIMIT: int = DEFAULTS["dailyLimit"]
DEFAULT_TIMEZONE: str = DEFAULTS["quotaTimezone"]
PULUMI_TIMEOUT_SECONDS = 120
# Where Pulumi.yaml lives: pulumi must run there to find the project, wherever we were started.
PROJECT_ROOT = Path(__file__).resolve().parents[1]

# An interactive tool may wait a little longer than the webhook, and retries throttling.
AWS_CONFIG = Config(
    connect_timeout=5, read_timeout=30, retries={"max_attempts": 4, "mode": "standard"}
)
NO_TABLE = "no table given: pass --table or set BRIDGE_TABLE"
NO_DEAD_LETTER_QUEUE = (
    "no dead-letter queue given: pass --dead-letter-url, --queue-url or --function, "
    "or set BRIDGE_DLQ_URL or BRIDGE_QUEUE_URL"
)
NO_QUEUE = "no queue to send messages back to: pass --queue-url or set BRIDGE_QUEUE_URL"


@dataclass(frozen=True)
class QueueHints:
    """Queue URLs known without asking SQS or Pulumi: from options, variables, the function."""

    queue_url: str | None = None
    queue_source: str | None = None  # --queue-url, BRIDGE_QUEUE_URL or --function
    dead_letter_url: str | None = None
    dead_letter_source: str | None = None  # --dead-letter-url or BRIDGE_DLQ_URL


@dataclass(frozen=True)
class Target:
    table: str
    table_source: str  # --table, BRIDGE_TABLE, --function or pulumi
    region: str | None
    daily_limit: int
    timezone: ZoneInfo
    queues: QueueHints = QueueHints()


def _pulumi(args: list[str], stack: str | None, missing: str = NO_TABLE) -> str:
    """Run the pulumi CLI in the project; its stdout, or an error that says what to do.

    ``missing`` is the sentence for what was not given, with the ways to give it instead.
    """
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        hint = " (--stack needs the pulumi CLI)" if stack else ""
        raise AdminError(f"{missing}{hint}")
    command = [pulumi, *args, "--non-interactive", *(["--stack", stack] if stack else [])]
    cwd = PROJECT_ROOT if (PROJECT_ROOT / "Pulumi.yaml").exists() else None
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=PULUMI_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AdminError(f"`pulumi {' '.join(args)}` failed ({error}); {missing}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise AdminError(f"`pulumi {' '.join(args)}` failed: {reason}; {missing}")
    return done.stdout.strip()


def pulumi_output(name: str, stack: str | None, missing: str) -> str:
    """One output of the stack (``pulumi stack output NAME``); an empty one is an error."""
    value = _pulumi(["stack", "output", name], stack, missing)
    if not value:
        raise AdminError(f"the Pulumi stack has no {name} output (deployed yet?); {missing}")
    return value


def pulumi_table(stack: str | None) -> str:
    return pulumi_output(TABLE_OUTPUT, stack, NO_TABLE)


def pulumi_region(stack: str | None) -> str | None:
    """The stack's ``aws:region``, for owners whose shell names no region of its own."""
    try:
        return _pulumi(["config", "get", "aws:region"], stack) or None
    except AdminError:
        return None


def aws_session(
    profile: str | None, region: str | None, env: Mapping[str, str]
) -> boto3.session.Session:
    """A boto3 session; ``AWS_ENDPOINT_URL`` and the usual variables apply as for any tool.

    boto3 reads only ``AWS_DEFAULT_REGION``; the AWS CLI and other SDKs also read
    ``AWS_REGION``, so an owner who set only that one gets it here too.
    """
    session = boto3.session.Session(profile_name=profile, region_name=region)
    if session.region_name is None and env.get("AWS_REGION", "").strip():
        session = boto3.session.Session(profile_name=profile, region_name=env["AWS_REGION"].strip())
    return session


def function_environment(session: boto3.session.Session, function: str) -> dict[str, str]:
    """The deployed function's variables: the settings the bot really runs with."""
    client: Any = session.client("lambda", config=AWS_CONFIG)
    config = client.get_function_configuration(FunctionName=function)
    return dict(config.get("Environment", {}).get("Variables", {}))


def choose_table(
    option: str | None,
    env: Mapping[str, str],
    function_env: Mapping[str, str],
    stack: str | None,
) -> tuple[str, str]:
    """The table name and where it came from: option, variable, function, then Pulumi."""
    if option:
        return option, "--table"
    if env.get(TABLE_VARIABLE, "").strip():
        return env[TABLE_VARIABLE].strip(), TABLE_VARIABLE
    if function_env.get(Env.TABLE_NAME, "").strip():
        return function_env[Env.TABLE_NAME].strip(), "--function"
    return pulumi_table(stack), "pulumi"


def parse_limit(raw: str, source: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise UsageError(f"{source} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise UsageError(f"{source} must not be negative, got {value}")
    return value


def choose_daily_limit(
    option: int | None, env: Mapping[str, str], function_env: Mapping[str, str]
) -> int:
    """The configured default limit, only for display: the bot applies its own."""
    if option is not None:
        return option
    for source, variables in (("the function's DAILY_LIMIT", function_env), ("DAILY_LIMIT", env)):
        raw = variables.get(Env.DAILY_LIMIT, "").strip()
        if raw:
            return parse_limit(raw, source)
    return DEFAULT_DAILY_LIMIT


def choose_timezone(
    option: str | None, env: Mapping[str, str], function_env: Mapping[str, str]
) -> ZoneInfo:
    """The zone whose midnight starts a quota day: "today" must mean what it means to the bot."""
    name = (
        option
        or function_env.get(Env.QUOTA_TIMEZONE, "").strip()
        or env.get(Env.QUOTA_TIMEZONE, "").strip()
        or DEFAULT_TIMEZONE
    )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r} (e.g. UTC, Europe/Paris)") from None


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str | None]:
    """The first non-blank value and where it came from."""
    for value, source in candidates:
        if value and value.strip():
            return value.strip(), source
    return None, None


def choose_queue_hints(
    args: Any, env: Mapping[str, str], function_env: Mapping[str, str]
) -> QueueHints:
    """The queue URLs given outright: option, then variable, then the function's QUEUE_URL.

    Nothing here asks AWS or Pulumi: commands that never touch a queue pay nothing for them.
    """
    queue, queue_source = _first(
        (getattr(args, "queue_url", None), "--queue-url"),
        (env.get(QUEUE_VARIABLE), QUEUE_VARIABLE),
        (function_env.get(Env.QUEUE_URL), "--function"),
    )
    dead, dead_source = _first(
        (getattr(args, "dead_letter_url", None), "--dead-letter-url"),
        (env.get(DEAD_LETTER_VARIABLE), DEAD_LETTER_VARIABLE),
    )
    return QueueHints(queue, queue_source, dead, dead_source)


class QueueLookup(Protocol):
    """What finding one queue from the other needs from SQS (``admin.queues.Sqs``)."""

    def url_of(self, queue: str) -> str: ...

    def dead_letter_of(self, queue_url: str) -> str | None: ...

    def sources_of(self, dead_letter_url: str) -> list[str]: ...


def find_dead_letter_queue(
    hints: QueueHints, lookup: QueueLookup, stack: str | None
) -> tuple[str, str]:
    """The dead-letter queue's URL and where it came from: given, the queue's redrive policy
    (the queue the function reads names its dead-letter queue), else the stack's output."""
    if hints.dead_letter_url:
        return lookup.url_of(hints.dead_letter_url), hints.dead_letter_source or "given"
    if hints.queue_url:
        found = lookup.dead_letter_of(lookup.url_of(hints.queue_url))
        if not found:
            raise AdminError(
                f"the queue {hints.queue_url} (from {hints.queue_source}) has no dead-letter "
                "queue in its redrive policy; pass --dead-letter-url"
            )
        return found, f"the redrive policy of the queue from {hints.queue_source}"
    return pulumi_output(DEAD_LETTER_OUTPUT, stack, NO_DEAD_LETTER_QUEUE), "pulumi"


def find_queue(
    hints: QueueHints, dead_letter_url: str, lookup: QueueLookup, stack: str | None
) -> tuple[str, str]:
    """The queue that messages go back to, and where it came from: given, else the one queue
    whose redrive policy names this dead-letter queue, else the stack's output."""
    if hints.queue_url:
        return lookup.url_of(hints.queue_url), hints.queue_source or "given"
    try:
        sources = lookup.sources_of(dead_letter_url)
    except ClientError:  # not allowed to list them, say: the stack may still know
        sources = []
    if len(sources) > 1:
        raise AdminError(
            f"{len(sources)} queues use this dead-letter queue ({', '.join(sources)}); "
            "pass --queue-url to say which one to send messages back to"
        )
    if sources:
        return sources[0], "the dead-letter queue's source"
    return pulumi_output(QUEUE_OUTPUT, stack, NO_QUEUE), "pulumi"


def resolve(args: Any, session: boto3.session.Session, env: Mapping[str, str]) -> Target:
    """Everything a command needs to know before it reads the table."""
    function_env = function_environment(session, args.function) if args.function else {}
    table, source = choose_table(args.table, env, function_env, args.stack)
    region = session.region_name
    if region is None and source == "pulumi":
        region = pulumi_region(args.stack)
    return Target(
        table=table,
        table_source=source,
        region=region,
        daily_limit=choose_daily_limit(args.daily_limit, env, function_env),
        timezone=choose_timezone(args.timezone, env, function_env),
        queues=choose_queue_hints(args, env, function_env),
    )
