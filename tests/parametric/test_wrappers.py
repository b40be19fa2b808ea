"""Adapters through the chat wrappers: ``ChatMemOS(adapter=...)``, the per-call override, the
per-user default stored in the cube, and base identity with no adapter (LlamaIndex likewise)."""

from __future__ import annotations

import copy

import pytest
import torch

from memcube import MemCube
from memcube.parametric import AdapterNotFoundError
from memcube.runtime import Runtime

pytestmark = pytest.mark.slow
TOKENS = 5
QUESTION = "What do you know about me?"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    rt = Runtime.shared()
    root = tmp_path_factory.mktemp("wrapped")
    for seed, name in ((11, "alice-lora"), (12, "bob-lora")):
        torch.manual_seed(seed)
        pm = get_peft_model(
            copy.deepcopy(rt.model),
            LoraConfig(
                r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
            ),
        )
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.3)
        pm.save_pretrained(str(root / name))
    return root


@pytest.fixture
def adapted_cube(tmp_path, adapters):
    cube = MemCube.open(tmp_path / "cube")
    cube.add("My dog is called Biscuit.", user_id="alice", memory_type="fact")
    for name in ("alice-lora", "bob-lora"):
        cube.parametric.register(name, adapters / name)
    yield cube
    cube.close()


def test_chat_memos_adapters(adapted_cube: MemCube) -> None:
    from langchain_memos import ChatMemOS

    cube = adapted_cube

    def ask(**kw):
        llm = ChatMemOS(cube=cube, user_id="alice", max_tokens=TOKENS, kv_memory=False, **kw)
        return llm.invoke(QUESTION).content

    base = ask()
    alice = ask(adapter="alice-lora")
    bob = ask(adapter="bob-lora")
    assert len({base, alice, bob}) == 3
    llm = ChatMemOS(cube=cube, user_id="alice", max_tokens=TOKENS, kv_memory=False)
    assert llm.invoke(QUESTION, adapter="bob-lora").content == bob  # per-call override
    cube.parametric.set_user_adapter("alice", "alice-lora")
    assert llm.invoke(QUESTION).content == alice  # the user's default, automatically
    assert llm.invoke(QUESTION, adapter="bob-lora").content == bob  # the call still wins
    # with activation memory on, caches are kept per adapter: same text as without
    kv = ChatMemOS(cube=cube, user_id="alice", max_tokens=TOKENS, kv_memory=True)
    assert kv.invoke(QUESTION).content == alice
    assert kv.invoke(QUESTION, adapter="bob-lora").content == bob
    cube.parametric.set_user_adapter("alice", None)
    assert llm.invoke(QUESTION).content == base  # no adapter: exactly the base model again
    with pytest.raises(AdapterNotFoundError):
        llm.invoke(QUESTION, adapter="missing")


def test_memos_llm_adapters(adapted_cube: MemCube) -> None:
    from llama_index.core.llms import ChatMessage

    from llama_index_memos import MemOSLLM

    cube = adapted_cube
    msgs = [ChatMessage(role="user", content=QUESTION)]
    llm = MemOSLLM(cube=cube, user_id="alice", max_tokens=TOKENS, kv_memory=False)
    base = llm.chat(msgs).message.content
    bob = (
        MemOSLLM(cube=cube, user_id="alice", max_tokens=TOKENS, kv_memory=False, adapter="bob-lora")
        .chat(msgs)
        .message.content
    )
    assert bob != base
    assert llm.chat(msgs, adapter="bob-lora").message.content == bob
    cube.parametric.set_user_adapter("alice", "bob-lora")
    assert llm.chat(msgs).message.content == bob
    cube.parametric.set_user_adapter("alice", None)
    assert llm.chat(msgs).message.content == base
