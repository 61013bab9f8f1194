"""The streaming section of ``deepqoe reproduce`` (deepqoe.experiments.streaming and streaming_*.py).

The quick run needs DEEPQOE_DATA (LIVE-NFLX, P.1203 open dataset, Waterloo SQoE-IV): skipped when the
data is missing, but FAILS when CI=true. Checks are ranges and structure, never hard-coded numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import real_data
from deepqoe.evaluation.metrics import srocc
from deepqoe.evaluation.protocols import Split
from deepqoe.experiments import streaming
from deepqoe.experiments import streaming_cross_dataset as cross
from deepqoe.experiments import streaming_live_nflx as nflx
from deepqoe.experiments.common import Settings
from deepqoe.experiments.streaming_models import Blend, BlendOf, DeepQoEFusion
from deepqoe.experiments.streaming_p1203 import O46
from deepqoe.experiments.streaming_sessions import OURS_S, fit_split
from deepqoe.shallow import ColumnLightGBM, GridSVR


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
    m = DeepQoEFusion(inputs, seeds=2, hidden_layers=[16], max_epochs=150, validation_fraction=0.0,
                      patience=150, batch_size=128)
    p = m.fit(X.iloc[tr], y[tr]).predict(X.iloc[te])
    assert p.shape == (40,) and np.isfinite(p).all()
    assert srocc(p, y[te]) > 0.7
    b = Blend(DeepQoEFusion(inputs, seeds=1, hidden_layers=[16], max_epochs=100),
              ColumnLightGBM(["a", "b"], monotone={"a": 1}, n_estimators=50))
    pb = b.fit(X.iloc[tr], y[tr]).predict(X.iloc[te])
    assert srocc(pb, y[te]) > 0.7


def test_run_parallel_keeps_the_order_of_tasks():
    from deepqoe.evaluation.parallel import run_parallel, worker_cpu_seconds

    assert run_parallel(abs, [(-i,) for i in range(5)], 1) == [0, 1, 2, 3, 4]
    before = worker_cpu_seconds()
    assert run_parallel(abs, [(-i,) for i in range(5)], 2) == [0, 1, 2, 3, 4]
    assert worker_cpu_seconds() >= before


def test_group_shuffle_splits_hold_out_whole_groups():
    from deepqoe.evaluation.protocols import fixed_splits, make_splits

    groups = np.repeat(list("abcdefghij"), 3)
    splits = make_splits("group-shuffle", len(groups), groups=groups, n_splits=4, test_size=0.2, seed=1)
    rng = np.random.default_rng(1)  # the protocol: draw round(0.2 * 10) groups per split, independently
    for s in splits:
        held = rng.choice(np.unique(groups), 2, replace=False)
        assert set(groups[s.test]) == set(held) and not set(groups[s.train]) & set(held)
        assert len(s.train) + len(s.test) == len(groups)
    masks = np.array([[True, False], [False, True], [True, True]])
    f = fixed_splits(masks)
    assert [list(s.train) for s in f] == [[0, 2], [1, 2]] and [list(s.test) for s in f] == [[1], [0]]


def test_one_summary_with_one_ddof():
    from deepqoe.evaluation.statistics import STD_DDOF, describe, summarise

    d = describe([1.0, 2.0, 3.0, 6.0])
    assert STD_DDOF == 1 and d["std"] == pytest.approx(np.std([1, 2, 3, 6], ddof=1))
    assert (d["mean"], d["median"], d["min"], d["max"], d["n"]) == (3.0, 2.5, 1.0, 6.0, 4)
    assert describe([4.0])["std"] == 0.0 and np.isnan(describe([])["mean"]) and describe([])["n"] == 0
    s = summarise([{"srocc": 0.5}, {"srocc": 0.7}])["srocc"]
    assert s["std"] == pytest.approx(describe([0.5, 0.7])["std"]) and s["values"] == [0.5, 0.7]


def test_quick_run_on_real_data(tmp_path, monkeypatch):
    for d in ("live-nflx", "p1203-open", "waterloo-sqoe-iv"):
        real_data(d)
    monkeypatch.setattr(nflx, "TUNED_SPLITS", 1)  # split 2 then counts as held out from the recipe choice
    settings = Settings.make(True, jobs=2, streaming_splits=4, streaming_neural_splits=2)
    md, res = streaming.run(settings, tmp_path, log=lambda *a: None)
    assert json.loads(json.dumps(res, allow_nan=True)) is not None  # what results.json holds
    assert "## Streaming QoE" in md and "Held out from the choice of our recipe" in md
    for img in res["plots"]:
        assert (tmp_path / img).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = res["live_nflx"]
    assert r["n_splits"] == 4 and r["n_neural_splits"] == 2
    rows = r["methods"]
    assert rows[nflx.OURS]["n_splits"] == 2 and rows[nflx.VA]["n_splits"] == 4
    for k, v in rows.items():
        assert -1 <= v["srocc"]["median"] <= 1 and 0 <= v["plcc"]["median"] <= 1, k
        assert v["srocc"]["std"] >= 0  # the one summary of evaluation.statistics (sample std)
    assert rows[nflx.OURS]["srocc"]["median"] > 0.5
    assert rows[nflx.VA]["srocc"]["median"] > 0.5
    t = r["paired_test_ours_vs_videoatlas"]
    assert t["n"] == 2 and 0 <= t["a_better_fraction"] <= 1  # the one paired test of evaluation.statistics
    held = r["held_out_from_tuning"]
    assert held["splits"] == "2-2" and held["paired_test_ours_vs_videoatlas"]["n"] == 1
    assert -1 <= held["methods"][nflx.OURS]["srocc"]["median"] <= 1 and held["methods"][nflx.OURS]["srocc"]["n"] == 1
    lodo = res["p1203"]["lodo"]
    assert set(lodo) == {"TR04", "TR06", "VL04", "VL13"}
    for row in lodo.values():
        assert O46 in row and OURS_S in row
        assert all(-1 <= v["srocc"] <= 1 and -1 <= v["plcc"] <= 1 for v in row.values())
    assert 0.5 < res["p1203"]["lodo_mean"][O46]["srocc"] <= 1
    assert res["p1203"]["content_splits"][O46]["srocc"]["n"] == res["p1203"]["n_content_splits"]
    assert len(res["waterloo"]["loco"]) == 2
    assert res["waterloo"]["loco_mean"][OURS_S]["srocc"] > 0.3
    c = res["cross"]
    assert len(c) == 6
    for v in c.values():
        assert -1 <= v[cross.CROSS_OURS] <= 1 and 0 <= v["best single input"]["srocc"] <= 1
    assert list(res["cross_normalisations"]) == [cross.CROSS_NORM]  # quick: the main normalisation only
    assert len(res["targets"]) >= 4
    assert res["seconds"] < 300  # generous: the CI machine may be shared


def test_blend_of_fitted_members_equals_blend():
    X, y = _toy(60, seed=1)
    X["_row"] = np.arange(len(X))
    tr = np.arange(60) < 40
    methods = {"a": lambda: ColumnLightGBM(["a", "b"], n_estimators=30),
               "b": lambda: GridSVR(["a", "b"], (1.0,), (0.1,)), "blend": BlendOf("a", "b")}
    name, row = fit_split(Split("g", np.flatnonzero(tr), np.flatnonzero(~tr)), X, y, methods)
    p = Blend(methods["a"](), methods["b"]()).fit(X[tr].reset_index(drop=True), y[tr]).predict(
        X[~tr].reset_index(drop=True))
    assert name == "g" and row["blend"]["srocc"] == pytest.approx(srocc(p, y[~tr]))
    assert list(row) == ["a", "b", "blend"]


def test_per_dataset_normalisation_uses_features_only_and_clips_to_training_range():
    Fa = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": [5.0] * 4})
    Fb = pd.DataFrame({"x": [10.0, 20.0, 30.0, 100.0], "c": [1.0] * 4})
    z = cross.normalise_per_dataset(Fb, "z")
    assert z["x"].mean() == pytest.approx(0) and z["x"].std(ddof=0) == pytest.approx(1)
    assert (z["c"] == 0).all()  # a constant column carries no information, not a division by zero
    assert list(cross.normalise_per_dataset(Fb, "rank")["x"]) == [0.25, 0.5, 0.75, 1.0]
    Xa, Xb = cross._cross_inputs(Fa, Fb, "per-dataset z-score + clip")
    assert Xb["x"].max() <= Xa["x"].max() + 1e-12 and Xb["x"].min() >= Xa["x"].min() - 1e-12
    Xa, Xb = cross._cross_inputs(Fa, Fb, "quality rank only")
    assert Xb["x"].max() == 100.0  # no normalisation, no clipping
    with pytest.raises(ValueError):
        cross.normalise_per_dataset(Fa, "minmax")


def test_session_kinds_are_found_inside_a_held_out_dataset():
    """by_session_kind: stall-only = one quality throughout (0 or more stalls), quality-only = no rebuffering; the
    left-out predictions are scored on each subset, and a subset under MIN_SUBSET sessions is left out."""
    from types import SimpleNamespace

    from deepqoe.experiments import streaming_generalisation as gen
    from deepqoe.sessions import Session
    from deepqoe.sessions.qoe_model import builtin_quality_mapping

    rng = np.random.default_rng(0)
    sessions, y = [], []
    for i in range(30):                                    # one quality, i % 3 stalls of 2 s
        k = i % 3
        sessions.append(Session.from_arrays(f"flat{i}", np.arange(10) * 2.0, np.full(10, 2.0), quality=np.full(10, 80.0),
                                            stall_start=np.linspace(4, 12, k), stall_duration=np.full(k, 2.0)))
        y.append(4.0 - k + rng.normal(0, 0.1))
    for i in range(25):                                    # varying quality, no stall
        q = np.clip(rng.uniform(20, 95) + rng.normal(0, 10, 10), 0, 100)
        sessions.append(Session.from_arrays(f"vary{i}", np.arange(10) * 2.0, np.full(10, 2.0), quality=q))
        y.append(1 + 4 * q.mean() / 100)
    y = np.array(y)
    pred = y + rng.normal(0, 0.05, len(y))
    S = {"toy": SimpleNamespace(sessions=sessions, y=y)}
    res = gen.by_session_kind(S, {"toy": {"prediction": list(pred)}}, builtin_quality_mapping())
    rows = {r["kind"]: r for r in res["toy"]}
    flat, clean = rows["stall-only (one quality)"], rows["quality-only (no rebuffering)"]
    assert flat["n"] == 30 and flat["with_stalls"] == 20
    assert clean["n"] == 10 + 25 and clean["with_stalls"] == 0
    assert flat["ours"]["srocc"] == pytest.approx(round(srocc(y[:30], pred[:30]), 4))
    assert flat["single_inputs"]["- stalls"]["srocc"] > 0.8      # the count explains the flat sessions' scores
    assert clean["single_inputs"]["- stalls"]["srocc"] is None    # constant there: undefined, not 0
    md = gen.markdown({"lodo": {}, "by_kind": res, "recipe": {}, "seconds": 0.0})
    assert "stall-only (one quality) | 30 (20)" in md
    few = gen.by_session_kind({"toy": SimpleNamespace(sessions=sessions[:19], y=y[:19])},
                              {"toy": {"prediction": list(pred[:19])}}, builtin_quality_mapping())
    assert few["toy"] == []


def test_previous_shipped_recipe_is_retrained_beside_ours():
    """The previous shipped model's recipe (PREVIOUS_RECIPE) is retrained on the same session sets and reported
    beside ours: left out (its own column), on each kind of session, and on LIVE-NFLX's splits."""
    from deepqoe.datasets.scored import SessionSet
    from deepqoe.experiments import streaming_generalisation as gen
    from deepqoe.sessions import Session
    from deepqoe.sessions.qoe_model import builtin_quality_mapping

    rng = np.random.default_rng(1)

    def toy(name, n):
        sessions, y = [], []
        for i in range(n):
            k = i % 3
            q = np.full(10, rng.uniform(30, 95))
            sessions.append(Session.from_arrays(f"{name}{i}", np.arange(10) * 2.0, np.full(10, 2.0), quality=q,
                                                stall_start=np.linspace(4, 12, k), stall_duration=np.full(k, 2.0)))
            y.append(1 + 3.5 * q[0] / 100 - 0.6 * k + rng.normal(0, 0.05))
        return SessionSet(name, sessions, np.array(y), np.array([f"{name}:{i % 8}" for i in range(n)]))

    a, b = toy("a", 80), toy("b", 60)
    recipe = dict(gen.PREVIOUS_RECIPE, max_epochs=30)
    pred = gen.previous_recipe_predict([a], b.sessions, recipe)
    assert pred.shape == (60,) and np.isfinite(pred).all()
    assert srocc(b.y, pred) > 0.5                       # it learns from a what also holds on b
    lodo = {"b": {"prediction": list(b.y), "previous_prediction": list(pred)}}
    kinds = gen.by_session_kind({"b": b}, lodo, builtin_quality_mapping())["b"]
    flat = next(r for r in kinds if r["kind"].startswith("stall-only"))
    assert flat["previous_shipped"]["srocc"] == pytest.approx(round(srocc(b.y, pred), 4))
    md = gen.markdown({"lodo": {}, "by_kind": {"b": kinds}, "recipe": {}, "seconds": 0.0, "live_nflx": [
        {"quality": "VMAF", "splits": "101-102", "median_srocc": 0.7, "median_plcc": 0.8,
         "previous_shipped": {"median_srocc": 0.61, "median_plcc": 0.62}}]})
    assert "| VMAF | 101-102 | 0.700 | 0.800 | 0.610 / 0.620 |" in md
    assert f"| {flat['previous_shipped']['srocc']:.3f} / {flat['previous_shipped']['plcc']:.3f} |" in md
