"""Fine-tuning: transfer from a shipped model to a user's dataset, frozen or fully trained."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import synthetic_table, write_config
from deepqoe.cli import main
from deepqoe.persistence import PRETRAINED_DIR, load_model


@pytest.fixture
def config(tmp_path):
    if not (PRETRAINED_DIR / "upec-qoe-lab" / "model.json").is_file():
        pytest.skip("shipped model upec-qoe-lab not in this build")
    csv = tmp_path / "data.csv"
    synthetic_table(200).to_csv(csv, index=False)
    return write_config(tmp_path, csv)


def test_finetune_frozen_keeps_the_representation(tmp_path, config, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", "upec-qoe-lab", str(config), "--out", str(out), "--freeze", "--epochs", "3"]) == 0
    assert "frozen representation" in capsys.readouterr().err  # a status line: standard error
    m = json.loads((out / "metrics.json").read_text())
    assert m["frozen"] and "fc.0.weight" in m["warm_started"] and "test" in m
    ours, theirs = load_file(str(out / "model.safetensors")), load_file(str(PRETRAINED_DIR / "upec-qoe-lab" /
                                                                             "model.safetensors"))
    for k in ("fc.0.weight", "fc.3.weight"):
        assert torch.equal(ours[k], theirs[k])  # frozen: unchanged
    est = load_model(out)
    assert est.meta_["finetuned_from"]["name"] == "upec-qoe-lab"
    pred = est.predict(synthetic_table(5, seed=3))
    assert set(pred) <= {1, 2, 3, 4, 5}


def test_finetune_full_changes_the_representation(tmp_path, config):
    out = tmp_path / "ft"
    assert main(["finetune", "upec-qoe-lab", str(config), "--out", str(out), "--epochs", "2", "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert not m["frozen"] and "head.weight" in m["warm_started"]
    ours, theirs = load_file(str(out / "model.safetensors")), load_file(str(PRETRAINED_DIR / "upec-qoe-lab" /
                                                                             "model.safetensors"))
    assert not torch.equal(ours["fc.0.weight"], theirs["fc.0.weight"])


def test_finetune_wrong_task_is_a_clear_error(tmp_path, config, capsys):
    (tmp_path / "r").mkdir()
    cfg = write_config(tmp_path / "r", config.parent / "data.csv", task="regression")
    assert main(["finetune", "upec-qoe-lab", str(cfg), "--out", str(tmp_path / "x"), "--quiet"]) == 1
    assert "task" in capsys.readouterr().err
