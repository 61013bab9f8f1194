"""Session format: validation, bad input, scales, features on hand-made sessions."""

import copy
import json

import numpy as np
import pandas as pd
import pytest

from deepqoe.errors import DeepQoEError
from deepqoe.sessions import (Session, from_common, load_sessions, per_second_series, session_features,
                              to_common)
from deepqoe.sessions.scales import convert, fit_z_reference, parse_scale


def make(n=60, seg=1.0, stalls=(), **kw):
    d = {"id": "s1", "segments": [{"start": i * seg, "duration": seg, "bitrate_kbps": 3000, "width": 1920,
                                    "height": 1080, "fps": 30, "codec": "h264", "quality": 90}
                                   for i in range(int(n / seg))],
         "stalls": [{"start": s, "duration": d} for s, d in stalls], "device": "pc", "content": "news"}
    d.update(kw)
    return d


def test_roundtrip_and_schema_fields():
    s = Session.from_dict(make(stalls=[(0, 1.5), (30, 2)]))
    assert s.media_duration == 60 and s.n_segments == 60 and len(s.stalls) == 2
    s2 = Session.from_dict(json.loads(json.dumps(s.to_dict())))
    assert s2.to_dict() == s.to_dict()


def test_one_stall_relative_duration():
    F = session_features([Session.from_dict(make(stalls=[(20, 2)]))])
    r = F.iloc[0]
    assert r["stall_ratio"] == pytest.approx(2 / 60)
    assert r["stall_ratio_wall"] == pytest.approx(2 / 62)
    assert r["n_stalls"] == 1 and r["startup_delay"] == 0
    # stall ends at wall 22, session ends at wall 62
    assert r["tsl_stall"] == pytest.approx(40)
    assert r["q_mean"] == pytest.approx(90) and r["n_switches"] == 0


def test_startup_switches_and_below_best():
    d = make(stalls=[(0, 3)])
    for i in range(30, 40):
        d["segments"][i].update(bitrate_kbps=750, height=480, width=854, quality=50)
    r = session_features([Session.from_dict(d)]).iloc[0]
    assert r["startup_delay"] == 3 and r["n_stalls"] == 0 and r["stall_ratio"] == 0
    assert r["n_switches"] == 2 and r["n_down"] == 1 and r["n_up"] == 1
    assert r["switch_mag_mean"] == pytest.approx(2.0)
    assert r["time_below_best"] == pytest.approx(10)
    # last impairment ends at media 40 -> wall 43; wall duration 63
    assert r["tsl"] == pytest.approx(20)
    assert r["q_mean"] == pytest.approx((50 * 10 + 90 * 50) / 60)
    assert r["q_min"] == 50 and r["q_drop_sum"] == 40


def test_vbr_jitter_is_not_a_switch_and_one_definition_everywhere():
    """Session.switches is the one switch definition: the feature table and the session model agree, VBR
    jitter of the measured bitrate is no switch, a change of representation id at one resolution is."""
    from deepqoe.sessions.qoe_model import _session_points

    d = make()
    for i, seg in enumerate(d["segments"]):
        seg["bitrate_kbps"] = 3000 * (1.4 if i % 2 else 0.7)   # +-40 % chunk to chunk, one rung
    s = Session.from_dict(d)
    assert not s.switches().any()
    assert session_features([s]).iloc[0]["n_switches"] == 0
    for i, seg in enumerate(d["segments"]):
        seg["representation"] = "hi" if i < 20 or i >= 40 else "lo"   # two rung changes, same height
    s2 = Session.from_dict(d)
    assert s2.switches().sum() == 2
    assert session_features([s2, s]).iloc[0]["n_switches"] == 2
    pts = _session_points(s2, np.array([60.0]), np.full(60, 0.8), 1.0, s2.switches())
    assert np.expm1(pts[1][0, 5]) == pytest.approx(2.0)   # log1p of switches per minute at the end


def test_wall_time_stalls_are_converted():
    s = Session.from_dict(make(stalls=[(10, 2), (22, 3)], stall_time_base="wall"))
    assert list(s.stall_start) == [10, 20]


def test_batch_equals_single():
    ds = [Session.from_dict(make(stalls=[(5 * k + 1, 1 + k)], id=f"s{k}")) for k in range(5)]
    both = session_features(ds)
    for k, s in enumerate(ds):
        one = session_features([s])
        np.testing.assert_allclose(both.iloc[k][one.columns[:-3]].astype(float),
                                   one.iloc[0][one.columns[:-3]].astype(float), rtol=1e-9)


def test_per_second_series():
    s = Session.from_dict(make(n=10, stalls=[(4, 2)]))
    X, L = per_second_series([s], length=16)
    assert X.shape == (1, 16, 4) and L[0] == 12
    assert X[0, 4:6, 3].tolist() == [1, 1] and X[0, :4, 3].sum() == 0
    assert X[0, 0, 0] == pytest.approx(0.9) and X[0, 12:].sum() == 0
    X2, L2 = per_second_series([s], length=4)
    assert L2[0] == 4 and X2[0, :, 3].sum() == pytest.approx(2 / 3)


BAD = [
    (lambda d: d["stalls"].append({"start": 20, "duration": 1}) or d["stalls"].append({"start": 20, "duration": 2}),
     "stalls[1].start", "overlap"),
    (lambda d: d["stalls"].append({"start": 20, "duration": -1}), "stalls[0].duration", "> 0"),
    (lambda d: d["stalls"].append({"start": -3, "duration": 1}), "stalls[0].start", "negative"),
    (lambda d: d["segments"].__setitem__(slice(3, 5), d["segments"][4:2:-1]), "segments[4].start",
     "out of order"),
    (lambda d: d["segments"].pop(10), "segments[10].start", "gap"),
    (lambda d: d["segments"][5].update(start=4.5), "segments[5].start", "out of order"),
    (lambda d: d["segments"][7].update(duration=0), "segments[7].duration", "> 0"),
    (lambda d: d["segments"][2].pop("duration"), "segments[2].duration", "missing"),
    (lambda d: d.update(device="toaster"), "device", "unknown device"),
    (lambda d: d.pop("segments"), "segments", "missing"),
    (lambda d: d.update(mos=7, mos_scale="1-5"), "mos", "outside"),
    (lambda d: d["segments"][0].update(bitrate="3000"), "segments[0].bitrate", "did you mean"),
    (lambda d: d["segments"][1].update(quality=130), "segments[1].quality", "0-100"),
]


@pytest.mark.parametrize("mutate,field,words", BAD)
def test_bad_input_names_session_and_field(mutate, field, words):
    d = make()
    mutate(d)
    with pytest.raises(DeepQoEError) as ei:
        Session.from_dict(d, file="x.json")
    assert ei.value.field == field
    assert "session 's1'" in str(ei.value) and words in str(ei.value) and "x.json" in str(ei.value)


def test_batch_goes_on_and_reports(tmp_path):
    good, bad = make(id="good"), make(id="bad")
    bad["segments"][3]["duration"] = 0
    (tmp_path / "a.json").write_text(json.dumps({"sessions": [good, bad]}))
    (tmp_path / "b.json").write_text("{not json")
    (tmp_path / "c.json").write_text(json.dumps(make(id="other")))
    sessions, failures = load_sessions(tmp_path)
    assert [s.id for s in sessions] == ["good", "other"]
    msgs = [str(e) for e in failures]
    assert any("not valid JSON" in m and "b.json" in m for m in msgs)
    assert any("session 'bad'" in m and "segments[3].duration" in m for m in msgs)


def test_csv_and_p1203_inputs(tmp_path):
    rows = ["session_id,start,duration,bitrate_kbps,height,width,fps,stall_before,device,mos,mos_scale"]
    for k in range(10):
        rows.append(f"a,{k * 2},2,1000,720,1280,25,{1.5 if k in (0, 5) else 0},phone,70,0-100")
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    s, f = load_sessions(tmp_path / "s.csv")
    assert not f and s[0].device == "mobile" and s[0].stall_start.tolist() == [0, 10]
    p = {"I13": {"segments": [{"bitrate": 2000, "codec": "h264", "duration": 5, "fps": 24,
                               "resolution": "1280x720", "start": 5 * k} for k in range(4)]},
         "I23": {"stalling": [[0, 1], [10, 2]]}, "IGen": {"device": "mobile", "displaySize": "1920x1080"}}
    (tmp_path / "p-input.json").write_text(json.dumps(p))
    s, f = load_sessions(tmp_path / "p-input.json")
    assert not f and s[0].id == "p" and s[0].media_duration == 20 and s[0].context["display_height"] == 1080
    p["I23"]["stalling"] = [[10, 2], [10, 1]]
    (tmp_path / "q-input.json").write_text(json.dumps(p))
    s, f = load_sessions(tmp_path / "q-input.json")
    assert not s and f[0].field == "I23.stalling[1].start"


def test_scales_round_trip():
    x = np.array([0, 25, 50, 100.0])
    np.testing.assert_allclose(to_common(x, "0-100"), [1, 2, 3, 5])
    np.testing.assert_allclose(from_common(to_common(x, "0-100"), "0-100"), x)
    np.testing.assert_allclose(convert([1, 3, 5], "1-5", "0-100"), [0, 50, 100])
    z = np.array([-1.0, 0.0, 0.5, 1.2])
    ref = fit_z_reference(z)
    np.testing.assert_allclose(from_common(to_common(z, ref), ref), z, atol=1e-12)
    assert np.all(np.diff(to_common(z, ref)) > 0)
    assert parse_scale("1 - 7").name == "1-7"
    with pytest.raises(DeepQoEError):
        parse_scale("stars")


# ------------------------------------------------------------------ one definition of the format
def test_schema_file_is_the_generated_schema():
    from deepqoe.sessions.schema import SCHEMA_PATH, session_schema_text

    assert SCHEMA_PATH.read_text(encoding="utf-8") == session_schema_text(), \
        "regenerate it: python -m deepqoe.sessions.schema"


def _schema_accepts(doc) -> bool:
    import jsonschema

    from deepqoe.sessions.schema import session_json_schema

    try:
        jsonschema.Draft202012Validator(session_json_schema()).validate(doc)
        return True
    except jsonschema.ValidationError:
        return False


def _from_dict_accepts(doc) -> bool:
    try:
        Session.from_dict(doc)
        return True
    except DeepQoEError:
        return False


def _variant(path, value):
    d = make(n=8, seg=2.0)
    target = d
    for k in path[:-1]:
        target = target[k]
    if value is _DROP:
        target.pop(path[-1])
    else:
        target[path[-1]] = value
    return d


_DROP = object()
VARIANTS = [
    ((), None), (("id",), 7), (("id",), ""), (("id",), True), (("id",), ["a"]), (("id",), _DROP),
    (("device",), "phone"), (("device",), "uhdtv"), (("device",), "toaster"), (("device",), 3), (("device",), None),
    (("segments", 0, "width"), 1920.0), (("segments", 0, "width"), 1920.5), (("segments", 0, "height"), "1080"),
    (("segments", 0, "bitrate_kbps"), "3000"), (("segments", 0, "bitrate_kbps"), True),
    (("segments", 0, "bitrate_kbps"), 0), (("segments", 0, "bitrate_kbps"), None), (("segments", 0, "fps"), 1001),
    (("segments", 0, "quality"), 100.5), (("segments", 0, "quality"), 0), (("segments", 0, "codec"), 264),
    (("segments", 0, "representation"), "720p-3M"), (("segments", 0, "representation"), 4),
    (("segments", 0, "representation"), True), (("segments", 0, "representation"), [1]),
    (("segments", 0, "bitrate"), 3), (("segments", 0, "start"), _DROP), (("segments",), []),
    (("segments",), "x"), (("stalls",), [[0, 1.5], {"start": 4, "duration": 2}]), (("stalls",), [[0, 1, 2]]),
    (("stalls",), [{"start": 4}]), (("stalls",), [{"start": 4, "duration": 1, "x": 1}]), (("stalls",), None),
    (("stall_time_base",), "wall"), (("stall_time_base",), "clock"), (("context",), []),
    (("extra",), {"a": 1}), (("quality_per_second",), [50.0] * 8), (("quality_per_second",), [50, "x"]),
    (("mos",), 3.5), (("mos",), "good"), (("mos_scale",), 5), (("content",), ["news"]), (("colour",), "red"),
    (("$schema",), "https://deepqoe.example/schemas/session.schema.json"),
]


@pytest.mark.parametrize("path,value", VARIANTS, ids=[f"{'.'.join(map(str, p))}={v!r}"[:50] for p, v in VARIANTS])
def test_from_dict_accepts_exactly_what_the_schema_describes(path, value):
    doc = copy.deepcopy(_variant(path, value) if path else make(n=8, seg=2.0))
    assert _from_dict_accepts(copy.deepcopy(doc)) == _schema_accepts(doc)


def test_representation_is_kept_and_round_trips():
    d = make(n=8, seg=1.0)
    for i, seg in enumerate(d["segments"]):
        seg["representation"] = "hd" if i < 4 else 3
    s = Session.from_dict(d)
    assert s.representation == ["hd"] * 4 + [3.0] * 4
    assert s.segments[5].representation == 3.0
    assert Session.from_dict(s.to_dict()).representation == s.representation
    a = Session.from_arrays("a", [0, 4, 8], [4, 4, 4], height=720, representation=["r1", "r2", "r1"])
    assert a.representation == ["r1", "r2", "r1"]
    b = Session.from_arrays("b", [0, 4], [4, 4], height=720)
    assert b.representation == [None, None] and b.segments[0].representation is None
    c = Session.from_arrays("c", [0, 4], [4, 4], height=720, representation=[1, np.nan])
    assert c.representation == [1.0, None]
    with pytest.raises(DeepQoEError) as ei:
        Session.from_arrays("d", [0, 4], [4, 4], height=720, representation=["a"])
    assert ei.value.field == "segments"


def test_a_stall_just_after_the_end_is_clipped_with_a_warning():
    with pytest.warns(UserWarning, match=r"stalls\[1\]\.start.*session 's1'.*moved to the end"):
        s = Session.from_dict(make(n=60, stalls=[(0, 1.0), (60.6, 2.0)]), file="x.json")
    assert s.stall_start.tolist() == [0, 60] and s.stall_duration.tolist() == [1, 2]
    with pytest.warns(UserWarning):  # two stalls that meet at the end become one
        s = Session.from_dict(make(n=60, stalls=[(60, 1.0), (60.9, 2.0)]))
    assert s.stall_start.tolist() == [60] and s.stall_duration.tolist() == [3]
    with pytest.warns(UserWarning):  # from columns too (the readers)
        a = Session.from_arrays("a", [0, 4], [4, 4], height=720, stall_start=[8.4], stall_duration=[1.0])
    assert a.stall_start.tolist() == [8.0]


def test_a_stall_more_than_a_second_after_the_end_is_an_error():
    with pytest.raises(DeepQoEError) as ei:
        Session.from_dict(make(n=60, stalls=[(0, 1.0), (61.5, 2.0)]), file="x.json")
    assert ei.value.field == "stalls[1].start" and "after the end of the media" in str(ei.value)


def test_absurdly_long_sessions_are_a_one_line_error():
    with pytest.raises(DeepQoEError) as ei:
        Session.from_dict(make(n=60, stalls=[(10, 1e12)]))
    assert ei.value.field == "stalls[0].duration" and "7 days" in str(ei.value)
    d = make(n=60)
    d["segments"] = [{"start": 0, "duration": 1e9, "height": 720}]
    with pytest.raises(DeepQoEError) as ei:
        Session.from_dict(d)
    assert ei.value.field == "segments"


def test_huge_numbers_are_named_not_echoed():
    d = make(n=8, seg=2.0)
    d["segments"][0]["bitrate_kbps"] = 10 ** 400
    with pytest.raises(DeepQoEError) as ei:
        Session.from_dict(d)
    assert ei.value.field == "segments[0].bitrate_kbps" and "finite" in str(ei.value) and len(str(ei.value)) < 200


# ------------------------------------------------------------------ audit fixes
@pytest.mark.parametrize("value", ["4k", [1], True, -5, 0, 0.5, float("nan"), 1e6])
def test_context_display_height_must_be_a_number_of_pixels(value, tmp_path):
    d = make(n=8, seg=2.0, context={"display_height": value})
    with pytest.raises(DeepQoEError) as ei:
        Session.from_dict(d, file="x.json")
    assert ei.value.field == "context.display_height" and "session 's1'" in str(ei.value)
    with pytest.raises(DeepQoEError):
        Session.from_arrays("a", [0, 4], [4, 4], height=720, context={"display_height": value})
    # in a batch only that session fails
    (tmp_path / "a.json").write_text(json.dumps([make(n=8, seg=2.0, id="ok", context={"display_height": 2160}),
                                                 {**d, "id": "bad"}]))
    sessions, failures = load_sessions(tmp_path / "a.json")
    assert [s.id for s in sessions] == ["ok"] and len(failures) == 1
    assert failures[0].field == "context.display_height" and "session 'bad'" in str(failures[0])


def test_context_display_height_accepts_pixels_and_null():
    assert Session.from_dict(make(n=8, seg=2.0, context={"display_height": 2160.0})).context["display_height"] == 2160
    assert Session.from_dict(make(n=8, seg=2.0, context={"display_height": None})).context == {}
    assert Session.from_arrays("a", [0, 4], [4, 4], height=720,
                               context={"display_height": np.int64(720)}).context["display_height"] == 720


def test_stall_notes_count_the_stalls_and_errors_keep_the_digits():
    from deepqoe.sessions.session import SessionNote

    with pytest.warns(SessionNote) as rec:
        s = Session.from_dict(make(n=40, stalls=[(40.3, 1.0), (40.5, 1.0)]), file="x.json")
    assert len(rec) == 1 and s.stall_start.tolist() == [40] and s.stall_duration.tolist() == [2]
    msg = str(rec[0].message)
    assert "\n" not in msg and msg.startswith("file 'x.json', field 'stalls[0].start': session 's1': 2 stalls")
    assert "40.3, 40.5" in msg and "merged into one" in msg
    with pytest.raises(DeepQoEError) as ei:
        Session.from_dict(make(n=40, stalls=[(41.0000001, 1.0)]))
    assert "41.0000001 s" in str(ei.value) and "more than 1 s after" in str(ei.value)


def _csv(tmp_path, text: str):
    p = tmp_path / "s.csv"
    p.write_text(text)
    return load_sessions(p)


def test_csv_a_bad_cell_fails_only_its_session_and_names_column_and_row(tmp_path):
    head = "session_id,start,duration,bitrate_kbps,stall_before\n"
    sessions, failures = _csv(tmp_path, head + "a,zero,4,3000,\nb,0,4,3000,0\nb,4,4,3000,1.5\n")
    assert [s.id for s in sessions] == ["b"] and sessions[0].stall_start.tolist() == [4]
    assert len(failures) == 1 and (failures[0].column, failures[0].row) == ("start", 1)
    assert 'got text "zero"' in str(failures[0]) and "session 'a'" in str(failures[0])
    sessions, failures = _csv(tmp_path, head + "a,0,4,3000,0\na,4,4,3000,abc\nb,0,4,3000,\n")
    assert [s.id for s in sessions] == ["b"]
    assert (failures[0].column, failures[0].row) == ("stall_before", 2) and '"abc"' in str(failures[0])
    sessions, failures = _csv(tmp_path, head + "a,0,4,3000,0\na,4,-4,3000,0\n")
    assert (failures[0].column, failures[0].row) == ("duration", 2) and "> 0" in str(failures[0])


def test_csv_rows_without_id_and_mixed_session_columns_are_errors(tmp_path):
    head = "session_id,start,duration,bitrate_kbps,device,mos\n"
    sessions, failures = _csv(tmp_path, head + "a,0,4,3000,pc,4\n,4,4,3000,pc,4\nb,0,4,3000,pc,\n")
    assert [s.id for s in sessions] == ["a", "b"] and sessions[1].mos is None
    assert (failures[0].column, failures[0].row) == ("session_id", 2)
    sessions, failures = _csv(tmp_path, head + "a,0,4,3000,mobile,4\na,4,4,3000,pc,4\nb,0,4,3000,pc,3\nb,4,4,3000,,\n")
    assert [s.id for s in sessions] == ["b"] and sessions[0].mos == 3 and sessions[0].device == "pc"
    assert (failures[0].column, failures[0].row) == ("device", 2)
    assert '"pc"' in str(failures[0]) and '"mobile"' in str(failures[0])


def test_csv_unknown_columns_are_refused_and_representation_is_read(tmp_path):
    sessions, failures = _csv(tmp_path, "session_id,start,duration,bitrate_kbps,qualty\na,0,4,3000,20\n")
    assert not sessions and failures[0].column == "qualty" and "did you mean 'quality'" in str(failures[0])
    assert "representation" in str(failures[0]) and "stall_before" in str(failures[0])
    sessions, failures = _csv(tmp_path, "session_id,start,duration,bitrate_kbps,height,representation\n"
                                        "a,0,4,3000,720,r1\na,4,4,3000,720,r2\na,8,4,3000,720,r2\n")
    assert not failures and sessions[0].representation == ["r1", "r2", "r2"]
    assert sessions[0].switches().tolist() == [True, False]


def test_session_files_deeply_nested_or_with_unknown_top_level_fields_are_one_error(tmp_path):
    """A JSON file nested beyond Python's recursion limit, and a field next to ``sessions`` (the service's
    422), are each one failure naming the file, never a traceback."""
    from deepqoe.sessions.readers import load_sessions

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    sessions, failures = load_sessions(deep)
    assert not sessions and "nested too deeply" in str(failures[0]) and "deep.json" in str(failures[0])
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"sessions": [], "sesions_meta": 1}))
    sessions, failures = load_sessions(extra)
    assert not sessions and failures[0].field == "sesions_meta" and "next to 'sessions'" in failures[0].message


def test_convert_to_the_csv_layout_round_trips_or_says_what_it_cannot_hold(tmp_path, capsys):
    """``sessions convert --out x.csv`` writes the CSV-of-sessions layout (batch scoring's input): a session that
    fits reads back identical and scores the same; one whose stall does not start a segment, or with
    quality_per_second, is left out and named (exit 3)."""
    from deepqoe.cli import main
    from deepqoe.sessions.readers import load_sessions

    fits = {"id": "001", "device": "tv", "content": "c1", "mos": 3.5, "mos_scale": "1-5",
            "segments": [{"start": 0, "duration": 4, "bitrate_kbps": 3000, "height": 1080, "width": 1920, "fps": 30,
                          "codec": "h264", "representation": "r3"},
                         {"start": 4, "duration": 4, "bitrate_kbps": 1000, "height": 720, "width": 1280, "fps": 30,
                          "codec": "h264", "representation": "r2"}],
            "stalls": [{"start": 0, "duration": 1.5}, {"start": 4, "duration": 2}]}
    mid = {"id": "mid", "segments": [{"start": 0, "duration": 4, "quality": 80}, {"start": 4, "duration": 4,
                                                                                   "quality": 60}],
           "stalls": [{"start": 2, "duration": 1}]}
    qps = {"id": "qps", "quality_per_second": [80, 80, 70, 70], "segments": [{"start": 0, "duration": 4,
                                                                                "quality": 80}]}
    src = tmp_path / "in.json"
    src.write_text(json.dumps({"sessions": [fits, mid, qps]}))
    capsys.readouterr()
    assert main(["sessions", "convert", str(src), "--out", str(tmp_path / "s.csv")]) == 3
    err = capsys.readouterr().err
    assert "session 'mid'" in err and "'stalls'" in err and "session 'qps'" in err and "quality_per_second" in err
    back, failures = load_sessions(tmp_path / "s.csv")
    assert not failures and [s.to_dict() for s in back] == [Session.from_dict(fits).to_dict()]
    assert main(["sessions", "convert", str(src), "--out", str(tmp_path / "s.parquet"), "-q"]) == 3
    assert pd.read_parquet(tmp_path / "s.parquet")["session_id"].tolist() == ["001", "001"]
