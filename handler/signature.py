"""Facebook's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>``."""

from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "sha256="
_SHAPE = re.compile(r"^sha256=[0-9a-fA-F]{64}$")


def sign(body: bytes, app_secret: str) -> str:
    """The header value Facebook sends for ``body``; the local simulator signs with it too."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return PREFIX + digest


def looks_signed(header: str | None) -> bool:
    """Whether the header could be a signature at all: checked before the secret is needed."""
    return header is not None and _SHAPE.match(header.strip()) is not None


def is_valid(body: bytes, header: str | None, app_secret: str) -> bool:
    if not header or not app_secret or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(sign(body, app_secret).encode(), header.strip().lower().encode())


def tokens_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison of the verify token."""
    if given is None or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
