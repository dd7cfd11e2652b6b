"""Fixtures for the stack tests: secrets with recognisable values and captured stacks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.infra.capture import CapturedStack, capture_stack

# Distinct, greppable values: a test fails if any of them shows up outside a secret.
SECRETS = {
    "appSecret": "app-secret-VALUE-7f3a",
    "pageAccessToken": "page-token-VALUE-91bc",
    "openaiApiKey": "sk-openai-VALUE-55d0",
}
VERIFY_TOKEN = "verify-token-VALUE-e2e2"


@pytest.fixture(scope="session")
def capture() -> Callable[..., CapturedStack]:
    """``capture(config, stack=...)``: the program run with the secrets plus ``config``."""

    def run(
        config: Mapping[str, Any] | None = None,
        stack: str = "test",
        secrets: Mapping[str, str] = SECRETS,
    ) -> CapturedStack:
        return capture_stack({**secrets, **(config or {})}, secret_keys=list(secrets), stack=stack)

    return run


@pytest.fixture(scope="module")
def stack(capture: Callable[..., CapturedStack]) -> CapturedStack:
    """The default stack: Pulumi.yaml's defaults and the three required secrets."""
    return capture()
