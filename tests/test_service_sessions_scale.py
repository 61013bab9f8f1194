"""The service names the bad session of a request (its place in the list and its id), and reports session
scores on another MOS scale (``"scale"`` / ``?scale=``) exactly as ``deepqoe predict --scale`` does."""

from __future__ import annotations

import json

import pytest
from conftest import post_json, shipped_app

from deepqoe.cli import main
from deepqoe.errors import DeepQoEError

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

ROW = {"content": "Sports", "resolution": 720, "bitrate_video": 1500.0, "age_user": 30, "sex_user": "men"}


def session(sid, seconds=40, *, height=720, kbps=2500, stalls=((0, 1.0),), **kw):
    n = int(seconds // 4)
    return {"id": sid, "device": "pc",
            "segments": [{"start": 4.0 * k, "duration": 4.0, "bitrate_kbps": kbps, "width": height * 16 // 9,
                          "height": height, "fps": 30} for k in range(n)],
            "stalls": [{"start": s, "duration": t} for s, t in stalls], **kw}


def good_sessions():
    return [session("hd"), session("low", height=240, kbps=300), session("stalls", 120, stalls=[(0, 2), (40, 6)])]


@pytest.fixture(scope="module")
def app():  # `client` and `table_client` come from conftest
    return shipped_app("streaming", max_body_bytes=500_000, max_items=50)


_post = post_json


# ------------------------------------------------------------------------------ which session is bad
BAD = [
    ("display height not a number", lambda: session("abc", context={"display_height": "big"}),
     "sessions[3] (id 'abc'): context.display_height: ", "sessions[3].context.display_height"),
    ("negative stall", lambda: session("neg", stalls=[(0, -1.0)]),
     "sessions[3] (id 'neg'): stalls[0].duration: ", "sessions[3].stalls[0].duration"),
    ("no segments", lambda: {"id": "empty", "device": "pc"},
     "sessions[3] (id 'empty'): segments: ", "sessions[3].segments"),
    ("integer id", lambda: {**session(7), "segments": [{"start": 0, "duration": "long"}]},
     "sessions[3] (id '7'): segments[0].duration: ", "sessions[3].segments[0].duration"),
    ("no id", lambda: {k: v for k, v in session("x").items() if k != "id"},
     "sessions[3]: id: ", "sessions[3].id"),
    ("id used twice", lambda: session("low"), "sessions[3] (id 'low'): id: the id is used twice (as sessions[1])",
     "sessions[3].id"),
    ("not an object", lambda: 5, "sessions[3]: expected a session object", "sessions[3]"),
]


@pytest.mark.parametrize("name,bad,start,field", BAD, ids=[b[0] for b in BAD])
def test_a_bad_session_is_named_by_place_and_id(client, name, bad, start, field):
    for body in ({"sessions": good_sessions() + [bad(), session("after")]}, good_sessions() + [bad()]):
        r = _post(client, body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith(start) and r.json()["field"] == field, r.text
        assert "session '" not in r.json()["detail"]  # said once, in front
    assert _post(client, {"sessions": good_sessions()}).status_code == 200


def test_the_first_failure_is_named_even_an_id_used_twice(client):
    body = [session("a"), session("b"), session("a"), session("neg", stalls=[(0, -1.0)])]
    r = _post(client, body)
    assert r.status_code == 422 and r.json()["field"] == "sessions[2].id", r.text
    assert r.json()["detail"] == "sessions[2] (id 'a'): id: the id is used twice (as sessions[0])"
    p1203 = {"I13": {"segments": [{"start": 2.0 * i, "duration": 2.0, "bitrate": 1500, "resolution": "1280x720"}
                                  for i in range(15)]}}
    r = _post(client, [p1203, {**p1203, "id": "pp", "I13": {}}])  # a P.1203 input too
    assert r.status_code == 422 and r.json()["field"].startswith("sessions[1].I13"), r.text
    assert r.json()["detail"].startswith("sessions[1] (id 'pp'): I13")


def test_a_single_session_is_sessions_0(client):
    r = _post(client, session("solo", context={"display_height": "big"}))
    assert r.status_code == 422 and r.json()["field"] == "sessions[0].context.display_height"
    assert r.json()["detail"].startswith("sessions[0] (id 'solo'): context.display_height: expected"), r.text


def test_a_session_that_fails_in_the_prediction_is_named(app, client, monkeypatch):
    """A session the predictor cannot score (a failure of ``predict_sessions``) fails the request as before,
    now naming the session as validation does."""
    predictor = app.state.service.predictor
    real = predictor._scores_curves_explain

    def flaky(batch, *a, **kw):
        for s in batch:
            if s.id == "boom":
                raise DeepQoEError("could not compute feature x", field="segments")
            if s.id == "bang":
                raise DeepQoEError(f"session '{s.id}': could not compute feature y")
        return real(batch, *a, **kw)

    monkeypatch.setattr(predictor, "_scores_curves_explain", flaky)
    r = _post(client, {"sessions": good_sessions() + [session("boom")]})
    assert r.status_code == 422 and r.json()["field"] == "sessions[3].segments", r.text
    assert r.json()["detail"] == "sessions[3] (id 'boom'): segments: could not compute feature x"
    r = _post(client, [session("bang")] + good_sessions())
    assert r.status_code == 422 and r.json()["field"] == "sessions[0]", r.text
    assert r.json()["detail"] == "sessions[0] (id 'bang'): could not compute feature y"


# ------------------------------------------------------------------------------ scale
@pytest.mark.parametrize("scale", ["0-100", "z", "1-7"])
def test_cli_and_service_give_the_same_numbers_on_a_scale(tmp_path, client, scale):
    docs = good_sessions()
    src, out = tmp_path / "s.json", tmp_path / "x.json"
    src.write_text(json.dumps(docs))
    assert main(["predict", "streaming", str(src), "--scale", scale, "--out", str(out), "-q"]) == 0
    cli = json.loads(out.read_text())
    r = _post(client, {"sessions": docs, "scale": scale}, curve="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scale"] == scale and [p["scale"] for p in body["predictions"]] == [scale] * len(docs)
    for a, b in zip(cli, body["predictions"]):
        assert a["id"] == b["id"] and a["score"] == b["score"]
        assert a["curve"] == b["curve"] and a["curve_step_s"] == b["curve_step_s"]
        assert a.get("interval") == b.get("interval") and a.get("distribution") == b.get("distribution")
    assert "interval" in cli[0]  # the shipped model has intervals: they are converted too
    plain = _post(client, {"sessions": docs}).json()
    assert plain["scale"] == "1-5" and plain["predictions"][0]["score"] != body["predictions"][0]["score"]
    if scale == "0-100":
        p, q = plain["predictions"][0], body["predictions"][0]
        assert q["score"] == pytest.approx((p["score"] - 1) * 25, abs=1e-3)
        assert q["interval"]["low"] == pytest.approx((p["interval"]["low"] - 1) * 25, abs=1e-3)


def test_scale_in_the_query_and_the_body_wins(client):
    s = session("q")
    query = _post(client, s, scale="0-100").json()
    body = _post(client, {"sessions": [s], "scale": "0-100"}, scale="z").json()
    assert query["scale"] == body["scale"] == "0-100"
    assert query["predictions"] == body["predictions"]
    default = _post(client, {"sessions": [s], "scale": None}, scale="0-100").json()  # null: the default, 1-5
    assert default["scale"] == "1-5" and default["predictions"][0]["scale"] == "1-5"


def test_scale_with_a_calibration_matches_the_cli(tmp_path, client):
    cal = client.get("/model").json()["calibrations"][0]
    docs = good_sessions()
    src, out = tmp_path / "s.json", tmp_path / "x.json"
    src.write_text(json.dumps(docs))
    assert main(["predict", "streaming", str(src), "--scale", "0-100", "--calibration", cal, "--out", str(out),
                 "-q"]) == 0
    r = _post(client, {"sessions": docs, "calibration": cal}, scale="0-100", curve="true")
    assert r.status_code == 200, r.text
    assert json.loads(out.read_text()) == r.json()["predictions"]


BAD_SCALES = [("5-1", "top must be above"), ("abc", "unknown rating scale"), ("0-100x", "unknown rating scale"),
              (100, "got integer"), (True, "got boolean"), ([0, 100], "got array"), ({"lo": 0}, "got object")]


@pytest.mark.parametrize("value,reason", BAD_SCALES, ids=[str(v[0]) for v in BAD_SCALES])
def test_bad_scales_are_422_on_scale(client, value, reason):
    r = _post(client, {"sessions": [session("a")], "scale": value})
    assert r.status_code == 422 and r.json()["field"] == "scale" and reason in r.json()["detail"], r.text
    if isinstance(value, str):
        r = _post(client, session("a"), scale=value)
        assert r.status_code == 422 and r.json()["field"] == "scale" and reason in r.json()["detail"], r.text


def test_the_cli_and_the_service_read_a_scale_with_one_function(monkeypatch, client, tmp_path, capsys):
    from deepqoe.sessions import scales

    seen = []
    real = scales.requested_scale
    monkeypatch.setattr(scales, "requested_scale", lambda v: seen.append(v) or real(v))
    assert _post(client, session("a"), scale="0-10").json()["scale"] == "0-10"
    src = tmp_path / "s.json"
    src.write_text(json.dumps([session("a")]))
    assert main(["predict", "streaming", str(src), "--scale", "0-10", "-q"]) == 0
    assert seen == ["0-10", "0-10"]
    capsys.readouterr()
    assert main(["predict", "streaming", str(src), "--scale", "5-1"]) == 2  # the CLI: a usage error
    assert "--scale: rating scale '5-1': the top must be above" in capsys.readouterr().err
    r = _post(client, session("a"), scale="5-1")  # the service: the same message, a 422
    assert r.json()["detail"] == "rating scale '5-1': the top must be above the bottom"


def test_a_table_model_refuses_scale(table_client):
    for body, params in (({"rows": [ROW], "scale": "0-100"}, {}), (ROW, {"scale": "0-100"})):
        r = _post(table_client, body, **params)
        assert r.status_code == 422 and r.json()["field"] == "scale", r.text
        assert "'scale' is for session models" in r.json()["detail"]
    assert "scale" not in table_client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"][
        "content"]["application/json"]["schema"]["oneOf"][0]["properties"]


def test_scale_is_documented(client):
    op = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    param = next(p for p in op["parameters"] if p["name"] == "scale")
    assert "0-100" in param["description"] and "--scale" in param["description"]
    wrapper = op["requestBody"]["content"]["application/json"]["schema"]["anyOf"][0]
    assert "0-100" in wrapper["properties"]["scale"]["description"]
    assert "scale" in client.get("/model").json()["request_schema"]["anyOf"][0]["properties"]
    assert "<code>scale=" in client.get("/docs").text
    r = _post(client, {"sessions": [session("a")], "sclae": "0-100"})
    assert r.status_code == 422 and "'scale'" in r.json()["detail"]  # listed among the allowed fields


@pytest.mark.parametrize("scale, per_point", [("0-100", 25.0), ("1-7", 1.5), ("z", 1.0 / 0.8)])
def test_an_explanation_is_on_the_scale_of_its_score(client, scale, per_point):
    """explain + scale: the explanation's value is the row's score, its contributions (differences of 1-5
    scores) are scaled by that scale's points per 1-5 point, and it says its scale."""
    s = session("ex", 60, stalls=[(0, 2), (30, 4)])
    common = _post(client, {"sessions": [s], "explain": True}).json()["predictions"][0]
    other = _post(client, {"sessions": [s], "explain": True, "scale": scale}).json()["predictions"][0]
    ex0, ex = common["explanation"], other["explanation"]
    assert ex0["scale"] == "1-5" and ex["scale"] == scale
    assert ex["value"] == pytest.approx(other["score"], abs=1e-5)
    assert ex0["contributions"]["stalls"] < 0
    for part, v in ex0["contributions"].items():
        assert ex["contributions"][part] == pytest.approx(v * per_point, abs=1e-6), part


def test_the_answer_lists_the_notes_the_cli_prints(client):
    """A stall just after the media's end is moved to the end with a note: deepqoe predict prints it on
    stderr; the service's answer lists it under "notes", every time it is asked (not once per process), and
    an answer without notes has none."""
    late = session("late", 40, stalls=[(0, 1.0), (40.5, 2.0)])
    for _ in range(2):
        r = _post(client, {"sessions": [late]})
        assert r.status_code == 200, r.text
        notes = r.json().get("notes")
        assert notes and len(notes) == 1 and "late" in notes[0] and "\n" not in notes[0], r.json()
    assert "notes" not in _post(client, {"sessions": [session("fine")]}).json()
    # named as the request's errors name a session: by its place and id, the field after it
    r = _post(client, {"sessions": [session("fine"), late]}).json()
    assert r["notes"][0].startswith("sessions[1] (id 'late'): stalls[1].start: "), r["notes"]
    assert "file 'request'" not in r["notes"][0] and "session 'late'" not in r["notes"][0]


def test_a_table_models_answer_lists_its_notes(table_client):
    """An unseen category in a row (the CLI's 'deepqoe: note: ...') is a note of the answer."""
    row = {"content": "Sports", "resolution": 720, "bitrate_video": 1500.0, "age_user": 30, "sex_user": "men"}
    assert "notes" not in _post(table_client, {"rows": [row]}).json()
    r = _post(table_client, {"rows": [dict(row, sex_user="robot")]})
    assert r.status_code == 200, r.text
    notes = r.json().get("notes", [])
    assert len(notes) == 1 and "sex_user" in notes[0] and "robot" in notes[0], r.json()
