"""Fixtures for the reliability tests: a private Chroma server and writer subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from memcube.testing import ChromaServer

WRITER = Path(__file__).with_name("writer.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ChromaServer]:
    """A Chroma server of this test alone (tests that kill it must not hurt the others)."""
    server = ChromaServer(tmp_path / "own-chroma" / "data")
    server.start()
    yield server
    server.stop()


@dataclass
class Writer:
    """A ``writer.py`` subprocess; ``acked`` fills with every id it was told was stored."""

    proc: subprocess.Popen[str]
    acked: list[list[str]] = field(default_factory=list)
    writes: int = 0
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    log_path: Path | None = None

    def stderr(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    @property
    def acked_ids(self) -> list[str]:
        return [i for batch in self.acked for i in batch]

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        self.lines.append(line)
        if line == "READY":
            self.ready.set()
        elif line.startswith("ACK "):
            self.acked.append(line[4:].split(","))
        elif line.startswith("WRITE "):
            self.writes += 1
        elif line == "DONE":
            self.done = True

    def pump(self) -> None:
        """Read all output until the process exits (run in a thread)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.feed(line)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Writer]]:
    """Start ``writer.py`` subprocesses (``spawn("add_many", path, "--batch", "50")``).

    Output is pumped by a thread into :class:`Writer`; stderr goes to a log file in ``tmp_path``.
    Any writer still alive at the end of the test is killed.
    """
    started: list[Writer] = []

    def start(*args: str | Path, stdin: bool = False) -> Writer:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        log = open(tmp_path / f"writer-{len(started)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), *map(str, args)],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stderr=log,
            text=True,
            env=env,
            cwd=REPO,
        )
        log.close()
        writer = Writer(proc, log_path=tmp_path / f"writer-{len(started)}.log")
        threading.Thread(target=writer.pump, daemon=True).start()
        started.append(writer)
        return writer

    yield start
    for writer in started:
        if writer.proc.poll() is None:
            writer.proc.kill()
        writer.proc.wait(timeout=30)
