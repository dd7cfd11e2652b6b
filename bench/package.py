"""The Lambda archive: sizes and file counts per architecture, and the warm-cache rebuild time.

Each build is the documented command, ``python -m infra.packaging --architecture ARCH --out
PATH``, run as a child process and timed from spawn to exit (interpreter start included).
The first build of an architecture fills ``.cache/lambda-deps/`` (pip downloads the wheels);
it is timed and reported apart, and only the builds after it count as warm-cache rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import ROOT, child_python, summary

ARCHITECTURES = ("arm64", "x86_64")
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024  # direct upload
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def command(architecture: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "infra.packaging",
        "--architecture",
        architecture,
        "--out",
        str(out),
    ]


def _deps_cached(architecture: str) -> bool:
    """Whether the dependencies resolved today are installed in ``.cache/lambda-deps/``
    (the build then resolves again but installs nothing)."""
    from infra.packaging import PackagingError, Target, dependencies_dir

    try:
        return dependencies_dir(ROOT, Target.for_architecture(architecture)).is_dir()
    except (OSError, PackagingError):  # no index to resolve against, say
        return False


def _build(architecture: str, out: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command(architecture, out), cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"packaging {architecture} failed: {done.stderr[-2000:]}")
    return took


def _older_python() -> tuple[str, str] | None:
    """A Python 3.11 or 3.12 with pip, as a fork's or a teammate's Pulumi venv may be."""
    check = "import sys, pip; print(sys.executable); print('%d.%d' % sys.version_info[:2])"
    for name in ("python3.11", "python3.12"):
        found = shutil.which(name)
        if found:
            done = subprocess.run([found, "-c", check], capture_output=True, text=True)
            lines = done.stdout.split()
            if done.returncode == 0 and len(lines) == 2:
                return lines[0], lines[1]
    return None


def _fresh_copy(destination: Path) -> Path:
    """The checkout's files as a clone would hold them: tracked and untracked, not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def identity(architecture: str, archive: Path, work: Path) -> dict[str, Any]:
    """The same archive built again by another Python in a fresh copy (cold cache): the
    bytes must not depend on the interpreter that runs Pulumi nor on the checkout."""
    other = _older_python() or (sys.executable, f"{sys.version_info[0]}.{sys.version_info[1]}")
    copy = _fresh_copy(work / "fresh-checkout")
    out = work / f"identity-{architecture}.zip"
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYENV_VERSION", "BRIDGE_PYTHON313")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    done = subprocess.run(
        [other[0], *command(architecture, out)[1:]],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"packaging under {other[0]} failed: {done.stderr[-2000:]}")
    ours, theirs = (hashlib.sha256(p.read_bytes()).hexdigest() for p in (archive, out))
    return {
        "architecture": architecture,
        "python": other[1],
        "this_build": {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "sha256": ours},
        "fresh_copy": {"python": other[1], "sha256": theirs},
        "identical": ours == theirs,
    }


def describe(archive: Path) -> dict[str, Any]:
    with zipfile.ZipFile(archive) as z:
        infos = [i for i in z.infolist() if not i.is_dir()]
    by_top: dict[str, int] = defaultdict(int)
    for info in infos:
        top = info.filename.split("/")[0]
        if top.endswith(".dist-info"):
            top = "*.dist-info"
        by_top[top] += info.file_size
    return {
        "zipped_bytes": archive.stat().st_size,
        "unzipped_bytes": sum(i.file_size for i in infos),
        "files": len(infos),
        "pyc_files": sum(1 for i in infos if i.filename.endswith(".pyc")),
        "handler_bytes": by_top.get("handler", 0),
        "handler_files": sum(1 for i in infos if i.filename.startswith("handler/")),
        "largest": dict(sorted(by_top.items(), key=lambda kv: -kv[1])[:8]),
    }


def with_bytecode(archive: Path, work: Path) -> dict[str, Any]:
    """What shipping .pyc would weigh: the archive's sources compiled, the .pyc zipped alike."""
    tree = work / "tree"
    with zipfile.ZipFile(archive) as z:
        z.extractall(tree)
    subprocess.run(
        [
            child_python(),
            "-I",
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(tree),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    pyc = sorted(tree.rglob("*.pyc"))
    packed = work / "pyc-only.zip"
    with zipfile.ZipFile(packed, "w") as z:
        for path in pyc:
            info = zipfile.ZipInfo(
                path.relative_to(tree).as_posix(), date_time=(1980, 1, 1, 0, 0, 0)
            )
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, path.read_bytes(), compresslevel=9)
    return {
        "pyc_files": len(pyc),
        "pyc_unzipped_bytes": sum(p.stat().st_size for p in pyc),
        "pyc_zipped_bytes": packed.stat().st_size,
    }


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    rebuilds = 2 if quick else 3
    results: dict[str, Any] = {"rebuilds": rebuilds, "architectures": {}}
    with tempfile.TemporaryDirectory(prefix="bench-package-") as scratch:
        work = Path(scratch)
        for architecture in ARCHITECTURES:
            out = work / f"lambda-{architecture}.zip"
            first: dict[str, Any] = {"deps_cached_before": _deps_cached(architecture)}
            progress(f"  package: {architecture} (first build)")
            first["seconds"] = _build(architecture, out)
            times = []
            for i in range(rebuilds):
                progress(f"  package: {architecture} rebuild {i + 1}/{rebuilds}")
                times.append(_build(architecture, out))
            results["architectures"][architecture] = {
                **describe(out),
                "first_build": first,
                "rebuild_s": summary(times),
            }
        progress("  package: arm64 again, by another Python in a fresh copy")
        results["identity"] = identity("arm64", work / "lambda-arm64.zip", work)
        host = "x86_64" if results["architectures"].get("x86_64") else ARCHITECTURES[0]
        if not results["architectures"][host]["pyc_files"]:
            progress("  package: .pyc projection")
            results["bytecode_projection"] = {
                "architecture": host,
                **with_bytecode(work / f"lambda-{host}.zip", work),
            }
    results["command"] = "python -m infra.packaging --architecture ARCH --out PATH"
    results["limits"] = {"zipped": LAMBDA_ZIP_LIMIT, "unzipped": LAMBDA_UNZIPPED_LIMIT}
    return results
