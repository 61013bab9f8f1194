"""LFOVIA QoE with continuous (per-second) scores (``$DEEPQOE_DATA/continuous-qoe/lfovia-qoe/``, 36 videos
of 120 s of media; lfovia/lstm_qoe @ LFOVIA_QoE/; research use, cite Eswara et al., IEEE TCSVT 2019). A
:class:`~deepqoe.sessions.continuous.ContinuousDataset` on the wall timeline described there.

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

import re

import numpy as np

from deepqoe.datasets.files import data_root, mat_vector, natural_key, need
from deepqoe.datasets.live_nflx_continuous import live_nflx_mats
from deepqoe.errors import DeepQoEError
from deepqoe.sessions.continuous import ContinuousDataset, RatedSessions, common_ratings
from deepqoe.sessions.session import Session

NAME = "lfovia-qoe"


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first index, length) of each run of True."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(int)))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def fit_msssim_to_vmaf(root=None):
    """The monotone MS-SSIM -> VMAF mapping (an isotonic regression, ends clipped), fitted on the
    per-second (``MSSIM_vec_avg1sec``, ``VMAF_vec_avg1sec``) pairs of LIVE-NFLX (continuous)."""
    from sklearn.isotonic import IsotonicRegression

    raw = live_nflx_mats(root)
    x = np.concatenate([mat_vector(d, "MSSIM_vec_avg1sec", f) for f, d in raw])
    y = np.concatenate([np.clip(mat_vector(d, "VMAF_vec_avg1sec", f), 0, 100) for f, d in raw])
    ok = np.isfinite(x) & np.isfinite(y)
    return IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x[ok], y[ok])


def load_lfovia_qoe(root=None) -> ContinuousDataset:
    """LFOVIA QoE: 36 videos with continuous scores (see the module docstring)."""
    import scipy.io as sio

    base = need(data_root(root) / "continuous-qoe" / "lfovia-qoe")
    files = sorted(base.glob("video_*.mat"), key=lambda p: natural_key(p.name))
    if not files:
        raise DeepQoEError("no video_*.mat files", file=str(base))
    to_vmaf = fit_msssim_to_vmaf(root)
    rated = RatedSessions()
    for f in files:
        d = sio.loadmat(f)
        msssim = mat_vector(d, "MSSSIM", f)
        stalled = mat_vector(d, "Nrebuffers", f) > 0
        if len(stalled) != len(msssim) + stalled.sum():
            raise DeepQoEError(f"{len(stalled)} wall seconds, but {len(msssim)} media seconds and "
                               f"{int(stalled.sum())} stalled seconds", file=str(f), field="Nrebuffers")
        played_before = np.cumsum(~stalled) - ~stalled  # media seconds played before each wall second
        runs = _runs(stalled)
        n = len(msssim)
        s = Session.from_arrays(
            f.stem, np.arange(n, dtype=float), np.ones(n), quality=np.clip(to_vmaf.predict(msssim), 0, 100),
            stall_start=[float(played_before[a]) for a, _ in runs], stall_duration=[float(k) for _, k in runs],
            device="unknown", content=f.stem, dataset=NAME, file=str(f))
        rated.add(s, *common_ratings(mat_vector(d, "score_continuous", f), mat_vector(d, "score_continuous_CIlow", f),
                                     mat_vector(d, "score_continuous_CIhigh", f), "0-100"), f)
    sp = sio.loadmat(need(base / "training_videos_set.mat"))
    sessions = rated.sessions
    index = {int(re.search(r"\d+", s.id).group()): i for i, s in enumerate(sessions)}
    try:
        splits = [(np.array([index[int(v)] for v in tr]), np.array([index[int(v)] for v in va]))
                  for tr, va in zip(np.asarray(sp["training_videos_set"]), np.asarray(sp["validation_videos_set"]))]
    except KeyError as e:
        raise DeepQoEError(f"a split names video {e.args[0]}, which is not in the folder",
                           file=str(base / "training_videos_set.mat")) from None
    return rated.dataset(NAME, np.full(len(sessions), np.nan), [s.content for s in sessions], splits,
                             "MS-SSIM per second mapped to the VMAF scale (isotonic fit on LIVE-NFLX per-second "
                             "MS-SSIM/VMAF pairs)")
