"""Input validation of table (non-session) models, from an audit: a bad config value, key column, target or
input value is one DeepQoEError naming the file, field or column and the file's row, before any training;
nothing silently becomes a wrong dataset (a group "nan", a mean of a text target, an input value of another
row), and reading a table prints no pandas noise."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deepqoe.config import MAX_SEED, config_from_dict, load_config
from deepqoe.datasets import load_dataset, prepare_inputs
from deepqoe.errors import DeepQoEError


def table(n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "grp": rng.integers(0, 4, n),
                         "genre": rng.choice(["news", "sport"], n), "res": rng.choice([480, 720, 1080], n),
                         "br": rng.uniform(100, 5000, n).round(1), "mos": rng.integers(1, 6, n),
                         "score": rng.uniform(1, 5, n).round(3)})


INPUTS = [{"column": "res", "modality": "categorical"}, {"column": "br", "modality": "continuous"}]


def dataset(src: Path | str, **over) -> dict:
    ds = {"name": "t", "source": src if isinstance(src, list) else str(src), "task": "regression", "target": "score", "inputs": INPUTS}
    ds.update(over)
    return {"dataset": ds}


def write(tmp_path: Path, df: pd.DataFrame, name: str = "data.csv") -> Path:
    p = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(p)
    else:
        df.to_csv(p, index=False)
    return p


def raises(fn, *words: str) -> DeepQoEError:
    with pytest.raises(DeepQoEError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and "np.float" not in msg and "array(" not in msg and len(msg) < 400, msg
    for w in words:
        assert w in msg, msg
    return e.value


def config_error(raw: dict, field: str, *words: str) -> DeepQoEError:
    e = raises(lambda: config_from_dict(raw, file="c.yaml"), "c.yaml", *words)
    assert e.field == field, (e.field, str(e))
    return e


def load(tmp_path: Path, df: pd.DataFrame, name: str = "data.csv", **over):
    src = write(tmp_path, df, name)
    return load_dataset(config_from_dict(dataset(src, **over)).dataset), str(src)


# ---- 1. key columns with missing values ------------------------------------------------------------------
def test_missing_group_value_is_an_error_not_a_group_nan(tmp_path):
    df = table()
    df["grp"] = df["grp"].astype(float)
    df.loc[[3, 7], "grp"] = np.nan
    src = write(tmp_path, df)
    e = raises(lambda: load_dataset(config_from_dict(dataset(src, group="grp")).dataset), str(src), "missing group")
    assert (e.column, e.row) == ("grp", 4)


def test_missing_aggregate_by_key_is_an_error_not_a_dropped_row(tmp_path):
    df = table()
    df["genre"] = df["genre"].astype(object)
    df.loc[5, "genre"] = np.nan
    src = write(tmp_path, df)
    cfg = config_from_dict(dataset(src, aggregate_by=["genre", "res"], inputs=INPUTS[:1])).dataset
    e = raises(lambda: load_dataset(cfg), str(src), "missing aggregate_by")
    assert (e.column, e.row) == ("genre", 6)


def test_missing_feature_file_id_is_named_as_missing(tmp_path):
    df = table()
    df["vid"] = df["id"].astype(float)
    df.loc[2, "vid"] = np.nan
    src = write(tmp_path, df)
    pd.DataFrame({"id": np.arange(12), "f0": np.ones(12)}).to_csv(tmp_path / "feat.csv", index=False)
    inputs = INPUTS + [{"column": "vid", "modality": "vector", "file": str(tmp_path / "feat.csv")}]
    e = raises(lambda: load_dataset(config_from_dict(dataset(src, inputs=inputs)).dataset), str(src), "missing id")
    assert (e.column, e.row) == ("vid", 3)


# ---- 2. config values that crashed later -----------------------------------------------------------------
def test_empty_source_list_is_a_config_error():
    config_error(dataset([]), "dataset.source", "at least one")


@pytest.mark.parametrize("encoding", ["rot13", "base64", "zlib"])
def test_codecs_that_are_not_text_encodings_are_config_errors(encoding):
    config_error(dataset("x.csv", reader={"encoding": encoding}), "dataset.reader.encoding", "not a text encoding")


def test_text_encodings_are_accepted():
    for enc in ("utf-8", "latin-1", "cp1252", "utf-8-sig", "utf-16"):
        assert config_from_dict(dataset("x.csv", reader={"encoding": enc})).dataset.reader.encoding == enc


@pytest.mark.parametrize("sep", ["", "abc", "\\s+"])
def test_separator_must_be_one_character(sep):
    config_error(dataset("x.csv", reader={"sep": sep}), "dataset.reader.sep", "one character")


def test_separator_and_decimal_must_differ():
    config_error(dataset("x.csv", reader={"sep": ";", "decimal": ";"}), "dataset.reader", "must differ")
    assert config_from_dict(dataset("x.csv", reader={"sep": "\t"})).dataset.reader.sep == "\t"


@pytest.mark.parametrize("classes, words", [
    ([1, 2, 3, 4, 5, "1"], ["mix numbers and text"]),
    ([None, 1, 2], ["found null"]),
    ([True, 1, 2], ["found true"]),
    ([1, 1, 2, 3, 4, 5], ["listed twice"]),
    ([1, 2, 1.0], ["listed twice"]),
    ([1, 2, float("nan")], ["finite"]),
    ([[1], 2], ["number or a text label"]),
])
def test_bad_classes_are_config_errors(classes, words):
    config_error(dataset("x.csv", task="classification", target="mos", classes=classes), "dataset.classes",
                 *words)


def test_fewer_than_two_classes_is_a_config_error():
    config_error(dataset("x.csv", task="classification", target="mos", classes=[1]), "dataset.classes",
                 "at least 2 classes")


def test_numeric_classes_of_mixed_int_and_float_become_floats():
    cfg = config_from_dict(dataset("x.csv", task="classification", target="mos", classes=[1, 2.5, 4])).dataset
    assert cfg.classes == [1.0, 2.5, 4.0] and all(type(c) is float for c in cfg.classes)


@pytest.mark.parametrize("bins, words", [([4, 2], ["strictly increasing"]), ([2, 2], ["strictly increasing"]),
                                         ([float("nan"), 3], ["finite"]), ([float("inf"), 3], ["finite"]),
                                         ([True, 3], ["boolean"])])
def test_target_bins_must_be_finite_and_increasing(bins, words):
    config_error(dataset("x.csv", task="classification", classes=["lo", "mid", "hi"], target_bins=bins),
                 "dataset.target_bins", *words)


@pytest.mark.parametrize("section", ["training", "evaluation"])
@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 99999999999999999999, True])
def test_seeds_must_be_whole_numbers_in_range(section, seed):
    e = config_error(dataset("x.csv") | {section: {"seed": seed}}, f"{section}.seed", "0 to 4294967295")
    assert len(str(e)) < 200


def test_largest_seed_is_accepted():
    cfg = config_from_dict(dataset("x.csv") | {"training": {"seed": MAX_SEED}, "evaluation": {"seed": MAX_SEED}})
    assert cfg.training.seed == cfg.evaluation.seed == MAX_SEED


def test_target_as_an_input_is_a_config_error():
    inputs = INPUTS + [{"column": "score", "modality": "continuous"}]
    config_error(dataset("x.csv", inputs=inputs), "dataset.inputs.2", "target column 'score' is also an input")
    inputs = INPUTS + [{"column": "v", "columns": ["br", "score"], "modality": "vector"}]
    config_error(dataset("x.csv", inputs=inputs), "dataset.inputs.2", "also an input")


def test_aggregate_by_the_target_is_a_config_error():
    config_error(dataset("x.csv", aggregate_by=["score"]), "dataset.aggregate_by", "lists the target column")


def test_classification_with_aggregate_by_needs_target_bins():
    raw = dataset("x.csv", task="classification", target="mos", classes=[1, 2, 3, 4, 5], aggregate_by=["genre"])
    config_error(raw, "dataset.aggregate_by", "mean scores", "regression", "target_bins")
    raw["dataset"].update(target="score", classes=["lo", "hi"], target_bins=[3])
    assert config_from_dict(raw).dataset.aggregate_by == ["genre"]


def test_the_dataset_section_of_a_model_file_is_not_held_to_the_training_checks():
    """A model trained before these checks (a leaky input, repeated classes, unordered bins) still reads its
    prediction inputs: only a config to train from is checked for them."""
    from deepqoe.config import DatasetConfig

    ds = dataset("x.csv", task="classification", target="score", classes=["lo", "lo", "hi"], target_bins=[4, 2],
                 inputs=INPUTS + [{"column": "score", "modality": "continuous"}])["dataset"]
    assert DatasetConfig.model_validate(ds).target == "score"


def test_config_errors_reach_the_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(dataset("x.csv") | {"evaluation": {"seed": -1}}))
    raises(lambda: load_config(p), str(p), "evaluation.seed")


# ---- 3. aggregate_by -------------------------------------------------------------------------------------
def conditions(n_per: int = 3) -> pd.DataFrame:
    """Ratings of 4 conditions (genre x res), ``n_per`` each; br is the same within a condition."""
    rows = []
    for k, (g, r) in enumerate([("news", 480), ("news", 720), ("sport", 480), ("sport", 720)]):
        for j in range(n_per):
            rows.append({"genre": g, "res": r, "br": 1000.0 + k, "score": 1.0 + k + j})
    return pd.DataFrame(rows)


def test_aggregate_by_averages_per_condition(tmp_path):
    data, _ = load(tmp_path, conditions(), aggregate_by=["genre", "res"])
    assert data.y.tolist() == [2.0, 3.0, 4.0, 5.0] and data.X["br"].tolist() == [1000.0, 1001.0, 1002.0, 1003.0]


def test_aggregate_by_text_in_the_target_names_the_file_row(tmp_path):
    df = conditions().astype({"score": object})
    df.loc[7, "score"] = "good"
    src = write(tmp_path, df)
    e = raises(lambda: load_dataset(config_from_dict(dataset(src, aggregate_by=["genre", "res"])).dataset),
               str(src), "'good'")
    assert (e.column, e.row) == ("score", 8)


def test_aggregate_by_huge_target_names_the_file_row_and_value(tmp_path):
    df = conditions()
    df.loc[9, "score"] = 1e300
    src = write(tmp_path, df)
    e = raises(lambda: load_dataset(config_from_dict(dataset(src, aggregate_by=["genre", "res"])).dataset),
               str(src), "found 1e+300")
    assert e.row == 10


def test_aggregate_by_input_that_differs_within_a_condition_is_an_error(tmp_path):
    df = conditions()
    df.loc[4, "br"] = 5.0
    src = write(tmp_path, df)
    e = raises(lambda: load_dataset(config_from_dict(dataset(src, aggregate_by=["genre", "res"])).dataset),
               str(src), "5.0 differs from the 1001.0 of row 4", "add 'br' to aggregate_by")
    assert (e.column, e.row) == ("br", 5)


def test_aggregate_by_categorical_input_that_differs_within_a_condition_is_an_error(tmp_path):
    e = raises(lambda: load(tmp_path, conditions(), aggregate_by=["genre"], inputs=INPUTS[:1]),
               "720 differs from the 480 of row 1")
    assert (e.column, e.row) == ("res", 4)


# ---- 4. values checked when the table is read (file rows, not rows of a shuffled split) -------------------
def test_negative_value_under_log_names_the_file_row(tmp_path):
    df = table()
    df.loc[4, "br"] = -5.0
    src = write(tmp_path, df)
    inputs = [INPUTS[0], {"column": "br", "modality": "continuous", "log": True}]
    e = raises(lambda: load_dataset(config_from_dict(dataset(src, inputs=inputs)).dataset), str(src), "log",
               "-5.0")
    assert (e.column, e.row) == ("br", 5)


def test_malformed_sequence_names_the_file_row(tmp_path):
    df = table()
    df["seq"] = ["[1, 2, 3]"] * len(df)
    df.loc[6, "seq"] = "[1,2,"
    src = write(tmp_path, df)
    inputs = INPUTS + [{"column": "seq", "modality": "sequence", "sequence_length": 4}]
    e = raises(lambda: load_dataset(config_from_dict(dataset(src, inputs=inputs)).dataset), str(src), "JSON")
    assert (e.column, e.row) == ("seq", 7)
    df.loc[6, "seq"] = "[[1, 2], [3, 4]]"  # 2 channels where the others have 1
    write(tmp_path, df)
    e = raises(lambda: load_dataset(config_from_dict(dataset(src, inputs=inputs)).dataset), str(src), "channels")
    assert e.row == 7


# ---- 5. messages ----------------------------------------------------------------------------------------
def test_float_classes_match_an_integer_target(tmp_path):
    data, _ = load(tmp_path, table(), task="classification", target="mos", classes=[1.0, 2.0, 3.0, 4.0, 5.0])
    assert set(data.y.tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0} and data.y.dtype == np.float64


def test_integer_classes_match_a_text_target(tmp_path):
    df = table().astype({"mos": str})
    df.loc[0, "mos"] = "5.0"
    data, _ = load(tmp_path, df, "data.parquet", task="classification", target="mos", classes=[1, 2, 3, 4, 5])
    assert data.y[0] == 5 and data.y.dtype.kind == "i"


def test_target_not_a_class_message_is_plain_and_bounded(tmp_path):
    df = table().astype({"mos": float})
    df.loc[3, "mos"] = 7.5
    src = write(tmp_path, df)
    cfg = config_from_dict(dataset(src, task="classification", target="mos", classes=list(range(1, 31)))).dataset
    e = raises(lambda: load_dataset(cfg), str(src), "target value 7.5 is not one of", ", ...]")
    assert e.row == 4


def test_a_series_in_a_numeric_column_is_not_printed_in_full(tmp_path):
    df = table()
    df["seq"] = [np.linspace(0, 1, 40)] * len(df)
    src = write(tmp_path, df, "data.parquet")
    inputs = INPUTS + [{"column": "seq", "modality": "continuous"}]
    raises(lambda: load_dataset(config_from_dict(dataset(src, inputs=inputs)).dataset), str(src),
           "a list of 40 value(s)", "'sequence' input")


def test_one_row_table_names_the_file(tmp_path):
    src = write(tmp_path, table(1))
    raises(lambda: load_dataset(config_from_dict(dataset(src)).dataset), str(src), "at least 2")


# ---- 6. stderr noise ------------------------------------------------------------------------------------
def test_wide_table_builds_its_inputs_without_pandas_warnings(tmp_path):
    df = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 200)), columns=[f"c{j}" for j in range(200)])
    df["score"] = np.arange(20.0)
    cfg = config_from_dict(dataset("x.csv", inputs=[{"column": "v", "modality": "vector",
                                                     "columns": [f"c{j}" for j in range(200)]}])).dataset
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X, inputs = prepare_inputs(cfg, df, "x.csv")
    assert X.shape == (20, 200) and inputs[0]["columns"][-1] == "c199"


def test_sentence_model_loads_without_a_progress_bar_off_a_terminal(monkeypatch):
    hf_logging = pytest.importorskip("transformers.utils.logging")
    from deepqoe.features.text import _quiet_loading

    hf_logging.enable_progress_bar()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with _quiet_loading():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()  # as it was

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    with _quiet_loading():
        assert hf_logging.is_progress_bar_enabled()


# ---- 7. unseen categories are counted -------------------------------------------------------------------
def test_categorical_encoder_counts_unseen_values():
    from deepqoe.config import InputConfig
    from deepqoe.features.tabular import CategoricalEncoder

    enc = CategoricalEncoder(InputConfig(column="res", modality="categorical")).fit(pd.DataFrame({"res": [480, 720]}))
    codes = enc.transform(pd.DataFrame({"res": [480, 1080, 2160, 1080.0]}))
    assert codes.tolist() == [1, 0, 0, 0]
    assert (enc.last_unknown, enc.last_unseen, enc.last_unseen_values) == (3, 3, ["1080", "2160"])
