"""What aws-lambda-powertools' batch utility would cost the worker, next to handler/batch.py.

``SqsFifoPartialProcessor`` does the FIFO half of what ``handler/batch.py`` does. This
measures the price of taking it instead: the import time of
``aws_lambda_powertools.utilities.batch`` in a fresh ``python3.13 -I -S -B`` process after
boto3 is imported (the worker has it anyway), and the package's size, against importing our
own module. The package is installed with ``pip install --no-deps --target`` into
``.cache/bench/powertools/`` (once; it is never added to the requirements) and put first on
``sys.path`` before the archive's ``task`` folder and the runtime's boto3, the layout of
``bench.cold``; pip compiles its ``.pyc`` as the archive ships ours. When it cannot be
installed (no index), the part is skipped and the report says so.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from bench.common import CACHE, ROOT, summary

PACKAGE = "aws-lambda-powertools"
TARGET = CACHE / "powertools"
CHILD = Path(__file__).resolve().parent / "children" / "imports.py"
POWERTOOLS_BATCH = "aws_lambda_powertools.utilities.batch:SqsFifoPartialProcessor"
OURS = "handler.batch:process"

# (key, label, modules imported first, untimed; the module timed)
CASES = (
    (
        "powertools",
        "`aws_lambda_powertools.utilities.batch` after boto3",
        "boto3",
        POWERTOOLS_BATCH,
    ),
    ("ours", "`handler.batch` after boto3 (with the bot's modules it imports)", "boto3", OURS),
    (
        "powertools_after_bot",
        "`aws_lambda_powertools.utilities.batch` after boto3 and `handler.bot`",
        "boto3,handler.bot",
        POWERTOOLS_BATCH,
    ),
    ("ours_after_bot", "`handler.batch` after boto3 and `handler.bot`", "boto3,handler.bot", OURS),
)


def install(progress: Any) -> tuple[Path | None, str]:
    """The package in ``TARGET`` (installed once), or None and why not."""
    if list(TARGET.glob("aws_lambda_powertools-*.dist-info")):
        return TARGET, "cached"
    progress(f"  powertools: pip install --no-deps --target {TARGET.relative_to(ROOT)} {PACKAGE}")
    scratch = Path(tempfile.mkdtemp(prefix="bench-powertools-"))
    try:
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        done = subprocess.run(
            [*pip, "--target", str(scratch / "pt"), PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            return None, lines[-1] if lines else f"pip exited {done.returncode}"
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.move(str(scratch / "pt"), TARGET)
        return TARGET, "installed"
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"{type(error).__name__}: {error}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _version(folder: Path) -> str:
    found = sorted(folder.glob("aws_lambda_powertools-*.dist-info"))
    return found[0].name.removeprefix("aws_lambda_powertools-").removesuffix(".dist-info")


def sizes(folder: Path) -> dict[str, int]:
    """Bytes of a package's files without and with its bytecode, and deflated in a zip."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    sources = [p for p in files if "__pycache__" not in p.parts]
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as z:
        for path in files:
            z.write(path, path.relative_to(folder.parent).as_posix())
    return {
        "files": len(files),
        "source_bytes": sum(p.stat().st_size for p in sources),
        "with_pyc_bytes": sum(p.stat().st_size for p in files),
        "zipped_bytes": len(packed.getvalue()),
    }


def _once(python: str, paths: str, base: str, target: str) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-I", "-S", "-B", str(CHILD), paths, base, target],
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {target} failed: {done.stderr[-2000:]}")
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("BENCH "))
    return json.loads(line[6:])


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    from bench.cold import prepare

    folder, how = install(progress)
    if folder is None:
        progress(f"  powertools: skipped ({how})")
        return {"skipped": how}
    runs = 5 if quick else 15
    with tempfile.TemporaryDirectory(prefix="bench-powertools-") as scratch:
        layout = prepare(Path(scratch))  # the archive as shipped, and the runtime's boto3
        paths = ":".join(str(p) for p in (folder, layout.task, layout.runtime))
        samples: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in CASES}
        order = list(CASES)
        shuffle = random.Random(4321)
        for round_ in range(runs + 1):  # the first round warms the page cache, discarded
            shuffle.shuffle(order)
            for key, _label, base, target in order:
                sample = _once(layout.python, paths, base, target)
                if round_:
                    samples[key].append(sample)
            progress(f"  powertools: round {round_ + 1}/{runs + 1}")
        ours = layout.task / "handler" / "batch.py"
        ours_bytes = ours.stat().st_size + sum(
            p.stat().st_size for p in (layout.task / "handler" / "__pycache__").glob("batch.*")
        )
    return {
        "package": PACKAGE,
        "version": _version(folder),
        "install": how,
        "runs": runs,
        "python": layout.python,
        "cases": {
            key: {
                "label": label,
                "import_ms": summary([s["target_ms"] for s in samples[key]]),
                "modules": max(s["modules"] for s in samples[key]),
            }
            for key, label, _base, _target in CASES
        },
        "size": sizes(folder / "aws_lambda_powertools"),
        "ours_bytes": ours_bytes,
    }
