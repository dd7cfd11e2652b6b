"""Build the Lambda zip: ``handler/`` plus its requirements, built for the target CPU.

The zip is reproducible: the same sources and the same resolved wheels give the same bytes
whichever Python runs the build (3.11 or 3.13), from the Pulumi program or the command line,
in whichever checkout, so Pulumi sees no change when nothing changed.

- Dependencies: pip resolves ``handler/requirements.txt`` for the Lambda platform (every
  manylinux tag the runtime's glibc runs, cp313 wheels only, so the result does not depend on
  this machine), then installs exactly what it resolved. They are cached under
  ``.cache/lambda-deps/`` by the resolved names, versions and wheel hashes, so a new upstream
  release is picked up although ``requirements.txt`` did not change. What Lambda never uses
  is pruned (boto3 & co., console scripts, tests, others' bytecode) and the ``RECORD`` files
  list exactly what ships.
- Bytecode: every module is compiled by a CPython 3.13 found on this machine
  (:func:`find_python313`), in a fresh process per module, and cached under
  ``.cache/lambda-bytecode/``. Without a 3.13 the archive ships sources only, and the build
  says so once (the ``warn`` callback of :func:`build_lambda_archive`).

CLI: ``python -m infra.packaging --architecture x86_64 --out build/lambda.zip``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PYTHON_VERSION = "3.13"
# Lambda's Python 3.13 runtime runs on Amazon Linux 2023, whose glibc is 2.34: any manylinux
# wheel for glibc 2.34 or older runs there (PEP 600).
LAMBDA_GLIBC = (2, 34)
MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}
# The oldest glibc each machine has manylinux wheels for, and the legacy names of some tags.
_OLDEST_GLIBC_MINOR = {"aarch64": 17, "x86_64": 5}
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}

HANDLER_PACKAGE = "handler"
REQUIREMENTS = Path(HANDLER_PACKAGE, "requirements.txt")
# The runtime ships these (boto3 and its dependencies); bundling them only adds weight.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "python_dateutil")
# Never shipped, at any depth: others' bytecode (ours is compiled below) and test suites
# (certifi/tests, sniffio/_tests: nothing imports them).
_SKIPPED_DIRS = {"__pycache__", "tests", "test", "_tests"}
# Never shipped from the top of the installed tree: console scripts, whose first line names
# the Python that ran pip.
_SKIPPED_TOP_LEVEL = {"bin"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
# Never shipped from a .dist-info: REQUESTED only says which packages were named on pip's
# command line (all of them, since we install the resolved pins), which nothing at runtime reads.
_SKIPPED_METADATA = {"REQUESTED"}

# Where Lambda unpacks the archive: the file names compiled into the bytecode (tracebacks).
LAMBDA_TASK_ROOT = "/var/task"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
DIR_MODE = 0o755
# Bump when the archive layout or the compiled bytecode changes, so caches are rebuilt.
_FORMAT = "3"

# A CPython 3.13 to compile with, when the one running the build is not (see find_python313).
PYTHON313_ENV = "BRIDGE_PYTHON313"

NO_BYTECODE_WARNING = (
    "No Python 3.13 found to compile the Lambda function's bytecode: the archive ships "
    "without it, so each cold start compiles every module it imports (about 0.5 s more for "
    "a queue worker), and the archive differs from the one a machine with Python 3.13 builds, "
    "so deploys from the two replace each other's code. Install Python 3.13 (python3.13 on "
    f"PATH, or through uv or pyenv) or set {PYTHON313_ENV}=/path/to/python3.13."
)

Warn = Callable[[str], None]


class PackagingError(RuntimeError):
    """The archive could not be built; the message says for which platform and why."""


class PackagingWarning(UserWarning):
    """The archive was built, but not as well as it could be (no bytecode, stale resolution)."""


@dataclass(frozen=True)
class Target:
    architecture: str
    machine: str
    python_version: str = PYTHON_VERSION
    glibc: tuple[int, int] = LAMBDA_GLIBC

    @classmethod
    def for_architecture(cls, architecture: str) -> Target:
        if architecture not in MACHINES:
            raise PackagingError(f"unknown architecture {architecture!r}: use {sorted(MACHINES)}")
        return cls(architecture, MACHINES[architecture])

    @property
    def platforms(self) -> tuple[str, ...]:
        """pip's ``--platform`` values, preferred first, as pip on the runtime would rank them.

        pip does not widen ``manylinux_2_34`` to the older tags by itself, so each is named.
        """
        major, newest = self.glibc
        tags = []
        for minor in range(newest, _OLDEST_GLIBC_MINOR[self.machine] - 1, -1):
            tags.append(f"manylinux_{major}_{minor}_{self.machine}")
            if major == 2 and minor in _LEGACY_MANYLINUX:
                tags.append(f"{_LEGACY_MANYLINUX[minor]}_{self.machine}")
        return tuple(tags)

    def describe(self) -> str:
        glibc = ".".join(map(str, self.glibc))
        return f"{self.architecture} (manylinux, glibc {glibc}, CPython {self.python_version})"


def _default_warn(message: str) -> None:
    warnings.warn(message, PackagingWarning, stacklevel=3)


# --- a Python 3.13 to compile with --------------------------------------------------------


@dataclass(frozen=True)
class Interpreter:
    """A CPython 3.13 on this machine: ``version`` is its full version, e.g. ``3.13.0``."""

    path: str
    version: str


_PROBE = (
    "import sys, sysconfig; v = sys.version_info; "
    "print(sys.implementation.cache_tag, '%d.%d.%d' % v[:3], v.releaselevel, "
    "bool(sysconfig.get_config_var('Py_GIL_DISABLED')))"
)


def _probe(path: str) -> Interpreter | None:
    """``path`` if it runs and is a final, standard (GIL) CPython 3.13 build; else None."""
    try:
        result = subprocess.run(
            [path, "-I", "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 4:
        return None  # e.g. a pyenv shim for a version that is not selected here
    cache_tag, version, level, free_threaded = fields
    tag = "cpython-" + PYTHON_VERSION.replace(".", "")
    if cache_tag != tag or level != "final" or free_threaded != "False":
        return None
    return Interpreter(path, version)


def _first_line(command: list[str]) -> Iterator[str]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return
    lines = result.stdout.strip().splitlines()
    if result.returncode == 0 and lines:
        yield lines[0].strip()


def _pyenv_pythons() -> Iterator[str]:
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        root = next(_first_line(["pyenv", "root"]), "")
    versions = Path(root, "versions") if root else None
    if versions is None or not versions.is_dir():
        return
    found = []
    for entry in versions.iterdir():
        match = re.fullmatch(r"3\.13\.(\d+)", entry.name)
        if match:
            found.append((int(match[1]), entry / "bin" / "python3.13"))
    for _, python in sorted(found, reverse=True):  # the newest 3.13 first
        yield str(python)


def _candidates() -> Iterator[str]:
    """Where a Python 3.13 may be, in order; each is checked by running it."""
    if sys.version_info[:2] == (3, 13) and sys.executable:
        yield sys.executable
    on_path = shutil.which(f"python{PYTHON_VERSION}")
    if on_path:
        yield on_path
    uv = shutil.which("uv")
    if uv:
        yield from _first_line([uv, "python", "find", PYTHON_VERSION])
    yield from _pyenv_pythons()
    launcher = shutil.which("py")  # the Python launcher for Windows
    if launcher:
        yield from _first_line(
            [launcher, f"-{PYTHON_VERSION}", "-c", "import sys; print(sys.executable)"]
        )


@functools.cache
def find_python313() -> Interpreter | None:
    """The CPython 3.13 that compiles the archive's bytecode, or None if there is none.

    In order: ``$BRIDGE_PYTHON313`` (an error if it is not a 3.13), the Python running the
    build if it is a 3.13, ``python3.13`` on PATH, ``uv python find 3.13``, the newest 3.13
    that pyenv installed, ``py -3.13`` (Windows). Looked up once per process.
    """
    override = os.environ.get(PYTHON313_ENV)
    if override:
        found = _probe(override)
        if found is None:
            raise PackagingError(f"{PYTHON313_ENV}={override} is not a CPython 3.13 interpreter")
        return found
    for candidate in _candidates():
        found = _probe(candidate)
        if found is not None:
            return found
    return None


# --- dependencies -------------------------------------------------------------------------


def _pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    """The build's own pip (its configuration: index, mirror, certificates)."""
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False
    )


def _target_args(target: Target) -> list[str]:
    platforms = [arg for platform in target.platforms for arg in ("--platform", platform)]
    return [
        *platforms,
        "--implementation", "cp",
        "--python-version", target.python_version,
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]  # fmt: skip


def _pip_failure(
    what: str, requirements: Path, target: Target, result: subprocess.CompletedProcess[str]
) -> str:
    stderr = result.stderr or result.stdout or ""
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    return f"pip could not {what} {requirements.name} for {target.describe()}; pip said:\n{tail}"


def _canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pin(item: dict) -> str:
    """One resolved wheel as a requirement line: ``name==version [--hash=sha256:...]``."""
    metadata, download = item["metadata"], item.get("download_info") or {}
    pin = f"{_canonical_name(metadata['name'])}=={metadata['version']}"
    sha256 = ((download.get("archive_info") or {}).get("hashes") or {}).get("sha256")
    return f"{pin} --hash=sha256:{sha256}" if sha256 else pin


def resolve_dependencies(project_root: Path, target: Target) -> tuple[str, ...]:
    """What ``handler/requirements.txt`` resolves to today: sorted pins (see :func:`_pin`).

    ``pip install --dry-run --report``: reads the index (or mirror), installs nothing.
    """
    requirements = project_root / REQUIREMENTS
    with tempfile.TemporaryDirectory(prefix="lambda-resolve-") as scratch:
        report = Path(scratch, "report.json")
        result = _pip([
            "install", "--dry-run", "--ignore-installed",
            "--report", str(report),
            "--target", str(Path(scratch, "never-written")),
            *_target_args(target),
            "-r", str(requirements),
        ])  # fmt: skip
        if result.returncode != 0 or not report.is_file():
            raise PackagingError(_pip_failure("resolve", requirements, target, result))
        installs = json.loads(report.read_text(encoding="utf-8")).get("install", [])
    return tuple(sorted(_pin(item) for item in installs))


def _requirements_key(requirements: str, target: Target) -> str:
    return _digest(_FORMAT, requirements, *target.platforms, target.python_version)


def dependencies_key(resolved: Sequence[str], target: Target) -> str:
    """What decides the installed dependencies: the resolved wheels, platform, Python."""
    return _digest(_FORMAT, *target.platforms, target.python_version, *resolved)


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _dependencies_cache(project_root: Path) -> Path:
    return project_root / ".cache" / "lambda-deps"


def dependencies_dir(project_root: Path, target: Target) -> Path:
    """Where the dependencies resolved today are (or would be) cached."""
    resolved = resolve_dependencies(project_root.resolve(), target)
    return _dependencies_cache(project_root.resolve()) / dependencies_key(resolved, target)


def _is_runtime_provided(name: str) -> bool:
    stem = name.split("-", 1)[0] if name.endswith(".dist-info") else name
    return stem.lower() in RUNTIME_PROVIDED


def _prune(directory: Path) -> None:
    """Drop what the runtime provides or never needs: boto3 & co, scripts, tests, bytecode."""
    for entry in list(directory.iterdir()):
        if not (_is_runtime_provided(entry.name) or entry.name in _SKIPPED_TOP_LEVEL):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for path in sorted(directory.rglob("*"), reverse=True):  # children before their parents
        if path.is_dir() and path.name in _SKIPPED_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and (
            path.name.endswith(_SKIPPED_SUFFIXES)
            or (path.name in _SKIPPED_METADATA and path.parent.name.endswith(".dist-info"))
        ):
            path.unlink()


def _rewrite_records(site: Path) -> None:
    """Keep only the RECORD lines of files that ship.

    pip lists the console scripts it wrote to ``bin/`` (``../../bin/idna``, hashed with the
    builder's Python in their first line) and the pruned tests: those lines go, the rest is
    kept byte for byte. Our own bytecode is not listed, as the RECORD format allows.
    """
    for record in sorted(site.glob("*.dist-info/RECORD")):
        lines = record.read_bytes().decode("utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _ships(site, line)]
        if kept != lines:
            record.write_bytes("".join(kept).encode("utf-8"))


def _ships(site: Path, line: str) -> bool:
    if not line.strip():
        return False
    name = posixpath.normpath(next(csv.reader([line]))[0])
    if name.startswith(("../", "/")) or name == "..":
        return False
    return (site / name).is_file()


def _install(
    resolved: Sequence[str], destination: Path, target: Target, requirements: Path
) -> None:
    """Install exactly the resolved wheels (no new resolution), pruned, into ``destination``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        dir=destination.parent, prefix=f".{destination.name}-"
    ) as scratch:
        staging = Path(scratch, "site")
        if resolved:
            pinned = Path(scratch, "pinned.txt")
            hashed = all("--hash=" in pin for pin in resolved)  # hashes for all or none
            lines = resolved if hashed else [pin.split(" ", 1)[0] for pin in resolved]
            pinned.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            result = _pip([
                "install", "--target", str(staging), "--no-deps",
                *_target_args(target),
                "--no-compile", "--no-warn-script-location", "--no-warn-conflicts",
                "-r", str(pinned),
            ])  # fmt: skip
            if result.returncode != 0:
                raise PackagingError(_pip_failure("install", requirements, target, result))
        staging.mkdir(exist_ok=True)  # empty requirements install nothing
        _prune(staging)
        _rewrite_records(staging)
        try:
            staging.rename(destination)  # atomic: a half-built cache never exists
        except OSError:
            if not destination.is_dir():  # lost a race with another build: theirs is as good
                raise


def _write_text_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def install_dependencies(project_root: Path, target: Target, warn: Warn | None = None) -> Path:
    """The target's dependencies, resolved now and installed once per resolution.

    When pip cannot resolve (no index reachable, say), the last resolution of the same
    requirements is reused if its install is cached, with a warning; else it is an error.
    """
    warn = warn or _default_warn
    requirements = project_root / REQUIREMENTS
    cache = _dependencies_cache(project_root)
    last = cache / f"last-{_requirements_key(requirements.read_text(), target)}.txt"
    try:
        resolved = resolve_dependencies(project_root, target)
    except PackagingError as error:
        previous = tuple(last.read_text(encoding="utf-8").splitlines()) if last.is_file() else None
        if previous is None or not (cache / dependencies_key(previous, target)).is_dir():
            raise
        warn(
            f"{error}\nReusing the dependencies last resolved for these requirements "
            f"({len(previous)} packages); newer releases, if any, are not included."
        )
        resolved = previous
    destination = cache / dependencies_key(resolved, target)
    if not destination.is_dir():
        _install(resolved, destination, target, requirements)
    _write_text_atomically(last, "".join(f"{pin}\n" for pin in resolved))
    return destination


# --- the archive's files ------------------------------------------------------------------


def handler_files(project_root: Path) -> list[Path]:
    """The handler's Python sources, relative to the project root."""
    package = project_root / HANDLER_PACKAGE
    if not (package / "__init__.py").is_file():
        raise PackagingError(f"{package} is not a Python package")
    skipped = _SKIPPED_DIRS | _SKIPPED_TOP_LEVEL
    return sorted(
        path.relative_to(project_root)
        for path in package.rglob("*.py")
        if not skipped.intersection(path.relative_to(package).parts[:-1])
    )


def _tree_files(root: Path) -> Iterator[tuple[str, Path]]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path.relative_to(root).as_posix(), path


def archive_entries(project_root: Path, dependencies: Path) -> dict[str, Path]:
    """Archive name -> file on disk. The handler wins over a same-named dependency file."""
    entries = dict(_tree_files(dependencies))
    for relative in handler_files(project_root):
        entries[relative.as_posix()] = project_root / relative
    return entries


# --- bytecode -----------------------------------------------------------------------------

# Run by the 3.13 with no site, no user site, no script directory on sys.path, no bytecode
# written and a fixed hash seed. marshal's output depends on the compiling process's state
# (whether a string is already interned, how many references an object has), so the parent
# compiles nothing: each module is compiled in a child forked from the same pristine state,
# or, without fork (Windows), in a process of its own. Jobs arrive on stdin as NUL-separated
# (source, name in the archive, .pyc to write) triples; "skip <n>" reports a job that is not
# Python 3.13 source (a template, a fixture: never imported).
#
# The .pyc are unchecked-hash (PEP 552): no timestamp (reproducible, whatever the extracted
# files' mtimes), and the import system trusts them without reading the source. /var/task is
# read-only and never changes under a running function, so checking would only cost a read
# and a hash of every source at each cold start, and timestamp-based .pyc would depend on the
# times Lambda gives the extracted files.
_COMPILER = r"""
import sys, _imp
import _frozen_importlib_external as bootstrap
try:
    from posix import fork, getpid, replace, waitpid, waitstatus_to_exitcode, _exit
except ImportError:
    from nt import getpid, replace
    fork = None

def compile_one(source, name, pyc):
    with open(source, "rb") as file:
        data = file.read()
    try:
        code = compile(data, name, "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError):
        return 3
    source_hash = _imp.source_hash(bootstrap._RAW_MAGIC_NUMBER, data)
    partial = "%s.%d.partial" % (pyc, getpid())  # another build may write the same .pyc
    with open(partial, "wb") as file:
        file.write(bootstrap._code_to_hash_pyc(code, source_hash, False))
    replace(partial, pyc)
    return 0

def child(job):
    status = 1
    try:
        status = compile_one(*job)
    except BaseException as error:
        sys.stderr.write("%s: %r\n" % (job[0], error))
    finally:
        sys.stderr.flush()
        _exit(status)

fields = sys.stdin.buffer.read().split(b"\0")
jobs = [
    tuple(field.decode("utf-8", "surrogateescape") for field in fields[i : i + 3])
    for i in range(0, len(fields) - 2, 3)
]
workers, failed = int(sys.argv[1]), 0
if fork is None or workers == 0:
    if len(jobs) > 1:
        sys.exit("one job per process without fork")
    for number, job in enumerate(jobs):
        if compile_one(*job) == 3:
            print("skip", number)
    sys.exit(0)
running = {}
def reap():
    global failed
    pid, status = waitpid(-1, 0)
    number = running.pop(pid)
    code = waitstatus_to_exitcode(status)
    if code == 3:
        print("skip", number)
    elif code != 0:
        failed += 1
for number, job in enumerate(jobs):
    while len(running) >= workers:
        reap()
    pid = fork()
    if pid == 0:
        child(job)
    running[pid] = number
while running:
    reap()
sys.exit(1 if failed else 0)
"""


def _compiler_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    return env


def _compile(
    python: Interpreter, jobs: list[tuple[str, str, str]], *, fork: bool = os.name == "posix"
) -> set[int]:
    """Compile the jobs with ``python``; returns the indexes of the jobs skipped.

    With ``fork``, one process forks a child per module; else a process per module.
    """
    if not jobs:
        return set()
    command = [python.path, "-S", "-s", "-P", "-B", "-X", "utf8", "-c", _COMPILER]
    if fork:
        batches = [(0, jobs, str(min(os.cpu_count() or 1, 8)))]
    else:
        batches = [(i, [job], "0") for i, job in enumerate(jobs)]
    skipped: set[int] = set()
    for first, batch, workers in batches:
        stdin = b"".join(
            "".join(f"{field}\0" for field in job).encode("utf-8", "surrogateescape")
            for job in batch
        )
        result = subprocess.run(
            [*command, workers],
            input=stdin,
            capture_output=True,
            env=_compiler_env(),
            check=False,
        )
        if result.returncode != 0:
            said = result.stderr.decode(errors="replace").strip()[-2000:]
            raise PackagingError(
                f"Python {python.version} ({python.path}) could not compile: {said}"
            )
        for line in result.stdout.decode().splitlines():
            if line.startswith("skip "):
                skipped.add(first + int(line.split()[1]))
    return skipped


def bytecode_entries(
    project_root: Path, entries: dict[str, Path], python: Interpreter | None
) -> dict[str, Path]:
    """A ``__pycache__/*.pyc`` beside every module of the archive, compiled once, by content.

    /var/task is read-only: Lambda cannot write bytecode there, so without these every cold
    start compiles each module it imports from source (docs/BENCHMARKS.md: ~40 ms of the
    webhook's cold start, ~0.5 s of the worker's). Cached by what decides the bytes: the
    compiler's exact version, the compiling script, the module's name in the archive and its
    source.
    """
    if python is None:
        return {}
    tag = "cpython-" + PYTHON_VERSION.replace(".", "")
    cache = project_root / ".cache" / "lambda-bytecode"
    cache.mkdir(parents=True, exist_ok=True)
    # The bytes depend on the compiler's exact version and on the script's own state.
    compiler = b"\0".join([_FORMAT.encode(), python.version.encode(), _COMPILER.encode()])
    planned: dict[str, Path] = {}
    jobs: list[tuple[str, str, str]] = []
    for name, source in sorted(entries.items()):
        if not name.endswith(".py"):
            continue
        parts = (compiler, name.encode(), source.read_bytes())
        digest = hashlib.sha256(b"\0".join(parts)).hexdigest()[:40]
        pyc = cache / f"{digest}.pyc"
        skip = pyc.with_suffix(".skip")
        if skip.is_file():
            continue  # not Python 3.13 source (a template, a test fixture): never imported
        if not pyc.is_file():
            jobs.append((str(source), f"{LAMBDA_TASK_ROOT}/{name}", str(pyc)))
        folder, _, file = name.rpartition("/")
        planned[f"{folder}/__pycache__/{file[:-3]}.{tag}.pyc".lstrip("/")] = pyc
    for index in _compile(python, jobs):
        Path(jobs[index][2]).with_suffix(".skip").touch()
    return {name: pyc for name, pyc in planned.items() if pyc.is_file()}


# --- the zip ------------------------------------------------------------------------------


def _directories(names: Iterable[str]) -> set[str]:
    found = set()
    for name in names:
        parts = name.split("/")[:-1]
        found.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
    return found


def write_zip(entries: dict[str, Path], out: Path) -> None:
    """A reproducible zip: sorted entries, fixed time and modes, fixed compression."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(_directories(entries) | set(entries)):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so the modes below are honoured
            if name.endswith("/"):
                info.external_attr = (0o040000 | DIR_MODE) << 16 | 0x10
                archive.writestr(info, b"")
            else:
                info.external_attr = (0o100000 | FILE_MODE) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, entries[name].read_bytes(), compresslevel=9)
    partial.replace(out)


def _inputs_digest(entries: dict[str, Path]) -> str:
    digest = hashlib.sha256(_FORMAT.encode())
    for name in sorted(entries):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(entries[name].read_bytes()).digest())
    return digest.hexdigest()


def default_archive_path(project_root: Path, architecture: str) -> Path:
    return project_root / ".cache" / "build" / f"lambda-{architecture}.zip"


def build_lambda_archive(
    project_root: Path,
    architecture: str,
    out: Path | None = None,
    *,
    warn: Warn | None = None,
) -> Path:
    """Build the function's zip and return its path.

    Without ``out`` it goes to ``.cache/build/`` and is reused while its inputs are unchanged
    (every ``pulumi preview`` calls this); with ``out`` it is always written afresh.
    ``warn`` receives what the deployer should know (no Python 3.13 for the bytecode, a stale
    resolution); by default it is a :class:`PackagingWarning`. The Pulumi program passes
    ``pulumi.log.warn``.
    """
    warn = warn or _default_warn
    project_root = project_root.resolve()
    target = Target.for_architecture(architecture)
    entries = archive_entries(project_root, install_dependencies(project_root, target, warn))
    python = find_python313()
    if python is None:
        warn(NO_BYTECODE_WARNING)
    entries.update(bytecode_entries(project_root, entries, python))
    if out is not None:
        write_zip(entries, out)
        return out
    out = default_archive_path(project_root, architecture)
    stamp = out.with_name(out.name + ".inputs")
    digest = _inputs_digest(entries)
    if out.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return out
    write_zip(entries, out)
    _write_text_atomically(stamp, digest)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Lambda archive of the bridge.")
    parser.add_argument("--architecture", choices=sorted(MACHINES), default="arm64")
    parser.add_argument("--out", type=Path, help="where to write the zip (default: .cache/build/)")
    parser.add_argument(
        "--project-root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the directory holding handler/ (default: this checkout)",
    )
    args = parser.parse_args(argv)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    try:
        path = build_lambda_archive(args.project_root, args.architecture, args.out, warn=warn)
    except PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}  sha256={sha}  bytes={path.stat().st_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
