"""Every `pulumi config set` the docs show is one the CLI accepts for the type Pulumi.yaml
declares, and none puts a secret on the command line."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from infra.config import SECRET_KEYS, SETTING_KEYS
from tests.infra.capture import PROJECT_ROOT

DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
DOCUMENTS.append(PROJECT_ROOT / "Pulumi.dev.yaml")
SCHEMA = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())["config"]
# A documented command: inline code or a line of a shell block, up to a comment or a backtick.
COMMAND = re.compile(r"pulumi config set ([^`#\n]*)")
PLACEHOLDER = re.compile(r"<[^>]+>|\.\.\.")


def problems(words: list[str]) -> list[str]:
    """What the CLI or good practice refuses in ``pulumi config set <words>``."""
    flags = {w for w in words if w.startswith("--")}
    positional = [
        w for n, w in enumerate(words) if not w.startswith("--") and words[n - 1 : n] != ["--type"]
    ]
    if not positional or positional[0] == "<key>":
        return []  # prose: "pulumi config set <key> <value>"
    key = positional[0].split("[")[0]
    value = positional[1] if len(positional) > 1 else None
    if key.startswith("aws:"):
        return []
    if key not in (*SETTING_KEYS, *SECRET_KEYS):
        return [f"{key} is no setting"]
    if key in SECRET_KEYS:
        found = [] if "--secret" in flags else ["a secret without --secret"]
        if value is not None:
            found.append("a secret's value on the command line stays in the shell's history")
        return found
    declared = SCHEMA[key]
    if "--path" in flags and declared["type"] == "array":
        # With --path the CLI stores digits as a number; the items are declared strings.
        typed = "--type" in words and words[words.index("--type") + 1] == declared["items"]["type"]
        return [] if typed else [f"--path needs --type {declared['items']['type']}"]
    if value is not None and not PLACEHOLDER.search(value) and declared["type"] == "integer":
        return [] if re.fullmatch(r"-?\d+", value) else [f"{key} is an integer"]
    return []


COMMANDS = [
    (f"{document.name}: {match.group(0).strip()}", shlex.split(match[1]))
    for document in DOCUMENTS
    for match in COMMAND.finditer(document.read_text())
]


@pytest.mark.parametrize(("where", "words"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_each_documented_config_command_is_accepted_for_the_declared_type(
    where: str, words: list[str]
) -> None:
    assert problems(words) == [], where


def test_the_docs_show_config_commands_at_all() -> None:
    assert len(COMMANDS) > 15


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("--secret openaiApiKey sk-123", "shell's history"),
        ("openaiApiKey", "without --secret"),
        ("--path adminPsids[0] 1234567890123456", "--type string"),
        ("dailyLimit ten", "integer"),
        ("dailyLimt 5", "no setting"),
    ],
)
def test_the_check_refuses_what_the_cli_or_good_practice_refuses(command: str, problem: str):
    assert any(problem in p for p in problems(shlex.split(command)))
