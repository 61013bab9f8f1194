"""ONNX export of a DeepQoE network: ``deepqoe export MODEL_DIR --onnx FILE``.

The ONNX graph is the network (phases 2 and 3): its inputs are the **encoded tensors**, one per input
branch, exactly what phase 1 (:mod:`deepqoe.features.tabular`) produces; encoding (vocabularies, scaling,
word vectors) stays outside the graph and is described in the ONNX metadata so another runtime can
reproduce it. Each entry of ``deepqoe.inputs`` has ``preprocessing``: every step ``deepqoe predict``
applies, as fields and as ``steps`` (text, in order):

* numeric inputs (``continuous``; ``type`` ``numeric``): float32 ``[batch, dim]``; NaN / inf is an error
  (``nan_to`` null), ``|x| > max_abs`` an error, ``log1p`` when ``log1p``, ``(x - shift) / scale``, no clip;
* ``vector`` inputs: the same, but NaN, +inf and -inf become ``nan_to`` first (before the log and the
  scaling), the normalisation is always ``standard``, and the result is clipped to ``clip`` = [-10, 10]. The
  graph clips these inputs itself and turns a NaN entry into the encoded ``nan_to`` of its column
  (``clip_in_graph``, ``nan_in_graph``), so feeding ``(x - shift) / scale`` with NaN left in gives the same
  scores (an inf must still become ``nan_to`` first: the graph would clip it to +-10);
* ``index`` inputs (categorical): int64 ``[batch]``, code = 1 + position of the value's text in
  ``vocabulary`` (``as_text``: 1080.0 in a float column, and the text "1080.0", are '1080'; "007" stays
  "007"), 0 = the unknown bucket (an unseen value; a missing value or column is an error, or code 0 for a
  ``role: viewer`` input);
* text inputs (``dense``): the tokenisation and the mean of the word vectors (``glove-6b-50d``) or the
  MiniLM sentence embedding;
* ``sequence`` inputs: float32 ``[batch, channels + 1, length]``: the first ``length`` steps standardised
  with the channel ``mean`` / ``std``, zero-padded, the last channel = 1 on valid steps.

:func:`encode_with_metadata` is that description run in numpy (the reference for other runtimes, and what
:func:`parity` checks against the Python encoders, on rows with outliers, NaN and unseen categories).

Outputs: ``output`` (the raw network output: logits for a classifier, the standardised score for a
regressor) and ``probabilities`` (classifier: softmax over ``classes``) or ``prediction`` (regressor:
``output * target.std + target.mean``; ``deepqoe predict`` then clips it to ``deepqoe.model.score_clip``,
the rating scale or the training targets' range, when not null). Metadata keys: ``deepqoe.inputs`` (JSON
list: name, kind, dtype, shape, modality, columns, encoder state, preprocessing), ``deepqoe.outputs``,
``deepqoe.model`` (estimator, task, classes, target scaling, score_clip), ``deepqoe.preprocessing``,
``deepqoe.version``. The batch dimension is dynamic.

**Session models** (``"estimator": "SessionQoEModel"``, :mod:`deepqoe.sessions.qoe_model`). The graph is
the ensemble's forward (phases 2 and 3: memory track, parts, monotone fusion, ``1 + 4 sigmoid(z - L) exp(-M)``, mean of
the members) on the tensors of a :class:`~deepqoe.sessions.qoe_model.Batch`; the preprocessing (phase
1: quality track, prefix features of every evaluation point) stays in Python. An ONNX consumer builds
the inputs with ``deepqoe.sessions.qoe_model.make_batch(sessions, model.mapping_, curves)`` and feeds
them by name (:func:`session_feeds`):

==============  =======  ===============  ==========================================================
input           dtype    shape            meaning
==============  =======  ===============  ==========================================================
q               float32  [batch, steps]   quality track 0-1 per media step, padded with its last value
decay_steps     float32  [batch]          step length (s)
device          int64    [batch]          index in ``deepqoe.sessions.qoe_model.DEVICES``
mapped          float32  [batch]          1 when the quality comes from the bitrate mapping
p_sess          int64    [points]         session (row of ``q``) of each evaluation point
p_step          int64    [points]         last media step played at that point
fixed           float32  [points, 7]      prefix features (see ``Batch.fixed``)
st_age          float32  [points, stalls] media age of each started stall (s)
st_mag          float32  [points, stalls] log(1 + elapsed duration) of each stall, 0 = not started
sw_recent       float32  [batch, steps]   switches in each media step
==============  =======  ===============  ==========================================================

Every dimension (batch, steps, points, stalls) is dynamic. The output ``score`` ([points], float32) is
the score on the 1-5 scale at every evaluation point: the last point of a session is its score, and
with ``curves=True`` the points are its per-second curve. The per-step memory loop over the quality
track runs as an ONNX ``Loop`` over ``steps`` (no fixed maximum; ``make_batch`` caps a track at
``MAX_STEPS`` steps by lengthening the steps of long sessions). The loop is causal, so the padding of
shorter tracks in a batch never changes their points. Metadata: ``deepqoe.inputs`` (the table above as
JSON), ``deepqoe.outputs``, ``deepqoe.model`` (estimator, scale, calibrations, the calibration the file
scores with (``deepqoe export --calibration DATASET``; null: the average one), members, quality
mapping), ``deepqoe.preprocessing``, ``deepqoe.version``.
"""

from __future__ import annotations

import json
import functools
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from deepqoe.errors import DeepQoEError
from deepqoe.features.tabular import (MAX_ABS_VALUE, VECTOR_CLIP, CategoricalEncoder, ContinuousEncoder,
                                      SequenceEncoder, TextEncoder)
from deepqoe.sessions.qoe_model import calibration_points


class _Exportable(nn.Module):
    """The network with its output scaling and, for each input in ``guards``, the input guard of
    :func:`input_guards` (None: the input goes in as it is)."""

    def __init__(self, net: nn.Module, task: str, y_mean: float = 0.0, y_std: float = 1.0,
                 guards: list | None = None, score_clip: list | None = None):
        super().__init__()
        self.net, self.task = net, task
        # a regressor's third output, "score": the prediction clipped as deepqoe predict clips it
        self.score_clip = None if score_clip is None else (float(score_clip[0]), float(score_clip[1]))
        self.y_mean, self.y_std = float(y_mean), float(y_std)
        self.bounds: list = []
        for i, g in enumerate(guards or []):
            self.bounds.append(None if g is None else (g["lo"], g["hi"], g["fill"] is not None))
            if g is not None and g["fill"] is not None:
                self.register_buffer(f"fill_{i}", torch.as_tensor(g["fill"], dtype=torch.float32))

    @classmethod
    def for_model(cls, est, guards: list | None = None, score_clip: list | None = None) -> "_Exportable":
        """The wrapper of a table model ``est`` (its network and target scaling), in eval mode."""
        return cls(est.network_, est.task, getattr(est, "y_mean_", 0.0), getattr(est, "y_std_", 1.0), guards,
                   score_clip).eval()

    def forward(self, *inputs):
        xs = list(inputs)
        for i, b in enumerate(self.bounds):
            if b is not None:
                lo, hi, fill = b
                x = torch.clamp(xs[i], lo, hi)  # +-inf -> the bound, as np.clip in the Python path
                xs[i] = torch.where(torch.isnan(xs[i]), getattr(self, f"fill_{i}"), x) if fill else x
        out = self.net(xs)
        if self.task == "classification":
            return out, torch.softmax(out, 1)
        pred = out[:, 0] * self.y_std + self.y_mean
        if self.score_clip is not None:
            return out, pred, torch.clamp(pred, self.score_clip[0], self.score_clip[1])
        return out, pred


def _safe(name: str, used: set) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name) or "input"
    base, k = s, 1
    while s in used:
        k += 1
        s = f"{base}_{k}"
    used.add(s)
    return s


#: the category code of a value not in the vocabulary (and of a missing viewer)
UNKNOWN_CODE = 0


def _source(est, cfg) -> dict | None:
    """Where a vector input's columns come from when the training config read them from a feature file."""
    ds = (getattr(est, "meta_", None) or {}).get("dataset") or {}
    for d in ds.get("inputs") or []:
        if isinstance(d, dict) and (d.get("name") or d.get("column")) == cfg.key and d.get("file"):
            f = str(d["file"])
            if f.lower().endswith(".mat"):
                return {"file": f, "mat_key": d.get("mat_key"),
                        "join": "row i of the matrix is row i of the table; column j is named '<input>__<j>'"}
            return {"file": f, "id_column": d.get("file_id_column") or "id", "table_column": d.get("column"),
                    "join": "the row of the feature file whose id_column equals the table's table_column (as "
                            "text); its numeric column C is named '<input>__C'"}
    return None


def _numeric_preprocessing(cfg, enc, source) -> dict:

    vector = cfg.modality == "vector"
    nan_to = cfg.nan_to if vector else None
    norm = cfg.normalisation
    if vector and norm == "minmax":
        norm = "standard"  # pre-computed feature vectors are always standardised (ContinuousEncoder.fit)
    clip = [-VECTOR_CLIP, VECTOR_CLIP] if vector else None
    steps = ["x = the row's values of 'columns' (float64)",
             f"NaN, +inf and -inf -> {nan_to!r} (nan_to)" if nan_to is not None
             else "NaN or inf: an error (deepqoe predict rejects the row)",
             f"|x| > {MAX_ABS_VALUE:g}: an error"]
    if cfg.log:
        steps.append("x = log1p(x) (log: x < 0 is an error)")
    steps.append("x = (x - shift) / scale, per column (shift, scale: 'encoder'; normalisation "
                 f"{norm!r} fitted on the training split)")
    steps.append(f"x = clip(x, {clip[0]:g}, {clip[1]:g})" if clip else "no clip: values outside the training "
                 "range go in as they are")
    steps.append("cast to float32 (a non-finite result is an error)")
    out = {"type": "vector" if vector else "numeric", "columns": list(enc.columns), "nan_to": nan_to,
           "nan_in_graph": nan_to is not None, "max_abs": MAX_ABS_VALUE, "log1p": bool(cfg.log),
           "normalisation": norm, "shift": np.asarray(enc.shift).tolist(), "scale": np.asarray(enc.scale).tolist(),
           "clip": clip, "clip_in_graph": clip is not None, "steps": steps}
    if source:
        out["source"] = source
    return out


def _preprocessing(est, cfg, enc) -> dict:
    """How deepqoe predict turns the raw table into this input's tensor (phase 1), every step of it."""
    from deepqoe.features.text import _TOKEN

    if isinstance(enc, ContinuousEncoder):
        return _numeric_preprocessing(cfg, enc, _source(est, cfg))
    if isinstance(enc, CategoricalEncoder):
        viewer = cfg.role == "viewer"
        return {"type": "categorical", "column": cfg.column, "unknown_code": UNKNOWN_CODE,
                "cardinality": len(enc.vocabulary) + 1,
                "as_text": "a column of floating-point numbers: an integral value of magnitude below 2**53 as its "
                           "integer digits (1080.0 -> '1080'), any other value as Python's str(); any other "
                           "column: str(value), except that a text matching the regular expression "
                           "-?(0|[1-9][0-9]*)\\.0+ in full (a plain decimal integer with a zero fraction) "
                           "whose integer is of magnitude below 2**53 is that integer's digits ('1080.0' -> "
                           "'1080', '-0.0' -> '0'; '007', '1e3' and '1080.5' stay as written)",
                "missing": "unknown" if viewer else "error", "column_absent": "unknown" if viewer else "error",
                "steps": ["code = 1 + position of the value's text in encoder.vocabulary",
                          f"a value not in the vocabulary -> {UNKNOWN_CODE} (the unknown bucket)",
                          f"a missing value (or no such column) -> {UNKNOWN_CODE}, the unknown viewer" if viewer
                          else "a missing value: an error", "int64"]}
    if isinstance(enc, TextEncoder):
        if cfg.embedding == "minilm":
            how = ["v = the all-MiniLM-L6-v2 sentence embedding of str(value) (sentence-transformers' encode, "
                   "default settings)"]
        else:
            how = ["text = str(value); a lower-case letter followed by an upper-case one gets a space between "
                   "them ('ActionMovie' -> 'Action Movie'); lower-cased; '_' and '-' -> ' '",
                   f"words = every match of the regular expression {_TOKEN.pattern!r}",
                   f"v = the mean of the float32 {cfg.embedding} vectors of the words in its vocabulary (other "
                   "words are skipped); the zero vector when no word is known"]
        return {"type": "text", "column": cfg.column, "embedding": cfg.embedding, "dim": enc.dim,
                "missing": "error", "steps": how + ["a missing value: an error", "float32"]}
    if isinstance(enc, SequenceEncoder):
        L = cfg.sequence_length
        return {"type": "sequence", "column": cfg.column, "length": L, "channels": enc.channels,
                "mean": np.asarray(enc.mean).tolist(), "std": np.asarray(enc.std).tolist(), "missing": "error",
                "max_abs": MAX_ABS_VALUE,
                "steps": ["a = the value as a (steps, channels) float64 array: a list of numbers is one channel, "
                          "a list of per-step lists one channel per entry; JSON text is parsed first",
                          f"an empty series, NaN, inf or |a| > {MAX_ABS_VALUE:g}: an error",
                          f"a = (a[:{L}] - mean) / std (the first {L} steps, per channel)",
                          f"tensor [channels + 1, {L}] float32, zeros; [:channels, :len(a)] = a.T; "
                          "[channels, :len(a)] = 1 (the valid-step mask)"]}
    return {"type": type(enc).__name__, "steps": ["see deepqoe.features.tabular"]}  # pragma: no cover


def input_descriptions(est) -> list[dict]:
    """One entry per ONNX input: name, kind, dtype, shape, the encoder state and ``preprocessing``: every
    step that turns the table's values into the tensor (missing values, log, scaling, clip, codes)."""
    used: set = set()
    out = []
    for cfg, enc in zip(est.input_configs_, est.encoders_):
        d = enc.describe()
        kind = d["kind"]
        if kind == "index":
            shape, dtype = ["batch"], "int64"
        elif kind == "sequence":
            shape, dtype = ["batch", d["channels"], d["length"]], "float32"
        else:
            shape, dtype = ["batch", d["dim"]], "float32"
        state = enc.state()
        state = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in state.items()
                 if k not in ("oov",)}
        out.append({"name": _safe(cfg.key, used), "input": cfg.key, "kind": kind, "dtype": dtype, "shape": shape,
                    "modality": cfg.modality, "columns": enc.columns, "log": bool(getattr(cfg, "log", False)),
                    "encoder": state, "preprocessing": _preprocessing(est, cfg, enc)})
    return out


def input_guards(descriptions: list[dict]) -> list[dict | None]:
    """Per input, what the graph itself does before the network (None: nothing): a vector input is clipped
    to ``clip`` and a NaN entry becomes the encoded ``nan_to`` of its column, so a consumer that skips those
    two steps gets the same scores."""
    out = []
    for d in descriptions:
        p = d.get("preprocessing") or {}
        if not p.get("clip_in_graph"):
            out.append(None)
            continue
        lo, hi = p["clip"]
        fill = None
        if p.get("nan_in_graph") and p.get("nan_to") is not None:
            v = np.full(len(p["shift"]), float(p["nan_to"]))
            with np.errstate(all="ignore"):
                v = np.log1p(v) if p["log1p"] else v
                v = np.clip((v - np.asarray(p["shift"])) / np.asarray(p["scale"]), lo, hi)
            fill = v.astype(np.float32) if np.isfinite(v).all() else None  # (log of a negative nan_to: an error)
        out.append({"lo": float(lo), "hi": float(hi), "fill": fill})
    return out


def encode_with_metadata(descriptions: list[dict], frame, graph_does: bool = False) -> dict[str, np.ndarray]:
    """The ONNX feeds of the rows of ``frame`` (a DataFrame), built from the metadata ``deepqoe.inputs``
    (``descriptions``) alone, as another runtime would; ``graph_does``: leave out the steps the graph does
    itself (the clip and the NaN replacement of vector inputs). Text inputs use deepqoe's word vectors.
    A value ``deepqoe predict`` rejects raises a DeepQoEError."""
    import json as _json

    import pandas as pd

    feeds = {}
    for d in descriptions:
        p = d["preprocessing"]
        t = p["type"]
        if t in ("numeric", "vector"):
            cols = p["columns"]
            for c in cols:
                if c not in frame.columns:
                    raise DeepQoEError(f"input '{d['input']}': no column '{c}'", column=c)
            x = np.column_stack([pd.to_numeric(frame[c]).to_numpy(dtype=np.float64, na_value=np.nan)
                                 for c in cols]) if len(frame) else np.zeros((0, len(cols)))
            bad = ~np.isfinite(x)
            if bad.any() and p["nan_to"] is None:
                raise DeepQoEError("a missing or infinite value", column=cols[int(np.argwhere(bad)[0][1])])
            if p["nan_to"] is not None and not (graph_does and p["nan_in_graph"]):
                x = np.where(bad, p["nan_to"], x)
            elif p["nan_to"] is not None:
                x = np.where(bad, np.nan, x)  # inf too is missing: NaN, which the graph fills (it clips inf)
            if (np.abs(np.nan_to_num(x)) > p["max_abs"]).any():
                raise DeepQoEError(f"a value above {p['max_abs']:g} in magnitude", field=d["input"])
            if p["log1p"]:
                if (np.nan_to_num(x) < 0).any():
                    raise DeepQoEError("log scaling needs values >= 0", field=d["input"])
                x = np.log1p(x)
            x = (x - np.asarray(p["shift"])) / np.asarray(p["scale"])
            if p["clip"] is not None and not (graph_does and p["clip_in_graph"]):
                x = np.clip(x, *p["clip"])
            with np.errstate(over="ignore"):
                feeds[d["name"]] = x.astype(np.float32)
        elif t == "categorical":
            c = p["column"]
            index = {v: i + 1 for i, v in enumerate(d["encoder"]["vocabulary"])}
            if c not in frame.columns:
                if p["column_absent"] != "unknown":
                    raise DeepQoEError(f"input '{d['input']}': no column '{c}'", column=c)
                feeds[d["name"]] = np.full(len(frame), p["unknown_code"], dtype=np.int64)
                continue
            missing = frame[c].isna().to_numpy()
            if missing.any() and p["missing"] != "unknown":
                raise DeepQoEError("a missing categorical value", column=c)
            codes = np.asarray([index.get(v, p["unknown_code"]) for v in CategoricalEncoder._as_str(frame[c])], dtype=np.int64)
            codes[missing] = p["unknown_code"]
            feeds[d["name"]] = codes.reshape(len(frame))
        elif t == "text":
            from deepqoe.features.text import embed_texts

            c = p["column"]
            if frame[c].isna().any():
                raise DeepQoEError("a missing text value", column=c)
            feeds[d["name"]] = embed_texts(frame[c].astype(str).tolist(), p["embedding"])[0].astype(np.float32)
        elif t == "sequence":
            L, ch = p["length"], p["channels"]
            mean, std = np.asarray(p["mean"]), np.asarray(p["std"])
            out = np.zeros((len(frame), ch + 1, L), dtype=np.float32)
            for i, v in enumerate(frame[p["column"]].tolist()):
                a = np.asarray(_json.loads(v) if isinstance(v, str) else v, dtype=np.float64)
                a = a[:, None] if a.ndim == 1 else a
                if a.ndim != 2 or not len(a) or a.shape[1] != ch or not np.isfinite(a).all() \
                        or np.abs(a).max() > p["max_abs"]:
                    raise DeepQoEError("not a valid series", column=p["column"], row=i + 1)
                a = (a[:L] - mean) / std
                out[i, :-1, :len(a)] = a.T
                out[i, -1, :len(a)] = 1.0
            feeds[d["name"]] = out
        else:  # pragma: no cover
            raise DeepQoEError(f"input '{d['input']}': no preprocessing for {t!r}")
    return feeds


def example_rows(est, n: int = 16, seed: int = 0):
    """``n`` rows of raw values every input of ``est`` accepts, then 6 rows of the hard cases: numbers
    outside the training range (in vector inputs 1e6 and 50 scales away: the clip), NaN and inf in vector
    inputs (their nan_to), a category the training split did not have (and a missing viewer), series
    longer than the sequence length."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    m = n + 6
    cols: dict = {}
    for cfg, enc in zip(est.input_configs_, est.encoders_):
        if isinstance(enc, ContinuousEncoder):
            vector = cfg.modality == "vector"
            for j, c in enumerate(enc.columns):
                sh, sc = float(enc.shift[j]), float(enc.scale[j])
                u = rng.uniform(-0.5, 1.5, m) if cfg.normalisation == "minmax" and not vector else rng.normal(0, 1.5, m)
                # far outside the training range: a vector input is clipped there; any other input goes
                # in as it is, so only a few ranges away (its outputs stay on a scale where |ONNX - PyTorch|
                # measures the export, not float32 rounding of a huge score)
                far = [1e6, -1e6, sh + 50 * sc, sh - 50 * sc] if vector else [sh + 3 * sc, sh - 3 * sc] * 2
                if cfg.log:  # (far is in log space; raw values >= 0)
                    x = np.expm1(np.clip(sh + sc * u, 0, 30))
                    x[n:n + 4] = np.expm1(np.clip([np.log1p(1e6), np.log1p(1e12), *far[2:]] if vector else far,
                                                  0, 30))
                else:
                    x = sh + sc * u
                    x[n:n + 4] = far
                if vector and cfg.nan_to is not None:
                    x[n + 4] = np.nan
                    x[n + 5] = np.inf if j % 2 == 0 else -np.inf
                cols[c] = np.where(np.isfinite(x), np.clip(x, -1e14, 1e14), x)  # (inside MAX_ABS_VALUE)
        elif isinstance(enc, CategoricalEncoder):
            vocab = list(enc.vocabulary) or ["a"]
            vals: list = [vocab[int(k)] for k in rng.integers(0, len(vocab), m)]
            vals[n] = "__not_in_training__"
            if cfg.role == "viewer":
                vals[n + 1] = None
            cols[cfg.column] = vals
        elif isinstance(enc, TextEncoder):
            words = ["action movie", "news", "SportsGame", "cartoon_for-kids", "zzqqxx unknownword", "drama"]
            cols[cfg.column] = [words[int(k)] for k in rng.integers(0, len(words), m)]
        elif isinstance(enc, SequenceEncoder):
            L = cfg.sequence_length
            seqs = []
            for i in range(m):
                k = int(rng.integers(1, L + 6))
                a = np.asarray(enc.mean) + np.asarray(enc.std) * rng.normal(0, 1.5, (k, enc.channels))
                if i == n:
                    a[0, 0] = 1e6
                seqs.append(a[:, 0].tolist() if enc.channels == 1 else a.tolist())
            cols[cfg.column] = seqs
    return pd.DataFrame(cols)


def example_tensors(est, n: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """Random but valid encoded inputs (for tracing and parity checks)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for enc in est.encoders_:
        d = enc.describe()
        if d["kind"] == "index":
            out.append(torch.randint(0, max(d["cardinality"], 1), (n,), generator=g))
        elif d["kind"] == "sequence":
            L = d["length"]
            x = torch.randn(n, d["channels"], L, generator=g)
            lengths = torch.randint(1, L + 1, (n,), generator=g)
            mask = (torch.arange(L)[None, :] < lengths[:, None]).float()
            x[:, :-1] *= mask[:, None]
            x[:, -1] = mask
            out.append(x)
        else:
            out.append(torch.randn(n, d["dim"], generator=g))
    return out


def _is_session_qoe_model(est) -> bool:
    from deepqoe.sessions.qoe_model import SessionQoEModel

    return isinstance(est, SessionQoEModel)


#: the lowest ONNX opset every deepqoe network exports to (the session model's tracks need opset 11's ops)
MIN_OPSET = 11


def max_opset() -> int:
    """The highest ONNX opset this torch's exporter writes."""
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET
    except ImportError:  # pragma: no cover - a torch that moved it
        return 20
    return int(ONNX_MAX_OPSET)


def _write_onnx(wrapper: nn.Module, example: tuple, path: Path, input_names: list[str], output_names: list[str],
                dynamic: dict, meta: dict, doc: str, opset: int) -> None:
    """Trace ``wrapper`` on ``example``, add the metadata, check the graph and write it atomically."""
    from deepqoe.io import atomic_path

    try:
        import onnx
    except ModuleNotFoundError:
        raise DeepQoEError("ONNX export needs the 'onnx' package: pip install 'deepqoe[serve]'") from None
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = dict(input_names=input_names, output_names=output_names, dynamic_axes=dynamic,
                          opset_version=opset)
            try:
                try:
                    torch.onnx.export(wrapper, example, str(tmp), dynamo=False, **kwargs)
                except TypeError:  # an older torch without the dynamo switch
                    torch.onnx.export(wrapper, example, str(tmp), **kwargs)
            except (RuntimeError, ValueError) as e:  # an operator the asked opset lacks, and the like
                first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
                raise DeepQoEError(f"the ONNX export failed at opset {opset}: {first[:300]} (the default opset 17 "
                                   "works for every deepqoe model)", field="opset") from None
        m = onnx.load(str(tmp))
        for k, v in meta.items():
            p = m.metadata_props.add()
            p.key, p.value = k, v
        m.doc_string = doc
        onnx.checker.check_model(m)
        onnx.save(m, str(tmp))


def _score_bounds(est) -> tuple[list[float] | None, str | None]:
    """The range ``deepqoe predict`` clips a regression table model's score to, and why
    (:meth:`deepqoe.predictor.Predictor.score_clip`); (None, None) for a classifier, a model that predicts
    sessions, or one with neither."""
    from deepqoe.predictor import Predictor

    clip = Predictor(est).score_clip()
    return (None, None) if clip is None else ([float(clip[0][0]), float(clip[0][1])], clip[1])


def export_onnx(model: str | Path, path: str | Path, opset: int = 17, calibration: str | None = None) -> dict:
    """Export a model directory (or shipped model name) to an ONNX file; returns the metadata written.
    ``calibration``: a session model's training dataset whose use of the scale the file scores with
    (``deepqoe predict --calibration``; default: the average calibration)."""
    from deepqoe import __version__
    from deepqoe.persistence import load_model

    est = load_model(model)
    if _is_session_qoe_model(est):
        return _export_session_model(est, Path(path), opset, calibration)
    if calibration is not None:
        raise DeepQoEError("--calibration is for session models trained on several datasets", field="calibration")
    est.network_.eval()
    task = est.task
    inputs = input_descriptions(est)
    bounds, why = _score_bounds(est)
    wrapper = _Exportable.for_model(est, input_guards(inputs), bounds)
    names = [d["name"] for d in inputs]
    second = "probabilities" if task == "classification" else "prediction"
    outputs = ["output", second] + (["score"] if bounds else [])
    dynamic = {nm: {0: "batch"} for nm in names + outputs}
    meta = {
        "deepqoe.version": __version__,
        "deepqoe.model": json.dumps({"name": est.meta_.get("name") or Path(est.model_dir_).name,
                                     "estimator": type(est).__name__, "task": task,
                                     "classes": est.classes_.tolist() if task == "classification" else None,
                                     "target": None if task == "classification" else
                                     {"mean": est.y_mean_, "std": est.y_std_},
                                     "score_clip": bounds, "score_clip_reason": why,
                                     "session_model": est.meta_.get("session_model")}),
        "deepqoe.inputs": json.dumps(inputs),
        "deepqoe.outputs": json.dumps([
            {"name": "output", "meaning": "logits, one per class" if task == "classification"
             else "standardised score (prediction = output * target.std + target.mean)"},
            {"name": second, "meaning": "softmax probabilities, one per class in deepqoe.model.classes"
             if task == "classification" else "predicted score on the model's scale, before the clip"}]
            + ([{"name": "score", "meaning": f"the prediction clipped to [{bounds[0]:g}, {bounds[1]:g}] ({why}; "
                 "deepqoe.model.score_clip): the score deepqoe predict gives"}] if bounds else [])),
        "deepqoe.encoding": "inputs are the encoded tensors of deepqoe.features.tabular (see deepqoe.inputs)",
        "deepqoe.preprocessing": "each input of deepqoe.inputs has 'preprocessing': every step from the table's "
                                 "values to its tensor ('steps', in order; missing values, log1p, shift/scale, "
                                 "clip, category codes with 0 = unknown). The graph itself clips vector inputs "
                                 "and replaces their NaN entries (clip_in_graph, nan_in_graph)",
    }
    _write_onnx(wrapper, tuple(example_tensors(est)), Path(path), names, outputs, dynamic, meta,
                "DeepQoE network; inputs are encoded tensors per branch, see metadata deepqoe.inputs", opset)
    return meta


# ---------------------------------------------------------------------------------------- session models
#: The inputs of an exported session model: (name, dtype, shape, meaning), in the graph's order.
SESSION_INPUTS = [
    ("q", "float32", ["batch", "steps"], "quality track 0-1 per media step, padded with its last value"),
    ("decay_steps", "float32", ["batch"], "step length of the quality track (s)"),
    ("device", "int64", ["batch"], "index in deepqoe.sessions.qoe_model.DEVICES"),
    ("mapped", "float32", ["batch"], "1.0 when the quality comes from the bitrate mapping, not a metric"),
    ("p_sess", "int64", ["points"], "session (row of q) of each evaluation point"),
    ("p_step", "int64", ["points"], "last media step played at each evaluation point"),
    ("fixed", "float32", ["points", 7], "q_running_mean, stall_rate_log, stall_share, stall_longest_log, "
                                        "startup_log, switch_rate_log, media_played (s) at each point"),
    ("st_age", "float32", ["points", "stalls"], "media age of each started stall (s)"),
    ("st_mag", "float32", ["points", "stalls"], "log(1 + elapsed duration) of each stall (0 = not started)"),
    ("sw_recent", "float32", ["batch", "steps"], "switches in each media step"),
]
SESSION_OUTPUT = "score"


def _memory_tracks(q: torch.Tensor, sw: torch.Tensor, up: torch.Tensor, down: torch.Tensor,
                   sw_dec: torch.Tensor) -> torch.Tensor:
    """The loop of ``SessionQoENet.parts`` for K members at once: q, sw (B, J); up, down, sw_dec (K, B)
    per-step rates -> (K, B, J, 3): memory m, running mean of m, switch recency after each step."""
    m = q[:, 0].unsqueeze(0).expand(up.shape[0], q.shape[0])
    msum = torch.zeros_like(up)
    swr = torch.zeros_like(up)
    out = []
    for j in range(q.shape[1]):
        qj = q[:, j].unsqueeze(0)
        a = torch.where(qj < m, down, up)
        m = m + a * (qj - m)
        msum = msum + m
        swr = swr * sw_dec + sw[:, j].unsqueeze(0)
        out.append(torch.stack([m, msum / (j + 1), swr], 2))
    return torch.stack(out, 2)


@functools.cache
def _scripted_memory_tracks():
    """:func:`_memory_tracks` compiled by TorchScript, so the export keeps the loop as an ONNX Loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(_memory_tracks)


class SessionExportable(nn.Module):
    """The forward of a SessionQoEModel's ensemble (``model.net_``) on plain Batch tensors.

    Same computation as ``torch.stack([net(batch) for net in model.net_]).mean(0)``: the memory loop of
    :meth:`SessionQoENet.parts` runs once for every member as an ONNX Loop (:func:`_memory_tracks`); each
    member's ``parts`` (given that track) and ``score_from_parts`` are used as they are."""

    def __init__(self, nets: nn.ModuleList, calibration: int | None = None):
        super().__init__()
        self.nets = nets
        self.calibration = calibration  # the index of a training dataset's calibration (None: the average)

    def forward(self, q, decay_steps, device, mapped, p_sess, p_step, fixed, st_age, st_mag, sw_recent):
        rates = [net.rates() for net in self.nets]
        up = torch.stack([1 - (1 - u) ** decay_steps for u, _ in rates])        # (K, B) per-step rates
        down = torch.stack([1 - (1 - d) ** decay_steps for _, d in rates])
        sw_dec = torch.stack([torch.exp(-decay_steps / torch.exp(net.switch_tau)) for net in self.nets])
        track = _scripted_memory_tracks()(q, sw_recent, up, down, sw_dec)       # (K, B, J, 3)
        b = SimpleNamespace(device=device, mapped=mapped, p_sess=p_sess, p_step=p_step, fixed=fixed,
                            st_age=st_age, st_mag=st_mag)
        cal = calibration_points(self.calibration, b)
        scores = [net.score_from_parts(net.parts(b, track[k]), b, cal) for k, net in enumerate(self.nets)]
        return torch.stack(scores).mean(0)


def session_feeds(batch) -> dict[str, np.ndarray]:
    """The ONNX inputs of an exported session model, by name, from ``make_batch(sessions, mapping, curves)``."""
    return {name: getattr(batch, name).numpy().astype(np.int64 if dtype == "int64" else np.float32)
            for name, dtype, _, _ in SESSION_INPUTS}


def _example_sessions() -> list:
    from deepqoe.sessions.frame import example_sessions, parse_sessions

    return parse_sessions(example_sessions())


def _export_session_model(est, path: Path, opset: int, calibration: str | None = None) -> dict:
    from deepqoe import __version__
    from deepqoe.sessions.qoe_model import make_batch

    est.net_.eval()
    wrapper = SessionExportable(est.net_, est.calibration_index(calibration)).eval()  # an unknown name: an error
    # trace on real sessions with curves: several sessions, points, steps and stalls
    feeds = session_feeds(make_batch(_example_sessions(), est.mapping_, True))
    names = [name for name, _, _, _ in SESSION_INPUTS]
    dynamic = {name: {i: d for i, d in enumerate(shape) if isinstance(d, str)}
               for name, _, shape, _ in SESSION_INPUTS}
    dynamic[SESSION_OUTPUT] = {0: "points"}
    meta = {
        "deepqoe.version": __version__,
        "deepqoe.model": json.dumps({"name": est.meta_.get("name") or Path(est.model_dir_).name,
                                     "estimator": type(est).__name__, "task": "regression", "scale": est.scale,
                                     "members": len(est.net_), "calibrations": est.calibrations_,
                                     "calibration": calibration,
                                     "quality_mapping": est.mapping_.state(),
                                     "session_model": est.meta_.get("session_model")}),
        "deepqoe.inputs": json.dumps([{"name": n, "dtype": t, "shape": sh, "meaning": m}
                                      for n, t, sh, m in SESSION_INPUTS]),
        "deepqoe.outputs": json.dumps([{"name": SESSION_OUTPUT, "dtype": "float32", "shape": ["points"],
                                        "meaning": f"score on the {est.scale} scale at every evaluation point "
                                                   "(a session's last point = its score)"}]),
        "deepqoe.preprocessing": "build the inputs in Python: deepqoe.sessions.qoe_model.make_batch(sessions, "
                                 "model.mapping_, curves) -> deepqoe.export.session_feeds(batch); the memory "
                                 "loop over 'steps' is an ONNX Loop (any track length)",
    }
    example = tuple(torch.from_numpy(feeds[n]) for n in names)
    _write_onnx(wrapper, example, path, names, [SESSION_OUTPUT], dynamic, meta,
                "DeepQoE session model (SessionQoEModel); inputs are the tensors of "
                "deepqoe.sessions.qoe_model.make_batch, see metadata deepqoe.inputs", opset)
    return meta


def onnx_session(path: str | Path):
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise DeepQoEError("running ONNX models needs 'onnxruntime': pip install 'deepqoe[serve]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def parity(model: str | Path, onnx_path: str | Path, X=None, n: int = 16) -> float:
    """Max |ONNX - PyTorch| / max(1, |PyTorch|) over the outputs (the absolute difference for outputs up to 1
    in magnitude; inf when either is not finite), on the rows of ``X`` or, by
    default, on random valid encoded tensors and on :func:`example_rows` (outliers, NaN and inf in vector
    inputs, unseen categories). PyTorch reads the rows through deepqoe's encoders (as ``deepqoe predict``);
    ONNX reads them encoded from the file's metadata alone (:func:`encode_with_metadata`), once with every
    step and once leaving the clip and NaN replacement of vector inputs to the graph.
    For a session model: on the sessions ``X`` (or the example sessions), every point of their curves, with
    the calibration the file was exported with (its metadata)."""
    from deepqoe.persistence import load_model

    est = load_model(model)
    if _is_session_qoe_model(est):
        from deepqoe.sessions.qoe_model import make_batch

        sessions = list(X) if X is not None else _example_sessions()
        if not all(hasattr(s, "media_duration") for s in sessions):
            raise DeepQoEError("the parity check of a session model takes a list of sessions "
                               "(deepqoe.sessions.Session), not a table")
        batch = make_batch(sessions, est.mapping_, True)
        sess = onnx_session(onnx_path)
        calibration = json.loads(sess.get_modelmeta().custom_metadata_map["deepqoe.model"]).get("calibration")
        cal = calibration_points(est.calibration_index(calibration), batch)
        with torch.no_grad():
            ref = torch.stack([net(batch, cal) for net in est.net_]).mean(0).numpy()
        got = sess.run([SESSION_OUTPUT], session_feeds(batch))[0]
        return float(np.max(np.abs(ref.astype(np.float64) - got.astype(np.float64))))
    # the Python path: deepqoe predict's encoders, then the network (no guard: its inputs are already clipped)
    sess = onnx_session(onnx_path)
    clip = _score_bounds(est)[0] if any(o.name == "score" for o in sess.get_outputs()) else None
    wrapper = _Exportable.for_model(est, score_clip=clip)
    names = [d["name"] for d in input_descriptions(est)]

    def gap(tensors: list, feeds: dict) -> float:
        with torch.no_grad():
            ref = [t.numpy() for t in wrapper(*tensors)]
        got = sess.run(None, feeds)
        d = [np.abs(a.astype(np.float64) - b.astype(np.float64)) / np.maximum(1.0, np.abs(a.astype(np.float64)))
             for a, b in zip(ref, got)]  # absolute up to 1, relative beyond (float32 rounding of huge scores)
        return float(max(np.max(x) if np.isfinite(x).all() else np.inf for x in d))

    worst = 0.0
    if X is None:  # random encoded tensors, then raw rows with outliers, NaN, unseen categories
        tensors = example_tensors(est, n=n, seed=1)
        worst = gap(tensors, {nm: t.numpy() for nm, t in zip(names, tensors)})
        frame = example_rows(est, n=n, seed=1)
    else:
        frame = est._table(X, fit=False)
    tensors = est._encode_table(frame)
    described = json.loads(sess.get_modelmeta().custom_metadata_map.get("deepqoe.inputs") or "[]")
    if len(described) == len(names) and all("preprocessing" in d for d in described):
        # the file's own metadata, followed as another runtime would: every step, then only those the graph
        # does not do itself
        for graph_does in (False, True):
            worst = max(worst, gap(tensors, encode_with_metadata(described, frame, graph_does)))
    else:  # a file written before the metadata described the preprocessing: the encoded tensors only
        worst = max(worst, gap(tensors, {nm: t.numpy() for nm, t in zip(names, tensors)}))
    return worst
