"""``python -m admin`` as an owner runs it: a real process, real pipes, real exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.admin.conftest import ALICE, BOB, UNKNOWN, Seeded

ROOT = Path(__file__).resolve().parents[2]


def admin(
    url: str, *argv: str, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ENDPOINT_URL": url}
    env.pop("BRIDGE_TABLE", None)
    return subprocess.run(
        [sys.executable, "-m", "admin", *argv],
        cwd=ROOT,
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_users_json_from_a_real_process(seeded: Seeded):
    done = admin(seeded.url, "--table", seeded.table, "users", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    psids = [u["psid"] for u in json.loads(done.stdout)["users"]]
    assert psids[:2] == [ALICE, BOB]


def test_usage_csv_from_a_real_process(seeded: Seeded):
    done = admin(
        seeded.url, "usage", "--from", "2026-11-18", "--to", "2026-11-25", "--format", "csv",
        "--table", seeded.table,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert rows[-1] == {"kind": "total", "date": "", "psid": "", "questions": "55"}


def test_errors_are_one_line_and_an_exit_code(seeded: Seeded):
    done = admin(seeded.url, "show", UNKNOWN, "--table", seeded.table)
    assert done.returncode == 1
    assert done.stderr == f"error: unknown PSID {UNKNOWN}: no such user in table {seeded.table}\n"
    done = admin(seeded.url, "users", "--table", "nope")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "table nope not found" in done.stderr
    done = admin(seeded.url, "usage", "--from", "2026-12-01", "--to", "2026-11-01", "--table", "t")
    assert done.returncode == 2


def test_forget_with_stdin_not_a_terminal_refuses(fresh: Seeded):
    done = admin(fresh.url, "forget", ALICE, "--table", fresh.table)
    assert done.returncode == 2
    assert "pass --yes" in done.stderr
    assert fresh.store.get_user(ALICE) is not None
    done = admin(fresh.url, "forget", ALICE, "--yes", "--table", fresh.table)
    assert done.returncode == 0, done.stderr
    assert fresh.store.get_user(ALICE) is None


def test_a_closed_pipe_ends_quietly(seeded: Seeded):
    """``python -m admin users | head -0``: no BrokenPipeError traceback."""
    env = {**os.environ, "AWS_ENDPOINT_URL": seeded.url}
    process = subprocess.Popen(
        [sys.executable, "-m", "admin", "users", "--table", seeded.table],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the CLI writes anything
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert err == ""
