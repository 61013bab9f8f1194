"""Fine-tuning: transfer from a shipped model to a user's dataset, frozen or fully trained."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import INPUTS, synthetic_table, write_config
from deepqoe.cli import main
from deepqoe.persistence import PRETRAINED_DIR, load_model


# the shipped model's column names: fine-tuning matches input branches by column and modality
UPEC_NAMES = {"genre": "content", "bitrate": "bitrate_video", "age": "age_user", "sex": "sex_user"}


def upec_table(n: int = 200, seed: int = 0):
    return synthetic_table(n, seed).rename(columns=UPEC_NAMES)


def upec_inputs(order=("content", "resolution", "bitrate_video", "age_user", "sex_user")) -> list[dict]:
    by_column = {UPEC_NAMES.get(i["column"], i["column"]): {**i, "column": UPEC_NAMES.get(i["column"], i["column"])}
                 for i in INPUTS}
    return [dict(by_column[c]) for c in order]


@pytest.fixture
def config(tmp_path):
    if not (PRETRAINED_DIR / "upec-qoe-lab" / "model.json").is_file():
        pytest.skip("shipped model upec-qoe-lab not in this build")
    csv = tmp_path / "data.csv"
    upec_table(200).to_csv(csv, index=False)
    return write_config(tmp_path, csv, dataset={"inputs": upec_inputs()})


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
    pred = est.predict(upec_table(5, seed=3))
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


# ---- weights transfer by meaning, not by position -----------------------------------------------------------
def _shipped():
    return load_file(str(PRETRAINED_DIR / "upec-qoe-lab" / "model.safetensors"))


def test_branches_are_matched_by_column_not_by_position(tmp_path, config, capsys):
    """age_user and bitrate_video swapped in the config: each takes its own pretrained branch, and the first
    fully connected layer's columns follow them."""
    cfg = write_config(tmp_path, config.parent / "data.csv", dataset={"inputs": upec_inputs(
        ("content", "resolution", "age_user", "bitrate_video", "sex_user"))})
    out = tmp_path / "ft"
    assert main(["finetune", "upec-qoe-lab", str(cfg), "--out", str(out), "--freeze", "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "input 'age_user': copied" in err and "fc.0" in err
    ours, theirs = load_file(str(out / "model.safetensors")), _shipped()
    # upec's branches: 0 content, 1 resolution, 2 bitrate_video, 3 age_user, 4 sex_user (fused widths 5, 8, 8, 8, 1)
    assert torch.equal(ours["branches.2.project.0.weight"], theirs["branches.3.project.0.weight"])  # age_user
    assert torch.equal(ours["branches.3.project.0.weight"], theirs["branches.2.project.0.weight"])  # bitrate
    assert torch.equal(ours["fc.0.weight"][:, 13:21], theirs["fc.0.weight"][:, 21:29])
    assert torch.equal(ours["fc.0.weight"][:, 21:29], theirs["fc.0.weight"][:, 13:21])
    report = json.loads((out / "metrics.json").read_text())["warm_start"]
    assert {e["input"]: e["from"] for e in report["inputs"]}["age_user"] == "age_user"


def test_inputs_of_other_columns_are_not_copied(tmp_path, config, capsys):
    """The audit's case: inputs genre, resolution, age, bitrate (the shipped model reads content, resolution,
    bitrate_video, age_user, ...) took the shipped bitrate branch for 'age', by position. Now only
    'resolution' transfers; with no common column at all: one line, exit 1, nothing written."""
    csv = tmp_path / "plain.csv"
    synthetic_table(120).to_csv(csv, index=False)
    (tmp_path / "c").mkdir()
    cfg = write_config(tmp_path / "c", csv, dataset={"inputs": [dict(INPUTS[k]) for k in (0, 1, 3, 2)]})
    out = tmp_path / "ft"
    assert main(["finetune", "upec-qoe-lab", str(cfg), "--out", str(out), "--epochs", "1", "-q"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["warm_started"] == ["branches.1.encode.weight"]
    assert "'age' (continuous)" in {e["input"]: e for e in m["warm_start"]["inputs"]}["age"]["reason"]
    cfg = write_config(tmp_path / "c", csv, dataset={"inputs": [dict(INPUTS[k]) for k in (0, 3, 2)]})
    out = tmp_path / "ft2"
    assert main(["finetune", "upec-qoe-lab", str(cfg), "--out", str(out), "--epochs", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'age' (continuous)" in err and "bitrate_video" in err
    assert not out.exists()


def test_freeze_is_refused_unless_the_first_fc_layer_transfers(tmp_path, config, capsys):
    """Three of the five inputs: their branches transfer, fc.0 (30 columns in upec) does not: --freeze has no
    representation to keep."""
    cfg = write_config(tmp_path, config.parent / "data.csv",
                       dataset={"inputs": upec_inputs(("content", "resolution", "age_user"))})
    out = tmp_path / "ft"
    assert main(["finetune", "upec-qoe-lab", str(cfg), "--out", str(out), "--freeze", "--epochs", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--freeze" in err and "bitrate_video" in err and "frozen representation" not in err
    assert not out.exists()
    assert main(["finetune", "upec-qoe-lab", str(cfg), "--out", str(out), "--epochs", "1", "-q"]) == 0  # unfrozen: ok
    m = json.loads((out / "metrics.json").read_text())
    assert "branches.0.project.0.weight" in m["warm_started"]
    assert not any(k.startswith(("fc.", "head.")) for k in m["warm_started"])


def test_the_head_transfers_only_with_the_same_classes(config):
    from deepqoe.estimators import DeepQoEClassifier, transfer_weights

    source = load_model("upec-qoe-lab")
    table = upec_table(80)
    fast = dict(hidden_layers=(512, 256), max_epochs=1, batch_size=64)
    three = DeepQoEClassifier(inputs=upec_inputs(), classes=[1, 2, 3], **fast).fit(
        table, table.rating.clip(1, 3))
    updates, report = transfer_weights(source, three)
    assert "fc.3.weight" in updates and "head.weight" not in updates and not report["head"]
    assert "classes differ" in report["reason"]
    # the same classes in another order: the head's rows follow the classes
    rev = DeepQoEClassifier(inputs=upec_inputs(), classes=[5, 4, 3, 2, 1], **fast).fit(table, table.rating)
    updates, report = transfer_weights(source, rev)
    theirs = source.network_.state_dict()
    assert report["head"] and torch.equal(updates["head.weight"], theirs["head.weight"].flip(0))
    assert torch.equal(updates["head.bias"], theirs["head.bias"].flip(0))
