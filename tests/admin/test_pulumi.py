"""The table name (and region) from ``pulumi stack output``, with a fake pulumi on PATH."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.admin.conftest import ALICE, Seeded


def test_table_from_the_selected_stack(seeded: Seeded, cli, fake_pulumi):
    calls = fake_pulumi(table=seeded.table)
    result = cli("users", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["users"][0]["psid"] == ALICE
    assert calls.read_text().splitlines() == ["stack output tableName --non-interactive"]


def test_stack_is_passed_to_pulumi(seeded: Seeded, cli, fake_pulumi):
    calls = fake_pulumi(table=seeded.table)
    assert cli("--stack", "prod", "show", ALICE).code == 0
    assert cli("show", ALICE, "--stack", "prod").code == 0
    assert (
        calls.read_text().splitlines()
        == ["stack output tableName --non-interactive --stack prod"] * 2
    )


def test_an_explicit_table_or_variable_wins_and_pulumi_is_not_run(
    seeded: Seeded, cli, fake_pulumi, monkeypatch: pytest.MonkeyPatch
):
    calls = fake_pulumi(table="some-other-table")
    assert cli("users", "--table", seeded.table).code == 0
    monkeypatch.setenv("BRIDGE_TABLE", seeded.table)
    assert cli("users").code == 0
    assert not calls.exists()


def test_pulumi_failing_says_why_and_what_to_do_instead(aws_env: str, cli, fake_pulumi):
    fake_pulumi(fail="no stack named 'prod' found")
    result = cli("--stack", "prod", "users")
    assert result.code == 1
    assert result.err == (
        "error: `pulumi stack output tableName` failed: error: no stack named 'prod' found; "
        "no table given: pass --table or set BRIDGE_TABLE\n"
    )


def test_a_stack_without_the_output(aws_env: str, cli, fake_pulumi):
    fake_pulumi(table="")
    result = cli("users")
    assert result.code == 1
    assert "the Pulumi stack has no tableName output" in result.err


def test_region_from_the_stack_when_the_shell_has_none(
    seeded: Seeded, cli, fake_pulumi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    calls = fake_pulumi(table=seeded.table, region="us-east-1")
    result = cli("users", "--stack", "dev")
    assert result.code == 0, result.err
    assert calls.read_text().splitlines() == [
        "stack output tableName --non-interactive --stack dev",
        "config get aws:region --non-interactive --stack dev",
    ]
