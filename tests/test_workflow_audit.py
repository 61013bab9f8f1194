"""Audit of the table-model workflow (``deepqoe evaluate`` / ``train``): option values refused before any
work (exit 2, naming the option), outputs checked before the work, one-line errors for data that cannot
be evaluated, sparse one-hot baselines, what the intervals' calibration rows really were, and the config
file named when training diverges."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import synthetic_table, write_config
from deepqoe.cli import main
from deepqoe.errors import DeepQoEError


@pytest.fixture
def csv(tmp_path):
    p = tmp_path / "data.csv"
    synthetic_table(120).to_csv(p, index=False)
    return p


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the dataset is read (the work starts) or a model is trained."""
    import deepqoe.datasets
    import deepqoe.estimators

    def refuse(*a, **k):
        raise AssertionError("the work started before the options were checked")

    monkeypatch.setattr(deepqoe.datasets, "load_dataset", refuse)
    monkeypatch.setattr(deepqoe.estimators._DeepQoENetworkEstimator, "fit", refuse)


def _run(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


# ---- 2. evaluate's option values: exit 2 before any work, naming the option ---------------------------------
@pytest.mark.parametrize("option,value", [
    ("--test-size", "0"), ("--test-size", "1"), ("--test-size", "1.5"), ("--test-size", "-0.5"),
    ("--test-size", "nan"), ("--n-splits", "0"), ("--n-splits", "1"), ("--n-splits", "-2"),
    ("--epochs", "0"), ("--epochs", "-3"), ("--baselines", "foo"), ("--baselines", "majority,,svm"),
    ("--baselines", "svm,svm")])
def test_evaluate_bad_option_values_exit_2_before_any_work(tmp_path, csv, capsys, no_work, option, value):
    cfg = write_config(tmp_path, csv)
    code, err = _run(capsys, "evaluate", cfg, option, value, "-q")
    assert code == 2 and err.count("\n") == 1 and option in err and "Traceback" not in err


@pytest.mark.parametrize("task,baseline", [("regression", "majority"), ("regression", "naive_bayes"),
                                           ("classification", "mean")])
def test_evaluate_baseline_of_the_other_task_exits_2(tmp_path, csv, capsys, no_work, task, baseline):
    """Was: exit 1 after DeepQoE trained on split 0 (a classifier on a regression), or silently dropped
    ('mean' on a classification)."""
    cfg = write_config(tmp_path, csv, task=task)
    code, err = _run(capsys, "evaluate", cfg, "--baselines", f"random_forest,{baseline}", "-q")
    assert code == 2 and "--baselines" in err and baseline in err and task in err


def test_evaluate_option_values_are_not_replaced_by_the_config(tmp_path, csv, monkeypatch):
    """``x or default`` replaced 0 by the config's value; the library now refuses it too, naming it."""
    from deepqoe.config import load_config
    from deepqoe.workflow import evaluate_config

    cfg = load_config(write_config(tmp_path, csv))
    for kw in ({"test_size": 0.0}, {"n_splits": 0}, {"max_epochs": 0}):
        with pytest.raises(DeepQoEError) as e:
            evaluate_config(cfg, progress=False, **kw)
        assert e.value.field == next(iter(kw))


# ---- 3. splits and classes that cannot be evaluated: one line --------------------------------------------
def test_group_kfold_with_more_folds_than_groups_is_an_error(tmp_path, csv, capsys):
    cfg = write_config(tmp_path, csv)  # group: title, 8 values
    code, err = _run(capsys, "evaluate", cfg, "--protocol", "group-kfold", "--n-splits", "10", "-q")
    assert code == 1 and err.count("\n") == 1 and "10 folds" in err and "has 8" in err and "--n-splits" in err


def test_one_class_is_a_one_line_error_for_evaluate_and_train(tmp_path, capsys):
    p = tmp_path / "one.csv"
    synthetic_table(60).assign(rating=3).to_csv(p, index=False)
    cfg = write_config(tmp_path, p, evaluation={"baselines": ["svm"]}, training={"max_epochs": 1})
    code, err = _run(capsys, "evaluate", cfg, "-q")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err and "2 classes" in err
    assert "config.yaml" in err
    code, err = _run(capsys, "train", cfg, "--out", tmp_path / "m", "-q")
    assert code == 1 and "2 classes" in err and not (tmp_path / "m").exists()


def test_a_baseline_that_scikit_learn_refuses_is_one_line(tmp_path, capsys):
    """Two groups, each one class: leave-one-group-out trains the SVM on one class (sklearn's ValueError)."""
    df = synthetic_table(60)
    df["title"] = np.where(df.index < 30, "A", "B")
    df["rating"] = np.where(df.index < 30, 2, 4)
    p = tmp_path / "two.csv"
    df.to_csv(p, index=False)
    cfg = write_config(tmp_path, p, evaluation={"baselines": ["svm"]}, training={"max_epochs": 1})
    code, err = _run(capsys, "evaluate", cfg, "--protocol", "group", "-q")
    assert code == 1 and err.count("\n") == 1 and "baseline 'svm'" in err and "Traceback" not in err


# ---- 4. shallow baselines: a sparse one-hot for high-cardinality columns --------------------------------------
def test_baselines_one_hot_many_ids_sparsely():
    from scipy import sparse

    from deepqoe.shallow import baseline_pipeline

    n = 3000
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"uid": np.arange(n), "br": rng.normal(size=n)})
    inputs = [{"column": "uid", "modality": "categorical"}, {"column": "br", "modality": "continuous"}]
    for name in ("mean", "linear", "lightgbm"):
        pipe = baseline_pipeline(name, "regression", inputs).fit(X, rng.normal(size=n))
        feats = pipe[:-1].transform(X)
        assert sparse.issparse(feats) and feats.shape == (n, n + 1), name
        assert np.isfinite(pipe.predict(X.iloc[:5])).all()
    nb = baseline_pipeline("naive_bayes", "classification", inputs).fit(X, rng.integers(0, 2, n))
    assert nb[:-1].transform(X).shape[1] <= 65  # dense, so capped per column
    # an ordinary (narrow) table keeps its dense features, as before
    small = baseline_pipeline("random_forest", "regression", inputs[1:] + [{"column": "g", "modality": "categorical"}])
    small.fit(X.assign(g=rng.choice(list("abc"), n)), rng.normal(size=n))
    assert isinstance(small[:-1].transform(X.assign(g="a")), np.ndarray)


# ---- 5. outputs checked before the work ----------------------------------------------------------------------
@pytest.mark.parametrize("option", ["--out", "--json"])
def test_evaluate_output_under_a_file_fails_before_plots_and_work(tmp_path, csv, capsys, no_work, option):
    cfg = write_config(tmp_path, csv)
    plots = tmp_path / "plots"
    code, err = _run(capsys, "evaluate", cfg, "--plots", plots, option, csv / "res.json", "-q")
    assert code == 1 and err.count("\n") == 1 and option in err and not plots.exists()


def test_evaluate_plots_or_out_of_the_wrong_kind_fail_before_the_work(tmp_path, csv, capsys, no_work):
    cfg = write_config(tmp_path, csv)
    code, err = _run(capsys, "evaluate", cfg, "--plots", csv, "-q")
    assert code == 1 and "--plots" in err and "not a folder" in err
    code, err = _run(capsys, "evaluate", cfg, "--plots", csv / "p", "-q")
    assert code == 1 and "--plots" in err
    code, err = _run(capsys, "evaluate", cfg, "--out", tmp_path, "-q")
    assert code == 1 and "--out" in err and "is a folder" in err


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_train_out_under_a_file_fails_before_training(tmp_path, csv, capsys, no_work, command):
    cfg = write_config(tmp_path, csv)
    argv = [command] + (["upec-qoe-lab"] if command == "finetune" else []) + [cfg, "--out", csv / "m", "-q"]
    code, err = _run(capsys, *argv)
    assert code == 1 and err.count("\n") == 1 and "--out" in err and "is a file" in err


# ---- 6. intervals.json says how the calibration rows were chosen -----------------------------------------------
def test_validation_split_says_when_it_is_not_group_disjoint():
    from deepqoe.evaluation.protocols import validation_split, validation_split_how

    one = np.zeros(50, int)
    fit, val, how = validation_split_how(50, 0.2, 0, one)
    assert len(val) == 10 and "not group-disjoint" in how and "1 group" in how
    assert all(np.array_equal(a, b) for a, b in zip(validation_split(50, 0.2, 0, one), (fit, val)))
    many = np.arange(50) % 10
    fit, val, how = validation_split_how(50, 0.2, 0, many)
    assert how == "group-disjoint" and not set(many[fit]) & set(many[val])
    assert validation_split_how(50, 0.2, 0)[2] == "random rows"


def test_intervals_of_one_group_are_not_called_group_disjoint(tmp_path, capsys):
    p = tmp_path / "one_group.csv"
    synthetic_table(120).assign(title="A").to_csv(p, index=False)
    cfg = write_config(tmp_path, p, task="regression", training={"max_epochs": 2})
    out = tmp_path / "m"
    assert main(["train", str(cfg), "--out", str(out), "-q"]) == 0
    source = json.loads((out / "intervals.json").read_text())["source"]
    assert "not group-disjoint" in source and ", group-disjoint" not in source
    assert "not group-disjoint" in json.loads((out / "metrics.json").read_text())["intervals"]["calibration_rows"]


# ---- 7. a diverged training in evaluate names the config file -------------------------------------------------
def test_evaluate_divergence_names_the_config(tmp_path, csv, capsys, monkeypatch):
    import deepqoe.estimators

    def diverge(self, X, y, groups=None):
        raise DeepQoEError("training diverged: the loss became NaN or infinite in epoch 1; lower the learning rate",
                           field="training.learning_rate")

    monkeypatch.setattr(deepqoe.estimators._DeepQoENetworkEstimator, "fit", diverge)
    cfg = write_config(tmp_path, csv)
    code, err = _run(capsys, "evaluate", cfg, "-q")
    assert code == 1 and f"file '{cfg}'" in err and "training.learning_rate" in err
