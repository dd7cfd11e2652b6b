"""Build the Lambda zip: ``handler/`` plus its requirements, built for the target CPU.

Dependencies are installed with pip for the Lambda platform (manylinux wheels only, so the
result does not depend on this machine), cached under ``.cache/lambda-deps/`` by what
decides their content, and zipped deterministically: same inputs, same bytes, so Pulumi
sees no change when nothing changed.

CLI: ``python -m infra.packaging --architecture x86_64 --out build/lambda.zip``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PYTHON_VERSION = "3.13"
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
HANDLER_PACKAGE = "handler"
REQUIREMENTS = Path(HANDLER_PACKAGE, "requirements.txt")
# The runtime ships these (boto3 and its dependencies); bundling them only adds weight.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "python_dateutil")
# Never shipped: others' bytecode (ours is compiled below), tests, console scripts.
_SKIPPED_DIRS = {"__pycache__", "tests", "bin"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")

# Where Lambda unpacks the archive: the file names compiled into the bytecode (tracebacks).
LAMBDA_TASK_ROOT = "/var/task"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
DIR_MODE = 0o755
# Bump when the archive layout changes, so cached zips are rebuilt.
_FORMAT = "1"


class PackagingError(RuntimeError):
    """The archive could not be built; the message says for which platform and why."""


@dataclass(frozen=True)
class Target:
    architecture: str
    platform: str
    python_version: str = PYTHON_VERSION

    @classmethod
    def for_architecture(cls, architecture: str) -> Target:
        if architecture not in PLATFORMS:
            raise PackagingError(f"unknown architecture {architecture!r}: use {sorted(PLATFORMS)}")
        return cls(architecture, PLATFORMS[architecture])


def dependencies_key(requirements: str, target: Target) -> str:
    """What decides the installed dependencies: requirements, platform, Python version."""
    digest = hashlib.sha256()
    for part in (_FORMAT, requirements, target.platform, target.python_version):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _pip_command(requirements: Path, destination: Path, target: Target) -> list[str]:
    return [
        sys.executable, "-m", "pip", "install",
        "--target", str(destination),
        "--platform", target.platform,
        "--implementation", "cp",
        "--python-version", target.python_version,
        "--only-binary=:all:",
        "--no-compile",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "-r", str(requirements),
    ]  # fmt: skip


def _is_runtime_provided(name: str) -> bool:
    stem = name.split("-", 1)[0] if name.endswith(".dist-info") else name
    return stem.lower() in RUNTIME_PROVIDED


def _prune(directory: Path) -> None:
    """Drop what the runtime provides or never needs: boto3 & co, bytecode, scripts."""
    for entry in list(directory.iterdir()):
        if not (_is_runtime_provided(entry.name) or entry.name in _SKIPPED_DIRS):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_dir() and path.name == "__pycache__":
            shutil.rmtree(path)
        elif path.is_file() and path.name.endswith(_SKIPPED_SUFFIXES):
            path.unlink()


def install_dependencies(project_root: Path, target: Target) -> Path:
    """The target's dependencies, installed once per key under ``.cache/lambda-deps/``."""
    requirements = project_root / REQUIREMENTS
    key = dependencies_key(requirements.read_text(), target)
    destination = project_root / ".cache" / "lambda-deps" / key
    if destination.is_dir():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=f".{key}-") as scratch:
        staging = Path(scratch) / "site"
        result = subprocess.run(
            _pip_command(requirements, staging, target),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise PackagingError(
                f"pip could not install {requirements.name} for {target.platform} "
                f"(CPython {target.python_version}); pip said:\n{tail}"
            )
        staging.mkdir(exist_ok=True)  # empty requirements install nothing
        _prune(staging)
        try:
            staging.rename(destination)  # atomic: a half-built cache never exists
        except OSError:
            if not destination.is_dir():  # lost a race with another build: theirs is as good
                raise
    return destination


def handler_files(project_root: Path) -> list[Path]:
    """The handler's Python sources, relative to the project root."""
    package = project_root / HANDLER_PACKAGE
    if not (package / "__init__.py").is_file():
        raise PackagingError(f"{package} is not a Python package")
    return sorted(
        path.relative_to(project_root)
        for path in package.rglob("*.py")
        if not _SKIPPED_DIRS.intersection(path.relative_to(package).parts[:-1])
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


def bytecode_entries(
    project_root: Path, entries: dict[str, Path], target: Target
) -> dict[str, Path]:
    """A ``__pycache__/*.pyc`` beside every module of the archive, compiled once, by content.

    /var/task is read-only: Lambda cannot write bytecode there, so without these every cold
    start compiles each module it imports from source (docs/BENCHMARKS.md: ~40 ms of the
    webhook's cold start, ~0.5 s of the worker's). Unchecked-hash .pyc hold no timestamp, so
    the archive stays reproducible. Only the target's own interpreter can compile them: any
    other builds the archive without (and says so).
    """
    tag = "cpython-" + target.python_version.replace(".", "")
    if sys.implementation.cache_tag != tag:
        note = f"note: no bytecode in the archive (needs Python {target.python_version})"
        print(note, file=sys.stderr)
        return {}
    cache = project_root / ".cache" / "lambda-bytecode"
    cache.mkdir(parents=True, exist_ok=True)
    compiled: dict[str, Path] = {}
    for name, source in entries.items():
        if not name.endswith(".py"):
            continue
        parts = (_FORMAT.encode(), tag.encode(), name.encode(), source.read_bytes())
        digest = hashlib.sha256(b"\0".join(parts))
        pyc = cache / f"{digest.hexdigest()[:40]}.pyc"
        if not pyc.is_file():
            try:
                py_compile.compile(
                    str(source),
                    cfile=str(pyc),
                    dfile=f"{LAMBDA_TASK_ROOT}/{name}",
                    doraise=True,
                    optimize=0,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
            except py_compile.PyCompileError:
                continue  # not Python 3.13 source (a template, a test fixture): never imported
        folder, _, file = name.rpartition("/")
        compiled[f"{folder}/__pycache__/{file[:-3]}.{tag}.pyc".lstrip("/")] = pyc
    return compiled


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


def build_lambda_archive(project_root: Path, architecture: str, out: Path | None = None) -> Path:
    """Build the function's zip and return its path.

    Without ``out`` it goes to ``.cache/build/`` and is reused while its inputs are unchanged
    (every ``pulumi preview`` calls this); with ``out`` it is always written afresh.
    """
    project_root = project_root.resolve()
    target = Target.for_architecture(architecture)
    entries = archive_entries(project_root, install_dependencies(project_root, target))
    entries.update(bytecode_entries(project_root, entries, target))
    if out is not None:
        write_zip(entries, out)
        return out
    out = default_archive_path(project_root, architecture)
    stamp = out.with_name(out.name + ".inputs")
    digest = _inputs_digest(entries)
    if out.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return out
    write_zip(entries, out)
    stamp.write_text(digest)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Lambda archive of the bridge.")
    parser.add_argument("--architecture", choices=sorted(PLATFORMS), default="arm64")
    parser.add_argument("--out", type=Path, help="where to write the zip (default: .cache/build/)")
    parser.add_argument(
        "--project-root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the directory holding handler/ (default: this checkout)",
    )
    args = parser.parse_args(argv)
    try:
        path = build_lambda_archive(args.project_root, args.architecture, args.out)
    except PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}  sha256={sha}  bytes={path.stat().st_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
