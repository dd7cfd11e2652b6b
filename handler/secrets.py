"""The four secrets, from SSM SecureString parameters in one call at cold start, then cached.

Where no parameter names are configured (local runs), they come from the environment. The
settings' free texts (system prompt, privacy page, welcome, ice breakers) live in parameters
too on a deployed function, the environment's 4 KB being too small for them in most scripts,
and come in the same call: no round trip of their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .clients import aws
from .logs import register_secrets
from .settings import SECRET_SOURCES, Settings, parse_ice_breakers


class SecretsError(RuntimeError):
    """A secret is missing or unreadable. The message names the secret, never its value."""


# The Settings fields a parameter's text fills, with the field naming that parameter. With
# the four secrets, at most 10: what one GetParameters call takes.
TEXT_PARAMETERS: dict[str, str] = {
    "system_prompt": "system_prompt_parameter",
    "privacy_text": "privacy_text_parameter",
    "welcome_message": "welcome_message_parameter",
    "ice_breakers": "ice_breakers_parameter",
}
# A text that is not the field's value as is (the ice breakers: a JSON list, as ICE_BREAKERS).
_PARSERS: dict[str, Callable[[str], Any]] = {"ice_breakers": parse_ice_breakers}


@dataclass(frozen=True)
class Secrets:
    app_secret: str
    page_access_token: str
    verify_token: str
    openai_api_key: str

    def __repr__(self) -> str:  # keep values out of tracebacks and debug prints
        return "Secrets(<redacted>)"


def _from_parameters(names: Mapping[str, str]) -> dict[str, str]:
    response = aws("ssm").get_parameters(Names=sorted(set(names.values())), WithDecryption=True)
    if response.get("InvalidParameters"):
        missing = ", ".join(response["InvalidParameters"])
        raise SecretsError(f"SSM parameters not found: {missing}")
    by_name = {p["Name"]: p["Value"] for p in response.get("Parameters", [])}
    return {secret: by_name.get(name, "") for secret, name in names.items()}


def text_parameters(settings: Settings) -> dict[str, str]:
    """Texts too long for the environment, by the Settings field they fill: fetched in the
    same call as the secrets."""
    names = {field: getattr(settings, named_by) for field, named_by in TEXT_PARAMETERS.items()}
    return {field: name for field, name in names.items() if name}


def load_parameters(
    settings: Settings, env: Mapping[str, str] | None = None
) -> tuple[Secrets, dict[str, Any]]:
    """The secrets, and the settings that parameters hold (by Settings field)."""
    texts = text_parameters(settings)
    names = {**settings.secret_parameters, **texts}
    values = _from_parameters(names) if names else {}
    fetched = {field: values.pop(field).strip() for field in texts if values.get(field, "").strip()}
    for field in texts:
        values.pop(field, None)
    for field, parse in _PARSERS.items():
        if field in fetched:
            fetched[field] = parse(fetched[field])
    return load_secrets(settings, env, values), fetched


def load_secrets(
    settings: Settings, env: Mapping[str, str] | None = None, fetched: dict[str, str] | None = None
) -> Secrets:
    env = os.environ if env is None else env
    if fetched is not None:
        values = dict(fetched)
    else:
        values = _from_parameters(settings.secret_parameters) if settings.secret_parameters else {}
    for secret, (_param_var, plain_var) in SECRET_SOURCES.items():
        if secret not in settings.secret_parameters:
            values[secret] = env.get(plain_var, "")
    # The model key may be empty for OpenAI-compatible servers that need none.
    missing = [s for s in ("app_secret", "page_access_token", "verify_token") if not values[s]]
    if missing:
        raise SecretsError("secrets not configured: " + ", ".join(missing))
    register_secrets(*values.values())
    return Secrets(**values)
