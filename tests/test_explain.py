"""Explanations: contributions add up to prediction - baseline, are zero at the baseline, and point the
right way; session explanations are grouped into stalls, quality, switches, startup, context."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import INPUTS, synthetic_table
from deepqoe.estimators import DeepQoERegressor
from deepqoe.explain import explain, explain_records, fit_baseline
from deepqoe.persistence import PRETRAINED_DIR, load_model


def _need(name):
    if not (PRETRAINED_DIR / name / "model.json").is_file():
        pytest.skip(f"shipped model {name} not in this build")


@pytest.fixture(scope="module")
def regressor():
    df = synthetic_table(300)
    X = df[[i["column"] for i in INPUTS]]
    est = DeepQoERegressor(inputs=INPUTS, hidden_layers=(32, 16), dropout=0.0, max_epochs=40, patience=40,
                           random_state=0).fit(X, df["mos"])
    est.explain_baseline_ = fit_baseline(est, X)
    return est, X


def test_shapley_adds_up_and_occlusion_runs(regressor):
    est, X = regressor
    e = explain(est, X.head(20))
    groups = [c for c in e.columns if c not in ("baseline", "prediction")]
    assert groups == ["genre", "resolution", "bitrate", "age", "sex"]
    np.testing.assert_allclose(e[groups].sum(axis=1) + e["baseline"], e["prediction"], atol=1e-9)
    np.testing.assert_allclose(e["prediction"], est.predict(X.head(20)), atol=1e-5)
    o = explain(est, X.head(5), method="occlusion")
    assert o.attrs["method"] == "occlusion" and list(o.columns) == list(e.columns)


def test_bitrate_drives_the_synthetic_score(regressor):
    est, X = regressor
    e = explain(est, X.head(60))
    mean_abs = e[["genre", "resolution", "bitrate", "age", "sex"]].abs().mean()
    assert mean_abs.idxmax() == "bitrate"  # the synthetic score is mostly log(bitrate)
    high = X.head(60)["bitrate"].to_numpy() > X["bitrate"].median()
    assert e["bitrate"][high].mean() > 0 > e["bitrate"][~high].mean()


def test_shipped_classifier_expected_rating(tmp_path):
    _need("upec-qoe-lab")
    from deepqoe.demo import VIEWER_ROWS

    est = load_model("upec-qoe-lab")
    X = VIEWER_ROWS.drop(columns=["id"])
    e = explain(est, X)
    assert e.attrs["output"] == "expected rating"
    expected = est.predict_proba(X) @ np.arange(1, 6)
    np.testing.assert_allclose(e["prediction"], expected, atol=1e-6)
    groups = [c for c in e.columns if c not in ("baseline", "prediction")]
    np.testing.assert_allclose(e[groups].sum(axis=1) + e["baseline"], e["prediction"], atol=1e-9)
    assert (e["prediction"].iloc[0] > e["prediction"].iloc[-1])  # 1080p 3.3 Mbps beats 144p 80 kbps
    rec = explain_records(est, X.head(1))[0]
    assert set(rec["contributions"]) == set(groups)


def test_session_groups_and_stalls_pull_down(frame_session_model_dir):
    from deepqoe.sessions.frame import example_sessions, parse_sessions, session_frame

    est = load_model(frame_session_model_dir)
    X = session_frame(parse_sessions(example_sessions()))
    e = explain(est, X)
    groups = [c for c in e.columns if c not in ("baseline", "prediction")]
    assert groups == ["stalls", "startup", "quality", "switches", "context"]
    np.testing.assert_allclose(e[groups].sum(axis=1) + e["baseline"], e["prediction"], atol=1e-9)
    assert e.loc["two-stalls", "stalls"] < e.loc["smooth-hd", "stalls"]
    assert e.loc["low-quality", "quality"] < e.loc["smooth-hd", "quality"]
