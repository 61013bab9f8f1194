"""1. metrics.json keeps the notes its training gave (`deepqoe train` of a table or a sessions config, `deepqoe
finetune`): every distinct one, in order, as standard error showed it, reading the data included (a
metrics.json read later says that its score rests on 6 sessions); still shown once each.
2. A sessions config's bad entries (an unknown name, a missing path, a bad scale) are one error naming each,
not the schema check's first alone."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
import torch
import yaml
from conftest import write_config
from test_finetune import config, upec_inputs  # noqa: F401 (config: the fixture; skips without the shipped model)
from test_session_training_messages import _config, _error, _folder, _sessions
from test_train_honesty import _config as _table_config, _notes, _run, _table

from deepqoe.errors import DeepQoEError

torch.set_num_threads(1)

PREFIX = "deepqoe: note: "


def _shown(err: str) -> list[str]:
    """The notes on standard error, without their prefix, in order."""
    return [line[len(PREFIX):] for line in err.splitlines() if line.startswith(PREFIX)]


def _kept(out) -> list[str]:
    return json.loads((out / "metrics.json").read_text())["notes"]


# ---- 1. notes in metrics.json --------------------------------------------------------------------------------
def test_a_table_training_keeps_its_notes(tmp_path, capsys):
    cfg = _table_config(tmp_path, _table(40).assign(g="only"), group="g")  # one group: random test rows
    code, err = _run(capsys, "train", cfg, "--out", tmp_path / "m")
    assert code == 0, err
    shown = _shown(err)
    assert any("test row(s) are random rows" in n for n in shown), err
    assert len(set(shown)) == len(shown)  # each shown once, as before
    assert _kept(tmp_path / "m") == shown


def test_the_notes_a_config_gives_when_loaded_are_kept_first(tmp_path, capsys):
    """The config's own note (an input reads the group column: given when the CLI loads it, before training
    runs) is in metrics.json too, first, and still shown once; a Python caller gets it the same way."""
    from deepqoe.config import load_config
    from deepqoe.workflow import train_config

    inputs = [{"column": "bitrate", "modality": "continuous", "log": True}, {"column": "g", "modality": "categorical"}]
    cfg = _table_config(tmp_path, _table(40), group="g", inputs=inputs)
    code, err = _run(capsys, "train", cfg, "--out", tmp_path / "m")
    assert code == 0, err
    shown = _shown(err)
    leak = [n for n in shown if "group column 'g'" in n]
    assert len(leak) == 1 and "dataset.inputs.1" in leak[0], err
    kept = _kept(tmp_path / "m")
    assert kept[0] == leak[0] and kept == shown
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_config(cfg)
        train_config(loaded, tmp_path / "py", progress=False)
    assert _kept(tmp_path / "py")[0] == leak[0]


def test_a_sessions_training_keeps_its_notes_reading_included(tmp_path, capsys):
    _folder(tmp_path / "s", _sessions(6))  # 1-5 scores under a 0-100 entry scale: a note while reading
    cfg = _config(tmp_path, sessions={"datasets": [{"path": "s", "scale": "0-100"}]})
    code, err = _run(capsys, "train", cfg, "--out", tmp_path / "m")
    assert code == 0, err
    shown = _shown(err)
    assert len(shown) == 2 and len(set(shown)) == 2, err
    assert "every mos is within 0-5" in shown[0] and "the 2-fold score rests on 6 session(s)" in shown[1]
    assert _kept(tmp_path / "m") == shown
    # without a note: an empty list
    code, err = _run(capsys, "train", cfg, "--out", tmp_path / "full", "--full", "--quiet")
    assert code == 0, err
    _folder(tmp_path / "t", _sessions(6))
    code, err = _run(capsys, "train", _config(tmp_path, "d.yaml", sessions={"datasets": [{"path": "t"}]}),
                     "--out", tmp_path / "none", "--full")
    assert code == 0 and not _shown(err), err
    assert _kept(tmp_path / "none") == []
    # --quiet hides the notes, metrics.json keeps them
    assert _kept(tmp_path / "full") == [shown[0]]


def test_a_finetuning_keeps_its_notes(tmp_path, capsys, config):  # noqa: F811
    csv = config.parent / "data.csv"
    pd.read_csv(csv).assign(lab="one").to_csv(csv, index=False)
    (tmp_path / "g").mkdir()
    cfg = write_config(tmp_path / "g", csv, dataset={"inputs": upec_inputs(), "group": "lab"})
    code, err = _run(capsys, "finetune", "upec-qoe-lab", cfg, "--out", tmp_path / "ft", "--epochs", "1")
    assert code == 0, err
    shown = _shown(err)
    assert any("test row(s) are random rows" in n for n in shown), err
    assert _kept(tmp_path / "ft") == shown


def test_each_training_in_one_process_keeps_its_notes(tmp_path):
    """A note given by an earlier training at the same place is given (and kept) again."""
    from deepqoe.config import load_sessions_config
    from deepqoe.workflow import train_sessions_config

    _folder(tmp_path / "s", _sessions(6))
    cfg = load_sessions_config(_config(tmp_path, sessions={"datasets": [{"path": "s", "scale": "0-100"}]}))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("default")
        first = train_sessions_config(cfg, tmp_path / "m1", progress=False)
        second = train_sessions_config(cfg, tmp_path / "m2", progress=False)
    assert len(first["notes"]) == 2 and first["notes"] == second["notes"] == _kept(tmp_path / "m2")
    assert _notes(rec) == first["notes"] * 2  # each shown once per training


# ---- 2. every bad entry of a sessions config in one error ----------------------------------------------------
def test_every_bad_entry_of_a_sessions_config_is_in_one_error(tmp_path, capsys):
    _folder(tmp_path / "s", _sessions(3))
    cfg = _config(tmp_path, sessions={"datasets": ["p1203-opne", {"path": "nowhere/"},
                                                   {"path": "s", "scale": "1-to-5x"}, {"path": "s", "name": "ok"}]})
    err = _error(capsys, ["train", str(cfg), "--out", str(tmp_path / "m")])
    assert err.startswith(f"deepqoe: error: file '{cfg}', field 'sessions': 3 entries cannot be read: "), err
    parts = ["(1) sessions.datasets.0 'p1203-opne': field 'dataset': unknown dataset 'p1203-opne' (did you mean "
             "'p1203-open'?)",
             "; (2) sessions.datasets.1 'nowhere': field 'path': no such file or folder: nowhere/",
             "; (3) sessions.datasets.2 's': field 'scale': unknown rating scale '1-to-5x'"]
    at = [err.find(p) for p in parts]
    assert -1 not in at and at == sorted(at), err  # each, in the config's order
    assert "'ok'" not in err and not (tmp_path / "m").exists()


def test_bad_registered_names_in_both_lists_are_one_error(tmp_path):
    from deepqoe.config import load_sessions_config

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"sessions": {"datasets": [{"path": "gone"}], "continuous": ["live-nflx-contnuous"]}}))
    with pytest.raises(DeepQoEError) as e:
        load_sessions_config(p)
    assert (e.value.file, e.value.field) == (str(p), "sessions")
    assert e.value.message.startswith("2 entries cannot be read: (1) sessions.datasets.0 'gone': field 'path': no "
                                      "such file or folder: gone; (2) sessions.continuous.0 'live-nflx-contnuous': "
                                      "unknown dataset 'live-nflx-contnuous' (did you mean 'live-nflx-continuous'?)")
