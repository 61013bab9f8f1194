"""Continuous-time (per-second) subjective QoE: LIVE-NFLX (continuous) and LFOVIA QoE.

Both come from ``$DEEPQOE_DATA/continuous-qoe/`` (lfovia/lstm_qoe; research use, cite Bampis et al.
for LIVE-NFLX and Eswara et al., IEEE TCSVT 2019 for LFOVIA). Each loader returns a
:class:`ContinuousDataset`: the sessions (media as 1-s segments with a VMAF-like ``quality`` 0-100,
stalls at their media positions; a stall at media 0 is the startup delay), the continuous score per
**wall-clock second** on the common 1-5 scale with its confidence bounds, the per-second stall mask,
the session score, content groups and the authors' splits.

Timeline (the same for both datasets, and what a per-second model must follow): the wall timeline is
the media played in order with each stall inserted at its media ``start``; wall second ``k`` covers
``[k, k + 1)``; every per-second array has ``ceil(session.wall_duration)`` entries.
:func:`stall_fraction` gives the stalled share of each wall second and ``stall_mask`` is
``stall_fraction >= 0.5``.

LIVE-NFLX (``continuous-qoe/live-nflx/``, 100 sessions)
  * Quality: ``VMAF_vec_avg1sec`` (mean VMAF of each media second), clipped to 0-100.
  * Stalls are frame-exact: the release has the continuous score per wall frame with the stall
    frames (``continuous_subj_score``) and without them (``continuous_subj_score_wo_rebuf``);
    aligning the two gives the media frame where each stall starts and its length in frames
    (checked against ``Nframes`` and ``ds``). The release's own per-second stall state
    (``Nrebuffers_avg1sec``) is a rounding of these; it differs from ``stall_mask`` only at the
    seconds that are partly stalled.
  * Ratings: ``continuous_subj_score_avg1sec`` (mean of the wall frames of each second, z-scores) and
    its ``_CIlow`` / ``_CIhigh`` bounds, mapped with :func:`deepqoe.sessions.scales.to_common` through
    one z reference fitted on the 100 sessions' ``final_subj_score`` (the same reference for the
    per-second scores, so session and second are on one footing; values beyond the reference's
    range are clipped to [1, 5], under 1 % of the seconds). ``mos`` is ``final_subj_score`` on the
    same reference. (The release's per-second CI was averaged apart from the mean: in 1.5 % of the
    seconds the mean lies just outside it.)
  * ``representation``: ``bitrate_levels_avg1sec`` (the normalised bitrate rung) of the played wall
    second where each media second plays; groups: ``content_<n>``; no fixed splits (use
    leave-content-out on ``groups``).

LFOVIA QoE (``continuous-qoe/lfovia-qoe/``, 36 videos of 120 s of media)
  * Stalls: the per-second stall state ``Nrebuffers`` (whole seconds; the release's ``_ext`` series
    hold the stalled seconds), each run of stalled seconds one stall at the media second where it
    begins.
  * Quality: LFOVIA has no VMAF. Its per-second MS-SSIM is mapped onto the VMAF scale by an
    isotonic (monotone) regression fitted on LIVE-NFLX's per-second (MS-SSIM, VMAF) pairs only,
    never on LFOVIA ratings (:func:`fit_msssim_to_vmaf`; leave-content-out on LIVE-NFLX: PLCC 0.73,
    RMSE 12 VMAF points; MS-SSIM outside LIVE-NFLX's range is clipped to its ends, so the top is
    LIVE-NFLX's highest per-second VMAF, about 77).
  * Ratings: ``score_continuous`` (0-100) and its CI, mapped linearly to 1-5 (CI clipped to [1, 5]).
    The release has no overall session score (``mos`` is NaN).
  * Splits: ``training_videos_set.mat``, one per row: (``training_videos_set``,
    ``validation_videos_set``) as 0-based indices. Row ``i`` leaves video ``i + 1`` out of both.
  * Groups: the video (``video_<n>``): the release names no source content.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.sessions.readers import _need, data_root, natural_key
from deepqoe.sessions.scales import fit_z_reference, to_common
from deepqoe.sessions.session import Session

LIVE_NFLX_CONTINUOUS = "live-nflx-continuous"
LFOVIA_QOE = "lfovia-qoe"


@dataclass
class ContinuousDataset:
    """Sessions with a continuous (per wall second) subjective score; see the module docstring."""

    name: str
    sessions: list[Session]
    ratings: list[np.ndarray]
    ci_low: list[np.ndarray]
    ci_high: list[np.ndarray]
    stall_mask: list[np.ndarray]
    mos: np.ndarray
    groups: np.ndarray
    splits: list[tuple[np.ndarray, np.ndarray]] | None
    quality_source: str

    def __len__(self) -> int:
        return len(self.sessions)


# ------------------------------------------------------------------------------------ wall timeline

def wall_seconds(session: Session) -> int:
    """Number of wall seconds: ``ceil(session.wall_duration)``."""
    return math.ceil(session.wall_duration)


def stall_intervals(session: Session) -> np.ndarray:
    """The stalls on the wall clock: array (n_stalls, 2) of ``[wall_start, wall_end)``, in play order.

    A stall at media time ``m`` starts at wall time ``m`` plus all the stalling before it; stalls at
    the same media time follow one another in their given order."""
    order = np.argsort(session.stall_start, kind="stable")
    start = session.stall_start[order]
    dur = session.stall_duration[order]
    wall_start = start + np.concatenate([[0.0], np.cumsum(dur)[:-1]])
    return np.column_stack([wall_start, wall_start + dur])


def stall_fraction(session: Session) -> np.ndarray:
    """Share of each wall second ``[k, k + 1)`` spent stalled (0-1), ``wall_seconds(session)`` long."""
    n = wall_seconds(session)
    k = np.arange(n, dtype=float)
    out = np.zeros(n)
    for a, b in stall_intervals(session):
        out += np.clip(np.minimum(k + 1.0, b) - np.maximum(k, a), 0.0, None)
    return np.clip(out, 0.0, 1.0)


def stall_mask_of(session: Session) -> np.ndarray:
    """True for the wall seconds that are at least half stalled (the ``stall_mask`` of the loaders)."""
    return stall_fraction(session) >= 0.5


# ------------------------------------------------------------------------------------ helpers

def _vec(d: dict, key: str, file: Path) -> np.ndarray:
    if key not in d:
        raise DeepQoEError(f"missing the variable '{key}'", file=str(file), field=key)
    return np.asarray(d[key], dtype=float).reshape(-1)


def _scalar(d: dict, key: str, file: Path) -> float:
    return float(_vec(d, key, file)[0])


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first index, length) of each run of True."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(int)))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def _frame_stalls(with_stalls: np.ndarray, without: np.ndarray, file: Path) -> list[tuple[int, int]]:
    """(media frame where the stall starts, stall length in frames), by aligning the per-wall-frame
    score with the same score without the stall frames."""
    i = j = 0
    out = []
    n_with, n_without = len(with_stalls), len(without)
    while j < n_without:
        if i < n_with and with_stalls[i] == without[j]:
            i += 1
            j += 1
            continue
        k = min(20, n_without - j)
        skip = next((s for s in range(1, n_with - i) if np.array_equal(with_stalls[i + s:i + s + k],
                                                                      without[j:j + k])), None)
        if skip is None:
            raise DeepQoEError(f"cannot place the stalls: the per-frame scores with and without them "
                               f"differ after media frame {j}", file=str(file),
                               field="continuous_subj_score")
        out.append((j, skip))
        i += skip
    if i < n_with:  # stall after the last media frame
        out.append((n_without, n_with - i))
    return out


def _ratings(values, low, high, scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.clip(to_common(v, scale), 1.0, 5.0) for v in (values, low, high))


def _check_length(s: Session, n: int, file: Path) -> None:
    if wall_seconds(s) != n:
        raise DeepQoEError(f"{n} per-second scores, but the session lasts {s.wall_duration:.3f} s on the "
                           f"wall clock ({wall_seconds(s)} seconds)", file=str(file))


# ------------------------------------------------------------------------------------ LIVE-NFLX

def _live_nflx_files(root) -> list[Path]:
    base = _need(data_root(root) / "continuous-qoe" / "live-nflx")
    files = sorted(base.glob("content_*_seq_*.mat"), key=lambda p: natural_key(p.name))
    if not files:
        raise DeepQoEError("no content_*_seq_*.mat files", file=str(base))
    return files


@lru_cache(maxsize=2)
def _live_nflx_raw(root_key: str) -> tuple[tuple[Path, dict], ...]:
    import scipy.io as sio

    return tuple((f, sio.loadmat(f)) for f in _live_nflx_files(root_key or None))


def _levels_by_media_second(levels: np.ndarray, stalled: np.ndarray, media_mid: np.ndarray,
                            stall_media: np.ndarray, stall_len: np.ndarray) -> np.ndarray:
    """The bitrate level of each media second, from the release's per-wall-second levels: the played
    wall second nearest to where the middle of the media second plays (exact stalls)."""
    wall_mid = media_mid + np.array([stall_len[stall_media <= m].sum() for m in media_mid])
    played = np.flatnonzero(stalled == 0)
    nearest = np.abs(played[None, :] + 0.5 - wall_mid[:, None]).argmin(axis=1)
    return levels[played[nearest]]


def load_live_nflx_continuous(root=None) -> ContinuousDataset:
    """LIVE-NFLX with continuous scores: 100 sessions (see the module docstring)."""
    raw = _live_nflx_raw(str(data_root(root)))
    ref = fit_z_reference([_scalar(d, "final_subj_score", f) for f, d in raw])
    sessions, ratings, lows, highs, masks, mos, groups = [], [], [], [], [], [], []
    for f, d in raw:
        fps = _scalar(d, "vid_fps", f)
        media_frames = len(_vec(d, "VMAF_vec", f))
        stalls = _frame_stalls(_vec(d, "continuous_subj_score", f),
                               _vec(d, "continuous_subj_score_wo_rebuf", f), f)
        stalled_frames = sum(n for _, n in stalls)
        if media_frames + stalled_frames != int(_scalar(d, "Nframes", f)) or \
                abs(stalled_frames / fps - _scalar(d, "ds", f)) > 1.0 / fps:
            raise DeepQoEError(f"the stalls found ({stalled_frames} frames) do not match Nframes / ds",
                               file=str(f), field="ds")
        q = np.clip(_vec(d, "VMAF_vec_avg1sec", f), 0.0, 100.0)
        n_media = len(q)
        if n_media != math.ceil(media_frames / fps):
            raise DeepQoEError(f"{n_media} per-second VMAF values for {media_frames / fps:.3f} s of media",
                               file=str(f), field="VMAF_vec_avg1sec")
        start = np.arange(n_media, dtype=float)
        dur = np.ones(n_media)
        dur[-1] = media_frames / fps - (n_media - 1)
        stall_media = np.array([a / fps for a, _ in stalls])
        stall_len = np.array([n / fps for _, n in stalls])
        levels = _levels_by_media_second(_vec(d, "bitrate_levels_avg1sec", f), _vec(d, "Nrebuffers_avg1sec", f),
                                         start + dur / 2, stall_media, stall_len)
        m = re.match(r"content_(\d+)_seq_(\d+)", f.stem)
        final = _scalar(d, "final_subj_score", f)
        s = Session.from_arrays(
            f.stem, start, dur, quality=q, fps=fps,
            representation=levels, stall_start=stall_media, stall_duration=stall_len,
            device="unknown", content=f"content_{m.group(1)}", mos=final, mos_scale="z",
            dataset=LIVE_NFLX_CONTINUOUS, file=str(f))
        r, lo, hi = _ratings(_vec(d, "continuous_subj_score_avg1sec", f),
                             _vec(d, "continuous_subj_score_CIlow_avg1sec", f),
                             _vec(d, "continuous_subj_score_CIhigh_avg1sec", f), ref)
        _check_length(s, len(r), f)
        sessions.append(s)
        ratings.append(r)
        lows.append(lo)
        highs.append(hi)
        masks.append(stall_mask_of(s))
        mos.append(float(to_common(final, ref)))
        groups.append(s.content)
    return ContinuousDataset(LIVE_NFLX_CONTINUOUS, sessions, ratings, lows, highs, masks, np.array(mos),
                             np.array(groups), None, "VMAF per second (VMAF_vec_avg1sec)")


# ------------------------------------------------------------------------------------ LFOVIA

def fit_msssim_to_vmaf(root=None):
    """The monotone MS-SSIM -> VMAF mapping (an isotonic regression, ends clipped), fitted on the
    per-second (``MSSIM_vec_avg1sec``, ``VMAF_vec_avg1sec``) pairs of LIVE-NFLX (continuous)."""
    from sklearn.isotonic import IsotonicRegression

    raw = _live_nflx_raw(str(data_root(root)))
    x = np.concatenate([_vec(d, "MSSIM_vec_avg1sec", f) for f, d in raw])
    y = np.concatenate([np.clip(_vec(d, "VMAF_vec_avg1sec", f), 0, 100) for f, d in raw])
    ok = np.isfinite(x) & np.isfinite(y)
    return IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x[ok], y[ok])


def load_lfovia_qoe(root=None) -> ContinuousDataset:
    """LFOVIA QoE: 36 videos with continuous scores (see the module docstring)."""
    import scipy.io as sio

    base = _need(data_root(root) / "continuous-qoe" / "lfovia-qoe")
    files = sorted(base.glob("video_*.mat"), key=lambda p: natural_key(p.name))
    if not files:
        raise DeepQoEError("no video_*.mat files", file=str(base))
    to_vmaf = fit_msssim_to_vmaf(root)
    sessions, ratings, lows, highs, masks = [], [], [], [], []
    for f in files:
        d = sio.loadmat(f)
        msssim = _vec(d, "MSSSIM", f)
        stalled = _vec(d, "Nrebuffers", f) > 0
        if len(stalled) != len(msssim) + stalled.sum():
            raise DeepQoEError(f"{len(stalled)} wall seconds, but {len(msssim)} media seconds and "
                               f"{int(stalled.sum())} stalled seconds", file=str(f), field="Nrebuffers")
        played_before = np.cumsum(~stalled) - ~stalled  # media seconds played before each wall second
        runs = _runs(stalled)
        n = len(msssim)
        s = Session.from_arrays(
            f.stem, np.arange(n, dtype=float), np.ones(n), quality=np.clip(to_vmaf.predict(msssim), 0, 100),
            stall_start=[float(played_before[a]) for a, _ in runs], stall_duration=[float(k) for _, k in runs],
            device="unknown", content=f.stem, dataset=LFOVIA_QOE, file=str(f))
        r, lo, hi = _ratings(_vec(d, "score_continuous", f), _vec(d, "score_continuous_CIlow", f),
                             _vec(d, "score_continuous_CIhigh", f), "0-100")
        _check_length(s, len(r), f)
        sessions.append(s)
        ratings.append(r)
        lows.append(lo)
        highs.append(hi)
        masks.append(stall_mask_of(s))
    sp = sio.loadmat(_need(base / "training_videos_set.mat"))
    index = {int(re.search(r"\d+", s.id).group()): i for i, s in enumerate(sessions)}
    try:
        splits = [(np.array([index[int(v)] for v in tr]), np.array([index[int(v)] for v in va]))
                  for tr, va in zip(np.asarray(sp["training_videos_set"]), np.asarray(sp["validation_videos_set"]))]
    except KeyError as e:
        raise DeepQoEError(f"a split names video {e.args[0]}, which is not in the folder",
                           file=str(base / "training_videos_set.mat")) from None
    return ContinuousDataset(LFOVIA_QOE, sessions, ratings, lows, highs, masks, np.full(len(sessions), np.nan),
                             np.array([s.content for s in sessions]), splits,
                             "MS-SSIM per second mapped to the VMAF scale (isotonic fit on LIVE-NFLX per-second "
                             "MS-SSIM/VMAF pairs)")
