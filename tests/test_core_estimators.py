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
    tensors = reg._encode(df)
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
