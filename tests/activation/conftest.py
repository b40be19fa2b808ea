"""Activation tests share the runtime fixtures of ``tests/runtime``."""

from tests.runtime.conftest import runtime, tiny_llama_runtime

__all__ = ["runtime", "tiny_llama_runtime"]
