"""Other Pythons on this machine, for builds that must not run on the venv's 3.13."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

import pytest

_CHECK = "import sys, pip; print(sys.executable); print('%d.%d' % sys.version_info[:2])"


@functools.cache
def _older_python() -> tuple[str, str] | None:
    for name in ("python3.11", "python3.12"):
        found = shutil.which(name)
        if not found:
            continue
        result = subprocess.run(
            [found, "-c", _CHECK], capture_output=True, text=True, timeout=60, check=False
        )
        lines = result.stdout.split()
        if result.returncode == 0 and len(lines) == 2:
            return lines[0], lines[1]  # the real interpreter, not a pyenv shim
    return None


def older_python() -> tuple[str, str]:
    """A Python 3.11 or 3.12 with pip: (path, "3.11"); the test is skipped if there is none."""
    found = _older_python()
    if found is None:
        pytest.skip("needs a Python 3.11 or 3.12 with pip besides the 3.13")
    return found


def older_python_or_this_one() -> tuple[str, str]:
    """A Python 3.11 or 3.12 with pip if there is one, else the Python running the tests."""
    return _older_python() or (sys.executable, f"{sys.version_info[0]}.{sys.version_info[1]}")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what would steer a child's Python or the packaging."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYENV_VERSION", "BRIDGE_PYTHON313")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env
