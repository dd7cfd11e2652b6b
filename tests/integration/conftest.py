from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.bridge import Bridge, bridge_on
from tests.support.processes import ChildServer


@pytest.fixture
def make_bridge(
    request: pytest.FixtureRequest, moto_server: ChildServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Bridge]]:
    """``make_bridge(engine="dynamodb-local", DAILY_LIMIT="5")``; see ``bridge_on``."""
    made: list[Bridge] = []

    def make(engine: str = "moto", **env: str) -> Bridge:
        bridge = bridge_on(engine, request, moto_server.url, monkeypatch, env)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.close()


@pytest.fixture
def bridge(make_bridge: Callable[..., Bridge]) -> Bridge:
    return make_bridge()
