"""Per-viewer QoE: who gave a rating as an input, and k-shot adaptation to a new viewer.

A categorical input with ``role: viewer`` (for example ``{column: id_user, modality: categorical, role:
viewer, embedding_dim: 4, unknown_dropout: 0.3}``) gives each viewer seen in training an embedding that
a linear map turns into an offset of the network's output (the logits of a classifier, the score of a
regressor); code 0 is the unknown viewer. While training, ``unknown_dropout`` replaces a row's viewer by
the unknown code with that probability, so the unknown bucket learns the population: the same network
with the viewer unknown *is* the population model. A missing viewer column, a missing value or an id
never seen in training is the unknown viewer (:func:`viewer_labels` says which rows).

:func:`adapt_viewer` adds a new viewer from k of their ratings: one new embedding row, initialised from
the unknown bucket and trained alone (every other weight is kept, so predictions for every other viewer
and for the unknown viewer stay bit-identical), with an L2 pull toward the unknown embedding (a Gaussian
prior). The
result is a fitted estimator like any other, saved with :func:`deepqoe.persistence.save_model` (the
viewer vocabulary, new viewer included, in model.json). ``deepqoe adapt-viewer`` is the command line.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepqoe.errors import DeepQoEError

UNKNOWN = "unknown"


def viewer_input(est) -> int | None:
    """The position of the estimator's viewer input, or None when it has none."""
    for j, cfg in enumerate(getattr(est, "input_configs_", None) or []):
        if getattr(cfg, "role", "feature") == "viewer":
            return j
    return None


def viewer_column(est) -> str | None:
    j = viewer_input(est)
    return None if j is None else est.input_configs_[j].column


def known_viewers(est) -> list[str]:
    """The viewer ids the model knows (its viewer vocabulary), empty when it has no viewer input."""
    j = viewer_input(est)
    return [] if j is None else list(est.encoders_[j].vocabulary)


def viewer_labels(est, X: pd.DataFrame) -> list[str] | None:
    """Per row, the viewer the prediction is for: the id when the model knows it, else ``"unknown"`` (the
    population prediction: no viewer column, a missing value or an id never seen in training). None when
    the model has no viewer input."""
    j = viewer_input(est)
    if j is None:
        return None
    enc = est.encoders_[j]
    codes = enc.transform(X)
    return [enc.vocabulary[c - 1] if c > 0 else UNKNOWN for c in codes.tolist()]


def _viewer_id(value: Any) -> str:
    """A viewer id as the encoder spells it (12 and 12.0 are the same viewer)."""
    from deepqoe.features.tabular import CategoricalEncoder

    return CategoricalEncoder._as_str(pd.Series([value]))[0]


def adapt_viewer(est, X: pd.DataFrame, y, viewer: Any, k: int | None = None, *, steps: int = 200,
                 learning_rate: float = 0.05, l2: float = 1.0):
    """A copy of the fitted estimator ``est`` that knows the new ``viewer``, adapted on the first ``k`` rows
    of (``X``, ``y``), that viewer's ratings (``k=None``: all of them).

    Only the viewer's new embedding row is trained (full batch, Adam, ``steps`` steps, loss summed over the
    k ratings + ``l2`` * squared distance to the unknown viewer's embedding; the default 1.0 was chosen on
    upec-qoe-lab held-out-viewer folds of seed 1, not those ``deepqoe reproduce per_viewer`` reports).
    Every other weight, the unknown viewer's and the other viewers' rows included, is copied unchanged.
    ``k`` larger than the ratings given, a viewer the model already knows, or a model without a viewer
    input is a DeepQoEError."""
    from sklearn.utils.validation import check_is_fitted

    from deepqoe.train import _loss_fn

    check_is_fitted(est, "network_")
    j = viewer_input(est)
    if j is None:
        raise DeepQoEError("this model has no viewer input (an input with role: viewer), so it cannot adapt to "
                           "a viewer; train it on a config that has one")
    if not isinstance(X, pd.DataFrame):
        raise DeepQoEError("X must be a DataFrame with the model's input columns")
    y = np.asarray(y)
    if len(y) != len(X):
        raise DeepQoEError(f"{len(X)} rows but {len(y)} ratings")
    n = len(X)
    k = n if k is None else k
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DeepQoEError(f"k must be a whole number of ratings, at least 1, not {k!r}", field="k")
    if k > n:
        raise DeepQoEError(f"k = {k} ratings asked for, but only {n} rating(s) of viewer {_viewer_id(viewer)!r} "
                           "are given; use a k of at most that", field="k")
    if not (np.isfinite(learning_rate) and learning_rate > 0) or steps < 1:
        raise DeepQoEError("learning_rate must be positive and steps at least 1", field="learning_rate")
    vid = _viewer_id(viewer)
    if not isinstance(vid, str) or not vid.strip() or vid == UNKNOWN:  # a table never names such a viewer
        raise DeepQoEError(f"a viewer id must be a non-empty name other than {UNKNOWN!r} (the unknown viewer, "
                           f"and an empty cell reads as a missing viewer), not {viewer!r}", field="viewer")
    enc = est.encoders_[j]
    if vid in enc._index:
        raise DeepQoEError(f"viewer {vid!r} is already known to the model ({len(enc.vocabulary)} viewers); "
                           "adaptation adds a new viewer", field="viewer")
    X, y = X.iloc[:k].reset_index(drop=True), y[:k]
    col = enc.cfg.column
    X = X.drop(columns=[col], errors="ignore")  # the rows are this viewer's, whatever the column says
    new = copy.deepcopy(est)
    enc = new.encoders_[j]
    tensors = new.encode(X)  # the viewer is absent: code 0 for every row
    target = new._encode_target(y)
    net = new.network_
    net.eval()
    branch = net.branches[j]
    old = branch.encode.weight.detach()
    with torch.no_grad():
        base = net.head(net.representation(tensors))  # everything but the viewer's offset, fixed
    prior = old[0].clone()
    strength = float(l2)
    if not np.isfinite(strength) or strength < 0:
        raise DeepQoEError(f"l2 must be a finite number >= 0, not {l2!r}", field="l2")
    row = nn.Parameter(prior.clone())
    opt = torch.optim.Adam([row], lr=learning_rate)
    loss_fn = _loss_fn(new.task)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        out = base + branch.project(row).unsqueeze(0)
        loss = loss_fn(out, target) * k + strength * ((row - prior) ** 2).sum()
        loss.backward()
        opt.step()
    if not torch.isfinite(row).all():
        raise DeepQoEError("adaptation diverged (a NaN or infinite weight); lower learning_rate",
                           field="learning_rate")
    emb = nn.Embedding(old.shape[0] + 1, old.shape[1]).to(old.device)
    with torch.no_grad():
        emb.weight.copy_(torch.cat([old, row.detach()[None]], 0))
    branch.encode = emb
    branch.spec.cardinality = old.shape[0] + 1
    enc.vocabulary = list(enc.vocabulary) + [vid]
    enc._index = {v: i + 1 for i, v in enumerate(enc.vocabulary)}
    net.eval()
    before = getattr(est, "adapted_viewers_", None) or (getattr(est, "meta_", None) or {}).get("adapted_viewers")
    new.adapted_viewers_ = list(before or []) + [
        {"viewer": vid, "k": int(k), "steps": int(steps), "l2": strength}]
    meta = dict(getattr(est, "meta_", None) or {})
    meta["adapted_viewers"] = new.adapted_viewers_
    new.meta_ = meta
    return new


def save_adapted(est, out_dir) -> None:
    """Save an adapted estimator like any model, keeping its source's model.json entries (dataset,
    explanation baseline, recorded evaluation of the population model) and adding ``adapted_viewers``, with
    the source directory's prediction intervals and rating-distribution heads (``intervals.json``,
    ``distribution.json``: fitted on the population's predictions, which adaptation leaves unchanged; the new
    viewer's predictions use them as they are)."""
    import json

    from deepqoe.persistence import save_model

    state, _ = est.get_state()
    meta = dict(getattr(est, "meta_", None) or {})
    skip = set(state) | {"format_version", "dataset", "versions", "weights_sha256", "name", "built"}
    src = getattr(est, "model_dir_", None)
    files = {}
    for name in ("intervals.json", "distribution.json"):
        f = Path(src) / name if src else None
        if f is not None and f.is_file():
            files[name] = json.loads(f.read_text())
    save_model(est, out_dir, dataset_config=meta.get("dataset"),
               extra={k: v for k, v in meta.items() if k not in skip}, files=files)


def read_viewer_ratings(model_dir, ratings_path, viewer: Any | None) -> tuple[pd.DataFrame, np.ndarray, str]:
    """A viewer's rows and ratings from a table (the model's input columns, its target column and, when
    the table holds several viewers, its viewer column): (X, y, viewer id), rows in file order."""
    from deepqoe.datasets import _target
    from deepqoe.io import read_table
    from deepqoe.persistence import load_model
    from deepqoe.workflow import read_prediction_input

    est = load_model(model_dir)
    meta = est.meta_
    ds = meta.get("dataset") or {}
    target, col = ds.get("target"), viewer_column(est)
    if col is None:
        raise DeepQoEError("this model has no viewer input (an input with role: viewer), so it cannot adapt to "
                           "a viewer", file=str(model_dir))
    X, _ = read_prediction_input(meta, ratings_path)
    reader = ds.get("reader") or {}
    df = read_table(ratings_path, **{k: reader[k] for k in ("sep", "decimal", "encoding") if k in reader})
    if len(df.columns) == 1 and Path(ratings_path).suffix.lower() not in (".parquet", ".pq"):
        df = read_table(ratings_path)  # another separator, as read_prediction_input reads it
    if not target or target not in df.columns:
        raise DeepQoEError(f"the ratings table needs the target column {target!r}", file=str(ratings_path),
                           column=target)
    if col in df.columns:
        ids = _ids(df[col])
        if viewer is None:
            uniq = sorted(set(ids) - {"<NA>", "nan"})
            if len(uniq) != 1:
                raise DeepQoEError(f"the table holds {len(uniq)} viewers in column {col!r}; say which one with "
                                   "--viewer", file=str(ratings_path), column=col)
            viewer = uniq[0]
        keep = np.asarray([v == _viewer_id(viewer) for v in ids])
        if not keep.any():
            raise DeepQoEError(f"no rating of viewer {_viewer_id(viewer)!r} in the table", file=str(ratings_path),
                               column=col)
        X, df = X[keep].reset_index(drop=True), df[keep].reset_index(drop=True)
    elif viewer is None:
        raise DeepQoEError(f"the table has no {col!r} column: say which viewer these ratings are with --viewer",
                           file=str(ratings_path))
    from deepqoe.config import DatasetConfig

    cfg = DatasetConfig.model_validate({k: v for k, v in ds.items() if k != "base_dir"})
    y = _target(cfg, df[target], str(ratings_path))
    return X, y, _viewer_id(viewer)


def _ids(s: pd.Series) -> list[str]:
    """Viewer ids as the encoder spells them."""
    from deepqoe.features.tabular import CategoricalEncoder

    return CategoricalEncoder._as_str(s)
