"""``deepqoe predict MODEL_DIR sessions``: the shipped streaming model on session JSON / CSV / folders."""

from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest

from deepqoe.cli import main
from deepqoe.errors import DeepQoEError
from deepqoe.predictor import Predictor
from deepqoe.sessions.frame import FRAME_BUILDERS, frame_builder, is_session_model, session_frame
from deepqoe.sessions.predict import predict_sessions
from deepqoe.sessions.session import Session


def _session(i, **kw):
    d = {"id": f"s{i}", "segments": [{"start": k * 4, "duration": 4, "bitrate_kbps": 800 + 900 * i,
                                      "height": [360, 720, 1080][i % 3]} for k in range(10)],
         "stalls": [[0, 1.0 + i]], "device": "mobile"}
    d.update(kw)
    return d


@pytest.fixture(scope="module")
def model(frame_session_model_dir):
    from deepqoe.persistence import load_model

    return load_model(frame_session_model_dir)


def _args(data, out=None, scale=None):
    return types.SimpleNamespace(data=str(data), out=str(out) if out else None, scale=scale)


def test_frame_model_is_a_session_model(model):
    assert is_session_model(model.meta_)
    assert not is_session_model({}) and not is_session_model(None)
    assert callable(frame_builder(model.meta_))


def test_cli_json_out_scores_and_curves(tmp_path, model):
    src = tmp_path / "s.json"
    src.write_text(json.dumps([_session(i) for i in range(3)]))
    out = tmp_path / "pred.json"
    assert main(["predict", "streaming", str(src), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["id"] for r in rows] == ["s0", "s1", "s2"]
    for r in rows:
        assert r["scale"] == "1-5" and 1.0 <= r["score"] <= 5.0
        assert isinstance(r["curve"], list) and len(r["curve"]) >= 40  # 40 s of media + stall seconds
        assert all(1.0 <= v <= 5.0 for v in r["curve"])
        assert r["curve_step_s"] == pytest.approx(1.0)
        assert r["curve"][-1] == pytest.approx(r["score"], abs=1e-3)  # the whole session = the score


def test_scale_conversion_and_csv_out(tmp_path, model):
    src = tmp_path / "s.json"
    src.write_text(json.dumps({"sessions": [_session(i) for i in range(3)]}))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert predict_sessions(model, _args(src, a)) == 0
    assert predict_sessions(model, _args(src, b, "0-100")) == 0
    ta, tb = pd.read_csv(a), pd.read_csv(b)
    assert list(ta.columns[:2]) == ["id", "score"]
    assert (tb["scale"] == "0-100").all()
    # scores are written with 4 decimals, so x25 carries up to 25 * 0.5e-4 of rounding
    np.testing.assert_allclose(tb["score"], (ta["score"] - 1) * 25, atol=25 * 0.5e-4 + 1e-4)
    with pytest.raises(DeepQoEError, match="rating scale"):
        predict_sessions(model, _args(src, a, "banana"))


def test_batch_goes_on_and_reports_failures(tmp_path, model, capsys):
    bad = _session(1)
    bad["segments"][2]["duration"] = 0
    src = tmp_path / "s.json"
    src.write_text(json.dumps([_session(0), bad, _session(2)]))
    assert main(["predict", "streaming", str(src)]) == 3  # some sessions predicted: partial success
    cap = capsys.readouterr()
    assert "s0" in cap.out and "s2" in cap.out
    assert "s1" in cap.err and "segments[2].duration" in cap.err


def test_every_session_failing_is_an_error(tmp_path, model, capsys):
    bad = _session(0, device="fridge")
    src = tmp_path / "s.json"
    src.write_text(json.dumps([bad]))
    assert main(["predict", "streaming", str(src)]) != 0
    assert "device" in capsys.readouterr().err


def test_csv_of_sessions_and_folder_and_p1203(tmp_path, model):
    rows = []
    for i in range(2):
        for k in range(6):
            rows.append({"session_id": f"c{i}", "start": 4 * k, "duration": 4, "bitrate_kbps": 1500 + 1000 * i,
                         "height": 720, "stall_before": 2.0 if k == 0 else 0.0, "device": "pc"})
    csv = tmp_path / "sessions.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = tmp_path / "p.json"
    assert predict_sessions(model, _args(csv, out)) == 0  # the CSV route (the lead routes .csv here)
    assert [r["id"] for r in json.loads(out.read_text())] == ["c0", "c1"]
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(_session(0)))
    p1203 = {"I13": {"segments": [{"start": 4 * k, "duration": 4, "bitrate": 3000, "resolution": "1920x1080",
                                   "fps": 30, "codec": "h264"} for k in range(8)]},
             "I23": {"stalling": [[0, 1.5], [12, 2.0]]}, "IGen": {"device": "pc", "displaySize": "1920x1080"}}
    (folder / "b-input.json").write_text(json.dumps(p1203))
    out2 = tmp_path / "p2.json"
    assert main(["predict", "streaming", str(folder), "--out", str(out2)]) == 0
    got = {r["id"]: r for r in json.loads(out2.read_text())}
    assert set(got) == {"s0", "b"}
    assert all(1 <= r["score"] <= 5 for r in got.values())


def test_more_stalls_predict_lower():
    good = Session.from_dict(_session(2, stalls=[[0, 0.5]]))
    bad = Session.from_dict(_session(2, id="bad", stalls=[[0, 0.5], [10, 6.0], [24, 8.0]]))
    rows, fails = Predictor.load("streaming").predict_sessions([good, bad])
    assert not fails
    assert rows[0]["score"] > rows[1]["score"]


def test_not_a_session_model_is_refused(tmp_path, model):
    est = types.SimpleNamespace(meta_={"estimator": "DeepQoERegressor"})
    src = tmp_path / "s.json"
    src.write_text(json.dumps(_session(0)))
    with pytest.raises(DeepQoEError, match="not trained on streaming sessions"):
        predict_sessions(est, _args(src))


def _copy_model(tmp_path, frame, source):
    import shutil

    d = tmp_path / "model"
    shutil.copytree(source, d)
    meta = json.loads((d / "model.json").read_text())
    if frame is None:
        meta["session_model"].pop("frame")
    else:
        meta["session_model"]["frame"] = frame
    (d / "model.json").write_text(json.dumps(meta))
    return d


@pytest.mark.parametrize("frame", ["session-frame-v1", "deepqoe.sessions.frame.session_frame",
                                   "deepqoe.pretrained.session_input.session_frame", None])
def test_model_files_name_the_frame_builder_by_key_and_old_paths_still_load(tmp_path, model, frame):
    assert frame_builder({"session_model": {"frame": frame} if frame else {}}) is session_frame
    d = _copy_model(tmp_path, frame, model.model_dir_)
    s = [Session.from_dict(_session(i)) for i in range(2)]
    a, _ = Predictor.load(d).predict_sessions(s)
    b, _ = Predictor(model).predict_sessions(s)
    assert [r["score"] for r in a] == [r["score"] for r in b]


@pytest.mark.parametrize("frame", ["deepqoe.cli.main", "os.system", "deepqoe.sessions.frame.parse_sessions",
                                   "session-frame-v2", 3, ["session-frame-v1"], {"a": 1}])
def test_a_tampered_model_json_cannot_name_a_callable(tmp_path, capsys, frame, frame_session_model_dir):
    from deepqoe import cli

    called = []
    d = _copy_model(tmp_path, frame, frame_session_model_dir)
    with pytest.raises(DeepQoEError) as ei:
        Predictor.load(d)
    msg = str(ei.value)
    assert ei.value.field == "session_model.frame" and "model.json" in msg and "\n" not in msg
    assert "session-frame-v1" in msg  # the known keys
    src = tmp_path / "s.json"
    src.write_text(json.dumps(_session(0)))
    orig = cli.main
    try:
        cli.main = lambda *a, **k: called.append(a)  # would be called if the model file could name it
        assert main(["predict", str(d), str(src)]) != 0
    finally:
        cli.main = orig
    assert not called
    assert "session_model.frame" in capsys.readouterr().err


def test_a_wrong_frame_version_is_refused(tmp_path, frame_session_model_dir):
    d = _copy_model(tmp_path, "session-frame-v1", frame_session_model_dir)
    meta = json.loads((d / "model.json").read_text())
    meta["session_model"]["frame_version"] = 99
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DeepQoEError, match="version") as ei:
        Predictor.load(d)
    assert ei.value.field == "session_model.frame_version"


def test_the_registry_holds_only_the_frame_builders():
    assert set(FRAME_BUILDERS) == {"session-frame-v1"} and FRAME_BUILDERS["session-frame-v1"] is session_frame


def test_python_predict_takes_session_dicts_and_fails_bad_ones_alone():
    """``Predictor.predict_sessions`` reads session dicts (the JSON format) as sessions; a bad dict or another
    type is a failure of its own item (field named), the others are scored."""
    from deepqoe.predictor import load_predictor

    p = load_predictor("streaming")
    good = {"id": "a", "segments": [{"start": 4 * i, "duration": 4, "quality": 80} for i in range(5)]}
    bad = {"id": "b", "segments": [{"start": 0, "duration": 4, "fps": 1e6}]}
    rows, failures = p.predict_sessions([good, bad, 7], curve=False)
    assert [r["id"] for r in rows] == ["a"] and len(failures) == 2
    assert failures[0].field == "segments[0].fps" and failures[1].field == "sessions[2]"
    assert "Session or a session dict" in failures[1].message
    from deepqoe.sessions import Session

    assert rows[0]["score"] == p.predict_sessions([Session.from_dict(good)], curve=False)[0][0]["score"]


def test_plots_draw_one_curve_chart_per_session(tmp_path, capsys):
    """``predict --plots DIR``: a PNG per session (a name from its id, made safe and unique), also with a
    table --out (which keeps no curve); refused for a table model (exit 2), with --scheduler, and onto a file."""
    sessions = [_session(0, id="a/b"), _session(1, id="a_b"), _session(2, id="..x")]
    src = tmp_path / "s.json"
    src.write_text(json.dumps(sessions))
    plots = tmp_path / "charts"
    assert main(["predict", "streaming", str(src), "--plots", str(plots), "--out", str(tmp_path / "p.csv")]) == 0
    names = sorted(p.name for p in plots.iterdir() if p.suffix == ".png")
    assert names == ["curve-a_b-2.png", "curve-a_b.png", "curve-x.png"]
    index = pd.read_csv(plots / "index.csv", dtype={"id": str})  # which chart is which session
    assert dict(zip(index["id"], index["file"])) == {"a/b": "curve-a_b.png", "a_b": "curve-a_b-2.png",
                                                      "..x": "curve-x.png"}
    assert all((plots / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    assert "3 per-second QoE chart(s) written" in capsys.readouterr().err
    assert main(["predict", "upec-qoe-lab", str(src), "--plots", str(tmp_path / "c2")]) == 2
    assert "--plots is for session models" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["predict", "streaming", str(src), "--plots", str(tmp_path / "afile")]) == 1
    assert "--plots" in capsys.readouterr().err
    assert main(["predict", "streaming", str(src), "--plots", str(tmp_path / "c3"), "--scheduler", "local",
                 "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "c2").exists() and not (tmp_path / "c3").exists()


def test_curve_plots_keep_to_their_limit(tmp_path):
    from deepqoe.predictor import load_predictor
    from deepqoe.sessions.predict import curve_plots

    sessions = [Session.from_dict(_session(i % 3, id=f"s{i}")) for i in range(5)]
    rows, _ = load_predictor("streaming").predict_sessions(sessions, scale="0-100")
    got = curve_plots(rows, sessions, tmp_path / "c", limit=3)
    assert [p.name for p in got] == ["curve-s0.png", "curve-s1.png", "curve-s2.png"]


def test_plots_keep_letters_of_any_alphabet_and_an_empty_folder_name_is_refused(tmp_path, capsys):
    src = tmp_path / "s.json"
    src.write_text(json.dumps([_session(0, id="тест-ü\U0001F3AC")]))
    assert main(["predict", "streaming", str(src), "--plots", str(tmp_path / "c"), "-q"]) == 0
    assert [p.name for p in (tmp_path / "c").glob("*.png")] == ["curve-тест-ü_.png"]
    assert capsys.readouterr().err == ""  # the emoji the font lacks: no matplotlib warning under -q
    assert main(["predict", "streaming", str(src), "--plots", ""]) == 2
    assert "--plots: give a folder name" in capsys.readouterr().err


def test_the_terminal_table_keeps_one_line_per_session(tmp_path, capsys):
    """An id with a line break or a tab, or 300 characters long, still gives one row of bounded width."""
    src = tmp_path / "s.json"
    src.write_text(json.dumps([_session(0, id="a\nb\tc"), _session(1, id="x" * 300)]))
    capsys.readouterr()
    assert main(["predict", "streaming", str(src), "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1].startswith("a\\nb\\tc ") and max(len(ln) for ln in lines) < 200, lines


def test_a_chart_draws_the_scores_interval(tmp_path):
    """With an interval the chart has a bar at the score (the PNG differs from the same chart without it)."""
    from deepqoe.predictor import load_predictor
    from deepqoe.sessions.predict import curve_plots

    s = [Session.from_dict(_session(1))]
    p = load_predictor("streaming")
    with_iv, _ = p.predict_sessions(s, interval=0.9)
    without, _ = p.predict_sessions(s, interval=None)  # (the default gives the model's 0.9 interval)
    assert "interval" in with_iv[0] and "interval" not in without[0]
    a = curve_plots(with_iv, s, tmp_path / "a")[0].read_bytes()
    b = curve_plots(without, s, tmp_path / "b")[0].read_bytes()
    assert a[:4] == b[:4] == b"\x89PNG" and a != b
