"""Session features: one row per session (VideoATLAS-style and more), and per-second series.

:func:`session_features` is vectorised over a batch: all segments of all sessions are concatenated
and reduced with ``np.bincount`` / ``np.*.reduceat``, so a 60-s session costs well under 1 ms.

Definitions (times in seconds; *media* time = content played, *wall* time = media + stalls):

* ``startup_delay``: total duration of stalls at media time 0 (initial loading).
* ``n_stalls``, ``stall_total``, ``stall_mean``, ``stall_max``: rebuffering stalls (media time > 0).
* ``stall_ratio`` = ``stall_total / media_duration`` (one 2-s stall in 60 s of media -> 2/60);
  ``stall_ratio_wall`` = ``stall_total / wall_duration`` (VideoATLAS' ``ds_norm`` convention).
* ``time_below_best`` (VideoATLAS ``lt``): media seconds played below the best quality, i.e. a segment
  whose height is below the display height (``context.display_height``, default 1080) or whose
  quality is below ``best_quality`` (default 80 on the 0-100 scale) when the quality is known;
  ``time_below_best_norm`` divides by the media duration.
* ``tsl`` (time since the last impairment, VideoATLAS): wall seconds from the end of the last
  rebuffering stall or below-best segment to the end of the session (the whole wall duration when
  there is none); ``tsl_stall`` counts stalls only; ``*_norm`` divide by the wall duration.
* ``q_*``: the quality (``quality_per_second`` when given, else the segments' ``quality``), weighted by
  time: mean, min, max, std, mean of the first / last 10 s of media. NaN when the session has none.
* ``qp_*``: a quality proxy from bitrate, resolution and frame rate for sessions without a quality
  metric: ``100 * (1 - exp(-4 * sqrt(bits per pixel))) * min(1, height / display_height) ** 0.3``.
* ``br_*`` (kbps), ``height_*``, ``pixels_mean`` (Mpx), ``fps_*``: time-weighted statistics.
* Switches (:meth:`Session.switches <deepqoe.sessions.session.Session.switches>`, the definition the
  session model uses too: a change of representation id, height, frame rate or codec between consecutive
  segments; VBR jitter of the measured bitrate is not a switch): ``n_switches``, ``n_up``, ``n_down``, ``switch_rate`` (per minute),
  ``switch_mag_mean`` (mean |log2 bitrate ratio|), ``q_var_sum`` (sum of |quality change| between
  consecutive segments), ``q_drop_sum`` (sum of quality decreases).
* Categorical: ``device``, ``codec`` (most frequent); text: ``content``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from deepqoe.sessions.session import Session

CATEGORICAL = ("device", "codec")
TEXT = ("content",)
DEFAULT_DISPLAY_HEIGHT = 1080
DEFAULT_BEST_QUALITY = 80.0


def _seg_concat(sessions: Sequence[Session]):
    lens = np.fromiter((len(s.seg_start) for s in sessions), dtype=np.int64, count=len(sessions))
    cat = lambda name: np.concatenate([getattr(s, name) for s in sessions])  # noqa: E731
    return lens, cat


def _reduce_nan(func, x, offsets, fill):
    """func.reduceat ignoring NaN (all-NaN groups -> NaN)."""
    fin = np.isfinite(x)
    v = func.reduceat(np.where(fin, x, fill), offsets)
    anyf = np.add.reduceat(fin.astype(np.int64), offsets) > 0
    return np.where(anyf, v, np.nan)


def _wstats(x, w, idx, n):
    """Time-weighted mean and std per session ignoring NaN."""
    fin = np.isfinite(x)
    xw = np.where(fin, x, 0.0)
    ww = np.where(fin, w, 0.0)
    sw = np.bincount(idx, ww, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.bincount(idx, ww * xw, n) / sw
        m2 = np.bincount(idx, ww * xw * xw, n) / sw
    sd = np.sqrt(np.maximum(m2 - m * m, 0.0))
    return m, sd


def _window_mean(x, start, dur, idx, n, lo, hi):
    """Time-weighted mean of x over the media-time window [lo, hi) of each session (per-unit arrays)."""
    ov = np.clip(np.minimum(start + dur, hi) - np.maximum(start, lo), 0.0, None)
    fin = np.isfinite(x)
    ov = np.where(fin, ov, 0.0)
    sw = np.bincount(idx, ov, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(idx, ov * np.where(fin, x, 0.0), n) / sw


def quality_proxy(bitrate_kbps, width, height, fps, display_height=DEFAULT_DISPLAY_HEIGHT):
    """A fixed quality proxy (0-100) from bitrate, resolution and frame rate; NaN where unknown."""
    br = np.asarray(bitrate_kbps, float)
    h = np.asarray(height, float)
    w = np.where(np.isfinite(width), width, h * 16.0 / 9.0)
    f = np.where(np.isfinite(fps), fps, 30.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        bpp = br * 1000.0 / (w * h * f)
        q = 100.0 * (1.0 - np.exp(-4.0 * np.sqrt(bpp))) * np.minimum(1.0, h / display_height) ** 0.3
    return q


def session_features(sessions: Sequence[Session], *, best_quality: float = DEFAULT_BEST_QUALITY,
                     extra: bool = True) -> pd.DataFrame:
    """One row per session (index = session id) of continuous, categorical and text columns."""
    n = len(sessions)
    if n == 0:
        return pd.DataFrame()
    lens, cat = _seg_concat(sessions)
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
    idx = np.repeat(np.arange(n), lens)
    start, dur = cat("seg_start"), cat("seg_duration")
    br, w, h, fps, q = cat("bitrate_kbps"), cat("width"), cat("height"), cat("fps"), cat("quality")
    end = start + dur
    media = np.add.reduceat(dur, offsets)
    disp_h = np.array([float(s.context.get("display_height", DEFAULT_DISPLAY_HEIGHT) or
                             DEFAULT_DISPLAY_HEIGHT) for s in sessions])
    seg_disp = disp_h[idx]

    # ---- stalls (media time)
    slens = np.fromiter((len(s.stall_start) for s in sessions), dtype=np.int64, count=n)
    sidx = np.repeat(np.arange(n), slens)
    if slens.sum():
        ss = np.concatenate([s.stall_start for s in sessions])
        sd = np.concatenate([s.stall_duration for s in sessions])
    else:
        ss = sd = np.zeros(0)
    initial = ss <= 1e-6
    startup = np.bincount(sidx, np.where(initial, sd, 0.0), n)
    reb = ~initial
    n_stalls = np.bincount(sidx, reb.astype(float), n)
    stall_total = np.bincount(sidx, np.where(reb, sd, 0.0), n)
    stall_max = np.zeros(n)
    if reb.any():
        np.maximum.at(stall_max, sidx[reb], sd[reb])
    wall = media + stall_total + startup
    # cumulative stall time (all stalls) up to and including each stall, per session
    if len(ss):
        soff = np.concatenate([[0], np.cumsum(slens)[:-1]])
        csum = np.cumsum(sd)
        base = np.repeat(np.concatenate([[0.0], csum])[soff], slens)
        cum_incl = csum - base
        stall_end_wall = ss + cum_incl
        last_stall_end = np.full(n, -np.inf)
        np.maximum.at(last_stall_end, sidx[reb], stall_end_wall[reb]) if reb.any() else None
        # stall time before each segment's end: stalls with media start < segment end
        big = 1e7
        skey = sidx * big + ss
        ekey = idx * big + end - 1e-6
        pos = np.searchsorted(skey, ekey, side="right")  # stalls (global) before this segment end
        cz = np.concatenate([[0.0], csum])
        seg_stall_before = cz[pos] - cz[np.repeat(soff, lens)]
    else:
        last_stall_end = np.full(n, -np.inf)
        seg_stall_before = np.zeros(len(start))
    seg_end_wall = end + seg_stall_before

    # ---- quality (segments, or per-second when given)
    use_qps = np.array([s.quality_per_second is not None for s in sessions])
    q_unit, q_w, q_st, q_idx = q, dur, start, idx
    if use_qps.any():
        keep = ~use_qps[idx]
        qps_list = [s.quality_per_second for s in sessions if s.quality_per_second is not None]
        ql = np.array([len(a) for a in qps_list])
        qv = np.concatenate(qps_list)
        qi = np.repeat(np.flatnonzero(use_qps), ql)
        qs = np.concatenate([np.arange(k, dtype=float) for k in ql])
        q_unit = np.concatenate([q[keep], qv])
        q_w = np.concatenate([dur[keep], np.ones(len(qv))])
        q_st = np.concatenate([start[keep], qs])
        q_idx = np.concatenate([idx[keep], qi])
    q_mean, q_std = _wstats(q_unit, q_w, q_idx, n)
    q_min = np.full(n, np.inf)
    q_max = np.full(n, -np.inf)
    finq = np.isfinite(q_unit)
    np.minimum.at(q_min, q_idx[finq], q_unit[finq])
    np.maximum.at(q_max, q_idx[finq], q_unit[finq])
    q_min[~np.isfinite(q_min)] = np.nan
    q_max[~np.isfinite(q_max)] = np.nan
    q_first10 = _window_mean(q_unit, q_st, q_w, q_idx, n, 0.0, 10.0)
    q_last10 = _window_mean(q_unit, q_st, q_w, q_idx, n, (media - 10.0)[q_idx], np.inf)

    # ---- proxy quality, bitrate, resolution, fps
    qp = quality_proxy(br, w, h, fps, seg_disp)
    qp_mean, qp_std = _wstats(qp, dur, idx, n)
    qp_min = _reduce_nan(np.minimum, qp, offsets, np.inf)
    qp_last10 = _window_mean(qp, start, dur, idx, n, (media - 10.0)[idx], np.inf)
    br_mean, br_std = _wstats(br, dur, idx, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        lbr = np.log2(br)
    lbr_mean, lbr_std = _wstats(lbr, dur, idx, n)
    br_min = _reduce_nan(np.minimum, br, offsets, np.inf)
    br_max = _reduce_nan(np.maximum, br, offsets, -np.inf)
    br_last10 = _window_mean(br, start, dur, idx, n, (media - 10.0)[idx], np.inf)
    h_mean, h_std = _wstats(h, dur, idx, n)
    h_min = _reduce_nan(np.minimum, h, offsets, np.inf)
    h_max = _reduce_nan(np.maximum, h, offsets, -np.inf)
    px_mean, _ = _wstats(w * h / 1e6, dur, idx, n)
    fps_mean, _ = _wstats(fps, dur, idx, n)
    fps_min = _reduce_nan(np.minimum, fps, offsets, np.inf)

    # ---- below best / time since last impairment
    below = (np.isfinite(h) & (h < seg_disp)) | (np.isfinite(q) & (q < best_quality))
    lt = np.bincount(idx, np.where(below, dur, 0.0), n)
    last_below_end = np.full(n, -np.inf)
    if below.any():
        np.maximum.at(last_below_end, idx[below], seg_end_wall[below])
    last_imp = np.maximum(np.maximum(last_stall_end, last_below_end), 0.0)
    tsl = wall - last_imp
    tsl_stall = wall - np.maximum(last_stall_end, 0.0)

    # ---- switches between consecutive segments of the same session
    same = idx[1:] == idx[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = br[1:] / br[:-1]
        lr = np.log2(ratio)
    # Session.switches is the one definition (a change of representation, never VBR jitter); the pair
    # that straddles two sessions is not a switch
    sw = np.concatenate([np.append(s.switches(), False) for s in sessions])[:-1] & same
    # direction: by height, then bitrate
    dh = np.where(np.isfinite(h[1:]) & np.isfinite(h[:-1]), h[1:] - h[:-1], 0.0)
    dirn = np.sign(np.where(dh != 0, dh, np.where(np.isfinite(lr), lr, 0.0)))
    ii = idx[1:]
    n_sw = np.bincount(ii, sw.astype(float), n)
    n_up = np.bincount(ii, (sw & (dirn > 0)).astype(float), n)
    n_down = np.bincount(ii, (sw & (dirn < 0)).astype(float), n)
    mag = np.where(sw & np.isfinite(lr), np.abs(lr), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sw_mag = np.where(n_sw > 0, np.bincount(ii, mag, n) / np.maximum(n_sw, 1), 0.0)
    dq = np.where(same, q[1:] - q[:-1], np.nan)
    qfin = np.isfinite(dq)
    q_var = np.bincount(ii, np.where(qfin, np.abs(dq), 0.0), n).astype(float)  # int64 when ii is empty
    q_drop = np.bincount(ii, np.where(qfin, np.maximum(-dq, 0.0), 0.0), n).astype(float)
    has_q = np.bincount(idx, np.isfinite(q).astype(float), n) > 0
    q_var[~has_q] = np.nan
    q_drop[~has_q] = np.nan

    with np.errstate(invalid="ignore", divide="ignore"):
        cols = {
            "media_duration": media, "wall_duration": wall, "n_segments": lens.astype(float),
            "startup_delay": startup, "n_stalls": n_stalls, "stall_total": stall_total,
            "stall_mean": np.where(n_stalls > 0, stall_total / np.maximum(n_stalls, 1), 0.0),
            "stall_max": stall_max, "stall_ratio": stall_total / media, "stall_ratio_wall": stall_total / wall,
            "stall_freq": n_stalls / media * 60.0,
            "time_below_best": lt, "time_below_best_norm": lt / media,
            "tsl": tsl, "tsl_norm": tsl / wall, "tsl_stall": tsl_stall, "tsl_stall_norm": tsl_stall / wall,
            "q_mean": q_mean, "q_min": q_min, "q_max": q_max, "q_std": q_std,
            "q_first10": q_first10, "q_last10": q_last10,
            "qp_mean": qp_mean, "qp_min": qp_min, "qp_std": qp_std, "qp_last10": qp_last10,
            "br_mean": br_mean, "br_log_mean": lbr_mean, "br_log_std": lbr_std, "br_std": br_std,
            "br_min": br_min, "br_max": br_max, "br_last10": br_last10,
            "height_mean": h_mean, "height_std": h_std, "height_min": h_min, "height_max": h_max,
            "pixels_mean": px_mean, "fps_mean": fps_mean, "fps_min": fps_min,
            "n_switches": n_sw, "n_up": n_up, "n_down": n_down, "switch_rate": n_sw / media * 60.0,
            "switch_mag_mean": sw_mag, "q_var_sum": q_var, "q_drop_sum": q_drop,
        }
    df = pd.DataFrame(cols, index=pd.Index([s.id for s in sessions], name="session_id"))
    df["device"] = [s.device for s in sessions]
    df["codec"] = [_mode(s.codec) for s in sessions]
    df["content"] = [s.content or "" for s in sessions]
    if extra:
        keys = sorted({k for s in sessions for k, v in s.extra.items() if isinstance(v, (int, float))})
        for k in keys:
            df[f"x_{k}"] = [float(s.extra.get(k, np.nan)) if isinstance(s.extra.get(k), (int, float))
                            else np.nan for s in sessions]
    return df


def _mode(codecs: list) -> str:
    vals = [c for c in codecs if c]
    if not vals:
        return "unknown"
    if len(set(vals)) == 1:
        return vals[0]
    return max(set(vals), key=vals.count)


SERIES_CHANNELS = ("quality", "log_bitrate", "height", "stall")


def per_second_series(sessions: Sequence[Session], length: int = 64, *, mode: str = "resample"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The wall-clock per-second series of each session, for a sequence model.

    Channels (``SERIES_CHANNELS``): quality / 100 (``quality_per_second``, else the segment quality,
    else the proxy of :func:`quality_proxy`), log2(bitrate kbps) / 15, height / 2160, stall flag (1
    during stalls, where the other channels are 0). Returns ``(X, lengths)``: ``X`` is
    ``(n_sessions, length, 4)`` float32; a session longer than ``length`` seconds is averaged into
    ``length`` equal bins (``mode="resample"``) or cut to its last ``length`` seconds
    (``mode="truncate"``); a shorter one is zero-padded at the end and ``lengths`` holds its true number
    of steps (the mask is ``np.arange(length) < lengths[:, None]``).
    """
    if mode not in ("resample", "truncate"):
        raise ValueError("mode must be 'resample' or 'truncate'")
    X = np.zeros((len(sessions), length, len(SERIES_CHANNELS)), np.float32)
    lengths = np.zeros(len(sessions), np.int64)
    for k, s in enumerate(sessions):
        T = int(np.ceil(s.media_duration - 1e-9))
        t = np.arange(T) + 0.5
        si = np.clip(np.searchsorted(s.seg_start, t, side="right") - 1, 0, s.n_segments - 1)
        if s.quality_per_second is not None:
            qv = s.quality_per_second
            qs = qv[np.minimum(np.arange(T), len(qv) - 1)]
        else:
            qs = s.quality[si]
            if not np.isfinite(qs).any():
                qs = quality_proxy(s.bitrate_kbps, s.width, s.height, s.fps,
                                   s.context.get("display_height", DEFAULT_DISPLAY_HEIGHT))[si]
        with np.errstate(divide="ignore", invalid="ignore"):
            lb = np.log2(s.bitrate_kbps[si]) / 15.0
        m = np.stack([qs / 100.0, lb, s.height[si] / 2160.0, np.zeros(T)], axis=1)
        m = np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0)
        if len(s.stall_start):
            reps = np.maximum(np.rint(s.stall_duration).astype(np.int64), 1)
            pos = np.clip(np.floor(s.stall_start + 1e-9).astype(np.int64), 0, T)
            rows = np.zeros((int(reps.sum()), m.shape[1]))
            rows[:, 3] = 1.0
            m = np.insert(m, np.repeat(pos, reps), rows, axis=0)
        L = len(m)
        if L <= length:
            X[k, :L] = m
            lengths[k] = L
        elif mode == "truncate":
            X[k] = m[-length:]
            lengths[k] = length
        else:
            edges = (np.arange(length) * L) // length
            cnt = np.diff(np.append(edges, L))
            X[k] = np.add.reduceat(m, edges, axis=0) / cnt[:, None]
            lengths[k] = length
    return X, lengths
