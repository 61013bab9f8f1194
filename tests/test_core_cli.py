"""The deepqoe command: train / evaluate / predict / embed, and every kind of bad input."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import synthetic_table, write_config
from deepqoe.cli import main


def run_cli(*args) -> subprocess.CompletedProcess:
    """Run the real command in a subprocess (exit status, stderr, no traceback)."""
    return subprocess.run([sys.executable, "-m", "deepqoe.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def csv(tmp_path):
    p = tmp_path / "data.csv"
    synthetic_table(240).to_csv(p, index=False)
    return p


def test_train_predict_embed_roundtrip(tmp_path, csv):
    cfg = write_config(tmp_path, csv)
    assert main(["train", str(cfg), "--out", str(tmp_path / "model"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1 and metrics["n_train"] + metrics["n_test"] == 240
    assert metrics["holdout"] == "group-disjoint" and metrics["group"] == "title"  # the test part: whole titles
    assert main(["predict", str(tmp_path / "model"), str(csv), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 240 and list(pred.columns[:3]) == ["row", "id", "score"]
    probs = pred[[f"prob_{c}" for c in range(1, 6)]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert set(pred.score) <= {1, 2, 3, 4, 5}
    assert main(["embed", str(tmp_path / "model"), str(csv), "--out", str(tmp_path / "rep.parquet")]) == 0
    rep = pd.read_parquet(tmp_path / "rep.parquet")
    assert rep.shape == (240, 2 + 32)


def test_evaluate_writes_every_metric_for_deepqoe_and_baselines(tmp_path, csv):
    cfg = write_config(tmp_path, csv)
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(cfg), "--protocol", "group", "--out", str(out), "--plots", str(tmp_path / "plots"),
                 "--quiet"]) == 0
    assert len(list((tmp_path / "plots").glob("*.png"))) == 3
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"deepqoe", "majority", "random_forest"}
    assert res["n_splits"] == 8  # one split per title A..H
    for m in res["methods"].values():
        acc = m["metrics"]["accuracy"]
        assert len(acc["values"]) == 8 and 0 <= acc["mean"] <= 1 and acc["std"] >= 0
        assert "macro_f1" in m["metrics"] and np.asarray(m["confusion_matrix_total"]).sum() == 240
    assert "paired_test_vs_deepqoe" in res["methods"]["random_forest"]


def test_regression_kfold(tmp_path, csv):
    cfg = write_config(tmp_path, csv, task="regression", evaluation={"baselines": ["mean", "lightgbm"]})
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(cfg), "--protocol", "kfold", "--n-splits", "3", "--out", str(out), "--quiet",
                 "--plots", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "synthetic_kfold_deepqoe.png").stat().st_size > 1000
    res = json.loads(out.read_text())
    for k in ("mse", "rmse", "plcc", "srocc", "krocc"):
        assert k in res["methods"]["deepqoe"]["metrics"]
    # the mean baseline predicts one score per split: its correlations are undefined (null), not 0
    assert res["methods"]["mean"]["metrics"]["srocc"]["mean"] is None
    assert res["methods"]["deepqoe"]["metrics"]["srocc"]["mean"] > 0


# ---- bad input: one clear message naming file/column/row, exit 1 (data error), no traceback, nothing written ----
def _bad(tmp_path, cfg, *expect, data=None):
    out = tmp_path / "out_model"
    r = run_cli("train", cfg, "--out", out, "--quiet")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("deepqoe: error:") and r.stderr.count("\n") == 1
    for e in expect:
        assert e in r.stderr, r.stderr
    assert not out.exists()
    from deepqoe.io import TEMP_PREFIX

    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".out_model", TEMP_PREFIX))]


def test_bad_misspelt_column(tmp_path, csv):
    cfg = write_config(tmp_path, csv)
    c = yaml.safe_load(cfg.read_text())
    c["dataset"]["inputs"][2]["column"] = "bitrat"
    cfg.write_text(yaml.safe_dump(c))
    _bad(tmp_path, cfg, "column 'bitrat'", "did you mean 'bitrate'", str(csv))


def test_bad_missing_target_column(tmp_path, csv):
    _bad(tmp_path, write_config(tmp_path, csv, dataset={"target": "score"}), "column 'score'", "target")


def test_bad_wrong_type(tmp_path, csv):
    df = pd.read_csv(csv)
    df["bitrate"] = df["bitrate"].astype(object)
    df.loc[6, "bitrate"] = "fast"
    df.to_csv(csv, index=False)
    _bad(tmp_path, write_config(tmp_path, csv), "column 'bitrate'", "row 7", "'fast'")


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_bad_nan_or_inf(tmp_path, csv, value, word):
    df = pd.read_csv(csv)
    df["age"] = df["age"].astype(float)
    df.loc[3, "age"] = value
    df.to_csv(csv, index=False)
    _bad(tmp_path, write_config(tmp_path, csv), "column 'age'", "row 4", word)


def test_bad_empty_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _bad(tmp_path, write_config(tmp_path, empty), "empty", str(empty))
    empty.write_text("genre,resolution,bitrate,age,sex,rating\n")
    _bad(tmp_path, write_config(tmp_path, empty), "no rows")


def test_bad_target_outside_classes(tmp_path, csv):
    df = pd.read_csv(csv)
    df.loc[9, "rating"] = 7
    df.to_csv(csv, index=False)
    _bad(tmp_path, write_config(tmp_path, csv), "column 'rating'", "row 10", "not one of the configured classes")


def test_bad_unknown_modality(tmp_path, csv):
    cfg = write_config(tmp_path, csv)
    c = yaml.safe_load(cfg.read_text())
    c["dataset"]["inputs"][0]["modality"] = "txt"
    cfg.write_text(yaml.safe_dump(c))
    _bad(tmp_path, cfg, "unknown modality 'txt'", "did you mean 'text'", "dataset.inputs.0.modality", str(cfg))


def test_bad_config_typo(tmp_path, csv):
    cfg = write_config(tmp_path, csv, training={"learning_rat": 0.01})
    _bad(tmp_path, cfg, "unknown field 'learning_rat'", "did you mean 'learning_rate'", "training.learning_rat")


def test_bad_config_not_yaml_and_missing(tmp_path, csv):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: [unclosed\n")
    _bad(tmp_path, cfg, "not valid YAML", str(cfg))
    _bad(tmp_path, tmp_path / "nope.yaml", "config file not found")


def test_bad_model_dir_for_predict(tmp_path, csv):
    r = run_cli("predict", tmp_path / "no-model", csv)
    assert r.returncode == 1 and "no such model directory" in r.stderr and "Traceback" not in r.stderr
