"""The first real dataset: upec-qoe-lab through the shipped config (fails under CI if data is missing)."""

import json
from pathlib import Path

import numpy as np

from conftest import real_data
from deepqoe.cli import main
from deepqoe.config import load_config
from deepqoe.datasets import load_dataset

CONFIG = Path(__file__).parents[1] / "configs" / "upec-qoe-lab.yaml"


def test_upec_config_loads_the_real_table():
    real_data("upec-qoe-lab", "QoEcontrolledLab.csv")
    cfg = load_config(CONFIG)
    data = load_dataset(cfg.dataset)
    assert len(data) == 562
    assert sorted(set(data.y.tolist())) == [1, 2, 3, 4, 5]
    assert data.groups is not None and len(set(data.groups)) == 24
    assert data.X["bitrate_video"].dtype.kind == "f"  # decimal commas parsed


def test_upec_repeated_evaluation_beats_majority(tmp_path):
    real_data("upec-qoe-lab", "QoEcontrolledLab.csv")
    out = tmp_path / "upec.json"
    assert main(["evaluate", str(CONFIG), "--protocol", "repeated", "--n-splits", "3", "--epochs", "60",
                 "--baselines", "majority,random_forest", "--out", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    acc = {m: res["methods"][m]["metrics"]["accuracy"] for m in res["methods"]}
    assert all(len(a["values"]) == 3 and 0 <= a["mean"] <= 1 for a in acc.values())
    # majority class is ~25 % of the ratings: a model using the inputs must do clearly better
    assert acc["deepqoe"]["mean"] > acc["majority"]["mean"] + 0.1
    assert np.isfinite(acc["random_forest"]["mean"])


def test_relative_deepqoe_data_is_relative_to_the_working_directory(monkeypatch):
    data = Path(real_data("upec-qoe-lab", "QoEcontrolledLab.csv")).resolve().parents[1]
    monkeypatch.chdir(data.parent)
    monkeypatch.setenv("DEEPQOE_DATA", data.name)  # e.g. DEEPQOE_DATA=datasets, not an absolute path
    cfg = load_config(CONFIG)
    assert cfg.dataset.sources[0].resolve() == data / "upec-qoe-lab" / "QoEcontrolledLab.csv"
    assert len(load_dataset(cfg.dataset)) == 562
