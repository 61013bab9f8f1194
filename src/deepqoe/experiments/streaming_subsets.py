"""Left-out predictions of the streaming model looked at inside each held-out dataset (section
``streaming_generalisation``): the single inputs with their signs fixed in advance, what a stall costs by the
session's quality (:func:`stall_cost_by_quality`) and the kinds of session the model is also scored on
elsewhere (:func:`by_session_kind`). Nothing here fits a model."""

from __future__ import annotations

import numpy as np

from deepqoe.evaluation.metrics import plcc, srocc
from deepqoe.sessions.qoe_model import quality_steps

SINGLE_INPUTS = ("mean quality", "log bitrate", "- stalls", "- stall time")


def correlations(y, p) -> dict:
    """SROCC and PLCC of predictions ``p`` against scores ``y`` (non-finite predictions left out), rounded; both
    None where they are undefined (under 3 predictions, or all the same)."""
    ok = np.isfinite(p)
    if ok.sum() < 3 or np.std(p[ok]) == 0:
        return {"srocc": None, "plcc": None}
    return {"srocc": round(srocc(y[ok], p[ok]), 4), "plcc": round(plcc(y[ok], p[ok]), 4)}


def single_inputs(sessions, mapping) -> dict[str, np.ndarray]:
    """Each single input, oriented so that higher should mean better (signs fixed in advance)."""
    q = np.array([quality_steps(s, mapping)[0].mean() for s in sessions])
    with np.errstate(divide="ignore", invalid="ignore"):
        lbr = np.array([np.nansum(np.log2(s.bitrate_kbps) * s.seg_duration) / s.media_duration
                        if np.isfinite(s.bitrate_kbps).any() else np.nan for s in sessions])
    reb = [s.stall_start > 1e-6 for s in sessions]
    return {"mean quality": q, "log bitrate": lbr,
            "- stalls": -np.array([float(r.sum()) for r in reb]),
            "- stall time": -np.array([float(s.stall_duration[r].sum()) for s, r in zip(sessions, reb)])}


def stall_cost_by_quality(S: dict, lodo: dict, mapping, long_stall: float = 4.0) -> dict:
    """What a stall costs, by the session's quality: per held-out dataset and tercile of mean quality, the mean
    score of sessions without rebuffering minus that of sessions with more than ``long_stall`` s of it, in
    the MOS and in our leave-one-dataset-out predictions of the same sessions (sizes, not only ranks)."""
    out = {}
    for d, row in lodo.items():
        inputs = single_inputs(S[d].sessions, mapping)
        q, reb = inputs["mean quality"], -inputs["- stall time"]   # rebuffering time, startup excluded
        pred, y = np.asarray(row["prediction"], float), S[d].y
        edges = np.quantile(q, [0, 1 / 3, 2 / 3, 1])
        rows = []
        for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            band = (q >= lo) & ((q <= hi) if k == 2 else (q < hi))
            clean, stalled = band & (reb == 0), band & (reb > long_stall)
            if clean.sum() < 3 or stalled.sum() < 3:
                continue
            rows.append({"quality": f"{100 * lo:.0f}-{100 * hi:.0f}", "n_clean": int(clean.sum()),
                         "n_stalled": int(stalled.sum()),
                         "observed": round(float(y[clean].mean() - y[stalled].mean()), 3),
                         "predicted": round(float(pred[clean].mean() - pred[stalled].mean()), 3)})
        out[d] = rows
    return out


#: the kinds of session the model is also scored on elsewhere (issue 10), found inside each held-out dataset:
#: one quality throughout (the per-second quality's range under this share of the scale) with or without
#: stalls, and no rebuffering at all
ONE_QUALITY_RANGE = 0.03
MIN_SUBSET = 20


def by_session_kind(S: dict, lodo: dict, mapping) -> dict:
    """Ours (left out) against each single input on subsets of each held-out dataset that stand for the kinds
    of session the model is scored on elsewhere: **stall-only** (one quality throughout, 0 or more stalls:
    what counts is how stalls are priced against each other) and **quality-only** (no rebuffering). The
    predictions are those of :func:`leave_one_dataset_out` (the previous shipped model's too, where they
    are there); nothing is refitted. A subset under :data:`MIN_SUBSET` sessions is left out."""
    out = {}
    for d, row in lodo.items():
        sessions, y = S[d].sessions, S[d].y
        pred = np.asarray(row["prediction"], float)
        prev = np.asarray(row["previous_prediction"], float) if "previous_prediction" in row else None
        inputs = single_inputs(sessions, mapping)
        span = np.array([float(np.ptp(quality_steps(s, mapping)[0])) for s in sessions])
        kinds = {"stall-only (one quality)": span < ONE_QUALITY_RANGE, "quality-only (no rebuffering)":
                 inputs["- stall time"] == 0}
        rows = []
        for kind, m in kinds.items():
            if m.sum() < MIN_SUBSET:
                continue
            singles = {k: correlations(y[m], v[m]) for k, v in inputs.items()}
            rows.append({"kind": kind, "n": int(m.sum()), "ours": correlations(y[m], pred[m]),
                         "single_inputs": singles,
                         "with_stalls": int((m & (inputs["- stalls"] < 0)).sum())})
            if prev is not None:
                rows[-1]["previous_shipped"] = correlations(y[m], prev[m])
        out[d] = rows
    return out
