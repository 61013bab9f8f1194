"""Explanations: how much each input (or group of inputs) moved one prediction.

:func:`explain` works on the encoded tensors the network sees (after phase 1), so it treats every
modality the same way. Each input is compared with its **training baseline**: the mean of the encoded
training values for numbers, text vectors and per-second series (per channel, on the session's own
valid steps), the most frequent category for categorical inputs. The baseline is stored in the model
directory (``model.json`` -> ``explain_baseline``) by :func:`fit_baseline` when the model is built; a
model without one uses the encoders' own statistics (standardised inputs: 0, min-max inputs: the middle
of the range, categories: the most frequent one, text: the zero vector).

Two methods:

* ``"shapley"`` (default when there are at most 10 groups): exact Shapley values over the groups,
  computed with one batched forward pass over all 2^K on/off combinations. The contributions add up
  exactly to ``prediction - baseline`` (``baseline`` = the prediction with every input at its baseline).
* ``"occlusion"``: the change when one group alone is put back to its baseline. Cheap (K + 1 passes),
  but the contributions need not add up.

What is explained: a regressor's score; a classifier's **expected rating** ``sum_k p_k * class_k`` when
its classes are numbers (the 1-5 viewer rating), else the probability of the class predicted for that
row.

Groups: by default one group per input. A model may name groups in ``model.json`` ->
``explain_groups`` as ``{group: [[input_key, channels or null], ...]}`` (session models built on a DeepQoE
network, written before the structured session model, group their inputs into stalls, quality, switches,
startup and context, and split their per-second series by channel).

The shipped ``streaming`` model is the structured session model, which explains itself
(:meth:`deepqoe.sessions.qoe_model.SessionQoEModel.explain_sessions`, method ``"parts"``): each part's
contribution is the score minus the score of the same session without that part's impairments (quality: a
typical quality of 80), each part on its own, so they do not add up and there is no baseline.
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pandas as pd
import torch

from deepqoe.errors import DeepQoEError

MAX_SHAPLEY_GROUPS = 10
_MAX_BATCH_ROWS = 65536


# ------------------------------------------------------------------------------------- baselines
def fit_baseline(est, X) -> list[dict]:
    """The training baseline of each input, in the encoded space (JSON-ready)."""
    tensors = est.encode(X)
    out = []
    for enc, t in zip(est.encoders_, tensors):
        a = t.numpy()
        if getattr(enc.cfg, "role", "feature") == "viewer":  # the viewer's baseline: unknown (the population)
            out.append({"kind": "index", "value": 0})
        elif enc.kind == "index":
            codes, counts = np.unique(a, return_counts=True)
            out.append({"kind": "index", "value": int(codes[np.argmax(counts)])})
        elif enc.kind == "sequence":
            mask = a[:, -1:, :]
            n = np.maximum(mask.sum((0, 2)), 1.0)
            mean = (a[:, :-1, :] * mask).sum((0, 2)) / n
            out.append({"kind": "sequence", "value": mean.astype(float).tolist()})
        else:
            out.append({"kind": "dense", "value": a.mean(0).astype(float).tolist()})
    return out


def default_baseline(est) -> list[dict]:
    """A baseline from the encoders' own statistics (for models saved without one)."""
    out = []
    for enc in est.encoders_:
        d = enc.describe()
        if enc.kind == "index":
            viewer = getattr(enc.cfg, "role", "feature") == "viewer"  # its baseline: unknown (the population)
            out.append({"kind": "index", "value": 1 if d["cardinality"] > 1 and not viewer else 0})
        elif enc.kind == "sequence":
            out.append({"kind": "sequence", "value": [0.0] * (d["channels"] - 1)})
        else:  # standardised numbers / vectors: 0 is the mean; min-max numbers: the middle; text: zero vector
            mid = enc.cfg.modality == "continuous" and enc.cfg.normalisation == "minmax"
            out.append({"kind": "dense", "value": [0.5 if mid else 0.0] * d["dim"]})
    return out


def model_baseline(est) -> list[dict]:
    meta = getattr(est, "meta_", None) or {}
    base = meta.get("explain_baseline") or getattr(est, "explain_baseline_", None)
    if base and len(base) == len(est.encoders_):
        return base
    return default_baseline(est)


def model_groups(est) -> dict[str, list[tuple[int, list[int] | None]]]:
    """Groups as {name: [(branch index, channel indices or None = all), ...]}."""
    keys = [c.key for c in est.input_configs_]
    meta = getattr(est, "meta_", None) or {}
    raw = meta.get("explain_groups") or getattr(est, "explain_groups_", None)
    if not raw:
        return {k: [(i, None)] for i, k in enumerate(keys)}
    groups: dict[str, list] = {}
    used = set()
    for name, members in raw.items():
        for key, chans in members:
            if key not in keys:
                continue  # an input removed from this model (projection 0)
            groups.setdefault(name, []).append((keys.index(key), None if chans is None else list(chans)))
            used.add(key)
    for i, k in enumerate(keys):  # any input not named in a group is its own group
        if k not in used:
            groups[k] = [(i, None)]
    return groups


def _baseline_tensors(est, tensors: list[torch.Tensor], base: list[dict]) -> list[torch.Tensor]:
    out = []
    for t, b in zip(tensors, base):
        if b["kind"] == "index":
            out.append(torch.full_like(t, int(b["value"])))
        elif b["kind"] == "sequence":
            v = torch.tensor(b["value"], dtype=t.dtype).view(1, -1, 1)
            mask = t[:, -1:, :]
            out.append(torch.cat([v * mask, mask], 1))
        else:
            v = torch.tensor(b["value"], dtype=t.dtype).view(1, -1)
            out.append(v.expand_as(t).clone())
    return out


# ------------------------------------------------------------------------------------- outputs
def _output_fn(est, tensors_full: list[torch.Tensor]):
    """A function of network outputs -> the explained value per row, and its description."""
    if est.task == "regression":
        return (lambda out, rows: out[:, 0] * est.y_std_ + est.y_mean_), "predicted score"
    classes = est.classes_.tolist()
    try:
        values = torch.tensor([float(c) for c in classes], dtype=torch.float64)
    except (TypeError, ValueError):
        values = None
    if values is not None:
        return (lambda out, rows: torch.softmax(out.double(), 1) @ values), "expected rating"
    with torch.no_grad():
        pred = est.network_(tensors_full).argmax(1)

    def prob(out, rows):
        return torch.softmax(out.double(), 1).gather(1, pred[rows].view(-1, 1))[:, 0]
    return prob, "probability of the predicted class"


def _mix(x: torch.Tensor, b: torch.Tensor, kind: str, chans: list[int] | None, on: bool) -> torch.Tensor:
    """Tensor x with the given channels put back to the baseline b when ``on`` is False."""
    if on:
        return x
    if chans is None or kind == "index":
        return b
    out = x.clone()
    out[:, chans] = b[:, chans]
    return out


def _values(est, tensors, base_t, groups, coalitions: np.ndarray, fn) -> np.ndarray:
    """The explained value for each coalition (rows: coalitions, columns: data rows)."""
    kinds = [enc.kind for enc in est.encoders_]
    names = list(groups)
    n = len(tensors[0])
    # per branch, which groups own which channels
    owners: list[list[tuple[int, list[int] | None]]] = [[] for _ in tensors]
    for g, name in enumerate(names):
        for j, chans in groups[name]:
            owners[j].append((g, chans))
    per_chunk = max(1, _MAX_BATCH_ROWS // max(n, 1))
    vals = np.empty((len(coalitions), n))
    rows = torch.arange(n)
    est.network_.eval()
    with torch.no_grad():
        for s in range(0, len(coalitions), per_chunk):
            zs = coalitions[s:s + per_chunk]
            parts = []
            for j, (x, b) in enumerate(zip(tensors, base_t)):
                mixed = []
                for z in zs:
                    t = x
                    for g, chans in owners[j]:
                        if not z[g]:
                            t = _mix(t, b, kinds[j], chans, False)
                    if not owners[j]:
                        t = x
                    mixed.append(t)
                parts.append(torch.cat(mixed, 0))
            out = est.network_(parts)
            v = fn(out, rows.repeat(len(zs)))
            vals[s:s + len(zs)] = v.double().numpy().reshape(len(zs), n)
    return vals


def explain(est, X, method: str = "auto", groups: dict | None = None) -> pd.DataFrame:
    """Contribution of each input (group) to each prediction of ``est`` on ``X``.

    ``X`` is what ``est.predict`` takes. Returns a DataFrame indexed like ``X`` with one column per group, plus ``baseline`` (the value
    with every input at its training baseline) and ``prediction`` (the explained value: score,
    expected rating, or probability; see the module doc). ``df.attrs`` holds ``method`` and ``output``.
    """
    if len(X) == 0:
        raise DeepQoEError("nothing to explain: X has no rows")
    groups = groups or model_groups(est)
    K = len(groups)
    if method == "auto":
        method = "shapley" if K <= MAX_SHAPLEY_GROUPS else "occlusion"
    if method not in ("shapley", "occlusion"):
        raise DeepQoEError(f"unknown explanation method {method!r}; use 'shapley' or 'occlusion'")
    if method == "shapley" and K > MAX_SHAPLEY_GROUPS:
        raise DeepQoEError(f"exact Shapley values over {K} groups is too costly (at most "
                           f"{MAX_SHAPLEY_GROUPS}); use method='occlusion' or fewer groups")
    tensors = est.encode(X)
    n = len(tensors[0])
    base_t = _baseline_tensors(est, tensors, model_baseline(est))
    fn, what = _output_fn(est, tensors)
    names = list(groups)
    if method == "shapley":
        coal = np.array(list(product([False, True], repeat=K)), dtype=bool)[:, ::-1]  # bit g = group g
        vals = _values(est, tensors, base_t, groups, coal, fn)
        code = (coal * (1 << np.arange(K))).sum(1)
        pos = np.empty(1 << K, dtype=np.int64)
        pos[code] = np.arange(len(coal))
        size = coal.sum(1)
        w = np.array([math.factorial(s) * math.factorial(K - s - 1) / math.factorial(K) if s < K else 0.0
                      for s in range(K + 1)])
        contrib = np.zeros((K, n))
        for g in range(K):
            without = np.flatnonzero(~coal[:, g])
            with_ = pos[code[without] | (1 << g)]
            contrib[g] = (w[size[without]][:, None] * (vals[with_] - vals[without])).sum(0)
        full = vals[pos[(1 << K) - 1]]
        base = vals[pos[0]]
    else:
        coal = np.ones((K + 2, K), dtype=bool)
        coal[0] = False  # all at baseline
        for g in range(K):
            coal[g + 2, g] = False
        vals = _values(est, tensors, base_t, groups, coal, fn)
        base, full = vals[0], vals[1]
        contrib = full[None, :] - vals[2:]
    index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(n)
    df = pd.DataFrame(contrib.T, index=index, columns=names)
    df["baseline"] = base
    df["prediction"] = full
    df.attrs.update(method=method, output=what)
    return df


def explain_records(est, X, method: str = "auto") -> list[dict]:
    """:func:`explain` as a list of JSON-ready dicts (for the service and reports)."""
    df = explain(est, X, method=method)
    groups = [c for c in df.columns if c not in ("baseline", "prediction")]
    return [{"method": df.attrs["method"], "output": df.attrs["output"],
             "baseline": float(r["baseline"]), "value": float(r["prediction"]),
             "contributions": {g: float(r[g]) for g in groups}} for _, r in df.iterrows()]
