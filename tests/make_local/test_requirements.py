"""`make local` installs requirements-local.txt only: the local bot must run without
anything that requirements.txt adds (Pulumi, the test tools, Playwright, moto's other
extras)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What requirements.txt adds on top of requirements-local.txt, by import name.
ONLY_FOR_TESTS = (
    "pulumi", "pulumi_aws", "pulumi_random", "pytest", "hypothesis", "playwright", "ruff",
    "cfnlint", "docker", "aws_xray_sdk", "openapi_spec_validator",
)  # fmt: skip

PROGRAM = f"""
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ONLY_FOR_TESTS!r}:
            raise ImportError(f"{{name}} is not in requirements-local.txt")

sys.meta_path.insert(0, Missing())
from local.stack import LocalStack, Options

stack = LocalStack(Options(port=0, echo=True, model_latency=0, log_level="ERROR")).start()
print(stack.url)
stack.stop()
"""


def test_the_local_bot_starts_without_what_only_the_tests_need():
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("http://127.0.0.1:")


def test_requirements_txt_includes_the_local_ones():
    assert "-r requirements-local.txt" in (ROOT / "requirements.txt").read_text().splitlines()
