"""Memory marketplace on an OCI registry: publish, pull and delta sync of a large cube.

Against a local ``docker-registry`` (started here, htpasswd auth, loopback): a cube of
``--items`` memories (default 10,000) plus a real 2,048-token KV cache of the bundled
SmolLM2-135M-Instruct (prefilled over the rendered memories, stored as safetensors with its
model-fingerprint manifest), then

- ``publish_s`` / ``publish_mb_s``: a full, signed publish (export, split into layers, upload);
- ``fetch_s`` / ``apply_s`` / ``pull_s`` / ``pull_mb_s``: a pull into a new cube: download and
  verify (digests, signature, records) and then the import (which embeds every memory with the
  target's embedder, and attaches the cache);
- ``republish_uploaded_bytes``: a second full publish after changing nothing but one memory
  (unchanged layers, here the cache, are not uploaded again);
- ``delta_bytes`` vs ``full_bytes``: the delta after ``--changed`` (default 100) edited
  memories, against the full artifact and against its memories alone (target <= 5%);
- ``sync_s``: the subscriber's sync of that delta.

``--embedder hashing`` (default) uses a feature-hashing embedder so the figure is the
marketplace's, not MiniLM's; ``--embedder minilm`` uses the bundled model on both sides.

Usage:
    python -m benchmarks.marketplace [--items 10000] [--changed 100] [--embedder hashing]
        [--json OUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PEOPLE = ["Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun"]
TOPICS = ["the VPN", "deploys", "the wiki", "laptops", "badges", "printers", "payroll", "oncall"]
USER = "kb"
CACHE_TOKENS = 2048


class HashingEmbedder:
    """Feature hashing of lower-cased words into 256 dimensions, L2-normalized: a cheap, real
    lexical embedder (what the benchmark measures is transport, not embedding quality)."""

    model_id = "benchmarks/hashing-256"
    dimension = 256

    def _vec(self, text: str) -> list[float]:
        v = [0.0] * self.dimension
        for tok in text.lower().split():
            h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "big")
            v[h % self.dimension] += 1.0 if (h >> 63) else -1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vec(text)


def _facts(n: int) -> list[str]:
    return [
        f"Note {i}: {PEOPLE[i % len(PEOPLE)]} documented how {TOPICS[(i * 3) % len(TOPICS)]} "
        f"works in building {i % 17}, revision {i // 17}."
        for i in range(n)
    ]


def _embedder(name: str) -> Any:
    if name == "hashing":
        return HashingEmbedder()
    return None  # the cube's default, the bundled MiniLM


def _build_cache(cube: Any) -> int:
    """Prefill SmolLM2 over the first memories (exactly CACHE_TOKENS tokens) and store the cache
    as safetensors with a JSON manifest naming the model fingerprint; returns its bytes."""
    import torch
    from safetensors.torch import save_file
    from transformers import DynamicCache

    from memcube.activation.kv import cache_to_tensors
    from memcube.runtime import Runtime

    runtime = Runtime.shared()
    text = "\n".join(f"- {it.content}" for it in cube.items(user_id=USER))
    ids = runtime.tokenizer(text, add_special_tokens=False)["input_ids"][:CACHE_TOKENS]
    assert len(ids) == CACHE_TOKENS, "not enough memories to fill the cache"
    cache = DynamicCache(config=runtime.model.config)
    with torch.no_grad():
        runtime.model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
    tensors, layers = cache_to_tensors(cache)
    folder = cube.path / "activation" / USER
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "team-prefix.safetensors"))
    fp = runtime.fingerprint
    manifest = {
        "fingerprint": fp.model_dump(mode="json"),
        "fingerprint_digest": fp.digest,
        "tokens": CACHE_TOKENS,
        "user_id": USER,
        "layers": layers,
    }
    (folder / "team-prefix.json").write_text(json.dumps(manifest, indent=2, default=str))
    return int((folder / "team-prefix.safetensors").stat().st_size)


def run(items: int, changed: int, embedder: str) -> dict[str, Any]:
    from memcube import MemCube
    from memcube.interchange import generate_signing_key, public_key_of
    from memcube.marketplace import Marketplace, parse_reference
    from memcube.marketplace.local import LocalRegistry

    key = generate_signing_key()
    with tempfile.TemporaryDirectory() as tmp, LocalRegistry() as reg:
        root = Path(tmp)
        ref = reg.url("bench/team-kb:main")
        creds = reg.credentials
        pub = MemCube.open(root / "pub", embedder=_embedder(embedder))
        start = time.perf_counter()
        pub.add_many(
            [{"content": f, "user_id": USER, "memory_type": "fact"} for f in _facts(items)],
            progress=False,
        )
        fill_s = time.perf_counter() - start
        cache_bytes = _build_cache(pub)
        full = pub.publish(ref, signing_key=key, user_id=USER, title="bench", credentials=creds)

        # pull into a new cube: download + verify, then import
        market = Marketplace(None, credentials=creds)
        start = time.perf_counter()
        fetched = market.fetch(ref, trusted_keys=[public_key_of(key)])
        fetch_s = time.perf_counter() - start
        sub = MemCube.open(root / "sub", embedder=_embedder(embedder))
        market.cube = sub
        from memcube.runtime import Runtime

        start = time.perf_counter()
        report = market.apply(
            fetched,
            channel=parse_reference(ref).channel,
            model_fingerprint=Runtime.shared().fingerprint.digest,
        )
        apply_s = time.perf_counter() - start
        assert sub.count(user_id=USER) == items and report.attached, report

        # a change of one memory: only items.jsonl, mip.json and mip.sig travel again
        first = next(iter(pub.items(user_id=USER)))
        pub.update(first.id, content=first.content + " (checked)")
        again = pub.publish(ref, signing_key=key, user_id=USER, full=True, credentials=creds)

        # the subscriber follows the channel from the version it has applied
        sub.subscribe(ref, trusted_keys=[public_key_of(key)])
        sub.sync(credentials=creds)

        edited = 0
        for it in pub.items(user_id=USER):
            if edited == changed:
                break
            pub.update(it.id, content=it.content.replace("documented", "rewrote"))
            edited += 1
        delta = pub.publish(ref, signing_key=key, user_id=USER, credentials=creds)
        start = time.perf_counter()
        (synced,) = sub.sync(credentials=creds)
        sync_s = time.perf_counter() - start
        assert synced.updated == changed, synced
        items_bytes = full.artifact_bytes - cache_bytes
        pub.close()
        sub.close()
    mb = full.artifact_bytes / 1e6
    pull_s = fetch_s + apply_s
    return {
        "items": items,
        "cache_tokens": CACHE_TOKENS,
        "cache_bytes": cache_bytes,
        "fill_s": round(fill_s, 2),
        "full_bytes": full.artifact_bytes,
        "full_layers": full.layers,
        "publish_s": round(full.seconds, 3),
        "publish_mb_s": round(mb / full.seconds, 1),
        "fetch_s": round(fetch_s, 3),
        "apply_s": round(apply_s, 3),
        "pull_s": round(pull_s, 3),
        "pull_mb_s": round(mb / pull_s, 1),
        "fetch_mb_s": round(mb / fetch_s, 1),
        "republish_uploaded_bytes": again.uploaded_bytes,
        "republish_uploaded_layers": f"{again.uploaded_layers}/{again.layers}",
        "changed": changed,
        "delta_bytes": delta.artifact_bytes,
        "delta_over_full": round(delta.artifact_bytes / full.artifact_bytes, 5),
        "delta_over_full_items_only": round(delta.artifact_bytes / items_bytes, 4),
        "delta_publish_s": round(delta.seconds, 3),
        "sync_s": round(sync_s, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--embedder", choices=["hashing", "minilm"], default="hashing")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    row = run(args.items, args.changed, args.embedder)
    report = {
        "benchmark": "marketplace",
        "registry": "docker-registry (CNCF distribution 2.8, loopback, htpasswd)",
        "embedder": args.embedder,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "rows": [row],
    }
    r = row
    print(f"{'items':>6} {'MB':>7} {'publish':>9} {'pull':>9} {'(fetch+apply)':>16} "
          f"{'delta KB':>9} {'delta/full':>10} {'delta/items':>11} {'sync':>7}")  # fmt: skip
    print(
        f"{r['items']:>6} {r['full_bytes'] / 1e6:>7.1f} {r['publish_s']:>6.2f}s "
        f"({r['publish_mb_s']:>5.1f} MB/s) {r['pull_s']:>6.2f}s ({r['pull_mb_s']:>5.1f} MB/s) "
        f"{r['fetch_s']:>6.2f}+{r['apply_s']:.2f}s {r['delta_bytes'] / 1e3:>9.1f} "
        f"{r['delta_over_full']:>10.4f} {r['delta_over_full_items_only']:>11.4f} "
        f"{r['sync_s']:>6.2f}s"
    )
    print(
        f"re-publish after one edit uploaded {r['republish_uploaded_bytes'] / 1e6:.2f} MB "
        f"({r['republish_uploaded_layers']} layers); load average before/after: "
        f"{report['machine']['loadavg_before']} / {report['machine']['loadavg_after']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
