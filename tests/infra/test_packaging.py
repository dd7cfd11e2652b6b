"""The Lambda archive: reproducible, built for the target CPU, and importable as Lambda would.

The first run resolves and installs the handler's requirements for both platforms with pip
(a few seconds each) and compiles their bytecode; later runs reuse ``.cache/lambda-deps/``
and ``.cache/lambda-bytecode/`` (pip still resolves, which reads the index). The same
archive built by other Pythons, in the Pulumi program and in other checkouts:
test_reproducible.py.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from infra import packaging
from infra.packaging import (
    DIR_MODE,
    FILE_MODE,
    NO_BYTECODE_WARNING,
    PYTHON313_ENV,
    ZIP_EPOCH,
    Interpreter,
    PackagingError,
    PackagingWarning,
    Target,
    build_lambda_archive,
    dependencies_key,
    find_python313,
    install_dependencies,
)
from tests.infra.capture import PROJECT_ROOT
from tests.infra.interpreters import clean_env, older_python
from tests.support import lambda_runtime

RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil")
BINARY_PACKAGES = ("pydantic_core", "jiter")  # compiled parts, pulled in by openai
MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}
HOST_ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
TEST_SUITES = {"tests", "test", "_tests"}
RUNTIME_GLIBC = (2, 34)  # Amazon Linux 2023, under Lambda's Python 3.13


@pytest.fixture(scope="session")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("archives")
    return {
        arch: build_lambda_archive(PROJECT_ROOT, arch, out / f"{arch}.zip")
        for arch in ("arm64", "x86_64")
    }


@pytest.fixture(autouse=True)
def fresh_interpreter_lookup() -> Iterable[None]:
    """find_python313 is looked up once per process: tests that steer it start afresh."""
    find_python313.cache_clear()
    yield
    find_python313.cache_clear()


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


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_no_test_suite_ships_at_any_depth(archives: dict[str, Path], architecture: str) -> None:
    listed = names(archives[architecture])
    assert not [n for n in listed if TEST_SUITES.intersection(n.split("/")[:-1])]
    assert "certifi/cacert.pem" in listed  # certifi itself stays, only certifi/tests goes


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_records_list_exactly_what_ships(archives: dict[str, Path], architecture: str) -> None:
    """No console script, pruned test or builder path in a RECORD, and nothing unlisted."""
    with zipfile.ZipFile(archives[architecture]) as z:
        files = {n for n in z.namelist() if not n.endswith("/")}
        recorded: set[str] = set()
        for record in (n for n in files if n.endswith(".dist-info/RECORD")):
            lines = z.read(record).decode().splitlines()
            paths = [line.split(",")[0] for line in lines]
            assert all(not p.startswith(("..", "/")) and "bin/" not in p for p in paths), record
            assert set(paths) <= files, (record, sorted(set(paths) - files))
            assert f"{record.removesuffix('RECORD')}WHEEL" in paths
            recorded.update(paths)
    ours = {n for n in files if n.startswith("handler/") or "__pycache__" in n.split("/")}
    assert files - ours == recorded


def test_archive_ships_bytecode_lambda_can_use(archives: dict[str, Path]) -> None:
    """Unchecked-hash 3.13 bytecode: valid whatever the extracted files' timestamps."""
    import importlib.util

    with zipfile.ZipFile(archives["arm64"]) as z:
        pyc = z.read("handler/__pycache__/app.cpython-313.pyc")
        count = sum(1 for n in z.namelist() if n.endswith(".pyc"))
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, check_source off
    assert count > 2000  # the dependencies' modules too, not only ours


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


def _glibc(tag: str) -> tuple[int, int]:
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    platform_tag = tag.split("-")[-1]
    match = re.match(r"manylinux_(\d+)_(\d+)_", platform_tag)
    return (int(match[1]), int(match[2])) if match else legacy[platform_tag.split("_")[0]]


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_every_binary_wheel_runs_on_the_runtimes_glibc(
    archives: dict[str, Path], architecture: str
) -> None:
    with zipfile.ZipFile(archives[architecture]) as z:
        wheels = [n for n in z.namelist() if n.endswith(".dist-info/WHEEL")]
        for wheel in wheels:
            tags = [
                line.split(":", 1)[1].strip()
                for line in z.read(wheel).decode().splitlines()
                if line.startswith("Tag:") and "manylinux" in line
            ]
            if tags:  # a binary wheel: one of its tags must fit glibc 2.34
                assert min(_glibc(tag) for tag in tags) <= RUNTIME_GLIBC, (wheel, tags)


def test_platforms_cover_every_manylinux_up_to_the_runtimes_glibc() -> None:
    arm = Target.for_architecture("arm64").platforms
    assert arm[0] == "manylinux_2_34_aarch64"  # the best match first, as pip on Lambda ranks
    assert {"manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"} <= set(arm)
    assert arm[-1] == "manylinux2014_aarch64"  # aarch64 has nothing older
    assert all(p.endswith("_aarch64") for p in arm)
    assert "manylinux_2_35_aarch64" not in arm
    x86 = Target.for_architecture("x86_64").platforms
    assert x86[0] == "manylinux_2_34_x86_64"
    assert {"manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(x86)
    assert x86.index("manylinux_2_28_x86_64") < x86.index("manylinux2014_x86_64")


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


# --- bytecode: which Python compiles it, and how --------------------------------------------


def test_bytecode_is_compiled_in_fresh_processes_whatever_the_builder_imported(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """Forked from one pristine process, or one process per module: the same bytes.

    CPython's marshal output depends on the compiling process's state (typing_extensions.py
    compiled where typing_extensions is imported differs; so does a module compiled after
    certain others in the same process), which is why every module gets a process of its own.
    """
    python = find_python313()
    assert python is not None
    deps = packaging.dependencies_dir(PROJECT_ROOT, Target.for_architecture("arm64"))
    # Compiled one after the other in one process, the second would lose a shared constant.
    modules = ["anyio/from_thread.py", "openai/lib/_assistants_runs.py", "typing_extensions.py"]
    (tmp_path / "broken.py").write_text("def (:\n")  # not Python: skipped, not an error
    sources = [deps / m for m in modules] + [tmp_path / "broken.py"]
    results = {}
    for mode in ("forked", "one process each"):
        out = tmp_path / mode
        out.mkdir()
        jobs = [
            (str(s), f"/var/task/{s.name}", str(out / f"{i}.pyc")) for i, s in enumerate(sources)
        ]
        skipped = packaging._compile(python, jobs, fork=mode == "forked")
        assert skipped == {len(sources) - 1}
        results[mode] = [(out / f"{i}.pyc").read_bytes() for i in range(len(modules))]
    assert results["forked"] == results["one process each"]
    import typing_extensions  # noqa: F401  (what the Pulumi program's process has loaded)

    with zipfile.ZipFile(archives["arm64"]) as z:
        shipped = z.read("__pycache__/typing_extensions.cpython-313.pyc")
    compiled = tmp_path / "again.pyc"
    packaging._compile(python, [(str(sources[2]), "/var/task/typing_extensions.py", str(compiled))])
    assert compiled.read_bytes() == shipped


def test_a_python_311_build_finds_a_313_to_compile_with() -> None:
    python, version = older_python()
    script = "from infra.packaging import find_python313; print(find_python313())"
    result = subprocess.run(
        [python, "-c", script],
        cwd=PROJECT_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "version='3.13." in result.stdout, (version, result.stdout)


def test_the_python313_override_is_used_and_checked(
    python313: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PYTHON313_ENV, python313)
    found = find_python313()
    assert found is not None and found.path == python313 and found.version.startswith("3.13.")
    find_python313.cache_clear()
    python312 = tmp_path / "python3.12"
    python312.write_text("#!/bin/sh\necho cpython-312 3.12.1 final False\n")
    python312.chmod(0o755)
    monkeypatch.setenv(PYTHON313_ENV, str(python312))
    with pytest.raises(PackagingError, match=f"{PYTHON313_ENV}=.* is not a CPython 3.13"):
        find_python313()


def test_probe_refuses_what_is_not_a_standard_313(tmp_path: Path) -> None:
    assert packaging._probe(str(tmp_path / "no-such-python")) is None
    fake = tmp_path / "python3.13"
    fake.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    fake.chmod(0o755)
    assert packaging._probe(str(fake)) is None  # a pyenv shim for a version not selected
    free = tmp_path / "python3.13t"
    free.write_text("#!/bin/sh\necho cpython-313 3.13.1 final True\n")
    free.chmod(0o755)
    assert packaging._probe(str(free)) is None  # free-threaded: not what Lambda runs
    rc = tmp_path / "python3.13rc"
    rc.write_text("#!/bin/sh\necho cpython-313 3.13.0 candidate False\n")
    rc.chmod(0o755)
    assert packaging._probe(str(rc)) is None


def test_pyenv_pythons_are_tried_newest_313_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("3.12.4", "3.13.1", "3.13.10", "3.13.2t", "3.13-dev", "3.13.3"):
        (tmp_path / "versions" / version / "bin").mkdir(parents=True)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    assert list(packaging._pyenv_pythons()) == [
        str(tmp_path / "versions" / v / "bin" / "python3.13")
        for v in ("3.13.10", "3.13.3", "3.13.1")
    ]


def test_without_a_313_the_archive_ships_sources_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(packaging, "_pip", FakePip({"dep.py": "x = 1\n"}))
    monkeypatch.setattr(packaging, "find_python313", lambda: None)
    root = fake_project(tmp_path)
    said: list[str] = []
    archive = build_lambda_archive(root, "arm64", tmp_path / "a.zip", warn=said.append)
    assert said == [NO_BYTECODE_WARNING]
    assert "Python 3.13" in said[0] and PYTHON313_ENV in said[0]
    assert not [n for n in names(archive) if n.endswith(".pyc")]
    assert "handler/app.py" in names(archive)
    with pytest.warns(PackagingWarning, match="No Python 3.13 found"):
        build_lambda_archive(root, "arm64", tmp_path / "b.zip")


# --- resolution, caching and failures -------------------------------------------------------


def _wheel_hash(name: str, version: str) -> str:
    return hashlib.sha256(f"{name}-{version}".encode()).hexdigest()


class FakePip:
    """Stands in for ``packaging._pip``: resolves to ``pins``, installs ``files``."""

    def __init__(self, files: dict[str, str], pins: Iterable[tuple[str, str]] = (("dep", "1.0"),)):
        self.files = files
        self.pins = list(pins)
        self.resolve_error: str | None = None
        self.install_error: str | None = None
        self.calls: list[list[str]] = []
        self.pinned: list[str] = []  # the requirements each install was given

    @property
    def installs(self) -> list[list[str]]:
        return [call for call in self.calls if "--dry-run" not in call]

    def __call__(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if "--dry-run" in args:
            if self.resolve_error:
                return subprocess.CompletedProcess(args, 1, "", self.resolve_error)
            report = {
                "install": [
                    {
                        "metadata": {"name": name, "version": version},
                        "download_info": {
                            "url": f"file:///wheels/{name}-{version}-py3-none-any.whl",
                            "archive_info": {"hashes": {"sha256": _wheel_hash(name, version)}},
                        },
                    }
                    for name, version in self.pins
                ]
            }
            Path(args[args.index("--report") + 1]).write_text(json.dumps(report))
            return subprocess.CompletedProcess(args, 0, "", "")
        if self.install_error:
            return subprocess.CompletedProcess(args, 1, "", self.install_error)
        self.pinned.append(Path(args[args.index("-r") + 1]).read_text())
        target = Path(args[args.index("--target") + 1])
        for name, text in self.files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(text)
        return subprocess.CompletedProcess(args, 0, "", "")


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


def test_cached_dependencies_are_reused(
    archives: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pip resolves again (is there a new release?) but installs nothing: the same wheels."""
    real_pip = packaging._pip
    calls: list[list[str]] = []

    def resolve_only(args: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        assert "--dry-run" in args, "pip installed although its result was cached"
        return real_pip(args)

    monkeypatch.setattr(packaging, "_pip", resolve_only)
    rebuilt = build_lambda_archive(PROJECT_ROOT, "arm64", tmp_path / "cached.zip")
    assert rebuilt.read_bytes() == archives["arm64"].read_bytes()
    assert len(calls) == 1


def test_dependency_cache_key_covers_resolution_platform_and_python() -> None:
    arm, x86 = Target.for_architecture("arm64"), Target.for_architecture("x86_64")
    pins = ["openai==3.57.0 --hash=sha256:aa", "requests==2.34.2 --hash=sha256:bb"]
    keys = {
        dependencies_key(pins, arm),
        dependencies_key(pins, x86),
        dependencies_key(["openai==3.58.0 --hash=sha256:cc", pins[1]], arm),  # a new release
        dependencies_key([pins[0], "requests==2.34.2 --hash=sha256:dd"], arm),  # a new wheel
        dependencies_key(pins, Target("arm64", "aarch64", "3.12")),
        dependencies_key(pins, Target("arm64", "aarch64", glibc=(2, 26))),
    }
    assert len(keys) == 6
    assert dependencies_key(pins, arm) == dependencies_key(list(pins), arm)


def test_a_new_release_is_installed_although_the_requirements_did_not_change(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pip = FakePip({"dep.py": "VERSION = '1.0'\n"}, pins=[("dep", "1.0")])
    monkeypatch.setattr(packaging, "_pip", pip)
    root = fake_project(tmp_path)
    with zipfile.ZipFile(build_lambda_archive(root, "arm64")) as z:
        assert z.read("dep.py") == b"VERSION = '1.0'\n"
    pip.pins, pip.files = [("dep", "1.1")], {"dep.py": "VERSION = '1.1'\n"}  # released upstream
    with zipfile.ZipFile(build_lambda_archive(root, "arm64")) as z:
        assert z.read("dep.py") == b"VERSION = '1.1'\n"
    assert len(pip.installs) == 2
    # What was installed is exactly what was resolved, with its hash: no second resolution.
    assert "--no-deps" in pip.installs[-1]
    assert pip.pinned[-1] == f"dep==1.1 --hash=sha256:{_wheel_hash('dep', '1.1')}\n"
    # Back to the earlier release: its install is still cached.
    pip.pins = [("dep", "1.0")]
    with zipfile.ZipFile(build_lambda_archive(root, "arm64")) as z:
        assert z.read("dep.py") == b"VERSION = '1.0'\n"
    assert len(pip.installs) == 2


def test_pip_is_asked_for_every_manylinux_tag_of_the_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pip = FakePip({"dep.py": ""})
    monkeypatch.setattr(packaging, "_pip", pip)
    install_dependencies(fake_project(tmp_path), Target.for_architecture("arm64"))
    assert len(pip.calls) == 2  # resolve, then install what was resolved
    for command in pip.calls:
        platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
        assert platforms == list(Target.for_architecture("arm64").platforms)
        assert "--only-binary=:all:" in command
        assert command[command.index("--python-version") + 1] == "3.13"
        assert command[command.index("--implementation") + 1] == "cp"


def test_pip_failure_names_the_platform_and_what_pip_said(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pip = FakePip({})
    pip.resolve_error = "\n".join(f"line {i}" for i in range(40)) + "\nERROR: No matching dist"
    monkeypatch.setattr(packaging, "_pip", pip)
    root = fake_project(tmp_path)
    with pytest.raises(PackagingError) as error:
        install_dependencies(root, Target.for_architecture("arm64"))
    message = str(error.value)
    assert "arm64" in message and "glibc 2.34" in message and "CPython 3.13" in message
    assert "ERROR: No matching dist" in message
    assert "line 0\n" not in message  # only the tail
    assert pip.installs == []
    # An install that fails leaves nothing half-built in the cache either.
    pip.resolve_error, pip.install_error = None, "ERROR: disk full"
    with pytest.raises(PackagingError, match=r"could not install(.|\n)*disk full"):
        install_dependencies(root, Target.for_architecture("arm64"))
    assert [p for p in (root / ".cache" / "lambda-deps").iterdir() if p.is_dir()] == []


def test_without_the_index_the_last_resolution_is_reused_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pip = FakePip({"dep.py": "x = 1\n"})
    monkeypatch.setattr(packaging, "_pip", pip)
    root = fake_project(tmp_path)
    first = build_lambda_archive(root, "arm64", tmp_path / "first.zip")
    pip.resolve_error = "ERROR: Could not find a version (network is unreachable)"
    said: list[str] = []
    again = build_lambda_archive(root, "arm64", tmp_path / "again.zip", warn=said.append)
    assert again.read_bytes() == first.read_bytes()
    assert len(pip.installs) == 1
    assert len(said) == 1 and "network is unreachable" in said[0]
    assert "Reusing the dependencies last resolved" in said[0]
    # Other requirements were never resolved: nothing to fall back on.
    (root / "handler" / "requirements.txt").write_text("otherpackage\n")
    with pytest.raises(PackagingError, match="could not resolve"):
        build_lambda_archive(root, "arm64", tmp_path / "other.zip", warn=said.append)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(PackagingError, match="unknown architecture"):
        build_lambda_archive(PROJECT_ROOT, "sparc")


def test_runtime_packages_scripts_tests_and_bytecode_are_pruned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    record = "\r\n".join(
        [
            "../../bin/kept-cli,sha256=builder-python-in-the-shebang,170",
            "kept/__init__.py,sha256=a,0",
            "kept/__pycache__/x.cpython-313.pyc,,",
            "kept/sub/tests/test_sub.py,sha256=b,0",
            "kept/_tests/__init__.py,sha256=c,0",
            '"kept/data, with a comma.txt",sha256=d,0',
            "kept-1.0.dist-info/INSTALLER,sha256=e,4",
            "kept-1.0.dist-info/REQUESTED,sha256=f,0",
            "kept-1.0.dist-info/RECORD,,",
            "",
        ]
    )
    installed = {
        "boto3/__init__.py": "",
        "boto3-1.40.0.dist-info/RECORD": "",
        "botocore/__init__.py": "",
        "s3transfer/__init__.py": "",
        "jmespath/__init__.py": "",
        "dateutil/__init__.py": "",
        "python_dateutil-2.9.0.dist-info/RECORD": "",
        "bin/kept-cli": "#!/home/someone/.venv/bin/python",
        "kept/__init__.py": "",
        "kept/__pycache__/x.cpython-313.pyc": "",
        "kept/mod.pyc": "",
        "kept/sub/tests/test_sub.py": "",
        "kept/_tests/__init__.py": "",
        "kept/test/__init__.py": "",
        "kept/testing.py": "",  # a module, not a test suite
        "kept/data, with a comma.txt": "",
        "kept-1.0.dist-info/INSTALLER": "pip\n",
        "kept-1.0.dist-info/REQUESTED": "",
        "kept-1.0.dist-info/RECORD": record,
    }
    monkeypatch.setattr(packaging, "_pip", FakePip(installed, pins=[("kept", "1.0")]))
    root = fake_project(tmp_path)
    archive = build_lambda_archive(root, "x86_64")
    listed = names(archive)
    assert [n for n in listed if "/__pycache__/" not in n] == [
        "handler/",
        "handler/__init__.py",
        "handler/app.py",
        "kept-1.0.dist-info/",
        "kept-1.0.dist-info/INSTALLER",
        "kept-1.0.dist-info/RECORD",
        "kept/",
        "kept/__init__.py",
        "kept/data, with a comma.txt",
        "kept/testing.py",
    ]
    # The installed bytecode is gone; what is left is ours, compiled from the sources shipped.
    assert [n for n in listed if n.endswith(".pyc")] == [
        "handler/__pycache__/__init__.cpython-313.pyc",
        "handler/__pycache__/app.cpython-313.pyc",
        "kept/__pycache__/__init__.cpython-313.pyc",
        "kept/__pycache__/testing.cpython-313.pyc",
    ]
    # RECORD keeps the lines of what ships, byte for byte, and no others.
    with zipfile.ZipFile(archive) as z:
        assert z.read("kept-1.0.dist-info/RECORD").decode() == "\r\n".join(
            [
                "kept/__init__.py,sha256=a,0",
                '"kept/data, with a comma.txt",sha256=d,0',
                "kept-1.0.dist-info/INSTALLER,sha256=e,4",
                "kept-1.0.dist-info/RECORD,,",
                "",
            ]
        )


def test_cached_archive_is_rebuilt_only_when_an_input_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(packaging, "_pip", FakePip({"dep.py": "x = 1\n"}))
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
    assert "warning" not in result.stderr
    assert out.read_bytes() == archives["x86_64"].read_bytes()
    assert hashlib.sha256(out.read_bytes()).hexdigest() in result.stdout


def test_interpreter_is_described_by_its_path_and_full_version() -> None:
    found = find_python313()
    assert isinstance(found, Interpreter)
    assert re.fullmatch(r"3\.13\.\d+", found.version)
