"""The settings' defaults are declared once, in Pulumi.yaml's schema. The handler ships without
Pulumi.yaml, so it gets a generated copy (``handler/defaults.py``) for runs that set no
variable; the stack reads the same copy. A test fails while the two differ.

    python -m infra.defaults            # rewrite handler/defaults.py from Pulumi.yaml
    python -m infra.defaults --check    # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILE = ROOT / "Pulumi.yaml"
GENERATED = ROOT / "handler" / "defaults.py"

HEADER = '''"""The settings' defaults, generated from Pulumi.yaml by ``python -m infra.defaults``.

Do not edit: change Pulumi.yaml and run that command again (a test fails while they differ).
Keys are the config keys; secrets have no default and are not here.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = '''


def declared_defaults(project: dict[str, Any]) -> dict[str, Any]:
    """Config key -> default, for every declared setting that has one."""
    return {
        key: spec["default"]
        for key, spec in sorted(project.get("config", {}).items())
        if isinstance(spec, dict) and "default" in spec
    }


def _literal(value: Any) -> str:
    """A Python literal written as ruff would format it (JSON's quoting, Python's constants)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


LINE_LENGTH = 100  # ruff's, in pyproject.toml


def _entry(key: str, value: Any) -> str:
    """One ``"key": value,`` line, or a list split one item a line when it is too long, as
    ruff formats it."""
    line = f"    {json.dumps(key)}: {_literal(value)},"
    if len(line) <= LINE_LENGTH or not isinstance(value, list) or not value:
        return line
    items = "".join(f"        {_literal(v)},\n" for v in value)
    return f"    {json.dumps(key)}: [\n{items}    ],"


def render(defaults: dict[str, Any]) -> str:
    lines = [_entry(key, value) for key, value in sorted(defaults.items())]
    return HEADER + "{\n" + "\n".join(lines) + "\n}\n"


def generated_text(project_file: Path = PROJECT_FILE) -> str:
    return render(declared_defaults(yaml.safe_load(project_file.read_text())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is up to date")
    args = parser.parse_args(argv)
    text = generated_text()
    if args.check:
        current = GENERATED.read_text() if GENERATED.exists() else ""
        if current != text:
            print(f"{GENERATED.relative_to(ROOT)} is out of date: run python -m infra.defaults")
            return 1
        return 0
    GENERATED.write_text(text)
    print(f"wrote {GENERATED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
