"""Publish, find, pull, subscribe and sync against a real registry (docker-registry)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from memcube import MemCube
from memcube.errors import ChannelMovedError, InvalidInputError
from memcube.marketplace import Marketplace, media, publisher_of
from memcube.marketplace.client import RegistryClient
from memcube.marketplace.reference import parse_reference
from tests.helpers import HashEmbedder

FP = "d" * 64


def add_cache(cube: MemCube, name: str = "kb-prefix", fill: float = 1.0) -> None:
    """A real safetensors KV-cache file with its JSON manifest naming the model fingerprint."""
    folder = cube.path / "activation" / "kb"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"layer0.keys": np.full((1, 2, 64, 8), fill, np.float32)},
              str(folder / f"{name}.safetensors"))  # fmt: skip
    (folder / f"{name}.json").write_text(
        json.dumps({"model_fingerprint": FP, "tokens": 64, "user_id": "kb"})
    )


def test_publish_then_pull_with_catalog_annotations(cube_at, repo, creds, keys, tmp_path) -> None:
    ref = repo("team-kb:main")
    pub = cube_at("pub")
    a = pub.add("The VPN endpoint is vpn.acme.example", user_id="kb", tags=["it"])
    pub.add("Ana's private note", user_id="ana")
    add_cache(pub)
    report = pub.publish(ref, signing_key=keys["a"], user_id="kb", title="Team KB",
                         description="What IT wants everyone to know", license="CC-BY-4.0",
                         terms="https://acme.example/terms", publisher="IT desk")  # fmt: skip
    assert report.kind == "full" and report.items == 1 and report.sequence == 1

    listings = Marketplace().search(parse_reference(ref).host + "/" + ref.split("/")[3])
    main = next(x for x in listings if x.tag == "main")
    assert {x.tag for x in listings} == {"main", "main.1"}
    notes = main.annotations
    assert notes[media.TITLE] == "Team KB" and notes[media.LICENSES] == "CC-BY-4.0"
    assert notes[media.TERMS] == "https://acme.example/terms" and notes[media.VENDOR] == "IT desk"
    assert notes[media.PUBLISHER_KEY] == report.key_id and notes[media.ITEMS] == "1"
    assert notes[media.EMBEDDER].startswith(HashEmbedder.model_id)
    assert notes[media.FINGERPRINTS] == FP and notes[media.MIP_VERSION] == "1.0"
    assert main.digest == report.digest

    got, rep = MemCube.pull(ref, into=tmp_path / "sub", trusted_keys=[keys["a.pub"]],
                            accept_license="CC-BY-4.0", embedder=HashEmbedder(),
                            model_fingerprint=FP)  # fmt: skip
    try:
        items = list(got.items(user_id=None))
        assert [i.content for i in items] == [a.content]  # only kb's memories were published
        mark = publisher_of(items[0])
        assert mark == {"key_id": report.key_id, "name": "IT desk",
                        "channel": parse_reference(ref).channel, "digest": report.digest}  # fmt: skip
        assert rep.signatures == ["verified"] and rep.added == 1 and rep.license == "CC-BY-4.0"
        assert rep.attached == ["activation/kb/kb-prefix"]
        assert (got.path / "activation/kb/kb-prefix.safetensors").read_bytes() == (
            pub.path / "activation/kb/kb-prefix.safetensors"
        ).read_bytes()
    finally:
        got.close()


def test_unchanged_layers_are_not_uploaded_again(cube_at, repo, creds, keys) -> None:
    ref = repo("kb:main")
    pub = cube_at("pub")
    pub.add("fact one", user_id="kb")
    add_cache(pub)
    first = pub.publish(ref, signing_key=keys["a"], user_id="kb")
    # items.jsonl, the cache's tensors and manifest, mip.json, mip.sig
    assert first.uploaded_layers == first.layers == 5
    pub.add("fact two", user_id="kb")
    second = pub.publish(ref, signing_key=keys["a"], user_id="kb", full=True)
    # the cache's two layers were already there; items.jsonl, mip.json and mip.sig are new
    assert second.layers == 5 and second.uploaded_layers == 3
    delta = pub.publish(ref, signing_key=keys["a"], user_id="kb")
    assert delta.unchanged and delta.uploaded_layers == 0


def test_subscribe_sync_deltas_tombstones_in_order(cube_at, repo, creds, keys) -> None:
    ref = repo("kb:main")
    pub, sub = cube_at("pub"), cube_at("sub")
    vpn = pub.add("The VPN endpoint is vpn.acme.example", user_id="kb")
    deploy = pub.add("Deploys happen on Tuesdays", user_id="kb")
    pub.publish(ref, signing_key=keys["a"], user_id="kb", publisher="IT desk")
    sub.subscribe(ref, trusted_keys=[keys["a.pub"]], as_user="team-kb", share_with=["ana"])
    assert sub.sync()[0].added == 2

    pub.update(deploy.id, content="Deploys happen on Wednesdays")
    pub.delete(vpn.id)
    lunch = pub.add("Lunch is at noon", user_id="kb")
    d2 = pub.publish(ref, signing_key=keys["a"], user_id="kb", publisher="IT desk")
    assert (d2.kind, d2.items, d2.tombstones, d2.sequence) == ("delta", 2, 1, 2)
    pub.update(lunch.id, content="Lunch is at half past twelve")
    d3 = pub.publish(ref, signing_key=keys["a"], user_id="kb", publisher="IT desk")
    assert d3.base == d2.digest

    rep = sub.sync()[0]
    assert rep.applied == [d2.digest, d3.digest]  # both deltas, oldest first
    assert (rep.added, rep.updated, rep.deleted) == (1, 2, 1)
    live = {i.content for i in sub.items(user_id="team-kb")}
    assert live == {"Deploys happen on Wednesdays", "Lunch is at half past twelve"}
    assert sub.get(vpn.id, user_id=None).state.value == "archived"  # a tombstone archives
    assert [v.content for v in sub.history(deploy.id)][-1] == "Deploys happen on Wednesdays"
    # read-only for the reader it is shared with
    block = sub.memory_block("when are deploys?", user_id="ana")
    assert (
        "team-kb's memory (published by IT desk, shared with you): Deploys happen on Wed" in block
    )
    with pytest.raises(Exception, match="read"):
        sub.update(deploy.id, content="hijacked", user_id="ana")
    assert sub.sync()[0].up_to_date


def test_applying_a_version_again_changes_nothing(cube_at, repo, creds, keys) -> None:
    from memcube.marketplace import ChannelState

    ref = repo("kb:main")
    pub, sub = cube_at("pub"), cube_at("sub")
    x = pub.add("fact one", user_id="kb")
    pub.publish(ref, signing_key=keys["a"], user_id="kb")
    sub.subscribe(ref, trusted_keys=[keys["a.pub"]])
    sub.sync()
    pub.update(x.id, content="fact one, revised")
    pub.add("fact two", user_id="kb")
    pub.delete(pub.add("short-lived", user_id="kb").id)
    pub.publish(ref, signing_key=keys["a"], user_id="kb")
    channel = parse_reference(ref).channel
    before = ChannelState.load(sub.path, channel)
    sub.sync()
    snapshot = sorted((i.id, i.content, i.version) for i in sub.items(user_id=None))
    # as after a crash between applying a version and recording it: the state is one behind
    before.save(sub.path)
    again = sub.sync()[0]
    assert len(again.applied) == 1 and again.added == 0 and again.updated == 0
    assert again.unchanged == 2
    assert sorted((i.id, i.content, i.version) for i in sub.items(user_id=None)) == snapshot


def test_several_publishers_on_one_channel(cube_at, repo, creds, keys) -> None:
    ref = repo("shared:main")
    alice, bob, reader = cube_at("alice"), cube_at("bob"), cube_at("reader")
    both = [keys["a.pub"], keys["b.pub"]]
    alice.add("Alice: the printer is on floor 2", user_id="kb")
    alice.publish(ref, signing_key=keys["a"], user_id="kb", publisher="Alice")
    alice.subscribe(ref, trusted_keys=both)
    bob.subscribe(ref, trusted_keys=both, as_user="kb")
    bob.sync()
    bob.add("Bob: the wifi password is on the fridge", user_id="kb")
    d2 = bob.publish(ref, signing_key=keys["b"], user_id="kb", publisher="Bob")
    assert d2.kind == "delta"
    # alice has not seen bob's version: publishing would overwrite it, so it is refused
    alice.add("Alice: badge office closes at 5", user_id="kb")
    with pytest.raises(ChannelMovedError):
        alice.publish(ref, signing_key=keys["a"], user_id="kb", publisher="Alice")
    assert alice.sync()[0].added == 1
    d3 = alice.publish(ref, signing_key=keys["a"], user_id="kb", publisher="Alice")
    assert d3.base == d2.digest and d3.items == 1

    reader.subscribe(ref, trusted_keys=both, as_user="team", share_with=["ana"])
    rep = reader.sync()[0]
    assert rep.added == 3 and set(rep.publishers.values()) == {"Alice", "Bob"}
    by = {i.content.split(":")[0]: publisher_of(i)["name"] for i in reader.items(user_id="team")}  # type: ignore[index]
    assert by == {"Alice": "Alice", "Bob": "Bob"}
    names = {publisher_of(i)["key_id"] for i in reader.items(user_id="team")}  # type: ignore[index]
    assert len(names) == 2
    # a reader who trusts only alice refuses bob's delta and applies nothing
    picky = cube_at("picky")
    picky.subscribe(ref, trusted_keys=[keys["a.pub"]])
    with pytest.raises(Exception, match="not among the trusted keys"):
        picky.sync()
    assert picky.count(user_id=None) == 0


def test_conflicting_edits_follow_the_import_policy(cube_at, repo, creds, keys) -> None:
    ref = repo("kb:main")
    pub = cube_at("pub")
    item = pub.add("Standup is at 9", user_id="kb")
    pub.publish(ref, signing_key=keys["a"], user_id="kb")
    keep, take = cube_at("keep"), cube_at("take")
    keep.subscribe(ref, trusted_keys=[keys["a.pub"]], on_conflict="skip")
    take.subscribe(ref, trusted_keys=[keys["a.pub"]], on_conflict="new_version")
    for c in (keep, take):
        c.sync()
        c.update(item.id, content="Standup is at 9:15 (local note)")
    pub.update(item.id, content="Standup is at 10")
    pub.publish(ref, signing_key=keys["a"], user_id="kb")
    kept = keep.sync()[0]
    assert [(c.id, c.resolution) for c in kept.conflicts] == [(item.id, "skip")]
    assert "changed in this cube" in kept.conflicts[0].reason
    assert keep.get(item.id, user_id=None).content == "Standup is at 9:15 (local note)"
    took = take.sync()[0]
    assert [(c.id, c.resolution) for c in took.conflicts] == [(item.id, "new_version")]
    assert take.get(item.id, user_id=None).content == "Standup is at 10"
    assert "Standup is at 9:15 (local note)" in [v.content for v in take.history(item.id)]
    # a tombstone of a memory changed here is a conflict too under "skip"
    pub.delete(item.id)
    pub.publish(ref, signing_key=keys["a"], user_id="kb")
    gone = keep.sync()[0]
    assert gone.conflicts and gone.conflicts[0].reason.startswith("deleted by the publisher")
    assert keep.get(item.id, user_id=None).state.value != "archived"


def test_topic_filter_and_argument_checks(cube_at, repo, creds, keys, tmp_path) -> None:
    ref = repo("topics:it")
    pub = cube_at("pub")
    pub.add("VPN: wg0", user_id="kb", tags=["it"])
    pub.add("Cake on Friday", user_id="kb", tags=["social"])
    report = pub.publish(ref, signing_key=keys["a"], tags=["it"])
    assert report.items == 1
    with pytest.raises(InvalidInputError):
        pub.publish(ref, signing_key=None)
    with pytest.raises(InvalidInputError):
        pub.publish(ref + "@sha256:" + "0" * 64, signing_key=keys["a"])
    with pytest.raises(InvalidInputError):
        pub.subscribe(ref, trusted_keys=[])
    with pytest.raises(InvalidInputError):
        pub.subscribe(ref, trusted_keys=[keys["a.pub"]], share_with=["ana"])  # needs as_user
    with pytest.raises(InvalidInputError):
        pub.sync("oci://127.0.0.1:1/not/subscribed:main")


def test_credentials_come_from_docker_config_and_are_never_stored(
    cube_at, repo, registry, keys, tmp_path, monkeypatch
) -> None:
    import base64

    monkeypatch.delenv("MEMCUBE_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("MEMCUBE_REGISTRY_PASSWORD", raising=False)
    cfg = tmp_path / "docker"
    cfg.mkdir()
    pair = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": pair}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    ref = repo("kb:main")
    pub = cube_at("pub")
    pub.add("fact", user_id="kb")
    pub.publish(ref, signing_key=keys["a"], user_id="kb")
    sub = cube_at("sub")
    sub.subscribe(ref, trusted_keys=[keys["a.pub"]])
    assert sub.sync()[0].added == 1
    for folder in (pub.path, sub.path):
        for f in folder.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                assert registry.password.encode() not in data and pair.encode() not in data, f
    with RegistryClient(registry.host) as client:
        assert client.credentials is not None and client.credentials.username == registry.username


async def test_async_twins(cube_at, repo, creds, keys, tmp_path) -> None:
    ref = repo("kb:main")
    pub = cube_at("pub")
    pub.add("fact", user_id="kb")
    published = await pub.apublish(ref, signing_key=keys["a"], user_id="kb")
    cube, report = await MemCube.apull(
        ref, into=tmp_path / "sub", trusted_keys=[keys["a.pub"]], embedder=HashEmbedder()
    )
    cube.close()
    assert report.applied == [published.digest]
