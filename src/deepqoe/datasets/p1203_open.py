"""The ITU-T P.1203 open dataset (``$DEEPQOE_DATA/p1203-open/``, itu-p1203/open-dataset)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepqoe.datasets.files import data_root, need
from deepqoe.errors import DeepQoEError
from deepqoe.sessions.readers import StreamingDataset, read_json, session_from_p1203


def load_p1203_open(root=None) -> StreamingDataset:
    """ITU-T P.1203 open dataset (TR04, TR06, VL04, VL13), mode 0: 239 rated (PVS, context) sessions.

    Segments come from ``features/features_mode0.csv`` (per-second samples: segment bitrate, coding
    resolution, frame rate; codec H.264), stalls and device from ``mode0_inputs/*.json``, MOS (1-5)
    from ``subjective_scores/mos.csv`` and each viewer's rating (``ratings``, ACR 1-5) from
    ``subjective_scores/ratings.csv``. ``meta`` holds ``database``, ``src`` (content), ``hrc`` and the
    standard's own mode-0 score ``O46`` (for comparison only, never an input).
    """
    base = data_root(root) / "p1203-open"
    feats = pd.read_csv(need(base / "features" / "features_mode0.csv"))
    mos = pd.read_csv(need(base / "subjective_scores" / "mos.csv"))
    ratings = _ratings(need(base / "subjective_scores" / "ratings.csv"))
    o46 = pd.read_csv(need(base / "O46.csv"))
    o46 = o46[o46["mode"] == 0].set_index(["pvs_id", "context"])["O46"]
    seg_by_pvs = {}
    for pvs, g in feats.sort_values(["pvs_id", "sample_index"]).groupby("pvs_id"):
        n = len(g)
        seg_by_pvs[pvs] = pd.DataFrame({
            "start": np.arange(n, dtype=float), "duration": np.ones(n),
            "bitrate_kbps": g["bitrate_kbps_segment_size"].to_numpy(float),
            "width": g["coding_width"].to_numpy(float), "height": g["coding_height"].to_numpy(float),
            "fps": g["framerate"].to_numpy(float), "codec": "h264"})
    sessions, ys, rows, indiv = [], [], [], []
    for r in mos.itertuples(index=False):
        indiv.append(ratings.get((r.pvs_id, r.context), np.zeros(0)))
        if not len(indiv[-1]):
            raise DeepQoEError(f"no individual ratings for {r.pvs_id} ({r.context})",
                               file=str(base / "subjective_scores" / "ratings.csv"), column="pvs_id")
        f = base / "mode0_inputs" / f"046-{r.pvs_id}-{r.context}-input.json"
        obj = read_json(need(f))
        s = session_from_p1203(obj, f"{r.pvs_id}-{r.context}", file=str(f), segments=seg_by_pvs[r.pvs_id],
                               mos=float(r.mos))
        db, src, hrc = r.pvs_id.split("_")
        s.content = f"{db}_{src}"
        s.dataset = "p1203-open"
        sessions.append(s)
        ys.append(float(r.mos))
        rows.append({"session_id": s.id, "pvs_id": r.pvs_id, "database": db, "src": f"{db}_{src}",
                     "hrc": hrc, "context": r.context, "O46": float(o46.get((r.pvs_id, r.context), np.nan))})
    return StreamingDataset("p1203-open", sessions, np.array(ys), "1-5", pd.DataFrame(rows), indiv, "1-5")


def _ratings(path) -> dict:
    """``ratings.csv`` (pvs_id, context, subject, rating on ACR 1-5) -> {(pvs_id, context): ratings}."""
    from deepqoe.distribution import RatingScale, parse_ratings

    t = pd.read_csv(path, dtype={"rating": str})
    for c in ("pvs_id", "context", "rating"):
        if c not in t.columns:
            raise DeepQoEError(f"missing the column {c!r}", file=str(path), column=c)
    sc = RatingScale("1-5")
    vals = []
    for i, v in enumerate(t["rating"].tolist()):
        r = parse_ratings(v, sc, file=str(path), column="rating", row=i + 1)
        if r.size != 1:
            raise DeepQoEError(f"expected one rating on the scale 1-5, got {v!r}", file=str(path), column="rating",
                               row=i + 1)
        vals.append(r[0])
    t["r"] = vals
    return {k: g["r"].to_numpy(float) for k, g in t.groupby(["pvs_id", "context"], sort=False)}
