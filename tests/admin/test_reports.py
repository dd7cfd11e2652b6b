"""The usage report's arithmetic, without AWS: totals, ranges, what is left out."""

from __future__ import annotations

from datetime import date

import pytest

from admin.reports import MAX_RANGE_DAYS, build_report, check_range

FIRST, LAST = date(2026, 11, 20), date(2026, 11, 22)


def test_totals_per_user_per_day_and_overall():
    report = build_report(
        FIRST,
        LAST,
        {"1": {"2026-11-20": 2, "2026-11-22": 3}, "2": {"2026-11-22": 7}},
    )
    assert [(r.day, r.psid, r.questions) for r in report.rows] == [
        ("2026-11-20", "1", 2),
        ("2026-11-22", "1", 3),
        ("2026-11-22", "2", 7),
    ]
    assert [(u.psid, u.questions, u.active_days) for u in report.per_user] == [
        ("2", 7, 1),
        ("1", 5, 2),
    ]
    assert [(d.day, d.questions, d.users) for d in report.per_day] == [
        ("2026-11-20", 2, 1),
        ("2026-11-21", 0, 0),
        ("2026-11-22", 10, 2),
    ]
    assert (report.questions, report.users, report.active_days) == (12, 2, 2)


def test_counters_outside_the_range_and_zero_counts_are_ignored():
    # A zero is what give_back_question leaves when the only question got no answer.
    report = build_report(
        FIRST, LAST, {"1": {"2026-11-19": 5, "2026-11-23": 5, "2026-11-21": 0}, "2": {}}
    )
    assert report.rows == ()
    assert report.per_user == ()
    assert report.questions == 0
    assert len(report.per_day) == 3


def test_one_day_range():
    report = build_report(FIRST, FIRST, {"1": {"2026-11-20": 1}})
    assert [d.day for d in report.per_day] == ["2026-11-20"]
    assert report.questions == 1


def test_a_backwards_range_is_refused():
    with pytest.raises(ValueError, match="--from 2026-11-22 is after --to 2026-11-20"):
        check_range(LAST, FIRST)


def test_a_year_is_the_longest_range():
    check_range(date(2024, 1, 1), date(2024, 12, 31))  # 366 days, leap year
    with pytest.raises(ValueError, match=f"367 days; ask for at most {MAX_RANGE_DAYS}"):
        check_range(date(2024, 1, 1), date(2025, 1, 1))
