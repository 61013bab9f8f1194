"""What `deepqoe train` on a sessions config says (a user audit): bad session files counted across files, notes
for degenerate trainings (constant scores, a k-fold on a handful of sessions, a quality mapping fitted on a
handful of sessions), the whole training time in the summary, why a model has no prediction intervals, and an
unwritable --out named as given."""

from __future__ import annotations

import errno
import json
import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from test_readers_upstream import _lab
from test_train_sessions import synthetic_session

from deepqoe.cli import main
from deepqoe.errors import DeepQoEError, DeepQoENote

torch.set_num_threads(1)


def _sessions(n: int, seed: int = 0, mos=None, contents: int | None = None) -> list[dict]:
    """``n`` synthetic 40-s sessions (10 chunks each, with quality) with their MOS on 1-5 (or ``mos``)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        d, m = synthetic_session(rng, f"s{i:03d}", f"clip{i % (contents or n)}")
        out.append({**d, "mos": round(m, 3) if mos is None else mos})
    return out


def _folder(root: Path, sessions: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for d in sessions:
        (root / f"{d['id']}.json").write_text(json.dumps(d))
    return root


def _config(root: Path, name: str = "c.yaml", **over) -> Path:
    cfg = {"sessions": {"datasets": [{"path": "s"}]}, "model": {"n_members": 1}, "training": {"epochs": 2},
           "evaluation": {"n_splits": 2}}
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    p = root / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def _error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ---- 1. bad session files: the first problem, and the others counted across files --------------------------
def test_bad_json_files_are_counted_across_files(tmp_path, capsys):
    s = _sessions(6)
    s[1]["segments"][2]["duration"] = -1          # a.json: two bad sessions
    s[2]["segments"][3]["duration"] = 0
    s[4]["segments"][1]["duration"] = -2          # c.json
    s[5]["segments"][1]["quality"] = 140          # d.json
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps({"sessions": s[:3]}))
    (folder / "b.json").write_text(json.dumps(s[3]))
    (folder / "c.json").write_text(json.dumps(s[4]))
    (folder / "d.json").write_text(json.dumps(s[5]))
    err = _error(capsys, ["train", str(_config(tmp_path)), "--out", str(tmp_path / "m")])
    assert f"file '{folder / 'a.json'}'" in err and "segments[2].duration" in err and "s001" in err  # the first, precisely
    assert "and 3 more problem(s) (1 in this file, 2 in 2 other file(s))" in err, err
    assert f"`deepqoe sessions validate {folder}` lists them all" in err
    assert not (tmp_path / "m").exists()


def test_a_waterloo_folder_counts_the_other_logs_as_other_files(tmp_path, capsys):
    """The audit's case: the second problem is in another log of streaming_logs/, not "in this file"."""
    folder = _lab(tmp_path / "s")
    for name, row in (("001.csv", 2), ("004.csv", 0)):
        log = pd.read_csv(folder / "streaming_logs" / name, dtype=str)
        log.loc[row, "chunk_duration"] = "x"
        log.to_csv(folder / "streaming_logs" / name, index=False)
    err = _error(capsys, ["train", str(_config(tmp_path)), "--out", str(tmp_path / "m")])
    assert f"file '{folder / 'streaming_logs' / '001.csv'}', column 'chunk_duration', row 3" in err, err
    assert "and 1 more problem(s) in 1 other file(s)" in err and "in this file" not in err, err


def test_problems_in_one_csv_are_in_this_file(tmp_path, capsys):
    rows = [{"session_id": f"s{i}", "start": 4.0 * j, "duration": 4.0, "bitrate_kbps": 2000, "height": 720,
             "quality": 50 + i, "mos": 3.0 + 0.1 * i, "content": f"c{i}"} for i in range(4) for j in range(3)]
    df = pd.DataFrame(rows)
    df.loc[4, "duration"] = -1.0     # s1
    df.loc[10, "duration"] = 0.0     # s3
    (tmp_path / "s").mkdir()
    df.to_csv(tmp_path / "s" / "lab.csv", index=False)
    err = _error(capsys, ["train", str(_config(tmp_path)), "--out", str(tmp_path / "m")])
    assert "'s1'" in err and "and 1 more problem(s) in this file;" in err and "other file" not in err, err


def test_a_single_problem_has_no_count(tmp_path):
    from deepqoe.config import SessionSource
    from deepqoe.workflow import read_session_source

    s = _sessions(3)
    s[1]["segments"][2]["duration"] = -1
    _folder(tmp_path / "s", s)
    with pytest.raises(DeepQoEError) as e:
        read_session_source(SessionSource(path="s"), str(tmp_path))
    assert e.value.file == str(tmp_path / "s" / "s001.json") and "more problem" not in e.value.message


def test_sessions_without_mos_are_counted(tmp_path, capsys):
    s = _sessions(5)
    for k in (1, 3, 4):
        del s[k]["mos"]
    _folder(tmp_path / "s", s)
    err = _error(capsys, ["train", str(_config(tmp_path)), "--out", str(tmp_path / "m")])
    assert "session 's001' has no 'mos'" in err and "and 2 more session(s) without one in 2 other file(s)" in err


# ---- 2. degenerate trainings get notes -------------------------------------------------------------------
def test_constant_mos_gives_null_correlations_and_a_note(tmp_path, capsys):
    _folder(tmp_path / "s", _sessions(4, mos=3.0))
    out = tmp_path / "m"
    assert main(["train", str(_config(tmp_path)), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert re.search(r"note: .*dataset 's': every one of its 4 sessions has the same score.*SROCC, PLCC and KROCC "
                     r"are undefined \(null in metrics.json\)", err), err
    assert "SROCC undefined" in err  # the summary line
    text = (out / "metrics.json").read_text()
    metrics = json.loads(text)
    for part in (metrics["train"]["s"], metrics["evaluation"]["scores"]["s"]):
        assert part["srocc"] is None and part["plcc"] is None and part["krocc"] is None
        assert isinstance(part["rmse"], float)
    assert "NaN" not in text


def test_one_flat_dataset_among_others_is_null_alone():
    from deepqoe.workflow import _scores_by_dataset

    y = np.array([3.0, 3.0, 3.0, 1.0, 2.0, 4.0])
    pred = np.array([2.9, 3.1, 3.0, 1.5, 2.0, 3.5])
    names = np.array(["flat"] * 3 + ["lab"] * 3)
    scores = _scores_by_dataset(y, pred, names)
    assert scores["flat"]["srocc"] is None and scores["lab"]["srocc"] == pytest.approx(1.0)
    assert scores["all"]["srocc"] is not None
    # the metrics module keeps its convention (0 for an undefined correlation) for its other callers
    from deepqoe.evaluation.metrics import regression_metrics

    assert regression_metrics(y[:3], pred[:3])["srocc"] == 0.0


def test_a_model_that_predicts_one_score_has_undefined_correlations():
    from deepqoe.workflow import _scores_by_dataset

    y = np.array([1.0, 2.0, 3.0, 4.0])
    scores = _scores_by_dataset(y, np.full(4, 3.2), np.array(["lab"] * 4))
    assert scores["lab"]["srocc"] is None and scores["lab"]["plcc"] is None and scores["lab"]["krocc"] is None
    assert scores["lab"]["rmse"] == pytest.approx(np.sqrt(np.mean((y - 3.2) ** 2)), rel=1e-6)


def test_a_kfold_on_three_sessions_says_what_it_rests_on(tmp_path, capsys):
    _folder(tmp_path / "s", _sessions(3))
    assert main(["train", str(_config(tmp_path, evaluation={"n_splits": 3})), "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"note: .*field 'evaluation.n_splits': the 3-fold score rests on 3 session\(s\), 1 test "
                     r"session\(s\) per fold", err), err
    assert "3-fold content-disjoint SROCC" in err


def test_the_kfold_note_counts_per_dataset_and_keeps_quiet_with_enough():
    from deepqoe.evaluation.protocols import Split
    from deepqoe.workflow import _note_few_kfold_sessions

    cfg = SimpleNamespace(path="c.yaml")

    def sets(*sizes):
        return [SimpleNamespace(name=f"d{k}", sessions=[None] * n) for k, n in enumerate(sizes)]

    def folds(n, k):
        idx = np.arange(n)
        return [Split(f"fold {i}", idx[idx % k != i], idx[idx % k == i]) for i in range(k)]

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepQoENote)
        _note_few_kfold_sessions(cfg, sets(40), folds(40, 5))
    with pytest.warns(DeepQoENote, match=r"the 5-fold score of 'd1' rests on 7 session\(s\), 1-2 test session\(s\)"):
        _note_few_kfold_sessions(cfg, sets(40, 7), folds(47, 5))


def test_a_quality_mapping_fitted_on_a_handful_of_sessions_is_said(tmp_path):
    from deepqoe.config import load_sessions_config
    from deepqoe.workflow import _session_quality_mapping

    _folder(tmp_path / "s", _sessions(3))
    _folder(tmp_path / "few", _sessions(3))
    _folder(tmp_path / "enough", _sessions(20, seed=1))
    cfg = load_sessions_config(_config(tmp_path, sessions={"quality_mapping": "few"}))
    with pytest.warns(DeepQoENote, match=r"field 'sessions.quality_mapping': the bitrate -> quality mapping is "
                                         r"fitted on 30 chunk\(s\) of 3 session\(s\) \(3 content\(s\)\), fewer than"
                                         r" 200 chunks of 20 sessions: the quality a bitrate buys depends on the clip"):
        _session_quality_mapping(cfg)
    cfg = load_sessions_config(_config(tmp_path, sessions={"quality_mapping": "enough"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepQoENote)
        _session_quality_mapping(cfg)


# ---- 3. the summary counts the whole training, k-fold included ---------------------------------------------
def test_the_summary_counts_the_kfold_too(tmp_path, capsys):
    from deepqoe.cli_models import duration

    _folder(tmp_path / "s", _sessions(4))
    out = tmp_path / "m"
    assert main(["train", str(_config(tmp_path)), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["kfold_seconds"] > 0 and m["total_seconds"] >= m["kfold_seconds"] + m["fit_seconds"]
    assert (f"in {duration(m['total_seconds'])} (k-fold {duration(m['kfold_seconds'])}, final fit "
            f"{duration(m['fit_seconds'])})") in err, err
    assert duration(210.4) == "3.5 min" and duration(52.84) == "52.8 s" and duration(7600) == "2.1 h"


# ---- 4. why a model has no intervals ----------------------------------------------------------------------
def test_no_interval_names_the_reason_of_this_model(tmp_path, capsys):
    _folder(tmp_path / "s", _sessions(3))
    none = _config(tmp_path, "none.yaml", evaluation={"protocol": "none"})
    assert main(["train", str(none), "--out", str(tmp_path / "none"), "-q"]) == 0
    assert json.loads((tmp_path / "none" / "metrics.json").read_text())["evaluation_skipped"] == \
        "evaluation.protocol: none"
    assert main(["train", str(_config(tmp_path, evaluation={"n_splits": 3})), "--out", str(tmp_path / "full"),
                 "--full", "-q"]) == 0
    capsys.readouterr()
    err = _error(capsys, ["predict", str(tmp_path / "none"), str(tmp_path / "s"), "--interval", "0.9"])
    assert "no prediction intervals" in err and "evaluation: {protocol: none}" in err and "--full" not in err, err
    err = _error(capsys, ["predict", str(tmp_path / "full"), str(tmp_path / "s"), "--interval", "0.9"])
    assert "no prediction intervals" in err and "trained with --full" in err and "protocol: none" not in err, err


def test_no_interval_of_a_table_model_says_calibration_fraction(tmp_path, capsys):
    from conftest import synthetic_table, write_config

    synthetic_table(60).to_csv(tmp_path / "t.csv", index=False)
    cfg = write_config(tmp_path, tmp_path / "t.csv", task="regression", evaluation={"calibration_fraction": 0},
                       training={"max_epochs": 2})
    assert main(["train", str(cfg), "--out", str(tmp_path / "m"), "-q"]) == 0
    capsys.readouterr()
    err = _error(capsys, ["predict", str(tmp_path / "m"), str(tmp_path / "t.csv"), "--interval", "0.8"])
    assert "no prediction intervals" in err and "evaluation.calibration_fraction 0" in err, err


# ---- 5. an --out where nothing can be created is named as given ----------------------------------------------
@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc here")
def test_out_in_proc_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import deepqoe.workflow as workflow

    def no_work(*a, **k):
        raise AssertionError("trained although --out cannot be written")

    monkeypatch.setattr(workflow, "train_sessions_config", no_work)
    _folder(tmp_path / "s", _sessions(3))
    err = _error(capsys, ["train", str(_config(tmp_path)), "--out", "/proc/m"])
    assert err.startswith("deepqoe: error: file '/proc/m': --out: cannot write here: '/proc'"), err
    assert ".deepqoe-tmp" not in err
    assert not [p for p in os.listdir("/proc") if p.startswith(".deepqoe-tmp")]


def test_a_refused_model_directory_names_the_target_not_its_temporary_folder(tmp_path, monkeypatch):
    """Whatever the check before the work missed, the save itself names the target."""
    import tempfile

    from deepqoe.io import atomic_directory

    def refuse(*a, dir=None, prefix="", **k):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", os.path.join(dir, prefix + "x"))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    target = tmp_path / "m"
    with pytest.raises(DeepQoEError) as e:
        with atomic_directory(target):
            raise AssertionError("no temporary folder was made")
    assert e.value.file == str(target) and ".deepqoe-tmp" not in str(e.value)
    assert "cannot create this folder" in e.value.message
