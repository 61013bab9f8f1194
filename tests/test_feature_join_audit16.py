"""The join of feature files to ratings (user audit 16v):

1. a join key is text on both sides, at training and at prediction: ``001`` stays ``'001'``, ``1`` never
   equals ``001``, ids are compared in Unicode NFC (a macOS NFD file name matches), messages show ids as written;
2. an empty feature cell of a vector input is an error naming the feature file, its column and row (``nan_to``
   null, the default); an explicit ``nan_to`` fills it with one note per input, at training and at prediction;
3. training records how each feature file was made (``deepqoe extract``'s metadata) in model.json, and
   prediction says where the feature file's extractors, versions or options differ, and names the file, the
   raw column and its extractor when a column the model needs is missing;
4. ids without a row in the feature file are reported together, with their rows;
5. the note on early stopping's validation rows does not put the groups among them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deepqoe.cli import main
from deepqoe.config import InputConfig, config_from_dict
from deepqoe.datasets import load_dataset
from deepqoe.errors import DeepQoEError, DeepQoENote

IDS = [f"{i:03d}" for i in range(1, 13)]


def _features(ids=IDS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    return pd.DataFrame({"id": list(ids), "fr_vmaf_mean": rng.uniform(20, 95, n).round(2),
                         "siti_si_mean": rng.uniform(10, 80, n).round(2), "stream_fps": np.full(n, 25.0)})


def _ratings(ids=IDS, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    return pd.DataFrame({"video": list(ids), "content": [f"c{i % 3}" for i in range(n)],
                         "mos": rng.uniform(1, 5, n).round(2)})


def _write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def _config(tmp_path: Path, source: str = "ratings.csv", features: str = "features.parquet", **vector) -> Path:
    cfg = {"dataset": {"name": "videos", "source": source, "task": "regression", "target": "mos", "id": "video",
                       "inputs": [{"column": "video", "name": "video_features", "modality": "vector",
                                   "file": features, "file_id_column": "id", "projection": 4, **vector}]},
           "model": {"hidden_layers": [8], "dropout": 0.0},
           "training": {"max_epochs": 2, "patience": 2, "batch_size": 4}}
    p = tmp_path / "video.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def _dataset(tmp_path: Path, **kw):
    from deepqoe.config import load_config

    return load_config(_config(tmp_path, **kw)).dataset


def _run(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _note_lines(err: str, text: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("deepqoe: note:") and text in ln]


def _notes(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DeepQoENote)]


# ---- 1. join keys are text, as written ---------------------------------------------------------------------
@pytest.mark.parametrize("features", ["features.parquet", "features.csv"])
def test_zero_padded_ids_join_at_training_and_at_prediction(tmp_path, capsys, features):
    _write(_features(), tmp_path / features)
    _write(_ratings(), tmp_path / "ratings.csv")
    code, err = _run(capsys, "train", _config(tmp_path, features=features), "--out", tmp_path / "m", "--full")
    assert code == 0, err
    assert "'1'" not in err
    out = tmp_path / "pred.csv"
    code, err = _run(capsys, "predict", tmp_path / "m", tmp_path / "ratings.csv", "--out", out)
    assert code == 0, err
    assert pd.read_csv(out, dtype={"id": str})["id"].tolist() == IDS  # ids as written


def test_an_id_that_differs_by_leading_zeros_does_not_join(tmp_path):
    _write(_features(), tmp_path / "features.parquet")
    r = _ratings()
    r["video"] = np.arange(1, 13)  # integers 1..12 (a Parquet integer column): not '001'
    _write(r, tmp_path / "ratings.parquet")
    with pytest.raises(DeepQoEError) as ei:
        load_dataset(_dataset(tmp_path, source="ratings.parquet"))
    msg = str(ei.value)
    assert "12 ids have no row in the feature file features.parquet" in msg and "1 (row 1)" in msg
    assert "the feature file has '001' where the table has 1" in msg and ei.value.column == "video"


def test_ids_are_compared_in_unicode_nfc(tmp_path):
    ids = IDS[:-1] + ["clip e\u0301t\u00e9"]  # a macOS (NFD) file name in the feature file
    _write(_features(ids), tmp_path / "features.parquet")
    _write(_ratings(IDS[:-1] + ["clip \u00e9t\u00e9"]), tmp_path / "ratings.csv")  # typed (NFC) in the ratings
    data = load_dataset(_dataset(tmp_path))
    assert len(data) == 12
    # two ids of the feature file that differ only in normalisation are one id twice
    _write(_features(IDS[:-2] + ["\u00e9", "e\u0301"]), tmp_path / "features.parquet")
    with pytest.raises(DeepQoEError) as ei:
        load_dataset(_dataset(tmp_path))
    assert "differ only in Unicode normalisation" in str(ei.value) and ei.value.row == 12


# ---- 4. missing ids: one error -----------------------------------------------------------------------------
def test_ids_without_a_feature_row_are_reported_together(tmp_path, capsys):
    ids = [f"{i:03d}" for i in range(1, 25)]
    _write(_features([i for i in ids if i not in ("021", "023", "024")]), tmp_path / "features.parquet")
    _write(_ratings(ids), tmp_path / "ratings.csv")
    code, err = _run(capsys, "train", _config(tmp_path), "--out", tmp_path / "m")
    assert code == 1
    assert ("3 ids have no row in the feature file features.parquet: '021' (row 21), '023' (row 23), '024' "
            "(row 24)") in err, err
    assert err.count("has no row") + err.count("have no row") == 1
    assert "`deepqoe predict --features FILE` reads their own feature file" in err, err   # the way for new videos


# ---- 2. empty feature cells ----------------------------------------------------------------------------------
@pytest.mark.parametrize("features", ["features.parquet", "features.csv"])
def test_an_empty_feature_cell_is_an_error_naming_the_feature_file_column_and_row(tmp_path, features):
    f = _features()
    f.loc[4, "fr_vmaf_mean"] = np.nan  # id '005': its full-reference extraction failed
    _write(f, tmp_path / features)
    _write(_ratings(IDS[::-1]), tmp_path / "ratings.csv")  # table row 8 is id '005'
    with pytest.raises(DeepQoEError) as ei:
        load_dataset(_dataset(tmp_path, features=features))
    e = ei.value
    assert (Path(e.file).name, e.column, e.row) == (features, "fr_vmaf_mean", 5)
    assert "'005'" in e.message and "row 8 of" in e.message and "nan_to" in e.message


def test_a_vector_of_table_columns_with_an_empty_cell_is_an_error(tmp_path):
    df = _ratings().assign(a=np.arange(12.0), b=np.arange(12.0))
    df.loc[6, "b"] = np.nan
    _write(df, tmp_path / "t.csv")
    raw = {"dataset": {"name": "t", "source": str(tmp_path / "t.csv"), "task": "regression", "target": "mos",
                       "inputs": [{"column": "v", "modality": "vector", "columns": ["a", "b"]}]}}
    with pytest.raises(DeepQoEError) as ei:
        load_dataset(config_from_dict(raw).dataset)
    assert (ei.value.column, ei.value.row) == ("b", 7) and "missing value" in ei.value.message
    raw["dataset"]["inputs"][0]["nan_to"] = 0
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        data = load_dataset(config_from_dict(raw).dataset)
    notes = _notes(rec)
    assert len(data) == 12 and len(notes) == 1 and "1 empty cell(s)" in notes[0] and "(rows 7)" in notes[0]


def test_nan_to_fills_with_one_note_at_training_and_at_prediction(tmp_path, capsys):
    f = _features()
    f.loc[4, ["fr_vmaf_mean", "siti_si_mean"]] = np.nan
    _write(f, tmp_path / "features.parquet")
    _write(pd.concat([_ratings(), _ratings().iloc[[4]]], ignore_index=True), tmp_path / "ratings.csv")  # '005' twice
    code, err = _run(capsys, "train", _config(tmp_path, nan_to=0), "--out", tmp_path / "m", "--full")
    assert code == 0, err
    notes = _note_lines(err, "nan_to")
    assert len(notes) == 1, err
    assert "2 empty cell(s)" in notes[0] and "1 row(s)" in notes[0] and "'005'" in notes[0]
    assert "features.parquet" in notes[0] and "input 'video_features'" in notes[0]
    assert json.loads((tmp_path / "m" / "model.json").read_text())["dataset"]["inputs"][0]["nan_to"] == 0
    code, err = _run(capsys, "predict", tmp_path / "m", tmp_path / "ratings.csv", "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert len(_note_lines(err, "nan_to 0")) == 1, err


def test_nan_to_defaults_to_null_and_configs_that_fill_say_so():
    from deepqoe.experiments.ugc import RECIPE
    from deepqoe.persistence import PRETRAINED_DIR

    assert InputConfig(column="v", modality="vector", columns=["a"]).nan_to is None
    assert RECIPE["features_input"]["nan_to"] == 0  # VIDEVAL's protocol: NaN features are 0
    for model_json in PRETRAINED_DIR.glob("*/model.json"):  # shipped models store nan_to: the default is not used
        meta = json.loads(model_json.read_text())
        for d in (meta.get("inputs") or []) + ((meta.get("dataset") or {}).get("inputs") or []):
            assert "nan_to" in d, model_json


# ---- 3. how the features were made, checked at prediction ------------------------------------------------
def _extract(tmp_path: Path, out: str, extractors: str, fps: float) -> Path:
    assert main(["extract", str(tmp_path / "videos"), "--out", str(tmp_path / out), "--extractors", extractors,
                 "--fps", str(fps), "--cache", str(tmp_path / "cache"), "--no-progress"]) == 0
    return tmp_path / out


def test_extractor_settings_are_recorded_and_checked_at_prediction(tmp_path, capsys):
    pytest.importorskip("av")
    import pyarrow.parquet as pq

    from deepqoe.features.video.pipeline import read_feature_metadata
    from deepqoe.features.video.synth import synth_frames, write_clip

    ids = [f"{i:03d}" for i in range(1, 9)]
    for k, vid in enumerate(ids):
        write_clip(tmp_path / "videos" / f"{vid}.mp4", seconds=0.5, width=64, height=48, fps=10,
                   crf=20 + 8 * (k % 4), frames=synth_frames(64, 48, 5, seed=k // 4))
    feats = _extract(tmp_path, "features.parquet", "siti,stream", 2)
    _write(_ratings(ids), tmp_path / "ratings.csv")
    code, err = _run(capsys, "train", _config(tmp_path), "--out", tmp_path / "m", "--full")
    assert code == 0, err
    rec = json.loads((tmp_path / "m" / "model.json").read_text())["feature_files"]["video_features"]
    assert rec["file"] == "features.parquet" and rec["extractors"]["siti"]["options"] == {"fps": 2.0}
    assert rec["extractors"]["stream"]["version"] == read_feature_metadata(feats)["extractors"]["stream"]["version"]

    def predict() -> tuple[int, str]:
        return _run(capsys, "predict", tmp_path / "m", tmp_path / "ratings.csv", "--out", tmp_path / "p.csv")

    code, err = predict()
    assert code == 0 and not _note_lines(err, "made otherwise"), err
    # the same videos extracted at another frame rate
    _extract(tmp_path, "fps1.parquet", "siti,stream", 1).replace(feats)
    code, err = predict()
    notes = _note_lines(err, "made otherwise")
    assert code == 0 and len(notes) == 1, err
    assert "siti: fps 2 at training, 1 here" in notes[0] and str(feats) in notes[0]
    # another version of an extractor (the metadata as deepqoe extract writes it, one version changed)
    table = pq.read_table(feats)
    md = dict(table.schema.metadata)
    meta = json.loads(md[b"deepqoe"])
    meta["extractors"]["stream"]["version"] = "999"
    md[b"deepqoe"] = json.dumps(meta).encode()
    pq.write_table(table.replace_schema_metadata(md), feats)
    code, err = predict()
    notes = _note_lines(err, "made otherwise")
    assert code == 0 and len(notes) == 1 and f"stream: version {rec['extractors']['stream']['version']} at " \
        "training, 999 here" in notes[0], err
    # a file without siti: an error naming the file, the raw column and the extractor that makes it
    _extract(tmp_path, "stream.parquet", "stream", 2).replace(feats)
    code, err = predict()
    assert code == 1
    assert f"file '{feats}', column 'siti_si_max'" in err and "'siti'" in err, err
    assert "video_features__" not in err and "did you mean" not in err


def test_a_feature_file_without_metadata_records_nothing_and_a_missing_column_names_the_file(tmp_path, capsys):
    _write(_features(), tmp_path / "features.parquet")
    _write(_ratings(), tmp_path / "ratings.csv")
    code, err = _run(capsys, "train", _config(tmp_path), "--out", tmp_path / "m", "--full")
    assert code == 0, err
    assert "feature_files" not in json.loads((tmp_path / "m" / "model.json").read_text())
    _write(_features().drop(columns=["fr_vmaf_mean"]).assign(extra=1.0), tmp_path / "features.parquet")
    code, err = _run(capsys, "predict", tmp_path / "m", tmp_path / "ratings.csv", "--out", tmp_path / "p.csv")
    assert code == 1
    assert f"file '{tmp_path / 'features.parquet'}', column 'fr_vmaf_mean'" in err, err
    assert "video_features__" not in err and "did you mean" not in err


# ---- 5. the early-stopping note -------------------------------------------------------------------------------
def test_the_groups_of_a_random_validation_split_are_those_of_the_rows_it_is_drawn_from():
    from deepqoe.evaluation.protocols import validation_split_how

    _, val, how = validation_split_how(12, 0.1, 0, groups=["a"] * 6 + ["b"] * 6)
    assert len(val) == 1
    assert "among them" not in how and "the 12 rows they are drawn from hold 2 groups" in how


def test_batch_scoring_reads_a_vector_join_column_as_text_too(tmp_path, capsys):
    """The join column of a vector input (here not the id) is read as text by batch scoring's workers, as by
    plain predict: its zero-padded ids join."""
    _write(_features(), tmp_path / "features.parquet")
    _write(_ratings().assign(row_id=[f"r{i}" for i in range(len(IDS))]), tmp_path / "ratings.csv")
    cfg = yaml.safe_load(_config(tmp_path).read_text())
    cfg["dataset"]["id"] = "row_id"
    (tmp_path / "video.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    code, err = _run(capsys, "train", tmp_path / "video.yaml", "--out", tmp_path / "m", "--full")
    assert code == 0, err
    code, err = _run(capsys, "predict", tmp_path / "m", tmp_path / "ratings.csv", "--out", tmp_path / "p.csv")
    assert code == 0, err
    code, err = _run(capsys, "predict", tmp_path / "m", tmp_path / "ratings.csv", "--scheduler", "local",
                     "--workers", "1", "--out", tmp_path / "batch")
    assert code == 0, err
    plain = pd.read_csv(tmp_path / "p.csv", dtype={"id": str}).set_index("id")["score"]
    batch = pd.read_parquet(tmp_path / "batch").set_index("id")["score"]
    assert sorted(batch.index) == sorted(plain.index)
    assert np.allclose(batch.loc[plain.index].to_numpy(), plain.to_numpy(), atol=1e-5)
