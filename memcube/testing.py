"""Helpers for tests and benchmarks: a real ``chroma run`` server on a free loopback port.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> server = ChromaServer(Path(tempfile.mkdtemp()) / "data")
    >>> server.start()
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.stop()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["ChromaServer", "chroma_binary", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chroma_binary() -> str:
    """The ``chroma`` command of the running interpreter's environment (or the one on PATH)."""
    local = Path(sys.executable).parent / "chroma"
    found = str(local) if local.exists() else shutil.which("chroma")
    if not found:
        raise RuntimeError("the `chroma` command (from the chromadb package) is not installed")
    return found


class ChromaServer:
    """A real ``chroma run`` on a loopback port, persisting to ``path``.

    ``start()`` waits until the heartbeat answers; ``stop(kill=True)`` sends SIGKILL (a crash),
    ``stop()`` a SIGTERM. Starting again after a stop reuses the same port and data folder, which
    is how a restart of a production server looks to its clients. The server's output goes to
    ``chroma-<port>.log`` beside ``path``.
    """

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = Path(path)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.path.parent / f"chroma-{self.port}.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Launch the server and block until ``/api/v2/heartbeat`` answers."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    chroma_binary(),
                    "run",
                    "--path",
                    str(self.path),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"chroma run exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop(kill=True)
        raise RuntimeError(f"chroma run did not answer on {self.url} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        """Stop the server: SIGTERM (graceful), or SIGKILL with ``kill=True`` (a crash)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def __enter__(self) -> ChromaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
