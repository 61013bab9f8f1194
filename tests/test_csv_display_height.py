"""The CSV-of-sessions layout's ``display_height`` column (a session's ``context.display_height``): read and
checked as session JSON's field, written by ``deepqoe sessions convert``, so a Waterloo-layout folder converts
to CSV whole; and batch scoring takes the column, and refuses an id used twice as ``deepqoe predict`` does."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from deepqoe.cli import main
from deepqoe.datasets.waterloo_sqoe import load_waterloo_folder
from deepqoe.errors import DeepQoEError
from deepqoe.sessions.readers import load_sessions, save_sessions, sessions_from_frame
from deepqoe.sessions.session import Session

from conftest import real_data
from test_readers_audit17 import _rows


def _tv(sid: str, display_height=None, device: str = "tv", n: int = 3) -> list[dict]:
    """Rows of a 720p session, with a ``display_height`` cell on each (None: empty)."""
    return [dict(r, height=720, display_height=display_height) for r in _rows(sid, n, device)]


def test_the_column_is_the_sessions_display_height(tmp_path):
    rows = (_tv("uhd", 2160) + _tv("none") + [dict(r, display_height=None if j else 2160)  # an empty cell: ignored
                                              for j, r in enumerate(_tv("first-only"))]
            + _tv("alias", device="uhdtv") + _tv("alias-given", 1080, device="uhdtv"))
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    sessions, failures = load_sessions(tmp_path / "s.csv")
    assert not failures
    assert {s.id: s.context for s in sessions} == {
        "uhd": {"display_height": 2160}, "none": {}, "first-only": {"display_height": 2160},
        "alias": {"display_height": 2160}, "alias-given": {"display_height": 1080}}  # as session JSON reads them
    assert isinstance(sessions[0].context["display_height"], int)  # 2160, not 2160.0 (a column with empty cells)


@pytest.mark.parametrize("value", ["4K", 0, -1, 1e9])
def test_a_bad_display_height_is_the_json_fields_error_at_its_cell(value, tmp_path):
    rows = _tv("ok", 2160) + _tv("bad", value) + _tv("after", 1080)
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    sessions, failures = load_sessions(tmp_path / "s.csv")
    assert [s.id for s in sessions] == ["ok", "after"] and len(failures) == 1
    e = failures[0]
    assert (e.column, e.row) == ("display_height", 4) and e.file.endswith("s.csv")
    with pytest.raises(DeepQoEError) as json_error:  # the message of session JSON's context.display_height
        Session.from_dict({"id": "bad", "segments": [{"start": 0, "duration": 4, "height": 720}],
                           "context": {"display_height": value}})
    assert e.message == json_error.value.message
    # without row numbers (batch scoring's partitions): JSON's field
    _, failures = sessions_from_frame(pd.DataFrame(rows), file="big.csv", first_row=None)
    assert [(f.field, f.message) for f in failures] == [("context.display_height", json_error.value.message)]


def test_a_display_height_that_differs_within_a_session_is_refused(tmp_path):
    rows = _tv("tv", 2160) + _tv("x", 2160)[:1] + [dict(_tv("x")[1], display_height=1080)] + _tv("y", 1080)
    pd.DataFrame(rows).to_csv(tmp_path / "s.csv", index=False)
    sessions, failures = load_sessions(tmp_path / "s.csv")
    assert [s.id for s in sessions] == ["tv", "y"] and len(failures) == 1
    e = failures[0]
    assert (e.column, e.row) == ("display_height", 5)
    assert "session 'x': 1080 here but 2160 on an earlier row; a session column must be the same" in e.message
    _, failures = sessions_from_frame(pd.DataFrame(rows), first_row=None)
    assert failures[0].field == "context.display_height" and "on an earlier row" in failures[0].message


def _session(sid: str, **kw) -> dict:
    return {"id": sid, "device": "tv", "segments": [
        {"start": 4.0 * i, "duration": 4.0, "bitrate_kbps": 1000 + 500 * i, "height": 720 + 360 * i,
         "representation": i} for i in range(3)], "stalls": [{"start": 4.0, "duration": 1.5}], **kw}


def test_convert_writes_a_context_of_display_height_alone(tmp_path, capsys):
    src = tmp_path / "in.json"
    given = [_session("uhd", context={"display_height": 2160}), _session("plain"),
             _session("alias", device="uhdtv"),  # the alias's context: display_height 2160
             _session("p1203", context={"display_width": 3840, "display_height": 2160}),  # no column for the width
             _session("more", context={"display_height": 2160, "viewing_distance": "1.5H"})]
    src.write_text(json.dumps({"sessions": given}))
    for out in ("s.csv", "s.parquet"):
        capsys.readouterr()
        assert main(["sessions", "convert", str(src), "--out", str(tmp_path / out)]) == 3
        err = capsys.readouterr().err
        for sid in ("p1203", "more"):
            assert f"field 'context': session '{sid}': its 'context' has no exact form in the CSV layout" in err
        assert all(f"session '{sid}'" not in err for sid in ("uhd", "plain", "alias"))
        back, failures = load_sessions(tmp_path / out)
        assert not failures
        want = [Session.from_dict(d) for d in given[:3]]
        assert [b.to_dict() for b in back] == [{**w.to_dict(), "segments": b.to_dict()["segments"]}
                                               for w, b in zip(want, back)]  # representations read back as text
        assert [b.context for b in back] == [{"display_height": 2160}, {}, {"display_height": 2160}]
        assert [b.switches().tolist() for b in back] == [w.switches().tolist() for w in want]
    written = pd.read_csv(tmp_path / "s.csv", dtype=str, keep_default_na=False)["display_height"].tolist()
    assert written == ["2160"] * 3 + [""] * 3 + ["2160"] * 3  # a whole number, though a session has none
    # a session that needs no context writes no column (files as before)
    assert not save_sessions([Session.from_dict(_session("plain"))], tmp_path / "plain.csv")
    assert "display_height" not in pd.read_csv(tmp_path / "plain.csv").columns


def _small_waterloo(tmp_path, n: int = 27):
    """The first ``n`` sessions of Waterloo SQoE-IV (9 each on an HDTV, a phone and a UHD TV) as a folder in its
    layout."""
    root = real_data("waterloo-sqoe-iv")
    folder = tmp_path / "waterloo"
    (folder / "streaming_logs").mkdir(parents=True)
    data = pd.read_csv(root / "data.csv", dtype=str).iloc[:n]
    data.to_csv(folder / "data.csv", index=False)
    for log in data["streaming_log"]:
        shutil.copy(root / "streaming_logs" / log, folder / "streaming_logs" / log)
    return folder, data


def test_a_waterloo_folder_converts_to_csv_whole(tmp_path, capsys):
    folder, data = _small_waterloo(tmp_path)
    assert set(data["device"]) == {"hdtv", "phone", "uhdtv"}
    want = load_waterloo_folder(folder).sessions
    assert all(set(s.context) == {"display_height"} for s in want)  # the device is data.csv's (meta), once
    assert sorted({s.context["display_height"] for s in want}) == [1080, 2160]
    assert any(s.stall_total > 0 for s in want) and any(s.switches().any() for s in want)
    out = tmp_path / "x.csv"
    capsys.readouterr()
    assert main(["sessions", "convert", str(folder), "--out", str(out)]) == 0
    assert f"wrote {len(data)} session(s)" in capsys.readouterr().err
    back, failures = load_sessions(out)
    assert not failures and [s.id for s in back] == [s.id for s in want]
    for w, b in zip(want, back):
        assert b.context == w.context and b.device == w.device and b.mos == w.mos
        assert b.switches().tolist() == w.switches().tolist()
        assert b.to_dict()["stalls"] == w.to_dict()["stalls"]  # (as the JSON writes them: to the microsecond)


# ------------------------------------------------------------------------------------------- batch scoring
def _batch(tmp_path, df: pd.DataFrame, name: str):
    """``deepqoe predict``'s scores and failures of ``df`` as a CSV, and batch scoring's (a CSV, and Parquet
    partitions cut inside the sessions)."""
    pytest.importorskip("distributed")
    from test_batch_scoring import write_parts

    from deepqoe.batch_scoring import score_batch

    csv = tmp_path / f"{name}.csv"
    df.to_csv(csv, index=False)
    write_parts(df, tmp_path / f"{name}-parts", 3)
    single = tmp_path / f"{name}-single.csv"
    code = main(["predict", "streaming", str(csv), "--out", str(single), "-q"])
    runs = [score_batch("streaming", data, tmp_path / f"{name}-out-{k}", workers=1, processes=False, **kw)
            for k, (data, kw) in enumerate(((csv, {"blocksize": 300}), (tmp_path / f"{name}-parts", {})))]
    return code, pd.read_csv(single, dtype={"id": str}), load_sessions(csv)[1], runs


def test_batch_scoring_takes_display_height_as_predict_does(tmp_path):
    from test_batch_scoring import ROUNDING, _same_scores

    df = pd.DataFrame(_tv("uhd", 2160, n=4) + _tv("hd", n=4) + _tv("alias", device="uhdtv", n=4))
    code, single, _, runs = _batch(tmp_path, df, "dh")
    assert code == 0
    score = single.set_index("id")["score"]
    assert score["uhd"] < score["hd"] - 0.1 and abs(score["uhd"] - score["alias"]) <= ROUNDING  # 720p on a 4K TV
    for res in runs:
        assert res.n_scored == 3 and not res.failures
        _same_scores(pd.read_parquet(res.out), single)


def test_batch_scoring_refuses_an_id_used_twice_as_predict_does(tmp_path):
    from test_batch_scoring import _same_scores

    later = [dict(r, start=r["start"] + 12.0) for r in _rows("a", 2)]  # would join 'a' as segments 4-5
    df = pd.DataFrame(_rows("a", 3) + _rows("b", 4) + later + _rows("c", 3))
    code, single, cli_failures, runs = _batch(tmp_path, df, "twice")
    assert code == 3 and sorted(single["id"]) == ["a", "b", "c"]
    assert [(e.column, e.row) for e in cli_failures] == [("session_id", 8)]
    assert "session id 'a' is used twice: rows 1-3 and 8-9" in cli_failures[0].message
    for res, data in zip(runs, (tmp_path / "twice.csv", tmp_path / "twice-parts")):  # rows of the whole input
        assert res.n_scored == 3
        assert [(e.message, e.column, e.row, e.file) for e in res.failures] == [
            (cli_failures[0].message, "session_id", 8, str(data))]
        _same_scores(pd.read_parquet(res.out), single)  # 'a' is its first block, as deepqoe predict scores it
