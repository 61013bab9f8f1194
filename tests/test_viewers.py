"""Per-viewer QoE: the viewer input (role: viewer), its unknown bucket, k-shot adaptation, the CLI and the
shipped upec-qoe-lab model with and without a viewer id."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import real_data
from deepqoe.cli import main
from deepqoe.config import InputConfig, config_from_dict
from deepqoe.errors import DeepQoEError
from deepqoe.estimators import DeepQoEClassifier, DeepQoERegressor
from deepqoe.persistence import PRETRAINED_DIR, load_model, save_model
from deepqoe.viewers import adapt_viewer, known_viewers, viewer_labels

VIEWER = {"column": "viewer", "modality": "categorical", "role": "viewer", "embedding_dim": 4,
          "unknown_dropout": 0.3}
INPUTS = [{"column": "q", "modality": "continuous"}, VIEWER]
NET = dict(hidden_layers=(32,), dropout=0.0, max_epochs=150, patience=150, validation_fraction=0.0,
           learning_rate=0.01)


def viewer_table(n_viewers: int = 12, per: int = 30, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Ratings = quality + a strong per-viewer bias: viewers 0..n-1, half rate high, half rate low."""
    rng = np.random.default_rng(seed)
    v = np.repeat(np.arange(n_viewers), per)
    q = rng.uniform(0, 1, len(v))
    bias = np.where(v % 2 == 0, 1.5, -1.5)
    y = np.clip(np.round(3 + q + bias + rng.normal(0, 0.2, len(v))), 1, 5).astype(int)
    return pd.DataFrame({"q": q, "viewer": [f"v{i}" for i in v]}), y


@pytest.fixture(scope="module")
def fitted():
    X, y = viewer_table()
    train = X["viewer"].isin([f"v{i}" for i in range(10)]).to_numpy()
    est = DeepQoEClassifier(inputs=INPUTS, classes=[1, 2, 3, 4, 5], **NET).fit(X[train], y[train])
    return est, X, y, train


def test_config_validates_the_viewer_role():
    assert InputConfig(**VIEWER).role == "viewer"
    with pytest.raises(ValueError, match="categorical"):
        InputConfig(column="x", modality="continuous", role="viewer")
    ds = {"name": "t", "source": "x.csv", "task": "regression", "target": "y",
          "inputs": [dict(VIEWER), dict(VIEWER, column="other")]}
    with pytest.raises(DeepQoEError, match="at most one input"):
        config_from_dict({"dataset": ds})


def test_unknown_viewer_is_a_population_model(fitted):
    """Viewer known: the viewer's bias is learned. Viewer unknown (column absent, missing value or an unseen
    id): one population prediction, between the two kinds of viewer, the same for all three ways."""
    est, X, y, train = fitted
    seen = ~X["viewer"].isin(["v10", "v11"]).to_numpy() & train
    assert np.mean(est.predict(X[seen]) == y[seen]) > 0.8  # the bias (+-1.5) is learned per viewer
    rows = X[~train]
    p_absent = est.predict_proba(rows.drop(columns="viewer"))
    p_unseen = est.predict_proba(rows)
    p_missing = est.predict_proba(rows.assign(viewer=None))
    np.testing.assert_array_equal(p_absent, p_unseen)
    np.testing.assert_array_equal(p_absent, p_missing)
    expected = p_absent @ np.arange(1, 6)
    hi = est.predict_proba(X[X.viewer == "v0"]) @ np.arange(1, 6)
    lo = est.predict_proba(X[X.viewer == "v1"]) @ np.arange(1, 6)
    assert lo.mean() + 0.5 < expected.mean() < hi.mean() - 0.5  # the population sits between the two groups
    assert viewer_labels(est, rows.head(2)) == ["unknown", "unknown"]
    assert viewer_labels(est, X.head(1)) == ["v0"]


def test_without_unknown_dropout_the_unknown_bucket_learns_nothing():
    """The check can fail: with unknown_dropout 0 the unknown row is never trained (it stays at 0 = its
    initial value), so the population prediction is not learned from the viewers' data."""
    X, y = viewer_table(n_viewers=4, per=20)
    est = DeepQoEClassifier(inputs=[INPUTS[0], dict(VIEWER, unknown_dropout=0.0)], classes=[1, 2, 3, 4, 5],
                            **NET).fit(X, y)
    assert torch.count_nonzero(est.network_.branches[1].encode.weight[0]) == 0
    est2 = DeepQoEClassifier(inputs=INPUTS, classes=[1, 2, 3, 4, 5], **NET).fit(X, y)
    assert torch.count_nonzero(est2.network_.branches[1].encode.weight[0]) > 0


def test_adaptation_changes_only_the_new_viewer(fitted):
    est, X, y, train = fitted
    others = X[train].iloc[::7]
    before_other = est.predict_proba(others)
    before_unknown = est.predict_proba(others.drop(columns="viewer"))
    weights_before = {k: v.clone() for k, v in est.network_.state_dict().items()}
    v11 = X.viewer == "v11"
    Xv, yv = X[v11].reset_index(drop=True), y[v11.to_numpy()]
    new = adapt_viewer(est, Xv, yv, "v11", k=5)
    # the population and every other viewer: bit-identical
    np.testing.assert_array_equal(new.predict_proba(others), before_other)
    np.testing.assert_array_equal(new.predict_proba(others.drop(columns="viewer")), before_unknown)
    # the source estimator is untouched; the new one differs only by one more embedding row
    for k, v in est.network_.state_dict().items():
        assert torch.equal(v, weights_before[k])
    mine = new.network_.state_dict()
    for k, v in weights_before.items():
        if mine[k].shape == v.shape:
            assert torch.equal(mine[k], v), k
        else:
            assert torch.equal(mine[k][:-1], v) and mine[k].shape[0] == v.shape[0] + 1
    assert known_viewers(new) == known_viewers(est) + ["v11"]
    # v11 rates low (odd id): after 5 of its ratings the other 25 are predicted far better
    rest_before = np.mean(est.predict(Xv.iloc[5:]) == yv[5:])
    rest_after = np.mean(new.predict(Xv.iloc[5:]) == yv[5:])
    assert rest_after > rest_before + 0.3
    assert viewer_labels(new, Xv.head(1)) == ["v11"]


def test_adapted_model_saves_and_loads(fitted, tmp_path):
    est, X, y, _ = fitted
    v11 = X.viewer == "v11"
    new = adapt_viewer(est, X[v11], y[v11.to_numpy()], "v11", k=3)
    save_model(new, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["encoders"][1]["vocabulary"][-1] == "v11"
    back = load_model(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(X[v11]), new.predict_proba(X[v11]))


def test_adaptation_errors(fitted):
    est, X, y, _ = fitted
    v10 = X.viewer == "v10"
    Xv, yv = X[v10], y[v10.to_numpy()]
    with pytest.raises(DeepQoEError, match="k = 31 ratings asked for, but only 30"):
        adapt_viewer(est, Xv, yv, "v10", k=31)
    with pytest.raises(DeepQoEError, match="at least 1"):
        adapt_viewer(est, Xv, yv, "v10", k=0)
    with pytest.raises(DeepQoEError, match="already known"):
        adapt_viewer(est, Xv, yv, "v0", k=3)
    for bad in ("unknown", "", "  ", float("nan")):  # the unknown viewer's name, or one a table cannot hold
        with pytest.raises(DeepQoEError, match="non-empty name other than 'unknown'"):
            adapt_viewer(est, Xv, yv, bad, k=3)
    plain = DeepQoEClassifier(inputs=INPUTS[:1], classes=[1, 2, 3, 4, 5], **dict(NET, max_epochs=2)).fit(Xv, yv)
    with pytest.raises(DeepQoEError, match="no viewer input"):
        adapt_viewer(plain, Xv, yv, "v10", k=3)


def test_regressor_takes_a_viewer_too():
    X, y = viewer_table(n_viewers=6, per=20)
    est = DeepQoERegressor(inputs=INPUTS, **NET).fit(X, y.astype(float))
    new = adapt_viewer(est, X.head(20).assign(viewer="new"), y[:20].astype(float), "new", k=5)
    np.testing.assert_array_equal(new.predict(X.tail(20)), est.predict(X.tail(20)))


# ---- command line -------------------------------------------------------------------------------------------
@pytest.fixture
def model_dir(tmp_path, fitted):
    est, X, y, train = fitted
    ds = {"name": "toy", "source": "x.csv", "task": "classification", "target": "rating",
          "classes": [1, 2, 3, 4, 5], "inputs": INPUTS}
    save_model(est, tmp_path / "model", dataset_config=config_from_dict({"dataset": ds}).dataset.model_dump())
    return tmp_path / "model"


def test_cli_predict_and_adapt_viewer(tmp_path, model_dir, fitted, capsys):
    est, X, y, train = fitted
    rows = X[X.viewer.isin(["v0", "v10"])].iloc[[0, 1, 40, 41]]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert main(["predict", str(model_dir), str(tmp_path / "rows.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    assert "population prediction" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "p.csv")["viewer"].tolist() == ["v0", "v0", "unknown", "unknown"]
    mine = X[X.viewer == "v10"].assign(rating=y[(X.viewer == "v10").to_numpy()])
    mine.to_csv(tmp_path / "mine.csv", index=False)
    out = tmp_path / "adapted"
    assert main(["adapt-viewer", str(model_dir), str(tmp_path / "mine.csv"), "--k", "5", "--out", str(out),
                 "--json"]) == 0
    io = capsys.readouterr()
    assert json.loads(io.out)["viewer"] == "v10" and json.loads(io.out)["k"] == 5 and "adapted" in io.err
    assert main(["predict", str(out), str(tmp_path / "rows.csv"), "--out", str(tmp_path / "p2.csv")]) == 0
    p1, p2 = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(tmp_path / "p2.csv")
    assert p2["viewer"].tolist() == ["v0", "v0", "v10", "v10"]
    cols = [c for c in p1.columns if c.startswith("prob_")]
    np.testing.assert_allclose(p2.loc[:1, cols], p1.loc[:1, cols])  # the other viewer is unchanged
    capsys.readouterr()
    # k larger than the ratings: one line, exit 1
    assert main(["adapt-viewer", str(model_dir), str(tmp_path / "mine.csv"), "--k", "99", "--out",
                 str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert "k = 99" in err and "only 30" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_service_takes_an_optional_viewer(model_dir):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from deepqoe.serve import create_app

    with TestClient(create_app(str(model_dir), warm_up=False), raise_server_exceptions=False) as c:
        r = c.post("/predict", json={"rows": [{"q": 0.5, "viewer": "v0"}, {"q": 0.5}, {"q": 0.5, "viewer": None},
                                              {"q": 0.5, "viewer": "never-seen"}]})
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert [p["viewer"] for p in preds] == ["v0", "unknown", "unknown", "unknown"]
        assert preds[1]["probabilities"] == preds[2]["probabilities"] == preds[3]["probabilities"]
        assert c.post("/predict", json={"rows": [{"viewer": "v0"}]}).status_code == 422  # q is required


# ---- real data: upec-qoe-lab -----------------------------------------------------------------------------------
def test_upec_viewer_model_on_real_data(tmp_path):
    real_data("upec-qoe-lab", "QoEcontrolledLab.csv")
    from deepqoe.config import load_config
    from deepqoe.datasets import load_dataset
    from deepqoe.datasets.registry import CONFIG_DIR
    from deepqoe.estimators import estimator_from_config

    cfg = load_config(CONFIG_DIR / "upec-qoe-lab-viewers.yaml")
    data = load_dataset(cfg.dataset)
    ids = data.X["id_user"].astype(str).to_numpy()
    held = sorted(set(ids), key=lambda v: -np.sum(ids == v))[0]  # the viewer with the most ratings
    train = ids != held
    est = estimator_from_config(cfg, data.inputs, max_epochs=20).fit(data.X[train], data.y[train])
    assert len(known_viewers(est)) == len(set(ids)) - 1
    Xv, yv = data.X[~train].reset_index(drop=True), data.y[~train]
    assert set(viewer_labels(est, Xv)) == {"unknown"}
    new = adapt_viewer(est, Xv, yv, held, k=10)
    assert viewer_labels(new, Xv.head(1)) == [held]
    np.testing.assert_array_equal(new.predict_proba(data.X[train].head(50)), est.predict_proba(data.X[train].head(50)))
    with pytest.raises(DeepQoEError, match="k = 100"):
        adapt_viewer(est, Xv, yv, held, k=100)


def test_shipped_upec_model_takes_an_optional_viewer(tmp_path, capsys):
    if not (PRETRAINED_DIR / "upec-qoe-lab" / "model.json").is_file():
        pytest.skip("shipped model upec-qoe-lab not in this build")
    from deepqoe.demo import VIEWER_ROWS

    est = load_model("upec-qoe-lab")
    assert known_viewers(est), "the shipped upec-qoe-lab model has a viewer input"
    rows = VIEWER_ROWS.drop(columns=["id"]).head(3)
    seen = known_viewers(est)[0]
    variants = {"none": rows, "seen": rows.assign(id_user=seen), "unseen": rows.assign(id_user="no-such-viewer")}
    got = {}
    for name, df in variants.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False, sep=";", decimal=",")
        out = tmp_path / f"{name}.out.csv"
        assert main(["predict", "upec-qoe-lab", str(tmp_path / f"{name}.csv"), "--out", str(out)]) == 0
        got[name] = pd.read_csv(out)
    err = capsys.readouterr().err
    assert "population prediction" in err
    assert got["none"]["viewer"].tolist() == ["unknown"] * 3
    assert got["seen"]["viewer"].astype(str).tolist() == [seen] * 3
    assert got["unseen"]["viewer"].tolist() == ["unknown"] * 3
    cols = [c for c in got["none"].columns if c.startswith("prob_")]
    np.testing.assert_allclose(got["none"][cols], got["unseen"][cols])


def test_adapted_model_keeps_intervals_and_heads(tmp_path):
    """``adapt-viewer`` copies the source's intervals.json and distribution.json: the population's predictions
    are unchanged, so their intervals and rating heads still serve (``--interval`` works on the new model)."""
    X, y = viewer_table(n_viewers=6, per=20)
    est = DeepQoERegressor(inputs=INPUTS, **NET).fit(X, y.astype(float))
    ds = {"name": "toy", "source": "x.csv", "task": "regression", "target": "rating", "inputs": INPUTS}
    from deepqoe.conformal import calibrate

    cal = calibrate(y[:40].astype(float), est.predict(X.head(40)), source="test rows")
    save_model(est, tmp_path / "model", dataset_config=config_from_dict({"dataset": ds}).dataset.model_dump(),
               files={"intervals.json": cal})
    mine = X.head(20).assign(viewer="new", rating=y[:20])
    mine.to_csv(tmp_path / "mine.csv", index=False)
    assert main(["adapt-viewer", str(tmp_path / "model"), str(tmp_path / "mine.csv"), "--k", "5", "--out",
                 str(tmp_path / "adapted"), "-q"]) == 0
    assert json.loads((tmp_path / "adapted" / "intervals.json").read_text()) == cal
    assert main(["predict", str(tmp_path / "adapted"), str(tmp_path / "mine.csv"), "--interval", "0.8",
                 "--out", str(tmp_path / "p.csv"), "-q"]) == 0
    t = pd.read_csv(tmp_path / "p.csv")
    assert (t["interval_low"] < t["score"]).all() and (t["viewer"] == "new").all()
