"""Load benchmark, server mode: MemCube vs the same traffic sent straight to Chroma.

It starts its own ``chroma run`` servers (``memcube.testing.ChromaServer``) and measures:

1. **Mixed traffic** with N concurrent clients (N = 1, 4, 16 by default): each client is a thread
   with its own client object (its own ``MemCube`` opened on the same cube folder with
   ``chroma_url``, or its own ``chromadb.HttpClient``), its own user, and a 50/50 mix of
   "add one memory" and "search my memories (k=10)" for ``--seconds``. Reported: throughput
   (operations/s) and p50/p95 latency per operation kind. **Every run gets a fresh server**: on
   one shared server each run inherited the earlier runs' data (Chroma indexes metadata keys
   across collections, and its log grows), and the same raw run measured 223 then 109 ops/s.
   ``raw`` and ``cube_hybrid``, the two sides the target compares, and ``raw_tuned`` run
   ``--reps`` times each, taking turns; each figure is the median of its runs (all runs are in
   the JSON under ``runs``).
2. **Search latency at ``--bulk`` items** (100,000 by default, spread over 10 users): ``--queries``
   searches, one at a time, p50/p95.

The Chroma side does what an application without MemCube would do for the same traffic: add =
``collection.add(ids, embeddings, documents, metadatas={"user_id": ...})``; search =
``collection.query(query_embeddings, n_results=10, where={"user_id": ...})``.

**The same embedder, two ways.** The mixed traffic runs twice (``--embed both``, the default):

* ``live``: both sides embed every text with the bundled all-MiniLM-L6-v2 as it comes, which is
  what an application sees end to end (``mixed_live`` in the JSON);
* ``lookup``: both sides embed through one ``LookupEmbedder``: the same MiniLM vectors computed
  once (cached in ``--cache-dir`` as ``.npy``, loaded with ``allow_pickle=False``) and served
  from a dictionary, so both pay near-zero embedding cost and the ratio isolates what the cube
  adds in storage and bookkeeping (``mixed`` in the JSON). This is the harsher comparison.
For the bulk load (always ``lookup``), 100,000 MiniLM embeddings would take ~17 minutes on 2
cores, so the cheaper path is: ``--base`` real MiniLM embeddings of distinct sentences, and item i gets
base vector ``i % base`` plus Gaussian noise (sigma 0.02 per dimension), re-normalised, with the
text ``"<base sentence> [i]"``. Both sides get exactly the same vectors. Queries are real MiniLM
embeddings of separate query sentences.

``raw_tuned`` is raw Chroma with the cube's index sync setting
(``memcube.plaintext.backend.ITEMS_SYNC_THRESHOLD``): it shows how much of the difference is
that setting rather than the cube's own work. MemCube is measured three ways:

* ``cube_hybrid``, the default: hybrid retrieval (dense + BM25 + session + time signals, with a
  per-process cache); an add's cache marker is written by the outbox within ``publish_interval``
  (0.5 s) and its audit entry within ``AuditConfig.interval`` (2 s), see :mod:`memcube.outbox`;
* ``cube_dense``: ``RetrievalConfig(hybrid=False)``, dense only (the same Chroma query plus
  scoping, lifecycle filters and JSON decoding);
* ``cube_strict``: the default with ``publish_interval=0``, which writes the audit entry and the
  marker before each add returns (up to three Chroma writes per add instead of one).

Usage:
    python -m benchmarks.load [--clients 1,4,16] [--seconds 10] [--reps 3] [--bulk 100000]
                              [--json OUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

SUBJECTS = ["Alice", "Bob", "my sister", "our team", "the landlord", "Dr. Rivera", "my dog", "Grandpa",
            "the neighbours", "Priya", "the coach", "Uncle Tom"]  # fmt: skip
VERBS = ["visited", "talked about", "bought", "fixed", "planned", "forgot", "painted", "booked",
         "recommended", "complained about", "sold", "photographed"]  # fmt: skip
OBJECTS = ["the red bicycle", "a trip to Kyoto", "the kitchen sink", "a birthday party",
           "tickets to Lisbon", "the quarterly report", "a new laptop", "the garden fence",
           "a vegan cookbook", "piano lessons", "the wedding venue", "a hiking trail in Peru",
           "an old camera", "the heating bill", "a sailing course", "the jazz festival"]  # fmt: skip
WHEN = ["yesterday", "last week", "in March", "on Sunday", "two years ago", "this morning",
        "in 2019", "after lunch"]  # fmt: skip
QUESTIONS = ["What did {s} {v}?", "When did {s} talk about {o}?", "Who {v} {o}?",
             "Tell me about {o}", "Anything {w} about {o}?"]  # fmt: skip
USERS_AT_BULK = 10
NOISE_SIGMA = 0.02
#: Target from the issue: MemCube's latency at most this multiple of raw Chroma's.
TARGET_RATIO = 1.3


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)}"
        s = s if s not in seen else f"{s} (again, {len(out)})"
        seen.add(s)
        out.append(s)
    return out


def questions(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(QUESTIONS).format(
            s=rng.choice(SUBJECTS), v=rng.choice(VERBS), o=rng.choice(OBJECTS), w=rng.choice(WHEN)
        )
        + f" #{i}"
        for i in range(n)
    ]


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class LookupEmbedder:
    """The benchmark's one embedder: MiniLM vectors looked up by text (computed once, cached);
    an unknown text is embedded live by the real model and counted in ``misses``."""

    def __init__(self, vectors: dict[str, np.ndarray], model: Any) -> None:
        self.vectors = vectors
        self.model = model
        self.model_id = model.model_id
        self.dimension = model.dimension
        self.misses = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for t in texts:
            v = self.vectors.get(t)
            if v is None:
                self.misses += 1
                v = np.asarray(self.model.embed_query(t), dtype=np.float32)
            out.append(v.tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def embed_cached(model: Any, texts: list[str], cache_dir: Path) -> np.ndarray:
    """Real MiniLM embeddings of ``texts``, cached on disk by content hash (no pickle)."""
    digest = hashlib.sha256("\n".join([model.model_id, *texts]).encode()).hexdigest()[:20]
    path = cache_dir / f"minilm-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    t0 = time.perf_counter()
    vecs = np.asarray(model.embed_documents(texts), dtype=np.float32)
    print(f"  embedded {len(texts)} texts with MiniLM in {time.perf_counter() - t0:.0f}s")
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs, allow_pickle=False)
    return vecs


# ---------------------------------------------------------------- the two clients
class RawClient:
    """Straight to Chroma: what an application would write without MemCube."""

    def __init__(
        self, url: str, collection: str, embedder: LookupEmbedder, user: str,
        sync_threshold: int | None = None,
    ) -> None:  # fmt: skip
        from urllib.parse import urlparse

        import chromadb
        from chromadb.config import Settings

        u = urlparse(url)
        self.client = chromadb.HttpClient(
            host=u.hostname, port=u.port, settings=Settings(anonymized_telemetry=False)
        )
        hnsw: dict[str, Any] = {"space": "cosine"}
        if sync_threshold is not None:
            hnsw["sync_threshold"] = sync_threshold
        self.col = self.client.get_or_create_collection(
            collection, configuration={"hnsw": hnsw}, embedding_function=None
        )
        self.embedder = embedder
        self.user = user

    def add(self, text: str) -> None:
        vec = self.embedder.embed_documents([text])
        self.col.add(
            ids=[os.urandom(16).hex()], embeddings=vec, documents=[text],
            metadatas=[{"user_id": self.user}],
        )  # fmt: skip

    def search(self, query: str) -> int:
        res = self.col.query(
            query_embeddings=[self.embedder.embed_query(query)], n_results=10,
            where={"user_id": self.user}, include=["documents", "metadatas", "distances"],
        )  # fmt: skip
        return len(res["ids"][0])

    def close(self) -> None:
        self.client.close()


class CubeClient:
    """Through MemCube: its own MemCube object per client, like a separate process."""

    def __init__(
        self, url: str, path: Path, embedder: LookupEmbedder, user: str, hybrid: bool,
        publish_interval: float = 0.5,  # MemCube.open's default
    ) -> None:  # fmt: skip
        from memcube import MemCube, RetrievalConfig

        self.cube = MemCube.open(
            path, chroma_url=url, embedder=embedder, retrieval=RetrievalConfig(hybrid=hybrid),
            publish_interval=publish_interval,
        )  # fmt: skip
        self.user = user

    def add(self, text: str) -> None:
        self.cube.add(text, user_id=self.user)

    def search(self, query: str) -> int:
        return len(self.cube.search(query, user_id=self.user, k=10))

    def close(self) -> None:
        self.cube.close()


# ---------------------------------------------------------------- the measurements
def mixed_traffic(
    make_client: Callable[[str], Any], n_clients: int, seconds: float, texts: list[str],
    queries: list[str], seed: int,
) -> dict[str, Any]:  # fmt: skip
    clients = [make_client(f"client-{i}") for i in range(n_clients)]
    for c in clients:  # one add each, so every search has something to find
        c.add(texts[0])
    lat: dict[str, list[float]] = {"add": [], "search": []}
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_clients + 1)

    def run(i: int, client: Any) -> None:
        rng = random.Random(seed * 1000 + i)
        mine: dict[str, list[float]] = {"add": [], "search": []}
        barrier.wait()
        stop = time.perf_counter() + seconds
        try:
            while time.perf_counter() < stop:
                kind = "add" if rng.random() < 0.5 else "search"
                t0 = time.perf_counter()
                if kind == "add":
                    client.add(rng.choice(texts))
                else:
                    client.search(rng.choice(queries))
                mine[kind].append(time.perf_counter() - t0)
        except BaseException as exc:
            errors.append(exc)
        with lock:
            for k, v in mine.items():
                lat[k].extend(v)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in clients:
        c.close()
    if errors:
        raise errors[0]
    every = lat["add"] + lat["search"]
    return {
        "clients": n_clients,
        "ops": len(every),
        "ops_per_s": len(every) / elapsed,
        "p50_ms": pct(every, 50) * 1e3,
        "p95_ms": pct(every, 95) * 1e3,
        "add_p50_ms": pct(lat["add"], 50) * 1e3,
        "add_p95_ms": pct(lat["add"], 95) * 1e3,
        "search_p50_ms": pct(lat["search"], 50) * 1e3,
        "search_p95_ms": pct(lat["search"], 95) * 1e3,
    }


def sides(embedder: Any, work: Path) -> dict[str, Callable[[str, str], Any]]:
    """The ways the same traffic is sent, as ``side -> make(url, user)``: raw Chroma as an
    application would call it, raw Chroma with the cube's index sync setting, and three cube
    configurations."""
    from memcube.plaintext.backend import ITEMS_SYNC_THRESHOLD

    return {
        "raw": lambda url, u: RawClient(url, "raw_mixed", embedder, u),
        "raw_tuned": lambda url, u: RawClient(
            url, "raw_mixed", embedder, u, sync_threshold=ITEMS_SYNC_THRESHOLD
        ),
        "cube_dense": lambda url, u: CubeClient(url, work / "d", embedder, u, hybrid=False),
        "cube_hybrid": lambda url, u: CubeClient(url, work / "h", embedder, u, hybrid=True),
        "cube_strict": lambda url, u: CubeClient(
            url, work / "s", embedder, u, hybrid=True, publish_interval=0
        ),
    }


#: Sides measured ``--reps`` times (the two the target compares, and raw with the cube's
#: setting); the others once.
REPEATED = ("raw", "raw_tuned", "cube_hybrid")
METRICS = ("ops_per_s", "p50_ms", "p95_ms", "add_p50_ms", "add_p95_ms", "search_p50_ms",
           "search_p95_ms")  # fmt: skip


def run_order(reps: int) -> list[tuple[str, int]]:
    """(side, rep) in the order they run: the repeated sides take turns, in forward then
    reverse order, so drift on the machine hits them alike."""
    order: list[tuple[str, int]] = []
    for rep in range(reps):
        turn = REPEATED if rep % 2 == 0 else REPEATED[::-1]
        order += [(side, rep) for side in turn]
    return order + [(side, 0) for side in ("cube_dense", "cube_strict")]


def median_row(side: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's figures: per metric, the median over its runs (all runs kept under ``runs``)."""
    row: dict[str, Any] = {"side": side, "clients": runs[0]["clients"]}
    row.update({m: statistics.median(r[m] for r in runs) for m in METRICS})
    row["ops"] = sum(r["ops"] for r in runs)
    row["runs"] = runs
    return row


def measure_mixed(
    work: Path, embedder: Any, n: int, args: argparse.Namespace, texts: list[str],
    queries: list[str], label: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every side at ``n`` clients, each run on a server of its own (see the module docstring)."""
    from memcube.testing import ChromaServer

    runs: dict[str, list[dict[str, Any]]] = {}
    for side, rep in run_order(args.reps):
        folder = work / f"{side}-{rep}"  # the server's data and the cube folder of this run
        server = ChromaServer(folder / "chroma" / "data")
        server.start()
        try:
            run = mixed_traffic(
                lambda u, m=sides(embedder, folder)[side], url=server.url: m(url, u), n,
                args.seconds, texts, queries, args.seed,
            )  # fmt: skip
        finally:
            server.stop()
            shutil.rmtree(folder, ignore_errors=True)
        runs.setdefault(side, []).append(run)
        print(f"  {label:<6} N={n:<3} {side:<12} #{rep} {run['ops_per_s']:8.1f} ops/s  "
              f"p50 {run['p50_ms']:7.1f} ms  p95 {run['p95_ms']:7.1f} ms")  # fmt: skip
    order = ("raw", "raw_tuned", "cube_dense", "cube_hybrid", "cube_strict")
    return [median_row(side, runs[side]) for side in order]


def bulk_vectors(base: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vecs = base[np.arange(n) % len(base)] + rng.normal(0, NOISE_SIGMA, (n, base.shape[1]))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


def search_at_scale(
    url: str, workdir: Path, embedder: LookupEmbedder, base_texts: list[str], base_vecs: np.ndarray,
    queries: list[str], n: int, batch: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    from memcube import MemCube, RetrievalConfig

    texts = [f"{base_texts[i % len(base_texts)]} [{i}]" for i in range(n)]
    vecs = bulk_vectors(base_vecs, n, seed)
    users = [f"user-{i % USERS_AT_BULK}" for i in range(n)]
    embedder.vectors.update(zip(texts, vecs))
    out: dict[str, Any] = {"items": n, "users": USERS_AT_BULK}

    raw = RawClient(url, "raw_bulk", embedder, "user-0")
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        raw.col.add(
            ids=[f"r{i}" for i in range(s, min(n, s + batch))],
            embeddings=vecs[s : s + batch],
            documents=texts[s : s + batch],
            metadatas=[{"user_id": u} for u in users[s : s + batch]],
        )
    out["raw_load_items_per_s"] = n / (time.perf_counter() - t0)

    cube = MemCube.open(workdir / "bulk-cube", chroma_url=url, embedder=embedder)
    t0 = time.perf_counter()
    cube.add_many(
        [{"content": t, "user_id": u} for t, u in zip(texts, users)], batch_size=batch,
        progress=False,
    )  # fmt: skip
    out["cube_load_items_per_s"] = n / (time.perf_counter() - t0)
    cube.close()

    def timed(search: Callable[[str], int]) -> dict[str, float]:
        search(queries[0])  # warm: connection, caches
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            found = search(q)
            lat.append(time.perf_counter() - t0)
            assert found == 10, found
        return {"p50_ms": pct(lat, 50) * 1e3, "p95_ms": pct(lat, 95) * 1e3,
                "mean_ms": statistics.fmean(lat) * 1e3}  # fmt: skip

    out["raw"] = timed(raw.search)
    raw.close()
    for label, hybrid in (("cube_dense", False), ("cube_hybrid", True)):
        cube = MemCube.open(
            workdir / "bulk-cube", chroma_url=url, embedder=embedder,
            retrieval=RetrievalConfig(hybrid=hybrid),
        )  # fmt: skip
        out[label] = timed(lambda q, c=cube: len(c.search(q, user_id="user-0", k=10)))
        cube.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--seconds", type=float, default=10.0, help="per run")
    ap.add_argument("--reps", type=int, default=3, help="runs of the repeated sides per count")
    ap.add_argument("--bulk", type=int, default=100_000)
    ap.add_argument("--base", type=int, default=2000, help="real MiniLM embeddings for bulk")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000, help="bulk load batch size")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                    / "memos-integrations" / "load")  # fmt: skip
    ap.add_argument(
        "--embed",
        choices=["both", "live", "lookup"],
        default="both",
        help="mixed traffic with the live embedder, the lookup one, or both",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from memcube.plaintext.embedder import default_embedder
    from memcube.testing import ChromaServer

    model = default_embedder()
    base_texts = sentences(args.base, args.seed)
    query_texts = questions(args.queries, args.seed + 1)
    print(f"embedding {len(base_texts)} + {len(query_texts)} texts with MiniLM (cached) ...")
    base_vecs = embed_cached(model, base_texts, args.cache_dir)
    query_vecs = embed_cached(model, query_texts, args.cache_dir)
    embedder = LookupEmbedder(
        {**dict(zip(base_texts, base_vecs)), **dict(zip(query_texts, query_vecs))}, model
    )

    result: dict[str, Any] = {
        "benchmark": "load",
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
        },  # fmt: skip
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "mixed": [],
        "mixed_live": [],
    }
    with tempfile.TemporaryDirectory(prefix="memcube-load-") as tmp:
        work = Path(tmp)
        modes = ["lookup", "live"] if args.embed == "both" else [args.embed]
        for mode in modes:
            emb = embedder if mode == "lookup" else model
            key = "mixed" if mode == "lookup" else "mixed_live"
            for n in [int(x) for x in args.clients.split(",")]:
                result[key] += measure_mixed(
                    work / f"{mode}-{n}", emb, n, args, base_texts, query_texts, mode
                )
        if args.bulk:
            print(f"bulk-loading {args.bulk} items into each side ...")
            server = ChromaServer(work / "bulk" / "chroma" / "data")
            server.start()
            try:
                result["at_scale"] = search_at_scale(
                    server.url, work / "bulk", embedder, base_texts, base_vecs, query_texts,
                    args.bulk, args.batch, args.seed,
                )  # fmt: skip
            finally:
                server.stop()
    result["embedder_live_misses"] = embedder.misses
    result["overhead_cube_hybrid"] = {
        "live": ratios(result["mixed_live"]), "lookup": ratios(result["mixed"]),
    }  # fmt: skip
    result["overhead_cube_hybrid_vs_raw_tuned"] = {
        "live": ratios(result["mixed_live"], base="raw_tuned"),
        "lookup": ratios(result["mixed"], base="raw_tuned"),
    }
    result["machine"]["loadavg_after"] = os.getloadavg()
    report(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return result


def ratios(
    rows: list[dict[str, Any]], side: str = "cube_hybrid", base: str = "raw"
) -> list[dict[str, Any]]:
    """Per client count: ``side`` over ``base`` for throughput (base / side) and p50/p95
    latency."""
    raw = {r["clients"]: r for r in rows if r["side"] == base}
    return [
        {
            "clients": r["clients"],
            "throughput": round(raw[r["clients"]]["ops_per_s"] / r["ops_per_s"], 2),
            "p50": round(r["p50_ms"] / raw[r["clients"]]["p50_ms"], 2),
            "p95": round(r["p95_ms"] / raw[r["clients"]]["p95_ms"], 2),
        }
        for r in rows
        if r["side"] == side
    ]


def report(result: dict[str, Any]) -> None:
    for key, title in (("mixed_live", "live MiniLM embedding on both sides"),
                       ("mixed", "lookup embedder: storage and bookkeeping only")):  # fmt: skip
        rows = result.get(key) or []
        if not rows:
            continue
        print(f"\nMixed add/search traffic (50/50), server mode, {title}")
        print(f"{'N':>3} {'side':<12} {'ops/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'search p50':>10} {'add p50':>8} {'p95 vs raw':>10}")  # fmt: skip
        raw = {r["clients"]: r for r in rows if r["side"] == "raw"}
        for r in rows:
            ratio = r["p95_ms"] / raw[r["clients"]]["p95_ms"]
            print(f"{r['clients']:>3} {r['side']:<12} {r['ops_per_s']:>9.1f} {r['p50_ms']:>8.1f} "
                  f"{r['p95_ms']:>8.1f} {r['search_p50_ms']:>10.1f} {r['add_p50_ms']:>8.1f} "
                  f"{ratio:>9.2f}x")  # fmt: skip
    scale = result.get("at_scale")
    if scale:
        print(f"\nSearch latency at {scale['items']} items ({scale['users']} users), k=10")
        print(f"{'side':<12} {'p50 ms':>8} {'p95 ms':>8} {'p50 vs raw':>10}")
        for side in ("raw", "cube_dense", "cube_hybrid"):
            s = scale[side]
            print(f"{side:<12} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f} "
                  f"{s['p50_ms'] / scale['raw']['p50_ms']:>9.2f}x")  # fmt: skip
        print(f"bulk load: raw {scale['raw_load_items_per_s']:.0f} items/s, "
              f"cube {scale['cube_load_items_per_s']:.0f} items/s")  # fmt: skip
    print(f"target: MemCube at most {TARGET_RATIO}x raw Chroma")


if __name__ == "__main__":
    main()
