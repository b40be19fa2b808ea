"""Hostile and faulty registries: each case is refused with a typed error and nothing applied
(a folder that did not exist is not created; an existing cube and its channel state are left as
they were)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from memcube import MemCube
from memcube.errors import (
    ArtifactTooLargeError,
    ChecksumMismatchError,
    DeltaBaseError,
    LayerDigestError,
    LicenseNotAcceptedError,
    ManifestDigestError,
    NotACubeArtifactError,
    RegistryAuthError,
    RegistryUnavailableError,
    RevokedError,
    SignatureError,
)
from memcube.interchange import generate_signing_key, key_id, public_key_of
from memcube.marketplace import ChannelState, Marketplace, RevocationList, media, parse_reference
from memcube.marketplace.artifact import Layer, build_manifest, parse_artifact_manifest
from memcube.marketplace.client import RegistryClient, sha256_digest
from memcube.marketplace.credentials import Credentials
from tests.helpers import HashEmbedder, snapshot
from tests.marketplace.proxy import FlakyProxy


def big_cache(cube: MemCube, mb: int = 3, fill: float = 0.5) -> None:
    folder = cube.path / "activation" / "kb"
    folder.mkdir(parents=True, exist_ok=True)
    n = mb * (1 << 20) // 4 // 512
    save_file({"layer0.keys": np.full((n, 512), fill, np.float32)}, str(folder / "p.safetensors"))
    (folder / "p.json").write_text(json.dumps({"model_fingerprint": "e" * 64, "user_id": "kb"}))


def published(cube_at, ref: str, key, **kw) -> tuple[MemCube, object]:
    pub = cube_at("pub")
    pub.add("The VPN endpoint is vpn.acme.example", user_id="kb")
    pub.add("Deploys happen on Tuesdays", user_id="kb")
    return pub, pub.publish(ref, signing_key=key, user_id="kb", **kw)


def pull_into_folder(ref: str, target: Path, **kw):
    kw.setdefault("embedder", HashEmbedder())
    return MemCube.pull(ref, into=target, **kw)


def client_for(ref: str, creds) -> RegistryClient:
    return RegistryClient(parse_reference(ref).host, credentials=Credentials(*creds))


def manifest_of(ref: str, creds):
    r = parse_reference(ref)
    with client_for(ref, creds) as client:
        raw, digest = client.get_manifest(r.repository, r.reference)
    return parse_artifact_manifest(raw, digest)


def test_a_tampered_layer_is_refused(cube_at, own_registry, keys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEMCUBE_REGISTRY_USERNAME", own_registry.username)
    monkeypatch.setenv("MEMCUBE_REGISTRY_PASSWORD", own_registry.password)
    ref = own_registry.url("kb/tamper:main")
    published(cube_at, ref, keys["a"])
    items = manifest_of(ref, own_registry.credentials).layer("items.jsonl")
    blob = own_registry.blob_path(items.digest)
    blob.write_bytes(blob.read_bytes().replace(b"Tuesdays", b"Mondays!"))
    with pytest.raises(LayerDigestError):
        pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]])
    assert not (tmp_path / "sub").exists()
    assert issubclass(LayerDigestError, ChecksumMismatchError)


def test_a_manifest_whose_digest_does_not_match_is_refused(
    cube_at, own_registry, keys, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("MEMCUBE_REGISTRY_USERNAME", own_registry.username)
    monkeypatch.setenv("MEMCUBE_REGISTRY_PASSWORD", own_registry.password)
    ref = own_registry.url("kb/mdigest:main")
    _, report = published(cube_at, ref, keys["a"], title="Team KB")
    blob = own_registry.blob_path(report.digest)  # type: ignore[attr-defined]
    blob.write_bytes(blob.read_bytes().replace(b"Team KB", b"Evil KB"))
    with pytest.raises(ManifestDigestError):
        pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]])
    with pytest.raises(ManifestDigestError):  # pinned by digest, too
        pull_into_folder(report.reference, tmp_path / "sub", trusted_keys=[keys["a.pub"]])  # type: ignore[attr-defined]
    assert not (tmp_path / "sub").exists()


def test_a_consistent_manifest_with_a_swapped_layer_is_refused(
    cube_at, repo, creds, keys, tmp_path
) -> None:
    """An attacker with push rights re-points the tag at a manifest whose items layer is theirs:
    the manifest's own digest is fine, but the layer is not what the signed mip.json lists."""
    ref = repo("kb:main")
    published(cube_at, ref, keys["a"])
    m = manifest_of(ref, creds)
    evil = b'{"id":"x","versions":[]}\n'
    layers = [
        Layer(x.name, sha256_digest(evil), len(evil), x.media_type)
        if x.name == "items.jsonl"
        else x
        for x in m.layers
    ]
    raw = build_manifest(layers, artifact_type=m.artifact_type, annotations=m.annotations)
    r = parse_reference(ref)
    with client_for(ref, creds) as client:
        client.push_blob(r.repository, sha256_digest(evil), evil)
        client.put_manifest(r.repository, "main", raw)
    with pytest.raises(LayerDigestError, match="signed mip.json"):
        pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]])
    assert not (tmp_path / "sub").exists()


def test_untrusted_and_revoked_keys_are_refused(cube_at, repo, creds, keys, tmp_path) -> None:
    ref = repo("kb:main")
    pub, _ = published(cube_at, ref, keys["rogue"])
    with pytest.raises(SignatureError, match="not among the trusted keys"):
        pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]])
    assert not (tmp_path / "sub").exists()

    # a publisher trusted until its key is revoked by the revocation authority
    ref2 = repo("kb2:main")
    authority = generate_signing_key()
    pub2 = cube_at("pub2")
    pub2.add("fact from a", user_id="kb")
    pub2.publish(ref2, signing_key=keys["a"], user_id="kb")
    sub = cube_at("sub2")
    rev_ref = repo("revocations:latest")
    market = Marketplace()
    market.publish_revocations(rev_ref, RevocationList(), authority)
    sub.subscribe(ref2, trusted_keys=[keys["a.pub"]], revocations=rev_ref,
                  revocation_keys=[public_key_of(authority)])  # fmt: skip
    assert sub.sync()[0].added == 1 and sub.sync()[0].revoked_items == []
    kid = key_id(keys["a.pub"])  # type: ignore[arg-type]
    market.publish_revocations(
        rev_ref, RevocationList(keys=frozenset({kid}), reasons={kid: "key leaked"}), authority
    )
    report = sub.sync()[0]  # nothing new: the items that came from the key are reported
    assert report.revoked_items == [i.id for i in sub.items(user_id=None)]
    pub2.add("fact after the leak", user_id="kb")
    pub2.publish(ref2, signing_key=keys["a"], user_id="kb")
    before, state = snapshot(sub), ChannelState.load(sub.path, parse_reference(ref2).channel)
    with pytest.raises(RevokedError) as info:
        sub.sync()
    assert len(info.value.revoked_items) == 1
    assert snapshot(sub) == before
    assert ChannelState.load(sub.path, parse_reference(ref2).channel) == state
    # a revocation list signed by someone else is refused
    market.publish_revocations(rev_ref, RevocationList(), keys["rogue"])
    with pytest.raises(SignatureError):
        sub.sync()
    # a revoked version (digest), not key
    ref3 = repo("kb3:main")
    pub3 = cube_at("pub3")
    pub3.add("x", user_id="kb")
    bad = pub3.publish(ref3, signing_key=keys["b"], user_id="kb")
    market.publish_revocations(rev_ref, RevocationList(digests=frozenset({bad.digest})), authority)
    revs = market.fetch_revocations(rev_ref, [public_key_of(authority)])
    with pytest.raises(RevokedError):
        MemCube.pull(ref3, into=sub, trusted_keys=[keys["b.pub"]], revocations=revs)


def test_an_unaccepted_license_is_refused(cube_at, repo, creds, keys, tmp_path) -> None:
    ref = repo("kb:main")
    published(cube_at, ref, keys["a"], license="CC-BY-NC-4.0", terms="https://acme.example/price")
    with pytest.raises(LicenseNotAcceptedError, match="CC-BY-NC-4.0"):
        pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]])
    with pytest.raises(LicenseNotAcceptedError):
        pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]],
                         accept_license=["MIT", "CC-BY-4.0"])  # fmt: skip
    assert not (tmp_path / "sub").exists()
    cube, rep = pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]],
                                 accept_license="CC-BY-NC-4.0")  # fmt: skip
    assert rep.added == 2
    cube.close()


def test_a_delta_whose_base_was_never_applied_is_refused(
    cube_at, repo, creds, keys, tmp_path
) -> None:
    ref = repo("kb:main")
    pub, first = published(cube_at, ref, keys["a"])
    pub.add("Lunch is at noon", user_id="kb")
    delta = pub.publish(ref, signing_key=keys["a"], user_id="kb")
    assert delta.base == first.digest  # type: ignore[attr-defined]
    # the delta names its base as its OCI subject, and the signed mip.json names the same base
    m = manifest_of(ref, creds)
    assert m.is_delta and m.subject == first.digest  # type: ignore[attr-defined]
    r = parse_reference(ref)
    with client_for(ref, creds) as client:
        client.delete_manifest(r.repository, first.digest)  # type: ignore[attr-defined]
    with pytest.raises(DeltaBaseError, match="never applied"):
        pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]])
    assert not (tmp_path / "sub").exists()


def test_the_registry_going_down_mid_pull(cube_at, repo, registry, creds, keys, tmp_path) -> None:
    pub = cube_at("pub")
    pub.add("fact", user_id="kb")
    big_cache(pub)
    direct = repo("big:main")
    pub.publish(direct, signing_key=keys["a"], user_id="kb")

    # a dropped connection is retried: the pull succeeds
    flaky = FlakyProxy(registry.host)
    try:
        flaky.drop_once_after = 1 << 20
        via = direct.replace(registry.host, flaky.host)
        cube, rep = pull_into_folder(via, tmp_path / "ok", trusted_keys=[keys["a.pub"]],
                                     model_fingerprint="e" * 64)  # fmt: skip
        assert flaky.drops == 1 and rep.attached == ["activation/kb/p"]
        cube.close()
    finally:
        flaky.close()

    # the registry goes away in the middle of the cache layer: retried, then a clean error
    down = FlakyProxy(registry.host)
    try:
        down.down_after = 1 << 20
        via = direct.replace(registry.host, down.host)
        with pytest.raises(RegistryUnavailableError, match="attempts"):
            pull_into_folder(via, tmp_path / "sub", trusted_keys=[keys["a.pub"]])
        assert not (tmp_path / "sub").exists()
    finally:
        down.close()

    # an existing subscriber whose sync is cut off keeps its memories and its channel state
    sub_proxy = FlakyProxy(registry.host)
    try:
        via = direct.replace(registry.host, sub_proxy.host)
        sub = cube_at("sub")
        sub.subscribe(via, trusted_keys=[keys["a.pub"]])
        sub.sync()
        pub.add("second fact", user_id="kb")
        big_cache(pub, fill=0.25)
        pub.publish(direct, signing_key=keys["a"], user_id="kb")
        before = snapshot(sub)
        state = ChannelState.load(sub.path, parse_reference(via).channel)
        sub_proxy.down_after = sub_proxy.relayed + (1 << 20)
        with pytest.raises(RegistryUnavailableError):
            sub.sync()
        assert snapshot(sub) == before
        assert ChannelState.load(sub.path, parse_reference(via).channel) == state
    finally:
        sub_proxy.close()


def test_wrong_or_missing_credentials(cube_at, repo, registry, keys, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MEMCUBE_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("MEMCUBE_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))
    ref = repo("kb:main")
    pub = cube_at("pub")
    pub.add("fact", user_id="kb")
    with pytest.raises(RegistryAuthError, match="docker login"):
        pub.publish(ref, signing_key=keys["a"], user_id="kb")
    with pytest.raises(RegistryAuthError, match="refused the credentials"):
        pub.publish(ref, signing_key=keys["a"], user_id="kb", credentials=("publisher", "wrong"))
    pub.publish(ref, signing_key=keys["a"], user_id="kb", credentials=registry.credentials)
    with pytest.raises(RegistryAuthError):
        pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]],
                         credentials=("publisher", "wrong"))  # fmt: skip
    assert not (tmp_path / "sub").exists()


def test_an_oversized_artifact_is_refused(cube_at, repo, creds, keys, tmp_path) -> None:
    ref = repo("kb:main")
    pub = cube_at("pub")
    pub.add("fact", user_id="kb")
    big_cache(pub, mb=2)
    pub.publish(ref, signing_key=keys["a"], user_id="kb")
    with pytest.raises(ArtifactTooLargeError, match="max_bytes"):
        pull_into_folder(ref, tmp_path / "sub", trusted_keys=[keys["a.pub"]], max_bytes=1 << 20)
    assert not (tmp_path / "sub").exists()


def test_another_kind_of_artifact_is_refused(repo, creds, tmp_path) -> None:
    ref = repo("image:latest")
    data = b"not a cube"
    layer = Layer("mip.json", sha256_digest(data), len(data), media.MEDIA_MANIFEST)
    raw = build_manifest([layer], artifact_type="application/vnd.example.model.v1", annotations={})
    r = parse_reference(ref)
    with client_for(ref, creds) as client:
        client.push_blob(r.repository, media.EMPTY_DIGEST, media.EMPTY_BLOB)
        client.push_blob(r.repository, layer.digest, data)
        client.put_manifest(r.repository, "latest", raw)
    with pytest.raises(NotACubeArtifactError):
        pull_into_folder(ref, tmp_path / "sub")
    assert not (tmp_path / "sub").exists()
