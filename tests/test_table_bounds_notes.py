"""Table regression scores stay inside the training targets' range (no rating_scale), and notes for what was
done silently before: group-kfold capped to the number of groups, a config's baselines of the other task
skipped, early stopping's validation rows not group-disjoint; a table too small to train on names its file."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from deepqoe.cli import main
from deepqoe.errors import DeepQoEError, DeepQoENote

FAR = [1e14, 1000.0, 1e-9]  # far above, inside, far below the training bitrates (100..5000)


def _table(n: int = 40, seed: int = 0, groups: int | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    br = np.exp(rng.uniform(np.log(100), np.log(5000), n))
    mos = 1 + 4 * (np.log(br) - np.log(100)) / (np.log(5000) - np.log(100)) + rng.normal(0, 0.1, n)
    df = pd.DataFrame({"bitrate": br.round(1), "mos": mos.round(3)})
    if groups is not None:
        df["g"] = [f"c{i % groups}" for i in range(n)]
    return df


INPUTS = [{"column": "bitrate", "modality": "continuous", "log": True}]


def _config(tmp_path, df: pd.DataFrame, name: str = "data.csv", evaluation: dict | None = None, epochs: int = 3,
            **dataset):
    df.to_csv(tmp_path / name, index=False)
    cfg = {"dataset": {"name": "tiny", "source": name, "task": "regression", "target": "mos",
                       "inputs": INPUTS, **dataset},
           "training": {"max_epochs": epochs, "patience": 10}}
    if evaluation is not None:
        cfg["evaluation"] = evaluation
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _notes(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DeepQoENote)]


@pytest.fixture
def fitted_dir(tmp_path):
    """A regression table model fitted on every row of _table() (no rating_scale), saved; (dir, y)."""
    from deepqoe.estimators import DeepQoERegressor
    from deepqoe.persistence import save_model

    df = _table()
    est = DeepQoERegressor(inputs=INPUTS, max_epochs=3, progress=False).fit(df[["bitrate"]], df["mos"])
    out = save_model(est, tmp_path / "m", dataset_config=None)
    return out, df["mos"].to_numpy()


# ---- 1. scores inside the training targets' range --------------------------------------------------------------
def test_model_json_records_the_training_targets_range(fitted_dir):
    d, y = fitted_dir
    target = json.loads((d / "model.json").read_text())["target"]
    assert target["min"] == pytest.approx(y.min()) and target["max"] == pytest.approx(y.max())


def test_python_api_clips_scores_to_the_training_range_with_one_note(fitted_dir):
    from deepqoe.predictor import load_predictor

    d, y = fitted_dir
    p = load_predictor(d)
    X = pd.DataFrame({"bitrate": FAR})
    raw = p.model.predict(X)
    assert (raw < y.min()).any() or (raw > y.max()).any()  # the network alone extrapolates
    n_out = int(((raw < y.min()) | (raw > y.max())).sum())
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        rows = p.predict_rows(X)
    scores = np.array([r["score"] for r in rows])
    assert ((scores >= round(y.min(), 6)) & (scores <= round(y.max(), 6))).all()
    assert scores[1] == pytest.approx(raw[1], abs=1e-6)  # a row inside the range is untouched
    notes = _notes(rec)
    # the clip note, and the note that 2 bitrates are far outside the training range (test_table_predict_audit16)
    assert len(notes) == 2 and sum("far outside its training range" in n for n in notes) == 1, notes
    notes = [n for n in notes if "clipped" in n]
    assert len(notes) == 1 and f"{n_out} of 3 row(s)" in notes[0] and "training targets" in notes[0]
    assert f"[{y.min():g}, {y.max():g}]" in notes[0]
    with warnings.catch_warnings(record=True) as rec:  # nothing clipped: no note
        warnings.simplefilter("always")
        p.predict_rows(X.iloc[[1]])
    assert not _notes(rec)


def test_model_written_before_the_range_is_not_clipped(fitted_dir):
    from deepqoe.predictor import load_predictor

    d, y = fitted_dir
    meta = json.loads((d / "model.json").read_text())
    del meta["target"]["min"], meta["target"]["max"]
    (d / "model.json").write_text(json.dumps(meta))
    p = load_predictor(d)
    X = pd.DataFrame({"bitrate": FAR})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        scores = np.array([r["score"] for r in p.predict_rows(X)])
    # no clip note (the note on the inputs far outside their training range is another matter)
    assert scores == pytest.approx(p.model.predict(X), abs=1e-6) and not [n for n in _notes(rec) if "clipped" in n]


@pytest.mark.parametrize("change,field", [({"min": 9.0, "max": 1.0}, "target"), ({"max": None}, "target"),
                                          ({"min": "low"}, "target.min"), ({"max": float("nan")}, "target.max")])
def test_a_bad_range_in_model_json_is_one_error(fitted_dir, change, field):
    from deepqoe.persistence import load_model

    d, _ = fitted_dir
    meta = json.loads((d / "model.json").read_text())
    meta["target"].update(change)
    if change.get("max", 0) is None:
        del meta["target"]["max"]
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DeepQoEError) as e:
        load_model(d)
    assert e.value.file.endswith("model.json") and e.value.field == field


def test_cli_predict_clips_scores_and_intervals_and_says_so(tmp_path, capsys):
    cfg = _config(tmp_path, _table(60), epochs=40)  # learns the slope, so it extrapolates past the targets
    model = tmp_path / "m"
    assert _run(capsys, "train", cfg, "--out", model, "-q")[0] == 0
    target = json.loads((model / "model.json").read_text())["target"]
    lo, hi = target["min"], target["max"]
    y = _table(60)["mos"]
    assert y.min() <= lo <= hi <= y.max()  # the training rows' range (the test rows are held out)
    pd.DataFrame({"bitrate": FAR}).to_csv(tmp_path / "new.csv", index=False)
    code, out, err = _run(capsys, "predict", model, tmp_path / "new.csv", "--interval", "0.9")
    assert code == 0
    got = pd.read_csv(pd.io.common.StringIO(out))
    for c in ("score", "interval_low", "interval_high"):
        assert ((got[c] >= lo - 1e-6) & (got[c] <= hi + 1e-6)).all(), c
    lines = err.splitlines()  # the clip note, and the note on the bitrates far outside their training range
    assert len(lines) == 2 and all(x.startswith("deepqoe: note: ") for x in lines), err
    assert f"clipped to [{lo:g}, {hi:g}]" in lines[0] and "'bitrate' far outside its training range" in lines[1]
    code, _, err = _run(capsys, "predict", model, tmp_path / "new.csv", "-q")
    assert code == 0 and err == ""


# ---- 2. group-kfold capped to the number of groups ---------------------------------------------------------------
def test_group_kfold_with_fewer_groups_than_folds_says_so():
    from deepqoe.evaluation.protocols import make_splits

    groups = np.arange(12) % 3
    with pytest.warns(DeepQoENote, match="group-kfold: 5 folds asked, but there are only 3 groups; using 3 folds"):
        splits = make_splits("group-kfold", 12, groups=groups, n_splits=5)
    assert len(splits) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepQoENote)
        assert len(make_splits("group-kfold", 12, groups=groups, n_splits=3)) == 3


# ---- 3. a config's baselines of the other task: skipped, with a note ---------------------------------------------
def test_evaluate_names_the_config_baselines_it_skips(tmp_path):
    from deepqoe.config import load_config
    from deepqoe.workflow import evaluate_config

    cfg = load_config(_config(tmp_path, _table(), evaluation={"baselines": ["majority", "mean"], "n_splits": 2}))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = evaluate_config(cfg, protocol="holdout", progress=False, max_epochs=1)
    assert list(res["methods"]) == ["deepqoe", "mean"]
    notes = [n for n in _notes(rec) if "baselines" in n]
    assert len(notes) == 1 and "majority" in notes[0] and "regression" in notes[0] and "config.yaml" in notes[0]

    cfg = load_config(_config(tmp_path, _table()))  # the default list: no choice of the user's, no note
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        evaluate_config(cfg, protocol="holdout", progress=False, max_epochs=1)
    assert not [n for n in _notes(rec) if "baselines" in n]


# ---- 4. early stopping's validation rows: a note when they cannot be group-disjoint ------------------------------
@pytest.mark.parametrize("n_groups,noted", [(2, True), (None, False), (8, False)])
def test_early_stopping_says_when_validation_rows_are_not_group_disjoint(n_groups, noted):
    from deepqoe.estimators import DeepQoERegressor

    df = _table(40, groups=n_groups)
    groups = df["g"].to_numpy() if n_groups else None
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        DeepQoERegressor(inputs=INPUTS, max_epochs=1, progress=False).fit(df[["bitrate"]], df["mos"], groups=groups)
    notes = [n for n in _notes(rec) if "early stopping" in n]
    if noted:
        assert len(notes) == 1 and "random rows, not group-disjoint" in notes[0] and "2 groups" in notes[0]
    else:
        assert not notes


def test_evaluate_gives_the_early_stopping_note_once_not_per_split(tmp_path):
    from deepqoe.config import load_config
    from deepqoe.workflow import evaluate_config

    cfg = load_config(_config(tmp_path, _table(45, groups=3), group="g", evaluation={"baselines": ["mean"]}))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = evaluate_config(cfg, protocol="group", progress=False, max_epochs=1)
    assert res["n_splits"] == 3  # each split trains on 2 groups: random validation rows, three times
    assert len([n for n in _notes(rec) if "early stopping" in n]) == 1


# ---- 5. too few rows to train on: the error names the data file --------------------------------------------------
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_two_row_table_names_its_file(tmp_path, capsys, command):
    cfg = _config(tmp_path, _table(2), name="two.csv")
    argv = [command, cfg] + (["--out", tmp_path / "m"] if command == "train" else []) + ["-q"]
    code, _, err = _run(capsys, *argv)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"file '{tmp_path / 'two.csv'}'" in err and "2 row(s)" in err and "at least 2" in err
    if command == "train":
        assert "--full" in err and not (tmp_path / "m").exists()
        assert _run(capsys, "train", cfg, "--out", tmp_path / "m", "--full", "-q")[0] == 0  # all rows: trains


def test_more_folds_than_rows_names_the_data_file(tmp_path, capsys):
    cfg = _config(tmp_path, _table(3), name="three.csv")
    code, _, err = _run(capsys, "evaluate", cfg, "--protocol", "kfold", "--n-splits", "5", "-q")
    assert code == 1 and err.count("\n") == 1 and f"file '{tmp_path / 'three.csv'}'" in err and "5 folds" in err


def test_batch_scoring_says_the_workers_notes_once_as_status_lines(tmp_path, capsys):
    """--scheduler: the rows are scored on workers, whose warnings never reach the user; the clip note comes
    back with the partition's result and is said once per distinct note, as a status line."""
    pytest.importorskip("distributed")
    cfg = _config(tmp_path, _table(60), epochs=40)
    model = tmp_path / "m"
    assert _run(capsys, "train", cfg, "--out", model, "-q")[0] == 0
    pd.DataFrame({"bitrate": FAR}).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "scores"
    code, _, err = _run(capsys, "predict", model, tmp_path / "new.csv", "--out", out, "--scheduler", "local",
                        "--workers", "1")
    assert code == 0, err
    notes = [ln for ln in err.splitlines() if "clipped to [" in ln]
    assert len(notes) == 1 and notes[0].startswith("deepqoe: note: "), err
    assert "Warning" not in err, err
    target = json.loads((model / "model.json").read_text())["target"]
    got = pd.read_parquet(out)
    assert got["score"].between(target["min"] - 1e-6, target["max"] + 1e-6).all()


def test_evaluate_says_when_splits_test_on_too_few_rows_for_a_correlation(tmp_path):
    """kfold with 6 folds of 10 rows tests on 1-2 rows per fold: their correlations are 0 by the metrics'
    convention, which says nothing; one note says so (none for folds of 3 or more rows)."""
    from deepqoe.config import load_config
    from deepqoe.workflow import evaluate_config

    cfg = load_config(_config(tmp_path, _table(10)))
    for n_splits, expect in ((6, 1), (3, 0)):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            evaluate_config(cfg, protocol="kfold", n_splits=n_splits, progress=False, max_epochs=1, baselines=[])
        notes = [n for n in _notes(rec) if "fewer than 3" in n]
        assert len(notes) == expect, (n_splits, notes)
        if expect:
            assert "data.csv" in notes[0] and f"of {n_splits} splits" in notes[0], notes[0]


@pytest.mark.parametrize("n_groups,noted", [(2, True), (8, False)])
def test_train_says_when_calibration_rows_are_not_group_disjoint(tmp_path, capsys, n_groups, noted):
    """The rows held out for the prediction intervals are group-disjoint when the config has a group with
    enough groups; when it cannot be honoured (2 groups), a note says so (metrics.json records it too)."""
    cfg = _config(tmp_path, _table(60, groups=n_groups), group="g", evaluation={"calibration_fraction": 0.3})
    code, _, err = _run(capsys, "train", cfg, "--out", tmp_path / "m")
    assert code == 0, err
    notes = [ln for ln in err.splitlines() if "prediction intervals: the" in ln]
    assert len(notes) == (1 if noted else 0), err
    if noted:
        assert notes[0].startswith("deepqoe: note: ") and "not group-disjoint" in notes[0] and "new g values" in notes[0]


def test_a_clipped_scores_explanation_says_it_explains_the_unclipped_prediction(fitted_dir):
    import pandas as pd

    from deepqoe.predictor import load_predictor

    d, _ = fitted_dir
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepQoENote)
        rows = load_predictor(str(d)).predict_rows(pd.DataFrame({"bitrate": FAR}), explain=True)
    far, inside = rows[0], rows[1]
    assert far["explanation"]["clipped_to"] == far["score"] and far["explanation"]["value"] > far["score"]
    assert "clipped_to" not in inside["explanation"]


def test_ids_stay_as_written_in_predict_and_batch_scoring(tmp_path, capsys):
    """A table's id column is read as text by deepqoe predict and by batch scoring alike: '007' stays '007'
    (as session ids do), and both give the same id column (batch scoring made 1 into 1.0)."""
    pytest.importorskip("distributed")
    df = _table(40)
    df.insert(0, "rid", [f"{i:03d}" for i in range(40)])
    cfg = _config(tmp_path, df, id="rid")
    assert _run(capsys, "train", cfg, "--out", tmp_path / "m", "-q")[0] == 0
    new = pd.DataFrame({"rid": ["007", "010", "42"], "bitrate": [500.0, 1000.0, 2000.0]})
    new.to_csv(tmp_path / "new.csv", index=False)
    assert _run(capsys, "predict", tmp_path / "m", tmp_path / "new.csv", "--out", tmp_path / "one.parquet",
                "-q")[0] == 0
    assert _run(capsys, "predict", tmp_path / "m", tmp_path / "new.csv", "--out", tmp_path / "batch",
                "--scheduler", "local", "--workers", "1", "-q")[0] == 0
    one = pd.read_parquet(tmp_path / "one.parquet")
    batch = pd.read_parquet(tmp_path / "batch").sort_values("row").reset_index(drop=True)
    assert one["id"].tolist() == batch["id"].tolist() == ["007", "010", "42"]


def test_a_config_takes_every_baseline_the_command_line_takes(tmp_path):
    """One list of baselines (deepqoe.config.Baseline): a config's evaluation.baselines accepts what
    --baselines and the messages name (decision_tree, adaboost and naive_bayes were refused in a config)."""
    from deepqoe.config import load_config
    from deepqoe.shallow import BASELINES
    from deepqoe.workflow import baselines_for_task, evaluate_config

    assert set(baselines_for_task("regression")) | set(baselines_for_task("classification")) == set(BASELINES)
    cfg = load_config(_config(tmp_path, _table(30), evaluation={"baselines": list(BASELINES), "n_splits": 2}))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = evaluate_config(cfg, protocol="kfold", progress=False, max_epochs=1)
    assert set(res["methods"]) == {"deepqoe", *baselines_for_task("regression")}
    skipped = [n for n in _notes(rec) if "baselines" in n]
    assert len(skipped) == 1 and "naive_bayes" in skipped[0] and "adaboost" not in skipped[0].split("(")[0]
