"""The marketplace operations: publish, pull, subscribe, sync, search, revocation lists.

Everything a pull or sync downloads is verified before the target is touched: the manifest's
digest, every layer's digest and size, the Ed25519 signature of ``mip.json`` (which lists every
layer's SHA-256) against the trusted keys, the revocation list, the license, the delta chain, and
then every record, through :func:`memcube.interchange.read_archive`. Only then are the versions
applied, in order, each idempotently, and the channel state advanced after each.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from memcube.errors import (
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    ChannelMovedError,
    DeltaBaseError,
    InvalidInputError,
    LayerDigestError,
    LicenseNotAcceptedError,
    MalformedArchiveError,
    MemCubeError,
    RevokedError,
)
from memcube.interchange.export import export_cube
from memcube.interchange.format import (
    MANIFEST_MEMBER,
    MIP_VERSION,
    PAYLOAD_DIRS,
    PAYLOAD_SUFFIXES,
    SIGNATURE_MEMBER,
    ImportLimits,
    member_kind,
    parse_manifest,
)
from memcube.interchange.importer import (
    ImportReport,
    apply_records,
    attach_payloads,
    check_on_conflict,
    plan_payloads,
)
from memcube.interchange.payloads import group_units, unit_fingerprint
from memcube.interchange.reader import StagedArchive, loads_strict, read_archive
from memcube.interchange.signing import (
    PrivateKeyLike,
    PublicKeyLike,
    SignatureCheck,
    key_id,
    load_private_key,
    load_public_key,
    verify_signature,
)
from memcube.items import MemoryItem, check_scope_id, free_metadata, utcnow
from memcube.marketplace import media
from memcube.marketplace.artifact import (
    ArtifactManifest,
    Layer,
    assemble_archive,
    build_manifest,
    check_size,
    parse_artifact_manifest,
    split_archive,
)
from memcube.marketplace.client import RegistryClient
from memcube.marketplace.credentials import Credentials, as_credentials
from memcube.marketplace.reference import Reference, check_tag, parse_reference
from memcube.marketplace.state import (
    ChannelState,
    Subscription,
    item_digest,
    load_subscriptions,
    save_subscriptions,
)
from memcube.marketplace.trust import RevocationList, public_key_text
from memcube.ports import MarketplaceCube
from memcube.prompting import PUBLISHER_DETAIL

#: Default upper bound on what one pull or sync downloads (all versions together).
DEFAULT_MAX_BYTES = 8 << 30
#: Longest delta chain a sync walks before it refuses.
MAX_CHAIN = 10_000
_GET_BATCH = 1000

TrustedKeys = Iterable[PublicKeyLike] | PublicKeyLike


# ---------------------------------------------------------------------------------- reports
@dataclass
class PublishReport:
    """What :meth:`Marketplace.publish` pushed."""

    reference: str
    digest: str
    kind: str
    sequence: int
    base: str | None
    items: int
    tombstones: int
    layers: int
    uploaded_layers: int
    uploaded_bytes: int
    artifact_bytes: int
    key_id: str
    seconds: float
    unchanged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Conflict:
    """A memory the target changed since the channel last set it (or that two publishers
    edited from the same base), and what the conflict policy did with it."""

    id: str
    publisher: str | None
    resolution: str
    reason: str


@dataclass
class SyncReport:
    """What a pull or a sync applied."""

    reference: str
    target: str
    head: str | None = None
    applied: list[str] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    publishers: dict[str, str | None] = field(default_factory=dict)
    signatures: list[str] = field(default_factory=list)
    attached: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    revoked_items: list[str] = field(default_factory=list)
    license: str | None = None
    downloaded_bytes: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        """Nothing new was published since the last applied version."""
        return not self.applied

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["up_to_date"] = self.up_to_date
        return d


@dataclass(frozen=True)
class Listing:
    """One published version as ``search-registry`` shows it."""

    reference: str
    repository: str
    tag: str
    digest: str
    kind: str
    annotations: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fetched:
    """One downloaded and verified version, staged outside the target."""

    manifest: ArtifactManifest
    staged: StagedArchive
    info: dict[str, Any]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def signature(self) -> SignatureCheck:
        return self.staged.signature


# ---------------------------------------------------------------------------------- helpers
def trusted_list(keys: TrustedKeys | None) -> list[Ed25519PublicKey] | None:
    """``trusted_keys`` as public keys: one key, an iterable of keys, or a trust store."""
    if keys is None:
        return None
    if isinstance(keys, (str, bytes, Path, Ed25519PublicKey, Ed25519PrivateKey)):
        keys = [keys]
    out = [load_public_key(k) for k in keys]
    if not out:
        raise InvalidInputError("trusted_keys is empty; pass at least one publisher key.")
    return out


def licenses_list(accept: str | Sequence[str] | None) -> list[str]:
    if accept is None:
        return []
    values = [accept] if isinstance(accept, str) else list(accept)
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise InvalidInputError("accept_license must be a license id (SPDX) or URL, or a list.")
    return [v.strip() for v in values]


def _payload_names(root: Path) -> list[str]:
    names: list[str] = []
    for top in PAYLOAD_DIRS:
        base = root / top
        if not base.is_dir() or base.is_symlink():
            continue
        for dirpath, dirs, files in os.walk(base, followlinks=False):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                full = Path(dirpath) / name
                if name.startswith(".") or full.is_symlink() or not name.endswith(PAYLOAD_SUFFIXES):
                    continue
                rel = full.relative_to(root).as_posix()
                try:
                    member_kind(rel)
                except MemCubeError:  # odd names are never exported
                    continue
                names.append(rel)
    return sorted(names)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class _Selection:
    """An :class:`~memcube.ports.ExportSource` over chosen memories of a cube (a topic, or what
    changed since the channel's head), with the payload files of ``path``."""

    def __init__(self, cube: MarketplaceCube, items: list[MemoryItem], path: Path) -> None:
        self._cube = cube
        self._items = items
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    @property
    def manifest(self) -> Any:
        return self._cube.manifest

    @property
    def cube_id(self) -> str:
        return self._cube.cube_id

    def count(self, *, user_id: str | None = None, include_archived: bool = False) -> int:
        return len(self._items)

    def items(self, *, user_id: str | None, include_archived: bool = False) -> Iterator[MemoryItem]:
        return iter(self._items)

    def history(self, id: str, *, user_id: str | None = None) -> list[MemoryItem]:
        return self._cube.history(id)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def publisher_of(item: MemoryItem) -> dict[str, Any] | None:
    """The publisher attribution a pulled memory carries, or ``None``."""
    found = item.provenance.detail.get(PUBLISHER_DETAIL)
    return found if isinstance(found, dict) else None


# ---------------------------------------------------------------------------------- service
class Marketplace:
    """Registry operations for one cube (``cube`` may be ``None`` for searching, fetching and
    revocation lists). Credentials come from ``credentials``, else the environment or the
    docker config, per registry host; nothing about them is written anywhere.

    Example (runs where ``docker-registry`` is installed, as on the test machines):
        >>> import tempfile, pathlib
        >>> from memcube import MemCube
        >>> from memcube.interchange import generate_signing_key, public_key_of
        >>> from memcube.marketplace.local import LocalRegistry, missing_binaries
        >>> d, key = pathlib.Path(tempfile.mkdtemp()), generate_signing_key()
        >>> if not missing_binaries():
        ...     with LocalRegistry() as reg, MemCube.open(d / "a") as a, MemCube.open(d / "b") as b:
        ...         _ = a.add("Ana likes green tea", user_id="ana")
        ...         market = Marketplace(a, credentials=reg.credentials)
        ...         published = market.publish(reg.url("demo/ana:main"), signing_key=key)
        ...         pulled = Marketplace(b, credentials=reg.credentials).pull_into(
        ...             reg.url("demo/ana:main"), trusted_keys=[public_key_of(key)])
        ...         assert pulled.applied == [published.digest] and b.count(user_id="ana") == 1
    """

    def __init__(
        self,
        cube: MarketplaceCube | None = None,
        *,
        credentials: Credentials | tuple[str, str] | None = None,
        plain_http: bool | None = None,
        retries: int = 3,
        timeout: float = 60.0,
    ) -> None:
        self.cube = cube
        self.credentials = as_credentials(credentials)
        self.plain_http = plain_http
        self.retries = retries
        self.timeout = timeout

    def client(self, ref: Reference) -> RegistryClient:
        return RegistryClient(
            ref.host,
            credentials=self.credentials,
            plain_http=self.plain_http if self.plain_http is not None else ref.plain_http,
            retries=self.retries,
            timeout=self.timeout,
        )

    def _cube(self) -> MarketplaceCube:
        if self.cube is None:
            raise InvalidInputError("this operation needs a cube: Marketplace(cube).")
        return self.cube

    # ------------------------------------------------------------------ publish
    def publish(
        self,
        reference: str | Reference,
        *,
        signing_key: PrivateKeyLike,
        user_id: str | None = None,
        tags: Sequence[str] | None = None,
        title: str | None = None,
        description: str | None = None,
        license: str | None = None,
        terms: str | None = None,
        publisher: str | None = None,
        full: bool = False,
    ) -> PublishReport:
        """Push the cube (or ``user_id``'s memories, or those with any of ``tags``) to the
        channel ``reference`` (``oci://host/namespace/name:tag``), signed with ``signing_key``.

        The first publication to a channel is a full cube; later ones are deltas on top of the
        channel's head (new and changed memories, tombstones for deleted ones), unless
        ``full=True``. Layers the registry already has are not uploaded again.

        Raises:
            ChannelMovedError: someone published to the channel since this cube last synced
                or published it: :meth:`sync` first (or publish ``full=True``).
            RegistryAuthError, RegistryUnavailableError: see :class:`RegistryClient`.
        """
        cube = self._cube()
        started = time.perf_counter()
        ref = parse_reference(reference)
        if ref.digest is not None:
            raise InvalidInputError("publish to a tag (oci://host/ns/name:tag), not a digest.")
        tag = check_tag(ref.tag or "latest")
        if signing_key is None:
            raise InvalidInputError(
                "publishing needs a signing_key: subscribers only apply signed cubes. "
                "Create one with `memcube keygen KEYFILE`."
            )
        signer = load_private_key(signing_key)
        kid = key_id(signer.public_key())
        check_scope_id(user_id, "user_id")
        wanted_tags = set(tags) if tags is not None else None
        for text in (title, description, license, terms, publisher):
            if text is not None and (not isinstance(text, str) or "\x00" in text):
                raise InvalidInputError("listing fields must be strings without NUL bytes.")
        channel = ref.channel
        state = ChannelState.load(cube.path, channel)
        with self.client(ref) as client, tempfile.TemporaryDirectory(prefix="mc-publish-") as tmp:
            head_raw: bytes | None
            try:
                head_raw, head = client.get_manifest(ref.repository, tag)
            except ArtifactNotFoundError:
                head_raw, head = None, None
            delta = head is not None and not full
            if delta and state.head != head:
                raise ChannelMovedError(
                    f"{channel} is at {head}, but this cube last saw "
                    f"{state.head or 'nothing of it'}: subscribe and sync first, then publish "
                    "your changes as a delta (or publish full=True to replace the channel)."
                )
            selected = [
                it
                for it in cube.items(user_id=user_id, include_archived=False)
                if wanted_tags is None or wanted_tags & set(it.tags)
            ]
            digests = {it.id: item_digest(it) for it in selected}
            names = _payload_names(cube.path)
            file_shas = {n: _sha256_file(cube.path / n) for n in names}
            if delta:
                chosen = [it for it in selected if state.items.get(it.id) != digests[it.id]]
                tombstones = sorted(set(state.items) - set(digests))
                bases = {it.id: state.items.get(it.id) for it in chosen}
                changed_units = [
                    u for u in group_units(names)
                    if any(state.files.get(f) != file_shas[f] for f in u.files)
                ]  # fmt: skip
                payload_root = Path(tmp) / "payload"
                payload_root.mkdir()
                for unit in changed_units:
                    for f in unit.files:
                        _link_or_copy(cube.path / f, payload_root / f)
                if not chosen and not tombstones and not changed_units:
                    return PublishReport(
                        reference=str(ref), digest=str(head), kind="delta",
                        sequence=state.sequence, base=head, items=0, tombstones=0, layers=0,
                        uploaded_layers=0, uploaded_bytes=0, artifact_bytes=0, key_id=kid,
                        seconds=time.perf_counter() - started, unchanged=True,
                    )  # fmt: skip
            else:
                chosen, tombstones, bases = selected, [], {}
                payload_root = cube.path
            sequence = state.sequence + 1 if delta else (state.sequence + 1 if head else 1)
            listing = {
                "title": title, "description": description, "license": license,
                "terms": terms, "publisher": publisher,
            }  # fmt: skip
            info = {
                "kind": "delta" if delta else "full",
                "channel": tag,
                "sequence": sequence,
                "base": head if delta else None,
                "tombstones": tombstones,
                "bases": bases,
                "publisher": {"key_id": kid, "name": publisher},
                "listing": {k: v for k, v in listing.items() if v is not None},
            }
            archive = Path(tmp) / "cube.mip.tar"
            exported = export_cube(
                _Selection(cube, chosen, payload_root), archive, user_id=user_id,
                signing_key=signer, compress=False, manifest_extra={"marketplace": info},
            )  # fmt: skip
            layers = split_archive(archive, Path(tmp) / "layers")
            annotations = self._annotations(layers, exported.items, exported.versions,
                                            exported.users, info, kid, cube)  # fmt: skip
            subject = None
            if delta and head_raw is not None:
                subject = {"mediaType": media.OCI_MANIFEST, "digest": head, "size": len(head_raw)}
            artifact = media.DELTA_ARTIFACT if delta else media.CUBE_ARTIFACT
            manifest = build_manifest(
                layers, artifact_type=artifact, annotations=annotations, subject=subject
            )
            uploaded = uploaded_bytes = 0
            client.push_blob(ref.repository, media.EMPTY_DIGEST, media.EMPTY_BLOB)
            for layer in layers:
                assert layer.path is not None
                if client.push_blob(ref.repository, layer.digest, layer.path):
                    uploaded += 1
                    uploaded_bytes += layer.size
            digest = client.put_manifest(
                ref.repository, "sha256:" + hashlib.sha256(manifest).hexdigest(), manifest
            )
            now = client.head_manifest(ref.repository, tag)
            if now != head:
                raise ChannelMovedError(
                    f"another publisher moved {channel} to {now} while this one was uploading; "
                    f"sync and publish again (the upload {digest} is left untagged)."
                )
            client.put_manifest(ref.repository, tag, manifest)
            client.put_manifest(ref.repository, f"{tag}.{sequence}"[:128], manifest)
        state.head, state.sequence = digest, sequence
        state.applied.append(digest)
        state.items = {**(state.items if delta else {}), **{i: digests[i] for i in digests}}
        for gone in tombstones:
            state.items.pop(gone, None)
        state.files = file_shas
        state.save(cube.path)
        return PublishReport(
            reference=str(ref.at(digest)),
            digest=digest,
            kind="delta" if delta else "full",
            sequence=sequence,
            base=head if delta else None,
            items=exported.items,
            tombstones=len(tombstones),
            layers=len(layers),
            uploaded_layers=uploaded,
            uploaded_bytes=uploaded_bytes,
            artifact_bytes=sum(layer.size for layer in layers),
            key_id=kid,
            seconds=time.perf_counter() - started,
        )

    @staticmethod
    def _annotations(
        layers: Sequence[Layer],
        items: int,
        versions: int,
        users: int,
        info: dict[str, Any],
        kid: str,
        cube: MarketplaceCube,
    ) -> dict[str, str]:
        files = {layer.name: layer.path for layer in layers if layer.path is not None}

        def read_json(name: str) -> Any:
            try:
                return loads_strict(files[name].read_bytes(), name)
            except (KeyError, OSError, MalformedArchiveError):
                return None

        payload = [n for n in files if member_kind(n) in PAYLOAD_DIRS]
        prints = sorted(
            {fp for u in group_units(payload) if (fp := unit_fingerprint(u, read_json))}
        )
        listing = info["listing"]
        notes = {
            media.TITLE: listing.get("title") or cube.cube_id,
            media.CREATED: utcnow().isoformat(),
            media.PUBLISHER_KEY: kid,
            media.ITEMS: str(items),
            media.VERSIONS: str(versions),
            media.USERS: str(users),
            media.EMBEDDER: f"{cube.manifest.embedder_id} ({cube.manifest.embedding_dimension}-d)",
            media.MIP_VERSION: MIP_VERSION,
            media.KIND: info["kind"],
            media.SEQUENCE: str(info["sequence"]),
        }
        optional = {
            media.DESCRIPTION: listing.get("description"),
            media.LICENSES: listing.get("license"),
            media.TERMS: listing.get("terms"),
            media.VENDOR: listing.get("publisher"),
            media.FINGERPRINTS: ",".join(prints) or None,
            media.BASE: info["base"],
            media.TOMBSTONES: str(len(info["tombstones"])) if info["kind"] == "delta" else None,
        }
        notes.update({k: v for k, v in optional.items() if v})
        return notes

    # ------------------------------------------------------------------ fetch and verify
    def fetch(
        self,
        reference: str | Reference,
        *,
        since: str | None = None,
        trusted_keys: TrustedKeys | None = None,
        accept_license: str | Sequence[str] | None = None,
        revocations: RevocationList | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        limits: ImportLimits | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> list[Fetched]:
        """Download and verify every version after ``since`` up to ``reference``'s head
        (walking delta ``subject`` links back to ``since`` or to the last full cube), oldest
        first. Nothing is written outside private staging folders; on any error they are
        removed. Callers must :meth:`StagedArchive.cleanup` the result (``apply`` does).

        Raises:
            ManifestDigestError, LayerDigestError: altered manifest or layer.
            SignatureError: unsigned (when keys are given), untrusted key, or bad signature.
            RevokedError: a revoked key or digest.
            LicenseNotAcceptedError: the license is not in ``accept_license``.
            DeltaBaseError: a delta's base was never applied and is not in the registry.
            ArtifactTooLargeError: more than ``max_bytes`` to download.
        """
        ref = parse_reference(reference)
        trusted = trusted_list(trusted_keys)
        accepted = licenses_list(accept_license)
        lim = limits or ImportLimits()
        fetched: list[Fetched] = []
        try:
            with self.client(ref) as client:
                chain = self._chain(client, ref, since)
                total = sum(m.total_size for m in chain)
                if total > max_bytes:
                    raise ArtifactTooLargeError(
                        f"{ref} needs {total} bytes ({len(chain)} versions); this pull allows "
                        f"{max_bytes} (max_bytes). Nothing was downloaded or applied."
                    )
                for manifest in chain:
                    check_size(manifest, max_bytes)
                for manifest in chain:
                    fetched.append(
                        self._fetch_one(client, ref, manifest, trusted, accepted, revocations, lim)
                    )
                    if progress:
                        progress("versions", len(fetched), len(chain))
        except BaseException:
            for f in fetched:
                f.staged.cleanup()
            raise
        return fetched

    def _chain(
        self, client: RegistryClient, ref: Reference, since: str | None
    ) -> list[ArtifactManifest]:
        raw, digest = client.get_manifest(ref.repository, ref.reference)
        current = parse_artifact_manifest(raw, digest)
        chain: list[ArtifactManifest] = []
        while current.digest != since:
            chain.append(current)
            if current.subject is None:
                break
            if len(chain) >= MAX_CHAIN:
                raise DeltaBaseError(f"{ref}'s delta chain is longer than {MAX_CHAIN} versions.")
            try:
                raw, digest = client.get_manifest(ref.repository, current.subject)
            except ArtifactNotFoundError:
                raise DeltaBaseError(
                    f"delta {current.digest} applies on top of {current.subject}, which this "
                    f"cube never applied ({'it is at ' + since if since else 'it has applied none'}"
                    ") and which the registry does not have. Nothing was applied; pull a full "
                    "version of the channel (the publisher can publish full=True)."
                ) from None
            current = parse_artifact_manifest(raw, digest)
        chain.reverse()
        return chain

    def _fetch_one(
        self,
        client: RegistryClient,
        ref: Reference,
        manifest: ArtifactManifest,
        trusted: list[Ed25519PublicKey] | None,
        accepted: list[str],
        revocations: RevocationList | None,
        limits: ImportLimits,
    ) -> Fetched:
        if revocations is not None and revocations.revoked_digest(manifest.digest):
            raise RevokedError(
                f"version {manifest.digest} of {ref.channel} is on the revocation list "
                f"({revocations.reasons.get(manifest.digest, 'no reason given')}); nothing was "
                "applied."
            )
        staging = Path(tempfile.mkdtemp(prefix="mc-pull-"))
        try:
            files: dict[str, Path] = {}

            def download(layer: Layer) -> Path:
                path = staging / f"l{len(files):06d}"
                client.fetch_blob(ref.repository, layer.digest, layer.size, path)
                files[layer.name] = path
                return path

            mip = manifest.layer(MANIFEST_MEMBER)
            assert mip is not None  # parse_artifact_manifest checked it
            if mip.size > limits.max_manifest_bytes:
                raise ArtifactTooLargeError(f"{MANIFEST_MEMBER} is {mip.size} bytes.")
            mip_bytes = download(mip).read_bytes()
            sig_layer = manifest.layer(SIGNATURE_MEMBER)
            sig_bytes = None
            if sig_layer is not None:
                if sig_layer.size > limits.max_manifest_bytes:
                    raise ArtifactTooLargeError(f"{SIGNATURE_MEMBER} is {sig_layer.size} bytes.")
                sig_bytes = download(sig_layer).read_bytes()
            check = verify_signature(mip_bytes, sig_bytes, trusted)
            if revocations is not None and revocations.revoked_key(check.key_id):
                raise RevokedError(
                    f"{ref.channel} version {manifest.digest} is signed by key {check.key_id}, "
                    "which is revoked; nothing was applied."
                )
            archive_manifest = parse_manifest(loads_strict(mip_bytes, MANIFEST_MEMBER))
            layers = {
                layer.name: layer
                for layer in manifest.layers
                if layer.name not in (MANIFEST_MEMBER, SIGNATURE_MEMBER)
            }
            if set(layers) != set(archive_manifest.members):
                raise LayerDigestError(
                    "the artifact's layers are not the members its signed mip.json lists; "
                    "it was altered. Nothing was applied."
                )
            for name, layer in layers.items():
                entry = archive_manifest.members[name]
                if layer.digest != "sha256:" + entry.sha256 or layer.size != entry.size:
                    raise LayerDigestError(
                        f"layer {name!r} is not the member the signed mip.json lists "
                        f"({layer.digest[:19]}... vs sha256:{entry.sha256[:12]}...): the "
                        "manifest was altered. Nothing was applied."
                    )
            info = (archive_manifest.model_extra or {}).get("marketplace")
            if not isinstance(info, dict) or info.get("kind") not in ("full", "delta"):
                raise MalformedArchiveError(
                    f"{manifest.digest} carries no marketplace section in its signed mip.json."
                )
            if (info["kind"] == "delta") != manifest.is_delta or (
                manifest.is_delta and info.get("base") != manifest.subject
            ):
                raise DeltaBaseError(
                    f"{manifest.digest}: the signed mip.json names base {info.get('base')}, the "
                    f"OCI manifest names {manifest.subject}; refusing it."
                )
            raw_listing = info.get("listing")
            listing: dict[str, Any] = raw_listing if isinstance(raw_listing, dict) else {}
            license_id = listing.get("license")
            if license_id and license_id not in accepted:
                terms = listing.get("terms")
                raise LicenseNotAcceptedError(
                    f"{ref.channel} is published under {license_id!r}"
                    f"{' (terms: ' + str(terms) + ')' if terms else ''}"
                    f", which was not accepted: pass accept_license={license_id!r} (or "
                    f"--accept-license {license_id}) if you accept it. Nothing was applied."
                )
            for layer in layers.values():
                download(layer)
            tar = assemble_archive(files, staging / "assembled.mip.tar")
            staged = read_archive(tar, trusted_keys=trusted, limits=limits)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(staging, ignore_errors=True)
        return Fetched(manifest=manifest, staged=staged, info=info)

    # ------------------------------------------------------------------ apply
    def apply(
        self,
        fetched: Sequence[Fetched],
        *,
        channel: str,
        on_conflict: str = "skip",
        as_user: str | None = None,
        model_fingerprint: Any = None,
        report: SyncReport | None = None,
    ) -> SyncReport:
        """Apply verified versions to the cube in order, advancing the channel state after
        each (re-applying one is harmless: unchanged memories are skipped, tombstones of
        memories already deleted do nothing). Cleans up the staging folders."""
        cube = self._cube()
        check_on_conflict(on_conflict)
        rep = report or SyncReport(reference=channel, target=str(cube.path))
        state = ChannelState.load(cube.path, channel)
        try:
            for version in fetched:
                self._apply_one(cube, version, state, on_conflict, as_user, model_fingerprint, rep)
                state.head = version.digest
                state.sequence = int(version.info.get("sequence", state.sequence + 1))
                state.applied.append(version.digest)
                state.save(cube.path)
                rep.applied.append(version.digest)
                rep.head = version.digest
        finally:
            for version in fetched:
                version.staged.cleanup()
        if rep.head is None:
            rep.head = state.head
        return rep

    def _apply_one(
        self,
        cube: MarketplaceCube,
        version: Fetched,
        state: ChannelState,
        on_conflict: str,
        as_user: str | None,
        model_fingerprint: Any,
        rep: SyncReport,
    ) -> None:
        info = version.info
        check = version.signature
        pub_name = (info.get("publisher") or {}).get("name")
        rep.publishers[str(check.key_id)] = pub_name
        rep.signatures.append(check.status)
        listing = info.get("listing") or {}
        rep.license = listing.get("license", rep.license)
        mark = {
            "key_id": check.key_id,
            "name": pub_name,
            "channel": state.reference,
            "digest": version.digest,
        }
        records: list[list[MemoryItem]] = []
        for versions in version.staged.records:
            out = []
            for v in versions:
                detail = {**v.provenance.detail, PUBLISHER_DETAIL: mark}
                prov = v.provenance.model_copy(update={"detail": detail})
                update: dict[str, Any] = {"metadata": free_metadata(v), "provenance": prov}
                if as_user is not None:
                    update["user_id"] = as_user
                out.append(v.model_copy(update=update))
            records.append(out)
        is_delta = info["kind"] == "delta"
        bases: dict[str, Any] = (info.get("bases") or {}) if is_delta else {}
        incoming = {r[-1].id: item_digest(r[-1]) for r in records}
        tombstones = list(info.get("tombstones") or []) if is_delta else []
        if not is_delta:  # a full version replaces the channel's set: what it lacks was deleted
            tombstones = sorted(set(state.items) - set(incoming))
        ids = list(incoming) + [t for t in tombstones if t not in incoming]
        local: dict[str, MemoryItem] = {}
        for start in range(0, len(ids), _GET_BATCH):
            for it in cube.get_many(ids[start : start + _GET_BATCH]):
                local[it.id] = it
        clean: list[list[MemoryItem]] = []
        conflicts: list[list[MemoryItem]] = []
        for versions in records:
            rid = versions[-1].id
            have = local.get(rid)
            if have is None:
                clean.append(versions)
                continue
            now = item_digest(have)
            if now == incoming[rid]:
                rep.unchanged += 1
                continue
            expected = bases.get(rid, state.items.get(rid)) if is_delta else state.items.get(rid)
            if expected is not None and now == expected and have.user_id == versions[-1].user_id:
                clean.append(versions)
            else:
                conflicts.append(versions)
                why = (
                    "changed in this cube since the channel last set it"
                    if state.items.get(rid) != now
                    else "edited by another publisher from the same base"
                )
                if have.user_id != versions[-1].user_id:
                    why = f"this cube's memory with this id belongs to {have.user_id!r}"
                rep.conflicts.append(Conflict(rid, check.key_id, on_conflict, why))
        imp = ImportReport(
            source=f"{state.reference}@{version.digest}", format="mip", target=str(cube.path)
        )
        new_ids = {r[-1].id for r in clean if r[-1].id not in local}
        apply_records(cube, clean, on_conflict="new_version", report=imp)
        if conflicts:
            apply_records(cube, conflicts, on_conflict=on_conflict, report=imp)
        rep.added += len(new_ids)
        rep.updated += imp.new_versions + imp.overwritten
        rep.skipped.extend(
            s for s in imp.skipped if s[1] != "identical to the target's current version"
        )
        for rid in tombstones:
            have = local.get(rid)
            if have is None or have.state.value == "archived":
                state.items.pop(rid, None)
                continue
            expected = state.items.get(rid)
            if item_digest(have) != expected and on_conflict == "skip":
                rep.conflicts.append(
                    Conflict(rid, check.key_id, "skip", "deleted by the publisher, changed here")
                )
            else:
                cube.delete(rid)
                rep.deleted += 1
            state.items.pop(rid, None)
        state.items.update(incoming)
        attach, dropped, _plans = plan_payloads(
            version.staged, model_fingerprint, cube.path, "overwrite"
        )
        rep.attached.extend(attach_payloads(version.staged, attach, cube.path))
        rep.dropped.extend(f"{d.unit}: {d.reason}" for d in dropped)
        for unit in attach:
            for f in unit.files:
                state.files[f] = _sha256_file(cube.path / f)

    # ------------------------------------------------------------------ revocations
    def publish_revocations(
        self, reference: str | Reference, revocations: RevocationList, signing_key: PrivateKeyLike
    ) -> str:
        """Push a signed revocation list to ``reference``; returns its digest."""
        ref = parse_reference(reference)
        data, sig = revocations.sign(signing_key)
        layers = [
            Layer("revocations.json", "sha256:" + hashlib.sha256(data).hexdigest(), len(data),
                  media.MEDIA_REVOCATIONS),
            Layer("revocations.sig", "sha256:" + hashlib.sha256(sig).hexdigest(), len(sig),
                  media.MEDIA_SIGNATURE),
        ]  # fmt: skip
        manifest = build_manifest(
            layers,
            artifact_type=media.REVOCATIONS_ARTIFACT,
            annotations={media.CREATED: utcnow().isoformat()},
        )
        with self.client(ref) as client:
            client.push_blob(ref.repository, media.EMPTY_DIGEST, media.EMPTY_BLOB)
            client.push_blob(ref.repository, layers[0].digest, data)
            client.push_blob(ref.repository, layers[1].digest, sig)
            return client.put_manifest(ref.repository, ref.tag or "latest", manifest)

    def fetch_revocations(
        self, reference: str | Reference, authorities: TrustedKeys
    ) -> RevocationList:
        """Download a revocation list and check it is signed by one of ``authorities``.

        Raises:
            SignatureError: not signed by an authority; RegistryError and subclasses.
        """
        ref = parse_reference(reference)
        keys = trusted_list(authorities) or []
        with self.client(ref) as client, tempfile.TemporaryDirectory(prefix="mc-rev-") as tmp:
            raw, digest = client.get_manifest(ref.repository, ref.reference)
            manifest = parse_artifact_manifest(raw, digest, allowed=(media.REVOCATIONS_ARTIFACT,))
            parts: dict[str, bytes] = {}
            for layer in manifest.layers:
                if layer.size > 32 << 20:
                    raise ArtifactTooLargeError("the revocation list is over 32 MiB.")
                path = Path(tmp) / f"l{len(parts)}"
                client.fetch_blob(ref.repository, layer.digest, layer.size, path)
                parts[layer.name] = path.read_bytes()
        if "revocations.json" not in parts or "revocations.sig" not in parts:
            raise MalformedArchiveError("the revocation list artifact lacks its list or signature.")
        return RevocationList.verified(parts["revocations.json"], parts["revocations.sig"], keys)

    def revoked_items(
        self, revocations: RevocationList, *, user_id: str | None = None
    ) -> list[str]:
        """Ids of the cube's memories that came from a revoked key or version."""
        cube = self._cube()
        out = []
        for it in cube.items(user_id=user_id, include_archived=False):
            mark = publisher_of(it)
            if mark and (
                revocations.revoked_key(mark.get("key_id"))
                or revocations.revoked_digest(str(mark.get("digest")))
            ):
                out.append(it.id)
        return out

    # ------------------------------------------------------------------ subscriptions
    def subscribe(
        self,
        reference: str | Reference,
        *,
        trusted_keys: TrustedKeys,
        accept_license: str | Sequence[str] | None = None,
        on_conflict: str = "skip",
        as_user: str | None = None,
        share_with: Sequence[str] = (),
        revocations: str | Reference | None = None,
        revocation_keys: TrustedKeys | None = None,
    ) -> Subscription:
        """Record that this cube follows ``reference``'s channel (replacing an earlier record
        of the same channel); :meth:`sync` then applies what is published to it."""
        cube = self._cube()
        ref = parse_reference(reference)
        if ref.digest is not None:
            raise InvalidInputError("subscribe to a channel tag, not a digest.")
        keys = trusted_list(trusted_keys)
        if keys is None:
            raise InvalidInputError("a subscription needs trusted_keys (the publishers' keys).")
        check_on_conflict(on_conflict)
        readers = self._check_mount(as_user, share_with)
        rev = None
        rev_keys: list[str] = []
        if revocations is not None:
            rev = str(parse_reference(revocations))
            rev_keys = [public_key_text(k) for k in trusted_list(revocation_keys) or []]
            if not rev_keys:
                raise InvalidInputError("a revocation list needs revocation_keys (its signers).")
        sub = Subscription(
            reference=ref.channel,
            trusted_keys=[public_key_text(k) for k in keys],
            accept_license=licenses_list(accept_license),
            on_conflict=on_conflict,
            as_user=as_user,
            share_with=readers,
            revocations=rev,
            revocation_keys=rev_keys,
        )
        subs = [s for s in load_subscriptions(cube.path) if s.reference != sub.reference]
        save_subscriptions(cube.path, [*subs, sub])
        return sub

    def subscriptions(self) -> list[Subscription]:
        return load_subscriptions(self._cube().path)

    @staticmethod
    def _check_mount(as_user: str | None, share_with: Sequence[str]) -> list[str]:
        check_scope_id(as_user, "as_user")
        if isinstance(share_with, str):
            share_with = [share_with]
        readers = list(dict.fromkeys(share_with))
        for reader in readers:
            check_scope_id(reader, "share_with", required=True)
        if readers and as_user is None:
            raise InvalidInputError(
                "share_with needs as_user: the mounted memories are shared from that owner."
            )
        if as_user is not None and as_user in readers:
            raise InvalidInputError("as_user cannot also be a reader in share_with.")
        return readers

    def mount(self, as_user: str, share_with: Sequence[str]) -> None:
        """Share every memory of ``as_user`` read-only with each reader (present and future)."""
        cube = self._cube()
        for reader in self._check_mount(as_user, share_with):
            cube.share(as_user, reader, ids=None, access="read")

    def pull_into(
        self,
        reference: str | Reference,
        *,
        trusted_keys: TrustedKeys | None = None,
        accept_license: str | Sequence[str] | None = None,
        on_conflict: str = "skip",
        as_user: str | None = None,
        share_with: Sequence[str] = (),
        model_fingerprint: Any = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        revocations: RevocationList | None = None,
    ) -> SyncReport:
        """Fetch, verify and apply everything new on ``reference`` into this cube."""
        cube = self._cube()
        ref = parse_reference(reference)
        check_on_conflict(on_conflict)
        readers = self._check_mount(as_user, share_with)
        started = time.perf_counter()
        state = ChannelState.load(cube.path, ref.channel)
        fetched = self.fetch(
            ref, since=state.head, trusted_keys=trusted_keys, accept_license=accept_license,
            revocations=revocations, max_bytes=max_bytes,
        )  # fmt: skip
        rep = SyncReport(reference=ref.channel, target=str(cube.path))
        rep.downloaded_bytes = sum(f.manifest.total_size for f in fetched)
        self.apply(fetched, channel=ref.channel, on_conflict=on_conflict, as_user=as_user,
                   model_fingerprint=model_fingerprint, report=rep)  # fmt: skip
        if readers and as_user is not None:
            self.mount(as_user, readers)
        if revocations is not None:
            rep.revoked_items = self.revoked_items(revocations, user_id=as_user)
        rep.seconds = time.perf_counter() - started
        return rep

    def sync(
        self, reference: str | Reference | None = None, *, model_fingerprint: Any = None
    ) -> list[SyncReport]:
        """Apply what was published since the last applied version, for every subscription
        (or only ``reference``'s). Revocation lists are fetched first and honored."""
        cube = self._cube()
        subs = load_subscriptions(cube.path)
        if reference is not None:
            channel = parse_reference(reference).channel
            subs = [s for s in subs if s.reference == channel]
            if not subs:
                raise InvalidInputError(f"this cube is not subscribed to {channel}.")
        reports = []
        for sub in subs:
            revocations = None
            if sub.revocations is not None:
                revocations = self.fetch_revocations(sub.revocations, sub.revocation_keys)
            try:
                report = self.pull_into(
                    sub.reference,
                    trusted_keys=sub.trusted_keys,
                    accept_license=sub.accept_license,
                    on_conflict=sub.on_conflict,
                    as_user=sub.as_user,
                    share_with=sub.share_with,
                    model_fingerprint=model_fingerprint,
                    revocations=revocations,
                )
            except RevokedError as exc:
                assert revocations is not None
                exc.revoked_items = self.revoked_items(revocations, user_id=sub.as_user)
                if exc.revoked_items:
                    exc.args = (
                        f"{exc.args[0]} {len(exc.revoked_items)} memories already in this cube "
                        "came from revoked keys or versions (see .revoked_items).",
                    )
                raise
            reports.append(report)
        return reports

    # ------------------------------------------------------------------ find
    def search(self, where: str | Reference, *, limit: int = 500) -> list[Listing]:
        """Published cubes and deltas under ``host/namespace`` (or one repository): every tag of
        every repository the registry's catalog lists there, with its annotations."""
        ref = parse_reference(where, require_name=False)
        out: list[Listing] = []
        with self.client(ref) as client:
            prefix = ref.repository
            if ref.tag is not None:
                repos = [prefix]
            else:
                repos = [r for r in client.catalog() if not prefix or r == prefix
                         or r.startswith(prefix + "/")]  # fmt: skip
            for repo in sorted(repos)[:limit]:
                for tag in sorted(client.tags(repo)):
                    if ref.tag is not None and tag != ref.tag:
                        continue
                    raw, digest = client.get_manifest(repo, tag)
                    try:
                        m = parse_artifact_manifest(raw, digest)
                    except MemCubeError:
                        continue  # another kind of artifact, or an image
                    out.append(
                        Listing(
                            reference=f"oci://{ref.host}/{repo}:{tag}",
                            repository=repo,
                            tag=tag,
                            digest=digest,
                            kind=m.annotations.get(media.KIND, "delta" if m.is_delta else "full"),
                            annotations=m.annotations,
                        )
                    )
        return out


def pull(
    reference: str | Reference,
    into: MarketplaceCube | str | os.PathLike[str],
    *,
    open_target: Callable[[str | os.PathLike[str]], MarketplaceCube] | None = None,
    trusted_keys: TrustedKeys | None = None,
    accept_license: str | Sequence[str] | None = None,
    on_conflict: str = "skip",
    as_user: str | None = None,
    share_with: Sequence[str] = (),
    model_fingerprint: Any = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    credentials: Credentials | tuple[str, str] | None = None,
    plain_http: bool | None = None,
    retries: int = 3,
    revocations: RevocationList | None = None,
) -> tuple[MarketplaceCube, SyncReport]:
    """Pull ``reference`` into an open cube or a cube folder. Everything is downloaded and
    verified before the target is opened (a folder that did not exist is not created when
    anything fails) or written. ``revocations``: a verified :class:`RevocationList` to honor
    (see :meth:`Marketplace.fetch_revocations`)."""
    ref = parse_reference(reference)
    check_on_conflict(on_conflict)
    Marketplace._check_mount(as_user, share_with)
    market = Marketplace(None, credentials=credentials, plain_http=plain_http, retries=retries)
    if isinstance(into, (str, os.PathLike)):
        if open_target is None:
            raise InvalidInputError("pass open_target=... to pull into a folder.")
        folder = Path(into).expanduser()
        since = ChannelState.load(folder, ref.channel).head if folder.exists() else None
        started = time.perf_counter()
        fetched = market.fetch(
            ref, since=since, trusted_keys=trusted_keys, accept_license=accept_license,
            max_bytes=max_bytes, revocations=revocations,
        )  # fmt: skip
        try:
            cube = open_target(folder)
        except BaseException:
            for f in fetched:
                f.staged.cleanup()
            raise
        try:
            market.cube = cube
            rep = SyncReport(reference=ref.channel, target=str(cube.path))
            rep.downloaded_bytes = sum(f.manifest.total_size for f in fetched)
            market.apply(fetched, channel=ref.channel, on_conflict=on_conflict, as_user=as_user,
                         model_fingerprint=model_fingerprint, report=rep)  # fmt: skip
            if share_with and as_user is not None:
                market.mount(as_user, share_with)
            rep.seconds = time.perf_counter() - started
        except BaseException:
            cube.close()
            raise
        return cube, rep
    market.cube = into
    rep = market.pull_into(
        ref, trusted_keys=trusted_keys, accept_license=accept_license, on_conflict=on_conflict,
        as_user=as_user, share_with=share_with, model_fingerprint=model_fingerprint,
        max_bytes=max_bytes, revocations=revocations,
    )  # fmt: skip
    return into, rep


__all__ = [
    "DEFAULT_MAX_BYTES",
    "Conflict",
    "Fetched",
    "Listing",
    "Marketplace",
    "PublishReport",
    "SyncReport",
    "publisher_of",
    "pull",
    "trusted_list",
]
