"""The continuous-time (per-second) QoE table of issue 10 point 3: causal features, the stall response
measure, and the quick run on the real data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import real_data

from deepqoe.experiments import continuous_time as ct
from deepqoe.sessions.qoe_model import QualityMapping
from deepqoe.sessions.session import Session

torch.set_num_threads(1)


def _session(quality, stalls=()):
    n = len(quality)
    return Session.from_arrays("s", np.arange(n, dtype=float), np.ones(n), quality=quality,
                               stall_start=[a for a, _ in stalls], stall_duration=[d for _, d in stalls])


def test_second_features_are_causal_and_follow_the_timeline():
    q = np.r_[np.full(10, 80.0), np.full(10, 40.0)]
    s = _session(q, [(5.0, 3.0)])
    F = ct.second_features(s, QualityMapping())
    assert F.shape == (23, len(ct.FEATURES))
    # wall seconds 5-7 are the stall: stalled now, one stall so far, quality of the last media second played
    assert np.array_equal(F[:, 2] > 0.5, np.isin(np.arange(23), [5, 6, 7]))
    assert F[4, 3] == 0 and F[5, 3] == 1 and F[-1, 3] == 1
    assert np.isnan(F[:8, 4]).all() and F[8, 4] == pytest.approx(0.5) and F[12, 4] == pytest.approx(4.5)
    assert F[-1, 5] == pytest.approx(3.0)
    assert F[12, 0] == 80 and F[15, 0] == 40 and F[15, 1] == pytest.approx((10 * 80 + 3 * 40) / 13)
    # causal: changing what plays after wall second 15 leaves seconds 0-14 unchanged
    later = _session(np.r_[q[:13], np.full(7, 5.0)], [(5.0, 3.0), (16.0, 2.0)])
    G = ct.second_features(later, QualityMapping())
    np.testing.assert_array_equal(F[:15], G[:15])
    assert not np.allclose(F[16:23], G[16:23], equal_nan=True)


def test_stall_response_measures_dip_and_recovery():
    s = _session(np.full(30, 80.0), [(10.0, 4.0)])                 # stall on wall seconds 10-13
    v = np.r_[np.full(10, 4.0), [3.5, 3.0, 2.5, 2.0], np.linspace(2.2, 4.0, 20)]
    r = ct.stall_response([s], [v])
    assert r["n_stalls"] == 1 and r["mean_dip"] == pytest.approx(-2.0)
    assert r["mean_recovery"] == pytest.approx(v[23] - 2.0) and r["recovery_positive_share"] == 1.0
    flat = ct.stall_response([s], [np.full(34, 3.0)])
    assert flat["mean_dip"] == 0 and flat["dip_negative_share"] == 0
    startup_only = ct.stall_response([_session(np.full(5, 80.0), [(0.0, 2.0)])], [np.full(7, 3.0)])
    assert startup_only["n_stalls"] == 0 and math.isnan(startup_only["mean_dip"])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    for parts in (("p1203-open",), ("waterloo-sqoe-iv",), ("live-nflx",), ("continuous-qoe", "live-nflx"),
                  ("continuous-qoe", "lfovia-qoe")):
        real_data(*parts)
    out = tmp_path_factory.mktemp("continuous_time")
    return out, ct.run_experiment(out, quick=True, log=lambda m: None)


def test_quick_run_writes_the_table_with_finite_numbers(quick_run):
    out, res = quick_run
    assert set(res["protocols"]) == set(ct.PROTOCOLS)
    on_disk = json.loads((out / "continuous_time.json").read_text())
    md = (out / "continuous_time.md").read_text()
    assert (out / "continuous_time.png").stat().st_size > 10_000
    for key, p in on_disk["protocols"].items():
        assert p["n_test_sessions"] > 0 and set(p["methods"]) == set(ct.METHODS)
        for m, v in p["methods"].items():
            for metric in ("rmse", "median_plcc", "median_srocc", "outage"):
                assert math.isfinite(v[metric]), (key, m, metric)
            assert 0 <= v["outage"] <= 1 and -1 <= v["median_srocc"] <= 1 and v["rmse"] > 0
            assert len(v["per_session_srocc"]) == p["n_test_sessions"]
            assert f"| {p['label']} | {m} |" in md
        assert p["stall_response"]["measured"]["n_stalls"] > 0
    # the cross rows test every session of the other dataset once
    assert on_disk["protocols"]["nflx-to-lfovia"]["n_test_sessions"] == 36
    assert on_disk["protocols"]["lfovia-to-nflx"]["n_test_sessions"] == 100


def test_quick_run_ours_dips_during_stalls(quick_run):
    _, res = quick_run
    for p in res["protocols"].values():
        sr = p["stall_response"]
        assert sr["measured"]["mean_dip"] < 0          # the viewers' curve dips (a check of the data path)
        assert sr[ct.OURS]["mean_dip"] < 0 and sr[ct.OURS]["dip_negative_share"] > 0.5
