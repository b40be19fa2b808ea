"""``oci://host[:port]/namespace/name[:tag][@sha256:...]`` references.

Example:
    >>> ref = parse_reference("oci://127.0.0.1:5000/team/kb:main")
    >>> ref.host, ref.repository, ref.tag, ref.plain_http
    ('127.0.0.1:5000', 'team/kb', 'main', True)
    >>> str(ref.at("sha256:" + "0" * 64))
    'oci://127.0.0.1:5000/team/kb@sha256:0000000000000000000000000000000000000000000000000000000000000000'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from memcube.errors import InvalidReferenceError

SCHEME = "oci://"
DEFAULT_TAG = "latest"
#: Hosts reached over plain HTTP besides loopback ones: comma-separated ``host[:port]`` names.
INSECURE_ENV = "MEMCUBE_REGISTRY_INSECURE"

_HOST = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$"
)
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_digest(value: str) -> bool:
    """Whether ``value`` is a ``sha256:<64 hex>`` digest."""
    return bool(_DIGEST.match(value))


def check_tag(tag: str) -> str:
    """``tag`` if it is a valid OCI tag; raises :class:`InvalidReferenceError` otherwise."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise InvalidReferenceError(
            f"{tag!r} is not a valid tag (letters, digits, '_', '.', '-'; at most 128)."
        )
    return tag


def _loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0][1:]
    return name in ("localhost", "::1") or name.startswith("127.")


@dataclass(frozen=True)
class Reference:
    """A parsed registry reference: ``host``, ``repository`` (``namespace/name``), and a
    ``tag`` and/or ``digest``."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def plain_http(self) -> bool:
        """Loopback hosts, and those listed in ``MEMCUBE_REGISTRY_INSECURE``, use ``http://``."""
        listed = {h.strip() for h in os.environ.get(INSECURE_ENV, "").split(",") if h.strip()}
        return _loopback(self.host) or self.host in listed

    @property
    def namespace(self) -> str:
        return self.repository.rsplit("/", 1)[0] if "/" in self.repository else ""

    @property
    def name(self) -> str:
        return self.repository.rsplit("/", 1)[-1]

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if known, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def channel(self) -> str:
        """The reference without its digest (what a subscription follows)."""
        return f"{SCHEME}{self.host}/{self.repository}:{self.tag or DEFAULT_TAG}"

    def at(self, digest: str) -> Reference:
        """The same repository at one manifest digest."""
        return replace(self, tag=None, digest=digest)

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=check_tag(tag), digest=None)

    def __str__(self) -> str:
        out = f"{SCHEME}{self.host}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_reference(value: str | Reference, *, require_name: bool = True) -> Reference:
    """Parse ``oci://host/namespace/name[:tag][@digest]`` (the ``oci://`` is optional).

    ``require_name=False`` also accepts ``host/namespace`` (what ``search-registry`` lists).

    Raises:
        InvalidReferenceError: anything that is not such a reference.
    """
    if isinstance(value, Reference):
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidReferenceError("a registry reference must be a non-empty string.")
    text = value.strip()
    if text.startswith(SCHEME):
        text = text[len(SCHEME) :]
    elif "://" in text:
        raise InvalidReferenceError(
            f"{value!r}: only oci:// references are supported (oci://host/namespace/name:tag)."
        )
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not is_digest(digest):
            raise InvalidReferenceError(f"{value!r}: the digest must be sha256:<64 hex digits>.")
    host, _, path = text.partition("/")
    if not _HOST.match(host) or (not path and require_name):
        raise InvalidReferenceError(
            f"{value!r} is not oci://host[:port]/namespace/name[:tag] (e.g. "
            "oci://ghcr.io/acme/team-kb:main)."
        )
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        check_tag(tag)
    parts = path.split("/") if path else []
    if (require_name and not parts) or not all(_COMPONENT.match(p) for p in parts):
        raise InvalidReferenceError(
            f"{value!r}: repository names are lowercase letters and digits separated by '/', "
            "'.', '_' or '-'."
        )
    if len(path) > 255:
        raise InvalidReferenceError(f"{value!r}: the repository name is longer than 255.")
    return Reference(host=host, repository=path, tag=tag, digest=digest)


__all__ = ["DEFAULT_TAG", "SCHEME", "Reference", "check_tag", "is_digest", "parse_reference"]
