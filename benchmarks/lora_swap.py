"""LoRA hot swap on the bundled SmolLM2-135M-Instruct (CPU): load and switch latency, the cost of
a mixed-adapter batch, and generation time with and without an adapter.

* ``load_s``: median time to make a stored adapter resident (read + verify + inject weights);
* ``switch_ms``: median time to switch the active adapter between two resident adapters;
* ``mixed_batch_overhead``: a batch whose rows name different adapters (one forward per step,
  PEFT ``adapter_names``) vs the same batch with one adapter for every row, as a fraction;
* ``outputs_equal``: every row of the mixed batch equals the same row decoded in a
  single-adapter run (same batch, same padding); ``outputs_equal_unbatched`` compares with each
  prompt decoded alone;
* ``gen_base_s`` / ``gen_adapter_s``: ``Runtime.generate`` of one prompt, adapter off / on.

Run from the repo root::

    python -m benchmarks.lora_swap [--json OUT] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

PROMPTS = [
    "Give me a tip for staying focused.",
    "What should I cook tonight?",
    "Describe a sunny day in one sentence.",
    "Suggest a name for a cat.",
]


def make_adapter(model: Any, folder: str, seed: int, rank: int) -> None:
    """A PEFT LoRA adapter on q/k/v/o with random (non-zero) weights, saved as safetensors."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    pm = get_peft_model(copy.deepcopy(model), cfg)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    pm.save_pretrained(folder, safe_serialization=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", dest="json_out")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args(argv)

    import torch

    from memcube import MemCube
    from memcube.runtime import ChatMessage, GenerationOptions, Runtime

    rt = Runtime.shared()
    model = rt.model
    prompts = [rt.prompt([ChatMessage("user", p)]) for p in PROMPTS]
    ids = [p.ids for p in prompts]
    with tempfile.TemporaryDirectory() as tmp, MemCube.open(os.path.join(tmp, "cube")) as cube:
        pm = cube.parametric
        for i, name in enumerate(("a", "b")):
            make_adapter(model, os.path.join(tmp, name), seed=i + 1, rank=args.rank)
            pm.register(name, os.path.join(tmp, name))
        manager = pm.manager(runtime=rt)

        loads = []
        for _ in range(args.repeats):
            for name in ("a", "b"):
                key = pm.prepare(name, runtime=rt)
                manager.unload(key)
                start = time.perf_counter()
                pm.prepare(name, runtime=rt)
                loads.append(time.perf_counter() - start)
        ka, kb = pm.prepare("a", runtime=rt), pm.prepare("b", runtime=rt)

        switches = []
        for _ in range(args.repeats * 4):
            for key in (ka, kb):
                start = time.perf_counter()
                manager.activate(key)
                switches.append(time.perf_counter() - start)
        manager.activate(None)

        opts = GenerationOptions(max_new_tokens=args.new_tokens)
        rt.generate(prompts[0], opts)  # warm-up
        gen_base, gen_adapter = [], []
        out_base = out_adapter = None
        for _ in range(args.repeats):
            r = rt.generate(prompts[0], opts, adapter=None)
            gen_base.append(r.total_s)
            out_base = r.token_ids
            r = rt.generate(prompts[0], opts, adapter=ka)
            gen_adapter.append(r.total_s)
            out_adapter = r.token_ids

        mixed_names = [ka, kb, None, ka]
        single_runs = {
            k: manager.generate_batch(ids, [k] * len(ids), max_new_tokens=args.new_tokens)
            for k in (ka, kb, None)
        }
        mixed = manager.generate_batch(ids, mixed_names, max_new_tokens=args.new_tokens)
        expected = [single_runs[k][i] for i, k in enumerate(mixed_names)]
        alone = [
            manager.generate_batch([p], [k], max_new_tokens=args.new_tokens)[0]
            for p, k in zip(ids, mixed_names)
        ]
        t_single, t_mixed = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            manager.generate_batch(ids, [ka] * len(ids), max_new_tokens=args.new_tokens)
            t_single.append(time.perf_counter() - start)
            start = time.perf_counter()
            manager.generate_batch(ids, mixed_names, max_new_tokens=args.new_tokens)
            t_mixed.append(time.perf_counter() - start)

    med = statistics.median
    result = {
        "model": rt.name,
        "rank": args.rank,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "load_s": round(med(loads), 4),
        "switch_ms": round(med(switches) * 1000, 3),
        "single_adapter_batch_s": round(med(t_single), 4),
        "mixed_batch_s": round(med(t_mixed), 4),
        "mixed_batch_overhead": round(med(t_mixed) / med(t_single) - 1, 4),
        "outputs_equal": mixed == expected,
        "outputs_equal_unbatched": mixed == alone,
        "gen_base_s": round(med(gen_base), 4),
        "gen_adapter_s": round(med(gen_adapter), 4),
        "adapter_generation_overhead": round(med(gen_adapter) / med(gen_base) - 1, 4),
        "adapter_changes_output": out_base != out_adapter,
        "batch_size": len(ids),
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "load_average": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
        "targets": {"switch_ms": 20, "load_s": 0.5, "mixed_batch_overhead": 0.35},
    }
    print(f"{'metric':<30}{'value':>12}  target")
    for key, target in (
        ("load_s", "<= 0.5"),
        ("switch_ms", "<= 20"),
        ("mixed_batch_overhead", "<= 0.35"),
        ("outputs_equal", "True"),
        ("outputs_equal_unbatched", ""),
        ("gen_base_s", ""),
        ("gen_adapter_s", ""),
        ("adapter_generation_overhead", ""),
    ):
        print(f"{key:<30}{result[key]!s:>12}  {target}")
    print(f"(load average {result['load_average']:.1f} on {os.cpu_count()} cores)")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
