"""A throwaway local OCI registry: the CNCF distribution registry (Debian's ``docker-registry``)
on a free loopback port, with a temporary storage folder and htpasswd basic auth.

For examples, tests and benchmarks that must run offline. It needs the ``docker-registry`` and
``htpasswd`` programs (``apt install docker-registry apache2-utils``); :func:`missing_binaries`
names those that are not installed.

Example:
    >>> isinstance(missing_binaries(), list)
    True
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from memcube.errors import RegistryUnavailableError

REGISTRY_BINARY = "docker-registry"
HTPASSWD_BINARY = "htpasswd"


def missing_binaries() -> list[str]:
    """The programs a :class:`LocalRegistry` needs that are not on ``PATH``."""
    return [b for b in (REGISTRY_BINARY, HTPASSWD_BINARY) if shutil.which(b) is None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRegistry:
    """Start with :meth:`start` (or use as a context manager); :meth:`stop` kills it and
    :meth:`close` also removes its storage. ``host`` is ``127.0.0.1:<port>``; ``credentials``
    are the ``(username, password)`` it accepts."""

    def __init__(
        self,
        *,
        username: str = "publisher",
        password: str | None = None,
        root: str | Path | None = None,
        port: int | None = None,
    ) -> None:
        missing = missing_binaries()
        if missing:
            raise RegistryUnavailableError(
                f"{', '.join(missing)} not installed: apt install docker-registry apache2-utils "
                "(or point the example at a registry URL)."
            )
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="mc-oci-"))
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.username = username
        self.password = password or os.urandom(9).hex()
        self.process: subprocess.Popen[bytes] | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        htpasswd = subprocess.run(
            [HTPASSWD_BINARY, "-Bbn", self.username, self.password],
            capture_output=True,
            check=True,
        ).stdout
        (self.root / "htpasswd").write_bytes(htpasswd)
        self.storage = self.root / "storage"
        self.config = self.root / "config.yml"
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
            "auth:\n  htpasswd:\n    realm: memcube\n"
            f"    path: {self.root / 'htpasswd'}\n",
            encoding="utf-8",
        )

    @property
    def credentials(self) -> tuple[str, str]:
        return self.username, self.password

    def url(self, path: str) -> str:
        """``oci://127.0.0.1:<port>/<path>``."""
        return f"oci://{self.host}/{path.lstrip('/')}"

    def start(self, timeout: float = 15.0) -> LocalRegistry:
        if self.process is not None and self.process.poll() is None:
            return self
        log = open(self.root / "registry.log", "ab")  # noqa: SIM115 - kept open for the child
        self.process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(self.config)], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"http://{self.host}/v2/", timeout=1.0).status_code in (200, 401):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        tail = (self.root / "registry.log").read_text(errors="replace")[-800:]
        self.stop()
        raise RegistryUnavailableError(f"docker-registry did not start on {self.host}: {tail}")

    def stop(self) -> None:
        """Kill the registry process (its storage stays; :meth:`start` serves it again)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            self.process = None

    def close(self) -> None:
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (to tamper with it in tests)."""
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["LocalRegistry", "free_port", "missing_binaries"]
