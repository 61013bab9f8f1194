"""LIVE-NFLX with continuous (per-second) scores (``$DEEPQOE_DATA/continuous-qoe/live-nflx/``, 100
sessions; lfovia/lstm_qoe @ LIVE_Netflix/; research use, cite Bampis et al.). A
:class:`~deepqoe.sessions.continuous.ContinuousDataset` on the wall timeline described there.

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
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from deepqoe.datasets.files import data_root, mat_scalar, mat_vector, natural_key, need
from deepqoe.errors import DeepQoEError
from deepqoe.sessions.continuous import ContinuousDataset, RatedSessions, common_ratings
from deepqoe.sessions.scales import fit_z_reference, to_common
from deepqoe.sessions.session import Session

NAME = "live-nflx-continuous"


def _files(root) -> list[Path]:
    base = need(data_root(root) / "continuous-qoe" / "live-nflx")
    files = sorted(base.glob("content_*_seq_*.mat"), key=lambda p: natural_key(p.name))
    if not files:
        raise DeepQoEError("no content_*_seq_*.mat files", file=str(base))
    return files


@lru_cache(maxsize=2)
def _raw(root_key: str) -> tuple[tuple[Path, dict], ...]:
    import scipy.io as sio

    return tuple((f, sio.loadmat(f)) for f in _files(root_key or None))


def live_nflx_mats(root=None) -> tuple[tuple[Path, dict], ...]:
    """(file, loaded ``.mat``) of each session, in natural file order (cached: two loaders read them)."""
    return _raw(str(data_root(root)))


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
    raw = live_nflx_mats(root)
    ref = fit_z_reference([mat_scalar(d, "final_subj_score", f) for f, d in raw])
    rated, mos, groups = RatedSessions(), [], []
    for f, d in raw:
        fps = mat_scalar(d, "vid_fps", f)
        media_frames = len(mat_vector(d, "VMAF_vec", f))
        stalls = _frame_stalls(mat_vector(d, "continuous_subj_score", f),
                               mat_vector(d, "continuous_subj_score_wo_rebuf", f), f)
        stalled_frames = sum(n for _, n in stalls)
        if media_frames + stalled_frames != int(mat_scalar(d, "Nframes", f)) or \
                abs(stalled_frames / fps - mat_scalar(d, "ds", f)) > 1.0 / fps:
            raise DeepQoEError(f"the stalls found ({stalled_frames} frames) do not match Nframes / ds",
                               file=str(f), field="ds")
        q = np.clip(mat_vector(d, "VMAF_vec_avg1sec", f), 0.0, 100.0)
        n_media = len(q)
        if n_media != math.ceil(media_frames / fps):
            raise DeepQoEError(f"{n_media} per-second VMAF values for {media_frames / fps:.3f} s of media",
                               file=str(f), field="VMAF_vec_avg1sec")
        start = np.arange(n_media, dtype=float)
        dur = np.ones(n_media)
        dur[-1] = media_frames / fps - (n_media - 1)
        stall_media = np.array([a / fps for a, _ in stalls])
        stall_len = np.array([n / fps for _, n in stalls])
        levels = _levels_by_media_second(mat_vector(d, "bitrate_levels_avg1sec", f),
                                         mat_vector(d, "Nrebuffers_avg1sec", f), start + dur / 2, stall_media,
                                         stall_len)
        m = re.match(r"content_(\d+)_seq_(\d+)", f.stem)
        final = mat_scalar(d, "final_subj_score", f)
        s = Session.from_arrays(
            f.stem, start, dur, quality=q, fps=fps,
            representation=levels, stall_start=stall_media, stall_duration=stall_len,
            device="unknown", content=f"content_{m.group(1)}", mos=final, mos_scale="z",
            dataset=NAME, file=str(f))
        rated.add(s, *common_ratings(mat_vector(d, "continuous_subj_score_avg1sec", f),
                                     mat_vector(d, "continuous_subj_score_CIlow_avg1sec", f),
                                     mat_vector(d, "continuous_subj_score_CIhigh_avg1sec", f), ref), f)
        mos.append(float(to_common(final, ref)))
        groups.append(s.content)
    return rated.dataset(NAME, mos, groups, None, "VMAF per second (VMAF_vec_avg1sec)")
