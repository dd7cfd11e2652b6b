"""One captured test stack, one extracted archive and one full run, shared by the session."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.deploy.aws import start_moto
from tests.deploy.scenarios import Outcome, run
from tests.deploy.simulation import HOST_ARCHITECTURE, Operator, RuntimeFiles
from tests.deploy.stack import Declaration
from tests.infra.capture import capture_stack
from tests.support.lambda_runtime import python313, runtime_boto3

ADMIN = "1000000000009999"
SECRETS = {
    "appSecret": "deploy-app-secret-31c9d7",
    "pageAccessToken": "EAADeployPageToken-7e02aa",
    "openaiApiKey": "sk-deploy-openai-4b8f1c",
}


def far_timezone(now: datetime) -> str:
    """A zone whose date differs from UTC's right now, so a quota day counted in UTC shows."""
    return "Pacific/Kiritimati" if now.hour >= 10 else "Etc/GMT+12"  # UTC+14 / UTC-12


# Every setting differs from the handler's default, so a setting that does not arrive shows.
CONFIG = {
    "architecture": HOST_ARCHITECTURE,  # the archive runs on this machine
    "adminPsids": [ADMIN],
    "model": "deploy-sim-model",
    "systemPrompt": "You answer for the deploy simulation.",
    # Messenger's 2,000 characters, in a script the environment's 4 KB would refuse: from SSM.
    "welcomeMessage": ("Здравствуйте! Я автоматический помощник этой страницы. " * 40)[:2000],
    "iceBreakers": ["Когда открывается магазин?"],
    "temperature": "0.3",
    "maxTokens": 321,
    "dailyLimit": 4,
    "historyTtlHours": 5,
    "logLevel": "WARNING",
    "graphApiVersion": "v23.0",
    "quotaTimezone": far_timezone(datetime.now(UTC)),
    # The queue: small waits and few tries, so that a backoff and a message given up on
    # (dead-lettered after maxReceiveCount receives) take seconds, not minutes.
    "retryDelaySeconds": 1,
    "maxReceiveCount": 3,
    "maxConcurrency": 2,
}


@pytest.fixture(scope="session")
def operator() -> Operator:
    return Operator(
        config=CONFIG,
        app_secret=SECRETS["appSecret"],
        page_token=SECRETS["pageAccessToken"],
        openai_key=SECRETS["openaiApiKey"],
    )


@pytest.fixture(scope="session")
def declaration() -> Declaration:
    """The real ``__main__.py`` under Pulumi mocks, as stack ``deploy`` with CONFIG."""
    stack = capture_stack({**SECRETS, **CONFIG}, secret_keys=list(SECRETS), stack="deploy")
    return Declaration.from_capture(stack)


@pytest.fixture(scope="session")
def runtime_files(
    declaration: Declaration, tmp_path_factory: pytest.TempPathFactory
) -> RuntimeFiles:
    """The archive the program built, extracted once into a clean directory."""
    archive = declaration.function.archive
    task_root = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(archive) as z:
        z.extractall(task_root)
    python = python313()
    return RuntimeFiles(
        python=python,
        runtime_dir=runtime_boto3(python),
        archive=archive,
        task_root=task_root,
        pycache=tmp_path_factory.mktemp("pycache"),
    )


@pytest.fixture(scope="session")
def deploy_moto() -> Iterator[str]:
    """The simulation's own moto server, reset between stand-ups (IAM enforced during)."""
    server = start_moto()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def baseline(
    declaration: Declaration, runtime_files: RuntimeFiles, operator: Operator, deploy_moto: str
) -> Outcome:
    """The declared stack, stood up once, through every step."""
    return run(declaration, runtime_files, operator, deploy_moto, fail_fast=False)
