"""Failures an owner will meet, each one line on stderr with what to do, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from admin.errors import explain_aws_error
from tests.admin.conftest import ALICE, Seeded


def test_a_wrong_table(seeded: Seeded, cli):
    result = cli("users", "--table", "no-such-table")
    assert result.code == 1
    assert result.out == ""
    assert result.err == (
        "error: table no-such-table not found in region us-east-1; "
        "pass --table or check --region/AWS_PROFILE\n"
    )


def test_the_right_table_in_the_wrong_region(seeded: Seeded, cli):
    result = cli("show", ALICE, "--table", seeded.table, "--region", "eu-west-3")
    assert result.code == 1
    assert f"table {seeded.table} not found in region eu-west-3" in result.err


@pytest.mark.parametrize(
    "argv",
    [
        ["users"],
        ["show", ALICE],
        ["set", ALICE, "--status", "blocked"],
        ["usage"],
        ["forget", ALICE, "--yes"],
    ],
)
def test_no_credentials(seeded: Seeded, cli, no_aws_credentials, argv):
    result = cli(*argv, "--table", seeded.table)
    assert result.code == 1
    assert result.err.startswith("error: no AWS credentials found.")
    assert "aws configure" in result.err and "--profile" in result.err


def test_an_unknown_profile(seeded: Seeded, cli, no_aws_credentials):
    result = cli("users", "--table", seeded.table, "--profile", "nobody")
    assert result.code == 1
    assert "nobody" in result.err and "check --profile / AWS_PROFILE" in result.err


def test_no_region_anywhere(seeded: Seeded, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = cli("users", "--table", seeded.table)
    assert result.code == 1
    assert result.err == (
        "error: no AWS region: pass --region, set AWS_REGION, or set one in your AWS profile\n"
    )
    # AWS_REGION alone is enough, as for the AWS CLI (boto3 itself reads AWS_DEFAULT_REGION).
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert cli("users", "--table", seeded.table).code == 0


def test_no_table_and_no_pulumi(aws_env: str, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no pulumi on PATH
    result = cli("users")
    assert result.code == 1
    assert result.err == "error: no table given: pass --table or set BRIDGE_TABLE\n"
    result = cli("--stack", "prod", "users")
    assert result.err == (
        "error: no table given: pass --table or set BRIDGE_TABLE (--stack needs the pulumi CLI)\n"
    )


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["dance"], "invalid choice: 'dance'"),
        (["show"], "the following arguments are required: psid"),
        (["show", "12ab"], "'12ab' is not a PSID"),
        (["users", "--limit", "0"], "0 is out of range"),
        (["users", "--daily-limit", "-3"], "out of range"),
        (["users", "--format", "yaml"], "invalid choice: 'yaml'"),
        (["show", ALICE, "--format", "csv"], "invalid choice: 'csv'"),
        (["users", "--timezone", "Mars/Olympus", "--table", "t"], "unknown time zone"),
    ],
)
def test_command_line_mistakes_exit_2(aws_env: str, cli, argv, complaint):
    result = cli(*argv)
    assert result.code == 2
    assert complaint in result.err
    assert result.out == ""


def test_a_bad_daily_limit_in_the_environment(seeded: Seeded, cli, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DAILY_LIMIT", "ten")
    result = cli("users", "--table", seeded.table)
    assert result.code == 2
    assert "DAILY_LIMIT must be a whole number, got 'ten'" in result.err


def test_help_exits_0(cli):
    result = cli("--help")
    assert result.code == 0
    assert "python -m admin" in result.out and "exit codes" in result.out
    assert cli("usage", "--help").code == 0


def test_unreachable_endpoint_is_explained():
    error = EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")
    message = explain_aws_error(error, "t", "us-east-1")
    assert message.startswith("cannot reach AWS") and "AWS_ENDPOINT_URL" in message
