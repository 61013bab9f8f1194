"""Plausibility of session input (picture size, bitrate units) and the session readers' messages: .tsv and
folders of sessions, CSV column names and ids written with spaces or capitals, a null where a number goes."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.sessions import Session, load_sessions
from deepqoe.sessions.readers import check_csv_columns, sessions_from_frame
from deepqoe.sessions.session import MAX_PICTURE_SIDE, MAX_PLAUSIBLE_BITS_PER_PIXEL


def _session(sid="s1", n=5, seg=4.0, **segment) -> dict:
    base = {"bitrate_kbps": 3000, "width": 1920, "height": 1080, "fps": 30}
    base.update(segment)
    return {"id": sid, "segments": [{"start": k * seg, "duration": seg, **base} for k in range(n)]}


def _notes(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DeepQoENote)]


def _bitrate_notes(record) -> list[str]:
    return [m for m in _notes(record) if "bits per pixel per frame" in m]


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg and msg.strip()
    return msg


# ------------------------------------------------------------------------------------ 1. picture size
@pytest.mark.parametrize("field,value", [("width", 1e9), ("height", 100_000), ("width", MAX_PICTURE_SIDE + 1),
                                         ("height", 16385.0)])
def test_a_picture_side_beyond_16k_is_refused_naming_file_session_and_field(field, value):
    d = _session()
    d["segments"][2][field] = value
    with pytest.raises(DeepQoEError) as ei:
        Session.from_dict(d, file="x.json")
    msg = _one_line(ei.value)
    assert ei.value.field == f"segments[2].{field}" and ei.value.file == "x.json"
    assert "session 's1'" in msg and f"must be <= {MAX_PICTURE_SIDE} (got " in msg
    assert f"{float(value):g}" in msg or f"{int(value)}" in msg


def test_the_same_limit_for_sessions_built_from_columns_and_for_csv(tmp_path):
    with pytest.raises(DeepQoEError) as ei:
        Session.from_arrays("a", [0, 4], [4, 4], bitrate_kbps=3000, width=[1920, 1e9], height=1080)
    assert ei.value.field == "segments[1].width" and "<= 16384" in str(ei.value)
    f = tmp_path / "s.csv"
    f.write_text("session_id,start,duration,bitrate_kbps,width,height\n"
                 "a,0,4,3000,1920,1080\na,4,4,3000,1920,100000\nb,0,4,3000,1920,1080\n")
    sessions, failures = load_sessions(f)
    assert [s.id for s in sessions] == ["b"] and len(failures) == 1
    e = failures[0]
    assert e.column == "height" and e.row == 2 and "<= 16384" in str(e) and "session 'a'" in str(e)


def test_16k_and_the_largest_side_are_accepted_and_fps_above_1000_names_its_bound():
    Session.from_dict(_session(width=15360, height=8640, bitrate_kbps=80_000, fps=60))
    Session.from_dict(_session(width=MAX_PICTURE_SIDE, height=MAX_PICTURE_SIDE))
    # from columns it used to say "must be > 0 (got 2000)"
    with pytest.raises(DeepQoEError) as ei:
        Session.from_arrays("a", [0], [4], bitrate_kbps=3000, height=1080, fps=2000)
    assert "must be <= 1000 (got 2000)" in str(ei.value)


def test_a_huge_width_no_longer_reaches_the_model():
    from deepqoe.predictor import load_predictor

    predictor = load_predictor("streaming")
    rows, failures = predictor.predict_sessions([Session.from_dict(_session())], curve=False)
    assert not failures and 1 <= rows[0]["score"] <= 5
    bad = _session()
    for seg in bad["segments"]:
        seg["width"] = 1e9
    with pytest.raises(DeepQoEError):
        Session.from_dict(bad)


# ------------------------------------------------------------------------------------ 1. bitrate units
def test_a_bitrate_in_bit_per_second_gives_one_note_per_session():
    d = _session(n=20, bitrate_kbps=3_000_000)  # 3 Mbit/s written in bit/s
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        s = Session.from_dict(d, file="x.json")
    notes = _bitrate_notes(rec)
    assert len(notes) == 1, notes
    msg = notes[0]
    assert "\n" not in msg and msg.startswith("file 'x.json', field 'segments[0].bitrate_kbps': session 's1':")
    assert "bit/s" in msg and "kilobits per second" in msg and "19 more segment(s)" in msg
    assert s.bitrate_kbps[0] == 3_000_000  # used as given
    note = next(w.message for w in rec if issubclass(w.category, DeepQoENote))
    assert note.error.field == "segments[0].bitrate_kbps" and note.error.file == "x.json"


@pytest.mark.parametrize("segment", [
    dict(bitrate_kbps=50_000),                                    # 1080p30 at 50 Mbit/s: 0.8 bits/pixel
    dict(bitrate_kbps=400, width=426, height=240, fps=24),        # a low rung
    dict(bitrate_kbps=4000, width=None, height=240, fps=None),    # 240p at 4 Mbit/s, no width or fps
    dict(bitrate_kbps=220_000),                                   # ProRes 422 HQ-like mezzanine: 3.5 bits/pixel
    dict(bitrate_kbps=80_000, width=15360, height=8640, fps=60),  # 16K60
    dict(bitrate_kbps=1e-300),                                    # absurdly small: not a unit error of this kind
    dict(bitrate_kbps=1e9, width=None, height=None, quality=50),  # no resolution: nothing to compare with
])
def test_real_ladders_and_mezzanine_bitrates_give_no_note(segment):
    d = _session(**segment)
    for seg in d["segments"]:
        for k in [k for k, v in seg.items() if v is None]:
            del seg[k]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        Session.from_dict(d)
    assert _bitrate_notes(rec) == []


def test_the_threshold_is_more_than_uncompressed_video():
    # 8-bit 4:2:0 raw video is 12 bits per pixel, 8-bit RGB 24: the note starts above it, and a 1000x unit error
    # of a 0.03 bits/pixel rung (1080p30 at 1.9 Mbit/s) is caught
    assert 12 < MAX_PLAUSIBLE_BITS_PER_PIXEL <= 24
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        Session.from_dict(_session(bitrate_kbps=1_900_000))
    assert len(_bitrate_notes(rec)) == 1


def test_check_model_sessions_give_no_note_except_its_extreme_bitrate_ladder():
    """The generated sessions (random ones, every perturbation, steady and extreme ones) are realistic: only the
    ladder of bitrates far outside any real one (x 1e20, ~1e307 kbps) may raise the note (check-model silences
    it); the ladder sessions are still built."""
    from deepqoe.evaluation import behaviour as b

    rng = np.random.default_rng(0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cases = [b._random_case(rng, f"r{i:05d}") for i in range(150)]
        made = []
        for c in cases:
            pairs, _ = b._perturb(rng, c)
            made += [s.id for _, a, p in pairs for s in (a, p)]
        b._steady_cases(rng, 15)
        b._extremes(rng)
    notes = _bitrate_notes(rec)
    assert notes, "the extreme ladder should have been drawn in 150 sessions"
    assert all("~bitrate-3'" in m or "~bitrate-4'" in m for m in notes), [m for m in notes if "~bitrate-" not in m]
    assert any(i.endswith("~bitrate-4") for i in made)


def test_an_extreme_bitrate_is_still_predicted_with_its_note(capsys, tmp_path):
    from deepqoe.cli import main

    f = tmp_path / "s.json"
    f.write_text(json.dumps([_session("a", n=6, bitrate_kbps=5e6), _session("b", n=6, bitrate_kbps=1e300)]))
    assert main(["predict", "streaming", str(f), "--json"]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert [r["id"] for r in rows] == ["a", "b"] and all(1 <= r["score"] <= 5 for r in rows)
    notes = [line for line in err.splitlines() if "bits per pixel" in line]
    assert len(notes) == 2 and all(n.startswith("deepqoe: note: file ") for n in notes)
    assert "session 'a'" in notes[0] and "session 'b'" in notes[1]


# ------------------------------------------------------------------------------------ 2. CSV columns and ids
@pytest.mark.parametrize("header,why", [("Session_id", "capitals"), (" session_id", "spaces around it"),
                                        ("Session ID", "a space or '-' for '_'")])
def test_a_session_id_header_written_otherwise_is_named(header, why):
    with pytest.raises(DeepQoEError) as ei:
        check_csv_columns([header, "start", "duration", "height"], "x.csv")
    msg = _one_line(ei.value)
    assert "missing the column 'session_id'" in msg and json.dumps(header) in msg and why in msg
    assert "write it 'session_id'" in msg


def test_a_csv_with_a_capitalised_header_names_the_column(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("Session_id,start,duration,height\ns0,0,4,1080\n")
    _, failures = load_sessions(f)
    assert len(failures) == 1 and "the header has \"Session_id\"" in str(failures[0])
    f.write_text("session_id,start,duration,Height\ns0,0,4,1080\n")
    _, failures = load_sessions(f)
    assert len(failures) == 1 and failures[0].column == "Height" and "did you mean 'height'?" in str(failures[0])


def test_spaces_around_a_session_id_in_a_csv_are_dropped(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("session_id,start,duration,height\ns000,0,4,1080\n s000,4,4,1080\ns001 ,0,4,720\n")
    sessions, failures = load_sessions(f)
    assert not failures
    assert [s.id for s in sessions] == ["s000", "s001"] and sessions[0].media_duration == 8


def test_ids_under_a_header_with_spaces_stay_text(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text(" session_id , start,duration,height\n001,0,4,1080\n001,4,4,1080\n")
    sessions, failures = load_sessions(f)
    assert not failures and [s.id for s in sessions] == ["001"]


def test_a_table_of_sessions_refuses_spaces_around_an_id_clearly():
    """Batch scoring hands its partitions to sessions_from_frame: the rows of ' s000' and 's000' may be in
    different partitions, so an id with spaces is refused with a clear message (not 'must start at 0')."""
    df = pd.DataFrame({"session_id": ["s000", " s000", "   ", "x"], "start": [0.0, 4.0, 0.0, 0.0],
                       "duration": 4.0, "height": 1080.0})
    sessions, failures = sessions_from_frame(df, file="big.csv", first_row=None)
    assert [s.id for s in sessions] == ["s000", "x"]
    msgs = [str(e) for e in failures]
    assert len(msgs) == 2 and not any("media time 0" in m for m in msgs)
    assert any("no session_id" in m for m in msgs)
    spaced = next(e for e in failures if "spaces around it" in str(e))
    assert spaced.field == "id" and '" s000"' in str(spaced)
    sessions, failures = sessions_from_frame(df, file="big.csv", strip_ids=True)
    assert [s.id for s in sessions] == ["s000", "x"] and sessions[0].media_duration == 8
    assert len(failures) == 1 and failures[0].row == 3


# ------------------------------------------------------------------------------------ 3. .tsv, folders
def test_a_tsv_of_sessions_is_read_with_tabs(tmp_path, capsys):
    from deepqoe.cli import main

    f = tmp_path / "x.tsv"
    f.write_text("session_id\tstart\tduration\theight\tcodec\ns0\t0\t4\t1080\th264\ns0\t4\t4\t720\th264\n")
    sessions, failures = load_sessions(f)
    assert not failures and [s.id for s in sessions] == ["s0"] and sessions[0].height.tolist() == [1080, 720]
    assert main(["sessions", "validate", str(f)]) == 0
    assert "1 valid session(s), 0 problem(s)" in capsys.readouterr().out


def test_a_parquet_written_by_convert_reads_back(tmp_path):
    from deepqoe.sessions.readers import save_sessions

    src = [Session.from_dict(_session("a")), Session.from_dict(_session("007", height=720, width=1280))]
    out = tmp_path / "s.parquet"
    assert save_sessions(src, out) == []
    back, failures = load_sessions(out)
    assert not failures and [s.to_dict() for s in back] == [s.to_dict() for s in src]


def test_a_file_that_is_not_json_names_the_suffixes_read(tmp_path):
    f = tmp_path / "sessions.txt"
    f.write_text("session_id,start,duration\n")
    _, failures = load_sessions(f)
    assert len(failures) == 1
    msg = str(failures[0])
    assert "not valid JSON" in msg and ".csv" in msg and ".tsv" in msg and ".json" in msg


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_a_folder_reports_a_broken_link_and_skips_subfolders(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(_session("a")))
    (folder / "b.tsv").write_text("session_id\tstart\tduration\theight\nb\t0\t4\t1080\n")
    (folder / "gone.json").symlink_to(tmp_path / "nowhere.json")
    (folder / "sub").mkdir()
    (folder / "sub" / "c.json").write_text(json.dumps(_session("c")))
    sessions, failures = load_sessions(folder)
    assert [s.id for s in sessions] == ["a", "b"]
    assert len(failures) == 1
    assert failures[0].file == str(folder / "gone.json") and "broken symbolic link" in str(failures[0])
    with pytest.raises(DeepQoEError) as ei:
        load_sessions(folder / "gone.json")
    assert "broken symbolic link" in str(ei.value) and "nowhere.json" in str(ei.value)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_a_folder_of_only_a_broken_link_is_a_failure_not_an_empty_folder(tmp_path):
    (tmp_path / "gone.csv").symlink_to(tmp_path / "nowhere.csv")
    sessions, failures = load_sessions(tmp_path)
    assert sessions == [] and len(failures) == 1 and "gone.csv" in str(failures[0])


# ------------------------------------------------------------------------------------ 4. null
@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.update(quality_per_second=[50, None, 50, 50, 50]), "quality_per_second[1]"),
    (lambda d: d["segments"][1].update(start=None), "segments[1].start"),
])
def test_a_null_where_a_number_goes_says_null(mutate, field):
    d = _session()
    mutate(d)
    with pytest.raises(DeepQoEError) as ei:
        Session.from_dict(d)
    assert ei.value.field == field
    assert str(ei.value).endswith("expected a number, got null") and "None" not in str(ei.value)


def test_a_p1203_input_hears_its_own_field_names_in_notes_and_errors():
    """Notes and errors about a P.1203 input name its fields (I13.segments[i].bitrate, .resolution,
    I23.stalling[j]), not the session format's they are read into."""
    import warnings

    from deepqoe.errors import DeepQoENote
    from deepqoe.sessions.readers import session_from_p1203

    obj = {"I13": {"segments": [{"start": 0, "duration": 4, "bitrate": 4_000_000, "resolution": "1920x1080",
                                 "fps": 30}]},
           "I23": {"stalling": [[4.5, 1.0]]}, "IGen": {"device": "pc"}}
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        session_from_p1203(obj, "x", file="x.json")
    notes = [str(w.message) for w in got if issubclass(w.category, DeepQoENote)]
    assert len(notes) == 2, notes
    assert any("field 'I13.segments[0].bitrate'" in n and "is it in bit/s?" in n for n in notes), notes
    assert any("field 'I23.stalling[0].start'" in n and "moved to the end" in n for n in notes), notes
    obj["I13"]["segments"][0]["resolution"] = "99999x1080"
    with pytest.raises(DeepQoEError) as e:
        session_from_p1203(obj, "x", file="x.json")
    assert e.value.field == "I13.segments[0].resolution"
