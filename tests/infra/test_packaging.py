"""The Lambda archive: reproducible, built for the target CPU, and importable as Lambda would.

The first run installs the handler's requirements for both platforms with pip (a few
seconds each); later runs reuse ``.cache/lambda-deps/``.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra import packaging
from infra.packaging import (
    DIR_MODE,
    FILE_MODE,
    ZIP_EPOCH,
    PackagingError,
    Target,
    build_lambda_archive,
    dependencies_key,
    install_dependencies,
)
from tests.infra.capture import PROJECT_ROOT
from tests.support import lambda_runtime

RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil")
BINARY_PACKAGES = ("pydantic_core", "jiter")  # compiled parts, pulled in by openai
MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}
HOST_ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"


@pytest.fixture(scope="session")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("archives")
    return {
        arch: build_lambda_archive(PROJECT_ROOT, arch, out / f"{arch}.zip")
        for arch in ("arm64", "x86_64")
    }


def names(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as z:
        return z.namelist()


def wheel_tags(archive: Path, package: str) -> list[str]:
    with zipfile.ZipFile(archive) as z:
        (wheel,) = [
            n
            for n in z.namelist()
            if n.startswith(f"{package}-") and n.endswith(".dist-info/WHEEL")
        ]
        text = z.read(wheel).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]


# --- reproducibility ------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_rebuilding_gives_the_same_bytes(
    archives: dict[str, Path], tmp_path: Path, architecture: str
) -> None:
    again = build_lambda_archive(PROJECT_ROOT, architecture, tmp_path / "again.zip")
    assert again.read_bytes() == archives[architecture].read_bytes()
    # The cached archive the program uses is the same file too.
    cached = build_lambda_archive(PROJECT_ROOT, architecture)
    assert cached == PROJECT_ROOT / ".cache" / "build" / f"lambda-{architecture}.zip"
    assert cached.read_bytes() == again.read_bytes()


def test_architectures_differ(archives: dict[str, Path]) -> None:
    assert archives["arm64"].read_bytes() != archives["x86_64"].read_bytes()


def test_entries_are_sorted_with_fixed_time_and_modes(archives: dict[str, Path]) -> None:
    with zipfile.ZipFile(archives["arm64"]) as z:
        infos = z.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    for info in infos:
        assert info.date_time == ZIP_EPOCH, info.filename
        mode = info.external_attr >> 16 & 0o777
        if info.is_dir():
            assert mode == DIR_MODE, info.filename
        else:
            assert mode == FILE_MODE, info.filename
            assert info.compress_type == zipfile.ZIP_DEFLATED, info.filename


# --- content --------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_archive_holds_the_handler_package(archives: dict[str, Path], architecture: str) -> None:
    contents = set(names(archives[architecture]))
    sources = {
        p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "handler").glob("*.py")
    }
    assert "handler/app.py" in sources
    assert sources <= contents
    assert "handler/__init__.py" in contents


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_archive_holds_the_requirements(archives: dict[str, Path], architecture: str) -> None:
    top = {name.split("/")[0] for name in names(archives[architecture])}
    assert {"openai", "requests", "tzdata", *BINARY_PACKAGES} <= top


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_archive_leaves_out_what_the_runtime_has_and_bytecode(
    archives: dict[str, Path], architecture: str
) -> None:
    listed = set(names(archives[architecture]))
    for name in listed:
        top = name.split("/")[0]
        assert top.split("-")[0].lower() not in (*RUNTIME_PROVIDED, "python_dateutil"), name
        assert not name.endswith(".pyo"), name
        assert top != "bin", name
        if name.endswith(".pyc"):  # only ours: 3.13 bytecode of a module shipped beside it
            folder, cache, file = name.rpartition("__pycache__/")
            assert cache and file.endswith(".cpython-313.pyc"), name
            assert f"{folder}{file.removesuffix('.cpython-313.pyc')}.py" in listed, name


def test_archive_ships_bytecode_lambda_can_use(archives: dict[str, Path]) -> None:
    """Unchecked-hash 3.13 bytecode: valid whatever the extracted files' timestamps."""
    import importlib.util

    with zipfile.ZipFile(archives["arm64"]) as z:
        pyc = z.read("handler/__pycache__/app.cpython-313.pyc")
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, check_source off


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
@pytest.mark.parametrize("package", BINARY_PACKAGES)
def test_binary_wheels_are_for_the_target_cpu(
    archives: dict[str, Path], architecture: str, package: str
) -> None:
    tags = wheel_tags(archives[architecture], package)
    assert tags
    other = MACHINE["x86_64" if architecture == "arm64" else "arm64"]
    for tag in tags:
        assert tag.startswith("cp313-cp313-") or tag.startswith("cp313-abi3-"), tag
        assert "manylinux" in tag and tag.endswith(MACHINE[architecture]), tag
        assert other not in tag


def test_shared_libraries_are_for_the_target_cpu(archives: dict[str, Path]) -> None:
    # ELF header byte 18: e_machine, 0x3e for x86-64, 0xb7 for AArch64.
    expected = {"x86_64": 0x3E, "arm64": 0xB7}
    for architecture, archive in archives.items():
        with zipfile.ZipFile(archive) as z:
            libraries = [n for n in z.namelist() if n.endswith(".so")]
            assert libraries
            for name in libraries:
                assert z.read(name)[18] == expected[architecture], name


# --- runs like Lambda would run it ----------------------------------------------------------


@pytest.fixture(scope="session")
def python313() -> str:
    return lambda_runtime.python313()


@pytest.fixture(scope="session")
def runtime_boto3(python313: str) -> Path:
    return lambda_runtime.runtime_boto3(python313)


IMPORT_CHECK = """
import sys
extracted, runtime = sys.argv[1], sys.argv[2]
sys.path[:0] = [extracted, runtime]
from handler import app, batch, bot, claims, handoff, llm, messenger, store
import openai, requests, tzdata, pydantic_core, jiter
for module in (app, openai, requests, tzdata, pydantic_core, jiter):
    assert module.__file__.startswith(extracted), module
from zoneinfo import ZoneInfo
ZoneInfo("Europe/Paris")
print(app.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None))
"""


def test_archive_imports_in_a_clean_python(
    archives: dict[str, Path], runtime_boto3: Path, python313: str, tmp_path: Path
) -> None:
    """Extract, then import with only the archive and boto3 on the path (-I -S: no site)."""
    extracted = tmp_path / "task"
    with zipfile.ZipFile(archives[HOST_ARCHITECTURE]) as z:
        z.extractall(extracted)
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "messenger-bridge-test",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [python313, "-I", "-S", "-B", "-c", IMPORT_CHECK, str(extracted), str(runtime_boto3)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "'warm': True" in result.stdout


# --- caching and failures -------------------------------------------------------------------


def _no_pip(*args: object, **kwargs: object) -> None:
    raise AssertionError("pip ran although its result was cached")


def test_cached_dependencies_are_reused(
    archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(packaging.subprocess, "run", _no_pip)
    rebuilt = build_lambda_archive(PROJECT_ROOT, "arm64", tmp_path / "cached.zip")
    assert rebuilt.read_bytes() == archives["arm64"].read_bytes()


def test_dependency_cache_key_covers_requirements_platform_and_python() -> None:
    arm, x86 = Target.for_architecture("arm64"), Target.for_architecture("x86_64")
    keys = {
        dependencies_key("openai", arm),
        dependencies_key("openai", x86),
        dependencies_key("openai\nrequests", arm),
        dependencies_key("openai", Target("arm64", arm.platform, "3.12")),
    }
    assert len(keys) == 4
    assert dependencies_key("openai", arm) == dependencies_key("openai", arm)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(PackagingError, match="unknown architecture"):
        build_lambda_archive(PROJECT_ROOT, "sparc")


def fake_project(root: Path, requirements: str = "somepackage\n") -> Path:
    (root / "handler").mkdir(parents=True)
    (root / "handler" / "__init__.py").write_text("")
    (root / "handler" / "app.py").write_text("def lambda_handler(event, context):\n    return 1\n")
    (root / "handler" / "requirements.txt").write_text(requirements)
    (root / "handler" / "__pycache__").mkdir()
    (root / "handler" / "__pycache__" / "app.cpython-313.pyc").write_bytes(b"\0")
    (root / "handler" / "tests").mkdir()
    (root / "handler" / "tests" / "test_app.py").write_text("")
    return root


def test_pip_failure_names_the_platform_and_what_pip_said(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stderr = "\n".join(f"line {i}" for i in range(40)) + "\nERROR: No matching distribution"

    def failing_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert command[command.index("--platform") + 1] == "manylinux2014_aarch64"
        assert "--only-binary=:all:" in command
        assert command[command.index("--python-version") + 1] == "3.13"
        return subprocess.CompletedProcess(command, 1, "", stderr)

    monkeypatch.setattr(packaging.subprocess, "run", failing_pip)
    root = fake_project(tmp_path)
    with pytest.raises(PackagingError) as error:
        install_dependencies(root, Target.for_architecture("arm64"))
    message = str(error.value)
    assert "manylinux2014_aarch64" in message
    assert "ERROR: No matching distribution" in message
    assert "line 0\n" not in message  # only the tail
    assert list((root / ".cache" / "lambda-deps").iterdir()) == []  # nothing half-built cached


def pip_that_installs(files: dict[str, str]) -> object:
    def pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        target = Path(command[command.index("--target") + 1])
        for name, text in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(text)
        return subprocess.CompletedProcess(command, 0, "", "")

    return pip


def test_runtime_packages_scripts_and_bytecode_are_pruned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed = {
        "boto3/__init__.py": "",
        "boto3-1.40.0.dist-info/RECORD": "",
        "botocore/__init__.py": "",
        "s3transfer/__init__.py": "",
        "jmespath/__init__.py": "",
        "dateutil/__init__.py": "",
        "python_dateutil-2.9.0.dist-info/RECORD": "",
        "bin/somescript": "#!/usr/bin/python",
        "kept/__init__.py": "",
        "kept/__pycache__/x.cpython-313.pyc": "",
        "kept/mod.pyc": "",
        "kept-1.0.dist-info/RECORD": "",
    }
    monkeypatch.setattr(packaging.subprocess, "run", pip_that_installs(installed))
    root = fake_project(tmp_path)
    archive = build_lambda_archive(root, "x86_64")
    listed = names(archive)
    assert [n for n in listed if "/__pycache__/" not in n] == [
        "handler/",
        "handler/__init__.py",
        "handler/app.py",
        "kept-1.0.dist-info/",
        "kept-1.0.dist-info/RECORD",
        "kept/",
        "kept/__init__.py",
    ]
    # The installed bytecode is gone; what is left is ours, compiled from the sources shipped.
    assert "kept/__pycache__/x.cpython-313.pyc" not in listed
    assert [n for n in listed if n.endswith(".pyc")] == [
        "handler/__pycache__/__init__.cpython-313.pyc",
        "handler/__pycache__/app.cpython-313.pyc",
        "kept/__pycache__/__init__.cpython-313.pyc",
    ]


def test_cached_archive_is_rebuilt_only_when_an_input_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(packaging.subprocess, "run", pip_that_installs({"dep.py": "x = 1\n"}))
    root = fake_project(tmp_path)
    first = build_lambda_archive(root, "arm64")
    stamp = first.stat().st_mtime_ns
    first.touch()
    touched = first.stat().st_mtime_ns
    assert build_lambda_archive(root, "arm64").stat().st_mtime_ns == touched  # reused
    (root / "handler" / "app.py").write_text("def lambda_handler(event, context):\n    return 2\n")
    rebuilt = build_lambda_archive(root, "arm64")
    with zipfile.ZipFile(rebuilt) as z:
        assert b"return 2" in z.read("handler/app.py")
    assert stamp  # the first build happened


def test_cli_builds_the_archive(archives: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli" / "lambda.zip"
    result = subprocess.run(
        [sys.executable, "-m", "infra.packaging", "--architecture", "x86_64", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == archives["x86_64"].read_bytes()
    assert hashlib.sha256(out.read_bytes()).hexdigest() in result.stdout
