"""The prediction service: good requests, every kind of bad request (4xx with a reason, never a 500, and
the service keeps serving), session models, explanations, and concurrent requests on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's notice about its httpx backend
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from deepqoe.persistence import PRETRAINED_DIR  # noqa: E402

ROW = {"content": "Sports", "resolution": 720, "bitrate_video": 1500.0, "age_user": 30, "sex_user": "men"}
SESSION = {"id": "s1", "device": "pc",
           "segments": [{"start": 4.0 * i, "duration": 4.0, "bitrate_kbps": 2500, "width": 1280, "height": 720,
                         "fps": 30} for i in range(10)],
           "stalls": [{"start": 0, "duration": 1.0}, {"start": 12, "duration": 3.0}]}
P1203 = {"I13": {"segments": [{"start": 2.0 * i, "duration": 2.0, "bitrate": 1500, "resolution": "1280x720",
                               "fps": 25, "codec": "h264"} for i in range(15)]},
         "I23": {"stalling": [[0, 1.5], [10, 2.0]]}, "IGen": {"device": "mobile", "displaySize": "1920x1080"}}


def _need(name):
    if not (PRETRAINED_DIR / name / "model.json").is_file():
        pytest.skip(f"shipped model {name} not in this build")


@pytest.fixture(scope="module")
def client():
    _need("upec-qoe-lab")
    from deepqoe.serve import create_app

    with TestClient(create_app("upec-qoe-lab", max_body_bytes=20_000, max_items=50),
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def session_client():
    _need("streaming")
    from deepqoe.serve import create_app

    with TestClient(create_app("streaming", max_body_bytes=200_000, max_items=20), raise_server_exceptions=False) as c:
        yield c


def _post(c, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return c.post("/predict", content=data, headers={"content-type": "application/json"}, **kw)


def test_health_model_and_docs(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    m = client.get("/model").json()
    assert m["task"] == "classification" and m["classes"] == [1, 2, 3, 4, 5]
    assert {i["column"] for i in m["inputs"]} == set(ROW) | {"id_user"}  # id_user: the optional viewer
    assert "UPEC" in m["model_card"]
    spec = client.get("/openapi.json").json()
    assert "/predict" in spec["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text and "POST /predict" in docs.text
    assert "<script" not in docs.text and "http" not in docs.text.replace("http://HOST", "")  # works offline


def test_predict_forms(client):
    one = _post(client, ROW)
    assert one.status_code == 200, one.text
    p = one.json()["predictions"][0]
    assert p["score"] in [1, 2, 3, 4, 5] and "prediction" not in p
    assert abs(sum(p["probabilities"].values()) - 1) < 1e-4
    many = _post(client, [ROW, {**ROW, "resolution": 240, "bitrate_video": 200.0, "id": "low"}]).json()
    assert many["n"] == 2 and many["predictions"][1]["id"] == "low"
    wrapped = _post(client, {"rows": [ROW], "explain": True}).json()["predictions"][0]
    ex = wrapped["explanation"]
    assert set(ex["contributions"]) == {"content", "resolution", "bitrate_video", "age_user", "sex_user", "id_user"}
    assert abs(sum(ex["contributions"].values()) + ex["baseline"] - ex["value"]) < 1e-6
    assert abs(ex["value"] - wrapped["expected_rating"]) < 1e-5
    q = _post(client, [ROW], params={"explain": "true"}).json()["predictions"][0]
    assert "explanation" in q
    # a float that is a whole number is the same category (720.0 == 720)
    a = _post(client, {**ROW, "resolution": 720.0}).json()["predictions"][0]["probabilities"]
    assert a == one.json()["predictions"][0]["probabilities"]


BAD = [
    ("malformed JSON", b'{"content": "Sports", ', 400, "malformed JSON"),
    ("empty body", b"", 400, "empty"),
    ("not UTF-8", b'{"content": "\xff\xfe"}', 400, "UTF-8"),
    ("NaN literal", b'{"content": "News", "resolution": 720, "bitrate_video": NaN, "age_user": 30, '
                    b'"sex_user": "men"}', 400, "NaN"),
    ("Infinity literal", b'[{"bitrate_video": Infinity}]', 400, "Infinity"),
    ("huge number", json.dumps(ROW).replace("1500.0", "1e999").encode(), 422, "finite"),
    ("wrong type number", {**ROW, "bitrate_video": "fast"}, 422, "bitrate_video"),
    ("bool as number", {**ROW, "age_user": True}, 422, "age_user"),
    ("wrong type text", {**ROW, "content": 5}, 422, "content"),
    ("wrong type category", {**ROW, "sex_user": ["men"]}, 422, "sex_user"),
    ("null value", {**ROW, "age_user": None}, 422, "age_user"),
    ("unknown field", {**ROW, "bitrate": 3}, 422, "unknown field 'bitrate'"),
    ("missing field", {k: v for k, v in ROW.items() if k != "age_user"}, 422, "missing field 'age_user'"),
    ("row not an object", [ROW, 3], 422, "rows[1]"),
    ("top level string", json.dumps("just text"), 422, "expected an object"),
    ("empty list", [], 422, "empty"),
    ("rows not a list", {"rows": {"a": 1}}, 422, "array"),
    ("extra key next to rows", {"rows": [ROW], "foo": 1}, 422, "unknown field 'foo'"),
    ("explain not a bool", {"rows": [ROW], "explain": "yes"}, 422, "explain"),
    ("bad id", {**ROW, "id": {"x": 1}}, 422, "id"),
    ("too many rows", [ROW] * 60, 413, "too many"),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, 400, "nested"),
    ("10**400", json.dumps(ROW).replace("1500.0", "1" + "0" * 400).encode(), 422, "finite"),
    ("10**5000", json.dumps(ROW).replace("1500.0", "1" + "0" * 5000).encode(), 400, "malformed"),
    ("deep nesting in an object", b'{"a": ' * 2500 + b"1" + b"}" * 2500, 400, "nested"),
]


@pytest.mark.parametrize("name,body,status,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_4xx_with_reason(client, name, body, status, reason):
    r = _post(client, body)
    assert r.status_code == status, (name, r.status_code, r.text)
    detail = r.json()["detail"]
    assert reason.lower() in detail.lower(), detail
    # and the service keeps serving
    assert _post(client, ROW).status_code == 200


def test_huge_bodies_413(client):
    big = json.dumps([ROW] * 400)  # over 20 kB
    r = _post(client, big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit still holds while streaming
        for _ in range(100):
            yield b" " * 1000
    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert _post(client, ROW).status_code == 200


def test_bad_query_and_methods(client):
    assert _post(client, ROW, params={"explain": "maybe"}).status_code == 422
    assert client.get("/predict").status_code == 405
    assert client.get("/nope").status_code == 404


def test_session_model(session_client):
    c = session_client
    m = c.get("/model").json()
    assert m["kind"] == "sessions" and m["scale"] == "1-5"
    r = _post(c, SESSION, params={"explain": "true", "curve": "true"})
    assert r.status_code == 200, r.text
    p = r.json()["predictions"][0]
    assert p["id"] == "s1" and 1.0 <= p["score"] <= 5.0 and p["scale"] == "1-5"
    assert set(p["explanation"]["contributions"]) == {"stalls", "startup", "quality", "switches"}
    assert len(p["curve"]) > 30 and all(1.0 <= v <= 5.0 for v in p["curve"])
    both = _post(c, {"sessions": [SESSION, {**SESSION, "id": "s2", "stalls": []}]}).json()
    assert [q["id"] for q in both["predictions"]] == ["s1", "s2"]
    assert both["predictions"][1]["score"] > both["predictions"][0]["score"]  # no stalls: better
    p12 = _post(c, P1203)
    assert p12.status_code == 200, p12.text


def test_session_request_schema_is_the_session_format(session_client):
    from deepqoe.sessions.schema import session_json_schema

    spec = session_client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    def no_nulls(x):  # FastAPI leaves out "default": null
        if isinstance(x, dict):
            return {k: no_nulls(v) for k, v in x.items() if v is not None}
        return [no_nulls(v) for v in x] if isinstance(x, list) else x

    text = json.dumps(body)
    assert json.dumps(no_nulls(session_json_schema(inline=True))) in text  # generated from the one definition
    assert "$defs" not in text and "representation" in text and "smartphone" in text
    assert session_client.get("/docs").status_code == 200


def test_session_scores_stay_on_the_scale(session_client):
    def plain(sid, seconds, **kw):
        return {"id": sid, "segments": [{"start": 20.0 * i, "duration": 20.0, "bitrate_kbps": 2500, "height": 720}
                                        for i in range(int(seconds / 20))], **kw}

    stalls = [{"start": 0, "duration": 2.0}] + [{"start": 20.0 * k, "duration": 50.0} for k in range(1, 30)]
    body = {"sessions": [plain("10min", 600), plain("10h", 36000), plain("stalls", 600, stalls=stalls)]}
    r = _post(session_client, body, params={"curve": "true"})
    assert r.status_code == 200, r.text
    for p in r.json()["predictions"]:
        assert 1.0 <= p["score"] <= 5.0 and all(1.0 <= v <= 5.0 for v in p["curve"])


SESSION_BAD = [
    ("no segments", {"id": "x"}, "segments"),
    ("negative duration", {**SESSION, "segments": [{"start": 0, "duration": -4}]}, "duration"),
    ("wrong type", {**SESSION, "segments": [{"start": 0, "duration": "long"}]}, "number"),
    ("unknown field", {**SESSION, "colour": "red"}, "colour"),
    ("unknown device", {**SESSION, "device": "toaster"}, "device"),
    ("sessions not a list", {"sessions": 3}, "array"),
    ("P.1203 without segments", {"I23": {"stalling": []}, "IGen": {"device": "pc"}}, "I13"),
    ("duplicate ids", [SESSION, SESSION], "twice"),
    ("10**400 duration", {**SESSION, "segments": [{"start": 0, "duration": 10 ** 400}]}, "finite"),
    ("stall of 1e12 s", {**SESSION, "stalls": [{"start": 4, "duration": 1e12}]}, "7 days"),
    ("stall far after the end", {**SESSION, "stalls": [{"start": 45, "duration": 1}]}, "after the end"),
    ("bool as a number", {**SESSION, "segments": [{"start": 0, "duration": True}]}, "number"),
]


@pytest.mark.parametrize("name,body,reason", SESSION_BAD, ids=[b[0] for b in SESSION_BAD])
def test_bad_sessions_get_422(session_client, name, body, reason):
    r = _post(session_client, body)
    assert r.status_code == 422, (name, r.text)
    assert reason.lower() in r.json()["detail"].lower()
    assert _post(session_client, SESSION).status_code == 200


def test_many_requests_at_once_on_loopback():
    """A real uvicorn server on 127.0.0.1: 8 concurrent clients, every answer right."""
    _need("upec-qoe-lab")
    import httpx
    import uvicorn

    from deepqoe.serve import create_app

    app = create_app("upec-qoe-lab")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        expected = httpx.post(f"{url}/predict", json=ROW).json()["predictions"][0]["probabilities"]

        def worker(k):
            codes = []
            with httpx.Client(base_url=url, timeout=30) as c:
                for i in range(25):
                    body = ROW if i % 5 else b"{bad json"
                    r = c.post("/predict", content=body if isinstance(body, bytes) else json.dumps(body),
                               headers={"content-type": "application/json"})
                    codes.append(r.status_code)
                    if r.status_code == 200:
                        assert r.json()["predictions"][0]["probabilities"] == expected
            return codes

        with ThreadPoolExecutor(8) as ex:
            codes = [c for cs in ex.map(worker, range(8)) for c in cs]
        assert codes.count(200) == 160 and codes.count(400) == 40
    finally:
        server.should_exit = True
        th.join(10)


# ------------------------------------------------------------------------------------- audit fixes
def _lone(obj) -> str:
    """JSON text of ``obj`` with each "@" a lone surrogate escape: legal JSON, but no UTF-8 text holds it."""
    return json.dumps(obj).replace("@", "\\ud800")


SURROGATES = [
    ("content", _lone([{**ROW, "content": "@"}]), "[0].content"),
    ("sex_user", _lone({**ROW, "sex_user": "@"}), "sex_user"),
    ("id", _lone({"rows": [{**ROW, "id": "@"}]}), "rows[0].id"),
    ("a row key", _lone([{**ROW, "@": 1}]), "[0].\\ud800"),
    ("a key next to rows", _lone({"rows": [ROW], "@": 1}), "\\ud800"),
    ("the whole body", '"\\uDBFF"', None),
]


@pytest.mark.parametrize("name,body,field", SURROGATES, ids=[s[0] for s in SURROGATES])
def test_lone_surrogates_are_400_naming_the_field(client, name, body, field):
    r = _post(client, body)
    assert r.status_code == 400, r.text
    assert "unicode" in r.json()["detail"].lower() and r.json().get("field") == field
    assert _post(client, ROW).status_code == 200
    assert _post(client, json.dumps({**ROW, "id": "@"}).replace("@", "\\ud83d\\ude00")).status_code == 200


def test_session_model_lone_surrogate(session_client):
    example = session_client.get("/model").json()["example_request"]["sessions"][0]
    r = _post(session_client, _lone({"sessions": [example], "@": 1}))
    assert r.status_code == 400 and r.json()["field"] == "\\ud800"


def test_405_keeps_allow_header(client):
    r = client.get("/predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["detail"]


@pytest.mark.parametrize("sid", [True, None, [1, 2], {"a": 1}, 5.5, ""])
def test_p1203_id_is_checked(session_client, sid):
    r = _post(session_client, {**P1203, "id": sid})
    assert r.status_code == 422 and r.json()["field"] == "sessions[0].id", r.text


def test_p1203_id_text_or_integer(session_client):
    r = _post(session_client, [{**P1203, "id": 7}, {**P1203, "id": "x"}])
    assert r.status_code == 200 and [p["id"] for p in r.json()["predictions"]] == ["7", "x"]


SESSION_SHAPES = [("5", "integer", "sessions[0]"), ("null", "null", "sessions[0]"),
                  ('"hello"', "string", "sessions[0]"), ("true", "boolean", "sessions[0]"),
                  ('{"sessions": [null]}', "null", "sessions[0]"), ("[]", "empty", "sessions"),
                  ('{"sessions": []}', "empty", "sessions")]


@pytest.mark.parametrize("body,reason,field", SESSION_SHAPES, ids=[s[0] for s in SESSION_SHAPES])
def test_session_shapes_name_json_types_and_fields(session_client, body, reason, field):
    r = _post(session_client, body)
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert reason in r.json()["detail"] and "NoneType" not in r.json()["detail"]


def test_rating_head_messages(client, session_client):
    r = _post(session_client, {"sessions": [SESSION], "rating_head": 5})
    assert r.status_code == 422 and "must be a dataset name" in r.json()["detail"]
    assert "is for session models" not in r.json()["detail"]
    r = _post(client, ROW, params={"rating_head": "x"})
    assert r.status_code == 422 and r.json()["field"] == "rating_head"
    assert "is for session models" in r.json()["detail"] and "got string" not in r.json()["detail"]


@pytest.mark.parametrize("key", ["a\nb", "k" * 15_000], ids=["newline", "long"])  # the body limit: 20 kB
def test_echoed_keys_stay_one_short_line(client, session_client, key):
    for c, body in ((client, {**ROW, key: 1}), (client, {"rows": [ROW], key: 1}),
                    (session_client, {"sessions": [SESSION], key: 1}), (session_client, {**SESSION, key: 1})):
        r = _post(c, body)
        assert r.status_code == 422 and len(r.content) < 3000, len(r.content)
        assert "\n" not in r.json()["detail"] and "\n" not in r.json()["field"]
    r = _post(client, ROW, params={key: "1"})
    assert r.status_code == 422 and len(r.content) < 3000 and "\n" not in r.json()["detail"]


def test_query_parameters(client, session_client):
    def interval(c, body, **params):
        r = _post(c, body, params=params)
        assert r.status_code == 200, r.text
        return r.json()["predictions"][0].get("interval")

    assert interval(session_client, SESSION) is not None
    assert interval(session_client, SESSION, interval="null") is None
    assert interval(session_client, SESSION, interval="none") is None
    cal = session_client.get("/model").json()["calibrations"][0]
    for value in ("none", "null", "None"):  # the average calibration, as leaving it out
        r = _post(session_client, SESSION, params={"calibration": value, "rating_head": value})
        assert r.status_code == 200 and "calibration" not in r.json()["predictions"][0], r.text
    r = _post(session_client, {"sessions": [SESSION], "calibration": None}, params={"calibration": cal})
    assert r.status_code == 200 and "calibration" not in r.json()["predictions"][0]  # the body wins
    for c, body, name in ((client, ROW, "intervl"), (session_client, SESSION, "scal")):
        r = _post(c, body, params={name: "0.5"})
        assert r.status_code == 422 and r.json()["field"] == name and "unknown query parameter" in r.json()["detail"]
    r = _post(client, ROW, params={"curve": "true"})
    assert r.status_code == 422 and r.json()["field"] == "curve"
    assert _post(client, ROW, params={"curve": "false"}).status_code == 200


def test_explain_in_body_wins_over_query(client, session_client):
    for c, key, item in ((client, "rows", ROW), (session_client, "sessions", SESSION)):
        off = _post(c, {key: [item], "explain": False}, params={"explain": "true"}).json()["predictions"][0]
        on = _post(c, {key: [item], "explain": True}, params={"explain": "false"}).json()["predictions"][0]
        assert "explanation" not in off and "explanation" in on


def test_docs_and_openapi_list_the_query_parameters(client, session_client):
    for c, names in ((client, ["explain", "interval"]),
                     (session_client, ["explain", "interval", "curve", "calibration", "rating_head"])):
        docs = c.get("/docs").text
        assert all(f"<code>{n}=" in docs for n in names), names
        op = c.get("/openapi.json").json()["paths"]["/predict"]["post"]
        assert {p["name"] for p in op["parameters"]} >= set(names)
        assert {"400", "413", "422"} <= set(op["responses"])
        assert "detail" in json.dumps(op["responses"]["400"])
    assert "<code>curve=" not in client.get("/docs").text


# ------------------------------------------------------------------------------------- deepqoe serve
@pytest.mark.parametrize("option", [["--port", "99999"], ["--port", "-1"], ["--port", "x"], ["--max-body", "0"],
                                    ["--max-body", "-5"], ["--max-items", "0"], ["--max-items", "-1"]])
def test_serve_bad_option_values_are_usage_errors(option, capsys):
    from deepqoe.cli import main

    with pytest.raises(SystemExit) as e:  # (an address nobody has: were the value accepted, no server starts)
        main(["serve", "upec-qoe-lab", "--host", "999.1.1.1", *option])
    assert e.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_serve_cannot_listen_is_one_line_exit_1(capsys):
    from deepqoe.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        assert main(["serve", "upec-qoe-lab", "--port", port]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("deepqoe: error: cannot listen on 127.0.0.1:") and "\n" not in err
    assert main(["serve", "upec-qoe-lab", "--host", "999.1.1.1", "--port", port]) == 1
    err = capsys.readouterr().err.strip()
    assert "999.1.1.1" in err and "\n" not in err
