"""A 422 about a request's sessions (or rows) names every bad one, not only the first: ``detail`` and
``field`` stay what they were (the first error), and ``errors`` lists each bad session's error, the one
``detail`` names first, at most 50, with ``errors_left_out`` counting the rest; it stays linear in the
number of sessions."""

from __future__ import annotations


import pytest
from conftest import post_json, shipped_app

from deepqoe.errors import DeepQoEError

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

ROW = {"content": "Sports", "resolution": 720, "bitrate_video": 1500.0, "age_user": 30, "sex_user": "men"}
P1203 = {"I13": {"segments": [{"start": 2.0 * i, "duration": 2.0, "bitrate": 1500, "resolution": "1280x720"}
                              for i in range(15)]}}
NO_SEGMENTS = "segments: missing (a list of segments is required)"
NEGATIVE_STALL = "stalls[0].duration: must be > 0 (got -1)"


def session(sid, seconds=8, *, stalls=((0, 1.0),), **kw):
    return {"id": sid, "device": "pc",
            "segments": [{"start": 4.0 * k, "duration": 4.0, "bitrate_kbps": 2500, "width": 1280, "height": 720,
                          "fps": 30} for k in range(int(seconds // 4))],
            "stalls": [{"start": s, "duration": t} for s, t in stalls], **kw}


def no_id(sid="x"):
    return {k: v for k, v in session(sid).items() if k != "id"}


@pytest.fixture(scope="module")
def app():  # `client` and `table_client` come from conftest
    return shipped_app("streaming", max_body_bytes=20_000_000, max_items=10_000)


_post = post_json


def _listed(r) -> list[tuple[str, str | None]]:
    """The (detail, field) of each listed error, after checking the body's shape."""
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"detail", "field", "errors", "errors_left_out"}, body
    assert body["errors"][0] == {"detail": body["detail"], "field": body["field"]}  # the first is detail's
    assert all(set(e) <= {"detail", "field"} for e in body["errors"])
    return [(e["detail"], e.get("field")) for e in body["errors"]]


# ------------------------------------------------------------------------------ validation
def test_every_bad_session_is_listed_and_the_first_is_unchanged(client):
    body = [session("a"), {"id": "b", "device": "pc"}, session("a"), no_id(), session("c", stalls=[(0, -1)]),
            session("c"), session("good"), session(7, stalls=[(0, -1)])]
    for sent in (body, {"sessions": body}):
        r = _post(client, sent)
        assert r.json()["detail"] == f"sessions[1] (id 'b'): {NO_SEGMENTS}"  # as before: the first bad session
        assert r.json()["field"] == "sessions[1].segments"
        assert _listed(r) == [
            (f"sessions[1] (id 'b'): {NO_SEGMENTS}", "sessions[1].segments"),
            ("sessions[2] (id 'a'): id: the id is used twice (as sessions[0])", "sessions[2].id"),
            ("sessions[3]: id: missing 'id' (a non-empty text)", "sessions[3].id"),
            (f"sessions[4] (id 'c'): {NEGATIVE_STALL}", "sessions[4].stalls[0].duration"),
            ("sessions[5] (id 'c'): id: the id is used twice (as sessions[4])", "sessions[5].id"),
            (f"sessions[7] (id '7'): {NEGATIVE_STALL}", "sessions[7].stalls[0].duration"),
        ]
        assert r.json()["errors_left_out"] == 0
    assert _post(client, [session("a"), session("b")]).status_code == 200  # and good requests still pass


def test_an_id_used_twice_first_then_the_rest(client):
    r = _post(client, [session("a"), session("b"), session("a"), session("neg", stalls=[(0, -1.0)]), session("b"),
                       session("a")])
    assert r.json()["detail"] == "sessions[2] (id 'a'): id: the id is used twice (as sessions[0])"
    assert _listed(r) == [
        ("sessions[2] (id 'a'): id: the id is used twice (as sessions[0])", "sessions[2].id"),
        (f"sessions[3] (id 'neg'): {NEGATIVE_STALL}", "sessions[3].stalls[0].duration"),
        ("sessions[4] (id 'b'): id: the id is used twice (as sessions[1])", "sessions[4].id"),
        ("sessions[5] (id 'a'): id: the id is used twice (as sessions[0])", "sessions[5].id"),
    ]
    # a bad session's id counts as used: fixing it would make the later one a duplicate
    r = _post(client, [session("z", stalls=[(0, -1.0)]), session("z")])
    assert _listed(r)[1:] == [("sessions[1] (id 'z'): id: the id is used twice (as sessions[0])", "sessions[1].id")]


def test_a_session_that_is_no_object_stays_the_detail_the_others_follow_in_order(client):
    r = _post(client, [{"id": "q", "device": "pc"}, 5, session("ok"), "x", {**P1203, "id": True}])
    assert r.json()["detail"] == "sessions[1]: expected a session object (or a P.1203 input), got integer"
    assert _listed(r) == [
        ("sessions[1]: expected a session object (or a P.1203 input), got integer", "sessions[1]"),
        (f"sessions[0] (id 'q'): {NO_SEGMENTS}", "sessions[0].segments"),
        ("sessions[3]: expected a session object (or a P.1203 input), got string", "sessions[3]"),
        ("sessions[4]: 'id' must be a non-empty string or an integer, got boolean True", "sessions[4].id"),
    ]


def test_p1203_inputs_are_named_at_their_place(client):
    missing = "I13.segments: missing the video segments 'I13.segments' (mode 0 input)"
    r = _post(client, [P1203, {**P1203, "I13": {}}, P1203, {**P1203, "id": "pp", "I13": {}},
                       {**P1203, "id": "p1203-2"}])
    listed = _listed(r)
    assert [f for _, f in listed] == ["sessions[1].I13.segments", "sessions[3].I13.segments", "sessions[4].id"]
    assert listed[0][0].startswith(f"sessions[1]: {missing}")  # the default id p1203-1: no id to show
    assert listed[1][0].startswith(f"sessions[3] (id 'pp'): {missing}")
    assert listed[2][0] == "sessions[4] (id 'p1203-2'): id: the id is used twice (as sessions[2])"


def test_one_bad_session_lists_itself(client):
    r = _post(client, session("solo", context={"display_height": "big"}))
    assert r.json()["field"] == "sessions[0].context.display_height"
    assert r.json()["detail"].startswith("sessions[0] (id 'solo'): context.display_height: expected")
    assert _listed(r) == [(r.json()["detail"], r.json()["field"])] and r.json()["errors_left_out"] == 0


def test_at_most_50_listed_and_the_rest_counted(client):
    body = [session("g0")] + [{"id": f"b{i}", "device": "pc"} for i in range(120)] + [session("g1")]
    r = _post(client, {"sessions": body})
    listed = _listed(r)
    assert len(listed) == 50 and r.json()["errors_left_out"] == 70
    assert listed[0] == (f"sessions[1] (id 'b0'): {NO_SEGMENTS}", "sessions[1].segments")
    assert listed[49] == (f"sessions[50] (id 'b49'): {NO_SEGMENTS}", "sessions[50].segments")
    r = _post(client, body[:51])  # exactly 50 bad ones: none left out
    assert len(_listed(r)) == 50 and r.json()["errors_left_out"] == 0


def test_ten_thousand_bad_sessions_stay_linear(client, monkeypatch):
    """10**4 sessions, all bad: every one is read a bounded number of times (no quadratic search)."""
    import deepqoe.sessions.frame as frame

    real, read = frame.parse_sessions, []

    def counting(items, *a, **kw):
        read.append(len(items) if isinstance(items, list) else 1)
        return real(items, *a, **kw)

    monkeypatch.setattr(frame, "parse_sessions", counting)
    n = 10_000
    r = _post(client, [{"id": f"s{i}", "device": "pc"} for i in range(n)])
    listed = _listed(r)
    assert len(listed) == 50 and r.json()["errors_left_out"] == n - 50
    assert listed[-1] == (f"sessions[49] (id 's49'): {NO_SEGMENTS}", "sessions[49].segments")
    assert sum(read) <= 3 * n, sum(read)
    read.clear()  # and an id used twice at the very end: the same error as ever, the list found in one pass
    r = _post(client, [session(f"s{i}", 4) for i in range(500)] + [session("s5", 4)])
    assert _listed(r) == [("sessions[500] (id 's5'): id: the id is used twice (as sessions[5])", "sessions[500].id")]


# ------------------------------------------------------------------------------ prediction failures
@pytest.fixture
def flaky(app, monkeypatch):
    """The predictor fails on the sessions whose ids start with 'boom' (unnamed) or 'bang' (named)."""
    predictor = app.state.service.predictor
    real = predictor._scores_curves_explain

    def scores(batch, *a, **kw):
        for s in batch:
            if s.id.startswith("boom"):
                raise DeepQoEError("could not compute feature x", field="segments")
            if s.id.startswith("bang"):
                raise DeepQoEError(f"session '{s.id}': could not compute feature y")
        return real(batch, *a, **kw)

    monkeypatch.setattr(predictor, "_scores_curves_explain", scores)


def test_every_session_the_predictor_could_not_score_is_listed(client, flaky):
    r = _post(client, {"sessions": [session("ok"), session("boom1"), session("fine"), session("bang2"),
                                    session("boom3")]})
    assert r.json()["detail"] == "sessions[1] (id 'boom1'): segments: could not compute feature x"  # as before
    assert r.json()["field"] == "sessions[1].segments"
    assert _listed(r) == [
        ("sessions[1] (id 'boom1'): segments: could not compute feature x", "sessions[1].segments"),
        ("sessions[3] (id 'bang2'): could not compute feature y", "sessions[3]"),
        ("sessions[4] (id 'boom3'): segments: could not compute feature x", "sessions[4].segments"),
    ]
    assert r.json()["errors_left_out"] == 0
    r = _post(client, [session("bang")])
    assert _listed(r) == [("sessions[0] (id 'bang'): could not compute feature y", "sessions[0]")]


def test_many_prediction_failures_stay_linear(client, flaky, monkeypatch):
    """Naming 2000 failed sessions takes a look-up each, not a pass over the sessions each."""
    import deepqoe.serve as serve

    real, calls = serve.one_line, [0]

    def counting(*a, **kw):
        calls[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(serve, "one_line", counting)
    n = 2000
    r = _post(client, [session(f"boom{i}", 4) for i in range(n)])
    listed = _listed(r)
    assert len(listed) == 50 and r.json()["errors_left_out"] == n - 50
    assert listed[-1] == ("sessions[49] (id 'boom49'): segments: could not compute feature x", "sessions[49].segments")
    assert calls[0] <= 10 * n, calls[0]


# ------------------------------------------------------------------------------ rows, and what is unchanged
def test_every_bad_row_is_listed(table_client):
    rows = [ROW, {**ROW, "bitrate": 3}, ROW, {**ROW, "age_user": "old", "content": 5},
            {k: v for k, v in ROW.items() if k != "sex_user"}, 3]
    r = _post(table_client, {"rows": rows})
    assert r.json()["detail"].startswith("rows[1]: unknown field 'bitrate' (did you mean")  # as before
    assert r.json()["field"] == "rows[1].bitrate"
    listed = _listed(r)
    assert [f for _, f in listed] == ["rows[1].bitrate", "rows[3].content", "rows[4].sex_user", "rows[5]"]
    assert listed[1][0] == "rows[3].content: expected a string, got integer"  # a row's first bad field
    assert listed[2][0] == "rows[4]: missing field 'sex_user'"
    assert listed[3][0] == "rows[5]: expected an object with the input columns, got integer"
    r = _post(table_client, [{**ROW, "age_user": None}] * 60)
    assert len(_listed(r)) == 50 and r.json()["errors_left_out"] == 10
    assert _post(table_client, [ROW, ROW]).status_code == 200


@pytest.mark.parametrize("body,params,field", [
    ({"sessions": 3}, {}, "sessions"),
    ({"sessions": []}, {}, "sessions"),
    ({"sessions": [{"id": "a"}], "colour": 1}, {}, "colour"),
    ([{"id": "a"}], {"intervl": "1"}, "intervl"),
    ({"sessions": [{"id": "a"}], "scale": 5}, {}, "scale"),
])
def test_other_422s_keep_their_shape(client, body, params, field):
    r = _post(client, body, **params)
    assert r.status_code == 422 and set(r.json()) == {"detail", "field"} and r.json()["field"] == field, r.text


def test_documented_in_the_openapi_schema_the_docs_page_and_the_module(client):
    import deepqoe.serve as serve

    spec = client.get("/openapi.json").json()
    e422 = spec["paths"]["/predict"]["post"]["responses"]["422"]
    props = e422["content"]["application/json"]["schema"]["properties"]
    assert {"detail", "field", "errors", "errors_left_out"} <= set(props)
    assert props["errors"]["maxItems"] == serve.MAX_LISTED_ERRORS == 50
    assert set(props["errors"]["items"]["properties"]) == {"detail", "field"}
    assert "errors_left_out" in e422["description"]
    assert spec["paths"]["/predict"]["post"]["responses"]["400"]["content"]["application/json"]["schema"][
        "properties"].keys() == {"detail", "field"}
    assert "errors_left_out" in client.get("/docs").text
    assert "errors_left_out" in serve.__doc__ and '"errors"' in serve.__doc__
