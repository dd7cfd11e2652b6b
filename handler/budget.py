"""Pure: what the model's answers cost, and whether a person or the page is over budget.

Tokens are the provider's own usage numbers (input + output, reasoning, photos and
transcription included); dollars are those numbers times the owner's price table
(``modelPrices``), kept as whole nano-dollars so that DynamoDB adds them exactly. A model the
table does not list is priced at the dearest listed row, so that the spend cap errs on the
safe side, with one warning per container (and the bot tells the owner: ``unpriced``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .llm import Usage
from .logs import log
from .settings import Price

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


def listed(model: str, prices: Mapping[str, Price]) -> str | None:
    """The table's name for the model: its own, else the longest listed name it extends (a
    dated snapshot, ``gpt-5-mini-2025-08-07``); None when the table lacks it."""
    if model in prices:
        return model
    stems = [name for name in prices if model.startswith(name + "-")]
    return max(stems, key=len) if stems else None


def dearest(prices: Mapping[str, Price]) -> tuple[str, Price]:
    """The listed row that costs the most (output first, then input, then cached)."""
    if not prices:
        return "", Price(0.0, 0.0, 0.0)
    return max(prices.items(), key=lambda row: (row[1].output, row[1].input, row[1].cached))


def price_of(model: str, prices: Mapping[str, Price]) -> Price:
    """The model's price (``listed``), else the dearest listed row's, with a warning once: an
    unknown model is never under-priced."""
    name = listed(model, prices)
    if name is not None:
        return prices[name]
    priced_as, price = dearest(prices)
    with _unpriced_lock:
        first = model not in _unpriced
        _unpriced.add(model)
    if first:
        log.warning("budget.model_unpriced", model=model, priced_as=priced_as)
    return price


def unpriced(usages: Iterable[Usage], prices: Mapping[str, Price]) -> list[str]:
    """The models of ``usages`` the table does not list (whisper-1's minutes aside)."""
    models = {u.model for u in usages if u.tokens or not u.audio_seconds}
    return sorted(m for m in models if listed(m, prices) is None)


def cost_nusd(usage: Usage, prices: Mapping[str, Price]) -> int:
    """What one call cost, in nano-dollars."""
    if usage.audio_seconds and not usage.tokens:
        return round(usage.audio_seconds / 60 * DURATION_DOLLARS_PER_MINUTE * NANO)
    price = price_of(usage.model, prices)
    cached = min(usage.cached_tokens, usage.input_tokens)
    dollars = (
        (usage.input_tokens - cached) * price.input
        + cached * price.cached
        + usage.output_tokens * price.output
    ) / PER_TOKENS
    return round(dollars * NANO)


def spend(usages: Iterable[Usage], prices: Mapping[str, Price]) -> Spend:
    total = Spend()
    for usage in usages:
        total += Spend(usage.tokens, cost_nusd(usage, prices))
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
