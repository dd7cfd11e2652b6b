"""The same archive, byte for byte, however and wherever it is built.

Four builds of the arm64 archive, each in a way the issue saw differ:

- in the Pulumi program (the real ``__main__.py`` under mocks, in this test process, which
  has imported pulumi, pydantic and typing_extensions), in this checkout, caches warm;
- ``python -m infra.packaging`` under Python 3.11 (no bytecode of its own: it must find a
  3.13; or 3.12; the venv's 3.13 on a machine with neither), in this checkout;
- the same command in a second checkout with empty caches (pip 3.11's own install, every
  module compiled afresh);
- the Pulumi program under the 3.13 venv in a third checkout with empty caches.

The two cold builds run side by side. pip reads the wheels from its own cache or the index.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from tests.infra.capture import PROJECT_ROOT, CapturedStack
from tests.infra.interpreters import clean_env, older_python_or_this_one

ARCHITECTURE = "arm64"
FUNCTION = "aws:lambda/function:Function"
# Runs the checkout's own Pulumi program under mocks, as test_stack does, and prints the
# path of the archive it gave the function.
PROGRAM_IN_A_CHECKOUT = """
import sys
from pathlib import Path
from tests.infra.capture import PROGRAM, capture_stack
from tests.infra.conftest import SECRETS
assert PROGRAM.parent == Path.cwd(), PROGRAM
stack = capture_stack({**SECRETS, "architecture": sys.argv[1]}, secret_keys=list(SECRETS))
(function,) = stack.of_type("aws:lambda/function:Function")
print(function.inputs["code"].path)
"""


def checkout(destination: Path) -> Path:
    """What a clone of this working tree holds: tracked and untracked, not ignored, files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode == 0:
        for name in listed.stdout.decode().split("\0"):
            source = PROJECT_ROOT / name
            if name and source.is_file():  # not a file deleted but not yet committed
                (destination / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination / name)
    else:  # not a git checkout: everything but what .gitignore leaves out
        ignored = (".git", ".venv", ".cache", "__pycache__", "*.pyc", "build", ".*_cache")
        shutil.copytree(PROJECT_ROOT, destination, ignore=shutil.ignore_patterns(*ignored))
    assert (destination / "handler" / "app.py").is_file()
    assert not (destination / ".cache").exists()
    return destination


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pyc_count(path: Path) -> int:
    with zipfile.ZipFile(path) as z:
        return sum(1 for name in z.namelist() if name.endswith(".pyc"))


def finished(process: subprocess.Popen[str], what: str) -> str:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, f"{what}:\n{stderr}"
    assert "warning" not in stderr.lower(), f"{what}:\n{stderr}"
    return stdout


def test_every_build_gives_the_same_bytes(
    capture: Callable[..., CapturedStack], tmp_path: Path
) -> None:
    older, version = older_python_or_this_one()  # 3.11 where there is one
    env = clean_env()
    cli = ["-m", "infra.packaging", "--architecture", ARCHITECTURE, "--out"]
    builds: dict[str, Path] = {}

    # Cold, in two fresh checkouts, side by side.
    second, third = checkout(tmp_path / "second"), checkout(tmp_path / "third")
    cold_cli = subprocess.Popen(
        [older, *cli, str(tmp_path / "cold-cli.zip")],
        cwd=second,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cold_program = subprocess.Popen(
        [sys.executable, "-c", PROGRAM_IN_A_CHECKOUT, ARCHITECTURE],
        cwd=third,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    # Warm, in this checkout: the program in this very process, then the CLI under 3.11.
    import pydantic  # noqa: F401  (what a Pulumi program's process has loaded)
    import typing_extensions  # noqa: F401

    code = capture({"architecture": ARCHITECTURE}).one(FUNCTION).inputs["code"]
    builds["program, 3.13 venv, this checkout"] = shutil.copy(code.path, tmp_path / "program.zip")
    warm_cli = subprocess.run(
        [older, *cli, str(tmp_path / "cli.zip")],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert warm_cli.returncode == 0, warm_cli.stderr
    assert "warning" not in warm_cli.stderr.lower(), warm_cli.stderr
    builds[f"CLI, Python {version}, this checkout"] = tmp_path / "cli.zip"

    finished(cold_cli, "CLI in a fresh checkout")
    builds[f"CLI, Python {version}, fresh checkout"] = tmp_path / "cold-cli.zip"
    built = Path(finished(cold_program, "program in a fresh checkout").strip().splitlines()[-1])
    assert built == third / ".cache" / "build" / f"lambda-{ARCHITECTURE}.zip"
    builds["program, 3.13 venv, fresh checkout"] = built

    digests = {how: sha256(path) for how, path in builds.items()}
    assert len(set(digests.values())) == 1, digests
    assert pyc_count(built) > 2000  # with bytecode: the 3.11 builds found a 3.13 too
