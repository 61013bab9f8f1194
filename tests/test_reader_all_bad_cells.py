"""A user audit: (1) a log of a Waterloo-SQoE-layout folder with several bad cells is one error naming every one
of them (file, column and row), not only the first; (2) batch scoring (``deepqoe predict --scheduler``) gives the
header hints ``deepqoe predict`` gives for a CSV of sessions, for every file of its input."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from test_readers_upstream import _lab

from deepqoe.cli import main
from deepqoe.datasets.waterloo_sqoe import load_waterloo_folder
from deepqoe.errors import DeepQoEError
from deepqoe.sessions.readers import load_sessions


# ------------------------------------------------------------------------------ 1. every bad cell of a log
def _spoil(folder: Path, name: str, cells: dict) -> Path:
    """Write text into cells of a log: ``{(column, row counted from 1): text}``."""
    f = folder / "streaming_logs" / name
    log = pd.read_csv(f, dtype=str)
    for (column, row), text in cells.items():
        log.loc[row - 1, column] = text
    log.to_csv(f, index=False)
    return f


def _bad_lab(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A folder of 6 sessions: 001.csv has five bad cells (non-numeric, negative, missing), 004.csv one."""
    folder = _lab(tmp_path / "lab")
    many = _spoil(folder, "001.csv", {("chunk_duration", 4): "x", ("rebuffering_duration", 2): "-3", ("vmaf", 5): "",
                                      ("video_bitrate", 2): "fast", ("width", 1): "n/a"})
    one = _spoil(folder, "004.csv", {("height", 3): "tall"})
    return folder, many, one


def _named(message: str) -> list[tuple[str, int]]:
    return [(c, int(r)) for c, r in re.findall(r"column '(\w+)', row (\d+)", message)]


def test_a_log_with_several_bad_cells_is_one_error_naming_every_cell(tmp_path):
    folder, many, one = _bad_lab(tmp_path)
    sessions, failures = load_sessions(folder)
    assert [s.id for s in sessions] == ["000", "002", "003", "005"]
    assert len(failures) == 2  # one per bad log, not one per cell
    e = failures[0]
    assert e.file == str(many) and (e.column, e.row) == ("width", 1)  # the first cell (in row order)
    assert _named(str(e)) == [("width", 1), ("rebuffering_duration", 2), ("video_bitrate", 2),
                              ("chunk_duration", 4), ("vmaf", 5)], str(e)
    assert "and 4 more bad cell(s) in this log" in e.message and "\n" not in str(e)
    assert "must not be negative (got -3)" in e.message and 'got "fast"' in e.message
    assert "got a missing value" in e.message and 'got "x"' in e.message
    # a single bad cell: the message as it always was
    assert str(failures[1]) == f"file '{one}', column 'height', row 3: expected a finite number, got \"tall\""
    # the dataset loader raises on the first bad log, with all its cells
    with pytest.raises(DeepQoEError) as ei:
        load_waterloo_folder(folder)
    assert str(ei.value) == str(e)


def test_the_list_of_bad_cells_is_capped(tmp_path):
    folder = _lab(tmp_path / "lab")
    cells = {(c, r): "?" for c in ("video_bitrate", "width", "height", "framerate", "vmaf") for r in range(1, 6)}
    f = _spoil(folder, "002.csv", cells)  # 25 bad cells
    _, failures = load_sessions(folder)
    assert len(failures) == 1 and failures[0].file == str(f)
    msg = str(failures[0])
    assert len(_named(msg)) == 20  # the first and 19 more named, the rest counted
    assert "(and 24 more bad cell(s) in this log: " in msg and msg.endswith("; and 5 more)")


def test_sessions_validate_and_train_count_bad_logs_not_cells(tmp_path, capsys):
    import yaml

    folder, many, one = _bad_lab(tmp_path)
    assert main(["sessions", "validate", str(folder)]) == 3  # partial: 4 sessions read
    out, err = capsys.readouterr()
    assert "4 valid session(s), 2 problem(s)" in out
    assert "2 session(s) or file(s) could not be read" in err
    listed = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(listed) == 2 and len(_named(listed[0])) == 5 and len(_named(listed[1])) == 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"sessions": {"datasets": [{"path": "lab"}]}, "model": {"n_members": 1},
                                   "training": {"epochs": 1}, "evaluation": {"protocol": "none"}}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "m"), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(_named(err)) == 5, err  # the first log's cells, all of them
    assert "and 1 more problem(s) in 1 other file(s)" in err and not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------ 2. batch scoring's header hints
ROWS = [{"session_id": f"s{i}", "start": 4.0 * k, "duration": 4.0, "bitrate_kbps": 2000, "height": 720}
        for i in range(3) for k in range(3)]


def _write(path: Path, how: str) -> Path:
    df = pd.DataFrame(ROWS)
    if how == "semicolon":
        df.to_csv(path, sep=";", index=False)
    elif how == "trailing comma":
        df.to_csv(path, index=False)
        path.write_text("".join(line + ",\n" for line in path.read_text().splitlines()))
    elif how in ("Session_id", " session_id"):
        df.rename(columns={"session_id": how}).to_csv(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


HINTS = {"semicolon": "is the file separated by ';'?", "trailing comma": "a comma at the end of each line?",
         "Session_id": 'the header has "Session_id" (capitals)',
         " session_id": 'the header has " session_id" (spaces around it)'}


@pytest.fixture(scope="module")
def predictor():
    pytest.importorskip("distributed")
    from deepqoe.predictor import load_predictor

    return load_predictor("streaming")


@pytest.fixture
def no_cluster(monkeypatch):
    """The headers are checked before a Dask cluster starts: starting one fails the test."""
    import deepqoe.dask_cluster

    def refuse(*a, **k):
        raise AssertionError("a Dask cluster was started for an input with a bad header")

    monkeypatch.setattr(deepqoe.dask_cluster, "dask_client", refuse)


@pytest.mark.parametrize("how", list(HINTS))
def test_batch_scoring_gives_predicts_hint_for_any_file_of_a_folder(tmp_path, predictor, no_cluster, how):
    from deepqoe.batch_scoring import score_batch

    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "a.csv", "good")
    bad = _write(folder / "b.csv", how)
    with pytest.raises(DeepQoEError) as ei:
        score_batch("streaming", folder, tmp_path / "out", predictor=predictor, workers=1, processes=False)
    assert ei.value.file == str(bad) and HINTS[how] in ei.value.message
    assert not (tmp_path / "out").exists()
    if how != " session_id":  # deepqoe predict strips the names (it reads each file whole); the same hint
        _, failures = load_sessions(bad)
        assert len(failures) == 1 and failures[0].message == ei.value.message


def test_batch_scoring_names_the_bad_parquet_partition(tmp_path, predictor, no_cluster):
    from deepqoe.batch_scoring import score_batch

    folder = tmp_path / "in"
    folder.mkdir()
    df = pd.DataFrame(ROWS)
    df.iloc[:4].to_parquet(folder / "part-0.parquet", index=False)
    df.iloc[4:].rename(columns={"session_id": "Session_id"}).to_parquet(folder / "part-1.parquet", index=False)
    with pytest.raises(DeepQoEError) as ei:
        score_batch("streaming", folder, tmp_path / "out", predictor=predictor, workers=1, processes=False)
    assert ei.value.file == str(folder / "part-1.parquet") and HINTS["Session_id"] in ei.value.message


def test_batch_scoring_cli_hint_and_csvs_with_different_headers(tmp_path, predictor, capsys, monkeypatch):
    from deepqoe import batch_scoring

    monkeypatch.setattr(batch_scoring, "LOCAL_PROCESSES", False)  # threads, were a cluster started
    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "a.csv", "good")
    bad = _write(folder / "b.csv", "semicolon")
    out = tmp_path / "out"
    argv = ["predict", "streaming", str(folder), "--out", str(out), "--scheduler", "local", "--workers", "1", "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"file '{bad}'" in err and HINTS["semicolon"] in err, err
    assert not out.exists()
    pd.DataFrame(ROWS).assign(quality=50.0).to_csv(bad, index=False)  # a good header, but not a.csv's
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"file '{bad}'" in err and "the header differs from that of a.csv" in err
    assert not out.exists()
