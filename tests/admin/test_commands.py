"""Every command and format against a moto server over HTTP, on data the bot's Store wrote."""

from __future__ import annotations

import csv
import io
import json
import re
import sys

import pytest

import admin.cli
from admin.progress import CLEAR_LINE
from admin.queries import Reader
from handler import schema
from tests.admin.conftest import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    TODAY,
    UNKNOWN,
    FakeTerminal,
    Seeded,
    make_function,
)

# -- users -----------------------------------------------------------------------------------


def test_users_table_newest_activity_first_with_aligned_columns(seeded: Seeded, cli):
    result = cli("users", "--table", seeded.table)
    assert result.code == 0
    assert result.err == ""  # not a terminal: no progress
    lines = result.out.splitlines()
    header = lines[0]
    titles = ["PSID", "STATUS", "OWN LIMIT", "DAILY LIMIT", "TODAY", "FIRST SEEN", "LAST ACTIVE"]
    assert re.split(r"\s{2,}", header) == titles
    rows = lines[1:5]
    assert [row.split()[0] for row in rows] == [ALICE, BOB, CAROL, DAVE]
    alice, bob, carol, dave = rows
    assert alice.split()[1:6] == ["default", "-", "10", "4", "2026-11-20"]
    assert alice.endswith("2026-11-25 11:55 (5 min ago)")
    assert bob.split()[1:5] == ["unlimited", "-", "unlimited", "30"]
    assert bob.endswith("2026-11-25 09:00 (3 h ago)")
    assert carol.split()[1:6] == ["default", "25", "25", "0", "2026-10-16"]
    assert dave.split()[1:5] == ["blocked", "-", "0", "0"]
    assert dave.endswith("(7 days ago)")
    # Numbers end under the end of their title; dates start under the start of theirs.
    today_end = header.index("TODAY") + len("TODAY")
    assert all(row[today_end - 1].isdigit() and row[today_end] == " " for row in rows)
    assert all(row[header.index("LAST ACTIVE")].isdigit() for row in rows)
    assert lines[-1] == "4 users; today is 2026-11-25 (UTC); default daily limit 10"


def test_users_limit_keeps_the_most_recently_active(seeded: Seeded, cli):
    result = cli("users", "--table", seeded.table, "--limit", "2")
    assert result.code == 0
    assert [line.split()[0] for line in result.out.splitlines()[1:3]] == [ALICE, BOB]
    assert "2 users most recently active;" in result.out
    assert CAROL not in result.out


def test_users_csv(seeded: Seeded, cli):
    result = cli("users", "--table", seeded.table, "--format", "csv")
    assert result.code == 0
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert [r["psid"] for r in rows] == [ALICE, BOB, CAROL, DAVE]
    by_psid = {r["psid"]: r for r in rows}
    assert by_psid[ALICE] == {
        "psid": ALICE,
        "status": "default",
        "own_limit": "",
        "daily_limit": "10",
        "today": "4",
        "first_seen": "2026-11-20T12:00:00+00:00",
        "last_active": "2026-11-25T11:55:00+00:00",
    }
    assert by_psid[BOB]["daily_limit"] == ""  # unlimited
    assert by_psid[CAROL]["own_limit"] == "25"


def test_users_json_with_the_default_limit_from_option_or_environment(
    seeded: Seeded, cli, monkeypatch: pytest.MonkeyPatch
):
    result = cli("users", "--table", seeded.table, "--format", "json", "--daily-limit", "12")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["date"] == TODAY and data["timezone"] == "UTC"
    assert data["default_daily_limit"] == 12
    alice = data["users"][0]
    assert alice == {
        "psid": ALICE,
        "status": "default",
        "own_limit": None,
        "daily_limit": 12,
        "first_seen": "2026-11-20T12:00:00+00:00",
        "last_active": "2026-11-25T11:55:00+00:00",
        "today": 4,
    }
    assert [u["daily_limit"] for u in data["users"]] == [12, None, 25, 0]

    monkeypatch.setenv("DAILY_LIMIT", "7")
    data = json.loads(cli("users", "--table", seeded.table, "--format", "json").out)
    assert data["default_daily_limit"] == 7
    assert data["users"][0]["daily_limit"] == 7


def test_users_on_an_empty_table(empty_table: str, cli):
    assert cli("users", "--table", empty_table).out == "No users yet.\n"
    assert json.loads(cli("users", "--table", empty_table, "--format", "json").out)["users"] == []
    assert cli("users", "--table", empty_table, "--format", "csv").out.count("\n") == 1


def test_today_follows_the_quota_time_zone(seeded: Seeded, cli, monkeypatch: pytest.MonkeyPatch):
    # 12:00 UTC is already tomorrow in Kiribati: nobody has asked anything there yet.
    result = cli(
        "users", "--table", seeded.table, "--format", "json", "--timezone", "Pacific/Kiritimati"
    )
    data = json.loads(result.out)
    assert data["date"] == "2026-11-26"
    assert {u["today"] for u in data["users"]} == {0}
    monkeypatch.setenv("QUOTA_TIMEZONE", "Pacific/Kiritimati")
    assert json.loads(cli("users", "--table", seeded.table, "--format", "json").out)["date"] == (
        "2026-11-26"
    )


def test_progress_goes_to_a_terminal_stderr_and_never_to_stdout(
    seeded: Seeded, cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code = admin.cli.main(["users", "--table", seeded.table, "--format", "json"])
    assert code == 0
    progress = terminal.getvalue()
    assert "Scanning… 4 users" in progress
    assert "Reading today's counts… 4/4" in progress
    assert progress.endswith(CLEAR_LINE)  # the line is wiped before the result
    json.loads(capsys.readouterr().out)  # stdout is only the JSON


def test_common_options_go_before_or_after_the_command_or_in_the_environment(
    seeded: Seeded, cli, monkeypatch: pytest.MonkeyPatch
):
    before = cli("--table", seeded.table, "--daily-limit", "3", "users", "--format", "csv")
    after = cli("users", "--format", "csv", "--table", seeded.table, "--daily-limit", "3")
    assert before.code == after.code == 0
    assert before.out == after.out
    monkeypatch.setenv("BRIDGE_TABLE", seeded.table)
    assert cli("users", "--format", "csv", "--daily-limit", "3").out == before.out


# -- show ------------------------------------------------------------------------------------


def test_show_profile_today_and_last_seven_days(seeded: Seeded, cli):
    result = cli("show", CAROL, "--table", seeded.table)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[:7] == [
        f"PSID          {CAROL}",
        "Status        default",
        "Daily limit   25 (own limit; default 10)",
        "Today         0 of 25 questions, 25 left (2026-11-25, UTC)",
        "First seen    2026-10-16 12:00 (40 days ago)",
        "Last active   2026-11-24 12:00 (24 h ago)",
        "Conversation  3 turns kept",
    ]
    assert lines[8:] == [
        "Last 7 days",
        "DATE            QUESTIONS",
        "Thu 2026-11-19          0",
        "Fri 2026-11-20          0",
        "Sat 2026-11-21          0",
        "Sun 2026-11-22          0",
        "Mon 2026-11-23          0",
        "Tue 2026-11-24          5",
        "Wed 2026-11-25          0",
        "Total                   5",
    ]


@pytest.mark.parametrize(
    ("psid", "limit", "today"),
    [
        (ALICE, "10 (default)", "4 of 10 questions, 6 left"),
        (BOB, "unlimited (status unlimited)", "30 questions (no limit)"),
        (DAVE, "0 (blocked)", "0 of 0 questions, 0 left"),
    ],
)
def test_show_explains_where_the_limit_comes_from(seeded: Seeded, cli, psid, limit, today):
    result = cli("show", psid, "--table", seeded.table)
    assert f"Daily limit   {limit}\n" in result.out
    assert f"Today         {today} (2026-11-25, UTC)" in result.out


def test_show_json(seeded: Seeded, cli):
    result = cli("show", ALICE, "--table", seeded.table, "--format", "json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["psid"] == ALICE and data["status"] == "default"
    assert data["today"] == {"date": TODAY, "questions": 4, "limit": 10, "left": 6}
    assert [d["date"] for d in data["last_7_days"]] == [
        "2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24", TODAY
    ]  # fmt: skip
    assert [d["questions"] for d in data["last_7_days"]] == [0, 1, 0, 0, 0, 10, 4]
    assert data["history_turns"] == 0
    assert data["default_daily_limit"] == 10


def test_show_an_unknown_psid_is_an_error(seeded: Seeded, cli):
    result = cli("show", UNKNOWN, "--table", seeded.table)
    assert result.code == 1
    assert result.out == ""
    assert result.err == f"error: unknown PSID {UNKNOWN}: no such user in table {seeded.table}\n"


# -- set -------------------------------------------------------------------------------------


def test_set_status(fresh: Seeded, cli):
    result = cli("set", ALICE, "--status", "unlimited", "--table", fresh.table)
    assert result.code == 0
    assert result.out.splitlines() == [
        f"Updated {ALICE}",
        "Status       default -> unlimited",
        "Own limit    -",
        "Daily limit  unlimited (status unlimited)",
    ]
    assert fresh.store.get_user(ALICE).status == "unlimited"
    assert cli("set", ALICE, "--status", "blocked", "--table", fresh.table).code == 0
    assert fresh.store.get_user(ALICE).status == "blocked"


def test_set_own_limit_and_back_to_default(fresh: Seeded, cli):
    result = cli("set", ALICE, "--limit", "3", "--table", fresh.table)
    assert result.code == 0
    assert "Own limit    - -> 3\n" in result.out
    assert "Daily limit  3 (own limit; default 10)" in result.out
    assert fresh.store.get_user(ALICE).daily_limit == 3

    result = cli("set", ALICE, "--limit", "default", "--table", fresh.table, "--format", "json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["own_limit"] is None and data["daily_limit"] == 10
    assert data["previous"] == {"status": "default", "own_limit": 3}
    assert data["created"] is False
    assert fresh.store.get_user(ALICE).daily_limit is None


def test_set_status_and_limit_together_warns_when_the_limit_does_not_apply(fresh: Seeded, cli):
    result = cli("set", CAROL, "--status", "unlimited", "--limit", "5", "--table", fresh.table)
    assert result.code == 0
    assert result.err == (
        "note: status is unlimited, so the own limit applies only after --status default\n"
    )
    user = fresh.store.get_user(CAROL)
    assert (user.status, user.daily_limit) == ("unlimited", 5)


def test_set_on_an_unknown_psid_needs_create(fresh: Seeded, cli):
    result = cli("set", UNKNOWN, "--status", "blocked", "--table", fresh.table)
    assert result.code == 1
    assert "unknown PSID" in result.err and "pass --create" in result.err
    assert fresh.store.get_user(UNKNOWN) is None

    result = cli("set", UNKNOWN, "--status", "blocked", "--create", "--table", fresh.table)
    assert result.code == 0
    assert result.out.startswith(f"Created {UNKNOWN}\n")
    assert fresh.store.get_user(UNKNOWN).status == "blocked"
    # A created user is a complete profile: it is listed like any other.
    assert UNKNOWN in cli("users", "--table", fresh.table).out


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([ALICE], "say what to set"),
        ([ALICE, "--limit", "-1"], "out of range"),
        ([ALICE, "--limit", "lots"], "not a whole number"),
        ([ALICE, "--limit", "100001"], "out of range"),
        ([ALICE, "--status", "vip"], "invalid choice"),
        (["alice", "--status", "blocked"], "is not a PSID"),
    ],
)
def test_set_usage_errors_exit_2_and_change_nothing(fresh: Seeded, cli, argv, complaint):
    result = cli("set", *argv, "--table", fresh.table)
    assert result.code == 2
    assert complaint in result.err
    user = fresh.store.get_user(ALICE)
    assert (user.status, user.daily_limit) == ("default", None)


# -- usage -----------------------------------------------------------------------------------

RANGE = ("--from", "2026-11-18", "--to", "2026-11-25")


def test_usage_table(seeded: Seeded, cli):
    result = cli("usage", *RANGE, "--table", seeded.table)
    assert result.code == 0
    assert result.err == ""
    assert result.out == (
        "Usage 2026-11-18 to 2026-11-25 (8 days, quota days in UTC)\n"
        "\n"
        "By day\n"
        "DATE            USERS  QUESTIONS\n"
        "Wed 2026-11-18      1          3\n"
        "Fri 2026-11-20      1          1\n"
        "Mon 2026-11-23      1          2\n"
        "Tue 2026-11-24      2         15\n"
        "Wed 2026-11-25      2         34\n"
        "(3 days without questions not shown)\n"
        "\n"
        "By user\n"
        "PSID              QUESTIONS  DAYS\n"
        f"{BOB}         32     2\n"
        f"{ALICE}         15     3\n"
        f"{CAROL}          5     1\n"
        f"{DAVE}          3     1\n"
        "\n"
        "By user and day\n"
        "DATE            PSID              QUESTIONS\n"
        f"Wed 2026-11-18  {DAVE}          3\n"
        f"Fri 2026-11-20  {ALICE}          1\n"
        f"Mon 2026-11-23  {BOB}          2\n"
        f"Tue 2026-11-24  {ALICE}         10\n"
        f"Tue 2026-11-24  {CAROL}          5\n"
        f"Wed 2026-11-25  {ALICE}          4\n"
        f"Wed 2026-11-25  {BOB}         30\n"
        "\n"
        "Total: 55 questions from 4 users on 5 of 8 days\n"
    )


def test_usage_csv(seeded: Seeded, cli):
    result = cli("usage", *RANGE, "--table", seeded.table, "--format", "csv")
    assert result.code == 0
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert list(rows[0]) == ["kind", "date", "psid", "questions"]
    kinds = {kind: [r for r in rows if r["kind"] == kind] for kind in ("user-day", "user", "day")}
    assert len(kinds["user-day"]) == 7
    assert {"kind": "user-day", "date": "2026-11-24", "psid": CAROL, "questions": "5"} in rows
    assert {"kind": "user", "date": "", "psid": BOB, "questions": "32"} in rows
    assert [r["date"] for r in kinds["day"]] == [f"2026-11-{d}" for d in range(18, 26)]
    assert rows[-1] == {"kind": "total", "date": "", "psid": "", "questions": "55"}
    assert sum(int(r["questions"]) for r in kinds["user-day"]) == 55
    assert sum(int(r["questions"]) for r in kinds["day"]) == 55


def test_usage_json(seeded: Seeded, cli):
    result = cli("usage", *RANGE, "--table", seeded.table, "--format", "json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["from"] == "2026-11-18" and data["to"] == TODAY and data["timezone"] == "UTC"
    assert data["total"] == {"questions": 55, "users": 4, "active_days": 5, "days": 8}
    assert data["per_day"][0] == {"date": "2026-11-18", "questions": 3, "users": 1}
    assert data["per_day"][1] == {"date": "2026-11-19", "questions": 0, "users": 0}
    assert data["per_user"][0] == {"psid": BOB, "questions": 32, "active_days": 2}
    assert {"date": TODAY, "psid": BOB, "questions": 30} in data["counts"]


def test_usage_defaults_to_the_last_seven_days(seeded: Seeded, cli):
    data = json.loads(cli("usage", "--table", seeded.table, "--format", "json").out)
    assert (data["from"], data["to"]) == ("2026-11-19", TODAY)
    assert data["total"]["questions"] == 52  # Dave's 3 on the 18th are a day too old


def test_usage_of_a_quiet_range(seeded: Seeded, cli):
    result = cli("usage", "--from", "2026-11-21", "--to", "2026-11-22", "--table", seeded.table)
    assert result.code == 0
    assert result.out.endswith("No questions in this range.\n")


def test_usage_reads_with_one_query_per_user_and_no_scan(
    seeded: Seeded, cli, monkeypatch: pytest.MonkeyPatch
):
    calls: list[str] = []

    class Counting:
        def __init__(self, client: object) -> None:
            self._client = client

        def __getattr__(self, name: str) -> object:
            calls.append(name)
            return getattr(self._client, name)

    monkeypatch.setattr(admin.cli, "Reader", lambda client, table: Reader(Counting(client), table))
    result = cli("usage", "--from", "2025-11-26", "--to", TODAY, "--table", seeded.table)
    assert result.code == 0
    assert calls.count("query") == 1 + 4  # the users index, then each user's counters
    assert "scan" not in calls


def test_usage_of_old_days_notes_that_counters_expire(seeded: Seeded, cli):
    result = cli("usage", "--from", "2026-10-01", "--to", "2026-10-01", "--table", seeded.table)
    assert result.code == 0
    assert result.err == (
        "note: daily counters are kept 35 days; days before 2026-10-21 may be missing or "
        "incomplete\n"
    )
    assert f"{CAROL}          7" in result.out  # TTL deletes late: what is still there shows


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--from", "2026-11-25", "--to", "2026-11-24"], "2026-11-25 is after --to 2026-11-24"),
        (["--from", "2025-01-01", "--to", "2026-01-02"], "367 days; ask for at most 366"),
        (["--from", "2026-13-01"], "'2026-13-01' is not a date like 2026-11-25"),
        (["--to", "25/11/2026"], "'25/11/2026' is not a date like 2026-11-25"),
        (["--from", "20261101"], "'20261101' is not a date"),
    ],
)  # fmt: skip
def test_usage_bad_ranges_exit_2(seeded: Seeded, cli, argv, complaint):
    result = cli("usage", *argv, "--table", seeded.table)
    assert result.code == 2
    assert complaint in result.err
    assert result.out == ""


# -- forget ----------------------------------------------------------------------------------


def _items(where: Seeded, psid: str) -> list[str]:
    return Reader(where.client, where.table).sort_keys(psid)


def test_forget_with_yes(fresh: Seeded, cli):
    assert sorted(_items(fresh, CAROL)) == [
        schema.day_sk("2026-10-01"),
        schema.day_sk("2026-11-24"),
        schema.HISTORY,
        schema.PROFILE,
    ]
    result = cli("forget", CAROL, "--yes", "--table", fresh.table)
    assert result.code == 0
    assert result.out == (
        f"Forgot {CAROL}: deleted 4 items (profile, 2 daily counters, conversation history).\n"
    )
    assert _items(fresh, CAROL) == []
    assert _items(fresh, ALICE) != []  # nobody else
    # What failed for good waits on the dead-letter queue, not in the table: the owner is told.
    assert f"replay --psid {CAROL} --discard" in result.err


def test_forget_json(fresh: Seeded, cli):
    result = cli("forget", ALICE, "-y", "--table", fresh.table, "--format", "json")
    assert json.loads(result.out) == {
        "psid": ALICE,
        "deleted": 4,
        "what": "profile, 3 daily counters",
    }


def test_forget_without_yes_and_without_a_terminal_refuses(fresh: Seeded, cli):
    result = cli("forget", CAROL, "--table", fresh.table)
    assert result.code == 2
    assert "no terminal to ask for confirmation; pass --yes" in result.err
    assert len(_items(fresh, CAROL)) == 4


def test_forget_asks_on_a_terminal(fresh: Seeded, cli, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "stdin", FakeTerminal("n\n"))
    result = cli("forget", CAROL, "--table", fresh.table)
    assert result.code == 1
    assert result.err == (
        f"Delete everything stored about {CAROL} (profile, 2 daily counters, conversation "
        "history)? This cannot be undone. [y/N] Cancelled; nothing deleted.\n"
    )
    assert len(_items(fresh, CAROL)) == 4

    monkeypatch.setattr(sys, "stdin", FakeTerminal("y\n"))
    result = cli("forget", CAROL, "--table", fresh.table)
    assert result.code == 0
    assert result.out.startswith(f"Forgot {CAROL}")
    assert _items(fresh, CAROL) == []


def test_forget_an_unknown_psid(fresh: Seeded, cli):
    result = cli("forget", UNKNOWN, "--yes", "--table", fresh.table)
    assert result.code == 1
    assert (
        result.err == f"error: unknown PSID {UNKNOWN}: nothing stored about it in {fresh.table}\n"
    )


def test_forgetting_a_blocked_user_says_the_block_goes_too(fresh: Seeded, cli):
    result = cli("forget", DAVE, "--yes", "--table", fresh.table)
    assert result.code == 0
    assert "blocked: forgetting also lifts the block" in result.err


# -- the deployed function's settings --------------------------------------------------------


def test_settings_and_table_from_the_function(seeded: Seeded, cli):
    function = _function(seeded, {"TABLE_NAME": seeded.table, "DAILY_LIMIT": "3",
                                  "QUOTA_TIMEZONE": "Pacific/Kiritimati"})  # fmt: skip
    result = cli("users", "--function", function, "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["default_daily_limit"] == 3
    assert data["timezone"] == "Pacific/Kiritimati" and data["date"] == "2026-11-26"
    # An option still wins over the function.
    data = json.loads(
        cli("users", "--function", function, "--daily-limit", "9", "--format", "json").out
    )
    assert data["default_daily_limit"] == 9


def test_an_unknown_function(seeded: Seeded, cli):
    result = cli("users", "--function", "no-such-function", "--table", seeded.table)
    assert result.code == 1
    assert result.err.startswith("error: function not found in region us-east-1")


def _function(seeded: Seeded, variables: dict[str, str]) -> str:
    return make_function(seeded.url, variables)
