"""What `deepqoe train` and `deepqoe evaluate` report is what they measured (audit 16):

1. with a `group`, train's test part is group-disjoint (early stopping's rows too), metrics.json says how the
   test rows were chosen, a group that cannot be honoured is a note; evaluate's random-row protocols say they
   ignore the group;
2. the metrics are those of the served predictions (clipped as `deepqoe predict` clips them);
3. a model that predicts one score for every row gets a note, and a correlation of constant predictions is
   null (train) / undefined (evaluate, e.g. the `mean` baseline), not 0;
4. a config using its group or id column as an input, and a class of a single row, get a note.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deepqoe.cli import main
from deepqoe.errors import DeepQoENote

INPUTS = [{"column": "bitrate", "modality": "continuous", "log": True}]


def _table(n: int = 60, n_groups: int = 6, seed: int = 0, halves: bool = False) -> pd.DataFrame:
    """MOS rising with log bitrate; ``g``: ``n_groups`` groups by row number, or (``halves``) the low and the
    high third of the bitrates (none in between), so that a model trained on one must extrapolate to the other."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, n)
    if halves:
        t = np.where(np.arange(n) % 2 == 0, t / 3, 1 - t / 3)
    br = np.exp(np.log(100) + t * (np.log(5000) - np.log(100)))
    mos = 1 + 4 * t + rng.normal(0, 0.1, n)
    g = np.where(t < 0.5, "low", "high") if halves else np.array([f"c{i % n_groups}" for i in range(n)])
    rating = np.clip(np.round(mos), 1, 5).astype(int)
    return pd.DataFrame({"row_id": [f"r{i:03d}" for i in range(n)], "g": g, "bitrate": br.round(1),
                         "mos": mos.round(3), "rating": rating})


def _config(tmp_path, df: pd.DataFrame, *, task: str = "regression", epochs: int = 3, lr: float = 1e-3,
            evaluation: dict | None = None, **dataset) -> Path:
    df.to_csv(tmp_path / "data.csv", index=False)
    ds = {"name": "tiny", "source": "data.csv", "task": task, "target": "mos" if task == "regression" else "rating",
          "inputs": INPUTS, **dataset}
    if task == "classification":
        ds["classes"] = sorted(set(df["rating"].tolist()))
    cfg = {"dataset": ds, "model": {"hidden_layers": [16], "dropout": 0.0},
           "training": {"max_epochs": epochs, "patience": 50, "learning_rate": lr, "batch_size": 16},
           "evaluation": {"test_size": 0.2, "n_splits": 2, "baselines": [], **(evaluation or {})}}
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _run(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _notes(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DeepQoENote)]


@pytest.fixture
def fit_spy(monkeypatch):
    """Records each DeepQoE fit's training rows (X's index: the dataset's row numbers) and groups."""
    from deepqoe.estimators import _DeepQoENetworkEstimator

    calls: list[dict] = []
    original = _DeepQoENetworkEstimator.fit

    def fit(self, X, y, groups=None):
        calls.append({"rows": np.asarray(X.index), "groups": None if groups is None else np.asarray(groups)})
        return original(self, X, y, groups=groups)

    monkeypatch.setattr(_DeepQoENetworkEstimator, "fit", fit)
    return calls


# ---- 1. train's test part keeps the groups apart, and says how it was chosen ------------------------------------
def test_train_holds_out_whole_groups_and_early_stopping_keeps_them_apart(tmp_path, capsys, fit_spy):
    df = _table(80, n_groups=8)
    cfg = _config(tmp_path, df, group="g", id="row_id", evaluation={"calibration_fraction": 0})
    code, err = _run(capsys, "train", cfg, "--out", tmp_path / "m")
    assert code == 0, err
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    (call,) = fit_spy
    train = call["rows"]
    test = np.setdiff1d(np.arange(len(df)), train)  # calibration_fraction 0: every other row is tested on
    assert len(test) == metrics["n_test"] > 0 and len(train) == metrics["n_train"]
    assert not set(df["g"].iloc[train]) & set(df["g"].iloc[test])  # no test group was trained on
    # early stopping's validation split was given the groups (group-disjoint: 6+ groups among the training rows)
    assert call["groups"] is not None and list(call["groups"]) == df["g"].iloc[train].tolist()
    assert metrics["holdout"] == "group-disjoint" and metrics["group"] == "g"
    assert "not group-disjoint" not in err
    assert "test (groups by 'g', none trained on) rmse = " in err, err   # the summary says how it tested


def test_train_without_enough_groups_falls_back_to_random_rows_with_a_note(tmp_path):
    from deepqoe.config import load_config
    from deepqoe.workflow import train_config

    df = _table(40).assign(g="only")
    cfg = load_config(_config(tmp_path, df, group="g"))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        metrics = train_config(cfg, tmp_path / "m", progress=False)
    assert metrics["holdout"].startswith("random rows, not group-disjoint") and metrics["group"] == "g"
    notes = [n for n in _notes(rec) if "test row(s) are random rows" in n]
    assert len(notes) == 1 and "dataset.group" in notes[0] and "1 group" in notes[0]
    assert "\n" not in notes[0]


def test_train_without_a_group_says_random_rows(tmp_path):
    from deepqoe.config import load_config
    from deepqoe.workflow import train_config

    cfg = load_config(_config(tmp_path, _table(40)))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        metrics = train_config(cfg, tmp_path / "m", progress=False)
    assert metrics["holdout"] == "random rows" and metrics["group"] is None and metrics["n_test"] == 8
    assert not [n for n in _notes(rec) if "group" in n]


def test_evaluate_says_a_random_rows_protocol_ignores_the_group(tmp_path):
    from deepqoe.config import load_config
    from deepqoe.workflow import evaluate_config

    cfg = load_config(_config(tmp_path, _table(40, n_groups=4), group="g"))
    for protocol, noted, rows in (("repeated", True, "random rows"), ("group-kfold", False, "group-disjoint")):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            res = evaluate_config(cfg, protocol=protocol, n_splits=2, progress=False, max_epochs=1)
        notes = [n for n in _notes(rec) if "ignores the group" in n]
        assert len(notes) == int(noted), notes
        if noted:
            assert "'repeated'" in notes[0] and "--protocol group-kfold" in notes[0] and "'g'" in notes[0]
        assert res["test_rows"] == rows and res["group"] == "g"


# ---- 2. the metrics are those of the served (clipped) predictions --------------------------------------------
def test_train_metrics_are_the_served_predictions(tmp_path, fit_spy):
    """Trained on the low half of the bitrates, tested on the high half: the network extrapolates past its
    training targets, deepqoe predict clips to them, and metrics.json must score the clipped scores."""
    from deepqoe.config import load_config
    from deepqoe.evaluation.metrics import regression_metrics
    from deepqoe.predictor import load_predictor
    from deepqoe.workflow import train_config

    from deepqoe.evaluation.protocols import make_splits

    df = _table(60, halves=True)
    g = df["g"].to_numpy()
    # the seed whose group-disjoint holdout (group-shuffle) tests on the high third: a model trained on the low
    # one extrapolates upwards, past its training targets
    seed = next(s for s in range(20) if set(g[make_splits("group-shuffle", 60, groups=g, n_splits=1, test_size=0.2,
                                                          seed=s)[0].test]) == {"high"})
    cfg = load_config(_config(tmp_path, df, epochs=60, lr=0.01, group="g",
                              evaluation={"calibration_fraction": 0, "seed": seed}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepQoENote)
        metrics = train_config(cfg, tmp_path / "m", progress=False)
        test = np.setdiff1d(np.arange(len(df)), fit_spy[0]["rows"])
        assert set(g[test]) == {"high"}
        p = load_predictor(tmp_path / "m")
        served = np.array([r["score"] for r in p.predict_rows(df.iloc[test][["bitrate"]], interval=None)])
    raw = p.model.predict(df.iloc[test][["bitrate"]])
    assert not np.allclose(raw, served, atol=1e-3)  # the clip changes these scores: the check means something
    want = regression_metrics(df["mos"].iloc[test], served, undefined=None)
    for k in ("rmse", "plcc", "srocc"):
        assert metrics["test"][k] == (None if want[k] is None else pytest.approx(want[k], abs=1e-4)), k


def test_evaluate_scores_the_served_predictions(tmp_path):
    """Leave-one-half-out: each split's DeepQoE predictions stay inside its training targets' range."""
    from deepqoe.config import load_config
    from deepqoe.evaluation.metrics import regression_metrics
    from deepqoe.evaluation.protocols import make_splits
    from deepqoe.workflow import evaluate_config

    df = _table(60, halves=True)
    cfg = load_config(_config(tmp_path, df, epochs=60, lr=0.01, group="g"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepQoENote)
        res = evaluate_config(cfg, protocol="group", progress=False, baselines=[])
    y, pred = (np.asarray(v, float) for v in res["_pooled"]["deepqoe"])
    at = 0
    for split, scores in zip(make_splits("group", len(df), groups=df["g"].to_numpy()),
                             res["methods"]["deepqoe"]["per_split"]):
        part = pred[at:at + len(split.test)]
        trained = df["mos"].iloc[split.train]
        assert part.min() >= trained.min() - 1e-9 and part.max() <= trained.max() + 1e-9, split.name
        assert scores["rmse"] == pytest.approx(regression_metrics(y[at:at + len(split.test)], part)["rmse"])
        at += len(split.test)


# ---- 3. a collapsed model, and correlations of a constant ----------------------------------------------------
def test_a_model_that_predicts_one_score_is_saved_with_a_note_and_null_correlations(tmp_path, capsys):
    cfg = _config(tmp_path, _table(60), lr=9.0, epochs=5)
    code, err = _run(capsys, "train", cfg, "--out", tmp_path / "m")
    assert code == 0, err  # saved (the files are valid), but said
    notes = [ln for ln in err.splitlines() if "did not learn" in ln]
    assert len(notes) == 1 and notes[0].startswith("deepqoe: note: "), err
    assert "training.learning_rate" in notes[0] and "lower" in notes[0] and "config.yaml" in notes[0]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    for part in ("train", "test"):
        assert metrics[part]["plcc"] is None and metrics[part]["srocc"] is None and metrics[part]["krocc"] is None
        assert np.isfinite(metrics[part]["rmse"])


def test_a_classifier_that_predicts_one_class_for_every_row_gets_the_note(tmp_path, capsys):
    cfg = _config(tmp_path, _table(60), task="classification", lr=9.0, epochs=5)
    code, err = _run(capsys, "train", cfg, "--out", tmp_path / "m")
    assert code == 0, err
    notes = [ln for ln in err.splitlines() if "did not learn" in ln]
    assert len(notes) == 1 and "same probabilities" in notes[0] and "np." not in notes[0], err


def test_a_model_that_learned_gets_no_such_note(tmp_path, capsys):
    code, err = _run(capsys, "train", _config(tmp_path, _table(60), epochs=20), "--out", tmp_path / "m")
    assert code == 0 and "did not learn" not in err, err
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert isinstance(metrics["test"]["plcc"], float)


def test_correlations_of_a_constant_follow_one_rule():
    from deepqoe.evaluation.metrics import correlation_undefined, regression_metrics

    y = np.arange(10.0)
    assert regression_metrics(y, np.full(10, 3.0), undefined=None)["plcc"] is None
    assert regression_metrics(np.full(10, 3.0), y, undefined=None)["srocc"] is None
    assert regression_metrics(y, np.full(10, 3.0))["plcc"] == 0.0  # the experiments' averaging convention
    assert correlation_undefined(y, np.full(10, 3.0)) and not correlation_undefined(y, y)


def test_evaluate_shows_the_mean_baselines_correlations_as_undefined(tmp_path):
    from deepqoe.config import load_config
    from deepqoe.workflow import evaluate_config, format_summary

    cfg = load_config(_config(tmp_path, _table(40)))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = evaluate_config(cfg, protocol="repeated", n_splits=2, baselines=["mean"], progress=False, max_epochs=1)
    mean = res["methods"]["mean"]
    assert mean["metrics"]["plcc"]["mean"] is None and mean["metrics"]["plcc"]["n_undefined"] == 2
    assert mean["metrics"]["plcc"]["values"] == [None, None] and mean["per_split"][0]["srocc"] is None
    assert np.isfinite(mean["metrics"]["rmse"]["mean"])
    row = next(ln for ln in format_summary(res).splitlines() if ln.startswith("mean"))
    assert "undefined" in row and "0.0000 ± 0.0000" not in row
    notes = [n for n in _notes(rec) if "undefined" in n]
    assert len(notes) == 1 and "mean in 2 of 2" in notes[0]


# ---- 4. leakage-prone configs -------------------------------------------------------------------------------
@pytest.mark.parametrize("column,expect", [("g", "group column 'g'"), ("row_id", "id column 'row_id'")])
def test_an_input_reading_the_group_or_id_column_is_noted(tmp_path, column, expect):
    from deepqoe.config import load_config

    inputs = INPUTS + [{"column": column, "modality": "categorical"}]
    p = _config(tmp_path, _table(20), group="g", id="row_id", inputs=inputs)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        load_config(p)
    notes = _notes(rec)
    assert len(notes) == 1 and expect in notes[0] and "dataset.inputs.1" in notes[0] and "config.yaml" in notes[0]
    pd.DataFrame({"row_id": _table(20)["row_id"], "f1": 0.0, "f2": 1.0}).to_csv(tmp_path / "feats.csv", index=False)
    joined = INPUTS + [{"column": "row_id", "modality": "vector", "file": "feats.csv", "file_id_column": "row_id"}]
    with warnings.catch_warnings(record=True) as rec:  # a vector file joined on the id reads it as the key only
        warnings.simplefilter("always")
        load_config(_config(tmp_path, _table(20), group="g", id="row_id", inputs=joined))
    assert not _notes(rec)


def test_a_class_of_a_single_row_is_noted(tmp_path, capsys):
    df = _table(40)
    df.loc[0, "rating"] = 9  # one row of class 9
    code, err = _run(capsys, "train", _config(tmp_path, df, task="classification", epochs=2), "--out", tmp_path / "m")
    assert code == 0, err
    notes = [ln for ln in err.splitlines() if "single row" in ln]
    assert len(notes) == 1 and "class 9 " in notes[0] and "column 'rating'" in notes[0], err
