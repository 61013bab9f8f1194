"""The streaming evaluation harness (deepqoe.experiments.streaming).

The quick run needs DEEPQOE_DATA (LIVE-NFLX, P.1203 open dataset, Waterloo SQoE-IV): skipped when the
data is missing, but FAILS when CI=true. Checks are ranges and structure, never hard-coded numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import real_data
from deepqoe.experiments import streaming as st


def _toy(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = 3 + X["a"] - 0.5 * X["b"] ** 2 + rng.normal(0, 0.1, n)
    return X, y.to_numpy()


def test_deepqoe_fusion_and_blend_learn_a_toy_function():
    X, y = _toy()
    inputs = [{"column": "g1", "name": "g1", "modality": "continuous", "columns": ["a"], "normalisation": "standard",
               "projection": 8},
              {"column": "g2", "name": "g2", "modality": "continuous", "columns": ["b"], "normalisation": "standard",
               "projection": 8}]
    tr, te = np.arange(80), np.arange(80, 120)
    m = st.DeepQoEFusion(inputs, seeds=2, hidden_layers=[16], max_epochs=150, validation_fraction=0.0,
                         patience=150, batch_size=128)
    p = m.fit(X.iloc[tr], y[tr]).predict(X.iloc[te])
    assert p.shape == (40,) and np.isfinite(p).all()
    assert st.srocc(p, y[te]) > 0.7
    b = st.Blend(st.DeepQoEFusion(inputs, seeds=1, hidden_layers=[16], max_epochs=100),
                 st.LGBM(["a", "b"], monotone={"a": 1}, n_estimators=50))
    pb = b.fit(X.iloc[tr], y[tr]).predict(X.iloc[te])
    assert st.srocc(pb, y[te]) > 0.7


def test_par_runs_tasks_in_order():
    tasks = [(i,) for i in range(5)]
    assert st._par(abs, tasks, 1) == [0, 1, 2, 3, 4]
    assert st._par(abs, [(-i,) for i in range(5)], 2) == [0, 1, 2, 3, 4]


def test_quick_run_on_real_data(tmp_path, monkeypatch):
    for d in ("live-nflx", "p1203-open", "waterloo-sqoe-iv"):
        real_data(d)
    monkeypatch.setattr(st, "NFLX_TUNED_SPLITS", 1)  # split 2 then counts as held out from the recipe choice
    res = st.run(tmp_path, quick=True, n_splits=4, n_neural=2, jobs=2, log=lambda *a: None)
    assert (tmp_path / "report_streaming.md").is_file()
    saved = json.loads((tmp_path / "results_streaming.json").read_text())
    assert saved["live_nflx"]["n_splits"] == 4 and saved["live_nflx"]["n_neural_splits"] == 2
    assert "markdown" in res and "## Streaming QoE" in res["markdown"]
    rows = saved["live_nflx"]["methods"]
    assert rows[st.OURS]["n_splits"] == 2 and rows[st.VA]["n_splits"] == 4
    for k, v in rows.items():
        assert -1 <= v["srocc"]["median"] <= 1 and 0 <= v["plcc"]["median"] <= 1, k
    assert rows[st.OURS]["srocc"]["median"] > 0.5
    assert rows[st.VA]["srocc"]["median"] > 0.5
    t = saved["live_nflx"]["paired_test_ours_vs_videoatlas"]
    assert t["n"] == 2 and 0 <= t["a_better_fraction"] <= 1  # the one paired test of evaluation.statistics
    held = saved["live_nflx"]["held_out_from_tuning"]
    assert held["splits"] == "2-2" and held["paired_test_ours_vs_videoatlas"]["n"] == 1
    assert -1 <= held["methods"][st.OURS]["srocc"]["median"] <= 1 and held["methods"][st.OURS]["srocc"]["n"] == 1
    assert "Held out from the choice of our recipe" in res["markdown"]
    lodo = saved["p1203"]["lodo"]
    assert set(lodo) == {"TR04", "TR06", "VL04", "VL13"}
    for row in lodo.values():
        assert st.O46 in row and st.OURS_S in row
        assert all(-1 <= v["srocc"] <= 1 and -1 <= v["plcc"] <= 1 for v in row.values())
    assert 0.5 < saved["p1203"]["lodo_mean"][st.O46]["srocc"] <= 1
    assert len(saved["waterloo"]["loco"]) == 2
    assert saved["waterloo"]["loco_mean"][st.OURS_S]["srocc"] > 0.3
    cross = saved["cross"]
    assert len(cross) == 6
    for v in cross.values():
        assert -1 <= v[st.CROSS_OURS] <= 1 and 0 <= v["best single input"]["srocc"] <= 1
    assert list(saved["cross_normalisations"]) == [st.CROSS_NORM]  # quick: the main normalisation only
    assert len(saved["targets"]) >= 4
    assert saved["seconds"] < 300  # generous: the CI machine may be shared


def test_blend_of_fitted_members_equals_blend():
    X, y = _toy(60, seed=1)
    X["_row"] = np.arange(len(X))
    tr = np.arange(60) < 40
    methods = {"a": lambda: st.LGBM(["a", "b"], n_estimators=30), "b": lambda: st.GridSVR(["a", "b"], (1.0,), (0.1,)),
               "blend": st.BlendOf("a", "b")}
    _, row = st._fit_group("g", tr, ~tr, X, y, methods)
    p = st.Blend(methods["a"](), methods["b"]()).fit(X[tr].reset_index(drop=True), y[tr]).predict(
        X[~tr].reset_index(drop=True))
    assert row["blend"]["srocc"] == pytest.approx(st.srocc(p, y[~tr]))
    assert list(row) == ["a", "b", "blend"]


def test_per_dataset_normalisation_uses_features_only_and_clips_to_training_range():
    Fa = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": [5.0] * 4})
    Fb = pd.DataFrame({"x": [10.0, 20.0, 30.0, 100.0], "c": [1.0] * 4})
    z = st.normalise_per_dataset(Fb, "z")
    assert z["x"].mean() == pytest.approx(0) and z["x"].std(ddof=0) == pytest.approx(1)
    assert (z["c"] == 0).all()  # a constant column carries no information, not a division by zero
    assert list(st.normalise_per_dataset(Fb, "rank")["x"]) == [0.25, 0.5, 0.75, 1.0]
    Xa, Xb = st._cross_inputs(Fa, Fb, "per-dataset z-score + clip")
    assert Xb["x"].max() <= Xa["x"].max() + 1e-12 and Xb["x"].min() >= Xa["x"].min() - 1e-12
    Xa, Xb = st._cross_inputs(Fa, Fb, "quality rank only")
    assert Xb["x"].max() == 100.0  # no normalisation, no clipping
    with pytest.raises(ValueError):
        st.normalise_per_dataset(Fa, "minmax")
