"""LlamaIndex adapters over the :mod:`memcube` core: they translate, the cube decides.

* :class:`MemCubeMemory`: a ``BaseMemory`` (short-term buffer + MemCube long-term memory) for
  ``FunctionAgent`` / ``AgentWorkflow`` and the chat engines.
* :class:`MemCubeMemoryBlock`: a block for the new ``Memory.from_defaults(memory_blocks=[...])``.
* :class:`MemCubeRetriever`: a ``BaseRetriever`` for query engines and agent tools.
* :class:`MemOSLLM`: a local ``CustomLLM``/``FunctionCallingLLM`` with KV activation memory.
"""

from llama_index_memos.llm import MemOSLLM
from llama_index_memos.memory import MemCubeMemory
from llama_index_memos.memory_block import MemCubeMemoryBlock
from llama_index_memos.retriever import MemCubeRetriever

__all__ = ["MemCubeMemory", "MemCubeMemoryBlock", "MemCubeRetriever", "MemOSLLM"]
