"""ONNX export of table models: the metadata describes every preprocessing step of ``deepqoe predict``.

A consumer outside Python that follows ``deepqoe.inputs`` alone (missing values -> ``nan_to``, log1p,
``(x - shift) / scale``, the +-10 clip of vector inputs, category codes with 0 = unknown) must feed the
graph what the Python encoders feed the network, so that the ONNX scores equal the Predictor's on rows
with outliers (1e6) and missing values, and the graph clips vector inputs (and fills their NaN) itself.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from deepqoe.cli import main  # noqa: E402

VEC = ["v0", "v1", "v2"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small regressor: a scalar numeric input, a vector input (3 columns, nan_to 0.5) and a category."""
    from deepqoe.estimators import DeepQoERegressor
    from deepqoe.persistence import save_model

    rng = np.random.default_rng(0)
    n = 80
    df = pd.DataFrame({"x": rng.uniform(0, 10, n), "v0": rng.normal(0, 1, n), "v1": rng.normal(5, 2, n),
                       "v2": rng.normal(-3, 0.5, n), "c": rng.choice(["a", "b", "c"], n)})
    y = 0.3 * df.x + df.v0 - 0.5 * df.v1 + 2 * df.v2 + (df.c == "a")
    inputs = [{"column": "x", "modality": "continuous"},
              {"column": "feat", "modality": "vector", "columns": VEC, "nan_to": 0.5},
              {"column": "c", "modality": "categorical"}]
    est = DeepQoERegressor(inputs=inputs, hidden_layers=(16,), max_epochs=30, patience=30,
                           learning_rate=1e-2, random_state=0).fit(df, y)
    return save_model(est, tmp_path_factory.mktemp("vec") / "model")


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", str(model_dir), "--onnx", str(out), "-q"]) == 0
    return out


def hard_rows() -> pd.DataFrame:
    """Ordinary rows, then outliers (1e6) and missing values in the vector input, an unseen category."""
    rng = np.random.default_rng(1)
    n = 6
    rows = pd.DataFrame({"x": rng.uniform(0, 10, n), "v0": rng.normal(0, 1, n), "v1": rng.normal(5, 2, n),
                         "v2": rng.normal(-3, 0.5, n), "c": ["a", "b", "c", "a", "b", "c"]})
    hard = pd.DataFrame({
        "x": [1e6, 5.0, 5.0, 5.0, 5.0, 5.0, -30.0, 3.0],
        "v0": [0.1, 1e6, -1e6, np.nan, np.nan, 0.2, 0.0, np.inf],
        "v1": [5.0, 5.0, 1e6, 4.0, np.nan, -np.inf, 1e6, 5.0],
        "v2": [-3.0, -3.0, -3.0, -1e6, np.nan, -3.0, np.nan, -3.0],
        "c": ["a", "b", "zzz-unseen", "c", "a", "b", "c", "never-seen"]})
    return pd.concat([rows, hard], ignore_index=True)


def metadata(path) -> dict:
    from deepqoe.export import onnx_session

    return onnx_session(path).get_modelmeta().custom_metadata_map


def feeds_from_metadata(meta: dict, df: pd.DataFrame, skip_graph_steps: bool = False) -> dict:
    """What an ONNX consumer computes from the metadata alone (no deepqoe encoder); ``skip_graph_steps``:
    leave out the steps the metadata says the graph does itself."""
    feeds = {}
    for d in json.loads(meta["deepqoe.inputs"]):
        p = d.get("preprocessing", {})
        if d["kind"] == "index":
            code = {v: i + 1 for i, v in enumerate(d["encoder"]["vocabulary"])}
            feeds[d["name"]] = np.array([code.get(str(v), p.get("unknown_code", 0)) for v in df[d["columns"][0]]],
                                        dtype=np.int64)
            continue
        x = df[d["columns"]].to_numpy(np.float64)
        nan_to = p.get("nan_to")
        if nan_to is not None and not (skip_graph_steps and p["nan_in_graph"]):
            x = np.where(np.isfinite(x), x, nan_to)
        elif nan_to is not None:
            x = np.where(np.isfinite(x), x, np.nan)  # inf is missing too: the graph fills NaN
        if p.get("log1p", d["log"]):
            x = np.log1p(x)
        x = (x - np.asarray(d["encoder"]["shift"])) / np.asarray(d["encoder"]["scale"])
        clip = p.get("clip")
        if clip is not None and not (skip_graph_steps and p["clip_in_graph"]):
            x = np.clip(x, clip[0], clip[1])
        feeds[d["name"]] = x.astype(np.float32)
    return feeds


def onnx_scores(path, feeds: dict) -> np.ndarray:
    """The graph's prediction, clipped as the metadata says deepqoe predict clips it."""
    from deepqoe.export import onnx_session

    y = onnx_session(path).run(["prediction"], feeds)[0].astype(np.float64)
    clip = json.loads(metadata(path)["deepqoe.model"]).get("score_clip")
    return y if clip is None else np.clip(y, *clip)


def predictor_scores(model_dir, df: pd.DataFrame) -> np.ndarray:
    import warnings

    from deepqoe.predictor import load_predictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the note on scores clipped to the training targets
        return np.array([r["score"] for r in load_predictor(str(model_dir)).predict_rows(df)])


def test_metadata_describes_the_vector_preprocessing(exported):
    meta = metadata(exported)
    d = {i["input"]: i for i in json.loads(meta["deepqoe.inputs"])}
    vec = d["feat"]["preprocessing"]
    assert vec["type"] == "vector" and vec["columns"] == VEC
    assert vec["nan_to"] == 0.5 and vec["clip"] == [-10.0, 10.0] and vec["normalisation"] == "standard"
    assert vec["clip_in_graph"] and vec["nan_in_graph"] and not vec["log1p"]
    assert any("clip(x, -10, 10)" in s for s in vec["steps"]) and any("0.5" in s for s in vec["steps"])
    num = d["x"]["preprocessing"]
    assert num["type"] == "numeric" and num["nan_to"] is None and num["clip"] is None
    assert num["normalisation"] == "minmax" and not num["clip_in_graph"]
    cat = d["c"]["preprocessing"]
    assert cat["unknown_code"] == 0 and cat["missing"] == "error" and cat["cardinality"] == 4
    assert "deepqoe.preprocessing" in meta


def test_metadata_describes_the_score_clip(model_dir, exported):
    """deepqoe predict keeps a table regressor's score inside its training targets (when model.json has
    their range) or its rating_scale: the metadata says so."""
    target = json.loads((model_dir / "model.json").read_text())["target"]
    model = json.loads(metadata(exported)["deepqoe.model"])
    want = [target["min"], target["max"]] if "min" in target else None
    assert model["score_clip"] == want and (want is None) == (model["score_clip_reason"] is None)


def test_following_the_metadata_gives_the_predictor_scores(model_dir, exported):
    """Outliers (1e6) and NaN / inf in the vector input, an outlier in the scalar one, unseen categories."""
    df = hard_rows()
    want = predictor_scores(model_dir, df)
    feeds = feeds_from_metadata(metadata(exported), df)
    got = onnx_scores(exported, feeds)
    assert np.isfinite(want).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # before deepqoe predict's score clip too: the network's own output on those rows
    from deepqoe.export import onnx_session
    from deepqoe.persistence import load_model

    raw = onnx_session(exported).run(["prediction"], feeds)[0]
    np.testing.assert_allclose(raw, load_model(model_dir).predict(df), rtol=1e-5, atol=1e-5)


def test_the_graph_scores_as_deepqoe_predict_does(model_dir, exported):
    """A regressor with a score clip has a third output, "score": the prediction clipped as deepqoe predict
    clips it, so an ONNX consumer gets predict's scores without reading the clip from the metadata."""
    from deepqoe.export import onnx_session

    df = hard_rows()
    feeds = feeds_from_metadata(metadata(exported), df)
    sess = onnx_session(exported)
    assert [o.name for o in sess.get_outputs()] == ["output", "prediction", "score"]
    raw, score = sess.run(["prediction", "score"], feeds)
    clip = json.loads(metadata(exported)["deepqoe.model"])["score_clip"]
    assert ((raw < clip[0]) | (raw > clip[1])).any()  # rows far out: the clip is doing something
    np.testing.assert_allclose(score, predictor_scores(model_dir, df), rtol=1e-5, atol=1e-5)
    outputs = json.loads(metadata(exported)["deepqoe.outputs"])
    assert [o["name"] for o in outputs] == ["output", "prediction", "score"]


def test_the_graph_clips_vector_inputs_and_fills_their_nan(model_dir, exported):
    """A consumer that only standardises (NaN stays NaN, 1e6 stays far out) gets the same scores."""
    df = hard_rows()
    feeds = feeds_from_metadata(metadata(exported), df, skip_graph_steps=True)
    assert np.isnan(feeds["feat"]).any() and np.abs(np.nan_to_num(feeds["feat"])).max() > 1e5
    np.testing.assert_allclose(onnx_scores(exported, feeds), predictor_scores(model_dir, df), rtol=1e-5, atol=1e-5)


def test_parity_covers_outliers_and_missing_values(model_dir, exported):
    from deepqoe.export import encode_with_metadata, example_rows, parity
    from deepqoe.persistence import load_model

    assert parity(model_dir, exported) < 1e-5  # random tensors + example_rows (outliers, NaN, inf, unseen)
    assert parity(model_dir, exported, hard_rows()) < 1e-5
    rows = example_rows(load_model(model_dir), n=4)
    assert rows[VEC].isna().any().any() and np.isinf(rows[VEC].to_numpy()).any()
    assert (rows[VEC].abs() >= 1e6).any().any() and "__not_in_training__" in set(rows["c"])
    # the package's reference implementation of the metadata agrees with this file's
    meta = metadata(exported)
    inputs = json.loads(meta["deepqoe.inputs"])
    for skip in (False, True):
        ours, theirs = feeds_from_metadata(meta, hard_rows(), skip), encode_with_metadata(inputs, hard_rows(), skip)
        for k in ours:
            np.testing.assert_array_equal(ours[k], theirs[k])


def test_parity_catches_an_export_without_the_clip(model_dir, tmp_path, monkeypatch):
    """The export as it was (no clip in the graph, no clip / nan_to in the metadata): parity says so."""
    import deepqoe.export as E

    real = E._numeric_preprocessing

    def old_metadata(cfg, enc, source):
        p = real(cfg, enc, source)
        return {**p, "clip": None, "clip_in_graph": False, "nan_to": None, "nan_in_graph": False}

    monkeypatch.setattr(E, "_numeric_preprocessing", old_metadata)
    out = tmp_path / "old.onnx"
    E.export_onnx(model_dir, out)
    monkeypatch.undo()
    with pytest.raises(Exception):  # NaN in a vector input: the old metadata has no nan_to, so it is an error
        E.parity(model_dir, out)
    rows = hard_rows().fillna(0.0).replace([np.inf, -np.inf], 0.0)
    assert E.parity(model_dir, out, rows) > 1e-3  # the 1e6 rows, unclipped


def test_every_kind_is_described_and_checked(tmp_path):
    """Log-scaled vector, viewer category (missing -> unknown), sequence (truncated, padded, mask)."""
    from deepqoe.estimators import DeepQoERegressor
    from deepqoe.export import export_onnx, parity
    from deepqoe.persistence import save_model

    rng = np.random.default_rng(2)
    n = 40
    df = pd.DataFrame({"b0": rng.uniform(100, 5000, n), "b1": rng.uniform(0, 50, n),
                       "viewer": rng.choice(["u1", "u2", "u3"], n),
                       "series": [rng.normal(3, 1, int(k)).tolist() for k in rng.integers(2, 12, n)]})
    y = np.log1p(df.b0) + df.series.map(np.mean)
    inputs = [{"column": "bits", "modality": "vector", "columns": ["b0", "b1"], "log": True, "nan_to": 0},
              {"column": "viewer", "modality": "categorical", "role": "viewer"},
              {"column": "series", "modality": "sequence", "sequence_length": 8}]
    est = DeepQoERegressor(inputs=inputs, hidden_layers=(8,), max_epochs=3, patience=3, random_state=0).fit(df, y)
    model = save_model(est, tmp_path / "m")
    meta = export_onnx(model, tmp_path / "m.onnx")
    d = {i["input"]: i["preprocessing"] for i in json.loads(meta["deepqoe.inputs"])}
    assert d["bits"]["log1p"] and d["bits"]["clip"] == [-10.0, 10.0] and d["bits"]["nan_to"] == 0.0
    assert d["viewer"]["missing"] == "unknown" and d["viewer"]["column_absent"] == "unknown"
    assert d["series"]["length"] == 8 and d["series"]["channels"] == 1 and len(d["series"]["mean"]) == 1
    assert parity(model, tmp_path / "m.onnx") < 1e-5
    rows = df.head(5).assign(b0=[1e12, np.nan, 10.0, np.inf, 0.0], viewer=["u1", None, "new", "u2", "u3"],
                             series=[[1e6] * 20, [1.0], [2.0, 3.0], "[4.0, 5.0]", [0.0] * 8])
    assert parity(model, tmp_path / "m.onnx", rows) < 1e-5
