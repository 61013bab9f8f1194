"""One path from input to score: the CLI, the Python API and ``POST /predict`` give the same scores, always
inside the scale, for short, long, very long and stall-ridden sessions; absurd sessions and numbers get a
score inside the scale or a one-line error, never a crash, NaN or 500."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from deepqoe.cli import main
from deepqoe.errors import DeepQoEError
from deepqoe.persistence import PRETRAINED_DIR
from deepqoe.predictor import Predictor, load_predictor
from deepqoe.sessions import Session

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402


def _need(name):
    if not (PRETRAINED_DIR / name / "model.json").is_file():
        pytest.skip(f"shipped model {name} not in this build")


def session(sid, seconds, *, height=720, kbps=2500, seg=4.0, stalls=(), device="pc"):
    n = max(1, int(round(seconds / seg)))
    d = seconds / n
    return {"id": sid, "device": device,
            "segments": [{"start": k * d, "duration": d, "bitrate_kbps": kbps, "width": height * 16 // 9,
                          "height": height, "fps": 30} for k in range(n)],
            "stalls": [{"start": s, "duration": t} for s, t in stalls]}


def many_stalls(sid, seconds, n, rng):
    starts = np.sort(rng.choice(np.arange(1, int(seconds) - 1), n, replace=False)).astype(float)
    return session(sid, seconds, stalls=[(0.0, 2.0)] + [(float(s), float(rng.uniform(5, 60))) for s in starts])


def sessions_of_every_length() -> list[dict]:
    rng = np.random.default_rng(7)
    return [
        session("10s", 10, seg=2),
        session("10min-720p", 600),
        session("10min-1080p-startup", 600, height=1080, kbps=6000, stalls=[(0, 1.0)]),
        session("10h", 36000),
        session("10h-low", 36000, height=240, kbps=300, device="mobile"),
        many_stalls("29-long-stalls", 600, 29, rng),
        many_stalls("40-stalls", 900, 40, rng),
        many_stalls("10s-stalls", 10, 5, rng) | {"segments": session("x", 10, seg=1)["segments"]},
    ]


@pytest.fixture(scope="module")
def predictor():
    _need("streaming")
    return load_predictor("streaming")


@pytest.fixture(scope="module")
def client():
    _need("streaming")
    from deepqoe.serve import create_app

    with TestClient(create_app("streaming", max_body_bytes=5_000_000, max_items=100, warm_up=False),
                    raise_server_exceptions=False) as c:
        yield c


def _post(c, body, **params):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return c.post("/predict", content=data, headers={"content-type": "application/json"}, params=params)


def _in_scale(rows, lo=1.0, hi=5.0):
    for r in rows:
        assert math.isfinite(r["score"]) and lo <= r["score"] <= hi, r["id"]
        for v in r.get("curve") or []:
            assert math.isfinite(v) and lo <= v <= hi, r["id"]


def test_cli_python_and_service_give_the_same_scores(tmp_path, predictor, client):
    docs = sessions_of_every_length()
    src, out = tmp_path / "f.json", tmp_path / "x.json"
    src.write_text(json.dumps(docs))
    assert main(["predict", "streaming", str(src), "--out", str(out)]) == 0
    cli_rows = json.loads(out.read_text())

    py_rows, failures = predictor.predict_sessions([Session.from_dict(d) for d in docs])
    assert not failures

    r = _post(client, {"sessions": docs}, curve="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scale"] == "1-5" and body["n"] == len(docs)
    svc_rows = body["predictions"]

    ids = [d["id"] for d in docs]
    for rows in (cli_rows, py_rows, svc_rows):
        assert [x["id"] for x in rows] == ids
        _in_scale(rows)
        assert all(set(x) >= {"id", "score", "scale", "curve", "curve_step_s"} for x in rows)
    np.testing.assert_allclose([x["score"] for x in cli_rows], [x["score"] for x in py_rows], atol=1e-6)
    np.testing.assert_allclose([x["score"] for x in svc_rows], [x["score"] for x in py_rows], atol=1e-6)
    for a, b in zip(svc_rows, py_rows):
        np.testing.assert_allclose(a["curve"], b["curve"], atol=1e-6)
    by_id = {x["id"]: x["score"] for x in py_rows}
    assert by_id["40-stalls"] < by_id["10min-720p"]  # dozens of long stalls cost, and stay on the scale


def test_the_scale_asked_for_is_the_scale_answered(predictor):
    s = [Session.from_dict(d) for d in sessions_of_every_length()]
    a, _ = predictor.predict_sessions(s, curve=False)
    b, _ = predictor.predict_sessions(s, scale="0-100", curve=False)
    _in_scale(b, 0, 100)
    assert all(r["curve"] is None and r["scale"] == "0-100" for r in b)
    np.testing.assert_allclose([r["score"] for r in b], [(r["score"] - 1) * 25 for r in a], atol=1e-4)
    with pytest.raises(DeepQoEError, match="rating scale"):
        predictor.predict_sessions(s, scale="stars")


class _BoundedModel:
    """The other kind of session model: it scores sessions itself (common scale) and gives curves."""

    meta_ = {"task": "regression", "session_model": {"scale": "1-5"}, "name": "toy"}

    def predict_sessions(self, sessions):
        return np.array([1.0 + 4.0 / (1.0 + s.stall_total) for s in sessions])

    def predict_curves(self, sessions):
        return [np.linspace(5.0, 1.0 + 4.0 / (1.0 + s.stall_total), int(math.ceil(s.wall_duration)))
                for s in sessions]

    def explain_sessions(self, sessions):
        return [{"stalls": -s.stall_total} for s in sessions]


class _PickyModel(_BoundedModel):
    def predict_sessions(self, sessions):
        if any(s.id == "odd" for s in sessions):
            raise DeepQoEError("cannot score this one", field="segments")
        return super().predict_sessions(sessions)


def test_a_bad_session_is_a_failure_and_the_batch_goes_on():
    s = [Session.from_dict(session(i, 20)) for i in ("a", "odd", "b")]
    rows, failures = Predictor(_PickyModel()).predict_sessions(s)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert len(failures) == 1 and "session 'odd'" in str(failures[0]) and failures[0].field == "segments"


def test_a_model_that_scores_sessions_itself_goes_through_the_same_path():
    p = Predictor(_BoundedModel())
    assert p.is_session and p.scale == "1-5" and p.name == "toy"
    s = [Session.from_dict(session("a", 20)), Session.from_dict(session("b", 20, stalls=[(4, 3.0)]))]
    rows, failures = p.predict_sessions(s, scale="0-100", explain=True)
    assert not failures and [r["score"] for r in rows] == [100.0, 25.0]
    assert rows[1]["curve"][0] == 100.0 and len(rows[1]["curve"]) == 23 and rows[1]["curve_step_s"] == 1.0
    # the explanation is on the scale of the score: -3 points of 1-5 are -75 of 0-100
    assert rows[1]["explanation"]["contributions"] == {"stalls": -75.0}
    assert rows[1]["explanation"]["scale"] == "0-100"


def test_a_table_model_gives_one_output_shape(tmp_path):
    _need("upec-qoe-lab")
    from deepqoe.demo import VIEWER_ROWS
    from deepqoe.serve import create_app

    p = load_predictor("upec-qoe-lab")
    X = VIEWER_ROWS.drop(columns=["id"])
    rows = p.predict_rows(X, ids=VIEWER_ROWS["id"].tolist())
    assert [r["id"] for r in rows] == VIEWER_ROWS["id"].tolist()
    with TestClient(create_app("upec-qoe-lab", warm_up=False), raise_server_exceptions=False) as c:
        body = [{**r, "id": i} for i, r in zip(VIEWER_ROWS["id"], X.to_dict("records"))]
        svc = _post(c, body).json()["predictions"]
    for a, b in zip(rows, svc):
        assert a["score"] == b["score"] and a["id"] == b["id"]
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-6)
    src, out = tmp_path / "rows.csv", tmp_path / "out.csv"
    X.to_csv(src, index=False)
    assert main(["predict", "upec-qoe-lab", str(src), "--out", str(out)]) == 0
    import pandas as pd

    cli = pd.read_csv(out)
    for k, r in enumerate(rows):
        np.testing.assert_allclose([cli.loc[k, f"prob_{c}"] for c in r["probabilities"]],
                                   list(r["probabilities"].values()), atol=1e-6)


# ------------------------------------------------------------------------------------- absurd input
ABSURD = {
    "100000 segments": lambda: session("segs", 100000, seg=1),
    "one segment of 200000 s": lambda: session("long-seg", 200000, seg=200000),
    "a stall of 1e9 s": lambda: session("stall-1e9", 60, stalls=[(10, 1e9)]),
    "a stall of 1e12 s": lambda: session("stall-1e12", 60, stalls=[(10, 1e12)]),
    "a bitrate of 1e308": lambda: session("br", 60, kbps=1e308),
    "a height of 10**12": lambda: session("h", 60, height=10**12),
}


@pytest.mark.parametrize("name", list(ABSURD))
def test_absurd_sessions_get_a_score_in_scale_or_one_line_error(predictor, client, name):
    doc = ABSURD[name]()
    try:
        s = Session.from_dict(doc)
    except DeepQoEError as e:
        assert "\n" not in str(e) and e.field
        s = None
    if s is not None:
        rows, failures = predictor.predict_sessions([s])
        _in_scale(rows)
        assert len(rows) + len(failures) == 1
        assert all("\n" not in str(e) for e in failures)
    r = _post(client, doc, curve="true")
    assert r.status_code in (200, 413, 422), (r.status_code, r.text[:300])
    if r.status_code == 200:
        _in_scale(r.json()["predictions"])
    else:
        assert r.json()["detail"]


HUGE = [
    ("10**400 as a duration", b'{"id": "a", "segments": [{"start": 0, "duration": 1' + b"0" * 400 + b'}]}'),
    ("10**400 as a bitrate", b'{"id": "a", "segments": [{"start": 0, "duration": 4, "bitrate_kbps": 1'
     + b"0" * 400 + b"}]}"),
    ("10**400 as an id", b'{"id": 1' + b"0" * 400 + b', "segments": [{"start": 0, "duration": 4, "height": 720}]}'),
    ("10**5000 as a number", b'{"id": "a", "segments": [{"start": 0, "duration": 1' + b"0" * 5000 + b'}]}'),
    ("1e308 as a duration", b'{"id": "a", "segments": [{"start": 0, "duration": 1e308, "height": 720}]}'),
    ("1e308 as a stall", b'{"id": "a", "segments": [{"start": 0, "duration": 4, "height": 720}], '
     b'"stalls": [[0, 1e308]]}'),
    ("deep nesting in context", b'{"id": "a", "segments": [{"start": 0, "duration": 4, "height": 720}], '
     b'"context": ' + b'{"a": ' * 50000 + b"1" + b"}" * 50000 + b"}"),
    ("deep nesting as a session", b"[" * 100000 + b"]" * 100000),
]


@pytest.mark.parametrize("name,body", HUGE, ids=[h[0] for h in HUGE])
def test_huge_numbers_and_nesting_are_4xx_or_in_scale_never_500(client, name, body):
    r = _post(client, body)
    assert r.status_code in (200, 400, 413, 422), (r.status_code, r.text[:300])
    if r.status_code == 200:
        _in_scale(r.json()["predictions"])
    assert _post(client, session("ok", 20)).status_code == 200


def test_huge_numbers_in_rows_are_4xx_or_finite():
    _need("upec-qoe-lab")
    from deepqoe.serve import create_app

    row = {"content": "Sports", "resolution": 720, "bitrate_video": 1500.0, "age_user": 30, "sex_user": "men"}
    with TestClient(create_app("upec-qoe-lab", warm_up=False), raise_server_exceptions=False) as c:
        for body in (json.dumps(row).replace("1500.0", "1" + "0" * 400).encode(),
                     json.dumps(row).replace("1500.0", "1e308").encode(),
                     json.dumps(row).replace("30", "-1e308").encode()):
            r = _post(c, body)
            assert r.status_code in (200, 422), r.text[:300]
            if r.status_code == 200:
                p = r.json()["predictions"][0]
                assert all(math.isfinite(v) for v in p["probabilities"].values())
