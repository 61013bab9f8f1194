"""Property-based tests (hypothesis): random sessions, tables and requests never crash the package.

Every random input must give either a clean one-line :class:`~deepqoe.errors.DeepQoEError` (a 4xx answer
from the service) or a finite answer on the model's scale; never a traceback, a NaN, a 500 or a hang.

* sessions: random session JSON (valid ones, then broken ones: fields of the wrong type, huge, tiny,
  negative numbers, missing and unknown fields, long and short sessions, many stalls, P.1203 inputs)
  through ``Session.from_dict`` / ``parse_sessions`` and the shipped ``streaming`` model;
* tables: random rows for the shipped ``upec-qoe-lab`` classifier (unknown categories, huge numbers,
  text in numeric columns, missing / extra columns) through ``Predictor.predict_rows``;
* requests: random bodies (bytes, JSON values, mutated sessions and rows) to ``POST /predict`` of the
  service, for both shipped models.

The examples are derandomised (the same on every run, no example database), so CI is reproducible.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepqoe.errors import DeepQoEError

pytestmark = pytest.mark.timeout(300)

PROPS = settings(max_examples=60, deadline=None, derandomize=True, database=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.filter_too_much])


# ------------------------------------------------------------------------------------ strategies
def extreme_numbers(beyond_float: bool = True) -> st.SearchStrategy:
    """Numbers a careless client sends: huge, tiny, negative, zero, and (``beyond_float``) integers too
    large for a float (JSON allows them)."""
    special = [0, -1, 1e-300, 5e-324, 1e15, 1e308, -1e308, 200_000, 1e12] + ([10 ** 400, -(10 ** 400)]
                                                                           if beyond_float else [])
    return st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                     st.integers(min_value=-(10 ** 30), max_value=10 ** 30), st.sampled_from(special))


def texts(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy:
    """Text without line breaks or other control characters: user text echoed in an error message must
    not break it over lines (see the xfail tests below for the case with line breaks)."""
    return st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=min_size,
                   max_size=max_size)


def sane_numbers(lo: float, hi: float) -> st.SearchStrategy:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


json_scalars = st.one_of(st.none(), st.booleans(), extreme_numbers(), texts())
json_values = st.recursive(json_scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                              st.dictionaries(texts(max_size=8), kids, max_size=4)),
                           max_leaves=12)

DURATIONS = st.one_of(sane_numbers(0.05, 20), st.sampled_from([0.5, 2.0, 4.0, 10.0]),
                      sane_numbers(20, 200_000))
HEIGHTS = st.sampled_from([144, 240, 360, 480, 720, 1080, 1440, 2160, 1, 100_000])


@st.composite
def segments(draw) -> list[dict]:
    n = draw(st.integers(1, 40))
    out, t = [], 0.0
    for _ in range(n):
        d = draw(DURATIONS)
        seg: dict = {"start": t, "duration": d}
        if draw(st.booleans()):
            seg["bitrate_kbps"] = draw(st.one_of(sane_numbers(1, 50_000), st.sampled_from([1e-6, 1e9])))
        if draw(st.booleans()) or "bitrate_kbps" not in seg:
            h = draw(HEIGHTS)
            seg["height"] = h
            if draw(st.booleans()):
                seg["width"] = int(round(h * 16 / 9))
        if draw(st.booleans()):
            seg["quality"] = draw(sane_numbers(0, 100))
        if draw(st.booleans()):
            seg["fps"] = draw(st.sampled_from([1, 24, 25, 29.97, 30, 60, 120, 1000]))
        if draw(st.booleans()):
            seg["codec"] = draw(st.sampled_from(["h264", "hevc", "VP9", "av1", "mystery"]))
        out.append(seg)
        t += d
    return out


@st.composite
def valid_sessions(draw) -> dict:
    """A session the format accepts (long ones, short ones, many stalls, long stalls)."""
    segs = draw(segments())
    media = segs[-1]["start"] + segs[-1]["duration"]
    starts = sorted(set(draw(st.lists(sane_numbers(0, media), max_size=draw(st.sampled_from([0, 3, 200]))))))
    stalls = [{"start": s, "duration": draw(st.one_of(sane_numbers(0.01, 30), sane_numbers(30, 3_000)))}
              for s in starts]
    d: dict = {"id": draw(st.one_of(texts(1, 10).filter(str.strip), st.integers(0, 10 ** 6))),
               "segments": segs, "stalls": stalls}
    if draw(st.booleans()):
        d["device"] = draw(st.sampled_from(["pc", "mobile", "tablet", "tv", "unknown", "phone", "hdtv"]))
    if draw(st.booleans()):
        d["content"] = draw(texts(max_size=30))
    if draw(st.booleans()):
        d["context"] = {"display_height": draw(st.sampled_from([480, 720, 1080, 2160]))}
    return d


@st.composite
def broken_sessions(draw) -> dict:
    """A valid session with one to three things broken: a field replaced by a random JSON value, removed,
    or an unknown field added, at the top level, in a segment or in a stall."""
    d = draw(valid_sessions())
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "segment", "stall"]))
        if where == "top" or (where == "stall" and not d.get("stalls")):
            target = d
            keys = ["id", "segments", "stalls", "device", "content", "context", "stall_time_base",
                    "quality_per_second", "mos", "mos_scale", "extra", "dataset"]
        elif where == "segment":
            target = draw(st.sampled_from(d["segments"])) if isinstance(d.get("segments"), list) and d["segments"] \
                else d
            keys = ["start", "duration", "bitrate_kbps", "width", "height", "fps", "codec", "quality",
                    "representation"]
        else:
            target = draw(st.sampled_from(d["stalls"])) if isinstance(d.get("stalls"), list) and d["stalls"] else d
            keys = ["start", "duration"]
        if not isinstance(target, dict):
            continue
        action = draw(st.sampled_from(["replace", "number", "delete", "extra"]))
        key = draw(st.sampled_from(keys))
        if action == "replace":
            target[key] = draw(json_values)
        elif action == "number":
            target[key] = draw(extreme_numbers())
        elif action == "delete":
            target.pop(key, None)
        else:
            target[draw(texts(1, 8))] = draw(json_scalars)
    return d


@st.composite
def p1203_inputs(draw) -> dict:
    segs = draw(segments())
    i13 = [{"start": s["start"], "duration": s["duration"],
            "bitrate": s.get("bitrate_kbps", draw(sane_numbers(50, 20_000))),
            "resolution": f"{s.get('width', 1280)}x{s.get('height', 720)}", "fps": s.get("fps", 30),
            "codec": "h264"} for s in segs]
    media = segs[-1]["start"] + segs[-1]["duration"]
    stalling = [[s, draw(sane_numbers(0.1, 20))] for s in sorted(set(draw(st.lists(sane_numbers(0, media),
                                                                                    max_size=5))))]
    d = {"I13": {"segments": i13}, "I23": {"stalling": stalling},
         "IGen": {"device": draw(st.sampled_from(["pc", "mobile", "tablet"])), "displaySize": "1920x1080"}}
    if draw(st.booleans()):  # break something
        part = draw(st.sampled_from(["I13", "I23", "IGen"]))
        d[part] = draw(st.one_of(json_values, st.fixed_dictionaries({"segments": json_values}),
                                 st.fixed_dictionaries({"stalling": json_values})))
    return d


any_session = st.one_of(valid_sessions(), broken_sessions(), json_values)


# ------------------------------------------------------------------------------------ checks
def assert_clean_error(e: DeepQoEError) -> None:
    msg = str(e)
    assert msg.strip(), "an empty error message"
    assert "\n" not in msg, f"the error message is not one line: {msg!r}"
    assert "Traceback" not in msg


def assert_session_rows(rows: list[dict], n_ok: int) -> None:
    assert len(rows) == n_ok
    for r in rows:
        assert isinstance(r["score"], float) and math.isfinite(r["score"]) and 1.0 <= r["score"] <= 5.0, r["score"]
        curve = r.get("curve")
        if curve is not None:
            c = np.asarray(curve, float)
            assert np.isfinite(c).all(), "a NaN or infinity in the curve"
            assert ((c >= 1.0) & (c <= 5.0)).all(), f"curve outside [1, 5]: {c.min()} .. {c.max()}"
            assert r["curve_step_s"] is None or (math.isfinite(r["curve_step_s"]) and r["curve_step_s"] > 0)


@pytest.fixture(scope="module")
def streaming():
    from deepqoe.predictor import load_predictor

    return load_predictor("streaming")


@pytest.fixture(scope="module")
def upec():
    from deepqoe.predictor import load_predictor

    return load_predictor("upec-qoe-lab")


def predict_one_session(predictor, d) -> None:
    from deepqoe.sessions import Session

    try:
        s = Session.from_dict(d)
    except DeepQoEError as e:
        assert_clean_error(e)
        return
    rows, failures = predictor.predict_sessions([s], curve=True)
    for e in failures:
        assert_clean_error(e)
    assert_session_rows(rows, 1 - len(failures))


# ------------------------------------------------------------------------------------ (a) sessions
@PROPS
@given(d=valid_sessions())
def test_valid_sessions_score_inside_the_scale(streaming, d):
    predict_one_session(streaming, d)


@PROPS
@given(d=any_session)
def test_random_session_json_errors_cleanly_or_scores_inside_the_scale(streaming, d):
    predict_one_session(streaming, d)


@settings(PROPS, max_examples=25)
@given(batch=st.lists(st.one_of(valid_sessions(), broken_sessions(), p1203_inputs()), min_size=1, max_size=6),
       scale=st.sampled_from([None, "1-5", "0-100", "1-7"]))
def test_batches_and_p1203_inputs(streaming, batch, scale):
    """A batch goes on past its bad sessions; P.1203 inputs go the same way."""
    from deepqoe.sessions.frame import parse_sessions

    sessions = []
    for i, d in enumerate(batch):
        if isinstance(d, dict) and "I13" not in d:
            d["id"] = f"s{i}"
        try:
            sessions += parse_sessions(d)
        except DeepQoEError as e:
            assert_clean_error(e)
    rows, failures = streaming.predict_sessions(sessions, scale=scale, curve=True)
    for e in failures:
        assert_clean_error(e)
    assert len(rows) + len(failures) == len(sessions)
    lo, hi = {None: (1, 5), "1-5": (1, 5), "0-100": (0, 100), "1-7": (1, 7)}[scale]
    for r in rows:
        assert math.isfinite(r["score"]) and lo <= r["score"] <= hi
        if r["curve"] is not None:
            c = np.asarray(r["curve"], float)
            assert np.isfinite(c).all() and ((c >= lo) & (c <= hi)).all()


# ------------------------------------------------------------------------------------ (b) tables
UPEC_COLUMNS = ["content", "resolution", "bitrate_video", "age_user", "sex_user"]
table_cells = {
    "content": st.one_of(st.sampled_from(["News", "Sports", "Movies", "Cartoons", ""]), st.text(max_size=40),
                         st.none(), extreme_numbers()),
    "resolution": st.one_of(st.sampled_from([240, 360, 480, 720, 1080, "720", "4k", 99999]), st.none(),
                            st.text(max_size=6), extreme_numbers(), st.booleans()),
    "bitrate_video": st.one_of(sane_numbers(0, 20_000), extreme_numbers(beyond_float=False), st.none(), st.just(float("nan")),
                               st.sampled_from([float("inf"), -float("inf"), "1500", "fast", True])),
    "age_user": st.one_of(st.integers(0, 120), extreme_numbers(beyond_float=False), st.none(), st.just(float("nan")),
                          st.sampled_from(["thirty", "30", False])),
    "sex_user": st.one_of(st.sampled_from(["men", "women", "other", "", "MEN"]), st.none(), extreme_numbers(),
                          st.text(max_size=6)),
}


@st.composite
def tables(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 12))
    cols = list(UPEC_COLUMNS)
    if draw(st.integers(0, 9)) == 0:  # a missing column now and then
        cols.remove(draw(st.sampled_from(cols)))
    data = {c: [draw(table_cells[c]) for _ in range(n)] for c in cols}
    if draw(st.booleans()):
        data["unused_" + draw(st.text(alphabet="abcxyz", min_size=1, max_size=4))] = [draw(json_scalars)
                                                                                      for _ in range(n)]
    return pd.DataFrame(data)


@PROPS
@given(df=tables())
def test_random_tables_error_cleanly_or_give_finite_probabilities(upec, df):
    try:
        rows = upec.predict_rows(df)
    except DeepQoEError as e:
        assert_clean_error(e)
        return
    assert len(rows) == len(df)
    classes = [str(c) for c in upec.model.classes_]
    for r in rows:
        p = np.array([r["probabilities"][c] for c in classes], float)
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all(), p
        assert abs(p.sum() - 1.0) < 1e-4, p.sum()
        assert str(r["score"]) in classes
        assert math.isfinite(r["expected_rating"]) and 1.0 <= r["expected_rating"] <= 5.0


@pytest.mark.parametrize("column", ["bitrate_video", "age_user"])
def test_integer_beyond_float_range_in_a_numeric_column(upec, column):
    df = pd.DataFrame({"content": ["News"], "resolution": [240], "bitrate_video": [0], "age_user": [0],
                       "sex_user": ["men"]})
    df[column] = pd.Series([10 ** 400], dtype=object)
    with pytest.raises(DeepQoEError) as e:
        upec.predict_rows(df)
    assert_clean_error(e.value)


# ------------------------------------------------------------------------------------ line breaks
def test_session_id_with_a_line_break_gives_a_one_line_error():
    from deepqoe.sessions import Session

    with pytest.raises(DeepQoEError) as e:
        Session.from_dict({"id": "0\n", "segments": None, "stalls": []})
    assert_clean_error(e.value)


def test_unknown_field_with_a_line_break_gives_a_one_line_error():
    from deepqoe.sessions import Session

    with pytest.raises(DeepQoEError) as e:
        Session.from_dict({"id": "a", "segments": [{"start": 0, "duration": 1, "height": 720}], "x\ny": 1})
    assert_clean_error(e.value)


# ------------------------------------------------------------------------------------ (c) requests
@pytest.fixture(scope="module")
def session_client():
    from fastapi.testclient import TestClient

    from deepqoe.serve import create_app

    with TestClient(create_app("streaming", max_body_bytes=200_000, max_items=50),
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def table_client():
    from fastapi.testclient import TestClient

    from deepqoe.serve import create_app

    with TestClient(create_app("upec-qoe-lab", max_body_bytes=200_000, max_items=50),
                    raise_server_exceptions=False) as c:
        yield c


def _dumps(obj) -> bytes:
    # Python's json writes NaN / Infinity unless told not to; the service must answer 400 to those too
    return json.dumps(obj).encode()


def session_bodies() -> st.SearchStrategy:
    return st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        json_values.map(_dumps),
        any_session.map(_dumps),
        valid_sessions().map(_dumps),  # twice: about a third of the requests should be answered 200
        st.fixed_dictionaries({"sessions": st.lists(valid_sessions(), min_size=1, max_size=3)}).map(_dumps),
        p1203_inputs().map(_dumps),
        st.lists(st.one_of(valid_sessions(), broken_sessions()), max_size=4).map(_dumps),
        st.fixed_dictionaries({"sessions": st.lists(any_session, max_size=3)},
                              optional={"explain": json_scalars, "extra": json_scalars}).map(_dumps),
        valid_sessions().map(lambda d: _dumps(d)[: len(_dumps(d)) // 2]),  # truncated JSON
        st.sampled_from([b"", b"   ", b"null", b"[]", b"{}", b"NaN", b'{"sessions": Infinity}',
                         b"[" * 50_000 + b"]" * 50_000, b'{"id": 1, "segments": ' + b"[" * 5000]),
    )


good_cells = {
    "content": st.one_of(st.sampled_from(["News", "Sports", "Movies"]), texts(max_size=30)),
    "resolution": st.one_of(st.sampled_from([240, 360, 480, 720, 1080]), st.sampled_from(["720", "4k"])),
    "bitrate_video": st.one_of(sane_numbers(0, 20_000), sane_numbers(-1e6, 1e6)),
    "age_user": st.integers(0, 120),
    "sex_user": st.sampled_from(["men", "women", "other"]),
}


@st.composite
def row_bodies(draw) -> bytes:
    def row():
        if draw(st.booleans()):  # a good row (about half the requests should be answered 200)
            return {c: draw(good_cells[c]) for c in UPEC_COLUMNS}
        r = {c: draw(table_cells[c]) for c in UPEC_COLUMNS}
        r = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        if draw(st.booleans()):
            r.pop(draw(st.sampled_from(UPEC_COLUMNS)))
        if draw(st.booleans()):
            r[draw(st.sampled_from(["id", "idx", "bitrate", "extra"]))] = draw(json_scalars)
        return r

    kind = draw(st.sampled_from(["row", "list", "wrapped", "random"]))
    if kind == "row":
        return _dumps(row())
    if kind == "list":
        return _dumps([row() for _ in range(draw(st.integers(0, 4)))])
    if kind == "wrapped":
        return _dumps({"rows": [row() for _ in range(draw(st.integers(0, 4)))], "explain": draw(json_scalars)})
    return draw(st.one_of(st.binary(max_size=200), json_values.map(_dumps)))


QUERIES = st.sampled_from(["", "?explain=true", "?curve=true", "?explain=true&curve=true", "?explain=maybe",
                           "?curve=2", "?explain=false&curve=false&x=1"])


def check_response(r, lo: float = 1.0, hi: float = 5.0, session: bool = True) -> None:
    assert r.status_code in (200, 400, 413, 422), f"{r.status_code}: {r.text[:500]}"
    body = r.json()  # always JSON
    if r.status_code != 200:
        assert isinstance(body.get("detail"), str) and body["detail"] and "\n" not in body["detail"], body
        return
    assert body["n"] == len(body["predictions"]) >= 1
    for p in body["predictions"]:
        if session:
            assert math.isfinite(p["score"]) and lo <= p["score"] <= hi, p["score"]
            if p.get("curve"):
                c = np.asarray(p["curve"], float)
                assert np.isfinite(c).all() and ((c >= lo) & (c <= hi)).all()
        else:
            probs = np.array(list(p["probabilities"].values()), float)
            assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-4


@settings(PROPS, max_examples=100)
@given(body=session_bodies(), query=QUERIES)
def test_random_requests_to_a_session_model(session_client, body, query):
    r = session_client.post("/predict" + query, content=body, headers={"content-type": "application/json"})
    check_response(r)


@settings(PROPS, max_examples=100)
@given(body=row_bodies(), query=QUERIES)
def test_random_requests_to_a_table_model(table_client, body, query):
    r = table_client.post("/predict" + query, content=body, headers={"content-type": "application/json"})
    check_response(r, session=False)


def test_service_keeps_answering_after_bad_requests(session_client):
    """After the random requests the service still answers a good one (no broken state)."""
    from deepqoe.sessions.frame import example_sessions

    r = session_client.post("/predict", json=example_sessions()[0])
    assert r.status_code == 200
    check_response(r)
    big = b'{"sessions": [' + b",".join([_dumps(example_sessions()[0])] * 400) + b"]}"
    assert session_client.post("/predict", content=big).status_code == 413
