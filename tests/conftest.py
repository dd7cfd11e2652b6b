"""Shared fixtures: local AWS servers, started once per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from handler import schema
from tests.support.processes import ChildServer, start_dynamodb_local, start_moto

# Every log line of the session, read for secrets; every metric line, held to the EMF spec.
pytest_plugins = ["tests.support.log_audit", "tests.support.metric_audit"]
# No test may ever reach a real AWS account: fake credentials, fixed region.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the long runs (load, fuzz)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    deselected = [item for item in items if "slow" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if "slow" not in item.keywords]


@pytest.fixture(autouse=True)
def _fresh_container() -> Iterator[None]:
    """Each test starts as a new container would: no parameter dropped, no alert known
    quiet, no unpriced model warned about (module state of the worker's modules)."""
    from handler import alerts, budget, llm

    for module in (alerts, budget, llm):
        module.forget_container_state()
    yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[ChildServer]:
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[ChildServer]:
    server = start_dynamodb_local()
    yield server
    server.stop()


def new_table(endpoint: str) -> tuple[object, str]:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    name = f"bridge-{uuid.uuid4().hex[:12]}"
    client.create_table(**schema.create_table_request(name))
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1})
    return client, name


@pytest.fixture
def bridges(
    request: pytest.FixtureRequest, moto_server: ChildServer
) -> Iterator[Callable[..., Any]]:
    """``bridges(engine="dynamodb-local", DAILY_LIMIT="5", queue={"batch_size": 1})``: whole
    bridges on loopback (see ``tests.support.bridge.bridge_on``), each closed when the test
    ends."""
    from tests.support.bridge import bridge_on

    made: list[Any] = []

    def make(engine: str = "moto", queue: dict[str, Any] | None = None, **env: str) -> Any:
        bridge = bridge_on(engine, request, moto_server.url, env, **(queue or {}))
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.close()
