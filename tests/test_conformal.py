"""Prediction intervals with guaranteed coverage (issue 13 part 2): deepqoe.conformal, intervals.json in model
directories, ``predict --interval``, the service."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import synthetic_table, write_config
from deepqoe.cli import main
from deepqoe.conformal import (INTERVALS_FILE, calibrate, check_level, conformal_rank, coverage, half_width,
                               interval_bounds, load_intervals, min_calibration, parse_level, validate)
from deepqoe.errors import DeepQoEError

torch.set_num_threads(1)


# ---- the method ---------------------------------------------------------------------------------------
def test_coverage_is_nominal_over_many_draws():
    """Distribution-free: heavy-tailed, heteroscedastic noise and a biased model still get nominal coverage
    on average; the naive (uncorrected) quantile would fall short at this small n."""
    rng = np.random.default_rng(0)
    n_cal, n_test, reps = 19, 200, 600
    got = {0.8: [], 0.9: []}
    naive = []
    for _ in range(reps):
        x = rng.uniform(0, 1, n_cal + n_test)
        y = 3 * x + (0.2 + x) * rng.standard_t(3, x.size)
        pred = 3 * x + 0.3  # a biased model
        cal = calibrate(y[:n_cal], pred[:n_cal], source="test")
        for lv in got:
            got[lv].append(coverage(y[n_cal:], *interval_bounds(cal, pred[n_cal:], lv))["coverage"])
        q = np.quantile(np.abs(y[:n_cal] - pred[:n_cal]), 0.9)
        naive.append(np.mean(np.abs(y[n_cal:] - pred[n_cal:]) <= q))
    # expected coverage k / (n + 1): 16/20 = 0.80 and 18/20 = 0.90; the standard error of the mean is ~0.003
    assert abs(np.mean(got[0.8]) - 0.80) < 0.012
    assert abs(np.mean(got[0.9]) - 0.90) < 0.012
    assert np.mean(naive) < 0.885  # without the (n + 1) correction the 0.9 interval undercovers


def test_finite_sample_quantile_small_n():
    res = np.arange(1.0, 10.0)  # residuals 1..9, n = 9
    cal = calibrate(res, np.zeros(9), source="test")
    assert conformal_rank(9, 0.9) == 9 and half_width(cal, 0.9) == 9.0  # k = ceil(10 * 0.9) = 9
    assert half_width(cal, 0.5) == 5.0  # k = ceil(5) = 5
    assert half_width(cal, 0.8) == 8.0  # k = ceil(8) = 8
    assert min_calibration(0.9) == 9 and min_calibration(0.8) == 4 and min_calibration(0.95) == 19
    with pytest.raises(DeepQoEError, match="needs at least 19 calibration scores"):
        half_width(cal, 0.95)  # k = ceil(9.5) = 10 > n
    cal8 = calibrate(res[:8], np.zeros(8), source="test")
    with pytest.raises(DeepQoEError, match="at least 9"):
        half_width(cal8, 0.9)


def test_many_residuals_are_stored_conservatively():
    rng = np.random.default_rng(1)
    r = rng.exponential(1.0, 12_345)
    cal = validate(json.loads(json.dumps(calibrate(r, np.zeros_like(r), source="test"))))
    assert cal["n_calibration"] == 12_345 and len(cal["residuals"]) <= 53 and cal["ranks"][-1] == 12_345
    exact = np.sort(r)
    for lv in (0.5, 0.8, 0.9, 0.99):  # on the grid: exact (rounded up to 1e-6)
        want = exact[conformal_rank(len(r), lv) - 1]
        assert want <= half_width(cal, lv) <= want + 1e-6
    for lv, up in ((0.855, 0.86), (0.9925, 0.995)):  # off the grid: the next grid level's rank (wider)
        assert half_width(cal, lv) == pytest.approx(exact[conformal_rank(len(r), up) - 1], abs=1e-6)


def test_bounds_clip_and_levels_parse():
    cal = calibrate([1, 2, 3, 4, 5] * 4, [3] * 20, scale="1-5", bounds=(1, 5), source="test")
    low, high = interval_bounds(cal, np.array([1.2, 4.9]), 0.8)
    assert low.min() >= 1 and high.max() <= 5 and (low <= [1.2, 4.9]).all() and (high >= [1.2, 4.9]).all()
    assert parse_level("0.8") == 0.8 and parse_level("90%") == 0.9 and parse_level("none") is None
    for bad in ("1", "0", "1.5", "abc", "-0.1", "0.3", "1e-300"):  # below 0.5: under the stored grid
        with pytest.raises(DeepQoEError, match="--interval"):
            parse_level(bad)
    assert parse_level("0.5") == 0.5
    with pytest.raises(DeepQoEError, match="from 0.5 to 1"):
        check_level(0.3)
    with pytest.raises(DeepQoEError, match="a 0.9999999 interval needs"):  # the level as asked, not rounded
        half_width(cal, 0.9999999)


def test_damaged_intervals_json_is_one_clear_line(tmp_path: Path):
    cal = calibrate([1.0, 2.0, 3.0], [1.5, 2.0, 2.0], source="test")
    (tmp_path / INTERVALS_FILE).write_text(json.dumps({**cal, "residuals": [0.5, 0.1, 1.0]}))
    with pytest.raises(DeepQoEError, match="sorted") as e:
        load_intervals(tmp_path)
    assert "intervals.json" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / INTERVALS_FILE).write_text(json.dumps({**cal, "n_calibration": 7}))
    with pytest.raises(DeepQoEError, match="n_calibration"):
        load_intervals(tmp_path)
    assert load_intervals(tmp_path / "nowhere") is None


# ---- table models: train, save / load, predict ------------------------------------------------------------
@pytest.fixture(scope="module")
def regression_model(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("conformal")
    synthetic_table(300).to_csv(d / "t.csv", index=False)
    cfg = write_config(d, d / "t.csv", task="regression")
    assert main(["train", str(cfg), "--out", str(d / "m"), "-q"]) == 0
    return d, d / "m"


def test_train_writes_intervals_and_they_round_trip(regression_model):
    d, m = regression_model
    saved = json.loads((m / INTERVALS_FILE).read_text())
    metrics = json.loads((m / "metrics.json").read_text())
    # 300 rows: 20 % of the 8 titles tested on (group-disjoint), the other rows training, of which 20 % (group-
    # disjoint by title) calibrate, the rest fit
    assert saved["method"] == "split-conformal" and saved["n_calibration"] == metrics["intervals"]["n_calibration"]
    assert metrics["holdout"] == "group-disjoint" and 0 < metrics["n_test"] < 150
    assert 20 <= saved["n_calibration"] <= 90 and metrics["n_train"] + saved["n_calibration"] == 300 - metrics["n_test"]
    assert set(metrics["intervals"]["test"]) == {"0.8", "0.9"}
    from deepqoe.predictor import load_predictor

    p = load_predictor(m)
    assert p.intervals == saved and p.default_interval == 0.9
    rows = p.predict_rows(pd.read_csv(d / "t.csv").drop(columns=["mos"]).head(5), interval=0.8)
    q = half_width(saved, 0.8)
    for r in rows:
        assert r["interval"]["level"] == 0.8
        assert r["interval"]["low"] == pytest.approx(r["score"] - q, abs=1e-5)
        assert r["interval"]["high"] == pytest.approx(r["score"] + q, abs=1e-5)


def test_cli_interval_columns(regression_model, capsys):
    d, m = regression_model
    out = d / "pred.csv"
    assert main(["predict", str(m), str(d / "t.csv"), "--interval", "0.8", "--out", str(out), "-q"]) == 0
    df = pd.read_csv(out)
    assert {"interval_low", "interval_high", "interval_level"} <= set(df.columns)
    assert (df["interval_level"] == 0.8).all()
    assert ((df["interval_low"] <= df["score"]) & (df["score"] <= df["interval_high"])).all()
    # default: 0.9 for a model with intervals.json; none: no columns
    capsys.readouterr()
    assert main(["predict", str(m), str(d / "t.csv"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["interval_level"] == 0.9
    assert (rows[0]["interval_high"] - rows[0]["interval_low"]) > (df["interval_high"] - df["interval_low"])[0]
    assert main(["predict", str(m), str(d / "t.csv"), "--interval", "none", "--json"]) == 0
    assert "interval_low" not in json.loads(capsys.readouterr().out)[0]


@pytest.mark.parametrize("level", ["1.5", "abc", "0"])
def test_cli_bad_level_exits_2_with_one_line(regression_model, capsys, level):
    d, m = regression_model
    assert main(["predict", str(m), str(d / "t.csv"), "--interval", level]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--interval" in err


def test_cli_level_the_calibration_cannot_support(regression_model, capsys):
    d, m = regression_model
    assert main(["predict", str(m), str(d / "t.csv"), "--interval", "0.999"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs at least 999 calibration scores" in err
    # a table model has no per-dataset calibrations: a usage error
    assert main(["predict", str(m), str(d / "t.csv"), "--calibration", "lab-a"]) == 2
    assert "--calibration is for session models" in capsys.readouterr().err


def test_model_without_intervals(tmp_path: Path, capsys):
    synthetic_table(120).to_csv(tmp_path / "t.csv", index=False)
    cfg = write_config(tmp_path, tmp_path / "t.csv", task="regression", evaluation={"calibration_fraction": 0},
                       training={"max_epochs": 3})
    assert main(["train", str(cfg), "--out", str(tmp_path / "m"), "-q"]) == 0
    assert not (tmp_path / "m" / INTERVALS_FILE).exists()
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "t.csv"), "--json"]) == 0  # no interval by default
    assert "interval_low" not in json.loads(capsys.readouterr().out)[0]
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "t.csv"), "--interval", "0.9"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no prediction intervals" in err


def test_service_returns_the_interval(regression_model):
    from deepqoe.serve import ModelService, RequestError

    d, m = regression_model
    svc = ModelService(m)
    row = {k: v for k, v in svc.example_row().items()}
    out = svc.predict_obj({"rows": [row]})
    iv = out["predictions"][0]["interval"]
    assert iv["level"] == 0.9 and iv["low"] <= out["predictions"][0]["score"] <= iv["high"]
    out8 = svc.predict_obj({"rows": [row], "interval": 0.8})
    assert out8["predictions"][0]["interval"]["level"] == 0.8
    assert "interval" not in svc.predict_obj({"rows": [row], "interval": None})["predictions"][0]
    assert svc.predict_obj([row], interval="0.8")["predictions"][0]["interval"]["level"] == 0.8  # ?interval=
    # the query takes the spellings of --interval (deepqoe.conformal.parse_level)
    assert svc.predict_obj([row], interval="80%")["predictions"][0]["interval"]["level"] == 0.8
    assert "interval" not in svc.predict_obj([row], interval="off")["predictions"][0]
    for bad in (1.5, "x", True):
        with pytest.raises(RequestError) as e:
            svc.predict_obj({"rows": [row], "interval": bad})
        assert e.value.status == 422
    assert svc.describe()["intervals"]["n_calibration"] == svc.predictor.intervals["n_calibration"]


def test_service_http(regression_model):
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from deepqoe.serve import create_app

    d, m = regression_model
    client = TestClient(create_app(m, warm_up=False))
    row = client.get("/model").json()["example_request"]
    r = client.post("/predict?interval=0.8", json=row)
    assert r.status_code == 200 and r.json()["predictions"][0]["interval"]["level"] == 0.8
    r = client.post("/predict?interval=2", json=row)
    assert r.status_code == 422 and r.json()["field"] == "interval"


# ---- session models: calibrated on the out-of-fold predictions -------------------------------------------
def test_session_model_intervals(tmp_path: Path, capsys):
    from test_train_sessions import write_data, write_sessions_config

    write_data(tmp_path)
    out = tmp_path / "model"
    cfg = write_sessions_config(tmp_path, training={"epochs": 20})
    assert main(["train", str(cfg), "--out", str(out), "-q"]) == 0
    cal = json.loads((out / INTERVALS_FILE).read_text())
    assert cal["n_calibration"] == 40 and cal["scale"] == "1-5" and cal["bounds"] == [1.0, 5.0]
    assert "out-of-fold" in cal["source"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["intervals"]["n_calibration"] == 40
    # the stored order statistics are those of the cross-validated residuals: the median |residual| is at
    # most sqrt(2) x their RMSE (Markov) and the largest at least the RMSE
    rmse = metrics["evaluation"]["scores"]["all"]["rmse"]
    assert half_width(cal, 0.5) <= math.sqrt(2) * rmse + 1e-6 and cal["residuals"][-1] >= rmse - 1e-6
    sessions = tmp_path / "lab-b.json"
    capsys.readouterr()
    assert main(["predict", str(out), str(sessions), "--scale", "0-100", "--interval", "0.8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for row in rows:
        iv = row["interval"]
        assert iv["level"] == 0.8 and 0 <= iv["low"] <= row["score"] <= iv["high"] <= 100
    assert main(["predict", str(out), str(sessions), "--out", str(tmp_path / "s.csv"), "-q"]) == 0
    df = pd.read_csv(tmp_path / "s.csv")
    assert (df["interval_level"] == 0.9).all() and (df["interval_low"] <= df["score"]).all()
    # --full: no cross-validation, so no calibration data and no intervals
    assert main(["train", str(cfg), "--out", str(tmp_path / "full"), "--full", "-q"]) == 0
    assert not (tmp_path / "full" / INTERVALS_FILE).exists()


def test_classifier_has_no_intervals(tmp_path: Path, capsys):
    synthetic_table(120).to_csv(tmp_path / "t.csv", index=False)
    cfg = write_config(tmp_path, tmp_path / "t.csv", training={"max_epochs": 3})
    assert main(["train", str(cfg), "--out", str(tmp_path / "m"), "-q"]) == 0
    assert not (tmp_path / "m" / INTERVALS_FILE).exists()
    # intervals are for scores: --interval on a classifier is an option for another kind of model (exit 2)
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "t.csv"), "--interval", "0.9"]) == 2
    assert "--interval is for regression and session models" in capsys.readouterr().err


# ---- per-dataset intervals of a session model trained on several datasets (--calibration) ----------------
def test_out_of_fold_gives_each_dataset_its_own_calibrations_predictions():
    """``out_of_fold_sessions`` predicts every test session twice: with the average calibration and with its
    own dataset's (what ``--calibration`` serves); a dataset the fold model never saw gets NaN there."""
    from types import SimpleNamespace

    from deepqoe.datasets.scored import SessionSet
    from deepqoe.evaluation.protocols import make_splits
    from deepqoe.sessions.session import Session
    from deepqoe.workflow import out_of_fold_sessions

    offset = {"lab-a": 0.5, "lab-b": -0.25}

    class Fake:  # scores = 3 + the session's quality / 100, shifted by the calibration's offset
        def __init__(self, names):
            self.calibrations_ = names

        def calibration_index(self, name):
            return self.calibrations_.index(name)

        def predict_scores_curves(self, sessions, curves=True, representation=False, calibration=None):
            base = np.array([3 + s.segments[0].quality / 100 for s in sessions])
            return base + offset.get(calibration, 0.0), None, None

        def predict_sessions(self, sessions, calibration=None):
            return self.predict_scores_curves(sessions, calibration=calibration)[0]

    def sset(name, n):
        ss = [Session.from_dict({"id": f"{name}{i}", "segments": [{"start": 0, "duration": 4, "quality": 10 * i}]})
              for i in range(n)]
        return SessionSet(name, ss, np.zeros(n), np.array([f"{name}{i}" for i in range(n)]))

    sets = [sset("lab-a", 6), sset("lab-b", 4)]
    splits = make_splits("kfold", 10, n_splits=2, seed=0)
    seen = []

    def fit(ss, cs):
        seen.append([x.name for x in ss])
        return Fake([x.name for x in ss] if len(seen) == 1 else ["lab-a"])  # the second fold model lacks lab-b

    oof = out_of_fold_sessions(fit, sets, [], splits)
    q = np.array([3 + 0.1 * i for i in range(6)] + [3 + 0.1 * i for i in range(4)])
    np.testing.assert_allclose(oof.common, q)
    test2 = np.zeros(10, bool)
    test2[splits[1].test] = True
    names = np.array(["lab-a"] * 6 + ["lab-b"] * 4)
    expect = q + np.array([offset[d] for d in names])
    expect[test2 & (names == "lab-b")] = np.nan
    np.testing.assert_allclose(oof.own, expect)
    assert len(seen) == 2


def test_session_model_per_dataset_intervals(tmp_path: Path, capsys):
    """A session model trained on two labs stores each lab's own intervals; ``--calibration`` (CLI, Python,
    service) serves that lab's scores and interval, and says so; unknown names are one clear error."""
    from test_train_sessions import write_data, write_sessions_config

    from deepqoe.predictor import Predictor
    from deepqoe.serve import ModelService, RequestError
    from deepqoe.sessions.readers import load_sessions

    write_data(tmp_path)
    out = tmp_path / "model"
    assert main(["train", str(write_sessions_config(tmp_path, training={"epochs": 20})), "--out", str(out), "-q"]) == 0
    cal = json.loads((out / INTERVALS_FILE).read_text())
    by = cal["by_calibration"]
    assert {d: c["n_calibration"] for d, c in by.items()} == {"one-per-file": 20, "lab-b.json": 20}
    assert all(c["bounds"] == [1.0, 5.0] and "calibration" in c["source"] for c in by.values())
    assert json.loads((out / "metrics.json").read_text())["intervals"]["by_calibration"] == {"one-per-file": 20,
                                                                                           "lab-b.json": 20}
    p = Predictor.load(out)
    assert p.calibrations == ["one-per-file", "lab-b.json"] and p.intervals_for("lab-b.json") == by["lab-b.json"]
    sessions, _ = load_sessions(tmp_path / "lab-b.json")
    rows, failures = p.predict_sessions(sessions, calibration="lab-b.json", interval=0.8, curve=False)
    assert not failures
    want = np.clip(p.model.predict_sessions(sessions, calibration="lab-b.json"), 1, 5)
    np.testing.assert_allclose([r["score"] for r in rows], want, atol=1e-3)
    assert not np.allclose(want, np.clip(p.model.predict_sessions(sessions), 1, 5), atol=1e-3)  # a real change
    ex, _ = p.predict_sessions(sessions[:4], calibration="lab-b.json", explain=True, curve=False)
    ex0, _ = p.predict_sessions(sessions[:4], explain=True, curve=False)
    assert [e["explanation"]["value"] for e in ex] == pytest.approx([r["score"] for r in ex], abs=1e-3)
    assert ex[0]["explanation"]["contributions"] != ex0[0]["explanation"]["contributions"]  # explained as scored
    q = half_width(by["lab-b.json"], 0.8)
    for r in rows:
        assert r["calibration"] == "lab-b.json"
        assert r["interval"]["low"] == pytest.approx(max(1.0, r["score"] - q), abs=2e-3)
        assert r["interval"]["high"] == pytest.approx(min(5.0, r["score"] + q), abs=2e-3)
    # the CLI: the same scores, a calibration column in tables, the default 0.9 interval of that lab
    capsys.readouterr()
    assert main(["predict", str(out), str(tmp_path / "lab-b.json"), "--calibration", "lab-b.json", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose([r["score"] for r in cli], [r["score"] for r in rows], atol=1e-5)
    assert all(r["interval"]["level"] == 0.9 and r["calibration"] == "lab-b.json" for r in cli)
    assert main(["predict", str(out), str(tmp_path / "lab-b.json"), "--calibration", "lab-b.json",
                 "--out", str(tmp_path / "s.csv"), "-q"]) == 0
    assert (pd.read_csv(tmp_path / "s.csv")["calibration"] == "lab-b.json").all()
    assert main(["predict", str(out), str(tmp_path / "lab-b.json"), "--calibration", "lab-c"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown calibration 'lab-c'" in err and "lab-b.json" in err
    # the service: in the body or the query, the same answer; a bad name is a 422 naming the field
    svc = ModelService(out)
    assert svc.describe()["calibrations"] == ["one-per-file", "lab-b.json"]
    assert svc.describe()["intervals"]["by_calibration"] == {"one-per-file": 20, "lab-b.json": 20}
    body = json.loads((tmp_path / "lab-b.json").read_text())
    got = svc.predict_obj({**body, "calibration": "lab-b.json", "interval": 0.8})["predictions"]
    np.testing.assert_allclose([[r["score"], r["interval"]["low"], r["interval"]["high"]] for r in got],
                               [[r["score"], r["interval"]["low"], r["interval"]["high"]] for r in rows], atol=1e-5)
    assert svc.predict_obj(body, calibration="lab-b.json")["predictions"][0]["calibration"] == "lab-b.json"
    for bad in ("lab-c", 3):
        with pytest.raises(RequestError) as e:
            svc.predict_obj({**body, "calibration": bad})
        assert e.value.status == 422 and e.value.field == "calibration"


def test_intervals_by_calibration_are_validated():
    cal = calibrate(np.arange(20.0), np.arange(20.0) + 0.1, source="t")
    ok = {**cal, "by_calibration": {"lab-a": calibrate(np.arange(10.0), np.zeros(10), source="a")}}
    assert validate(ok) is ok
    for bad, field in (({**cal, "by_calibration": {"lab-a": {**cal, "residuals": [2.0, 1.0]}}},
                        "by_calibration.lab-a.residuals"),
                       ({**cal, "by_calibration": ["lab-a"]}, "by_calibration")):
        with pytest.raises(DeepQoEError) as e:
            validate(bad, "intervals.json")
        assert e.value.field == field
    # a model with pooled intervals only: a clear error for a lab's own interval, none by default
    from deepqoe.conformal import for_calibration

    assert for_calibration(ok, None) is ok and for_calibration(ok, "lab-b.json") is None


def test_shipped_streaming_model_has_each_datasets_interval():
    """The shipped model stores an interval per session dataset; a dataset with only per-second ratings has
    a score calibration but no interval of its own (none by default, a clear error when asked)."""
    from deepqoe.predictor import Predictor

    p = Predictor.load("streaming")
    by = p.intervals["by_calibration"]
    assert set(by) == {"p1203-open", "waterloo-sqoe-iv", "live-nflx"}
    assert {d: by[d]["n_calibration"] for d in by} == {"p1203-open": 239, "waterloo-sqoe-iv": 1350, "live-nflx": 112}
    assert all(p.interval_default(d) == 0.9 for d in by)
    assert "lfovia-qoe" in p.calibrations and p.interval_default("lfovia-qoe") is None
    with pytest.raises(DeepQoEError, match="no prediction intervals of its own for 'lfovia-qoe'"):
        p.check_interval(0.9, "lfovia-qoe")
