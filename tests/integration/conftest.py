from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.bridge import Bridge


@pytest.fixture
def make_bridge(bridges: Callable[..., Bridge]) -> Callable[..., Bridge]:
    """``make_bridge(engine="dynamodb-local", DAILY_LIMIT="5")``; see ``bridge_on``."""
    return bridges


@pytest.fixture
def bridge(make_bridge: Callable[..., Bridge]) -> Bridge:
    return make_bridge()
