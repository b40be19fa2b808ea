"""A small OCI distribution client over ``httpx``: the calls a memory marketplace needs.

Blobs are pushed with a monolithic upload (``POST`` then ``PUT ?digest=``) after a ``HEAD``
that skips those the registry already has; manifests are put by digest and then tagged; pulls
stream each blob into a file while hashing it and refuse it when its digest, its size or the
caller's size limit does not hold. Authentication follows the registry's ``WWW-Authenticate``
challenge: HTTP basic (``docker-registry`` with htpasswd, Artifactory, Harbor) or a bearer token
from the realm it names (Docker Hub, GHCR, ECR, Zot). Connection failures, timeouts and 5xx
answers are retried with a growing pause, then reported as
:class:`~memcube.errors.RegistryUnavailableError`.

Example (against the registry a test or example started; see :mod:`memcube.marketplace`):
    >>> client = RegistryClient("127.0.0.1:1", retries=0, timeout=0.5)
    >>> client.ping()
    Traceback (most recent call last):
    ...
    memcube.errors.RegistryUnavailableError: cannot reach the registry at http://127.0.0.1:1 ...
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from memcube.errors import (
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    LayerDigestError,
    ManifestDigestError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailableError,
)
from memcube.marketplace.credentials import Credentials, find_credentials
from memcube.marketplace.media import OCI_MANIFEST
from memcube.marketplace.reference import is_digest

_CHUNK = 1 << 20
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MANIFEST_ACCEPT = ", ".join(
    [OCI_MANIFEST, "application/vnd.oci.image.index.v1+json",
     "application/vnd.docker.distribution.manifest.v2+json"]
)  # fmt: skip
#: The largest manifest a client reads (the OCI distribution spec recommends 4 MiB).
MAX_MANIFEST_BYTES = 4 << 20
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


class RegistryClient:
    """One registry host. ``credentials`` default to those of the environment or docker config
    (:func:`~memcube.marketplace.credentials.find_credentials`); ``plain_http`` defaults to
    ``True`` for loopback hosts only."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        plain_http: bool | None = None,
        retries: int = 3,
        backoff: float = 0.25,
        timeout: float = 60.0,
    ) -> None:
        from memcube.marketplace.reference import Reference

        self.host = host
        if plain_http is None:
            plain_http = Reference(host=host, repository="x").plain_http
        self.base_url = f"{'http' if plain_http else 'https'}://{host}"
        self.credentials = credentials if credentials is not None else find_credentials(host)
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self._auth: str | None = None  # the Authorization header once a challenge was answered
        self._tokens: dict[str, str] = {}
        self._http = httpx.Client(timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport
    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def _answer_challenge(self, response: httpx.Response, scope: str | None) -> bool:
        """Set the Authorization header a 401 asks for; ``False`` when nothing more can be
        tried (no credentials for basic auth, or they were refused already)."""
        challenge = response.headers.get("www-authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self.credentials is None:
                raise RegistryAuthError(
                    f"the registry {self.host} needs credentials and none were found: run "
                    f"`docker login {self.host}`, or set MEMCUBE_REGISTRY_USERNAME and "
                    "MEMCUBE_REGISTRY_PASSWORD."
                )
            if self._auth is not None and self._auth.startswith("Basic "):
                return False
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            self._auth = "Basic " + base64.b64encode(pair).decode()
            return True
        if scheme == "bearer":
            params = dict(_CHALLENGE.findall(challenge))
            realm = params.pop("realm", None)
            if not realm:
                return False
            if scope is not None and "scope" not in params:
                params["scope"] = scope
            key = json.dumps(params, sort_keys=True)
            if key in self._tokens and self._auth == f"Bearer {self._tokens[key]}":
                return False  # the fresh token was refused too
            auth = None
            if self.credentials is not None:
                auth = (self.credentials.username, self.credentials.password)
            try:
                got = self._http.get(realm, params=params, auth=auth)
            except httpx.TransportError as exc:
                raise RegistryUnavailableError(
                    f"cannot reach the token service {realm} of {self.host}: {exc}."
                ) from None
            if got.status_code in (401, 403):
                return False
            try:
                doc = got.json()
                token = doc.get("token") or doc.get("access_token")
            except ValueError:
                token = None
            if not isinstance(token, str) or not token:
                return False
            self._tokens[key] = token
            self._auth = f"Bearer {token}"
            return True
        return False

    def _send(
        self,
        method: str,
        path: str,
        *,
        scope: str | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | Path | None = None,
        ok: tuple[int, ...] = (200,),
        stream: bool = False,
    ) -> httpx.Response:
        """Send one request with auth and retries; returns a response whose status is in ``ok``
        (for ``stream=True`` still open: close it)."""
        attempt = 0
        challenged = 0
        while True:
            hdrs = dict(headers or {})
            if self._auth is not None:
                hdrs["Authorization"] = self._auth
            body: Any = content
            if isinstance(content, Path):
                hdrs["Content-Length"] = str(content.stat().st_size)
                body = _file_chunks(content)
            try:
                request = self._http.build_request(
                    method, self._url(path), headers=hdrs, content=body
                )
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt < self.retries:
                    attempt += 1
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                raise RegistryUnavailableError(
                    f"cannot reach the registry at {self.base_url} ({type(exc).__name__}: {exc}) "
                    f"after {attempt + 1} attempts; nothing was applied. Try again later."
                ) from None
            if response.status_code == 401 and challenged < 2:
                response.close()
                challenged += 1
                if self._answer_challenge(response, scope):
                    continue
                raise RegistryAuthError(
                    f"the registry {self.host} refused the credentials"
                    f"{' of ' + repr(self.credentials.username) if self.credentials else ''}; "
                    "check them (docker login, or MEMCUBE_REGISTRY_USERNAME/PASSWORD)."
                )
            if response.status_code in _RETRY_STATUS and attempt < self.retries:
                response.close()
                attempt += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if response.status_code in ok:
                return response
            if stream:
                response.read()
                response.close()
            self._raise(response, method, path)

    def _raise(self, response: httpx.Response, method: str, path: str) -> None:
        status = response.status_code
        try:
            errors = response.json().get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, AttributeError):
            detail = response.text[:200]
        where = f"{method} {path.split('?', 1)[0]}"
        if status == 401:
            raise RegistryAuthError(f"the registry {self.host} refused the credentials ({detail}).")
        if status == 403:
            raise RegistryAuthError(
                f"the registry {self.host} denies {where} to these credentials ({detail})."
            )
        if status == 404:
            raise ArtifactNotFoundError(f"{self.host}: {where} was not found ({detail}).")
        if status in _RETRY_STATUS:
            raise RegistryUnavailableError(
                f"the registry {self.host} kept answering {status} to {where} ({detail}); "
                "nothing was applied. Try again later."
            )
        raise RegistryError(f"the registry {self.host} answered {status} to {where} ({detail}).")

    # ------------------------------------------------------------------ calls
    def ping(self) -> None:
        """``GET /v2/``: the registry is reachable and accepts the credentials."""
        self._send("GET", "/v2/").close()

    def blob_exists(self, repository: str, digest: str) -> bool:
        pull = f"repository:{repository}:pull"
        response = self._send("HEAD", f"/v2/{repository}/blobs/{digest}", scope=pull, ok=(200, 404))
        response.close()
        return response.status_code == 200

    def push_blob(self, repository: str, digest: str, content: bytes | Path) -> bool:
        """Upload a blob unless the registry has it; ``True`` if bytes were sent."""
        if self.blob_exists(repository, digest):
            return False
        scope = f"repository:{repository}:pull,push"
        started = self._send("POST", f"/v2/{repository}/blobs/uploads/", scope=scope, ok=(202,))
        started.close()
        location = started.headers.get("location")
        if not location:
            raise RegistryError(f"the registry {self.host} gave no upload location.")
        sep = "&" if "?" in location else "?"
        self._send(
            "PUT",
            f"{location}{sep}digest={digest}",
            scope=scope,
            headers={"Content-Type": "application/octet-stream"},
            content=content,
            ok=(201,),
        ).close()
        return True

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str = OCI_MANIFEST
    ) -> str:
        """Put a manifest under a tag or its digest; returns its digest."""
        digest = sha256_digest(manifest)
        response = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull,push",
            headers={"Content-Type": media_type},
            content=manifest,
            ok=(201,),
        )
        response.close()
        given = response.headers.get("docker-content-digest")
        if given and given != digest:
            raise ManifestDigestError(
                f"the registry {self.host} stored the manifest as {given}, not {digest}."
            )
        return digest

    def get_manifest(
        self, repository: str, reference: str, *, max_bytes: int = MAX_MANIFEST_BYTES
    ) -> tuple[bytes, str]:
        """A manifest's exact bytes and digest. When ``reference`` is a digest, the bytes must
        hash to it; for a tag, to the digest the registry states (if it states one).

        Raises:
            ManifestDigestError: the bytes do not match the digest.
            ArtifactNotFoundError: no such tag or digest.
            ArtifactTooLargeError: the manifest is longer than ``max_bytes``.
        """
        response = self._send(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": _MANIFEST_ACCEPT},
            stream=True,
        )
        try:
            data = bytearray()
            try:
                for chunk in response.iter_bytes():
                    data.extend(chunk)
                    if len(data) > max_bytes:
                        raise ArtifactTooLargeError(
                            f"the manifest of {repository}:{reference} is over {max_bytes} bytes."
                        )
            except httpx.TransportError as exc:
                raise RegistryUnavailableError(
                    f"the registry {self.host} dropped the connection while sending a manifest "
                    f"({exc}); nothing was applied."
                ) from None
        finally:
            response.close()
        body = bytes(data)
        digest = sha256_digest(body)
        expected = (
            reference if is_digest(reference) else response.headers.get("docker-content-digest")
        )
        if expected and expected != digest:
            raise ManifestDigestError(
                f"the manifest the registry sent for {repository}@{reference} hashes to {digest}, "
                f"not {expected}: it was altered in transit or in storage. Nothing was applied."
            )
        return body, digest

    def head_manifest(self, repository: str, reference: str) -> str | None:
        """The digest a tag points at, or ``None`` when the tag does not exist."""
        try:
            body, digest = self.get_manifest(repository, reference)
        except ArtifactNotFoundError:
            return None
        return digest

    def fetch_blob(self, repository: str, digest: str, size: int, dest: Path) -> None:
        """Download a blob into ``dest``, checking its size and SHA-256 as it streams; a dropped
        connection restarts the blob (up to ``retries`` times).

        Raises:
            LayerDigestError: the bytes are not ``size`` long or do not hash to ``digest``.
            RegistryUnavailableError: the registry kept failing.
        """
        attempt = 0
        while True:
            response = self._send(
                "GET", f"/v2/{repository}/blobs/{digest}",
                scope=f"repository:{repository}:pull", stream=True,
            )  # fmt: skip
            sha = hashlib.sha256()
            n = 0
            try:
                with open(dest, "wb") as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        n += len(chunk)
                        if n > size:
                            raise LayerDigestError(
                                f"layer {digest} is longer than its descriptor's {size} bytes: "
                                "refusing it; nothing was applied."
                            )
                        sha.update(chunk)
                        out.write(chunk)
            except httpx.TransportError as exc:
                dest.unlink(missing_ok=True)
                if attempt < self.retries:
                    attempt += 1
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                raise RegistryUnavailableError(
                    f"the registry {self.host} dropped the connection while sending layer "
                    f"{digest} ({type(exc).__name__}) after {attempt + 1} attempts; nothing was "
                    "applied. Try again later."
                ) from None
            except BaseException:
                dest.unlink(missing_ok=True)
                raise
            finally:
                response.close()
            if n != size or "sha256:" + sha.hexdigest() != digest:
                dest.unlink(missing_ok=True)
                raise LayerDigestError(
                    f"layer {digest} does not match its descriptor (got {n} bytes, "
                    f"sha256:{sha.hexdigest()[:16]}...): it was tampered with or damaged. "
                    "Nothing was applied."
                )
            return

    def _paged(self, path: str, key: str, scope: str | None) -> list[str]:
        out: list[str] = []
        url: str | None = path
        while url:
            response = self._send("GET", url, scope=scope)
            try:
                values = response.json().get(key) or []
            except (ValueError, AttributeError):
                raise RegistryError(
                    f"the registry {self.host} sent an unreadable {key} list."
                ) from None
            out.extend(v for v in values if isinstance(v, str))
            link = response.headers.get("link", "")
            found = re.match(r"\s*<([^>]+)>", link)
            url = found.group(1) if found else None
        return out

    def tags(self, repository: str) -> list[str]:
        """The repository's tags (``[]`` if it has none)."""
        try:
            return self._paged(
                f"/v2/{repository}/tags/list?n=1000", "tags", f"repository:{repository}:pull"
            )
        except ArtifactNotFoundError:
            return []

    def catalog(self) -> list[str]:
        """Every repository the credentials may list (``GET /v2/_catalog``)."""
        return self._paged("/v2/_catalog?n=1000", "repositories", "registry:catalog:*")

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest (registries must allow deletion)."""
        self._send(
            "DELETE", f"/v2/{repository}/manifests/{digest}",
            scope=f"repository:{repository}:delete", ok=(202,),
        ).close()  # fmt: skip


__all__ = ["MAX_MANIFEST_BYTES", "RegistryClient", "sha256_digest"]
