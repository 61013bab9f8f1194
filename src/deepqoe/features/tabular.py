"""Per-input encoders (phase 1, the f_i inputs): text, categorical, continuous, vector, sequence.

An encoder is fitted on the training split only, turns its column(s) of a DataFrame into an array, and
describes that array to the network with ``kind``:

* ``"index"``: int64 codes, shape (n,), with ``cardinality`` codes (code 0 = unknown value),
* ``"dense"``: float32, shape (n, ``dim``),
* ``"sequence"``: float32, shape (n, ``channels``, ``length``) (last channel = the valid-step mask).

Bad values (missing columns, text or booleans in a numeric column, NaN, inf, or a number larger in
magnitude than :data:`MAX_ABS_VALUE`) raise a DeepQoEError naming the column and the (1-based) row: they
are rejected, never clipped, because a min-max scale stretched by one 1e308 would silently flatten the
whole column to 0, and one such value at prediction time would overflow the network into NaN.
An encoder state read from a model file is checked the same way (finite statistics, positive scales).
"""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from deepqoe.config import InputConfig
from deepqoe.errors import DeepQoEError


def _require_columns(df: pd.DataFrame, columns: list[str]) -> None:
    for c in columns:
        if c not in df.columns:
            close = difflib.get_close_matches(c, [str(x) for x in df.columns], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DeepQoEError(f"column not found{hint}; the table has: {', '.join(map(str, df.columns[:30]))}",
                               column=c)


# Larger magnitudes are not measurements (a typo, a sentinel, an overflow): an error, not a statistic.
MAX_ABS_VALUE = 1e15
#: a standardised vector input is clipped to [-VECTOR_CLIP, VECTOR_CLIP]: a wild outlier in a pre-computed
#: feature must not blow up the net (the ONNX export describes it and applies it in the graph)
VECTOR_CLIP = 10.0


def _first_bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def show_value(v, limit: int = 40) -> str:
    """A value from a table as a message prints it: a number plainly (``5``, ``0.25``, ``1e+300``, never
    ``np.float64(...)``), text quoted and cut after ``limit`` characters, a list or an array by its length."""
    if v is None or v is pd.NA or v is pd.NaT:
        return "a missing value"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        t = str(int(v))
        return t if len(t) <= 24 else f"an integer of {len(t)} digits"
    if isinstance(v, (float, np.floating)):
        return "NaN" if np.isnan(v) else repr(float(v))
    if isinstance(v, str):  # np.str_ too: its repr is np.str_('...')
        v = str(v)
        return repr(v) if len(v) <= limit else repr(v[:limit]) + "..."
    if isinstance(v, np.ndarray):
        return f"a list of {len(v)} value(s)" if v.ndim == 1 else f"an array of shape {tuple(v.shape)}"
    if isinstance(v, (list, tuple)):
        return f"a list of {len(v)} value(s)"
    if isinstance(v, dict):
        return "a mapping (JSON object)"
    t = str(v)
    return t if len(t) <= limit else t[:limit] + "..."


def _statistics(state: dict, key: str, n: int, who: str, positive: bool = False) -> np.ndarray:
    """A vector of ``n`` finite statistics from an encoder state read from a model file (``positive``: each
    at least 1e-12, as fitting makes them)."""
    try:
        v = np.asarray(state[key], dtype=np.float64)
    except KeyError:
        raise DeepQoEError(f"the encoder state of {who} has no '{key}'", field=key) from None
    except (TypeError, ValueError):
        raise DeepQoEError(f"the encoder state of {who}: '{key}' must be a list of numbers", field=key) from None
    if v.shape != (n,):
        raise DeepQoEError(f"the encoder state of {who}: '{key}' must hold {n} number(s), found shape "
                           f"{v.shape}", field=key)
    if not np.isfinite(v).all() or (positive and (v < 1e-12).any()):
        need = "positive (at least 1e-12) finite numbers" if positive else "finite numbers"
        raise DeepQoEError(f"the encoder state of {who}: '{key}' must hold {need}, found {v.tolist()[:5]}",
                           field=key)
    return v


def check_log_values(x: np.ndarray, columns: list[str]) -> None:
    """``log: true`` scales by log(1 + x): a negative value (of ``x``, a matrix of ``columns``) is an error
    naming its column and (1-based) row."""
    neg = x < 0
    if neg.any():
        r, j = np.argwhere(neg)[0]
        raise DeepQoEError(f"log scaling (log: true) needs values >= 0, found {show_value(x[r, j])}",
                           column=columns[j], row=int(r) + 1)


def _too_large(value: float, column: str, row: int) -> DeepQoEError:
    return DeepQoEError(f"the value {value:g} is too large (the limit is {MAX_ABS_VALUE:g} in magnitude); "
                        "fix or drop it", column=column, row=row)


def numeric_matrix(df: pd.DataFrame, columns: list[str], nan_to: float | None = None) -> np.ndarray:
    """Columns as a float64 matrix; a non-number, a boolean, NaN, inf or a magnitude above
    :data:`MAX_ABS_VALUE` is an error naming column and row (``nan_to`` replaces NaN and inf instead)."""
    _require_columns(df, columns)
    out = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, c in enumerate(columns):
        s = df[c]
        if pd.api.types.is_bool_dtype(s):
            raise DeepQoEError("expected numbers, found booleans (True/False); describe a yes/no column as a "
                               "categorical input", column=c)
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            flags = s.map(lambda x: isinstance(x, (bool, np.bool_))).to_numpy(dtype=bool)
            if flags.any():
                r = _first_bad_row(flags)
                raise DeepQoEError(f"expected a number, found the boolean {show_value(s.iloc[r - 1])}", column=c,
                                   row=r)
            try:
                conv = pd.to_numeric(s, errors="coerce")
            except OverflowError:  # an integer beyond float range (e.g. 10**400 in JSON)
                big = s.map(lambda x: isinstance(x, int) and abs(x) > MAX_ABS_VALUE).to_numpy(dtype=bool)
                r = _first_bad_row(big) if big.any() else 1
                raise DeepQoEError(f"the number is out of range (magnitude above {MAX_ABS_VALUE:g})", column=c,
                                   row=r) from None
            bad = conv.isna().to_numpy() & s.notna().to_numpy()
            if bad.any():
                r = _first_bad_row(bad)
                v = s.iloc[r - 1]
                hint = " (a series per row is a 'sequence' input)" if isinstance(v, (list, tuple, np.ndarray)) else ""
                raise DeepQoEError(f"expected a number, found {show_value(v)}{hint}", column=c, row=r)
            s = conv
        elif not pd.api.types.is_numeric_dtype(s):
            raise DeepQoEError(f"expected numbers, found values of type {s.dtype}", column=c)
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(v)
        if bad.any():
            if nan_to is None:
                r = _first_bad_row(bad)
                what = "a missing value (NaN)" if np.isnan(v[r - 1]) else "an infinite value"
                raise DeepQoEError(f"{what}; fill or drop it", column=c, row=r)
            v = np.where(bad, nan_to, v)
        big = np.abs(v) > MAX_ABS_VALUE
        if big.any():
            r = _first_bad_row(big)
            raise _too_large(v[r - 1], c, r)
        out[:, j] = v
    return out


def is_missing(x) -> bool:
    """A scalar missing value (None, NaN, pd.NA); a list or an array is not missing."""
    if x is None or x is pd.NA or x is pd.NaT:
        return True
    return isinstance(x, (float, np.floating)) and np.isnan(x)


def sequence_arrays(values: list, column: str) -> list[np.ndarray]:
    """The series of a sequence column, each as a (steps, channels) float64 array; a value that is not a
    non-empty list of finite numbers (or of per-step lists), given as a list or as JSON text, is an error
    naming the column and the (1-based) row."""
    import json

    out = []
    for r, v in enumerate(values, start=1):
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                raise DeepQoEError(f"expected a list of numbers (JSON), found {show_value(v)}", column=column,
                                   row=r) from None
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise DeepQoEError(f"expected a list of numbers, found {show_value(v)}", column=column,
                               row=r) from None
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or len(a) == 0 or a.shape[1] == 0:
            raise DeepQoEError("expected a non-empty series", column=column, row=r)
        if not np.isfinite(a).all():
            raise DeepQoEError("NaN or infinite value in the series", column=column, row=r)
        if np.abs(a).max() > MAX_ABS_VALUE:
            raise _too_large(float(a.flat[np.abs(a).argmax()]), column, r)
        out.append(a)
    return out


def check_sequences(values: list, column: str) -> list[np.ndarray]:
    """:func:`sequence_arrays`, and every series with the same number of channels per step (the first
    row's)."""
    arrs = sequence_arrays(values, column)
    for r, a in enumerate(arrs, start=1):
        if a.shape[1] != arrs[0].shape[1]:
            raise DeepQoEError(f"every series needs the same number of channels per step: this one has "
                               f"{a.shape[1]}, row 1 has {arrs[0].shape[1]}", column=column, row=r)
    return arrs


class InputEncoder:
    """Base class: ``fit(df)`` on the training split, ``transform(df)`` anywhere, JSON ``state``."""

    kind = "dense"

    def __init__(self, cfg: InputConfig):
        self.cfg = cfg
        self.fitted = False

    @property
    def columns(self) -> list[str]:
        return [self.cfg.column]

    def fit(self, df: pd.DataFrame) -> "InputEncoder":
        raise NotImplementedError

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict:
        raise NotImplementedError

    def load_state(self, state: dict) -> "InputEncoder":
        raise NotImplementedError

    def describe(self) -> dict:
        """What the network needs to know about this input."""
        raise NotImplementedError


#: a text input whose words are this share (or more) out of the embedding's vocabulary gets a note at training
OOV_NOTE_RATE = 0.5


def missing_text(v) -> bool:
    """A text value that is missing: None, NaN, or a text of blanks only ("" included). The one rule of every
    path (the encoder, so the CLI and Python, and the service's check of a request's rows): an error, "a
    missing text value", never a silent zero vector."""
    return is_missing(v) or (isinstance(v, str) and not v.strip())


def _examples(values, k: int = 3) -> str:
    return ", ".join(show_value(v) for v in list(values)[:k])


class TextEncoder(InputEncoder):
    """f_i = frozen word-embedding average (GloVe 6B 50-d by default).

    A value with no word the embedding knows is the zero vector: at training, a note says so when the input's
    words are mostly unknown (:data:`OOV_NOTE_RATE`), and that the input carries no information when no value
    has a known word; at prediction, :meth:`unknown_texts` counts the rows whose text has no known word (the
    predictor's note)."""

    def fit(self, df):
        from deepqoe.features.text import embed_texts, embedding_dim

        _require_columns(df, self.columns)
        self._check(df)
        texts = df[self.cfg.column].astype(str).tolist()
        _, self.oov = embed_texts(texts, self.cfg.embedding)
        self.dim = embedding_dim(self.cfg.embedding)
        self.fitted = True
        self._note_oov(len(set(texts)))
        return self

    def _note_oov(self, n_distinct: int) -> None:
        """A note when the training texts are mostly out of the embedding's vocabulary (their words are
        skipped), and that the input carries no information when none has a known word (every row is the zero
        vector)."""
        import warnings

        from deepqoe.errors import DeepQoENote

        col, emb = self.cfg.column, self.cfg.embedding
        rate = float(self.oov.get("oov_rate", 0.0))
        empty = list(self.oov.get("oov_values", []))
        if n_distinct and len(empty) >= n_distinct:
            warnings.warn(f"text input '{col}': none of its {n_distinct} distinct value(s) has a word the '{emb}' "
                          f"embedding knows (e.g. {_examples(empty)}): every row is the zero vector, so this input "
                          "carries no information; check the column, or describe it as a categorical input",
                          DeepQoENote, stacklevel=3)
        elif rate >= OOV_NOTE_RATE:
            words = self.oov.get("oov_words", [])
            more = (f"; {len(empty)} of {n_distinct} distinct value(s) have no known word and are the zero vector"
                    if empty else "")
            warnings.warn(f"text input '{col}': {rate:.0%} of its words are not in the '{emb}' embedding (e.g. "
                          f"{_examples(words)}) and are skipped{more}", DeepQoENote, stacklevel=3)

    def _check(self, df):
        s = df[self.cfg.column]
        bad = s.map(missing_text).to_numpy(dtype=bool)
        if bad.any():
            raise DeepQoEError("a missing text value", column=self.cfg.column, row=_first_bad_row(bad))

    def transform(self, df):
        from deepqoe.features.text import embed_texts

        _require_columns(df, self.columns)
        self._check(df)
        vecs, stats = embed_texts(df[self.cfg.column].astype(str).tolist(), self.cfg.embedding)
        self.last_oov = stats
        return vecs.astype(np.float32)

    def unknown_texts(self, df) -> tuple[int, list[str]]:
        """(rows of ``df`` whose text has no word the embedding knows, so that it is read as the zero vector,
        up to 5 of those texts), without touching the encoder (several threads may ask at once); (0, []) for a
        sentence embedding (it knows every text) or a column ``df`` lacks. Missing texts are not counted (they
        are an error)."""
        if self.cfg.embedding == "minilm" or self.cfg.column not in df.columns:
            return 0, []
        from deepqoe.features.text import load_word_vectors, tokenize

        known = load_word_vectors(self.cfg.embedding).index
        unknown: dict[str, bool] = {}
        found = []
        for v in df[self.cfg.column].tolist():
            if missing_text(v):
                continue
            t = str(v)
            if t not in unknown:
                unknown[t] = not any(w in known for w in tokenize(t))
            if unknown[t]:
                found.append(t)
        return len(found), sorted(set(found))[:5]

    def state(self):
        return {"embedding": self.cfg.embedding, "dim": self.dim, "oov": self.oov}

    def load_state(self, state):
        dim = state["dim"]
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 4096:
            raise DeepQoEError(f"the encoder state of input '{self.cfg.column}': 'dim' must be a width, found "
                               f"{dim!r}", field="dim")
        self.dim, self.oov, self.fitted = dim, state.get("oov", {}), True
        return self

    def describe(self):
        return {"kind": "dense", "dim": self.dim}


#: a text that is a plain decimal integer with a zero fraction ("1080.0", "-3.00"): the same category as the
#: integer (:meth:`CategoricalEncoder._as_str`)
_ZERO_FRACTION = r"-?(?:0|[1-9][0-9]*)\.0+"


class CategoricalEncoder(InputEncoder):
    """Vocabulary learned on the training split; code 0 is the bucket for values never seen in training."""

    kind = "index"

    @staticmethod
    def _as_str(s: pd.Series) -> list[str]:
        """The category text of each value (the one rule: the encoder, the ONNX export's ``as_text`` and
        :func:`deepqoe.export.encode_with_metadata` all call this). 1080, 1080.0 and "1080.0" are the same
        category '1080': value by value, an integral float below 2**53 (exact as a float) is its integer
        digits, and so is a text that is a plain decimal integer with a zero fraction ("1080.0", "-3.00";
        no leading zero, no sign but '-', below 2**53), as a column read as text (another row "unknown")
        holds it; any other value is str(value) ("007", "1e3", "1080.5" stay as written)."""
        if pd.api.types.is_float_dtype(s):
            f = s.to_numpy(float)
            with np.errstate(invalid="ignore"):
                whole = np.isfinite(f) & (np.mod(f, 1) == 0) & (np.abs(f) < 2.0 ** 53)
            out = s.astype(str).to_numpy(object)
            out[whole] = f[whole].astype(np.int64).astype(str)
            return out.tolist()
        text = s.astype(str)
        out = text.to_numpy(object)
        for i in np.flatnonzero(text.str.fullmatch(_ZERO_FRACTION, na=False).to_numpy(bool)):
            n = int(out[i].split(".", 1)[0])
            if abs(n) < 2 ** 53:
                out[i] = str(n)  # "-0.0" -> "0", as -0.0 in a float column
        return out.tolist()

    def _check(self, df):
        _require_columns(df, self.columns)
        bad = df[self.cfg.column].isna().to_numpy()
        if bad.any() and self.cfg.role != "viewer":  # a missing viewer is the unknown viewer
            raise DeepQoEError("a missing categorical value", column=self.cfg.column, row=_first_bad_row(bad))

    def fit(self, df):
        self._check(df)
        vals = self._as_str(df[self.cfg.column].dropna())
        counts = pd.Series(vals).value_counts()
        self.vocabulary = sorted(counts.index.tolist(), key=lambda v: (-counts[v], v))
        self._index = {v: i + 1 for i, v in enumerate(self.vocabulary)}
        self.fitted = True
        return self

    def transform(self, df):
        """The codes; records ``last_unknown`` (rows given code 0), ``last_unseen`` (of them, rows with a value
        the training split did not have, not a missing one) and ``last_unseen_values`` (up to 5 of those
        values), so a caller can say how many rows went to the unknown bucket."""
        if self.cfg.role == "viewer" and self.cfg.column not in df.columns:  # no viewer: the population
            self.last_unknown, self.last_unseen, self.last_unseen_values = len(df), 0, []
            return np.zeros(len(df), dtype=np.int64)
        self._check(df)
        vals = self._as_str(df[self.cfg.column])
        codes = np.fromiter((self._index.get(v, 0) for v in vals), dtype=np.int64, count=len(vals))
        missing = df[self.cfg.column].isna().to_numpy()
        codes[missing] = 0
        unseen = (codes == 0) & ~missing
        self.last_unknown = int((codes == 0).sum())
        self.last_unseen = int(unseen.sum())
        self.last_unseen_values = sorted({vals[i] for i in np.flatnonzero(unseen)})[:5]
        return codes

    def unseen_values(self, df) -> tuple[int, list[str]]:
        """(rows of ``df`` whose value the training split did not have (not a missing one), up to 5 of those
        values), without touching the encoder (several threads may ask at once); (0, []) for the viewer
        input, which says its own ("viewer": "unknown")."""
        if self.cfg.role == "viewer" or self.cfg.column not in df.columns:
            return 0, []
        vals = self._as_str(df[self.cfg.column])
        missing = df[self.cfg.column].isna().to_numpy()
        unseen = [v for v, m in zip(vals, missing) if not m and v not in self._index]
        return len(unseen), sorted(set(unseen))[:5]

    def state(self):
        return {"vocabulary": self.vocabulary}

    def load_state(self, state):
        vocabulary = state["vocabulary"]
        if not isinstance(vocabulary, list) or not all(isinstance(v, str) for v in vocabulary):
            raise DeepQoEError(f"the encoder state of input '{self.cfg.column}': 'vocabulary' must be a list of "
                               "strings", field="vocabulary")
        self.vocabulary = vocabulary
        self._index = {v: i + 1 for i, v in enumerate(self.vocabulary)}
        self.fitted = True
        return self

    def describe(self):
        d = {"kind": "index", "cardinality": len(self.vocabulary) + 1, "embedding_dim": self.cfg.embedding_dim}
        if self.cfg.role != "feature" or self.cfg.unknown_dropout:  # a viewer input (deepqoe.viewers)
            d.update(role=self.cfg.role, unknown_dropout=self.cfg.unknown_dropout)
        return d


class ContinuousEncoder(InputEncoder):
    """Numbers, normalised with statistics of the training split (min-max to [0, 1] or standard).

    The training range of each column (on the scale the network reads: after ``log: true``'s log1p) is known
    to the encoder, for :meth:`far_outside`: a min-max input's ``shift`` and ``scale`` are its minimum and its
    width; other inputs (``standard``, ``none``, a ``vector``), and a min-max column that was constant in
    training, store ``min`` and ``max`` in their state. A state written before they were stored has no range
    (:attr:`range_` None: no such note)."""

    @property
    def columns(self):
        return list(self.cfg.columns) if self.cfg.columns else [self.cfg.column]

    @property
    def _minmax(self) -> bool:
        """Min-max scaled (a vector input is standardised even when min-max is asked for)."""
        return self.cfg.normalisation == "minmax" and self.cfg.modality != "vector"

    def _raw(self, df):
        x = numeric_matrix(df, self.columns, nan_to=self.cfg.nan_to if self.cfg.modality == "vector" else None)
        if self.cfg.log:
            check_log_values(x, self.columns)
            x = np.log1p(x)
        return x

    def fit(self, df):
        x = self._raw(df)
        norm = self.cfg.normalisation
        if norm == "standard" or (norm == "minmax" and self.cfg.modality == "vector"):
            # pre-computed feature vectors are standardised: min-max is fragile to outliers there
            self.shift = x.mean(0)
            self.scale = x.std(0)
        elif norm == "minmax":
            self.shift = x.min(0)
            self.scale = x.max(0) - x.min(0)
        else:
            self.shift, self.scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        self.scale = np.where(self.scale > 1e-12, self.scale, 1.0)
        self.range_ = (x.min(0), x.max(0)) if len(x) else None
        self.fitted = True
        return self

    def transform(self, df):
        x = (self._raw(df) - self.shift) / self.scale
        if self.cfg.modality == "vector":
            x = np.clip(x, -VECTOR_CLIP, VECTOR_CLIP)
        with np.errstate(over="ignore"):
            x = x.astype(np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            r, j = np.argwhere(bad)[0]
            raise DeepQoEError("the value is too far outside the range the model was trained on",
                               column=self.columns[j], row=int(r) + 1)
        return x

    def _range_stored(self) -> bool:
        """Whether the state needs ``min`` / ``max``: shift and scale do not give the training range."""
        if getattr(self, "range_", None) is None:
            return False
        lo, hi = self.range_
        return not self._minmax or bool(((hi - lo) <= 1e-12).any())

    def far_outside(self, df) -> list[tuple[str, int, list, float, float]]:
        """The columns of ``df`` with values far outside the training range: ``(column, rows, up to 3 of those
        values, training min, training max)`` (min and max as the table writes them, before ``log: true``),
        without touching the encoder (several threads may ask at once); [] for a model without the range.

        Far: more than the training range's width beyond it (below ``min - width`` or above ``max + width``;
        for a min-max input, outside [-1, 2] after scaling), on the scale the network reads (after log1p for
        ``log: true``; a column that was constant in training has the width max(1, |value|)), or of the other
        sign than every training value (a negative bitrate of a column trained on values >= 0). Inside that
        margin a network still interpolates sensibly; beyond it its output is an extrapolation."""
        found = self._far(df)
        if found is None:
            return []
        x, far = found
        lo, hi = self.range_
        out = []
        for j in np.flatnonzero(far.any(0)):
            v = x[far[:, j], j]
            vals = list(dict.fromkeys((np.expm1(v) if self.cfg.log else v).tolist()))[:3]
            a, b = (np.expm1(lo[j]), np.expm1(hi[j])) if self.cfg.log else (lo[j], hi[j])
            out.append((self.columns[j], int(far[:, j].sum()), vals, float(a), float(b)))
        return out

    def far_rows(self, df) -> int:
        """How many rows of ``df`` have a value far outside the training range in any column (the rule of
        :meth:`far_outside`, which counts rows per column); 0 for a model without the range."""
        found = self._far(df)
        return 0 if found is None else int(found[1].any(1).sum())

    def _far(self, df) -> tuple[np.ndarray, np.ndarray] | None:
        """(the values the network reads, rows x columns: where they are far outside the training range: the
        rule :meth:`far_outside` describes), None without the range or the columns."""
        if getattr(self, "range_", None) is None or any(c not in df.columns for c in self.columns):
            return None
        x = self._raw(df)
        lo, hi = self.range_
        width = np.where(hi - lo > 1e-12, hi - lo, np.maximum(1.0, np.abs(lo)))
        return x, (x < lo - width) | (x > hi + width) | ((lo >= 0) & (x < 0)) | ((hi <= 0) & (x > 0))

    def state(self):
        st = {"columns": self.columns, "shift": self.shift.tolist(), "scale": self.scale.tolist()}
        if self._range_stored():  # what shift and scale do not say (far_outside's range)
            st["min"], st["max"] = self.range_[0].tolist(), self.range_[1].tolist()
        return st

    def load_state(self, state):
        who, n = f"input '{self.cfg.column}'", len(self.columns)
        self.shift = _statistics(state, "shift", n, who)
        self.scale = _statistics(state, "scale", n, who, positive=True)
        if "min" in state or "max" in state:
            lo, hi = _statistics(state, "min", n, who), _statistics(state, "max", n, who)
            if (lo > hi).any():
                raise DeepQoEError(f"the encoder state of {who}: 'min' must not exceed 'max', found {lo.tolist()[:5]} "
                                   f"and {hi.tolist()[:5]}", field="min")
            self.range_ = (lo, hi)
        elif self._minmax:  # min-max: shift is the minimum, scale the width
            self.range_ = (self.shift, self.shift + self.scale)
        else:  # written before the range was stored
            self.range_ = None
        self.fitted = True
        return self

    def describe(self):
        return {"kind": "dense", "dim": len(self.columns)}


class SequenceEncoder(InputEncoder):
    """A per-second series per row (list of numbers, or list of per-step vectors), padded or cut to
    ``sequence_length`` steps, standardised per channel; a last channel marks the valid steps."""

    kind = "sequence"

    def _arrays(self, df) -> list[np.ndarray]:
        _require_columns(df, self.columns)
        return sequence_arrays(df[self.cfg.column].tolist(), self.cfg.column)

    def fit(self, df):
        arrs = self._arrays(df)
        chans = {a.shape[1] for a in arrs}
        if len(chans) != 1:
            raise DeepQoEError(f"every series needs the same number of channels, found {sorted(chans)}",
                               column=self.cfg.column)
        cat = np.concatenate(arrs)
        self.mean, self.std = cat.mean(0), np.where(cat.std(0) > 1e-12, cat.std(0), 1.0)
        self.channels = int(cat.shape[1])
        self.fitted = True
        return self

    def transform(self, df):
        L = self.cfg.sequence_length
        arrs = self._arrays(df)
        out = np.zeros((len(arrs), self.channels + 1, L), dtype=np.float32)
        for i, a in enumerate(arrs):
            if a.shape[1] != self.channels:
                raise DeepQoEError(f"expected {self.channels} channel(s) per step, found {a.shape[1]}",
                                   column=self.cfg.column, row=i + 1)
            a = (a[:L] - self.mean) / self.std
            out[i, :-1, : len(a)] = a.T
            out[i, -1, : len(a)] = 1.0
        return out

    def state(self):
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "channels": self.channels}

    def load_state(self, state):
        who, channels = f"input '{self.cfg.column}'", state["channels"]
        if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= 4096:
            raise DeepQoEError(f"the encoder state of {who}: 'channels' must be a count, found {channels!r}",
                               field="channels")
        self.mean = _statistics(state, "mean", channels, who)
        self.std = _statistics(state, "std", channels, who, positive=True)
        self.channels, self.fitted = channels, True
        return self

    def describe(self):
        return {"kind": "sequence", "channels": self.channels + 1, "length": self.cfg.sequence_length,
                "encoder": self.cfg.sequence_encoder}


ENCODERS = {"text": TextEncoder, "categorical": CategoricalEncoder, "continuous": ContinuousEncoder,
            "vector": ContinuousEncoder, "sequence": SequenceEncoder}


def build_encoder(cfg: InputConfig) -> InputEncoder:
    return ENCODERS[cfg.modality](cfg)
