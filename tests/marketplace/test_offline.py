"""References, credentials, trust stores and revocation lists: no registry needed."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from memcube.errors import (
    InvalidInputError,
    InvalidReferenceError,
    NotACubeArtifactError,
    SignatureError,
    UnexpectedMemberError,
)
from memcube.interchange import generate_signing_key, key_id, public_key_of
from memcube.marketplace import RevocationList, TrustStore, find_credentials, media, parse_reference
from memcube.marketplace.artifact import Layer, build_manifest, parse_artifact_manifest
from memcube.marketplace.client import sha256_digest


def test_references_parse_and_refuse() -> None:
    ref = parse_reference("oci://ghcr.io/acme/team-kb:main")
    assert (ref.host, ref.repository, ref.tag, ref.plain_http) == (
        "ghcr.io", "acme/team-kb", "main", False,
    )  # fmt: skip
    assert parse_reference("localhost:5000/a/b").plain_http
    pinned = parse_reference("oci://h.io/a/b@sha256:" + "ab" * 32)
    assert pinned.digest and pinned.reference == pinned.digest
    assert parse_reference("oci://h.io/ns", require_name=False).repository == "ns"
    for bad in ("", "https://h.io/a/b", "oci://h.io", "oci://h.io/A/B:main", "oci://h.io/a/b:bad tag",
                "oci://h.io/a/b@sha256:xyz", "oci://h_io!/a/b"):  # fmt: skip
        with pytest.raises(InvalidReferenceError):
            parse_reference(bad)
    assert issubclass(InvalidReferenceError, InvalidInputError)


def test_insecure_hosts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not parse_reference("oci://reg.lan:5000/a/b").plain_http
    monkeypatch.setenv("MEMCUBE_REGISTRY_INSECURE", "reg.lan:5000, other")
    assert parse_reference("oci://reg.lan:5000/a/b").plain_http


def test_credentials_from_env_docker_config_and_helpers(tmp_path: Path) -> None:
    env = {"MEMCUBE_REGISTRY_USERNAME": "u", "MEMCUBE_REGISTRY_PASSWORD": "p"}
    assert find_credentials("any", environ=env).password == "p"  # type: ignore[union-attr]
    cfg = tmp_path / "docker"
    cfg.mkdir()
    auth = base64.b64encode(b"ana:pw1").decode()
    helper = tmp_path / "bin" / "docker-credential-memtest"
    helper.parent.mkdir()
    helper.write_text(
        '#!/bin/sh\nread host\necho "{\\"Username\\": \\"helper-$host\\", \\"Secret\\": \\"hs\\"}"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    (cfg / "config.json").write_text(json.dumps({
        "auths": {"https://reg.one": {"auth": auth}, "reg.two": {"username": "bo", "password": "x"}},
        "credHelpers": {"reg.three": "memtest"},
    }))  # fmt: skip
    env = {"DOCKER_CONFIG": str(cfg), "PATH": f"{helper.parent}:{os.environ['PATH']}"}
    old_path = os.environ["PATH"]
    os.environ["PATH"] = env["PATH"]
    try:
        one = find_credentials("reg.one", environ=env)
        two = find_credentials("reg.two", environ=env)
        three = find_credentials("reg.three", environ=env)
    finally:
        os.environ["PATH"] = old_path
    assert (one.username, one.password) == ("ana", "pw1")  # type: ignore[union-attr]
    assert (two.username, two.password) == ("bo", "x")  # type: ignore[union-attr]
    assert (three.username, three.password) == ("helper-reg.three", "hs")  # type: ignore[union-attr]
    assert find_credentials("reg.none", environ=env) is None
    assert "pw1" not in repr(one)
    home = {"HOME": str(tmp_path / "nohome")}
    assert find_credentials("reg.one", environ=home) is None


def test_trust_store_round_trips_and_lists(tmp_path: Path) -> None:
    key, auth = generate_signing_key(), generate_signing_key()
    store = TrustStore(tmp_path / "trust.json")
    kid = store.add(public_key_of(key), name="Acme")
    store.add(public_key_of(auth), name="CA", authority=True)
    again = TrustStore(tmp_path / "trust.json")
    assert [p.key_id for p in again.publishers()] == [kid] == [key_id(k) for k in again]
    assert len(again.authorities()) == 1 and again.name_of(kid) == "Acme"
    assert again.remove(kid) and not again.remove(kid)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InvalidInputError):
        TrustStore(tmp_path / "bad.json")


def test_revocation_lists_are_signed_by_an_authority() -> None:
    auth, rogue = generate_signing_key(), generate_signing_key()
    rl = RevocationList(keys=frozenset({"abc"}), digests=frozenset({"sha256:" + "0" * 64}))
    data, sig = rl.sign(auth)
    got = RevocationList.verified(data, sig, [public_key_of(auth)])
    assert got.revoked_key("abc") and got.revoked_digest("sha256:" + "0" * 64)
    with pytest.raises(SignatureError):
        RevocationList.verified(data, sig, [public_key_of(rogue)])
    with pytest.raises(SignatureError):
        RevocationList.verified(data.replace(b"abc", b"abd"), sig, [public_key_of(auth)])


def test_artifact_manifests_are_checked() -> None:
    layer = Layer("mip.json", sha256_digest(b"{}"), 2, media.MEDIA_MANIFEST)
    raw = build_manifest([layer], artifact_type=media.CUBE_ARTIFACT, annotations={})
    assert parse_artifact_manifest(raw, sha256_digest(raw)).layer("mip.json") == layer
    other = build_manifest([layer], artifact_type="application/vnd.other", annotations={})
    with pytest.raises(NotACubeArtifactError):
        parse_artifact_manifest(other, sha256_digest(other))
    evil = Layer("../etc/passwd", sha256_digest(b"x"), 1, media.MEDIA_ITEMS)
    raw = build_manifest([layer, evil], artifact_type=media.CUBE_ARTIFACT, annotations={})
    with pytest.raises(Exception) as info:
        parse_artifact_manifest(raw, sha256_digest(raw))
    assert "climbs out" in str(info.value)
    twice = build_manifest([layer, layer], artifact_type=media.CUBE_ARTIFACT, annotations={})
    with pytest.raises(UnexpectedMemberError):
        parse_artifact_manifest(twice, sha256_digest(twice))
