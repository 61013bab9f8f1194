"""Continuous-time (per-second) QoE datasets: the wall timeline contract, scales, stalls, splits."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from conftest import real_data
from scipy.stats import spearmanr

from deepqoe.datasets.lfovia_qoe import load_lfovia_qoe
from deepqoe.datasets.live_nflx_continuous import load_live_nflx_continuous
from deepqoe.sessions.continuous import stall_fraction, wall_seconds
from deepqoe.sessions.session import Session


@pytest.fixture(scope="module")
def live():
    real_data("continuous-qoe", "live-nflx")
    return load_live_nflx_continuous()


@pytest.fixture(scope="module")
def lfovia():
    real_data("continuous-qoe", "lfovia-qoe")
    return load_lfovia_qoe()


def _stalled_share_by_walking(s: Session, steps: int = 200) -> np.ndarray:
    """Stalled share of each wall second, by playing the session piece by piece and sampling the wall
    clock (independent of the package's own computation)."""
    pieces = []  # (is_stall, duration) in play order
    stalls = sorted(zip(s.stall_start.tolist(), s.stall_duration.tolist()), key=lambda t: t[0])
    k = 0
    for a, d in zip(s.seg_start.tolist(), s.seg_duration.tolist()):
        while k < len(stalls) and stalls[k][0] < a + d - 1e-12:
            cut = stalls[k][0] - a
            if cut > 0:
                pieces.append((False, cut))
                a, d = a + cut, d - cut
            pieces.append((True, stalls[k][1]))
            k += 1
        pieces.append((False, d))
    pieces += [(True, dd) for _, dd in stalls[k:]]
    ends = np.cumsum([d for _, d in pieces])
    stall_piece = np.array([st for st, _ in pieces])
    n = math.ceil(ends[-1] - 1e-9)  # summing pieces adds rounding noise
    t = (np.arange(n * steps) + 0.5) / steps
    idx = np.minimum(np.searchsorted(ends, t, side="right"), len(pieces) - 1)
    return stall_piece[idx].reshape(n, steps).mean(axis=1)


def test_stall_fraction_of_a_hand_made_session():
    s = Session.from_arrays("x", np.arange(10.0), np.ones(10), quality=50.0, stall_start=[0.0, 3.0],
                            stall_duration=[1.5, 0.5])
    assert wall_seconds(s) == 12
    want = np.zeros(12)
    want[0], want[1], want[4] = 1.0, 0.5, 0.5   # startup [0, 1.5); stall [4.5, 5.0)
    assert np.allclose(stall_fraction(s), want)
    assert np.allclose(_stalled_share_by_walking(s), want, atol=0.01)


@pytest.mark.parametrize("which", ["live", "lfovia"])
def test_wall_timeline_contract(which, request):
    ds = request.getfixturevalue(which)
    assert len(ds.sessions) == len(ds.ratings) == len(ds.ci_low) == len(ds.ci_high) == len(ds.stall_mask) \
        == len(ds.mos) == len(ds.groups)
    n_stalled = outside = seconds = 0
    for s, r, lo, hi, mask in zip(ds.sessions, ds.ratings, ds.ci_low, ds.ci_high, ds.stall_mask):
        n = math.ceil(s.wall_duration)
        assert len(r) == len(lo) == len(hi) == len(mask) == n, s.id
        assert mask.dtype == bool
        share = _stalled_share_by_walking(s)
        clear = np.abs(share - 0.5) > 0.02
        assert np.array_equal(mask[clear], share[clear] >= 0.5), s.id
        assert abs(share.sum() - s.stall_total) < 0.05, s.id
        assert np.all(np.isfinite(r)) and r.min() >= 1.0 and r.max() <= 5.0, s.id
        assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))
        assert np.all(lo <= hi), s.id
        outside += int(np.sum((lo > r + 1e-9) | (r > hi + 1e-9)))
        seconds += n
        assert lo.min() >= 1.0 and hi.max() <= 5.0
        q = s.quality
        assert np.all(np.isfinite(q)) and q.min() >= 0 and q.max() <= 100
        assert np.all(s.seg_duration[:-1] == 1.0) and 0 < s.seg_duration[-1] <= 1.0
        n_stalled += int(mask.sum())
    assert n_stalled > 0
    assert outside / seconds < 0.03   # LIVE-NFLX's per-second CI leaves its own mean in 1.5 % of seconds


def test_live_nflx_stalls_are_the_releases(live):
    import scipy.io as sio

    base = real_data("continuous-qoe", "live-nflx")
    assert len(live.sessions) == 100 and len(set(live.groups)) == 14
    for s, mask in zip(live.sessions, live.stall_mask):
        d = sio.loadmat(base / f"{s.id}.mat")
        assert len(s.stall_start) == int(d["ns"].ravel()[0]), s.id
        assert abs(s.stall_total - float(d["ds"].ravel()[0])) < 0.05, s.id
        levels = set(d["bitrate_levels_avg1sec"].ravel().tolist()) - {0.0}
        assert set(s.representation) <= levels, s.id     # a played rung for every media second
        own = d["Nrebuffers_avg1sec"].ravel() > 0
        share = stall_fraction(s)
        differ = mask != own
        # the release's per-second state is a rounding: it may differ only where a second is partly stalled
        assert np.all((share[differ] > 0) & (share[differ] < 1)), s.id
    assert np.all((live.mos >= 1) & (live.mos <= 5))
    finals = [s.mos for s in live.sessions]
    assert spearmanr(finals, live.mos)[0] > 0.999
    assert live.splits is None


def test_live_nflx_ratings_follow_the_z_scores(live):
    import scipy.io as sio

    base = real_data("continuous-qoe", "live-nflx")
    s, r = live.sessions[0], live.ratings[0]
    z = sio.loadmat(base / f"{s.id}.mat")["continuous_subj_score_avg1sec"].ravel()
    inside = (r > 1.0) & (r < 5.0)
    assert inside.mean() > 0.9
    assert np.corrcoef(z[inside], r[inside])[0, 1] > 0.9999   # one linear map inside the scale


def test_lfovia_splits_and_quality(lfovia):
    import scipy.io as sio

    base = real_data("continuous-qoe", "lfovia-qoe")
    assert len(lfovia.sessions) == 36
    assert np.all(np.isnan(lfovia.mos))
    assert len(lfovia.splits) == 36
    for i, (tr, te) in enumerate(lfovia.splits):
        assert len(tr) == 25 and len(te) == 10 and not set(tr) & set(te)
        assert i not in set(tr) | set(te)       # row i leaves video i + 1 out
    assert lfovia.sessions[0].id == "video_1"
    # quality is a monotone function of MS-SSIM (across all videos)
    x = np.concatenate([sio.loadmat(base / f"{s.id}.mat")["MSSSIM"].ravel() for s in lfovia.sessions])
    q = np.concatenate([s.quality for s in lfovia.sessions])
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(q[order]) >= -1e-9)
    assert q.max() - q.min() > 30
    # startup delays (stall at media 0) are kept
    assert any(np.any(s.stall_start == 0) for s in lfovia.sessions)


def test_quality_mapping_needs_no_lfovia(tmp_path):
    from deepqoe.datasets.lfovia_qoe import fit_msssim_to_vmaf

    src = real_data("continuous-qoe", "live-nflx")
    (tmp_path / "continuous-qoe").mkdir()
    os.symlink(src, tmp_path / "continuous-qoe" / "live-nflx")
    m = fit_msssim_to_vmaf(tmp_path)
    pred = m.predict(np.array([0.7, 0.9, 0.99]))
    assert np.all(np.diff(pred) >= 0) and pred[-1] > pred[0]
