"""What `deepqoe train` on a sessions config says of its entries (a user audit): an entry's `scale:` that
contradicts the sessions' own `mos_scale`, 1-5 scores under a 0-100 entry scale, sessions without a `mos`
named by their own file and row, the `--mos-scale` of the `validate` hint, every bad entry in one error; and a
"did you mean" for a mistyped `--calibration`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_readers_upstream import _lab
from test_session_sources_audit15 import _csv
from test_session_training_messages import _error, _sessions

from deepqoe.cli import main
from deepqoe.config import SessionSource
from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.workflow import read_session_source

torch.set_num_threads(1)


def _json_folder(root: Path, n: int = 6, **fields) -> Path:
    root.mkdir(parents=True)
    for d in _sessions(n):
        (root / f"{d['id']}.json").write_text(json.dumps({**d, **fields}))
    return root


def _config(root: Path, datasets: list) -> Path:
    p = root / "c.yaml"
    p.write_text(yaml.safe_dump({"sessions": {"datasets": datasets}, "model": {"n_members": 1},
                                 "training": {"epochs": 2}, "evaluation": {"n_splits": 2}}))
    return p


# ---- 1. the entry's scale against the sessions' own -----------------------------------------------------
def test_an_entry_scale_contradicting_the_files_mos_scale_is_an_error(tmp_path, capsys):
    folder = _json_folder(tmp_path / "json_clean", mos_scale="1-5")  # 1-5 scores, said so in every file
    with pytest.raises(DeepQoEError) as e:
        read_session_source(SessionSource(path=str(folder), scale="0-100"))
    assert e.value.file == str(folder / "s000.json") and e.value.field == "mos_scale"
    assert "its mos_scale is 1-5" in e.value.message and "every mos here is read on 0-100" in e.value.message
    assert "and 5 more problem(s) in 5 other file(s)" in e.value.message
    # the command line: exit 1, one line, no model
    err = _error(capsys, ["train", str(_config(tmp_path, [{"path": "json_clean", "scale": "0-100"}])),
                          "--out", str(tmp_path / "m")])
    assert "mos_scale is 1-5" in err and "0-100" in err and not (tmp_path / "m").exists()
    # the entry's scale where it agrees, or without one: the scores as written
    got = read_session_source(SessionSource(path=str(folder), scale="1-5"))
    np.testing.assert_allclose(got.y, [d["mos"] for d in _sessions(6)])


def test_a_csv_whose_mos_scale_the_entry_contradicts_is_named_by_column_and_row(tmp_path):
    f = _csv(tmp_path / "s.csv", [1.5, 2.5, 3.5, 4.5], mos_scale="1-5")
    with pytest.raises(DeepQoEError) as e:
        read_session_source(SessionSource(path=str(f), scale="0-100"))
    assert (e.value.file, e.value.column, e.value.row) == (str(f), "mos_scale", 1)
    assert "session 's000': its mos_scale is 1-5 and its mos 1.5 lies within it" in e.value.message
    assert "and 3 more problem(s) in this file" in e.value.message


def test_a_mislabelled_mos_scale_is_replaced_by_the_entry_scale(tmp_path):
    f = _csv(tmp_path / "s.csv", [20.0, 40.0, 60.0, 80.0], mos_scale="1-5")  # 0-100 scores labelled 1-5
    got = read_session_source(SessionSource(path=str(f), scale="0-100"))  # their mos lie outside 1-5
    np.testing.assert_allclose(got.y, [1.8, 2.6, 3.4, 4.2])


@pytest.mark.parametrize("kind", ["waterloo", "json"])
def test_1_5_scores_under_a_0_100_entry_scale_get_a_note(tmp_path, kind):
    if kind == "waterloo":
        folder = _lab(tmp_path / "lab")
        data = pd.read_csv(folder / "data.csv")
        data["mos"] = np.linspace(1.2, 4.8, len(data))
        data.to_csv(folder / "data.csv", index=False)
    else:
        folder = _json_folder(tmp_path / "lab")  # no mos_scale written: the entry's scale is theirs
    with pytest.warns(DeepQoENote, match=r"every mos is within 0-5 .* read on the training entry's scale: 0-100; "
                                         r"if these are 1-5 ratings, give the entry scale: 1-5"):
        read_session_source(SessionSource(path=str(folder), scale="0-100"))
    with warnings.catch_warnings():  # 0-100 scores: no note
        warnings.simplefilter("error", DeepQoENote)
        read_session_source(SessionSource(path=str(_lab(tmp_path / "lab100")), scale="0-100"))


# ---- 2. sessions without a mos: their own file and row, all of them ----------------------------------------
def test_sessions_without_mos_in_a_waterloo_folder_are_all_named(tmp_path):
    folder = _lab(tmp_path / "wl_nomos", n=9)
    data = pd.read_csv(folder / "data.csv")
    data.loc[[2, 4, 5, 6, 7, 8], "mos"] = np.nan
    data.to_csv(folder / "data.csv", index=False)
    with pytest.raises(DeepQoEError) as e:
        read_session_source(SessionSource(path=str(folder)))
    assert (e.value.file, e.value.field) == (str(folder), "mos")
    assert ("session '002' has no 'mos': sessions to train on need their score; and 5 more session(s) without one "
            "in this file: '004', '005', '006', '007', '008'" in e.value.message)


def test_sessions_without_mos_are_named_with_the_other_problems(tmp_path):
    s = _sessions(4)
    s[1]["segments"][2]["duration"] = -1
    del s[3]["mos"]
    folder = tmp_path / "s"
    folder.mkdir()
    for d in s:
        (folder / f"{d['id']}.json").write_text(json.dumps(d))
    with pytest.raises(DeepQoEError) as e:
        read_session_source(SessionSource(path=str(folder)))
    assert e.value.file == str(folder / "s001.json") and e.value.field == "segments[2].duration"
    assert "also 1 session(s) without a 'mos'" in e.value.message and "'s003' (s003.json)" in e.value.message


# ---- 3. the validate hint checks what training checks --------------------------------------------------------
def test_the_validate_hint_carries_the_entry_scale(tmp_path, capsys):
    folder = _lab(tmp_path / "wl_bad")
    for name in ("001.csv", "004.csv"):
        log = pd.read_csv(folder / "streaming_logs" / name, dtype=str)
        log.loc[1, "chunk_duration"] = "x"
        log.to_csv(folder / "streaming_logs" / name, index=False)
    err = _error(capsys, ["train", str(_config(tmp_path, [{"path": "wl_bad", "scale": "0-100"}])),
                          "--out", str(tmp_path / "m")])
    assert f"`deepqoe sessions validate {folder} --mos-scale 0-100` lists them all" in err, err


# ---- 4. every bad entry in one error -------------------------------------------------------------------------
def test_every_bad_entry_is_in_one_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "no-data").mkdir()
    monkeypatch.setenv("DEEPQOE_DATA", str(tmp_path / "no-data"))  # the registered dataset is not fetched
    s = _sessions(3)
    s[1]["segments"][2]["duration"] = -1
    bad = tmp_path / "bad"
    bad.mkdir()
    for d in s:
        (bad / f"{d['id']}.json").write_text(json.dumps(d))
    (tmp_path / "empty").mkdir()
    cfg = _config(tmp_path, ["p1203-open", {"path": "bad"}, {"path": "empty"}])
    err = _error(capsys, ["train", str(cfg), "--out", str(tmp_path / "m")])
    assert f"file '{cfg}', field 'sessions': 3 entries cannot be read" in err, err
    assert "(1) sessions.datasets.0 'p1203-open': " in err and "dataset file not found" in err
    assert f"(2) sessions.datasets.1 'bad': file '{bad / 's001.json'}'" in err
    assert f"(3) sessions.datasets.2 'empty': file '{tmp_path / 'empty'}': no session files" in err


# ---- 5. a mistyped calibration ---------------------------------------------------------------------------------
def test_a_mistyped_calibration_gets_a_did_you_mean(tmp_path, capsys):
    from deepqoe.predictor import load_predictor

    p = load_predictor("streaming")
    with pytest.raises(DeepQoEError, match=r"unknown calibration 'waterlo-sqoe-iv' \(did you mean "
                                           r"'waterloo-sqoe-iv'\?\): the model was trained on p1203-open"):
        p.check_calibration("waterlo-sqoe-iv")
    with pytest.raises(DeepQoEError) as e:  # nothing close: no hint
        p.check_calibration("zzz")
    assert "did you mean" not in e.value.message and "unknown calibration 'zzz'" in e.value.message
    f = tmp_path / "one.json"
    f.write_text(json.dumps(_sessions(1)[0]))
    err = _error(capsys, ["predict", "streaming", str(f), "--calibration", "p1203-opn"])
    assert "(did you mean 'p1203-open'?)" in err
