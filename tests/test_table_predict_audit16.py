"""Table models, from an audit (16): a text input of words the embedding does not know is said (training and
prediction), continuous inputs far outside their training range are said, the service reads a row's id
under the config's id column and names every bad row the same way (a number too large, an empty text: the
predictor's rule), the Python predictor gives the interval the CLI and the service give by default, and an
option for another kind of model is a usage error (exit 2) for every such option."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import post_json, synthetic_table
from deepqoe.cli import main
from deepqoe.errors import DeepQoEError, DeepQoENote

torch.set_num_threads(1)

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

INPUTS = [
    {"column": "genre", "modality": "text", "projection": 5},
    {"column": "resolution", "modality": "categorical", "embedding_dim": 4, "projection": None},
    {"column": "bitrate", "modality": "continuous", "log": True, "projection": 4},  # min-max (the default)
    {"column": "age", "modality": "continuous", "normalisation": "standard", "projection": 4},
    {"column": "sex", "modality": "categorical", "embedding_dim": 1, "projection": None},
]
INPUT_COLUMNS = [i["column"] for i in INPUTS]


def _table(n: int = 160, genre=None) -> pd.DataFrame:
    df = synthetic_table(n).rename(columns={"id": "row_id"})
    df["row_id"] = [f"r{i:04d}" for i in range(n)]
    if genre is not None:
        df["genre"] = genre(np.arange(n))
    return df


def _config(d: Path, csv: str, task: str, epochs: int = 2) -> Path:
    ds = {"name": "audit16", "source": csv, "task": task, "target": "rating" if task == "classification" else "mos",
          "group": "title", "id": "row_id", "inputs": INPUTS}
    if task == "classification":
        ds["classes"] = [1, 2, 3, 4, 5]
    cfg = {"dataset": ds, "model": {"hidden_layers": [16], "dropout": 0.1},
           "training": {"max_epochs": epochs, "patience": 5, "batch_size": 64, "seed": 0},
           "evaluation": {"n_splits": 2, "test_size": 0.2, "baselines": []}}
    p = d / f"{task}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A classifier and a regression model (with intervals.json) trained in seconds on the same table, whose id
    column is ``row_id``."""
    d = tmp_path_factory.mktemp("audit16")
    _table().to_csv(d / "t.csv", index=False)
    out = {"dir": d}
    for task, name in (("classification", "cls"), ("regression", "reg")):
        assert main(["train", str(_config(d, "t.csv", task)), "--out", str(d / name), "-q"]) == 0
        out[name] = d / name
    assert (out["reg"] / "intervals.json").is_file()
    return out


def _rows(n: int = 6, **change) -> pd.DataFrame:
    """``n`` rows of the training table's inputs (and its id), with the columns of ``change`` set row by row
    from the start (a list) ."""
    df = _table().iloc[:n][["row_id"] + INPUT_COLUMNS].reset_index(drop=True)
    for c, values in change.items():
        df[c] = df[c].astype(object)
        for i, v in enumerate(values):
            df.loc[i, c] = v
    return df


def _notes(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DeepQoENote)]


def _predict_notes(model: Path, df: pd.DataFrame, **kw) -> tuple[list[dict], list[str]]:
    from deepqoe.predictor import load_predictor

    p = load_predictor(model)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        rows = p.predict_rows(df.drop(columns=["row_id"]), **kw)
    return rows, _notes(rec)


def _cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _client(model: Path):
    from fastapi.testclient import TestClient

    from deepqoe.serve import create_app

    return TestClient(create_app(model, warm_up=False), raise_server_exceptions=False)


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.drop(columns=["row_id"]).to_json(orient="records"))


# ---- 1. a text input the embedding does not know -----------------------------------------------------------
def test_fitting_a_text_input_of_unknown_words_says_it_carries_no_information():
    from deepqoe.config import InputConfig
    from deepqoe.features.tabular import TextEncoder

    cfg = InputConfig(column="g", modality="text")
    unknown = pd.DataFrame({"g": ["xqz1vlog", "xqz2vlog", "xqz1vlog"]})
    with pytest.warns(DeepQoENote) as rec:
        enc = TextEncoder(cfg).fit(unknown)
    notes = _notes(rec)
    assert enc.oov["oov_rate"] == 1.0 and len(notes) == 1, notes
    assert "text input 'g'" in notes[0] and "carries no information" in notes[0] and "'xqz1vlog'" in notes[0]
    mostly = pd.DataFrame({"g": ["news xqzq vvqz", "sports qqxz wwzq", "news xqzq vvqz"]})  # 4 of 6 words unknown
    with pytest.warns(DeepQoENote) as rec:
        TextEncoder(cfg).fit(mostly)
    notes = _notes(rec)
    assert len(notes) == 1 and "67% of its words are not in the 'glove-6b-50d' embedding" in notes[0], notes
    assert "carries no information" not in notes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepQoENote)  # known words (one unknown in four): no note
        TextEncoder(cfg).fit(pd.DataFrame({"g": ["news today", "sports xqzq"]}))


def test_cli_train_says_so_in_one_note(tmp_path, capsys):
    _table(80, genre=lambda i: [f"xqz{k % 5}vlog" for k in i]).to_csv(tmp_path / "oov.csv", index=False)
    code, out, err = _cli(capsys, "train", _config(tmp_path, "oov.csv", "classification", epochs=1), "--out",
                          tmp_path / "m")
    assert code == 0
    lines = [ln for ln in err.splitlines() if "genre" in ln]
    assert len(lines) == 1 and lines[0].startswith("deepqoe: note: text input 'genre'"), err
    assert "carries no information" in lines[0]
    enc = json.loads((tmp_path / "m" / "model.json").read_text())["encoders"][0]
    assert enc["oov"]["oov_rate"] == 1.0


def test_prediction_says_which_rows_have_no_known_word_once_per_input(models, capsys):
    df = _rows(genre=["zzqxv unknownword", "News", "zzqxv unknownword", "qqxzw"])
    for name in ("cls", "reg"):
        _, notes = _predict_notes(models[name], df)
        mine = [n for n in notes if "'genre'" in n]
        assert len(mine) == 1 and "3 of 6 row(s)" in mine[0] and "zero vector" in mine[0], notes
        assert "'zzqxv unknownword'" in mine[0] and "'qqxzw'" in mine[0]
    df.to_csv(models["dir"] / "oov_rows.csv", index=False)
    code, out, err = _cli(capsys, "predict", models["cls"], models["dir"] / "oov_rows.csv")
    lines = [ln for ln in err.splitlines() if "'genre'" in ln]
    assert code == 0 and len(lines) == 1 and lines[0].startswith("deepqoe: note: 3 of 6 row(s)"), err
    r = post_json(_client(models["cls"]), {"rows": _records(df)})
    assert r.status_code == 200, r.text
    mine = [n for n in r.json()["notes"] if "'genre'" in n]
    assert len(mine) == 1 and "3 of 6 row(s)" in mine[0]
    _, notes = _predict_notes(models["cls"], _rows())  # every word known: no note
    assert not [n for n in notes if "'genre'" in n], notes


# ---- 2. continuous inputs far outside their training range ------------------------------------------------
def test_far_outside_the_training_range_is_said_for_classifiers_and_regressors(models, capsys):
    # age: standard-scaled, training 18..69: -500 and 1e9 far; 70 and 100 (within one width) are not.
    # bitrate: log and min-max, training ~100..5000: 1e12 is far on the log scale the network reads
    df = _rows(age=[-500, 1e9, 70, 100], bitrate=[1e12])
    for name in ("cls", "reg"):
        state = json.loads((models[name] / "model.json").read_text())["encoders"][INPUT_COLUMNS.index("age")]
        lo, hi = state["min"][0], state["max"][0]  # the training rows' (of the ages 18..69 of the table)
        assert 18 <= lo < hi <= 69 and hi - lo > 30
        _, notes = _predict_notes(models[name], df)
        age = [n for n in notes if "'age'" in n]
        bitrate = [n for n in notes if "'bitrate'" in n]
        assert len(age) == 1 and f"2 of 6 row(s) have a value of 'age' far outside its training range [{lo:g}, " \
            f"{hi:g}]" in age[0] and "-500" in age[0] and "1e+09" in age[0], notes
        assert len(bitrate) == 1 and "1 of 6 row(s)" in bitrate[0] and "1e+12" in bitrate[0], notes
    df.to_csv(models["dir"] / "far.csv", index=False)
    for name in ("cls", "reg"):
        code, _, err = _cli(capsys, "predict", models[name], models["dir"] / "far.csv")
        assert code == 0 and sum("'age' far outside" in ln for ln in err.splitlines()) == 1, err
        assert all(ln.startswith("deepqoe: note: ") for ln in err.splitlines()), err
        r = post_json(_client(models[name]), _records(df))
        assert r.status_code == 200 and sum("'age' far outside" in n for n in r.json()["notes"]) == 1, r.text
    _, notes = _predict_notes(models["cls"], _rows())  # the training rows: no such note
    assert not [n for n in notes if "far outside" in n], notes


def test_the_range_is_stored_only_where_shift_and_scale_do_not_give_it(models, tmp_path):
    from deepqoe.persistence import load_model

    meta = json.loads((models["cls"] / "model.json").read_text())
    states = dict(zip(INPUT_COLUMNS, meta["encoders"]))
    assert "min" not in states["bitrate"] and "max" not in states["bitrate"]  # min-max: shift and scale say it
    assert 18 <= states["age"]["min"][0] < states["age"]["max"][0] <= 69  # standard: mean and SD do not
    est = load_model(models["cls"])
    enc = dict(zip(INPUT_COLUMNS, est.encoders_))
    lo, hi = enc["bitrate"].range_  # log1p of the training bitrates (100..5000 in the table)
    shift, scale = enc["bitrate"].shift, enc["bitrate"].scale
    assert lo == pytest.approx(shift) and hi == pytest.approx(shift + scale)
    assert np.log1p(100) - 1e-6 <= lo[0] < hi[0] <= np.log1p(5000) + 1e-6
    assert enc["age"].range_[0].tolist() == states["age"]["min"]
    # a model saved before the range was stored loads, and says nothing of 'age' (min-max inputs still can)
    old = tmp_path / "old"
    shutil.copytree(models["cls"], old)
    for st in meta["encoders"]:
        st.pop("min", None), st.pop("max", None)
    (old / "model.json").write_text(json.dumps(meta))
    _, notes = _predict_notes(old, _rows(age=[-500, 1e9], bitrate=[1e12]))
    assert not [n for n in notes if "'age'" in n] and [n for n in notes if "'bitrate'" in n], notes
    bad = json.loads((models["cls"] / "model.json").read_text())
    bad["encoders"][3]["min"] = [99.0]  # min above max
    (old / "model.json").write_text(json.dumps(bad))
    with pytest.raises(DeepQoEError, match="'min' must not exceed 'max'"):
        load_model(old)


# ---- 3. the service: the config's id column, and every bad row in one shape -------------------------------
def test_service_reads_the_id_under_the_models_id_column(models):
    c = _client(models["cls"])
    row = _records(_rows(1))[0]
    r = post_json(c, {**row, "row_id": "r0007"})
    assert r.status_code == 200 and r.json()["predictions"][0]["id"] == "r0007", r.text
    r = post_json(c, {"rows": [{**row, "row_id": "r1", "id": "r1"}, {**row, "id": 5}]})
    assert r.status_code == 200 and [p["id"] for p in r.json()["predictions"]] == ["r1", 5], r.text
    r = post_json(c, [row, {**row, "row_id": "a", "id": "b"}])
    body = r.json()
    assert r.status_code == 422 and body["field"] == "rows[1].row_id" and "give different ids" in body["detail"]
    assert body["errors"] == [{"detail": body["detail"], "field": body["field"]}], body
    r = post_json(c, {**row, "row_idd": "x"})  # any other field is still unknown
    assert r.status_code == 422 and "unknown field 'row_idd'" in r.json()["detail"] and "row_id" in r.json()["detail"]
    assert c.get("/model").json()["id_column"] == "row_id"
    schema = c.get("/model").json()["request_schema"]["oneOf"][1]
    assert "row_id" in schema["properties"] and "row_id" not in schema["required"]


def _row_error(r, field: str, text: str) -> None:
    body = r.json()
    assert r.status_code == 422 and body["field"] == field and text in body["detail"], r.text
    assert body["detail"].startswith(field + ": ") and body["errors"][0] == {"detail": body["detail"], "field": field}
    assert body["errors_left_out"] == 0


def test_service_names_a_too_large_number_as_every_row_error(models):
    c = _client(models["reg"])
    row = _records(_rows(1))[0]
    _row_error(post_json(c, [row, {**row, "age": 1e300}]), "rows[1].age", "is too large")
    # an error the predictor finds (log scaling of a negative number) is named as a row error too
    _row_error(post_json(c, [row, row, {**row, "bitrate": -5}]), "rows[2].bitrate", "log scaling")


def test_an_empty_text_is_a_missing_text_everywhere(models, capsys):
    c = _client(models["cls"])
    row = _records(_rows(1))[0]
    r = post_json(c, [row, {**row, "genre": ""}, {**row, "genre": "   "}])
    _row_error(r, "rows[1].genre", "a missing text value")
    assert [e["field"] for e in r.json()["errors"]] == ["rows[1].genre", "rows[2].genre"]
    df = _rows(3)
    df.loc[1, "genre"] = None
    df.to_csv(models["dir"] / "empty_text.csv", index=False)  # an empty cell
    code, out, err = _cli(capsys, "predict", models["cls"], models["dir"] / "empty_text.csv")
    assert code == 1 and "column 'genre', row 2: a missing text value" in err and len(err.splitlines()) == 1
    from deepqoe.predictor import load_predictor

    for blank in ("", "  "):
        with pytest.raises(DeepQoEError, match="a missing text value") as e:
            load_predictor(models["cls"]).predict_rows(_rows(3, genre=["News", blank]).drop(columns=["row_id"]))
        assert e.value.column == "genre" and e.value.row == 2


# ---- 4. the Python predictor's default interval -------------------------------------------------------------
def test_python_predictor_gives_the_default_interval_as_the_cli_and_the_service(models, capsys):
    from deepqoe.conformal import DEFAULT_LEVEL
    from deepqoe.predictor import load_predictor

    p = load_predictor(models["reg"])
    X = _rows(5).drop(columns=["row_id"])
    rows = p.predict_rows(X)
    assert p.interval_default() == DEFAULT_LEVEL and all(r["interval"]["level"] == DEFAULT_LEVEL for r in rows)
    assert rows == p.predict_rows(X, interval=DEFAULT_LEVEL)  # the default is that level, nothing else
    assert all("interval" not in r for r in p.predict_rows(X, interval=None))
    assert all("interval" not in r for r in p.predict_rows(X, interval=False))
    assert all(r["interval"]["level"] == 0.8 for r in p.predict_rows(X, interval=0.8))
    _rows(5).to_csv(models["dir"] / "five.csv", index=False)
    code, out, _ = _cli(capsys, "predict", models["reg"], models["dir"] / "five.csv", "--json")
    assert code == 0
    cli = json.loads(out)
    assert [r["interval_low"] for r in cli] == [r["interval"]["low"] for r in rows]
    assert [r["interval_level"] for r in cli] == [DEFAULT_LEVEL] * 5
    svc = post_json(_client(models["reg"]), _records(_rows(5))).json()["predictions"]
    assert [r["interval"] for r in svc] == [r["interval"] for r in rows]
    assert all("interval" not in r for r in load_predictor(models["cls"]).predict_rows(X))  # a classifier: none


def test_python_session_predictor_gives_the_default_interval():
    from deepqoe.persistence import PRETRAINED_DIR
    from deepqoe.predictor import load_predictor
    from deepqoe.sessions.frame import example_sessions, parse_sessions

    if not (PRETRAINED_DIR / "streaming" / "model.json").is_file():
        pytest.skip("shipped model streaming not in this build")
    p = load_predictor("streaming")
    s = parse_sessions(example_sessions()[:2])
    rows, _ = p.predict_sessions(s, curve=False)
    assert p.interval_default() is not None and all(r["interval"]["level"] == p.interval_default() for r in rows)
    assert all("interval" not in r for r in p.predict_sessions(s, curve=False, interval=None)[0])
    assert rows == p.predict_sessions(s, curve=False, interval=p.interval_default())[0]


# ---- 5. an option for another kind of model: exit 2, one line -----------------------------------------------
def test_every_option_for_another_kind_of_model_is_a_usage_error(models, capsys):
    _rows(3).to_csv(models["dir"] / "three.csv", index=False)
    for option in (["--interval", "0.8"], ["--rating-head", "x"], ["--scale", "0-100"], ["--calibration", "x"],
                   ["--plots", models["dir"] / "charts"]):
        code, out, err = _cli(capsys, "predict", models["cls"], models["dir"] / "three.csv", *option)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and option[0] in err, (option, err)
    assert not (models["dir"] / "charts").exists()
    # what does apply still works: no interval of a classifier, a level of a regression model's intervals
    assert _cli(capsys, "predict", models["cls"], models["dir"] / "three.csv", "--interval", "none")[0] == 0
    code, out, _ = _cli(capsys, "predict", models["reg"], models["dir"] / "three.csv", "--interval", "0.8", "--json")
    assert code == 0 and all(r["interval_level"] == 0.8 for r in json.loads(out))
