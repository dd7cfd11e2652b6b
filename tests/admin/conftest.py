"""Fixtures for the admin CLI: a moto table seeded as the bot writes it, and a CLI runner.

The CLI runs in-process through ``admin.cli.main`` with boto3 pointed at moto by
``AWS_ENDPOINT_URL``, exactly as an owner would point it at a local stack.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from admin.cli import main
from handler.store import Store, TransactItem
from tests.conftest import new_table

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TODAY = "2026-11-25"
ALICE = "1000000000000001"  # default status, active today
BOB = "1000000000000002"  # unlimited
CAROL = "1000000000000003"  # own limit 25, a conversation kept
DAVE = "1000000000000004"  # blocked, quiet for a week
UNKNOWN = "1999999999999999"
FAR_FUTURE = int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())

# Questions per user per day, as the bot would have counted them.
COUNTS: dict[str, dict[str, int]] = {
    ALICE: {"2026-11-25": 4, "2026-11-24": 10, "2026-11-20": 1},
    BOB: {"2026-11-25": 30, "2026-11-23": 2},
    CAROL: {"2026-11-24": 5, "2026-10-01": 7},
    DAVE: {"2026-11-18": 3},
}
# Variables of the owner's shell that would change what the CLI does.
OWNER_VARIABLES = (
    "BRIDGE_TABLE",
    "BRIDGE_QUEUE_URL",
    "BRIDGE_DLQ_URL",
    "DAILY_LIMIT",
    "QUOTA_TIMEZONE",
    "AWS_PROFILE",
)


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Seeded:
    store: Store
    client: object
    table: str
    url: str


def seed(client: Any, store: Store) -> None:
    """Users and counters written through the bot's own Store calls: a user's record when
    they first write, their activity and each question counted in a transaction, as the
    worker does when it answers."""

    def write(item: TransactItem) -> None:
        client.transact_write_items(TransactItems=[item])

    store.create_user(DAVE, NOW - timedelta(days=7))
    store.set_status(DAVE, "blocked", NOW - timedelta(days=6))
    store.create_user(CAROL, NOW - timedelta(days=40))
    write(store.touch_item(CAROL, NOW - timedelta(days=1)))
    store.set_limit(CAROL, 25, NOW - timedelta(days=1))
    write(store.history_item(CAROL, [{"role": "user", "content": "hi"}] * 3, FAR_FUTURE))
    store.create_user(BOB, NOW - timedelta(days=2))
    write(store.touch_item(BOB, NOW - timedelta(hours=3)))
    store.set_status(BOB, "unlimited", NOW - timedelta(hours=3))
    store.create_user(ALICE, NOW - timedelta(days=5))
    write(store.touch_item(ALICE, NOW - timedelta(minutes=5)))
    for psid, days in COUNTS.items():
        for day, count in days.items():
            for _ in range(count):
                write(store.count_item(psid, day, FAR_FUTURE))


@pytest.fixture
def aws_env(moto_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 pointed at moto through its own variable; no owner settings leak in."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    for name in OWNER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return moto_server.url


def _seeded_table(url: str) -> Seeded:
    client, table = new_table(url)
    store = Store(client, table)
    seed(client, store)
    return Seeded(store, client, table, url)


@pytest.fixture(scope="module")
def _shared(moto_server) -> Seeded:
    return _seeded_table(moto_server.url)


@pytest.fixture
def seeded(aws_env: str, _shared: Seeded) -> Seeded:
    """The seeded table shared by a module's tests: only for commands that write nothing."""
    return _shared


@pytest.fixture
def fresh(aws_env: str) -> Seeded:
    """A seeded table of the test's own, for ``set`` and ``forget``."""
    return _seeded_table(aws_env)


@pytest.fixture
def empty_table(aws_env: str) -> str:
    _client, table = new_table(aws_env)
    return table


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("users", "--table", t)``: run the CLI at ``NOW`` and capture what it printed."""

    def run(*argv: str, now: datetime = NOW) -> Result:
        capsys.readouterr()
        code = main(list(argv), now=now)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def no_aws_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where nobody ran ``aws configure``: empty files, no key variables."""
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role lookup
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


class FakeTerminal:
    """A stream that says it is a terminal, for the paths people see interactively."""

    def __init__(self, text: str = "") -> None:
        self._buffer = io.StringIO(text)

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> object:
        return getattr(self._buffer, name)


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """``fake_pulumi(table=..., fail=...)``: a ``pulumi`` alone on PATH; returns its call log."""

    def install(
        table: str = "",
        fail: str = "",
        region: str = "us-east-1",
        queue: str = "",
        dead_letter: str = "",
    ) -> Path:
        folder = tmp_path / "bin"
        folder.mkdir(exist_ok=True)
        log = tmp_path / "pulumi-calls.log"
        script = folder / "pulumi"
        script.write_text(
            "#!/bin/sh\n"
            f'echo "$@" >> "{log}"\n'
            f'if [ -n "{fail}" ]; then echo "error: {fail}" >&2; exit 255; fi\n'
            'case "$1 $2 $3" in\n'
            f'  "stack output tableName") echo "{table}" ;;\n'
            f'  "stack output queueUrl") echo "{queue}" ;;\n'
            f'  "stack output deadLetterQueueUrl") echo "{dead_letter}" ;;\n'
            f'  "config get aws:region") echo "{region}" ;;\n'
            '  *) echo "error: unexpected command: $*" >&2; exit 1 ;;\n'
            "esac\n"
        )
        script.chmod(0o755)
        monkeypatch.setenv("PATH", str(folder))
        return log

    return install


def make_function(url: str, variables: dict[str, str]) -> str:
    """A Lambda function in moto with these environment variables, as ``--function`` reads."""
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    name = f"bridge-{uuid.uuid4().hex[:8]}"
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1")
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("lambda", endpoint_url=url, region_name="us-east-1").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": variables},
    )
    return name
