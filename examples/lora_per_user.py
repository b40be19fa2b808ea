"""Parametric memory per user: distill each user's memories into a LoRA adapter, then let the
chat model pick the user's adapter automatically (or override it per call).

Offline, on CPU, with the bundled SmolLM2-135M-Instruct. Run from the repo root::

    python examples/lora_per_user.py [--steps 20]

What it shows:
1. memories go into a cube for two users;
2. ``cube.parametric.distill`` turns each user's memories into a LoRA adapter stored in the cube
   (safetensors + a JSON manifest recording which memories it holds) and makes it that user's
   default;
3. ``ChatMemOS(cube=cube, user_id="alice")`` answers with Alice's adapter without being told;
   ``llm.invoke(..., adapter="bob")`` overrides it for one call; switching never reloads the model.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain_memos import ChatMemOS  # noqa: E402
from memcube import MemCube  # noqa: E402

MEMORIES = {
    "alice": ["My dog is called Biscuit.", "I work as a nurse in Tromsø."],
    "bob": ["I play the cello in an orchestra.", "My favourite food is ramen."],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LoRA adapters per user, from memories.")
    parser.add_argument("--steps", type=int, default=20, help="training steps per adapter")
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder, MemCube.open(folder) as cube:
        for user, facts in MEMORIES.items():
            cube.add_many([{"content": f, "memory_type": "fact"} for f in facts], user_id=user)
            manifest = cube.parametric.distill(
                user, user_id=user, steps=args.steps, set_default=True
            )
            print(
                f"stored {manifest.ref}: rank {manifest.rank}, "
                f"{len(manifest.provenance.memory_ids)} memories, "
                f"loss {manifest.provenance.data['first_loss']} -> "
                f"{manifest.provenance.data['final_loss']}"
            )
        print("per-user defaults:", cube.parametric.user_adapters())

        question = "What do you remember about me?"
        # kv_memory=False keeps the example short; with it on, caches are kept per adapter.
        llm = ChatMemOS(cube=cube, user_id="alice", max_tokens=args.max_tokens, kv_memory=False)
        print("\nalice, her own adapter (automatic):", llm.invoke(question).content)
        print("alice, bob's adapter (per call):   ", llm.invoke(question, adapter="bob").content)
        base = ChatMemOS(max_tokens=args.max_tokens)
        print("no cube, base model:               ", base.invoke(question).content)
        for m in cube.parametric.list():
            print(f"{m.ref}: {m.description}; files in {cube.parametric.path(m.name)}")


if __name__ == "__main__":
    main()
