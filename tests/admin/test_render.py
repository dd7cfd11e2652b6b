"""Tables line up, CSV and JSON stay machine-readable, dates read like a person wrote them."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from admin import render
from admin.progress import CLEAR_LINE, Progress
from admin.render import Column
from tests.admin.conftest import FakeTerminal

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_table_aligns_text_left_and_numbers_right():
    text = render.table(
        [Column("NAME"), Column("COUNT", right=True), Column("NOTE")],
        [["alice", 5, "x"], ["bob", 12345, ""]],
    )
    assert text.splitlines() == [
        "NAME   COUNT  NOTE",
        "alice      5  x",
        "bob    12345",
    ]


def test_csv_quotes_what_needs_quoting_and_leaves_none_empty():
    text = render.to_csv(["a", "b"], [["x,y", None], ['say "hi"', 3]])
    assert list(csv.reader(io.StringIO(text))) == [["a", "b"], ["x,y", ""], ['say "hi"', "3"]]
    assert text.endswith("\n") and "\r" not in text


def test_json_is_indented_and_keeps_unicode():
    assert json.loads(render.to_json({"name": "Zoë"})) == {"name": "Zoë"}
    assert "Zoë" in render.to_json({"name": "Zoë"})


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=20), "just now"),
        (timedelta(minutes=5), "5 min ago"),
        (timedelta(hours=3, minutes=59), "3 h ago"),
        (timedelta(hours=47), "47 h ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=90), "3 months ago"),
        (timedelta(minutes=-5), "in the future"),
    ],
)
def test_ago(delta: timedelta, text: str):
    assert render.ago(delta) == text


def test_human_time_is_in_the_quota_zone():
    stamp = "2026-11-25T09:00:00+00:00"
    assert render.human_time(stamp, NOW, ZoneInfo("UTC")) == "2026-11-25 09:00 (3 h ago)"
    paris = render.human_time(stamp, NOW, ZoneInfo("Europe/Paris"))
    assert paris == "2026-11-25 10:00 (3 h ago)"


def test_stamps_that_are_missing_or_odd_are_shown_not_fatal():
    utc = ZoneInfo("UTC")
    assert render.human_time("", NOW, utc) == "-"
    assert render.human_time("yesterday", NOW, utc) == "yesterday"
    assert render.iso_stamp("") is None
    assert render.iso_stamp("2026-11-25T09:00:00") == "2026-11-25T09:00:00+00:00"  # naive: UTC


def test_fields_line_values_up():
    assert render.fields([("A", 1), ("Longer", "x")]) == "A       1\nLonger  x\n"


def test_progress_is_silent_unless_stderr_is_a_terminal():
    quiet = io.StringIO()
    with Progress(quiet) as progress:
        progress.show("Scanning… 1 user")
    assert quiet.getvalue() == ""

    terminal = FakeTerminal()
    with Progress(terminal) as progress:  # type: ignore[arg-type]
        progress.show("Scanning… 1 user")
    assert terminal.getvalue() == CLEAR_LINE + "Scanning… 1 user" + CLEAR_LINE
