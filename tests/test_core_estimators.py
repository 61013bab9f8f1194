"""Phases 2 and 3 through the scikit-learn estimators: training, repeatability, persistence, sklearn."""

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from deepqoe.estimators import DeepQoEClassifier, DeepQoERegressor, DeepQoERepresentation
from deepqoe.errors import DeepQoEError
from deepqoe.model import BranchSpec, DeepQoENet
from deepqoe.persistence import load_model, save_model

FAST = dict(hidden_layers=(64, 32), dropout=0.2, max_epochs=150, patience=20, learning_rate=3e-3)


def test_network_shapes_and_paper_defaults():
    specs = [BranchSpec("genre", "dense", dim=50, projection=5),
             BranchSpec("resolution", "index", cardinality=7, embedding_dim=8, projection=None),
             BranchSpec("bitrate", "dense", dim=1, projection=8),
             BranchSpec("sex", "index", cardinality=3, embedding_dim=1, projection=None)]
    net = DeepQoENet(specs, n_outputs=5)
    assert [m.out_features for m in net.fc if isinstance(m, torch.nn.Linear)] == [512, 256]
    assert net.fc[0].in_features == 5 + 8 + 8 + 1
    x = [torch.randn(4, 50), torch.randint(0, 7, (4,)), torch.randn(4, 1), torch.randint(0, 3, (4,))]
    assert net(x).shape == (4, 5) and net.representation(x).shape == (4, 256)


def test_classifier_learns_better_than_majority(table, inputs):
    tr, te = table.iloc[:240], table.iloc[240:]
    clf = DeepQoEClassifier(inputs=inputs, **FAST).fit(tr, tr.rating)
    acc = (clf.predict(te) == te.rating.to_numpy()).mean()
    majority = (te.rating == tr.rating.mode()[0]).mean()
    assert acc > majority + 0.1
    proba = clf.predict_proba(te)
    assert proba.shape == (60, len(clf.classes_)) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert clf.transform(te).shape == (60, 32)


def test_regressor_fits_mos(table, inputs):
    tr, te = table.iloc[:240], table.iloc[240:]
    reg = DeepQoERegressor(inputs=inputs, **FAST).fit(tr, tr.mos)
    pred = reg.predict(te)
    assert np.corrcoef(pred, te.mos)[0, 1] > 0.8


def test_bf16_mixed_precision_and_threads(table, inputs):
    tr, te = table.iloc[:240], table.iloc[240:]
    fp32 = DeepQoERegressor(inputs=inputs, **FAST).fit(tr, tr.mos)
    bf16 = DeepQoERegressor(inputs=inputs, precision="bf16", **FAST).fit(tr, tr.mos)
    again = DeepQoERegressor(inputs=inputs, precision="bf16", **FAST).fit(tr, tr.mos)
    p16, p32 = bf16.predict(te), fp32.predict(te)
    assert np.array_equal(p16, again.predict(te))  # still exactly repeatable for a seed
    assert not np.array_equal(p16, p32)  # the layers really ran in bfloat16 while training
    assert np.corrcoef(p16, te.mos)[0, 1] > 0.8
    assert p16.dtype == np.float32 or p16.dtype == np.float64  # prediction stays full precision
    assert all(p.dtype == torch.float32 for p in bf16.network_.parameters())
    with pytest.raises(DeepQoEError, match="precision"):
        DeepQoERegressor(inputs=inputs, precision="fp8").fit(tr, tr.mos)
    before = torch.get_num_threads()
    two = DeepQoERegressor(inputs=inputs, n_threads=2, **dict(FAST, max_epochs=3)).fit(tr, tr.mos)
    assert np.isfinite(two.predict(te)).all() and torch.get_num_threads() == before  # threads restored
    with pytest.raises(DeepQoEError, match="n_threads"):
        DeepQoERegressor(inputs=inputs, n_threads=0).fit(tr, tr.mos)


def test_projection_zero_removes_an_input(table, inputs):
    inputs[0]["projection"] = 0  # drop genre
    clf = DeepQoEClassifier(inputs=inputs, **FAST).fit(table, table.rating)
    assert [c.column for c in clf.input_configs_] == ["resolution", "bitrate", "age", "sex"]
    assert "genre" not in clf.feature_names_in_


def test_same_seed_repeats_exactly_and_other_seed_differs(table, inputs):
    a = DeepQoEClassifier(inputs=inputs, random_state=3, **FAST).fit(table, table.rating).predict_proba(table)
    b = DeepQoEClassifier(inputs=inputs, random_state=3, **FAST).fit(table, table.rating).predict_proba(table)
    c = DeepQoEClassifier(inputs=inputs, random_state=4, **FAST).fit(table, table.rating).predict_proba(table)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("cls,target", [(DeepQoEClassifier, "rating"), (DeepQoERegressor, "mos")])
def test_save_load_gives_identical_outputs(tmp_path, table, inputs, cls, target):
    est = cls(inputs=inputs, **FAST).fit(table, table[target])
    save_model(est, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["encoders"][1]["vocabulary"] and meta["versions"]["torch"]
    loaded = load_model(tmp_path / "m")
    assert np.array_equal(loaded.predict(table), est.predict(table))
    assert np.array_equal(loaded.transform(table), est.transform(table))
    if cls is DeepQoEClassifier:
        assert np.array_equal(loaded.predict_proba(table), est.predict_proba(table))
    # nothing in the directory is a pickle or a torch zip: a safetensors header and plain JSON
    raw = (tmp_path / "m" / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert json.loads(raw[8:8 + header_len])["__metadata__"]["format"] == "deepqoe"


def test_sklearn_cross_val_score_clone_and_params(table, inputs):
    clf = DeepQoEClassifier(inputs=inputs, **FAST)
    scores = cross_val_score(clf, table, table.rating, cv=3)
    assert len(scores) == 3 and all(0 <= s <= 1 for s in scores)
    c2 = clone(clf).set_params(dropout=0.3)
    assert c2.get_params()["dropout"] == 0.3 and clf.get_params()["dropout"] == 0.2
    reg_scores = cross_val_score(DeepQoERegressor(inputs=inputs, **FAST), table, table.mos, cv=2,
                                 scoring="neg_mean_squared_error")
    assert np.all(reg_scores < 0)


def test_representation_transformer_in_a_pipeline(table, inputs):
    pipe = Pipeline([("deepqoe", DeepQoERepresentation(task="classification", inputs=inputs, **FAST)),
                     ("svm", SVC())])
    scores = cross_val_score(pipe, table, table.rating, cv=2)
    assert all(s > 0.3 for s in scores)


def test_fine_tune_from_a_trained_model(table, inputs):
    base = DeepQoERegressor(inputs=inputs, **FAST).fit(table, table.mos)
    frozen = DeepQoERegressor(inputs=inputs, init_from=base, freeze_representation=True, **FAST)
    frozen.fit(table.iloc[:100], table.mos.iloc[:100])
    assert "fc.0.weight" in frozen.warm_started_
    assert torch.equal(frozen.network_.fc[0].weight, base.network_.fc[0].weight)  # frozen: unchanged
    assert not torch.equal(frozen.network_.head.weight, base.network_.head.weight)


def test_invalid_parameters_are_clear_errors(table, inputs):
    with pytest.raises(DeepQoEError, match="dropout"):
        DeepQoEClassifier(inputs=inputs, dropout=1.5).fit(table, table.rating)
    with pytest.raises(DeepQoEError, match="modality"):
        DeepQoEClassifier(inputs=[{"column": "genre", "modality": "txt"}]).fit(table, table.rating)
    with pytest.raises(DeepQoEError, match="not one of the classes"):
        DeepQoEClassifier(inputs=inputs, classes=[1, 2, 3], **FAST).fit(table, table.rating)


def test_sequence_input_and_per_second_curve():
    rng = np.random.default_rng(0)
    import pandas as pd

    n, L = 120, 20
    series = [np.clip(rng.normal(3, 1, L) - (np.arange(L) > rng.integers(5, L)) * 2, 0, 5) for _ in range(n)]
    df = pd.DataFrame({"q": [s.tolist() for s in series]})
    y = np.array([s.mean() for s in series])
    reg = DeepQoERegressor(inputs=[{"column": "q", "modality": "sequence", "sequence_length": L, "projection": 16}],
                           **FAST).fit(df, y)
    assert np.corrcoef(reg.predict(df), y)[0, 1] > 0.5
    curve = reg.predict_curve(df.iloc[:3])
    assert curve.shape == (3, L) and np.isfinite(curve).all()


@pytest.mark.parametrize("encoder", ["conv", "gru"])
def test_per_second_curve_equals_rerunning_the_network_on_each_prefix(encoder):
    """predict_curve computes every prefix in one pass; it must equal cutting the series after each second
    and running the whole network again (what the curve means)."""
    import pandas as pd

    rng = np.random.default_rng(1)
    n, L = 40, 12
    lengths = rng.integers(3, L + 1, n)
    df = pd.DataFrame({"q": [rng.normal(3, 1, k).tolist() for k in lengths], "x": rng.normal(0, 1, n)})
    y = np.array([np.mean(s) for s in df.q]) + df.x.to_numpy()
    reg = DeepQoERegressor(inputs=[{"column": "q", "modality": "sequence", "sequence_length": L, "projection": 8,
                                    "sequence_encoder": encoder},
                                   {"column": "x", "modality": "continuous"}], **dict(FAST, max_epochs=5)).fit(df, y)
    curve = reg.predict_curve(df)
    tensors = reg.encode(df)
    k = next(i for i, e in enumerate(reg.encoders_) if e.kind == "sequence")
    brute = np.full((n, L), np.nan)
    with torch.no_grad():
        for t in range(1, L + 1):
            parts = list(tensors)
            parts[k] = tensors[k].clone()
            parts[k][:, :, t:] = 0.0
            out = reg.network_(parts)[:, 0].numpy() * reg.y_std_ + reg.y_mean_
            ok = lengths >= t
            brute[ok, t - 1] = out[ok]
    assert np.array_equal(np.isnan(curve), np.isnan(brute))
    assert np.allclose(curve[~np.isnan(curve)], brute[~np.isnan(brute)], atol=1e-5)
    last = curve[np.arange(n), lengths - 1]  # the curve ends at the session's overall score
    assert np.allclose(last, reg.predict(df), atol=1e-5)


def _tamper_json(edit):
    def apply(d):
        meta = json.loads((d / "model.json").read_text())
        out = edit(meta)
        (d / "model.json").write_text(out if isinstance(out, str) else json.dumps(meta if out is None else out))
    return apply


def _tamper_weights(edit):
    def apply(d):
        from safetensors.torch import load_file, save_file

        w = load_file(str(d / "model.safetensors"))
        edit(w)
        save_file(w, str(d / "model.safetensors"))
    return apply


TAMPERED = {
    "no estimator": (_tamper_json(lambda m: m.pop("estimator") and None), "model.json", "estimator"),
    "estimator names a callable": (_tamper_json(lambda m: m.update(estimator="deepqoe.cli.main")), "model.json",
                                   "estimator"),
    "no params": (_tamper_json(lambda m: m.pop("params") and None), "model.json", "params"),
    "no inputs": (_tamper_json(lambda m: m.pop("inputs") and None), "model.json", "inputs"),
    "no encoders": (_tamper_json(lambda m: m.pop("encoders") and None), "model.json", "encoders"),
    "no task": (_tamper_json(lambda m: m.pop("task") and None), "model.json", "task"),
    "no classes": (_tamper_json(lambda m: m.update(classes=None)), "model.json", "classes"),
    "hidden layers a string": (_tamper_json(lambda m: m["params"].update(hidden_layers="big")), "model.json",
                               "hidden_layers"),
    "inputs a number": (_tamper_json(lambda m: m.update(inputs=5)), "model.json", "inputs"),
    "empty encoder state": (_tamper_json(lambda m: m["encoders"].__setitem__(1, {})), "model.json", "encoders.1"),
    "unknown parameter": (_tamper_json(lambda m: m["params"].update(evil=1)), "model.json", "params"),
    "a JSON list": (_tamper_json(lambda m: [m]), "model.json", "JSON object"),
    "nested 200k deep": (_tamper_json(lambda m: "[" * 200_000 + "]" * 200_000), "model.json", "model.json"),
    "wrong tensor shape": (_tamper_weights(lambda w: w.update({"head.weight": torch.zeros(3, 7)})),
                           "model.safetensors", "head.weight"),
    "NaN weights": (_tamper_weights(lambda w: w["head.weight"].fill_(float("nan"))), "model.safetensors", "NaN"),
    "int64 weights": (_tamper_weights(lambda w: w.update({"head.bias": w["head.bias"].long()})),
                      "model.safetensors", "int64"),
    "missing tensor": (_tamper_weights(lambda w: w.pop("head.bias")), "model.safetensors", "missing"),
}


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory):
    from conftest import INPUTS, synthetic_table

    t = synthetic_table(80)
    est = DeepQoEClassifier(inputs=[dict(i) for i in INPUTS], **dict(FAST, max_epochs=2)).fit(t, t.rating)
    d = tmp_path_factory.mktemp("saved") / "m"
    save_model(est, d)
    return d


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_model_directory_is_one_line_error(tmp_path, saved_classifier, case):
    import shutil

    tamper, file, word = TAMPERED[case]
    d = tmp_path / "m"
    shutil.copytree(saved_classifier, d)
    load_model(d)  # untouched, it loads
    tamper(d)
    with pytest.raises(DeepQoEError) as e:
        load_model(d)
    msg = str(e.value)
    assert "\n" not in msg and f"{d / file}" in msg and word in msg, msg


def test_model_types_are_a_registry(tmp_path, saved_classifier):
    import shutil

    from deepqoe.persistence import register_model_type

    seen = []
    register_model_type("TestModelType", lambda d, meta: seen.append(meta["estimator"]) or type("M", (), {})())
    d = shutil.copytree(saved_classifier, tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    assert meta["estimator"] == "DeepQoEClassifier"
    meta["estimator"] = "TestModelType"
    (d / "model.json").write_text(json.dumps(meta))
    m = load_model(d)
    assert seen == ["TestModelType"] and m.meta_["estimator"] == "TestModelType"


def test_array_input_and_parameters_from_the_configs():
    from deepqoe.config import TrainingConfig
    from deepqoe.estimators import config_parameters

    params = DeepQoERegressor().get_params()
    for name, field in TrainingConfig.model_fields.items():
        assert params["random_state" if name == "seed" else name] == field.default  # one source of defaults
    assert config_parameters()["hidden_layers"] == (512, 256)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5]
    reg = DeepQoERegressor(**dict(FAST, max_epochs=20)).fit(X, y)
    assert reg.predict(X).dtype == np.float64 and reg.transform(X).dtype == np.float64
    assert reg.n_features_in_ == 3 and not hasattr(reg, "feature_names_in_")
    with pytest.raises(ValueError, match="3 features"):
        reg.predict(X[:, :2])
