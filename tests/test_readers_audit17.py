"""Session readers and writers (a user audit, 17): numeric representations through the CSV layout, a session id
used on two blocks of a CSV's rows, a session JSON with a byte-order mark, and the same id in two JSON files."""

from __future__ import annotations

import json

import pandas as pd

from deepqoe.sessions.readers import load_sessions
from deepqoe.sessions.session import Session


def _session(sid: str, reps: list) -> dict:
    return {"id": sid, "device": "pc", "segments": [
        {"start": 4.0 * i, "duration": 4.0, "bitrate_kbps": 1000 + 500 * i, "height": 720, "representation": r}
        for i, r in enumerate(reps)]}


def test_numeric_representations_survive_the_csv_layout_and_a_mix_names_its_segment(tmp_path, capsys):
    from deepqoe.cli import main

    nums, text = _session("nums", [0, 1, 1, 3, 2.5]), _session("text", ["007", "007", "7", "r1"])
    mixed = _session("mixed", [1, "1", 2])  # two ids that the CSV's text would make one
    src = tmp_path / "in.json"
    src.write_text(json.dumps({"sessions": [nums, text, mixed]}))
    capsys.readouterr()
    assert main(["sessions", "convert", str(src), "--out", str(tmp_path / "s.csv")]) == 3
    err = capsys.readouterr().err
    assert "session 'nums'" not in err and "session 'text'" not in err
    assert "session 'mixed'" in err and "'segments[1].representation'" in err
    assert pd.read_csv(tmp_path / "s.csv", dtype=str)["representation"].tolist() == [
        "0", "1", "1", "3", "2.5", "007", "007", "7", "r1"]
    for out in ("s.csv", "s.parquet"):
        if out.endswith(".parquet"):
            assert main(["sessions", "convert", str(src), "--out", str(tmp_path / out), "-q"]) == 3
        back, failures = load_sessions(tmp_path / out)
        assert not failures and [s.id for s in back] == ["nums", "text"]
        assert back[0].representation == ["0", "1", "1", "3", "2.5"]
        assert back[1].representation == ["007", "007", "7", "r1"]  # text ids are read as written
        for b, d in zip(back, (nums, text)):
            assert b.switches().tolist() == Session.from_dict(d).switches().tolist()


def _rows(sid: str, n: int, device: str = "pc") -> list[dict]:
    return [{"session_id": sid, "start": 4.0 * j, "duration": 4.0, "bitrate_kbps": 1000, "device": device}
            for j in range(n)]


def test_a_session_id_on_two_blocks_of_rows_is_named_as_used_twice(tmp_path):
    rows = _rows("csv-1", 3) + _rows("csv-205", 4) + _rows("csv-2", 2) + _rows("csv-205", 3, device="mobile")
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    sessions, failures = load_sessions(tmp_path / "s.csv")
    assert [s.id for s in sessions] == ["csv-1", "csv-205", "csv-2"]
    assert sessions[1].n_segments == 4 and sessions[1].device == "pc"  # the first block
    assert len(failures) == 1
    e = failures[0]
    assert (e.column, e.row) == ("session_id", 10) and e.file.endswith("s.csv")
    assert "session id 'csv-205' is used twice: rows 4-7 and 10-12" in e.message
    # the same segments again further down (a file appended twice): not "out of order or overlap"
    rows = _rows("a", 2) + _rows("b", 2) + _rows("a", 2)
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    sessions, failures = load_sessions(tmp_path / "t.csv")
    assert [s.id for s in sessions] == ["a", "b"] and len(failures) == 1
    assert "used twice: rows 1-2 and 5-6" in failures[0].message and "overlap" not in failures[0].message


def test_a_session_json_with_a_byte_order_mark_is_read(tmp_path):
    f = tmp_path / "bom.json"
    f.write_text(json.dumps(_session("bom", [0, 1])), encoding="utf-8-sig")
    sessions, failures = load_sessions(f)
    assert not failures and [s.id for s in sessions] == ["bom"]


def test_the_same_id_in_two_json_files_names_both(tmp_path):
    for name in ("b.json", "a.json"):
        (tmp_path / name).write_text(json.dumps(_session("x", [0, 1])))
    sessions, failures = load_sessions(tmp_path)
    assert [s.id for s in sessions] == ["x"] and len(failures) == 1
    e = failures[0]
    assert e.file == str(tmp_path / "b.json") and e.field == "id"
    assert f"in '{tmp_path / 'a.json'}' (kept" in e.message and "this one is left out" in e.message
