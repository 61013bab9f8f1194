"""``deepqoe predict MODEL rows --features [INPUT=]FILE``: a table model whose vector input joins a feature file
(``deepqoe extract``) predicts new videos from a feature file of their own, without overwriting the training
features (the model stores the training file's path); the same with ``--scheduler``; options that cannot
apply are usage errors (exit 2) said before any data is read. And a vector input far outside its training
range is one note, not one per feature column."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from deepqoe.cli import main
from deepqoe.errors import DeepQoENote

torch.set_num_threads(1)

N_TRAIN, N_FEATURES = 40, 300
NEW_IDS = ["new_a", "new_b", "new_c", "new_d"]


def _features(ids: list[str], seed: int, n: int = N_FEATURES, id_column: str = "id", prefix: str = "f"
              ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.uniform(0.0, 1.0, (len(ids), n)).round(4), columns=[f"{prefix}{j:03d}" for j in range(n)])
    df.insert(0, id_column, ids)
    return df


def _config(folder: Path, name: str, inputs: list[dict]) -> Path:
    cfg = {"dataset": {"name": name, "source": "ratings.csv", "task": "regression", "target": "mos", "id": "vid",
                       "inputs": inputs},
           "model": {"hidden_layers": [8], "dropout": 0.0},
           "training": {"max_epochs": 3, "patience": 3, "batch_size": 8, "seed": 0}}
    p = folder / f"{name}.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


BITRATE = {"column": "bitrate", "modality": "continuous", "log": True, "projection": 4}


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """In ``train/``: ratings and the training features (300 columns; a second file, CSV with another id
    column, for the model with two vector inputs); three models trained there: ``one`` (a vector input
    'feats' + bitrate), ``two`` (vector inputs 'cnn' and 'motion', both joined on the column vid) and
    ``plain`` (bitrate only). In ``incoming/``: the new videos' rows and their features, in files of their
    own. ``train/new.parquet`` is a decoy with the name of the new features file but other values."""
    root = tmp_path_factory.mktemp("features_option")
    train, incoming = root / "train", root / "incoming"
    train.mkdir()
    incoming.mkdir()
    ids = [f"v{i:03d}" for i in range(N_TRAIN)]
    rng = np.random.default_rng(1)
    feats = _features(ids, seed=2)
    motion = _features(ids, seed=3, n=5, id_column="video_id", prefix="m")
    bitrate = np.exp(rng.uniform(np.log(200), np.log(5000), N_TRAIN)).round(1)
    mos = 1 + 4 * feats[["f000", "f001", "f002"]].mean(axis=1) * 0.5 + 2 * (np.log(bitrate) - np.log(200)) / 10
    pd.DataFrame({"vid": ids, "bitrate": bitrate, "mos": mos.round(3)}).to_csv(train / "ratings.csv", index=False)
    feats.to_parquet(train / "feats.parquet", index=False)
    motion.to_csv(train / "motion.csv", index=False)
    vec = {"column": "vid", "name": "feats", "modality": "vector", "file": "feats.parquet", "file_id_column": "id",
           "projection": 4}
    configs = {
        "one": [vec, BITRATE],
        "two": [dict(vec, name="cnn"), {"column": "vid", "name": "motion", "modality": "vector", "file": "motion.csv",
                                        "file_id_column": "video_id", "projection": 2}, BITRATE],
        "plain": [BITRATE],
    }
    out = {"root": root, "train": train, "incoming": incoming}
    for name, inputs in configs.items():
        assert main(["train", str(_config(train, name, inputs)), "--out", str(root / name), "--full", "-q"]) == 0
        out[name] = root / name
    # the new videos: rows, and their features extracted to files of their own
    pd.DataFrame({"vid": NEW_IDS, "bitrate": [300.0, 900.0, 2500.0, 4000.0]}).to_csv(incoming / "rows.csv",
                                                                                    index=False)
    _features(NEW_IDS, seed=4).to_parquet(incoming / "new.parquet", index=False)
    _features(NEW_IDS, seed=5, n=5, id_column="video_id", prefix="m").to_csv(incoming / "new_motion.csv", index=False)
    _features(NEW_IDS, seed=6).to_parquet(train / "new.parquet", index=False)  # the decoy, next to the model's file
    return out


def _run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _scores(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str})[["id", "score"]]


def _predict_with_files_in_place(case, model: str, files: dict[str, Path], out: Path) -> pd.DataFrame:
    """What a user had to do before --features: the new rows' features appended to the model's own feature
    files (overwriting the training features), then a plain predict; the files restored afterwards."""
    saved = {}
    try:
        for name, new in files.items():
            old = case["train"] / name
            saved[old] = old.read_bytes()
            read = pd.read_csv if old.suffix == ".csv" else pd.read_parquet
            both = pd.concat([read(old), read(new)], ignore_index=True)
            both.to_csv(old, index=False) if old.suffix == ".csv" else both.to_parquet(old, index=False)
        assert main(["predict", str(case[model]), str(case["incoming"] / "rows.csv"), "--out", str(out), "-q"]) == 0
    finally:
        for old, data in saved.items():
            old.write_bytes(data)
    return _scores(out)


def test_features_of_new_videos_give_the_scores_of_a_model_whose_file_held_them(case, tmp_path, capsys,
                                                                                monkeypatch):
    expected = _predict_with_files_in_place(case, "one", {"feats.parquet": case["incoming"] / "new.parquet"},
                                            tmp_path / "in_place.csv")
    assert expected["id"].tolist() == NEW_IDS
    # a relative FILE is relative to where the command runs, not to the training config's folder (base_dir),
    # which holds a decoy new.parquet of other values; and the training feature file is not read at all
    monkeypatch.chdir(case["incoming"])
    hidden = case["train"] / "feats.parquet.away"
    (case["train"] / "feats.parquet").rename(hidden)
    try:
        code, _, err = _run(capsys, "predict", case["one"], "rows.csv", "--features", "new.parquet",
                            "--out", tmp_path / "features.csv")
    finally:
        hidden.rename(case["train"] / "feats.parquet")
    assert code == 0, err
    got = _scores(tmp_path / "features.csv")
    pd.testing.assert_frame_equal(got, expected)
    # the decoy gives other scores: the file read was the one named, not base_dir's
    code, _, err = _run(capsys, "predict", case["one"], "rows.csv", "--features", case["train"] / "new.parquet",
                        "--out", tmp_path / "decoy.csv")
    assert code == 0, err
    assert not np.allclose(_scores(tmp_path / "decoy.csv")["score"], expected["score"])
    # the INPUT=FILE form names the same input (by its name, or by its column where only it reads that column)
    for spec in ("feats=new.parquet", "vid=new.parquet"):
        code, out, err = _run(capsys, "predict", case["one"], "rows.csv", "--features", spec, "--json")
        assert code == 0, err
        assert [r["score"] for r in json.loads(out)] == expected["score"].tolist()


def test_python_api_reads_the_new_file_and_leaves_the_meta_alone(case):
    from deepqoe.predictor import load_predictor, with_feature_files
    from deepqoe.workflow import read_prediction_input

    p = load_predictor(case["one"])
    before = p.meta["dataset"]["inputs"][0]["file"]
    meta = with_feature_files(p.meta, {None: case["incoming"] / "new.parquet"})
    assert meta["dataset"]["inputs"][0]["file"] == str(case["incoming"] / "new.parquet")
    assert p.meta["dataset"]["inputs"][0]["file"] == before == "feats.parquet"  # the model's own meta unchanged
    X, ids = read_prediction_input(meta, case["incoming"] / "rows.csv")
    assert ids == NEW_IDS
    new = pd.read_parquet(case["incoming"] / "new.parquet")
    np.testing.assert_array_equal(X["feats__f007"].to_numpy(), new["f007"].to_numpy())


def test_input_equals_file_for_a_model_with_two_feature_files(case, tmp_path, capsys):
    expected = _predict_with_files_in_place(case, "two", {"feats.parquet": case["incoming"] / "new.parquet",
                                                          "motion.csv": case["incoming"] / "new_motion.csv"},
                                            tmp_path / "in_place.csv")
    code, _, err = _run(capsys, "predict", case["two"], case["incoming"] / "rows.csv",
                        "--features", f"motion={case['incoming'] / 'new_motion.csv'}",
                        "--features", f"cnn={case['incoming'] / 'new.parquet'}", "--out", tmp_path / "two.csv")
    assert code == 0, err
    pd.testing.assert_frame_equal(_scores(tmp_path / "two.csv"), expected)


@pytest.mark.parametrize("model,specs,words", [
    ("plain", ["{new}"], ["--features", "no vector input read from a feature file"]),
    ("one", ["nope={new}"], ["unknown input 'nope'", "'feats'"]),
    ("two", ["{new}"], ["2 vector inputs read from feature files", "'cnn', 'motion'", "INPUT=FILE"]),
    ("two", ["vid={new}"], ["unknown input 'vid'", "read by 2 of them", "'cnn', 'motion'"]),
    ("two", ["cnn={new}", "cnn={new}"], ["input 'cnn' is given twice"]),
    ("one", ["{new}", "feats={new}"], ["input 'feats' is given two feature files"]),
    ("streaming", ["{new}"], ["--features is for table models", "session model"]),
])
def test_usage_errors_before_any_data_is_read(case, tmp_path, capsys, model, specs, words):
    argv = ["predict", case[model] if model in case else model, tmp_path / "no_such_rows.csv",
            "--out", tmp_path / "o.csv"]
    for s in specs:
        argv += ["--features", s.format(new=case["incoming"] / "new.parquet")]
    code, out, err = _run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and not out, err
    assert all(w in lines[0] for w in words), lines[0]
    assert not (tmp_path / "o.csv").exists()


def test_a_missing_feature_file_is_a_data_error_naming_it(case, tmp_path, capsys):
    code, _, err = _run(capsys, "predict", case["one"], case["incoming"] / "rows.csv", "--features",
                        tmp_path / "gone.parquet")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "--features: feature file not found" in err and str(tmp_path / "gone.parquet") in err
    # an id the new file does not hold: named, with the file that was read
    _features(["new_a"], seed=4).to_parquet(tmp_path / "short.parquet", index=False)
    code, _, err = _run(capsys, "predict", case["one"], case["incoming"] / "rows.csv", "--features",
                        tmp_path / "short.parquet")
    assert code == 1 and "no row in the feature file" in err and "'new_b'" in err
    assert str(tmp_path / "short.parquet") in err


def test_help_says_so():
    from deepqoe.cli import build_parser

    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices and "predict" in a.choices)
    text = " ".join(sub.choices["predict"].format_help().split())
    assert "--features [INPUT=]FILE" in text and "instead of the file the model was trained with" in text


def test_batch_scoring_reads_the_features_file_too(case, tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    from deepqoe import batch_scoring

    monkeypatch.setattr(batch_scoring, "LOCAL_PROCESSES", False)  # threads: a quick cluster for the test
    rows, new = case["incoming"] / "rows.csv", case["incoming"] / "new.parquet"
    code, _, err = _run(capsys, "predict", case["one"], rows, "--features", new, "--out", tmp_path / "plain.csv")
    assert code == 0, err
    code, _, err = _run(capsys, "predict", case["one"], rows, "--features", new, "--out", tmp_path / "parts",
                        "--scheduler", "local", "--workers", "1")
    assert code == 0, err
    got = pd.read_parquet(tmp_path / "parts").sort_values("row")[["id", "score"]].reset_index(drop=True)
    got["id"] = got["id"].astype(str)
    pd.testing.assert_frame_equal(got, _scores(tmp_path / "plain.csv"), check_dtype=False)
    # a usage error is said before a cluster starts
    code, _, err = _run(capsys, "predict", case["one"], rows, "--features", f"nope={new}", "--out",
                        tmp_path / "parts2", "--scheduler", "local")
    assert code == 2 and "unknown input 'nope'" in err and not (tmp_path / "parts2").exists()


def test_a_vector_input_far_outside_its_range_is_one_note_not_one_per_column(case, tmp_path):
    """Rows 1 and 2 far outside in 101 of the 300 columns (row 2 also of the other sign in one); rows 3-5 are
    training rows' features; row 1's bitrate is far outside too: one note for the vector input (rows,
    columns, the worst columns by name), and the continuous input keeps its note per column."""
    from deepqoe.predictor import load_predictor

    train = pd.read_parquet(case["train"] / "feats.parquet")
    far = pd.concat([train.iloc[:2], train.iloc[:3]], ignore_index=True).drop(columns="id")
    far.iloc[0:2, 0:100] = 50.0  # f000..f099: far above the range [~0, ~1]
    far.iloc[1, 200] = -0.5  # f200 of the other sign than every training value
    X = far.add_prefix("feats__")  # the model's input table, as the join makes it
    X["bitrate"] = [1e9, 800.0, 800.0, 800.0, 800.0]
    p = load_predictor(case["one"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p.predict_rows(X, interval=None)
    notes = [str(w.message) for w in caught if issubclass(w.category, DeepQoENote) and "far outside" in
             str(w.message)]
    vector = [n for n in notes if "'feats" in n]
    assert len(vector) == 1, notes[:5]
    assert vector[0].startswith("2 of 5 row(s) have values of the vector input 'feats' far outside its training "
                                "range in 101 of its 300 column(s)"), vector[0]
    assert re.search(r"most: 'f0\d\d' in 2 row\(s\), e.g. 50 \(range \[", vector[0]), vector[0]
    n_fit = json.loads((case["one"] / "model.json").read_text())["metrics"]["n_train"]  # the encoders' rows
    assert 2 <= n_fit <= N_TRAIN and vector[0].endswith(f"; the ranges are those of its {n_fit} training rows")
    bitrate = [n for n in notes if "'bitrate'" in n]
    assert len(bitrate) == 1 and bitrate[0].startswith("1 of 5 row(s) have a value of 'bitrate' far outside")
    assert len(notes) == 2


def test_the_cli_says_the_vector_note_once(case, tmp_path, capsys):
    """The audit's flood: one stderr line for the vector input, not one per feature column."""
    new = _features(NEW_IDS, seed=4)
    new.iloc[:, 1:] = new.iloc[:, 1:] + 40.0  # every column of every row far outside
    new.to_parquet(tmp_path / "far.parquet", index=False)
    code, _, err = _run(capsys, "predict", case["one"], case["incoming"] / "rows.csv", "--features",
                        tmp_path / "far.parquet", "--out", tmp_path / "o.csv")
    assert code == 0, err
    far = [line for line in err.splitlines() if "far outside" in line]
    assert len(far) == 1 and "4 of 4 row(s)" in far[0] and f"in {N_FEATURES} of its {N_FEATURES} column(s)" in far[0]


def test_embed_reads_the_features_file_too(case, tmp_path, capsys):
    """deepqoe embed takes --features as predict does: the representation of the new videos from their own file
    equals that of a model whose file held them."""
    code, out, err = _run(capsys, "embed", case["one"], case["incoming"] / "rows.csv", "--features",
                          case["incoming"] / "new.parquet", "--out", tmp_path / "rep.csv")
    assert code == 0, err
    got = pd.read_csv(tmp_path / "rep.csv", dtype={"id": str})
    saved = (case["train"] / "feats.parquet").read_bytes()
    try:
        both = pd.concat([pd.read_parquet(case["train"] / "feats.parquet"),
                          pd.read_parquet(case["incoming"] / "new.parquet")], ignore_index=True)
        both.to_parquet(case["train"] / "feats.parquet", index=False)
        code, _, err = _run(capsys, "embed", case["one"], case["incoming"] / "rows.csv", "--out", tmp_path / "old.csv")
    finally:
        (case["train"] / "feats.parquet").write_bytes(saved)
    assert code == 0, err
    pd.testing.assert_frame_equal(got, pd.read_csv(tmp_path / "old.csv", dtype={"id": str}))
    code, _, err = _run(capsys, "embed", case["plain"], case["incoming"] / "rows.csv", "--features", "x.parquet")
    assert code == 2 and "no vector input read from a feature file" in err, err
