"""Hybrid retrieval: lexical + dense + session + time signals, scoping, cache consistency, and the
LoCoMo benchmark's output contract on a small synthetic LoCoMo-format file."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from memcube import InvalidInputError, MemCube, RetrievalConfig
from memcube.plaintext.context import attach_context
from memcube.plaintext.lexical import BM25Index, stem, tokenize
from memcube.plaintext.temporal import format_day, query_periods
from memcube.plaintext.wherefilter import matches, scope_owners

DENSE_ONLY = RetrievalConfig(lexical_weight=0, session_weight=0, time_weight=0)

# A rare token (a made-up serial number) among memories that talk about the same topic: the
# embedding of "K7Q-2291" carries almost no meaning, BM25 matches it exactly.
TOPICAL = [
    "My bike was stolen from the station last spring.",
    "I registered my new bicycle with the city bike registry.",
    "The bike shop said the frame is aluminium and quite light.",
    "I lock my bicycle with two locks now, one of them a heavy chain.",
    "The police report about the stolen bike is still open.",
    "I bought a red helmet for cycling to work.",
    "My bike's frame number is K7Q-2291.",
    "Cycling to work takes me about twenty minutes.",
]
RARE_QUERY = "which bike has number K7Q-2291?"


def _add_topical(cube: MemCube, user: str = "alice") -> list[str]:
    items = cube.add_many([{"content": c, "user_id": user} for c in TOPICAL])
    return [it.id for it in items]


# ------------------------------------------------------------------------------ pure units
def test_tokenize_stems_and_drops_stopwords() -> None:
    assert tokenize("When did Melanie's kids go painting?") == ["melani", "kid", "paint"]
    assert stem("adoptions") == stem("adoption")
    assert stem("painted") == stem("painting") == "paint"


def test_bm25_grown_one_document_at_a_time_scores_like_one_built_at_once() -> None:
    docs = ["the cat sat on the mat", "a zebra ran", "cats and zebras", "the mat was red", "red"]
    whole = BM25Index(docs)
    grown = BM25Index(docs[:1])
    for d in docs[1:]:
        grown.add([d])
    for q in ("cat mat", "zebra red", "sat"):
        assert grown.scores(tokenize(q)).tolist() == pytest.approx(
            whole.scores(tokenize(q)).tolist()
        )
    assert grown.idf("zebra") == whole.idf("zebra") and grown.avg_len == whole.avg_len


def test_bm25_prefers_rare_terms() -> None:
    idx = BM25Index(["the cat sat", "the cat ran", "a zebra ran"])
    scores = idx.scores(tokenize("zebra cat"))
    assert scores.argmax() == 2
    assert idx.idf("zebra") > idx.idf("cat") > 0


def test_where_evaluator_and_owner_extraction() -> None:
    where = {
        "$and": [
            {"live_user_id": {"$eq": "a"}},
            {"memory_type": {"$in": ["fact", "episodic"]}},
            {"$or": [{"md:city": "Paris"}, {"importance": {"$gte": 0.9}}]},
        ]
    }
    assert matches(where, {"live_user_id": "a", "memory_type": "fact", "md:city": "Paris"})
    assert not matches(where, {"live_user_id": "b", "memory_type": "fact", "md:city": "Paris"})
    assert not matches(where, {"live_user_id": "a", "memory_type": "fact", "importance": 0.5})
    assert matches(where, {"live_user_id": "a", "memory_type": "episodic", "importance": 0.95})
    assert scope_owners(where) == {"a"}
    assert scope_owners({"user_id": {"$in": ["a", "b"]}}) == {"a", "b"}
    assert scope_owners({"$or": [{"live_user_id": "a"}, {"md:share:b": "read"}]}) is None
    assert scope_owners({"memory_type": "fact"}) is None


def test_query_periods_and_day_format() -> None:
    ((start, end),) = query_periods("What did Ann do in May 2023?")
    assert datetime.fromtimestamp(start, timezone.utc) == datetime(2023, 5, 1, tzinfo=timezone.utc)
    assert datetime.fromtimestamp(end, timezone.utc) == datetime(2023, 6, 1, tzinfo=timezone.utc)
    assert len(query_periods("on 8 May, 2023 and during 2022")) == 2
    assert query_periods("What does Ann like?") == []
    assert format_day(datetime(2023, 5, 8, 13, 56)) == "8 May 2023"


def test_attach_context_stays_within_session() -> None:
    drafts = [
        {"content": "hi", "session_id": "s1", "metadata": {"speaker": "A"}},
        {"content": "What did you paint?", "session_id": "s1", "metadata": {"speaker": "A"}},
        {"content": "A sunset!", "session_id": "s1", "metadata": {"speaker": "B"}},
        {"content": "new day", "session_id": "s2", "metadata": {"speaker": "B"}},
    ]
    out = attach_context(drafts)
    assert out[2]["metadata"]["context"] == "A: What did you paint?"
    assert "context" not in out[0]["metadata"] and "context" not in out[3]["metadata"]
    assert "context" not in drafts[2]["metadata"]  # the input is not changed


def test_config_rejects_bad_values() -> None:
    with pytest.raises(InvalidInputError):
        RetrievalConfig(dense_weight=-1)
    with pytest.raises(InvalidInputError):
        RetrievalConfig(bm25_b=2)


# ------------------------------------------------------------------------------ with storage
def test_rare_word_found_by_hybrid_even_where_dense_misses(open_cube) -> None:
    # The embedder reads only the first 256 word pieces of a memory: a rare word past them is
    # invisible to the dense signal, and a look-alike word ("vexillology") wins there. BM25 sees
    # every word.
    filler = " ".join(["We planted tomatoes, beans and basil in the garden and watered them."] * 14)
    target = filler + " The locker code is vexilor."
    docs = [target, "The vexillology club meets on Mondays.", "I lost the key to my gym locker.",
            "The gym opens at six.", "My sister borrowed my laptop for school."]  # fmt: skip
    cube = open_cube()
    cube.add_many([{"content": d, "user_id": "alice"} for d in docs])
    hits = cube.search("vexilor", user_id="alice", k=3)
    assert hits[0].item.content == target
    assert hits[0].signals["lexical"] > 0 and "dense" in hits[0].signals
    cube.close()
    # The same data ranked by the dense signal alone does not put it first.
    dense = open_cube(retrieval=DENSE_ONLY)
    top = dense.search("vexilor", user_id="alice", k=3)
    assert top[0].item.content != target
    assert set(top[0].signals) == {"dense"}


def test_lexical_path_respects_scope_state_and_filters(cube: MemCube) -> None:
    _add_topical(cube, "alice")
    secret = cube.add("Bob's safe code is Zyxquor-88.", user_id="bob")
    tagged = cube.add("Zyxquor-88 is also the name of my boat.", user_id="alice", tags=["boat"])
    other = cube.add("Zyxquor-88 appears in my diary.", user_id="alice", session_id="s9")

    hits = cube.search("Zyxquor-88", user_id="alice", k=10)
    ids = {h.item.id for h in hits}
    assert secret.id not in ids and {tagged.id, other.id} <= ids
    assert all(h.item.user_id == "alice" for h in hits)
    assert [h.item.id for h in cube.search("Zyxquor-88", user_id="alice", k=5, tags=["boat"])] == [
        tagged.id
    ]
    assert [
        h.item.id for h in cube.search("Zyxquor-88", user_id="alice", k=5, session_id="s9")
    ] == [other.id]
    assert [h.item.id for h in cube.search("Zyxquor-88", user_id="bob", k=5)] == [secret.id]

    cube.delete(other.id)  # archived: hidden from search, on every signal
    assert other.id not in {h.item.id for h in cube.search("Zyxquor-88", user_id="alice", k=10)}
    with_archived = cube.search("Zyxquor-88", user_id="alice", k=10, include_archived=True)
    assert other.id in {h.item.id for h in with_archived}


def test_item_shares_reach_the_grantee_through_the_hybrid_path(cube: MemCube) -> None:
    shared = cube.add("The spare key is under the Qelvorn stone.", user_id="alice")
    private = cube.add("My Qelvorn diary is private.", user_id="alice")
    cube.add("Bob likes tea.", user_id="bob")
    assert not [
        h for h in cube.search("Qelvorn", user_id="bob", k=5) if "Qelvorn" in h.item.content
    ]
    cube.share("alice", "bob", ids=[shared.id])
    found = [h.item.id for h in cube.search("Qelvorn", user_id="bob", k=5)]
    assert shared.id in found and private.id not in found


def test_own_writes_invalidate_the_cache(cube: MemCube) -> None:
    ids = _add_topical(cube)
    assert cube.search("Quantavir festival", user_id="alice", k=1)[0].item.id in ids  # cached now
    new = cube.add("We went to the Quantavir festival in June.", user_id="alice")
    assert cube.search("Quantavir festival", user_id="alice", k=1)[0].item.id == new.id

    cube.update(new.id, content="We went to the Brellowick fair in June.")
    top = cube.search("Brellowick fair", user_id="alice", k=1)[0]
    assert top.item.id == new.id and top.item.version == 2
    assert top.signals["lexical"] > 0
    assert cube.search("Quantavir", user_id="alice", k=3)[0].signals["lexical"] == 0

    cube.delete(new.id, hard=True)
    assert new.id not in {h.item.id for h in cube.search("Brellowick fair", user_id="alice", k=10)}


def test_other_writers_are_seen_through_their_markers(backend: str | None, tmp_path: Path) -> None:
    """Two MemCube objects on one Chroma server stand for two processes: each has its own
    in-memory indexes, and a write by one must reach the other's search: at once when the writer
    publishes synchronously, after ``flush()`` or within ``publish_interval`` otherwise."""
    if backend is None:
        pytest.skip("an embedded cube admits one writer (file lock); shared stores use a server")
    first = MemCube.open(tmp_path / "cube", chroma_url=backend)
    strict = MemCube.open(tmp_path / "cube", chroma_url=backend, publish_interval=0)
    relaxed = MemCube.open(tmp_path / "cube", chroma_url=backend, publish_interval=0.2)
    try:
        _add_topical(first)
        assert first.search("Vantablorp", user_id="alice", k=1)  # builds first's cache
        assert "alice" in first.retriever.cached_users()
        added = strict.add("The Vantablorp concert was loud.", user_id="alice")
        assert first.search("Vantablorp", user_id="alice", k=1)[0].item.id == added.id
        strict.delete(added.id)
        assert added.id not in {
            h.item.id for h in first.search("Vantablorp", user_id="alice", k=10)
        }

        later = relaxed.add("The Vantablorp encore lasted an hour.", user_id="alice")
        relaxed.flush()  # the barrier: every other process's next search sees the add
        assert first.search("Vantablorp encore", user_id="alice", k=1)[0].item.id == later.id

        last = relaxed.add("Vantablorp tickets sold out in minutes.", user_id="alice")
        deadline = time.monotonic() + 5.0  # the outbox publishes within 0.2 s on its own
        while first.search("Vantablorp tickets", user_id="alice", k=1)[0].item.id != last.id:
            assert time.monotonic() < deadline, "the marker was never published"
            time.sleep(0.05)
    finally:
        relaxed.close()
        strict.close()
        first.close()


def test_markers_are_written_only_for_users_another_cube_reads(
    backend: str | None, tmp_path: Path
) -> None:
    if backend is None:
        pytest.skip("an embedded cube admits one writer (file lock); shared stores use a server")
    writer = MemCube.open(tmp_path / "cube", chroma_url=backend, publish_interval=0)
    reader = MemCube.open(tmp_path / "cube", chroma_url=backend, publish_interval=0)
    state = writer.retriever.state_collection

    def markers(user: str) -> list[dict]:
        return state.get(where={"marker_user": user}, include=["metadatas"])["metadatas"]

    try:
        writer.add("Bob's Ostrakon vase is blue.", user_id="bob")
        assert writer.search("Ostrakon", user_id="bob", k=1)  # its own reads need no marker
        assert markers("bob") == []
        # Nobody else read bob before this write: the reader's first load already holds it.
        assert reader.search("Ostrakon vase", user_id="bob", k=1)[0].item.content.startswith(
            "Bob's"
        )
        added = writer.add("Bob's Ostrakon lamp is red.", user_id="bob")
        assert [m["writer"] for m in markers("bob")] == [writer.retriever.writer]
        assert reader.search("Ostrakon lamp", user_id="bob", k=1)[0].item.id == added.id
        reader.close()  # withdraws its registration: no more markers for bob
        token = markers("bob")[0]["token"]
        writer.add("Bob's Ostrakon rug is green.", user_id="bob")
        assert markers("bob")[0]["token"] == token
    finally:
        reader.close()
        writer.close()


def test_own_adds_grow_the_cached_index_without_reloading(cube: MemCube) -> None:
    _add_topical(cube)
    assert cube.search("Quantavir", user_id="alice", k=1)  # loads alice's index once
    loads: list[str] = []
    real_load = cube.retriever._load
    cube.retriever._load = lambda uid: loads.append(uid) or real_load(uid)  # type: ignore[method-assign]
    new = cube.add_many(
        [{"content": f"Zorblat meeting number {i} ran late.", "user_id": "alice"} for i in range(3)]
    )
    hits = cube.search("Zorblat meeting", user_id="alice", k=3)
    assert {h.item.id for h in hits} == {it.id for it in new}
    assert all(h.signals["lexical"] > 0 for h in hits)
    assert loads == []  # appended in place
    cube.update(new[0].id, content="The Zorblat meeting was cancelled.")
    top = cube.search("Zorblat cancelled", user_id="alice", k=1)[0]
    assert top.item.id == new[0].id and top.item.version == 2
    assert loads == ["alice"]  # anything but a plain insert reloads


def test_grown_index_ranks_like_a_fresh_one(cube: MemCube, tmp_path: Path) -> None:
    _add_topical(cube)
    cube.search("Quantavir", user_id="alice", k=1)
    cube.add_many(
        [{"content": f"Trip {i} to Quantavir with {name}.", "user_id": "alice"}
         for i, name in enumerate(["Ann", "Bo", "Cy", "Di"])]
    )  # fmt: skip
    grown = cube.search("Quantavir trip with Bo", user_id="alice", k=5)
    cube.retriever.invalidate(None)  # drop the cache: the next search loads from Chroma
    fresh = cube.search("Quantavir trip with Bo", user_id="alice", k=5)
    assert [h.item.id for h in grown] == [h.item.id for h in fresh]
    assert [h.score for h in grown] == pytest.approx([h.score for h in fresh], abs=1e-6)


def test_time_named_in_query_boosts_memories_of_that_period(cube: MemCube) -> None:
    may = datetime(2023, 5, 10, tzinfo=timezone.utc)
    july = datetime(2023, 7, 10, tzinfo=timezone.utc)
    cube.add_many(
        [
            {"content": "We had a picnic in the park.", "user_id": "u", "event_time": july},
            {"content": "We had a picnic by the river.", "user_id": "u", "event_time": may},
            {"content": "I repaired the fence.", "user_id": "u", "event_time": may},
        ]
    )
    top = cube.search("What picnic did we have in May 2023?", user_id="u", k=3)
    assert top[0].item.content == "We had a picnic by the river."
    assert top[0].signals["time"] == 1.0


# ------------------------------------------------------------------------------ the benchmark
def _tiny_locomo(path: Path) -> Path:
    turns1 = [
        ("Ann", "D1:1", "Hi Bo! How was your week?"),
        ("Bo", "D1:2", "Busy! I painted something new. Guess what it was?"),
        ("Ann", "D1:3", "A portrait?"),
        ("Bo", "D1:4", "No, a sunrise over Lake Tarnow."),
        ("Ann", "D1:5", "I adopted a greyhound called Biscuit."),
    ]
    turns2 = [
        ("Bo", "D2:1", "How is Biscuit doing?"),
        ("Ann", "D2:2", "He loves the beach. We ran a charity 5k together."),
        ("Bo", "D2:3", "My sister moved to Porto for a job at a bakery."),
    ]
    data = [
        {
            "sample_id": "tiny-0",
            "conversation": {
                "speaker_a": "Ann",
                "speaker_b": "Bo",
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": [{"speaker": s, "dia_id": d, "text": t} for s, d, t in turns1],
                "session_2_date_time": "10:00 am on 2 June, 2023",
                "session_2": [{"speaker": s, "dia_id": d, "text": t} for s, d, t in turns2]
                + [
                    {
                        "speaker": "Bo",
                        "dia_id": "D2:4",
                        "text": "Look!",
                        "blip_caption": "a photo of a red kite",
                    }
                ],
            },
            "qa": [
                {
                    "question": "What did Bo paint?",
                    "evidence": ["D1:4"],
                    "category": 4,
                    "answer": "x",
                },
                {
                    "question": "What is the name of Ann's dog?",
                    "evidence": ["D:1:5"],
                    "category": 1,
                },
                {
                    "question": "When did Ann run a charity 5k?",
                    "evidence": ["D2:02"],
                    "category": 2,
                },
                {
                    "question": "Where did Bo's sister move?",
                    "evidence": ["D2:3; D1:1"],
                    "category": 3,
                },
                {"question": "What did Bo show in a photo?", "evidence": ["D2:4"], "category": 5},
                {"question": "No evidence here", "evidence": [], "category": 4},
            ],
        }
    ]
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.slow
def test_locomo_benchmark_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.locomo import load_locomo, main, normalize_evidence

    assert normalize_evidence(["D30:05", "D:11:26", "D8:6; D9:17", "D"]) == [
        "D30:5",
        "D11:26",
        "D8:6",
        "D9:17",
    ]
    data = _tiny_locomo(tmp_path / "tiny.json")
    (conv,) = load_locomo(data)
    assert len(conv.questions) == 5 and conv.turns[0].when is not None
    assert conv.turns[-1].text == "Look! [shares a photo of a red kite]"

    out = tmp_path / "out" / "locomo.json"
    result = main(["--data", str(data), "--k", "1,5,10", "--json", str(out), "--no-progress"])
    printed = capsys.readouterr().out.strip().splitlines()
    saved = json.loads(out.read_text())
    assert saved["systems"] == result["systems"]
    assert set(saved["systems"]) == {"memcube", "dense", "bm25"}
    for name, system in saved["systems"].items():
        assert set(system) == {
            "overall", "multi-hop", "temporal", "open-domain", "single-hop", "adversarial",
            "latency_ms", "ingest_s", "budget_recall", "budget_recall_by_category", "budget_memories",
        }, name  # fmt: skip
        assert set(system["budget_recall"]) == {"500", "1000", "2000"}
        assert system["overall"]["n"] == 5
        for cat in ("overall", "multi-hop", "temporal", "open-domain", "single-hop", "adversarial"):
            row = system[cat]
            assert set(row) == {"n", "R@1", "R@5", "R@10"}
            assert 0 <= row["R@1"] <= row["R@5"] <= row["R@10"] <= 100
        assert (
            system["latency_ms"]["p50"] > 0
            and system["latency_ms"]["p95"] >= system["latency_ms"]["p50"]
        )
        assert system["ingest_s"] >= 0
    memcube = saved["systems"]["memcube"]
    # "No, a sunrise over Lake Tarnow." is only findable through its context ("I painted...").
    assert memcube["single-hop"]["R@5"] == 100.0
    assert memcube["overall"]["R@10"] == 100.0  # 9 turns: everything is in the top 10
    assert out.with_suffix(".png").stat().st_size > 1000
    assert printed[-1] == f"memcube overall R@10: {memcube['overall']['R@10']:.1f}"


def test_cached_metadata_replaced_in_place_re_admits_only_what_changed() -> None:
    from memcube.plaintext.userindex import UserIndex

    idx = UserIndex(dimension=2, bm25_k1=1.2, bm25_b=0.75, own_lexical=False)
    mds = [{"user_id": "u", "state": "active", "n": i} for i in range(4)]
    idx.append([f"m{i}" for i in range(4)], mds, ["a"] * 4, ["a"] * 4, np.eye(2)[[0, 1, 0, 1]],
               [0.0] * 4, [""] * 4)  # fmt: skip
    where = {"state": {"$eq": "active"}}
    assert idx.admit(where).tolist() == [0, 1, 2, 3]
    idx.replace_metadata({"m1": {**mds[1], "state": "archived"}, "zz": {"state": "active"}})
    assert idx.admit(where).tolist() == [0, 2, 3]
    idx.replace_metadata({"m1": mds[1]})
    assert idx.admit(where).tolist() == [0, 1, 2, 3]


def test_search_hits_carry_flushed_usage_counts(cube: MemCube) -> None:
    item = cube.add("the usage counter memory", user_id="u")
    cube.search("usage counter", user_id="u", k=1)
    cube.search("usage counter", user_id="u", k=1)
    cube.flush_usage()
    hit = cube.search("usage counter", user_id="u", k=1, count_usage=False)[0]
    assert hit.item.id == item.id and hit.item.access_count == 2
    assert hit.item.version == 1
