"""What the Lambda Python 3.13 runtime provides, for tests that run the built archive."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python313() -> str:
    """Lambda's interpreter: the archive holds cp313 wheels, so no other Python will do."""
    if sys.version_info[:2] == (3, 13):
        return sys.executable
    found = subprocess.run(
        [str(ROOT / "scripts" / "find-python")], capture_output=True, text=True, check=False
    ).stdout.strip()
    check = "import sys; print(sys.version_info[:2] == (3, 13))"
    answer = subprocess.run(
        [found or "python3.13", "-c", check], capture_output=True, text=True, check=False
    ).stdout.strip()
    assert answer == "True", "Python 3.13 is needed to run the Lambda archive"
    return found


def runtime_boto3(python: str) -> Path:
    """boto3 and its dependencies alone, standing in for what the Lambda runtime provides."""
    target = ROOT / ".cache" / "test-runtime" / "boto3-cp313"
    if not (target / "boto3").is_dir():
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--only-binary=:all:", "--target", str(target), "boto3"],
            check=True,
        )  # fmt: skip
    return target
