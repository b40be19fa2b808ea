"""Registry credentials, found where the container tools keep them; never written anywhere.

Looked up in this order for a registry host:

1. ``MEMCUBE_REGISTRY_USERNAME`` / ``MEMCUBE_REGISTRY_PASSWORD`` in the environment;
2. the docker config (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``): a
   ``credHelpers`` entry for the host, then ``auths`` (``auth`` = base64 ``user:password``, or
   ``username``/``password``, or an ``identitytoken``), then the ``credsStore`` helper.

A cube never stores them: subscriptions record only the reference.

Example:
    >>> import json, os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "config.json"), "w") as fh:
    ...     json.dump({"auths": {"reg.example": {"auth": "YW5hOnMzY3JldA=="}}}, fh)
    >>> find_credentials("reg.example", environ={"DOCKER_CONFIG": d})
    Credentials(username='ana', password=<hidden>)
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcube.errors import InvalidInputError, RegistryAuthError

USERNAME_ENV = "MEMCUBE_REGISTRY_USERNAME"
PASSWORD_ENV = "MEMCUBE_REGISTRY_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    """A username and password (or token) for one registry; the password never prints."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


def _config_path(environ: Mapping[str, str]) -> Path:
    folder = environ.get("DOCKER_CONFIG")
    if folder:
        return Path(folder).expanduser() / "config.json"
    return Path(environ.get("HOME", str(Path.home()))).expanduser() / ".docker" / "config.json"


def _host_keys(host: str) -> list[str]:
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        keys.append("https://index.docker.io/v1/")
    return keys


def _from_helper(helper: str, host: str) -> Credentials | None:
    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - a helper named by the user's docker config
            [exe, "get"], input=host, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("Secret"), str):
        return Credentials(str(doc.get("Username") or "<token>"), doc["Secret"])
    return None


def _from_auth(entry: Any, host: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise RegistryAuthError(
                f"the docker config's auth entry for {host} is not base64 'user:password'."
            ) from None
        if sep:
            return Credentials(user, password)
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"])
    if isinstance(entry.get("identitytoken"), str):
        return Credentials("<token>", entry["identitytoken"])
    return None


def find_credentials(host: str, *, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials for ``host`` from the environment or the docker config, or ``None``."""
    env = os.environ if environ is None else environ
    user, password = env.get(USERNAME_ENV), env.get(PASSWORD_ENV)
    if user and password is not None:
        return Credentials(user, password)
    path = _config_path(env)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RegistryAuthError(f"cannot read the docker config {path}: {exc}.") from None
    if not isinstance(doc, dict):
        return None
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        found = _from_helper(helpers[host], host)
        if found is not None:
            return found
    auths = doc.get("auths")
    if isinstance(auths, dict):
        for key in _host_keys(host):
            found = _from_auth(auths.get(key), host)
            if found is not None:
                return found
    if isinstance(doc.get("credsStore"), str):
        return _from_helper(doc["credsStore"], host)
    return None


def as_credentials(value: Credentials | tuple[str, str] | None) -> Credentials | None:
    """Normalize an explicit ``(username, password)`` pair."""
    if value is None or isinstance(value, Credentials):
        return value
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return Credentials(value[0], value[1])
    raise InvalidInputError("credentials must be a (username, password) pair of strings.")


__all__ = ["PASSWORD_ENV", "USERNAME_ENV", "Credentials", "as_credentials", "find_credentials"]
