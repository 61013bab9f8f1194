"""LIVE-NFLX, VideoATLAS release (``$DEEPQOE_DATA/live-nflx/``, christosbampis/VideoATLAS_release): the
112 sessions and the 1000 fixed content-disjoint splits of the release."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from deepqoe.datasets.files import data_root, mat_scalar, mat_vector, natural_key, need
from deepqoe.errors import DeepQoEError
from deepqoe.sessions.readers import StreamingDataset
from deepqoe.sessions.session import Session

LIVE_NFLX_METRICS = ("PSNR", "PSNRhvs_oss", "SSIM", "MSSIM", "STRRED", "GMSD", "NIQE", "VMAF")
LIVE_NFLX_STALL = ("ns", "ds", "ds_norm", "lt", "lt_norm", "tsl", "tsl_norm", "tsl_stall", "tsl_stall_norm")
#: per-frame metrics of the LIVE-NFLX release where lower means better
LOWER_IS_BETTER = ("STRRED", "GMSD", "NIQE")


def _per_second(v: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nfr = len(v)
    T = int(np.ceil(nfr / fps))
    edges = np.minimum((np.arange(T) * fps).astype(int), nfr)
    return np.add.reduceat(v, edges) / np.diff(np.append(edges, nfr)), edges, np.diff(np.append(edges, nfr)) / fps


def load_live_nflx(root=None, quality_metric: str = "VMAF") -> StreamingDataset:
    """LIVE-NFLX (VideoATLAS release): 112 sessions in the natural order of the file names (content_1..14,
    seq_0..7), i.e. the row order of ``TrainingMatrix_LIVENetflix_1000_trials.mat``.

    ``quality_metric`` picks the per-second ``quality``: ``VMAF`` (default, 0-100 as is) or another metric
    of the release (``STRRED``, the VideoATLAS convention, ``SSIM``, ...), put on VMAF's 0-100 scale by a
    monotone (isotonic) regression of per-second VMAF on that metric over the release's seconds: objective
    measurements only, no subjective score.

    The ``.mat`` files hold per-frame VQA of the played frames but not where the stalls are, so the
    session is built as 1-s segments with ``quality`` = mean per-frame VMAF of that second, and stalls
    placed approximately: ``ns`` stalls of ``ds / ns`` s each, the last one ending ``tsl_stall`` s
    before the end (exact for one stall), earlier ones spread evenly before it. ``meta`` holds the
    release's own pooled metrics (``<METRIC>_mean|_hyst|_kmeans``), stall/memory features (``ns, ds,
    ds_norm, lt, lt_norm, tsl, tsl_norm``), per-frame statistics (``<METRIC>_p10``, ``_std``,
    ``_last``) and ``content`` / ``seq``.
    """
    import scipy.io as sio

    base = data_root(root) / "live-nflx" / "LIVE_NFLX_PublicData_VideoATLAS_Release"
    files = sorted(need(base).glob("content_*_seq_*.mat"), key=lambda p: natural_key(p.name))
    if len(files) != 112:
        raise DeepQoEError(f"expected 112 content_*_seq_*.mat files, found {len(files)}", file=str(base))
    if quality_metric not in LIVE_NFLX_METRICS:
        raise DeepQoEError(f"unknown LIVE-NFLX quality metric {quality_metric!r}; "
                           f"use one of {', '.join(LIVE_NFLX_METRICS)}")
    mats = [sio.loadmat(f) for f in files]
    qual = []
    for f, d in zip(files, mats):
        fps = mat_scalar(d, "vid_fps", f)
        vm = _per_second(np.clip(mat_vector(d, "VMAF_vec", f), 0, 100), fps)[0]
        qual.append((vm, _per_second(mat_vector(d, f"{quality_metric}_vec", f), fps)[0]))
    if quality_metric != "VMAF":
        from sklearn.isotonic import IsotonicRegression

        x, y = np.concatenate([m for _, m in qual]), np.concatenate([v for v, _ in qual])
        ok = np.isfinite(x) & np.isfinite(y)
        iso = IsotonicRegression(increasing=quality_metric not in LOWER_IS_BETTER, out_of_bounds="clip",
                                 y_min=0, y_max=100).fit(x[ok], y[ok])
        qual = [(iso.predict(np.nan_to_num(m, nan=float(np.nanmedian(x)))), m) for _, m in qual]
    sessions, ys, rows = [], [], []
    for f, d, (q, _) in zip(files, mats, qual):
        fps = mat_scalar(d, "vid_fps", f)
        nfr = len(mat_vector(d, "VMAF_vec", f))
        _, edges, dur = _per_second(np.zeros(nfr), fps)
        start = edges / fps
        ns, ds = int(round(mat_scalar(d, "ns", f))), mat_scalar(d, "ds", f)
        media = nfr / fps
        if ns > 0:
            wall = mat_scalar(d, "Nframes", f) / fps
            each = ds / ns
            last_end_wall = wall - mat_scalar(d, "tsl_stall", f)
            last_start_media = float(np.clip(last_end_wall - ds, 0.5, media - 0.5))
            st = last_start_media * np.arange(1, ns + 1) / ns
            sst, sdur = st, np.full(ns, each)
        else:
            sst = sdur = np.zeros(0)
        m = re.match(r"content_(\d+)_seq_(\d+)", f.stem)
        sid = f.stem
        y = mat_scalar(d, "final_subj_score", f)
        s = Session.from_arrays(sid, start, dur, quality=q, fps=fps, stall_start=sst, stall_duration=sdur,
                                device="unknown", content=f"content_{m.group(1)}", mos=y, mos_scale="z",
                                dataset="live-nflx", file=str(f))
        sessions.append(s)
        ys.append(y)
        row = {"session_id": sid, "content": int(m.group(1)), "seq": int(m.group(2))}
        for k in LIVE_NFLX_STALL:
            row[k] = mat_scalar(d, k, f)
        for met in LIVE_NFLX_METRICS:
            for suf in ("mean", "hyst", "kmeans"):
                row[f"{met}_{suf}"] = mat_scalar(d, f"{met}_{suf}", f)
            v = mat_vector(d, f"{met}_vec", f)
            v = v[np.isfinite(v)]
            row[f"{met}_p10"] = float(np.percentile(v, 10))
            row[f"{met}_p90"] = float(np.percentile(v, 90))
            row[f"{met}_std"] = float(v.std())
            row[f"{met}_min1s"] = float(np.min(np.convolve(v, np.ones(int(fps)) / fps, "valid")))
            row[f"{met}_last"] = float(v[-int(10 * fps):].mean())
            row[f"{met}_first"] = float(v[:int(10 * fps)].mean())
        rows.append(row)
    return StreamingDataset("live-nflx", sessions, np.array(ys), "z", pd.DataFrame(rows))


def live_nflx_splits(root=None) -> np.ndarray:
    """The 1000 fixed content-disjoint splits: bool array (112, 1000), True = train."""
    import scipy.io as sio

    p = need(data_root(root) / "live-nflx" / "TrainingMatrix_LIVENetflix_1000_trials.mat")
    m = sio.loadmat(p)["TrainingMatrix_LIVENetflix_1000_trials"]
    return np.asarray(m) == 1
