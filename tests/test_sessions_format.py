"""Session format: validation, bad input, scales, features on hand-made sessions."""

import copy
import json

import numpy as np
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
