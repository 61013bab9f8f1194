"""What a user's own session files meet on the way to `deepqoe train` (a user audit, 2026-12-07): the entry's
`scale:` read for files without `mos_scale`, notes where a Waterloo-layout folder's scale is a guess, a
clipped VMAF said, explicit NaN text refused in a CSV of sessions, a model directory with someone's files in
it not replaced, and CSV header mistakes named."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_readers_upstream import _lab

from deepqoe.config import SessionSource
from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.io import atomic_directory, check_output_dir
from deepqoe.sessions.readers import load_sessions
from deepqoe.workflow import read_session_source


def _csv(path: Path, mos: list[float], **cols) -> Path:
    rows = []
    for i, m in enumerate(mos):
        for j in range(3):
            rows.append({"session_id": f"s{i:03d}", "start": 4.0 * j, "duration": 4.0, "bitrate_kbps": 2000,
                         "width": 1280, "height": 720, "fps": 30, "quality": 40 + 5 * i, "stall_before": 0,
                         "mos": m, "content": f"c{i % 3}", **cols})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _json(path: Path, mos: list[float]) -> Path:
    items = [{"id": f"j{i}", "mos": m, "content": f"c{i % 3}",
              "segments": [{"start": 0, "duration": 4, "quality": 40 + 5 * i}]} for i, m in enumerate(mos)]
    path.write_text(json.dumps({"sessions": items}))
    return path


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_the_entry_scale_is_the_scale_of_files_without_mos_scale(tmp_path, kind):
    mos = [13.75, 40.0, 62.5, 80.0, 95.0, 51.0]
    f = _csv(tmp_path / "s.csv", mos) if kind == "csv" else _json(tmp_path / "s.json", mos)
    # without the entry's scale a 0-100 score is outside the default 1-5: one error naming the file
    with pytest.raises(DeepQoEError) as e:
        read_session_source(SessionSource(path=str(f)))
    assert e.value.file == str(f) and "outside the scale 1-5" in e.value.message
    got = read_session_source(SessionSource(path=str(f), scale="0-100"))
    np.testing.assert_allclose(got.y, 1 + 4 * np.asarray(mos) / 100)  # 0-100 put on 1-5
    # a score outside the entry's scale is still refused, naming the file
    bad = _csv(tmp_path / "b.csv", [*mos[:-1], 130.0]) if kind == "csv" else _json(tmp_path / "b.json", [*mos[:-1], 130.0])
    with pytest.raises(DeepQoEError) as e:
        read_session_source(SessionSource(path=str(bad), scale="0-100"))
    assert e.value.file == str(bad) and "outside the scale 0-100" in e.value.message


def test_the_entry_scale_overrides_a_files_own_mos_scale(tmp_path):
    f = _csv(tmp_path / "s.csv", [20.0, 40.0, 60.0, 80.0], mos_scale="1-5")  # mislabelled: the entry says 0-100
    got = read_session_source(SessionSource(path=str(f), scale="0-100"))
    np.testing.assert_allclose(got.y, [1.8, 2.6, 3.4, 4.2])
    sessions, failures = load_sessions(f, mos_scale="0-100")
    assert not failures and {s.mos_scale for s in sessions} == {"0-100"}


def test_a_waterloo_folder_whose_scale_is_a_guess_says_so(tmp_path):
    folder = _lab(tmp_path / "lab")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepQoENote)  # 0-100 scores: no note
        sessions, _ = load_sessions(folder)
    assert {s.mos_scale for s in sessions} == {"0-100"}
    data = pd.read_csv(folder / "data.csv")
    data.loc[1, "mos"] = 150.0  # a typo makes the folder a z-scored one
    data.to_csv(folder / "data.csv", index=False)
    with pytest.warns(DeepQoENote, match=r"data.csv: column 'mos', row 2: 150 is outside 0-100, so every mos"):
        sessions, _ = load_sessions(folder)
    assert {s.mos_scale for s in sessions} == {"z"}
    with warnings.catch_warnings():  # the entry's scale: no guess, and the typo is an error
        warnings.simplefilter("error", DeepQoENote)
        sessions, failures = load_sessions(folder, mos_scale="0-100")
    assert len(failures) == 1 and "150" in failures[0].message and len(sessions) == 5
    data["mos"] = np.linspace(1.2, 4.8, len(data))  # 1-5 ratings in a 0-100 layout
    data.to_csv(folder / "data.csv", index=False)
    with pytest.warns(DeepQoENote, match=r"every mos is within 0-5 \(1.2-4.8\).*scale: 1-5"):
        load_sessions(folder)
    got = read_session_source(SessionSource(path=str(folder), scale="1-5"))
    np.testing.assert_allclose(got.y, data["mos"])


def test_a_clipped_vmaf_in_a_waterloo_log_is_said(tmp_path):
    folder = _lab(tmp_path / "lab")
    log = pd.read_csv(folder / "streaming_logs" / "002.csv")
    log.loc[3, "vmaf"], log.loc[4, "vmaf"] = 150.0, -3.0
    log.to_csv(folder / "streaming_logs" / "002.csv", index=False)
    with pytest.warns(DeepQoENote, match=r"002.csv: column 'vmaf', row 4: 150 is outside 0-100 \(1 more in this "
                                         r"log\); clipped to 0-100"):
        sessions, failures = load_sessions(folder)
    assert not failures
    s = next(s for s in sessions if s.id == "002")
    assert s.quality[3] == 100 and s.quality[4] == 0


@pytest.mark.parametrize("column,text", [("stall_before", "NaN"), ("quality", "N/A"), ("bitrate_kbps", "null"),
                                         ("quality", "#N/A")])
def test_nan_text_in_a_csv_of_sessions_is_refused_naming_row_and_column(tmp_path, column, text):
    f = _csv(tmp_path / "s.csv", [3.0, 4.0])
    df = pd.read_csv(f, dtype=str, keep_default_na=False)
    df.loc[4, column] = text  # session s001's second segment
    df.to_csv(f, index=False)
    sessions, failures = load_sessions(f)
    assert [s.id for s in sessions] == ["s000"]
    assert len(failures) == 1 and failures[0].column == column and failures[0].row == 5
    assert f'got text "{text}"' in failures[0].message


def test_an_empty_cell_is_still_missing(tmp_path):
    f = _csv(tmp_path / "s.csv", [3.0, 4.0])
    df = pd.read_csv(f, dtype=str, keep_default_na=False)
    df.loc[4, "quality"] = ""
    df.loc[:, "stall_before"] = ""
    df.to_csv(f, index=False)
    sessions, failures = load_sessions(f)
    assert not failures and len(sessions) == 2
    assert np.isnan(sessions[1].quality[1]) and len(sessions[1].stall_start) == 0


def test_a_model_directory_holding_someone_elses_files_is_not_replaced(tmp_path):
    d = tmp_path / "model"
    with atomic_directory(d) as tmp:
        (tmp / "model.json").write_text("{}")
        (tmp / "intervals.json").write_text("{}")
    check_output_dir(d)  # a model directory: may be replaced
    (d / "NOTES.md").write_text("my notes")
    (d / "plots").mkdir()
    with pytest.raises(DeepQoEError) as e:
        check_output_dir(d)
    assert e.value.file == str(d) and "also holds other files (NOTES.md, plots/)" in e.value.message
    with pytest.raises(DeepQoEError):
        with atomic_directory(d) as tmp:
            (tmp / "model.json").write_text("{}")
    assert (d / "NOTES.md").read_text() == "my notes" and (d / "intervals.json").exists()


def test_a_demo_or_batch_folder_keeps_its_own_rule(tmp_path):
    d = tmp_path / "scored"
    d.mkdir()
    (d / "part-0.parquet").write_text("x")
    (d / "README.txt").write_text("x")
    check_output_dir(d, "part-*.parquet", "a folder of scored partitions")  # not a model directory


def test_csv_header_mistakes_are_named(tmp_path):
    f = _csv(tmp_path / "s.csv", [3.0, 4.0])
    pd.read_csv(f).to_csv(tmp_path / "semi.csv", sep=";", index=False)
    _, failures = load_sessions(tmp_path / "semi.csv")
    assert "is the file separated by ';'?" in failures[0].message
    text = f.read_text().splitlines()
    (tmp_path / "trailing.csv").write_text("\n".join(line + "," for line in text) + "\n")
    _, failures = load_sessions(tmp_path / "trailing.csv")
    assert "a comma at the end of each line?" in failures[0].message


def test_sessions_validate_checks_the_scale_a_training_entry_would(tmp_path, capsys):
    from deepqoe.cli import main

    f = _csv(tmp_path / "s.csv", [13.75, 40.0, 130.0])
    assert main(["sessions", "validate", str(f)]) != 0           # 1-5 by default: all three are outside
    assert "3 problem(s)" in capsys.readouterr().out
    assert main(["sessions", "validate", str(f), "--mos-scale", "0-100"]) != 0   # only 130 is outside 0-100
    out = capsys.readouterr()
    assert "2 valid session(s), 1 problem(s)" in out.out and "130 is outside the scale 0-100" in out.err
    assert main(["sessions", "validate", str(f), "--mos-scale", "1-"]) == 2     # a bad scale: a usage error
