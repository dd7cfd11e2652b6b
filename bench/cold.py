"""Cold start of the webhook path: fresh processes, each answering one signed POST.

Layout, as in Lambda: the function's archive (built by ``infra.packaging`` for this machine's
CPU) is extracted into a ``task`` folder and boto3 & co. sit in a ``runtime`` folder (links
to this venv's copies, compiled), both put first on ``sys.path``. Every child is
``python3.13 -I -S -B``: no site, no environment leaking in, no bytecode written.

Lambda's /var/task is read-only, so Python cannot cache bytecode there: the rows "as
shipped" run the archive as built (it ships its own ``.pyc``), the rows "with .pyc" a copy
compiled here (``compileall --invalidation-mode unchecked-hash``), which shows whether the
shipped bytecode is complete.

The stand-ins are ``local.harness.Harness`` on a moto child process (SSM with the secrets,
the FIFO queue and its dead-letter queue, the table); each child gets the environment the
deployed function has (``Harness.function_environment``: ``QUEUE_URL``, the ``*_PARAMETER``
names, endpoints on moto, fake credentials, and ``METRICS_STACK``, so that the handler
writes its one metric line per delivery as in AWS) and a delivery with a fresh message id, so
that SQS's deduplication keeps every hand-off and the queue's depth at the end counts them.

Timing: the parent reads CLOCK_MONOTONIC just before spawning; the child stamps the same
clock at its first line, after its imports, and when the handler returned its 200. The
headline is spawn -> 200; the process exit is reported too.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    METRICS,
    ROOT,
    child_python,
    harness,
    is_metric_line,
    moto_server,
    now_ns,
    signed_post,
    summary,
    webhook_body,
)

CHILDREN = Path(__file__).resolve().parent / "children"
# What the Python 3.13 Lambda runtime provides in /var/runtime (boto3 and its dependencies).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
HOST_ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    script: str | None  # a file in children/, or None for ``-c pass``
    task: str | None  # "plain", "compiled" or None (runtime only)


VARIANTS = (
    Variant("pass", "(a) `python -c pass`", None, None),
    Variant("floor", "(b) floor: boto3 + the same 2 calls", "floor.py", None),
    Variant("handler", "bridge handler, as shipped", "handler.py", "plain"),
    Variant("handler_pyc", "bridge handler, archive with .pyc", "handler.py", "compiled"),
    Variant("naive", "(c) naive: all imported at init, as shipped", "naive.py", "plain"),
    Variant("naive_pyc", "(c) naive, archive with .pyc", "naive.py", "compiled"),
)


def _runtime_dir(target: Path) -> Path:
    """Links to the runtime-provided packages, from the site-packages that holds boto3."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    target.mkdir(parents=True)
    for name in RUNTIME_PACKAGES:
        if (site / name).exists():
            (target / name).symlink_to(site / name)
    return target


def _compile(python: str, folder: Path) -> None:
    subprocess.run(
        [
            python,
            "-I",
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(folder),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@dataclass
class Layout:
    work: Path
    python: str
    archive: Path
    task: Path
    task_compiled: Path
    runtime: Path
    event_file: Path
    archive_has_pyc: bool

    def paths(self, variant: Variant) -> str:
        tasks = {"plain": self.task, "compiled": self.task_compiled, None: None}
        folder = tasks[variant.task]
        return ":".join(str(p) for p in (folder, self.runtime) if p is not None)

    def command(self, variant: Variant, *flags: str) -> list[str]:
        base = [self.python, "-I", "-S", "-B", *flags]
        if variant.script is None:
            return [*base, "-c", "pass"]
        return [*base, str(CHILDREN / variant.script), str(self.event_file), self.paths(variant)]


def prepare(work: Path) -> Layout:
    from infra.packaging import build_lambda_archive

    python = child_python()
    architecture = HOST_ARCHITECTURE.get(platform.machine().lower(), "x86_64")
    archive = build_lambda_archive(ROOT, architecture, work / f"lambda-{architecture}.zip")
    task = work / "task"
    with zipfile.ZipFile(archive) as z:
        z.extractall(task)
    compiled = work / "task-pyc"
    shutil.copytree(task, compiled)
    _compile(python, compiled)
    runtime = _runtime_dir(work / "runtime")
    return Layout(
        work, python, archive, task, compiled, runtime, work / "event.json", _has_bytecode(archive)
    )


def new_event(layout: Layout) -> None:
    """A signed delivery with a message id of its own, for the next child: the same id would
    be dropped by SQS's deduplication (rightly), and the hand-offs could not be counted."""
    event = signed_post(webhook_body("2000000000000001", "Hello?"))
    layout.event_file.write_text(json.dumps(event))


def _run_once(layout: Layout, variant: Variant, env: dict[str, str]) -> dict[str, Any]:
    command = layout.command(variant)
    if variant.script is not None:
        new_event(layout)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        spawn = now_ns()
        process = subprocess.Popen(command, env=env, cwd=layout.work, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(process.pid, 0)  # wait4: the child's CPU time too
        exited = now_ns()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    sample: dict[str, Any] = {
        "exit_ms": (exited - spawn) / 1e6,
        "cpu_exit_ms": (usage.ru_utime + usage.ru_stime) * 1000,
    }
    if process.returncode != 0:
        raise RuntimeError(f"{variant.key} exited {process.returncode}: {stderr.decode()[-2000:]}")
    if variant.script is None:
        return sample
    lines = stdout.decode().splitlines()
    marks = json.loads(next(line[6:] for line in reversed(lines) if line.startswith("BENCH ")))
    if marks["status"] != 200:
        raise RuntimeError(f"{variant.key} answered {marks['status']}, not 200")
    log_lines = [line for line in lines if not line.startswith("BENCH ")]
    metric_lines = [line for line in log_lines if is_metric_line(line)]
    sample.update(
        to_200_ms=(marks["t2"] - spawn) / 1e6,
        startup_ms=(marks["t0"] - spawn) / 1e6,
        init_ms=(marks["t1"] - marks["t0"]) / 1e6,
        request_ms=(marks["t2"] - marks["t1"]) / 1e6,
        cpu_to_200_ms=marks["cpu"] / 1e6,
        log_bytes=sum(len(line.encode()) + 1 for line in log_lines),
        metric_lines=len(metric_lines),
        metric_bytes=sum(len(line.encode()) + 1 for line in metric_lines),
    )
    return sample


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_profile(
    layout: Layout, variant: Variant, env: dict[str, str], runs: int = 3
) -> dict[str, Any]:
    """``-X importtime`` of ``runs`` children: self time by top-level package (medians)."""
    by_package: dict[str, list[float]] = defaultdict(list)
    totals, counts = [], []
    for _ in range(runs):
        new_event(layout)
        done = subprocess.run(
            layout.command(variant, "-X", "importtime"),
            env=env,
            cwd=layout.work,
            capture_output=True,
            check=True,
        )
        own: dict[str, float] = defaultdict(float)
        modules = 0
        for line in done.stderr.decode().splitlines():
            match = _IMPORT_LINE.match(line)
            if match:
                modules += 1
                own[match.group(4).split(".")[0]] += int(match.group(1)) / 1000
        for package in set(own) | set(by_package):
            by_package[package].append(own.get(package, 0.0))
        totals.append(sum(own.values()))
        counts.append(modules)
    medians = {k: statistics.median(v) for k, v in by_package.items()}
    ranked = sorted(medians.items(), key=lambda kv: -kv[1])
    return {
        "runs": runs,
        "modules": int(statistics.median(counts)),
        "total_ms": statistics.median(totals),
        "by_package_ms": {k: round(v, 3) for k, v in ranked if v > 0},
    }


def queued(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def run(quick: bool = False, progress: Any = print) -> dict[str, Any]:
    samples = 5 if quick else 20
    warmup = 1 if quick else 2
    with (
        tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch,
        moto_server() as aws_url,
        harness(
            aws_url,
            environ={},  # the function's environment, for the children only
            poll=False,  # nothing consumes the queue: its depth counts the hand-offs
            use_model=False,
            use_graph=False,
            settings={
                **METRICS,  # the webhook's metric line, written as in AWS
                "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # the naive init only
            },
        ) as stand_ins,
    ):
        layout = prepare(Path(scratch))
        env = {**stand_ins.env, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        results: dict[str, list[dict[str, Any]]] = {v.key: [] for v in VARIANTS}
        order = list(VARIANTS)
        shuffle = random.Random(1234)
        for round_ in range(warmup + samples):
            shuffle.shuffle(order)  # interleaved, so drift in load hits every variant alike
            for variant in order:
                sample = _run_once(layout, variant, env)
                if round_ >= warmup:
                    results[variant.key].append(sample)
            progress(f"  cold: round {round_ + 1}/{warmup + samples}")
        handed_off = queued(stand_ins.sqs, stand_ins.queue_url)
        profiles = {
            key: import_profile(layout, next(v for v in VARIANTS if v.key == key), env)
            for key in ("floor", "handler", "handler_pyc", "naive")
        }
    rows = {}
    for variant in VARIANTS:
        taken = results[variant.key]
        rows[variant.key] = {
            "label": variant.label,
            **{
                field: summary([s[field] for s in taken])
                for field in (
                    "exit_ms",
                    "to_200_ms",
                    "startup_ms",
                    "init_ms",
                    "request_ms",
                    "cpu_exit_ms",
                    "cpu_to_200_ms",
                )
                if field in taken[0]
            },
            "log_bytes": taken[0].get("log_bytes"),
            "metric_lines": taken[0].get("metric_lines"),
            "metric_bytes": taken[0].get("metric_bytes"),
        }
    return {
        "samples": samples,
        "warmup_rounds": warmup,
        "python": layout.python,
        "archive": layout.archive.name,
        "archive_has_pyc": layout.archive_has_pyc,
        "handed_off": handed_off,
        "expected_hand_offs": (warmup + samples) * sum(1 for v in VARIANTS if v.script),
        "variants": rows,
        "ratios": ratios(rows),
        "import_profiles": profiles,
    }


def _has_bytecode(archive: Path) -> bool:
    with zipfile.ZipFile(archive) as z:
        return any(name.endswith(".pyc") for name in z.namelist())


def ratios(rows: dict[str, Any]) -> dict[str, float]:
    def med(key: str) -> float:
        return rows[key]["to_200_ms"]["median"]

    def cpu(key: str) -> float:
        return rows[key]["cpu_to_200_ms"]["median"]

    bare = rows["pass"]["exit_ms"]["median"]
    return {
        "cpu_handler_over_floor": cpu("handler") / cpu("floor"),
        "cpu_handler_pyc_over_floor": cpu("handler_pyc") / cpu("floor"),
        "cpu_naive_over_handler": cpu("naive") / cpu("handler"),
        "handler_over_floor": med("handler") / med("floor"),
        "handler_pyc_over_floor": med("handler_pyc") / med("floor"),
        "naive_over_handler": med("naive") / med("handler"),
        "naive_pyc_over_handler_pyc": med("naive_pyc") / med("handler_pyc"),
        "handler_minus_floor_ms": med("handler") - med("floor"),
        "handler_pyc_minus_floor_ms": med("handler_pyc") - med("floor"),
        "floor_above_bare_ms": med("floor") - bare,
        "handler_above_bare_ms": med("handler") - bare,
        "handler_above_bare_over_floor_above_bare": (med("handler") - bare) / (med("floor") - bare),
    }
