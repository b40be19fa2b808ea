"""Core overhead: MemCube vs raw Chroma with the same embedder, doing the same work.

Measures, in one run on this machine:
- ingestion throughput (items/s) of ``cube.add_many`` vs ``collection.add`` after
  ``embedder.embed_documents``, same texts, same batch size;
- search latency p50/p95 at N items of ``cube.search`` vs ``embed_query`` + ``collection.query``.

Both sides embed with the same embedder object, so the ratio shows what the cube adds on top.

Usage:
    python -m benchmarks.core [--items 10000] [--queries 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SUBJECTS = [
    "Alice",
    "Bob",
    "my sister",
    "our team",
    "the landlord",
    "Dr. Rivera",
    "my dog",
    "Grandpa",
]
VERBS = ["visited", "talked about", "bought", "fixed", "planned", "forgot", "painted", "booked"]
OBJECTS = [
    "the red bicycle",
    "a trip to Kyoto",
    "the kitchen sink",
    "a birthday party",
    "tickets to Lisbon",
    "the quarterly report",
    "a new laptop",
    "the garden fence",
    "a vegan cookbook",
    "piano lessons",
    "the wedding venue",
    "a hiking trail in Peru",
    "an old camera",
    "the heating bill",
    "a sailing course",
]
WHEN = [
    "yesterday",
    "last week",
    "in March",
    "on Sunday",
    "two years ago",
    "this morning",
    "in 2019",
]


def make_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)} (note {i})"
        for i in range(n)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def bench_raw(
    texts: list[str], queries: list[str], embedder: Any, batch: int, path: Path
) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False)
    )
    col = client.get_or_create_collection(
        "raw_bench", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    t0 = time.perf_counter()
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        vecs = embedder.embed_documents(chunk)
        col.add(
            ids=[f"r{start + i}" for i in range(len(chunk))],
            embeddings=vecs,
            documents=chunk,
            metadatas=[{"user_id": "bench"} for _ in chunk],
        )
    ingest = time.perf_counter() - t0
    lat = []
    for q in queries:
        t = time.perf_counter()
        col.query(
            query_embeddings=[embedder.embed_query(q)],
            n_results=10,
            where={"user_id": "bench"},
            include=["metadatas", "documents", "distances"],
        )
        lat.append(time.perf_counter() - t)
    client.close()
    return {
        "ingest_s": ingest,
        "items_per_s": len(texts) / ingest,
        "search_ms": [x * 1000 for x in lat],
    }


def bench_cube(
    texts: list[str], queries: list[str], embedder: Any, batch: int, path: Path
) -> dict[str, Any]:
    from memcube import MemCube

    with MemCube.open(path, embedder=embedder) as cube:
        t0 = time.perf_counter()
        cube.add_many(
            ({"content": t} for t in texts), user_id="bench", batch_size=batch, progress=True
        )
        ingest = time.perf_counter() - t0
        lat = []
        for q in queries:
            t = time.perf_counter()
            cube.search(q, user_id="bench", k=10)
            lat.append(time.perf_counter() - t)
    return {
        "ingest_s": ingest,
        "items_per_s": len(texts) / ingest,
        "search_ms": [x * 1000 for x in lat],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", dest="json_out", help="write results as JSON here")
    args = parser.parse_args(argv)

    from memcube import default_embedder

    embedder = default_embedder()
    embedder.embed_query("warm up")  # load the model outside the timed regions
    texts = make_texts(args.items)
    rng = random.Random(11)
    queries = [
        f"when did {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}?"
        for _ in range(args.queries)
    ]

    with tempfile.TemporaryDirectory() as tmp:
        raw = bench_raw(texts, queries, embedder, args.batch, Path(tmp) / "raw")
        cube = bench_cube(texts, queries, embedder, args.batch, Path(tmp) / "cube")

    def summary(r: dict[str, Any]) -> dict[str, float]:
        return {
            "ingest_s": round(r["ingest_s"], 2),
            "items_per_s": round(r["items_per_s"], 1),
            "search_p50_ms": round(statistics.median(r["search_ms"]), 2),
            "search_p95_ms": round(percentile(r["search_ms"], 95), 2),
        }

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "items": args.items,
        "queries": args.queries,
        "batch": args.batch,
        "embedder": embedder.model_id,
        "systems": {"raw_chroma": summary(raw), "memcube": summary(cube)},
    }
    s_raw, s_cube = result["systems"]["raw_chroma"], result["systems"]["memcube"]
    result["overhead"] = {
        "ingest": round(s_cube["ingest_s"] / s_raw["ingest_s"], 3),
        "search_p50": round(s_cube["search_p50_ms"] / s_raw["search_p50_ms"], 3),
        "search_p95": round(s_cube["search_p95_ms"] / s_raw["search_p95_ms"], 3),
    }
    print(f"\n{'system':<12}{'ingest s':>10}{'items/s':>10}{'p50 ms':>10}{'p95 ms':>10}")
    for name, s in result["systems"].items():
        print(
            f"{name:<12}{s['ingest_s']:>10}{s['items_per_s']:>10}{s['search_p50_ms']:>10}{s['search_p95_ms']:>10}"
        )
    o = result["overhead"]
    print(
        f"overhead (memcube / raw): ingest {o['ingest']}x, search p50 {o['search_p50']}x, p95 {o['search_p95']}x (target <= 1.3x)"
    )
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
