"""Prices, costs and budgets (pure), and the price table's setting."""

from __future__ import annotations

import logging
import re

import pytest

from handler import budget
from handler.llm import Usage
from handler.settings import Price, Settings, SettingsError, parse_model_prices

PRICES = parse_model_prices(["gpt-5-mini=0.25/0.025/2.00", "gpt-5-nano=0.05/0.005/0.40"])


def test_a_price_table_reads_as_dollars_per_million_tokens():
    assert PRICES["gpt-5-mini"] == Price(0.25, 0.025, 2.0)
    assert parse_model_prices(["m=3/5"]) == {"m": Price(3.0, 3.0, 5.0)}  # cached as input
    assert parse_model_prices([" spaced = 1 / 2 / 3 "]) == {"spaced": Price(1.0, 2.0, 3.0)}


@pytest.mark.parametrize(
    "item", ["gpt-5-mini", "m=1", "m=a/b/c", "=1/2/3", "m=1/2/3/4", "m=1..2/3"]
)
def test_a_price_that_is_not_one_is_refused_with_an_example(item: str):
    with pytest.raises(SettingsError, match=re.escape("e.g. gpt-5-mini=0.25/0.025/2.00")):
        parse_model_prices([item])


def test_cost_counts_fresh_cached_and_output_tokens_at_their_prices():
    usage = Usage("gpt-5-mini", input_tokens=10_000, cached_tokens=4_000, output_tokens=1_000)
    dollars = (6_000 * 0.25 + 4_000 * 0.025 + 1_000 * 2.00) / 1_000_000
    assert budget.cost_nusd(usage, PRICES) == round(dollars * budget.NANO) == 3_600_000


def test_a_dated_snapshot_is_priced_as_its_model():
    assert budget.price_of("gpt-5-nano-2025-08-07", PRICES) == PRICES["gpt-5-nano"]


def test_a_model_not_in_the_table_is_priced_at_the_dearest_row_and_warned_about_once():
    """Never under-priced: the spend cap errs on the safe side until the owner adds a price."""
    seen: list[str] = []
    table = parse_model_prices(
        ["gpt-5-mini=0.25/0.025/2.00", "gpt-5.4-mini=0.75/0.075/4.50", "gpt-5-nano=0.05/0.005/0.40"]
    )

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Catch()
    logging.getLogger("bridge").addHandler(handler)
    try:
        for _ in range(3):
            assert budget.price_of("o9-ultra", table) == table["gpt-5.4-mini"]
    finally:
        logging.getLogger("bridge").removeHandler(handler)
    assert seen == ["budget.model_unpriced"]
    assert budget.dearest(table) == ("gpt-5.4-mini", Price(0.75, 0.075, 4.5))
    assert budget.unpriced([Usage("o9-ultra", 5), Usage("gpt-5-mini-2025-08-07", 5)], table) == [
        "o9-ultra"
    ]
    assert budget.unpriced([Usage("whisper-1", audio_seconds=9.0)], table) == []  # by minute


def test_the_default_table_prices_the_current_small_models():
    """OpenAI's prices per million tokens (input/cached/output), as of 2026."""
    prices = Settings(table_name="t").model_prices
    assert prices["gpt-5.4-mini"] == Price(0.75, 0.075, 4.50)
    assert prices["gpt-5.4-nano"] == Price(0.20, 0.02, 1.25)
    assert prices["gpt-5-mini"] == Price(0.25, 0.025, 2.00)
    for name, price in prices.items():  # sane: cached never dearer than fresh input
        assert 0 < price.cached <= price.input and price.output > 0, name


def test_a_typical_exchange_costs_a_fraction_of_a_cent():
    # 1,500 tokens in (prompt, history), 300 out of which some reasoning: gpt-5-mini, low.
    typical = Usage("gpt-5-mini", 1_500, 0, 300)
    assert budget.dollars(budget.cost_nusd(typical, PRICES)) == "$0.0010"


def test_spend_adds_tokens_and_costs_of_every_call():
    calls = [Usage("gpt-5-mini", 100, 0, 10), Usage("gpt-5-nano", 1000, 0, 100)]
    spent = budget.spend(calls, PRICES)
    assert spent.tokens == 1210
    assert spent.cost_nusd == sum(budget.cost_nusd(u, PRICES) for u in calls)


def test_budgets_are_spent_at_their_limit_and_zero_means_none():
    assert budget.over_tokens(1000, 1000) and not budget.over_tokens(999, 1000)
    assert not budget.over_tokens(10**9, 0)
    assert budget.over_spend(budget.NANO * 5, 5.0) and not budget.over_spend(budget.NANO * 4, 5.0)
    assert not budget.over_spend(10**15, 0)
