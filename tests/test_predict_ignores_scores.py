"""Prediction never uses a session's ``mos``: one that cannot be used (outside its scale, a ``mos_scale`` that
is not a scale) is left out for prediction, with one note per file / call / request / batch, on every path
(``deepqoe predict``, ``Predictor.predict_sessions``, ``POST /predict``, ``sessions compare``, ``--scheduler``);
training, ``sessions validate`` and ``sessions convert`` refuse it as before."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from deepqoe.cli import main
from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.sessions.readers import load_sessions
from deepqoe.sessions.session import Session

SUFFIX = ("ignored for prediction (prediction does not use the mos; 2 sessions; nor are they compared with the "
          "scores); give the mos_scale the mos is on to keep it")


def _session(sid: str, i: int = 0, **kw) -> dict:
    d = {"id": sid, "device": "pc", "stalls": [[0, 1.0 + i]],
         "segments": [{"start": 4 * k, "duration": 4, "bitrate_kbps": 900 + 700 * i, "height": 720} for k in range(6)]}
    d.update(kw)
    return d


def _lab_files(folder):
    """a.json: s0 (mos 105, no scale), s1 (mos 40, no scale), s2 (mos 3: fine); b.csv: c0 (mos 105), c1 (a
    mos_scale that is no scale), c2 (no mos)."""
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps([_session("s0", 0, mos=105), _session("s1", 1, mos=40),
                                               _session("s2", 2, mos=3)]))
    rows = []
    for i, (sid, extra) in enumerate([("c0", {"mos": 105}), ("c1", {"mos": 3, "mos_scale": "good-ish"}),
                                      ("c2", {})]):
        for k in range(6):
            rows.append({"session_id": sid, "start": 4 * k, "duration": 4, "bitrate_kbps": 1200 + 500 * i,
                         "height": 720, "stall_before": 1.0 if k == 0 else 0.0, "device": "pc", **extra})
    pd.DataFrame(rows).to_csv(folder / "b.csv", index=False)
    return folder


def test_the_rule_lives_in_session_validation():
    from deepqoe.sessions.session import IgnoredMos

    bad = _session("x", mos=105)
    with pytest.raises(DeepQoEError) as e:  # checked as ever
        Session.from_dict(bad, file="a.json")
    assert str(e.value) == "file 'a.json', field 'mos': session 'x': 105 is outside the scale 1-5"
    ignored = IgnoredMos()
    s = Session.from_dict(bad, file="a.json", ignore_mos=ignored)
    assert s.mos is None and s.mos_scale is None and ignored.n == 1 and ignored.first.field == "mos"
    s = Session.from_dict(_session("y", mos=2, mos_scale="1-5"), ignore_mos=ignored)  # a usable mos is kept
    assert (s.mos, s.mos_scale, ignored.n) == (2.0, "1-5", 1)
    with pytest.raises(DeepQoEError) as e:  # any other problem still fails the session
        Session.from_dict(_session("z", mos=105, device="fridge"), ignore_mos=ignored)
    assert e.value.field == "device" and ignored.n == 1


def test_cli_predict_scores_them_with_one_note_per_file(tmp_path, capsys):
    folder = _lab_files(tmp_path / "logs")
    out = tmp_path / "scores.json"
    assert main(["predict", "streaming", str(folder), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "ignored for prediction" in line]
    assert notes == [
        f"deepqoe: note: file '{folder / 'a.json'}', field 'mos': session 's0': 105 is outside the scale 1-5 — "
        + SUFFIX,
        f"deepqoe: note: file '{folder / 'b.csv'}', field 'mos': session 'c0': 105 is outside the scale 1-5 — "
        + SUFFIX]
    rows = json.loads(out.read_text())
    assert [r["id"] for r in rows] == ["s0", "s1", "s2", "c0", "c1", "c2"]
    # the mos plays no part in the score
    assert main(["predict", "streaming", str(folder / "a.json"), "--out", str(out), "-q"]) == 0
    again = {r["id"]: r["score"] for r in json.loads(out.read_text())}
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([_session("s0", 0), _session("s1", 1), _session("s2", 2, mos=3)]))
    assert main(["predict", "streaming", str(plain), "--out", str(out), "-q"]) == 0
    assert {r["id"]: r["score"] for r in json.loads(out.read_text())} == again


def test_validate_convert_and_the_default_reading_still_refuse_them(tmp_path, capsys):
    folder = _lab_files(tmp_path / "logs")
    sessions, failures = load_sessions(folder)
    assert [s.id for s in sessions] == ["s2", "c2"]
    assert [(e.field or e.column) for e in failures] == ["mos", "mos", "mos", "mos_scale"]
    assert main(["sessions", "validate", str(folder)]) == 3
    captured = capsys.readouterr()
    assert "2 valid session(s), 4 problem(s)" in captured.out and "105 is outside the scale 1-5" in captured.err
    assert "ignored for prediction" not in captured.err
    assert main(["sessions", "convert", str(folder), "--out", str(tmp_path / "all.json")]) == 3
    assert [d["id"] for d in json.loads((tmp_path / "all.json").read_text())["sessions"]] == ["s2", "c2"]


def test_python_predictor_scores_session_dicts_with_one_note():
    from deepqoe.predictor import load_predictor

    p = load_predictor("streaming")
    items = [_session("a", 0, mos=105), _session("b", 1, mos=3, mos_scale="1-x"),
             _session("c", 2, mos=105, segments=[{"start": 0, "duration": 4, "fps": 1e6}])]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows, failures = p.predict_sessions(items, curve=False, interval=None)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert len(failures) == 1 and failures[0].field == "segments[0].fps"  # another problem: as ever
    notes = [str(w.message) for w in caught if issubclass(w.category, DeepQoENote)]
    assert notes == ["field 'mos': session 'a': 105 is outside the scale 1-5 — " + SUFFIX]
    plain = p.predict_sessions([_session("a", 0)], curve=False, interval=None)[0]
    assert rows[0]["score"] == plain[0]["score"]


def test_service_answers_with_the_note():
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from deepqoe.serve import create_app

    body = {"sessions": [_session("a", 0, mos=105), _session("b", 1, mos=40), _session("c", 2)]}
    with TestClient(create_app("streaming", warm_up=False), raise_server_exceptions=False) as client:
        r = client.post("/predict", json=body)
        assert r.status_code == 200, r.text
        got = r.json()
        assert [p["id"] for p in got["predictions"]] == ["a", "b", "c"]
        assert [n for n in got.get("notes", []) if "ignored for prediction" in n] == [
            "sessions[0] (id 'a'): mos: 105 is outside the scale 1-5 — " + SUFFIX]
        body["sessions"][2]["device"] = "fridge"  # another problem still fails the request, naming only it
        r = client.post("/predict", json=body)
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["sessions[2].device"]


def test_sessions_compare_scores_them(tmp_path, capsys):
    a, b = _lab_files(tmp_path / "a"), _lab_files(tmp_path / "b")
    assert main(["sessions", "compare", str(a), str(b), "--json", "--bootstrap", "100"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["sets"] == {"A": 6, "B": 6}
    notes = [line for line in captured.err.splitlines() if "ignored for prediction" in line]
    assert len(notes) == 4 and all(f"file '{d / f}'" in n for d, f, n in zip((a, a, b, b), ("a.json", "b.csv") * 2,
                                                                              notes))  # one per file of each set


def test_batch_scoring_scores_them_with_one_note_for_the_batch(tmp_path):
    pytest.importorskip("distributed")
    from deepqoe.batch_scoring import score_batch

    table = pd.read_csv(_lab_files(tmp_path / "logs") / "b.csv")
    parts = tmp_path / "parts"
    parts.mkdir()
    for k in range(2):  # two partitions, each of sessions with an unusable mos
        part = table.assign(session_id=table["session_id"] + f"-{k}")
        part.to_parquet(parts / f"part-{k}.parquet", index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = score_batch("streaming", parts, tmp_path / "out", workers=1, processes=False, npartitions=2)
    assert res.n_scored == 6 and res.failures == [] and res.n_partitions == 2
    notes = [str(w.message) for w in caught if issubclass(w.category, DeepQoENote)]
    assert len(notes) == 1, notes  # one for the batch, counting the sessions of every partition
    assert notes[0].endswith("— ignored for prediction (prediction does not use the mos; 4 sessions; nor are they "
                             "compared with the scores); give the mos_scale the mos is on to keep it")
    assert f"file '{parts}'" in notes[0] and "session 'c" in notes[0]
