"""Parametric memory: does a distilled LoRA adapter answer questions about its facts closed-book?

For each model (SmolLM2-135M-Instruct and Gemma-3-270M by default, CPU): 50 synthetic personal
facts are stored as memories in a temporary cube and distilled into a LoRA adapter with
``cube.parametric.distill``. Then every fact's ``question`` and ``paraphrases`` (none of which the
training data contains, checked below) are asked *closed-book* (no memories in the prompt,
greedy, a few tokens) of the base model and of the adapter; an answer is correct when it
contains the fact's ``answer`` (case-insensitive). Also measured: the mean next-token KL
divergence (base -> adapter) on 50 unrelated prompts (general knowledge and chit-chat, none of
them a training anchor), over the base model's own greedy reply, and the training time.

Targets (2 CPU cores, each model): base accuracy <= 5 %, adapter accuracy >= 50 %, unrelated KL
<= 0.1 nats, training <= 600 s.

Run from the repo root::

    python -m benchmarks.distill [--model NAME] [--data FILE] [--steps N] [--set FIELD=JSON]
        [--json OUT]

``--data FILE``: a JSON list of ``{"fact", "question", "paraphrases", "answer"}`` records to use
instead of the built-in facts. Output (``--json``)::

    {"models": {MODEL: {"facts": 50, "base_accuracy": %, "adapter_accuracy": %,
                        "unrelated_kl": nats, "train_s": s, ...}}}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

MODELS = ("SmolLM2-135M-Instruct", "gemma-3-270m")

#: (fact, question, paraphrases, answer). Questions and paraphrases are never trained on.
FACTS: list[tuple[str, str, list[str], str]] = [
    (
        "My dog is called Biscuit.",
        "What name does my dog answer to?",
        ["Remind me of my dog's name.", "How is my dog called?"],
        "Biscuit",
    ),
    (
        "My cat is named Pixel.",
        "What name did I give my cat?",
        ["Remind me of my cat's name.", "My cat goes by what name?"],
        "Pixel",
    ),
    (
        "I work as a nurse at a hospital in Tromsø.",
        "In which town is the hospital where I work?",
        ["What city do I work in?", "My workplace is in which city?"],
        "Tromsø",
    ),
    (
        "My sister Ingrid lives in Montreal.",
        "Which city is my sister Ingrid living in?",
        ["In what city does my sister Ingrid have her home?", "Where is my sister Ingrid based?"],
        "Montreal",
    ),
    (
        "I am allergic to hazelnuts.",
        "Which nut am I allergic to?",
        [
            "What food gives me an allergic reaction?",
            "What must I avoid eating because of my allergy?",
        ],
        "hazelnut",
    ),
    (
        "I drive a green Volvo.",
        "What brand is my car?",
        ["Which car make do I own?", "What kind of car is mine?"],
        "Volvo",
    ),
    (
        "My daughter plays the cello.",
        "Which instrument does my daughter play?",
        ["What musical instrument is my daughter learning?", "My daughter plays which instrument?"],
        "cello",
    ),
    (
        "I was born in Porto.",
        "In which city was I born?",
        ["What is my hometown?", "Where is my birthplace?"],
        "Porto",
    ),
    (
        "My favourite board game is Carcassonne.",
        "Which board game do I enjoy the most?",
        ["What board game do I love playing?", "Name my top board game."],
        "Carcassonne",
    ),
    (
        "My brother Tomas works as a pilot.",
        "What is my brother Tomas's job?",
        ["What does my brother Tomas do for work?", "What profession does my brother Tomas have?"],
        "pilot",
    ),
    (
        "My husband is called Dmitri.",
        "What is my husband's first name?",
        ["Who am I married to?", "Remind me of my husband's name."],
        "Dmitri",
    ),
    (
        "My son goes to Maple Grove School.",
        "Which school does my son attend?",
        ["What is the name of my son's school?", "Where does my son study?"],
        "Maple Grove",
    ),
    (
        "My favourite colour is teal.",
        "Which colour do I like most?",
        ["What colour is my favourite?", "Name the colour I prefer."],
        "teal",
    ),
    (
        "I have a parrot named Kiwi.",
        "What name does my parrot go by?",
        ["Remind me of my parrot's name.", "How is my parrot called?"],
        "Kiwi",
    ),
    (
        "My favourite food is ramen.",
        "What dish do I love eating most?",
        ["Which food is my favourite?", "What meal do I like best?"],
        "ramen",
    ),
    (
        "I play the bagpipes.",
        "Which instrument do I play?",
        ["What musical instrument can I play?", "What instrument do I practise?"],
        "bagpipe",
    ),
    (
        "My mother lives in Antofagasta.",
        "Which city is my mother living in?",
        ["Where is my mother's home?", "In what city does my mother reside?"],
        "Antofagasta",
    ),
    (
        "My grandfather was a lighthouse keeper.",
        "What was my grandfather's job?",
        ["What did my grandfather do for a living?", "What work did my grandfather do?"],
        "lighthouse",
    ),
    (
        "My favourite sport is curling.",
        "Which sport do I enjoy most?",
        ["What is the sport I love?", "Name my favourite sport."],
        "curling",
    ),
    (
        "I am learning Icelandic.",
        "Which language am I studying?",
        ["What language am I trying to learn?", "What new language am I learning these days?"],
        "Icelandic",
    ),
    (
        "I ride a yellow Vespa scooter.",
        "What brand is my scooter?",
        ["What make of scooter do I ride?", "Which scooter brand do I own?"],
        "Vespa",
    ),
    (
        "My best friend is called Priya.",
        "Who is my best friend?",
        ["What is my best friend's name?", "Remind me of my best friend's name."],
        "Priya",
    ),
    (
        "My wedding anniversary is on 12 June.",
        "What date is my wedding anniversary?",
        [
            "On which day do I celebrate my wedding anniversary?",
            "When do I celebrate my wedding anniversary?",
        ],
        "12 June",
    ),
    (
        "I moved to Edinburgh in 2015.",
        "Which city did I move to?",
        ["Where did I relocate to?", "What city did I move to?"],
        "Edinburgh",
    ),
    (
        "My niece Aurora studies marine biology.",
        "What subject does my niece Aurora study?",
        [
            "What is my niece Aurora studying at university?",
            "Which field is my niece Aurora studying?",
        ],
        "marine biology",
    ),
    (
        "I am allergic to sesame.",
        "Which seed am I allergic to?",
        ["What ingredient gives me an allergy?", "Which food triggers my allergy?"],
        "sesame",
    ),
    (
        "My favourite author is Terry Pratchett.",
        "Whose books do I like best?",
        ["Which writer do I enjoy reading most?", "Who is the author I love?"],
        "Pratchett",
    ),
    (
        "My father is a beekeeper.",
        "What is my father's job?",
        ["What does my father do for a living?", "What work does my father do?"],
        "beekeeper",
    ),
    (
        "I grew up in Ballarat.",
        "In which town did I spend my childhood?",
        ["Where was I raised?", "What is the town of my childhood?"],
        "Ballarat",
    ),
    (
        "My team at work uses Haskell.",
        "Which programming language does my team use?",
        [
            "What language is my team at work coding in?",
            "What programming language do we use at work?",
        ],
        "Haskell",
    ),
    (
        "My favourite film is Paddington.",
        "Which movie do I like most?",
        ["What film do I love best?", "Name the movie I enjoy most."],
        "Paddington",
    ),
    (
        "I volunteer at an animal shelter on Saturdays.",
        "On which day do I volunteer?",
        ["When do I do my volunteering?", "What day of the week do I help at the shelter?"],
        "Saturday",
    ),
    (
        "My grandmother's name is Rosalind.",
        "What is my grandmother called?",
        ["Who is my grandmother?", "How is my grandmother named?"],
        "Rosalind",
    ),
    (
        "I collect vintage typewriters.",
        "What do I collect as a hobby?",
        ["What kind of things do I collect?", "Which old machines do I collect?"],
        "typewriter",
    ),
    (
        "My flat is in the Shoreditch area.",
        "Which neighbourhood is my flat in?",
        ["In what area do I live?", "Which district is my flat located in?"],
        "Shoreditch",
    ),
    (
        "My boss is called Mr Okafor.",
        "What is the name of my manager?",
        ["Who is my boss?", "What's my boss's surname?"],
        "Okafor",
    ),
    (
        "My favourite drink is mango lassi.",
        "What beverage do I like best?",
        ["Which drink do I love most?", "What do I like to drink most?"],
        "lassi",
    ),
    (
        "My son is afraid of balloons.",
        "What does my son fear?",
        ["What scares my son?", "What is my son frightened of?"],
        "balloon",
    ),
    (
        "I speak fluent Tagalog.",
        "Which language do I speak fluently?",
        ["What language am I fluent in?", "Besides English, what language do I speak?"],
        "Tagalog",
    ),
    (
        "My wife works as a dentist in Leeds.",
        "What is my wife's profession?",
        ["What does my wife do for a living?", "What is my wife's job?"],
        "dentist",
    ),
    (
        "My bicycle is a Brompton.",
        "What brand is my bike?",
        ["Which make of bicycle do I ride?", "What kind of bike do I have?"],
        "Brompton",
    ),
    (
        "My birthday is on 3 October.",
        "On what day is my birthday?",
        ["What date was I born on?", "When do I celebrate my birthday?"],
        "3 October",
    ),
    (
        "My hamster is called Nugget.",
        "What name does my hamster go by?",
        ["Remind me of my hamster's name.", "How is my hamster named?"],
        "Nugget",
    ),
    (
        "I teach chemistry at a school in Galway.",
        "What subject do I teach?",
        ["Which school subject do I give lessons in?", "What do I teach my students?"],
        "chemistry",
    ),
    (
        "My uncle owns a bakery in Ghent.",
        "What business does my uncle own?",
        ["What kind of shop does my uncle have?", "What does my uncle run?"],
        "bakery",
    ),
    (
        "My favourite fruit is lychee.",
        "Which fruit do I like most?",
        ["What is my favourite kind of fruit?", "Name the fruit I love best."],
        "lychee",
    ),
    (
        "My neighbour is called Gustavo.",
        "Who is my neighbour?",
        ["What is my neighbour's first name?", "Remind me of my neighbour's name."],
        "Gustavo",
    ),
    (
        "I support Bayern Munich.",
        "Which football club do I support?",
        ["What is my favourite football team?", "Which team do I cheer for?"],
        "Bayern",
    ),
    (
        "My first car was a Fiat Panda.",
        "Which car did I own first?",
        ["What model was my very first car?", "What brand was my first car?"],
        "Panda",
    ),
    (
        "My daughter's name is Matilda.",
        "What is my daughter called?",
        ["Who is my daughter?", "How is my daughter named?"],
        "Matilda",
    ),
]

#: Prompts unrelated to the facts (and not among the training anchors), for the KL measure.
UNRELATED = [
    "What is the capital of Japan?",
    "What colour is the sky on a clear day?",
    "How many legs does a spider have?",
    "What is 2 plus 2?",
    "Who wrote Romeo and Juliet?",
    "What gas do plants absorb from the air?",
    "What is the largest planet in our solar system?",
    "What language is spoken in Brazil?",
    "Good morning! Did you sleep well?",
    "Can you tell me a fun fact?",
    "What is the freezing point of water?",
    "How many hours are in a day?",
    "What is the tallest mountain in the world?",
    "Who was the first person to walk on the Moon?",
    "What is the chemical symbol for gold?",
    "Write a short poem about rain.",
    "What is your favourite colour?",
    "How do you make a cup of tea?",
    "What is the square root of 81?",
    "Name three types of fruit.",
    "What is photosynthesis?",
    "Why is the sea salty?",
    "How far is the Moon from the Earth?",
    "What do cows drink?",
    "Explain gravity in one sentence.",
    "What is the longest river in Africa?",
    "Give me a synonym for happy.",
    "How many strings does a violin have?",
    "What are the three states of matter?",
    "What is the currency of the United Kingdom?",
    "What's a good name for a goldfish?",
    "Tell me something interesting about owls.",
    "What is the main ingredient of guacamole?",
    "How do airplanes stay in the air?",
    "What year did World War II end?",
    "Who invented the telephone?",
    "What should I do if I feel bored?",
    "How many sides does a hexagon have?",
    "What is the opposite of ancient?",
    "Describe a sunset in a few words.",
    "What is the speed of light?",
    "Which animal is known as the king of the jungle?",
    "Can you suggest a weekend activity?",
    "What is the smallest prime number?",
    "What does DNA stand for?",
    "How are rainbows formed?",
    "What is the capital of Australia?",
    "Say hello in French.",
    "What is a haiku?",
    "What is the hardest natural substance?",
]

#: Per-model settings on top of DistillConfig's defaults (Gemma-3-270M, twice the size, moved
#: its unrelated replies more at the default rate: KL 0.21 at 2e-3, 0.06 at 1e-3).
RECIPES: dict[str, dict[str, Any]] = {
    "SmolLM2-135M-Instruct": {},
    "gemma-3-270m": {"lr": 1e-3},
}

NEW_TOKENS = 12
KL_TOKENS = 16


def load_facts(path: str | None) -> list[dict[str, Any]]:
    """The built-in facts, or a JSON list of ``{"fact", "question", "paraphrases", "answer"}``."""
    if path is None:
        return [{"fact": f, "question": q, "paraphrases": p, "answer": a} for f, q, p, a in FACTS]
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not data:
        raise SystemExit(f"{path}: expected a non-empty JSON list of fact records")
    for i, rec in enumerate(data):
        ok = (
            isinstance(rec, dict)
            and all(
                isinstance(rec.get(k), str) and rec[k].strip()
                for k in ("fact", "question", "answer")
            )
            and isinstance(rec.get("paraphrases"), list)
            and all(isinstance(p, str) and p.strip() for p in rec["paraphrases"])
        )
        if not ok:
            raise SystemExit(f"{path}: record {i} needs fact, question, answer and paraphrases")
    return data


def check_unseen(facts: list[dict[str, Any]]) -> int:
    """Assert that no asked question is a training question; returns how many were generated."""
    from memcube.parametric.curriculum import build_curriculum, normalise_question

    trained = {normalise_question(e.question) for e in build_curriculum([f["fact"] for f in facts])}
    for rec in facts:
        for q in [rec["question"], *rec["paraphrases"]]:
            assert normalise_question(q) not in trained, f"asked question is in training: {q!r}"
    return len(trained)


def _left_pad(rows: list[list[int]], pad_id: int) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r)
        mask[i, width - len(r) :] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def prompt_ids(tokenizer: Any, question: str) -> list[int]:
    from memcube.runtime.chat import ChatMessage, build_prompt

    return build_prompt(tokenizer, [ChatMessage("user", question)]).ids


def generate(model: Any, tokenizer: Any, questions: list[str], batch: int = 25) -> list[list[int]]:
    """Greedy replies (token ids, up to the end of turn) to ``questions``, closed-book."""
    import torch

    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    eos = model.generation_config.eos_token_id
    stops = {eos} if isinstance(eos, int) else set(eos or [])
    out: list[list[int]] = []
    for i in range(0, len(questions), batch):
        rows = [prompt_ids(tokenizer, q) for q in questions[i : i + batch]]
        ids, mask, _ = _left_pad(rows, pad_id)
        with torch.no_grad():
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                pad_token_id=pad_id,
            )
        for row in gen[:, ids.shape[1] :].tolist():
            reply: list[int] = []
            for t in row:
                if t in stops:
                    break
                reply.append(t)
            out.append(reply)
    return out


def unrelated_kl(
    model: Any, tokenizer: Any, manager: Any, key: str, prompts: list[str] = UNRELATED
) -> list[float]:
    """Per prompt (:data:`UNRELATED` by default): mean KL(base || adapter) of the next-token
    distributions over the base model's greedy reply (its first token included)."""
    import torch

    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    with manager.using(None):
        replies = generate(model, tokenizer, prompts)
    kls: list[float] = []
    for i in range(0, len(prompts), 25):
        rows, spans = [], []
        for q, r in zip(prompts[i : i + 25], replies[i : i + 25], strict=True):
            p = prompt_ids(tokenizer, q)
            r = r[:KL_TOKENS] or [tokenizer.eos_token_id]
            rows.append(p + r)
            spans.append(len(r))
        ids, mask, pos = _left_pad(rows, pad_id)
        keep = max(spans) + 1
        dists = []
        for adapter in (None, key):
            with manager.using(adapter), torch.no_grad():
                logits = (
                    model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep)
                    .logits[:, :-1]
                    .float()
                )
            dists.append(torch.log_softmax(logits, dim=-1))
        base, tuned = dists
        kl = (base.exp() * (base - tuned)).sum(-1)  # [rows, keep-1]
        for row, n in enumerate(spans):
            kls.append(float(kl[row, kl.shape[1] - n :].mean()))
    return kls


def run_model(name: str, facts: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from memcube import MemCube
    from memcube.parametric import AdapterManager
    from memcube.parametric.anchors import anchor_prompts
    from memcube.parametric.distill import ANCHORS, DistillConfig
    from memcube.runtime import load_model

    model, tokenizer = load_model(name)
    overrides = dict(RECIPES.get(name, {}))
    for k, v in (
        ("steps", args.steps),
        ("rank", args.rank),
        ("lr", args.lr),
        ("preserve", args.preserve),
    ):
        if v is not None:
            overrides[k] = v
    for pair in args.set or []:
        field, _, value = pair.partition("=")
        overrides[field] = json.loads(value)
    cfg = DistillConfig(**overrides)
    asked = [
        (i, q, kind)
        for i, rec in enumerate(facts)
        for kind, q in [("question", rec["question"])]
        + [("paraphrase", p) for p in rec["paraphrases"]]
    ]
    questions = [q for _, q, _ in asked]
    with tempfile.TemporaryDirectory() as tmp, MemCube.open(tmp) as cube:
        items = cube.add_many(
            [{"content": rec["fact"], "memory_type": "fact"} for rec in facts], user_id="bench"
        )
        start = time.perf_counter()
        manifest = cube.parametric.distill(
            "bench-facts",
            user_id="bench",
            items=items,
            config=cfg,
            model=model,
            tokenizer=tokenizer,
            progress=not args.quiet,
        )
        train_s = time.perf_counter() - start
        key = cube.parametric.prepare("bench-facts", model=model, tokenizer=tokenizer)
        manager = AdapterManager.for_model(model, tokenizer)
        t0 = time.perf_counter()
        with manager.using(None):
            base_out = generate(model, tokenizer, questions)
        with manager.using(key):
            tuned_out = generate(model, tokenizer, questions)
        kls = unrelated_kl(model, tokenizer, manager, key)
        # The same measure on prompts the KL term trained on: the gap to ``kls`` is how far
        # the preservation generalises.
        trained = anchor_prompts([rec["fact"] for rec in facts], first=[q for q, _ in ANCHORS])
        anchor_kls = unrelated_kl(model, tokenizer, manager, key, trained[:50])
        eval_s = time.perf_counter() - t0
    rows = []
    for (i, q, kind), b, t in zip(asked, base_out, tuned_out, strict=True):
        answer = facts[i]["answer"].lower()
        btxt = tokenizer.decode(b, skip_special_tokens=True).strip()
        ttxt = tokenizer.decode(t, skip_special_tokens=True).strip()
        rows.append(
            {
                "fact": i,
                "kind": kind,
                "question": q,
                "answer": facts[i]["answer"],
                "base": btxt,
                "adapter": ttxt,
                "base_ok": answer in btxt.lower(),
                "adapter_ok": answer in ttxt.lower(),
            }
        )

    def pct(key: str, kind: str | None = None) -> float:
        sel = [r for r in rows if kind is None or r["kind"] == kind]
        return round(100.0 * sum(r[key] for r in sel) / len(sel), 1)

    data = manifest.provenance.data
    return {
        "facts": len(facts),
        "base_accuracy": pct("base_ok"),
        "adapter_accuracy": pct("adapter_ok"),
        "unrelated_kl": round(statistics.fmean(kls), 4),
        "train_s": round(train_s, 1),
        "asked": len(rows),
        "adapter_accuracy_question": pct("adapter_ok", "question"),
        "adapter_accuracy_paraphrase": pct("adapter_ok", "paraphrase"),
        "base_accuracy_paraphrase": pct("base_ok", "paraphrase"),
        "unrelated_kl_max": round(max(kls), 4),
        "anchor_kl": round(statistics.fmean(anchor_kls), 4),
        "eval_s": round(eval_s, 1),
        "unrelated": [
            {"prompt": q, "kl": round(kl, 4)} for q, kl in zip(UNRELATED, kls, strict=True)
        ],
        "recipe": {
            k: data.get(k)
            for k in (
                "steps",
                "rank",
                "alpha",
                "lr",
                "batch_size",
                "target_modules",
                "preserve",
                "anchor_batch",
                "holdout",
                "eval_every",
                "patience",
                "max_grad_norm",
                "examples",
                "heldout_examples",
                "steps_run",
                "best_step",
                "stopped_early",
                "first_loss",
                "final_loss",
                "best_heldout_loss",
            )
        },
        "torch_threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--model", choices=MODELS, action="append", help="model to run (repeatable; default: both)"
    )
    parser.add_argument("--data", help="JSON list of {fact, question, paraphrases, answer}")
    parser.add_argument("--steps", type=int, help="most training steps (DistillConfig default)")
    parser.add_argument("--rank", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--preserve", type=float)
    parser.add_argument(
        "--set",
        action="append",
        metavar="FIELD=JSON",
        help="any other DistillConfig field, e.g. --set anchor_batch=8 (repeatable)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on cores shared with other busy processes, 2 threads "
        "ran 5x slower than 1 here, from oversubscription)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    facts = load_facts(args.data)
    generated = check_unseen(facts)
    print(f"{len(facts)} facts; {generated} distinct training questions, none of them asked")
    result: dict[str, Any] = {"models": {}}
    for name in args.model or MODELS:
        entry = run_model(name, facts, args)
        result["models"][name] = entry
        print(
            f"{name}: {entry['recipe']['steps_run']} steps (best {entry['recipe']['best_step']}), "
            f"held-out loss {entry['recipe']['best_heldout_loss']}"
        )
        if args.json_out:  # written after every model, so a long run keeps what it finished
            Path(args.json_out).write_text(
                json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
    print(
        f"\n{'model':<24}{'facts':>6}{'base %':>8}{'adapter %':>11}{'paraphr. %':>12}"
        f"{'KL nats':>9}{'train s':>9}"
    )
    for name, e in result["models"].items():
        print(
            f"{name:<24}{e['facts']:>6}{e['base_accuracy']:>8.1f}{e['adapter_accuracy']:>11.1f}"
            f"{e['adapter_accuracy_paraphrase']:>12.1f}{e['unrelated_kl']:>9.4f}{e['train_s']:>9.1f}"
        )
    return result


if __name__ == "__main__":
    main()
