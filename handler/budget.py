"""Pure: what the model's answers cost, and whether a person or the page is over budget.

Tokens are the provider's own usage numbers (input + output, reasoning, photos and
transcription included); dollars are those numbers times the owner's price table
(``modelPrices``), kept as whole nano-dollars so that DynamoDB adds them exactly. A model the
table does not list is priced as the default model, with one warning per container.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .llm import Usage
from .logs import log
from .settings import DEFAULT_MODEL, Price

NANO = 1_000_000_000  # nano-dollars in a dollar
PER_TOKENS = 1_000_000  # prices are per million tokens
# whisper-1 is billed by the minute ($0.006), not by tokens.
DURATION_DOLLARS_PER_MINUTE = 0.006

_unpriced: set[str] = set()
_unpriced_lock = threading.Lock()


def forget_container_state() -> None:
    """Warn again about unpriced models, as a new container would (``app.reset``)."""
    with _unpriced_lock:
        _unpriced.clear()


@dataclass(frozen=True)
class Spend:
    """One question's tokens and estimated cost."""

    tokens: int = 0
    cost_nusd: int = 0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.tokens + other.tokens, self.cost_nusd + other.cost_nusd)


def price_of(model: str, prices: Mapping[str, Price], default_model: str = DEFAULT_MODEL) -> Price:
    """The model's price: by name, else by the longest listed name it extends (a dated
    snapshot, ``gpt-5-mini-2025-08-07``), else the default model's, with a warning once."""
    if model in prices:
        return prices[model]
    stems = [name for name in prices if model.startswith(name + "-")]
    if stems:
        return prices[max(stems, key=len)]
    with _unpriced_lock:
        first = model not in _unpriced
        _unpriced.add(model)
    if first:
        log.warning("budget.model_unpriced", model=model, priced_as=default_model)
    fallback = prices.get(default_model)
    if fallback is None:
        fallback = next(iter(prices.values()), Price(0.0, 0.0, 0.0))
    return fallback


def cost_nusd(usage: Usage, prices: Mapping[str, Price], default_model: str = DEFAULT_MODEL) -> int:
    """What one call cost, in nano-dollars."""
    if usage.audio_seconds and not usage.tokens:
        return round(usage.audio_seconds / 60 * DURATION_DOLLARS_PER_MINUTE * NANO)
    price = price_of(usage.model, prices, default_model)
    cached = min(usage.cached_tokens, usage.input_tokens)
    dollars = (
        (usage.input_tokens - cached) * price.input
        + cached * price.cached
        + usage.output_tokens * price.output
    ) / PER_TOKENS
    return round(dollars * NANO)


def spend(
    usages: Iterable[Usage], prices: Mapping[str, Price], default_model: str = DEFAULT_MODEL
) -> Spend:
    total = Spend()
    for usage in usages:
        total += Spend(usage.tokens, cost_nusd(usage, prices, default_model))
    return total


def over_tokens(used_today: int, limit: int) -> bool:
    """The person's daily token budget is spent (0 means none)."""
    return limit > 0 and used_today >= limit


def over_spend(cost_today_nusd: int, limit_usd: float) -> bool:
    """The page's daily spend cap is reached (0 means none)."""
    return limit_usd > 0 and cost_today_nusd >= round(limit_usd * NANO)


def dollars(nusd: int) -> str:
    """'$0.0123': enough digits for a day of a small page, not more."""
    value = nusd / NANO
    if value >= 10:
        return f"${value:,.2f}"
    return f"${value:.4f}"
