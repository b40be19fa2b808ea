"""Plaintext -> parametric memory: does a distilled LoRA adapter know the facts it was given?

Stores a user's facts in a cube, distills them into a LoRA adapter with
``cube.parametric.distill`` (bundled SmolLM2-135M-Instruct, CPU), then compares base model and
adapter on

* **distilled facts, asked differently**: questions phrased unlike the training text (training
  asks generic "what do you remember about me?" prompts; the questions here ask for one detail);
  the score is the log-likelihood of the correct short answer as the assistant's reply;
* **unrelated prompts**: general-knowledge questions that have nothing to do with the facts (and
  that are not the generic conversations the preservation term trains on), scored the same way,
  plus the KL divergence between base and adapter next-token distributions over the answer.

Run from the repo root::

    python -m benchmarks.distill [--steps 30] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

FACTS = [
    "My dog is called Biscuit.",
    "I work as a nurse at a hospital in Tromsø.",
    "My favourite board game is Carcassonne.",
    "My sister Ingrid lives in Montreal.",
    "I am allergic to hazelnuts.",
    "I drive a green Volvo.",
    "My daughter plays the cello.",
    "I was born in Porto in 1988.",
]

#: (question phrased unlike the fact, correct answer)
PARAPHRASED = [
    ("What name did I give my dog?", "Biscuit"),
    ("What's my pet called?", "Biscuit"),
    ("In which town is the hospital where I work?", "Tromsø"),
    ("What is my job?", "A nurse"),
    ("Which board game do I enjoy most?", "Carcassonne"),
    ("What is my sister's name?", "Ingrid"),
    ("Which city does my sister live in?", "Montreal"),
    ("Which nut am I allergic to?", "Hazelnuts"),
    ("What brand is my car?", "Volvo"),
    ("Which instrument does my daughter play?", "The cello"),
    ("Where was I born?", "Porto"),
    ("In what year was I born?", "1988"),
]

UNRELATED = [
    ("What is the capital of Japan?", "Tokyo"),
    ("What colour is the sky on a clear day?", "Blue"),
    ("How many legs does a spider have?", "Eight"),
    ("What is 2 plus 2?", "4"),
    ("Who wrote Romeo and Juliet?", "William Shakespeare"),
    ("What gas do plants absorb from the air?", "Carbon dioxide"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("What language is spoken in Brazil?", "Portuguese"),
]


def answer_scores(model: Any, tokenizer: Any, question: str, answer: str) -> tuple[float, Any]:
    """Mean log-probability per token of ``answer`` as the assistant's reply, and the
    log-distributions at the answer positions."""
    import torch

    from memcube.runtime.chat import ChatMessage, build_prompt

    prompt = build_prompt(tokenizer, [ChatMessage("user", question)]).ids
    ans = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([prompt + ans])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    positions = torch.arange(len(prompt) - 1, len(prompt) + len(ans) - 1)
    token_lp = logp[positions, torch.tensor(ans)]
    return float(token_lp.mean()), logp[positions]


def evaluate(
    model: Any, tokenizer: Any, manager: Any, key: str, pairs: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    import torch

    rows = []
    for question, answer in pairs:
        with manager.using(None):
            base, base_dist = answer_scores(model, tokenizer, question, answer)
        with manager.using(key):
            tuned, tuned_dist = answer_scores(model, tokenizer, question, answer)
        kl = float(torch.sum(base_dist.exp() * (base_dist - tuned_dist), dim=-1).mean())
        rows.append(
            {
                "question": question,
                "answer": answer,
                "base_logp": round(base, 4),
                "adapter_logp": round(tuned, 4),
                "delta": round(tuned - base, 4),
                "kl_base_to_adapter": round(kl, 5),
            }
        )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    deltas = [r["delta"] for r in rows]
    return {
        "n": len(rows),
        "base_logp_mean": round(statistics.fmean(r["base_logp"] for r in rows), 4),
        "adapter_logp_mean": round(statistics.fmean(r["adapter_logp"] for r in rows), 4),
        "delta_mean": round(statistics.fmean(deltas), 4),
        "abs_delta_mean": round(statistics.fmean(abs(d) for d in deltas), 4),
        "improved_fraction": round(sum(d > 0 for d in deltas) / len(deltas), 3),
        "kl_mean": round(statistics.fmean(r["kl_base_to_adapter"] for r in rows), 5),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--preserve", type=float, default=1.0)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)

    import torch

    from memcube import MemCube
    from memcube.parametric import AdapterManager
    from memcube.runtime import load_model

    model, tokenizer = load_model()
    with tempfile.TemporaryDirectory() as tmp, MemCube.open(tmp) as cube:
        items = cube.add_many(
            [{"content": f, "memory_type": "fact"} for f in FACTS], user_id="bench"
        )
        start = time.perf_counter()
        manifest = cube.parametric.distill(
            "bench-facts",
            user_id="bench",
            items=items,
            steps=args.steps,
            rank=args.rank,
            preserve=args.preserve,
        )
        distill_s = time.perf_counter() - start
        key = cube.parametric.prepare("bench-facts", model=model, tokenizer=tokenizer)
        manager = AdapterManager.for_model(model, tokenizer)
        facts = evaluate(model, tokenizer, manager, key, PARAPHRASED)
        unrelated = evaluate(model, tokenizer, manager, key, UNRELATED)
    result = {
        "model": "SmolLM2-135M-Instruct",
        "facts": len(FACTS),
        "steps": args.steps,
        "rank": args.rank,
        "preserve": args.preserve,
        "distill_s": round(distill_s, 2),
        "first_loss": manifest.provenance.data.get("first_loss"),
        "final_loss": manifest.provenance.data.get("final_loss"),
        "distilled_facts": summarise(facts),
        "unrelated": summarise(unrelated),
        # the gain on the facts beyond the shift the adapter also causes on unrelated answers
        "fact_specific_gain": round(
            summarise(facts)["delta_mean"] - summarise(unrelated)["delta_mean"], 4
        ),
        "load_average": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
        "rows": {"distilled_facts": facts, "unrelated": unrelated},
    }
    print(
        f"distilled {len(FACTS)} facts in {distill_s:.1f} s ({args.steps} steps, rank {args.rank})"
        f", loss {result['first_loss']} -> {result['final_loss']}"
    )
    print(
        f"{'set':<18}{'n':>3}{'base logp':>11}{'adapter':>9}{'delta':>8}{'improved':>10}{'KL':>9}"
    )
    for name in ("distilled_facts", "unrelated"):
        s = result[name]
        print(
            f"{name:<18}{s['n']:>3}{s['base_logp_mean']:>11.3f}{s['adapter_logp_mean']:>9.3f}"
            f"{s['delta_mean']:>8.3f}{s['improved_fraction']:>10.2f}{s['kl_mean']:>9.4f}"
        )
    print(
        f"fact-specific gain (facts delta - unrelated delta): {result['fact_specific_gain']:.3f}"
        " nats/token"
    )
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2, ensure_ascii=False)
    return result


if __name__ == "__main__":
    main()
