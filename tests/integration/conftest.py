from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.bridge import Bridge
from tests.support.processes import ChildServer


@pytest.fixture
def make_bridge(
    moto_server: ChildServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Bridge]]:
    made: list[Bridge] = []

    def make(**env: str) -> Bridge:
        bridge = Bridge(moto_server.url, monkeypatch, env)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.close()


@pytest.fixture
def bridge(make_bridge: Callable[..., Bridge]) -> Bridge:
    return make_bridge()
