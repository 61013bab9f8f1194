"""The command line's conventions (issue 12, newcomer friction), for every command:

* data on standard output (parsed here as JSON / CSV), status lines on standard error, ``-q`` silences them;
* exit status: 0 ok, 1 input or data error, 2 usage error, 3 partial success (``deepqoe.cli.ExitCode``);
* every argument has help, every default shows in ``--help``, no raw reST in help text;
* ``deepqoe models`` (``--json``) describes each model from its model.json.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import synthetic_table, write_config
from deepqoe.cli import ExitCode, build_parser, main, subparsers_of
from deepqoe.persistence import PRETRAINED_DIR, read_model_meta

HAS_STREAMING = (PRETRAINED_DIR / "streaming" / "model.json").is_file()
HAS_UPEC = (PRETRAINED_DIR / "upec-qoe-lab" / "model.json").is_file()
needs_streaming = pytest.mark.skipif(not HAS_STREAMING, reason="no shipped streaming model in this build")
needs_upec = pytest.mark.skipif(not HAS_UPEC, reason="no shipped upec-qoe-lab model in this build")


def run(capsys, *argv) -> tuple[int, str, str]:
    """``deepqoe ARGV`` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _session(i: int, **kw) -> dict:
    d = {"id": f"s{i}", "segments": [{"start": 4 * k, "duration": 4, "bitrate_kbps": 800 + 900 * i,
                                      "height": [360, 720, 1080][i % 3]} for k in range(8)],
         "stalls": [[0, 1.0 + i]], "device": "mobile"}
    d.update(kw)
    return d


@pytest.fixture
def sessions(tmp_path) -> dict[str, Path]:
    """Session files: all good, one bad of three, all bad."""
    bad = _session(1)
    bad["segments"][2]["duration"] = 0
    files = {"good": [_session(0), _session(2)], "mixed": [_session(0), bad, _session(2)],
             "bad": [_session(0, device="fridge")]}
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name}.json"
        out[name].write_text(json.dumps(content))
    return out


# ---- help: every command, every argument ----------------------------------------------------------------
def _commands(parser: argparse.ArgumentParser, path: tuple = ()) -> list[tuple[tuple, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, p in a.choices.items():
                found += _commands(p, path + (name,))
    return found


COMMANDS = _commands(build_parser())
LEAVES = [(path, p) for path, p in COMMANDS if path and not subparsers_of(p)]
LEAVES_BY_NAME = {" ".join(path): p for path, p in LEAVES}


def test_the_tree_has_every_command():
    assert {"train", "evaluate", "predict", "embed", "models", "export", "finetune", "reproduce", "sessions convert",
            "sessions features", "sessions validate", "demo", "serve", "check-model"} <= set(LEAVES_BY_NAME)


@pytest.mark.parametrize("path,parser", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_argument_has_help_and_its_default_shows(path, parser):
    text = parser.format_help()
    assert "``" not in text and ":class:" not in text and ":mod:" not in text and ":func:" not in text, text
    options = {a.dest: a for a in parser._actions}
    assert "quiet" in options and "verbose" in options, f"{path}: no -q/-v"
    assert options["quiet"].option_strings == ["-q", "--quiet"]
    assert options["verbose"].option_strings == ["-v", "--verbose"]
    flat = " ".join(text.split())  # help text is wrapped
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            continue
        assert a.help and a.help.strip(), f"{path}: argument {a.dest} has no help"
        if a.default is None or a.default is False or a.default is argparse.SUPPRESS:
            continue
        assert f"default: {a.default}" in flat or f"default {a.default}" in flat, \
            f"{path}: the default of {a.dest} ({a.default!r}) is not in --help"


def test_root_help_documents_the_exit_codes():
    text = build_parser().format_help()
    for code in ExitCode:
        if code in (ExitCode.INTERRUPTED, ExitCode.BROKEN_PIPE):
            continue
        assert f"  {int(code)}  " in text, code
    assert "partial" in text and "usage" in text and "standard error" in text


def test_reproduce_help_states_the_recipe_defaults():
    from deepqoe.experiments.common import load_recipe

    nflx = load_recipe("streaming_live_nflx")
    text = " ".join(LEAVES_BY_NAME["reproduce"].format_help().split())
    assert f"run on (default: {nflx['neural_splits']['full']}; {nflx['neural_splits']['quick']} with --quick)" in text
    assert f"(default: {nflx['splits']['full']}; {nflx['splits']['quick']} with --quick)" in text



# ---- exit codes ----------------------------------------------------------------------------------------
def test_bare_command_prints_help_to_stderr_and_exits_2():
    r = subprocess.run([sys.executable, "-m", "deepqoe.cli"], capture_output=True, text=True, timeout=120)
    assert r.returncode == ExitCode.USAGE == 2
    assert r.stdout == "" and "usage: deepqoe" in r.stderr and "exit status" in r.stderr


def test_bare_group_and_usage_errors_exit_2(capsys, tmp_path):
    code, out, err = run(capsys, "sessions")
    assert code == 2 and out == "" and "usage: deepqoe sessions" in err
    with pytest.raises(SystemExit) as e:
        main(["predict", "streaming", "x.json", "--no-such-option"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:  # --out and --json: one or the other
        main(["predict", "streaming", "x.json", "--out", str(tmp_path / "p.csv"), "--json"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["predict", "streaming", "x.json", "-q", "-v"])
    assert e.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_data_error_is_one_line_exit_1_and_verbose_adds_the_traceback(tmp_path):
    cmd = [sys.executable, "-m", "deepqoe.cli", "predict", str(tmp_path / "no-model"), str(tmp_path / "x.csv")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == ExitCode.DATA_ERROR == 1
    assert r.stdout == "" and r.stderr.startswith("deepqoe: error:") and r.stderr.count("\n") == 1
    r = subprocess.run(cmd + ["-v"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr and "DeepQoEError" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("deepqoe: error:")


def test_an_unknown_extractor_is_a_usage_error_with_a_hint(capsys, tmp_path):
    code, out, err = run(capsys, "extract", tmp_path / "x.mp4", "-e", "vmaf", "--out", tmp_path / "f.parquet")
    assert code == 2 and out == ""
    assert "did you mean 'full-reference'" in err and err.count("\n") == 1
    code, _, err = run(capsys, "extract", tmp_path / "x.mp4", "-e", "sitti", "--out", tmp_path / "f.parquet")
    assert code == 2 and "did you mean 'siti'" in err


# ---- session commands ----------------------------------------------------------------------------------
@needs_streaming
def test_predict_sessions_stdout_is_data_and_partial_is_3(capsys, sessions, tmp_path):
    code, out, err = run(capsys, "predict", "streaming", sessions["good"], "--json")
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert [r["id"] for r in rows] == ["s0", "s2"] and all(1 <= r["score"] <= 5 for r in rows)

    code, out, err = run(capsys, "predict", "streaming", sessions["mixed"], "--json")
    assert code == ExitCode.PARTIAL == 3
    assert [r["id"] for r in json.loads(out)] == ["s0", "s2"]  # stdout parses: nothing else is in it
    assert "s1" in err and "segments[2].duration" in err

    code, out, err = run(capsys, "predict", "streaming", sessions["mixed"])  # the table
    assert code == 3 and out.splitlines()[0].split()[:3] == ["id", "score", "scale"] and len(out.splitlines()) == 3

    code, out, err = run(capsys, "predict", "streaming", sessions["bad"])
    assert code == 1 and out == "" and "device" in err

    dest = tmp_path / "scores.csv"
    code, out, err = run(capsys, "predict", "streaming", sessions["good"], "--out", dest)
    assert code == 0 and out == "" and f"written to {dest}" in err
    assert list(pd.read_csv(dest)["id"]) == ["s0", "s2"]
    code, out, err = run(capsys, "predict", "streaming", sessions["mixed"], "--out", dest, "-q")
    assert code == 3 and out == "" and "written to" not in err  # -q: no status; the failures still show
    assert "s1" in err


def test_sessions_validate_convert_features(capsys, sessions, tmp_path):
    code, out, err = run(capsys, "sessions", "validate", sessions["good"], "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["valid"] == 2 and doc["invalid"] == 0 and doc["ids"] == ["s0", "s2"]
    code, out, err = run(capsys, "sessions", "validate", sessions["mixed"], "--json")
    doc = json.loads(out)
    assert code == 3 and doc["valid"] == 2 and doc["invalid"] == 1 and "segments[2].duration" in doc["problems"][0]
    code, out, err = run(capsys, "sessions", "validate", sessions["mixed"])
    assert code == 3 and out.strip() == "2 valid session(s), 1 problem(s)" and "s1" in err
    code, out, err = run(capsys, "sessions", "validate", sessions["bad"])
    assert code == 1 and "no session could be read" in err

    conv = tmp_path / "conv.json"
    code, out, err = run(capsys, "sessions", "convert", sessions["good"], "--out", conv)
    assert code == 0 and out == "" and str(conv) in err
    code, out, err = run(capsys, "sessions", "convert", sessions["good"], "--out", conv, "-q")
    assert code == 0 and out == "" and err == ""
    feats = tmp_path / "f.csv"
    code, out, err = run(capsys, "sessions", "features", sessions["mixed"], "--out", feats)
    assert code == 3 and out == "" and str(feats) in err and len(pd.read_csv(feats)) == 2


def test_embed_sessions_with_a_network_session_model(capsys, sessions, frame_session_model_dir):
    code, out, err = run(capsys, "embed", frame_session_model_dir, sessions["mixed"])
    assert code == 3 and "s1" in err
    rep = pd.read_csv(io.StringIO(out))
    assert list(rep["id"]) == ["s0", "s2"] and rep.columns[1] == "r0" and rep.shape[1] > 2


@needs_streaming
def test_embed_with_the_streaming_model_writes_its_representation(capsys, sessions):
    from deepqoe.persistence import load_model

    code, out, err = run(capsys, "embed", "streaming", sessions["good"])
    assert code == 0
    rep = pd.read_csv(io.StringIO(out))
    m = load_model("streaming")
    assert rep.shape[1] == 1 + m.n_members * m.representation_width and rep.columns[0] == "id"
    assert np.isfinite(rep.iloc[:, 1:].to_numpy()).all() and (rep.iloc[:, 1:].abs() <= 1).all().all()


# ---- models --------------------------------------------------------------------------------------------
@pytest.mark.skipif(not (HAS_STREAMING or HAS_UPEC), reason="no shipped model in this build")
def test_models_json_fields_come_from_model_json(capsys):
    code, out, err = run(capsys, "models", "--json")
    assert code == 0 and err == ""
    listed = {m["name"]: m for m in json.loads(out)}
    shipped = sorted(d.name for d in PRETRAINED_DIR.iterdir() if (d / "model.json").is_file())
    assert sorted(listed) == shipped
    for name, m in listed.items():
        meta = read_model_meta(PRETRAINED_DIR / name)
        assert set(m) >= {"name", "task", "inputs", "scale", "trained_on", "headline"}
        assert m["task"] == meta["task"]
        assert m["headline"]["metric"] == meta["evaluation"]["key_metric"]
        if meta.get("session_model") is not None:
            assert m["inputs"] == "sessions" and m["scale"] == meta["session_model"].get("scale", "1-5")
            assert m["trained_on"] == meta["metrics"]["datasets"]
            assert m["headline"]["per_dataset"] == {d: s[meta["evaluation"]["key_metric"]] for d, s in
                                                    meta["evaluation"]["scores"]["deepqoe"].items()}
        else:
            assert m["inputs"] == [i.get("name") or i["column"] for i in meta["inputs"]]
            assert m["trained_on"] == {meta["dataset"]["name"]: meta["metrics"]["n_train"]}
            key = meta["evaluation"]["key_metric"]
            assert m["headline"]["mean"] == meta["evaluation"]["scores"]["deepqoe"][key]["mean"]
    code, out, _ = run(capsys, "models")
    for name, m in listed.items():
        block = out.split(f"{name}:", 1)[1]
        assert "inputs:" in block and "trained on:" in block and m["headline"]["metric"] in block


# ---- table models: train, evaluate, predict, embed, export ---------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(config, table, model dir) of a small classifier on the synthetic table."""
    d = tmp_path_factory.mktemp("conventions")
    csv = d / "data.csv"
    synthetic_table(120).to_csv(csv, index=False)
    cfg = write_config(d, csv, training={"max_epochs": 3, "patience": 3},
                       evaluation={"n_splits": 2, "baselines": ["majority"]})
    model = d / "model"
    assert main(["train", str(cfg), "--out", str(model), "-q"]) == 0
    return cfg, csv, model


def test_train_status_on_stderr_json_on_stdout(capsys, trained, tmp_path):
    cfg, _, _ = trained
    out_dir = tmp_path / "m"
    code, out, err = run(capsys, "train", cfg, "--out", out_dir, "--json")
    assert code == 0
    assert json.loads(out) == json.loads((out_dir / "metrics.json").read_text())
    assert "trained on" in err and f"model saved to {out_dir}" in err and "\r" not in err
    code, out, err = run(capsys, "train", cfg, "--out", out_dir)
    assert code == 0 and out == "" and "model saved to" in err
    code, out, err = run(capsys, "train", cfg, "--out", out_dir, "-q")
    assert code == 0 and out == "" and err == ""
    code, _, err = run(capsys, "train", cfg, "--out", out_dir, "--epochs", "0")
    assert code == 2 and "--epochs" in err


def test_evaluate_table_or_json_on_stdout(capsys, trained, tmp_path):
    cfg, _, _ = trained
    code, out, err = run(capsys, "evaluate", cfg, "--json", "--epochs", "2")
    assert code == 0 and "\r" not in err  # no progress bar: stderr is not a terminal
    res = json.loads(out)
    assert set(res["methods"]) == {"deepqoe", "majority"} and "_pooled" not in res
    dest = tmp_path / "r.json"
    code, out, err = run(capsys, "evaluate", cfg, "--epochs", "2", "--out", dest, "--plots", tmp_path / "plots")
    assert code == 0 and out.splitlines()[0].split()[0] == "method" and len(out.splitlines()) == 3
    assert f"results written to {dest}" in err and "plot written to" in err
    assert json.loads(dest.read_text())["methods"].keys() == res["methods"].keys()
    code, out, err = run(capsys, "evaluate", cfg, "--epochs", "2", "-q")
    assert code == 0 and err == "" and out.startswith("method")


def test_predict_and_embed_tables(capsys, trained, tmp_path):
    _, csv, model = trained
    code, out, err = run(capsys, "predict", model, csv)
    assert code == 0 and err == ""
    pred = pd.read_csv(io.StringIO(out))
    assert len(pred) == 120 and list(pred.columns[:3]) == ["row", "id", "score"]
    code, out, err = run(capsys, "predict", model, csv, "--json")
    records = json.loads(out)
    assert code == 0 and len(records) == 120 and records[0]["score"] == pred["score"][0]
    dest = tmp_path / "p.parquet"
    code, out, err = run(capsys, "predict", model, csv, "--out", dest)
    assert code == 0 and out == "" and f"120 rows written to {dest}" in err
    code, out, err = run(capsys, "predict", model, csv, "--out", dest, "--quiet")
    assert code == 0 and out == "" and err == ""
    code, out, err = run(capsys, "predict", model, tmp_path)  # a folder, to a table model
    assert code == 1 and out == "" and "is a folder" in err and "streaming sessions" not in err
    code, out, err = run(capsys, "predict", model, csv, "--scale", "0-100")
    assert code == 2 and "--scale" in err

    code, out, err = run(capsys, "embed", model, csv)
    assert code == 0 and err == ""
    rep = pd.read_csv(io.StringIO(out))
    assert list(rep.columns[:3]) == ["row", "id", "r0"] and len(rep) == 120
    code, out, _ = run(capsys, "embed", model, csv, "--json")
    assert code == 0 and len(json.loads(out)) == 120


def test_export_status_on_stderr(capsys, trained, tmp_path):
    pytest.importorskip("onnx")
    _, _, model = trained
    dest = tmp_path / "m.onnx"
    code, out, err = run(capsys, "export", model, "--onnx", dest)
    assert code == 0 and out == "" and f"ONNX model written to {dest}" in err and dest.is_file()
    code, out, err = run(capsys, "export", model, "--onnx", dest, "-q")
    assert code == 0 and out == "" and err == ""


@needs_streaming
def test_check_model_quiet(capsys):
    code, out, err = run(capsys, "check-model", "streaming", "--n-sessions", "10", "--json", "-q")
    assert code in (0, 1) and err == ""
    assert json.loads(out)["model"] == "streaming"


@needs_streaming
def test_bad_scale_is_a_usage_error_and_a_dropped_interval_is_said(capsys, sessions):
    """``--scale abc`` is a bad option value (exit 2); a ``--calibration`` without an interval of its own gives
    no interval by default and says why on standard error (not on stdout), naming the datasets that have one."""
    code, out, err = run(capsys, "predict", "streaming", sessions["good"], "--scale", "abc")
    assert code == 2 and out == "" and "--scale" in err and "abc" in err
    code, out, err = run(capsys, "predict", "streaming", sessions["good"], "--calibration", "lfovia-qoe", "--json")
    assert code == 0 and all("interval" not in r for r in json.loads(out))
    assert "no interval" in err and "'lfovia-qoe'" in err and "p1203-open" in err and len(err.splitlines()) == 1
    code, out, err = run(capsys, "predict", "streaming", sessions["good"], "--calibration", "lfovia-qoe", "-q")
    assert code == 0 and err == ""
    code, out, err = run(capsys, "predict", "streaming", sessions["good"], "--calibration", "lfovia-qoe",
                         "--interval", "0.9")
    assert code == 1 and "has them for" in err and "drop the calibration" in err


@needs_upec
def test_decimal_comma_table_names_the_bad_value(capsys, tmp_path):
    """In a table read with decimal ',', a column with one non-number names that value and its row, not the
    first comma number beside it (pandas leaves the whole column as text)."""
    from conftest import real_data

    src = real_data("upec-qoe-lab", "QoEcontrolledLab.csv")
    df = pd.read_csv(src, sep=";", decimal=",").head(4)
    df["bitrate_video"] = df["bitrate_video"].astype(object)
    df.loc[1, "bitrate_video"] = 891.33
    df.loc[2, "bitrate_video"] = "fast"
    df.to_csv(tmp_path / "rows.csv", sep=";", decimal=",", index=False)
    code, out, err = run(capsys, "predict", "upec-qoe-lab", tmp_path / "rows.csv")
    assert code == 1 and "column 'bitrate_video', row 3" in err and "'fast'" in err
    df.loc[2, "bitrate_video"] = 300.5
    df.to_csv(tmp_path / "rows.csv", sep=";", decimal=",", index=False)
    code, out, err = run(capsys, "predict", "upec-qoe-lab", tmp_path / "rows.csv")
    assert code == 0 and len(pd.read_csv(io.StringIO(out))) == 4


def test_outputs_never_replace_a_file_or_someones_folder(capsys, trained, tmp_path):
    """``train --out`` replaces an old model directory, or fills a new or empty folder, but refuses a file and a
    folder of other files (before any training); a file output under a file, or onto a folder, is one line."""
    cfg, csv, model = trained
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    (tmp_path / "f.json").write_text("{}")
    code, out, err = run(capsys, "train", cfg, "--out", mine)
    assert code == 1 and "is not a deepqoe model directory" in err and "training" not in err
    assert (mine / "notes.txt").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    code, out, err = run(capsys, "train", cfg, "--out", tmp_path / "f.json")
    assert code == 1 and "not a folder" in err and (tmp_path / "f.json").read_text() == "{}"
    (tmp_path / "empty").mkdir()
    assert run(capsys, "train", cfg, "--out", tmp_path / "empty", "-q")[0] == 0
    assert (tmp_path / "empty" / "model.json").is_file()
    assert run(capsys, "train", cfg, "--out", tmp_path / "empty", "-q")[0] == 0  # a model directory: replaced
    code, out, err = run(capsys, "predict", model, csv, "--out", tmp_path / "f.json" / "p.csv")
    assert code == 1 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "p.csv").mkdir()
    code, out, err = run(capsys, "predict", model, csv, "--out", tmp_path / "p.csv")
    assert code == 1 and "is a folder; give a file name" in err


def test_bad_option_values_are_usage_errors(capsys, sessions, tmp_path):
    """Out-of-range ``--length``, an output suffix the command does not write, an ``--opset`` outside what the
    networks and torch support, ``--n-sessions 0``: exit 2, nothing written."""
    good = sessions["good"]
    code, _, err = run(capsys, "sessions", "features", good, "--out", tmp_path / "f.csv", "--series",
                       tmp_path / "s.npz", "--length", "-3")
    assert code == 2 and "--length" in err and not (tmp_path / "f.csv").exists()
    code, _, err = run(capsys, "sessions", "features", good, "--out", tmp_path / "f.txt")
    assert code == 2 and ".csv" in err
    code, _, err = run(capsys, "sessions", "convert", good, "--out", tmp_path / "c.txt")
    assert code == 2 and ".json" in err and not (tmp_path / "c.txt").exists()
    if HAS_STREAMING:
        code, _, err = run(capsys, "export", "streaming", "--onnx", tmp_path / "m.onnx", "--opset", "5")
        assert code == 2 and "--opset must be 11 to" in err and len(err.strip().splitlines()) == 1
        code, _, err = run(capsys, "check-model", "streaming", "--n-sessions", "0")
        assert code == 2 and "--n-sessions" in err


@needs_streaming
def test_a_note_on_the_input_is_one_status_line(capsys, tmp_path):
    """A stall just after the end of the media is moved to the end with a note: one line on standard error
    (``deepqoe: note: ...`` naming the file, field and session, no Python warning format), hidden by -q."""
    s = _session(0)
    s["stalls"] = [[32.4, 1.0]]  # 32 s of media
    f = tmp_path / "late.json"
    f.write_text(json.dumps([s]))
    code, out, err = run(capsys, "predict", "streaming", f, "--json")
    assert code == 0 and json.loads(out)[0]["id"] == "s0"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepqoe: note: file ") and "stalls[0].start" in lines[0]
    assert "moved to the end" in lines[0] and "Warning" not in err
    code, out, err = run(capsys, "predict", "streaming", f, "--json", "-q")
    assert code == 0 and err == ""


def test_report_folders_are_never_someone_elses(capsys, tmp_path, monkeypatch):
    """``demo --out`` and ``reproduce --out`` write into a new or empty folder, or an earlier run's, and refuse a
    folder of other files before any work (nothing in it touched); ``demo`` refuses the current folder."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.html").write_text("mine")
    code, out, err = run(capsys, "demo", "--out", theirs, "--no-data")
    assert code == 1 and "not a deepqoe demo report folder" in err and (theirs / "report.html").read_text() == "mine"
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "demo", "--out", "", "--no-data")
    assert code == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["theirs"]
    code, out, err = run(capsys, "reproduce", "shallow", "--out", theirs)
    assert code == 1 and "not a deepqoe reproduce folder" in err and sorted(p.name for p in theirs.iterdir()) == [
        "report.html"]


def test_more_bad_option_values(capsys, tmp_path, monkeypatch):
    """check-model's --seed and --n-sessions bounds, --workers bounds, an output suffix embed does not write: exit
    2; a data directory that is a file: one line, exit 1 (not a line per missing file)."""
    if HAS_STREAMING:
        assert run(capsys, "check-model", "streaming", "--seed", "-1")[0] == 2
        assert run(capsys, "check-model", "streaming", "--n-sessions", "100000000")[0] == 2
        code, _, err = run(capsys, "predict", "streaming", tmp_path, "--scheduler", "local", "--workers", "100000",
                           "--out", tmp_path / "o")
        assert code == 2 and "--workers must be 1 to" in err
    if HAS_UPEC:
        rows = tmp_path / "rows.csv"
        pd.DataFrame({"content": ["News"], "resolution": [720], "bitrate_video": [1000.0], "age_user": [30],
                      "sex_user": ["men"]}).to_csv(rows, sep=";", index=False)
        code, _, err = run(capsys, "embed", "upec-qoe-lab", rows, "--out", tmp_path / "e.xyz")
        assert code == 2 and ".parquet" in err and not (tmp_path / "e.xyz").exists()
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("DEEPQOE_DATA", str(tmp_path / "afile"))
    code, _, err = run(capsys, "datasets", "verify")
    assert code == 1 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1


def test_unseen_categories_are_said(capsys, trained, tmp_path):
    """A categorical value the training data did not have is read as the unknown category, and predict says so
    on standard error (how many rows, a few values); -q hides it, stdout stays data."""
    _, csv, model = trained
    df = pd.read_csv(csv).head(6)
    df.loc[[1, 4], "resolution"] = 2160
    df.to_csv(tmp_path / "rows.csv", index=False)
    code, out, err = run(capsys, "predict", model, tmp_path / "rows.csv")
    assert code == 0 and len(pd.read_csv(io.StringIO(out))) == 6
    assert "2 of 6 row(s) have a value of 'resolution' not seen in training (e.g. 2160)" in err
    code, out, err = run(capsys, "predict", model, tmp_path / "rows.csv", "-q")
    assert code == 0 and err == ""
