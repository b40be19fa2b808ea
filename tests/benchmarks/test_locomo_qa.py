"""benchmarks.locomo_qa (answers from the memory block, judged) and benchmarks.locomo's
budget_recall (evidence inside prompt blocks of a token budget), on tiny LoCoMo-format files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.locomo_qa import (
    BUNDLED_JUDGE_NOTE,
    chat_model,
    main,
    normalize_answer,
    parse_judgement,
    token_f1,
)


def _write(path: Path, turns: list[tuple[str, str, str]], qa: list[dict[str, Any]]) -> Path:
    sample = {
        "sample_id": "tiny",
        "conversation": {
            "speaker_a": "Ann",
            "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": s, "dia_id": d, "text": t} for s, d, t in turns],
        },
        "qa": qa,
    }
    path.write_text(json.dumps([sample]), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------- scoring
def test_token_f1_known_answers() -> None:
    # "in May 2023" vs "7 May 2023": 2 common tokens, precision 2/3, recall 2/3.
    assert token_f1("in May 2023", "7 May 2023") == pytest.approx(2 / 3)
    # Articles, case and punctuation do not count; repeated tokens count once per occurrence.
    assert token_f1("The Pepper!", "pepper") == 1.0
    assert token_f1("pepper pepper", "pepper") == pytest.approx(2 * 0.5 * 1 / 1.5)
    # precision 1/4, recall 1/1 -> F1 = 2 * 0.25 / 1.25 = 0.4 ("a" is dropped: 1/3 -> 0.5)
    assert token_f1("big beagle called Pepper", "Pepper") == pytest.approx(0.4)
    assert token_f1("a beagle called Pepper", "Pepper") == pytest.approx(0.5)
    assert token_f1("Lisbon", "Porto") == 0.0
    assert token_f1("", "Porto") == 0.0
    assert normalize_answer("An apple, a pear & the fig.") == ["apple", "pear", "fig"]


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("CORRECT", True),
        ("correct.", True),
        ('{"label": "CORRECT"}', True),
        ("WRONG", False),
        ("Incorrect", False),
        ("WRONG: the correct answer is Lisbon", False),
        ("The answer is correct", True),
        ("", None),
        ("I cannot tell", None),
        ("CORRECTLY wrongly", None),  # no verdict word on its own
    ],
)
def test_parse_judgement(reply: str, verdict: bool | None) -> None:
    assert parse_judgement(reply) is verdict


def test_model_specs() -> None:
    with pytest.raises(SystemExit, match="bundled"):
        chat_model("gpt-4o", max_tokens=8)
    with pytest.raises(SystemExit):
        chat_model("openai:llama3", max_tokens=8)  # no URL
    pytest.importorskip("langchain_openai")
    model = chat_model("openai:qwen2.5:7b@http://127.0.0.1:11434/v1", max_tokens=8)
    assert type(model).__name__ == "ChatOpenAI"
    assert model.model_name == "qwen2.5:7b"  # type: ignore[attr-defined]
    assert model.openai_api_base == "http://127.0.0.1:11434/v1"  # type: ignore[attr-defined]
    assert model.max_tokens == 8 and model.temperature == 0.0  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------- end to end
TURNS = [
    ("Ann", "D1:1", "My sister Mia moved to Lisbon last spring."),
    ("Bo", "D1:2", "Cool! I painted a sunrise over Lake Tarnow yesterday."),
    ("Ann", "D1:3", "I adopted a beagle puppy and called her Pepper."),
    ("Bo", "D1:4", "I ran a charity 5k in Porto with my brother."),
]
QA = [
    {"question": "What is the name of Ann's dog?", "answer": "Pepper", "evidence": ["D1:3"],
     "category": 4},
    {"question": "Where does Ann's sister live?", "answer": "Lisbon", "evidence": ["D1:1"],
     "category": 1},
    {"question": "When did Bo paint a sunrise?", "answer": "7 May 2023", "evidence": ["D1:2"],
     "category": 2},
    {"question": "Would Bo enjoy a marathon?", "answer": "Likely yes", "evidence": ["D1:4"],
     "category": 3},
    {"question": "What did Bo call his puppy?", "adversarial_answer": "Pepper",
     "evidence": ["D1:3"], "category": 5},
]  # fmt: skip


def test_locomo_qa_bundled_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "tiny.json", TURNS, QA)
    out = tmp_path / "out" / "qa.json"
    result = main(["--data", str(data), "--answer-model", "bundled", "--json", str(out),
                   "--no-progress", "--max-tokens", "12", "--judge-max-tokens", "4"])  # fmt: skip
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["answer_model"] == saved["judge_model"] == "bundled"
    assert saved["budget"] == 1000
    # Categories 1-4 once each; the adversarial question is not answered.
    assert list(saved["categories"]) == ["multi-hop", "temporal", "open-domain", "single-hop"]
    assert all(c["n"] == 1 for c in saved["categories"].values())
    assert saved["overall"]["n"] == 4 and len(saved["questions"]) == 4
    rows = saved["questions"]
    for row in rows:
        assert row["f1"] == pytest.approx(token_f1(row["answer"], row["gold"]), abs=1e-4)
        assert row["correct"] is (parse_judgement(row["judge"]) is True)
        # Four short turns: all of them fit in the block, evidence included.
        assert row["memories"] == 4 and row["evidence_recall"] == 1.0
        assert 0 < row["context_tokens"] <= 1000 and row["latency_s"] > 0
        cat = saved["categories"][row["category"]]
        assert cat["j"] == (100.0 if row["correct"] else 0.0)
        assert cat["f1"] == pytest.approx(100 * row["f1"], abs=0.01)
    overall = saved["overall"]
    assert overall["j"] == pytest.approx(100 * sum(r["correct"] for r in rows) / 4)
    assert overall["f1"] == pytest.approx(100 * sum(r["f1"] for r in rows) / 4, abs=0.01)
    assert saved["context_tokens_per_question"] == pytest.approx(
        sum(r["context_tokens"] for r in rows) / 4, abs=0.05
    )
    assert saved["judge_unparsed"] == sum(parse_judgement(r["judge"]) is None for r in rows)
    lat = saved["latency_s"]
    assert 0 < lat["median"] <= lat["p95"]
    printed = capsys.readouterr().out
    assert "single-hop" in printed and "answer latency median" in printed
    # A J score from the bundled judge always says that it is not comparable.
    assert saved["judge_note"] == BUNDLED_JUDGE_NOTE and "no real judge" in printed


def test_budget_recall_counts_evidence_inside_the_block(tmp_path: Path) -> None:
    from benchmarks.locomo import main as locomo_main

    # One memory; one question whose evidence it is, one with half its evidence missing from
    # the conversation (counted as 0.5, as R@k counts it).
    data = _write(
        tmp_path / "one.json",
        [("Ann", "D1:1", "I adopted a beagle puppy and called her Pepper.")],
        [
            {"question": "What is the name of Ann's dog?", "evidence": ["D1:1"], "category": 4},
            {"question": "What breed is Pepper?", "evidence": ["D1:1", "D1:7"], "category": 1},
        ],
    )
    out = tmp_path / "locomo.json"
    result = locomo_main(["--data", str(data), "--json", str(out), "--no-progress",
                          "--budgets", "2000,5,500,1000"])  # fmt: skip
    assert json.loads(out.read_text())["systems"] == result["systems"]
    assert result["config"]["budgets"] == [5, 500, 1000, 2000]
    for name, system in result["systems"].items():
        # 5 tokens: not even the header fits, so the block is empty.
        assert system["budget_recall"] == {"5": 0.0, "500": 75.0, "1000": 75.0, "2000": 75.0}, name
        by_cat = system["budget_recall_by_category"]
        assert by_cat["single-hop"] == {"5": 0.0, "500": 100.0, "1000": 100.0, "2000": 100.0}
        assert by_cat["multi-hop"] == {"5": 0.0, "500": 50.0, "1000": 50.0, "2000": 50.0}
        assert by_cat["overall"] == system["budget_recall"]
        assert system["budget_memories"] == {"5": 0.0, "500": 1.0, "1000": 1.0, "2000": 1.0}
        assert system["overall"]["R@1"] == 75.0  # the same per-question definition
