"""A user audit: (1) the service takes ``"curve": true`` in the body, as README documents, exactly as
``?curve=true`` (the body's wins, as ``explain``'s does); (2) a Waterloo-layout ``mos`` off its scale is an
error naming ``data.csv``, column ``mos`` and its row, not the session's log; (3) logs' per-chunk ``mos``
(ignored) get one note per folder read, naming a log that has one and how many do."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepqoe.datasets.waterloo_sqoe import load_waterloo_folder, waterloo_layout_sessions
from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.persistence import PRETRAINED_DIR

ROW = {"content": "Sports", "resolution": 720, "bitrate_video": 1500.0, "age_user": 30, "sex_user": "men"}
SESSION = {"id": "s1", "device": "pc",
           "segments": [{"start": 4.0 * i, "duration": 4.0, "bitrate_kbps": 2500, "width": 1280, "height": 720,
                         "fps": 30} for i in range(10)],
           "stalls": [{"start": 0, "duration": 1.0}, {"start": 12, "duration": 3.0}]}


# ------------------------------------------------------------------------------------- (1) the service
def _client(name):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    if not (PRETRAINED_DIR / name / "model.json").is_file():
        pytest.skip(f"shipped model {name} not in this build")
    with warnings.catch_warnings():  # starlette's notice about its httpx backend
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from deepqoe.serve import create_app

    return TestClient(create_app(name, max_body_bytes=200_000, max_items=20), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def session_client():
    with _client("streaming") as c:
        yield c


@pytest.fixture(scope="module")
def table_client():
    with _client("upec-qoe-lab") as c:
        yield c


def _post(c, body, **params):
    return c.post("/predict", content=json.dumps(body), headers={"content-type": "application/json"},
                  params=params)


def _first(r):
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]


def test_curve_in_the_body_is_the_query_form(session_client):
    c = session_client
    query = _first(_post(c, {"sessions": [SESSION]}, curve="true"))
    body = _first(_post(c, {"sessions": [SESSION], "curve": True}))
    assert query["curve"] and body == query  # the same answer, curve and all
    assert _first(_post(c, {"sessions": [SESSION], "curve": True, "scale": "0-100"}))["curve"] == \
        _first(_post(c, {"sessions": [SESSION]}, curve="true", scale="0-100"))["curve"]
    assert _first(_post(c, {"sessions": [SESSION], "curve": False})).get("curve") is None
    # the body's wins over the query's, as explain's does (null: as left out, the query's)
    assert _first(_post(c, {"sessions": [SESSION], "curve": False}, curve="true")).get("curve") is None
    assert _first(_post(c, {"sessions": [SESSION], "curve": True}, curve="false"))["curve"] == query["curve"]
    assert _first(_post(c, {"sessions": [SESSION], "curve": None}, curve="true"))["curve"] == query["curve"]
    assert _first(_post(c, {"sessions": [SESSION], "explain": None}, explain="true")).get("explanation")


def test_a_bad_body_curve_is_a_422_naming_it(session_client, table_client):
    r = _post(session_client, {"sessions": [SESSION], "curve": "yes"})
    assert r.status_code == 422 and r.json()["field"] == "curve"
    assert r.json()["detail"] == "'curve' must be true or false, got string"
    r = _post(session_client, {"sessions": [SESSION], "curv": True})
    assert r.status_code == 422 and r.json()["field"] == "curv"
    assert "(allowed: 'sessions', 'explain', 'interval', 'curve', 'calibration', 'rating_head', 'scale')" \
        in r.json()["detail"]
    # a table model: as ?curve=true / ?curve=false
    r = _post(table_client, {"rows": [ROW], "curve": True})
    assert r.status_code == 422 and r.json()["field"] == "curve" and "for session models" in r.json()["detail"]
    assert _post(table_client, {"rows": [ROW], "curve": False}).status_code == 200


def test_the_request_schema_lists_the_body_curve(session_client):
    op = session_client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    wrapper = next(s for s in schema["anyOf"] if "sessions" in s.get("properties", {}))
    assert wrapper["properties"]["curve"]["type"] == "boolean"


# ------------------------------------------------------------------------------------- (2), (3) Waterloo
def _log(seed: int, **extra) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 5
    reb = np.zeros(n)
    reb[0] = 1.0
    d = {"rebuffering_duration": reb, "chunk_duration": np.full(n, 2.0),
         "video_bitrate": rng.uniform(300, 5000, n).round(1), "height": np.full(n, 720),
         "vmaf": rng.uniform(20, 95, n).round(1)}
    d.update(extra)
    return pd.DataFrame(d)


def _folder(root: Path, mos: list, with_chunk_mos: set = frozenset()) -> Path:
    (root / "streaming_logs").mkdir(parents=True)
    names = [f"{i + 1:03d}.csv" for i in range(len(mos))]
    pd.DataFrame({"streaming_log": names, "mos": mos}).to_csv(root / "data.csv", index=False)
    for i, name in enumerate(names):
        extra = {"mos": np.linspace(1, 5, 5)} if name in with_chunk_mos else {}
        _log(i, **extra).to_csv(root / "streaming_logs" / name, index=False)
    return root


def test_a_mos_off_its_scale_names_data_csv_its_column_and_row(tmp_path):
    folder = _folder(tmp_path / "wl_bad", [50.0, 60.0, 70.0, 40.0, 105.0, 30.0])
    with pytest.raises(DeepQoEError) as e:
        load_waterloo_folder(folder)
    assert Path(e.value.file) == folder / "data.csv" and (e.value.column, e.value.row) == ("mos", 5)
    assert e.value.field is None and "105 is outside the scale 0-100" in e.value.message
    assert "streaming_logs" not in str(e.value)
    sessions, failures = waterloo_layout_sessions(folder, mos_scale="0-100")  # a training entry's scale:
    assert [s.id for s in sessions] == ["001", "002", "003", "004", "006"] and len(failures) == 1
    f = failures[0]
    assert Path(f.file) == folder / "data.csv" and (f.column, f.row) == ("mos", 5) and "105" in f.message


def _notes(read) -> list[str]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        read()
    return [str(x.message) for x in w if issubclass(x.category, DeepQoENote) and "column 'mos'" in str(x.message)]


def test_per_chunk_mos_is_one_note_per_folder(tmp_path):
    folder = _folder(tmp_path / "rated", [50.0, 60.0, 70.0, 40.0, 80.0, 30.0],
                     with_chunk_mos={"002.csv", "004.csv", "005.csv"})
    for read in (lambda: load_waterloo_folder(folder), lambda: waterloo_layout_sessions(folder),
                 lambda: waterloo_layout_sessions(folder, mos_scale="0-100")):
        notes = _notes(read)
        assert len(notes) == 1, notes  # once for the folder, not per session
        assert str(folder / "streaming_logs" / "002.csv") in notes[0]
        assert "3 of the 6 logs" in notes[0] and "ignored" in notes[0] and "data.csv" in notes[0]
    plain = _folder(tmp_path / "plain", [50.0, 60.0])
    assert _notes(lambda: load_waterloo_folder(plain)) == []
    assert _notes(lambda: waterloo_layout_sessions(plain)) == []
    # still ignored: the sessions are those of the logs without it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepQoENote)
        a = load_waterloo_folder(folder).sessions[1].to_dict()
        log = pd.read_csv(folder / "streaming_logs" / "002.csv").drop(columns=["mos"])
        log.to_csv(folder / "streaming_logs" / "002.csv", index=False)
        b = load_waterloo_folder(folder).sessions[1].to_dict()
    assert a == b
