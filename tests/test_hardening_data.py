"""Nothing crashes, nothing lies (issue 12): training that diverges, huge or boolean numbers, damaged model
files, bad configs and tables, and the temporary files of interrupted writes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import INPUTS, synthetic_table, write_config
from deepqoe.config import load_config
from deepqoe.errors import DeepQoEError
from deepqoe.estimators import DeepQoEClassifier, DeepQoERegressor
from deepqoe.io import TEMP_PREFIX, atomic_write_text, is_stale_temp, read_table, write_table
from deepqoe.persistence import load_model, save_model, verify_weights, weights_digest
from deepqoe.workflow import train_config

SMALL = {"model": {"hidden_layers": [16], "dropout": 0.0}, "training": {"max_epochs": 2, "patience": 2}}
SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepqoe.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("deepqoe: error:"), r.stderr
    for w in words:
        assert w in last, last


def raises(fn, *words: str) -> DeepQoEError:
    with pytest.raises(DeepQoEError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return e.value


@pytest.fixture
def csv(tmp_path) -> Path:
    p = tmp_path / "data.csv"
    synthetic_table(120).to_csv(p, index=False)
    return p


def config(tmp_path: Path, csv: Path, **over) -> Path:
    for k, v in SMALL.items():
        over[k] = {**v, **over.get(k, {})}
    return write_config(tmp_path, csv, **over)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A small classifier trained by ``train_config`` (its model.json knows how to read tables)."""
    tmp = tmp_path_factory.mktemp("model")
    csv = tmp / "data.csv"
    synthetic_table(120).to_csv(csv, index=False)
    train_config(load_config(config(tmp, csv)), tmp / "m", progress=False)
    return tmp / "m"


# ---- training that diverges ------------------------------------------------------------------------------
def test_infinite_learning_rate_is_a_config_error(tmp_path, csv):
    cfg = config(tmp_path, csv, training={"learning_rate": float("inf")})
    raises(lambda: load_config(cfg), str(cfg), "training.learning_rate")
    r = run_cli("train", cfg, "--out", tmp_path / "m", "--quiet")
    one_line_error(r, "training.learning_rate")
    assert not (tmp_path / "m").exists()
    raises(lambda: DeepQoEClassifier(inputs=INPUTS, learning_rate=float("nan")).fit(synthetic_table(20),
                                                                                   synthetic_table(20).rating),
           "learning_rate")


def test_diverging_training_is_an_error_naming_the_field_and_writes_nothing(tmp_path, csv):
    cfg = config(tmp_path, csv, task="regression", training={"optimizer": "sgd", "learning_rate": 10.0,
                                                              "max_epochs": 20})
    out = tmp_path / "m"
    raises(lambda: train_config(load_config(cfg), out, progress=False), "diverged", str(cfg),
           "training.learning_rate")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_nan_loss_in_the_middle_of_training_is_an_error(monkeypatch):
    import deepqoe.train as train

    calls = {"n": 0}
    real = train._loss_fn

    def nan_after_five(task):
        fn = real(task)

        def loss(out, y):
            calls["n"] += 1
            value = fn(out, y)
            return value * float("nan") if calls["n"] > 5 else value
        return loss

    monkeypatch.setattr(train, "_loss_fn", nan_after_five)
    t = synthetic_table(200)
    raises(lambda: DeepQoEClassifier(inputs=INPUTS, hidden_layers=(16,), max_epochs=5, batch_size=32).fit(t, t.rating),
           "diverged", "training loss", "training.learning_rate")


# ---- huge numbers, booleans --------------------------------------------------------------------------------
def test_huge_value_in_a_continuous_column_is_rejected_when_training(tmp_path, csv):
    df = pd.read_csv(csv)
    df["age"] = df["age"].astype(float)
    df.loc[6, "age"] = 1e308
    df.to_csv(csv, index=False)
    raises(lambda: train_config(load_config(config(tmp_path, csv)), tmp_path / "m", progress=False),
           str(csv), "column 'age'", "row 7", "too large")
    assert not (tmp_path / "m").exists()
    t = synthetic_table(40)
    t.loc[3, "mos"] = -1e300  # a regression target too
    raises(lambda: DeepQoERegressor(inputs=INPUTS).fit(t, t.mos), "target")


@pytest.mark.parametrize("command", ["predict", "embed"])
@pytest.mark.parametrize("value", [1e308, float("inf"), 1e16])
def test_huge_value_at_prediction_is_a_one_line_error_naming_the_row(tmp_path, model_dir, command, value):
    df = synthetic_table(30)
    df["bitrate"] = df["bitrate"].astype(float)
    df.loc[11, "bitrate"] = value
    data = tmp_path / "rows.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "out.csv"
    r = run_cli(command, model_dir, data, "--out", out)
    one_line_error(r, str(data), "column 'bitrate'", "row 12")
    assert not out.exists()
    model = load_model(model_dir)
    raises(lambda: model.predict(df), "column 'bitrate'", "row 12")


def test_booleans_in_a_continuous_column_are_an_error(tmp_path):
    t = synthetic_table(40)
    t["age"] = t["age"] > 40
    p = tmp_path / "t.parquet"
    t.to_parquet(p, index=False)
    assert read_table(p)["age"].dtype == bool
    raises(lambda: DeepQoEClassifier(inputs=INPUTS).fit(read_table(p), t.rating), "column 'age'", "boolean")
    t = synthetic_table(40)
    t["age"] = t["age"].astype(object)
    t.loc[5, "age"] = True
    raises(lambda: DeepQoEClassifier(inputs=INPUTS).fit(t, t.rating), "column 'age'", "row 6", "boolean")


# ---- model files: digest, encoder statistics ----------------------------------------------------------------
def test_model_json_stores_the_weights_digest_and_a_flipped_byte_is_an_error(tmp_path, model_dir):
    d = shutil.copytree(model_dir, tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    assert meta["weights_sha256"] == weights_digest(d / "model.safetensors")
    verify_weights(d, meta)
    w = bytearray((d / "model.safetensors").read_bytes())
    w[-3] ^= 0x01  # the last bytes are tensor data: the file still parses
    (d / "model.safetensors").write_bytes(bytes(w))
    raises(lambda: load_model(d), str(d / "model.safetensors"), "digest")
    raises(lambda: verify_weights(d, meta), "digest")


def test_replaced_weights_are_an_error_even_when_they_fit(tmp_path, model_dir):
    from safetensors.torch import load_file, save_file

    d = shutil.copytree(model_dir, tmp_path / "m")
    w = load_file(str(d / "model.safetensors"))
    w["head.bias"] = w["head.bias"] + 1.0  # same names, shapes and dtypes: only the digest tells
    save_file(w, str(d / "model.safetensors"))
    raises(lambda: load_model(d), "model.safetensors", "digest")


def test_model_without_a_digest_still_loads(tmp_path, model_dir):
    d = shutil.copytree(model_dir, tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    del meta["weights_sha256"]
    (d / "model.json").write_text(json.dumps(meta))
    t = synthetic_table(20)
    assert np.array_equal(load_model(d).predict(t), load_model(model_dir).predict(t))
    meta["weights_sha256"] = "abc"
    (d / "model.json").write_text(json.dumps(meta))
    raises(lambda: load_model(d), "model.json", "weights_sha256")


@pytest.mark.parametrize("edit,word", [
    (lambda enc: enc.update(scale=[0.0] * len(enc["scale"])), "scale"),
    (lambda enc: enc.update(shift=[float("nan")] * len(enc["shift"])), "shift"),
    (lambda enc: enc.update(scale=[1.0, 2.0, 3.0]), "scale"),
    (lambda enc: enc.update(scale="wide"), "scale"),
])
def test_bad_encoder_statistics_in_a_model_file_refuse_to_load(tmp_path, model_dir, edit, word):
    d = shutil.copytree(model_dir, tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    k = next(i for i, inp in enumerate(meta["inputs"]) if inp["column"] == "age")
    edit(meta["encoders"][k])
    (d / "model.json").write_text(json.dumps(meta))
    raises(lambda: load_model(d), str(d / "model.json"), word, "'age'")


# ---- configs and tables ----------------------------------------------------------------------------------
def test_unknown_encoding_is_a_one_line_error(tmp_path, csv):
    cfg = config(tmp_path, csv, dataset={"reader": {"encoding": "no-such-codec"}})
    raises(lambda: load_config(cfg), "dataset.reader.encoding", "no-such-codec")
    raises(lambda: read_table(csv, encoding="no-such-codec"), str(csv), "no-such-codec")


@pytest.mark.parametrize("over,field", [
    ({"model": {"hidden_layers": [10_000_000, 1_000_000]}}, "model.hidden_layers"),
    ({"model": {"hidden_layers": [8] * 17}}, "model.hidden_layers"),
    ({"dataset": {"inputs": [dict(INPUTS[3], projection=10**12)]}}, "dataset.inputs.0.projection"),
    ({"dataset": {"inputs": [dict(INPUTS[1], embedding_dim=10**9)]}}, "dataset.inputs.0.embedding_dim"),
])
def test_huge_sizes_are_validation_errors(tmp_path, csv, over, field):
    raises(lambda: load_config(config(tmp_path, csv, **over)), field, "less than or equal" if "inputs" in field
           else "at most")
    if "hidden_layers" in over.get("model", {}):
        t = synthetic_table(20)
        raises(lambda: DeepQoEClassifier(inputs=INPUTS, hidden_layers=over["model"]["hidden_layers"]).fit(t, t.rating),
               "hidden_layers")


def test_deeply_nested_yaml_is_a_one_line_error(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("dataset: " + "[" * 20_000 + "]" * 20_000 + "\n")
    raises(lambda: load_config(p), str(p), "nested too deeply")


def test_duplicate_column_names_are_an_error(tmp_path, csv):
    lines = csv.read_text().splitlines()
    lines[0] = lines[0].replace("title", "age")
    csv.write_text("\n".join(lines) + "\n")
    raises(lambda: read_table(csv), str(csv), "column 'age'", "twice")
    raises(lambda: train_config(load_config(config(tmp_path, csv)), tmp_path / "m", progress=False),
           "column 'age'", "twice")
    lines[0] = lines[0].replace(",age", ", age", 1)  # the same name once its spaces are stripped
    (tmp_path / "spaced.csv").write_text("\n".join(lines) + "\n")
    raises(lambda: read_table(tmp_path / "spaced.csv"), "column 'age'", "twice")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([pa.array([1, 2]), pa.array([3, 4])], names=["mos", "mos"]), tmp_path / "d.parquet")
    raises(lambda: read_table(tmp_path / "d.parquet"), str(tmp_path / "d.parquet"), "column 'mos'", "twice")


def test_a_real_column_named_like_a_renamed_duplicate_is_fine(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,a.1,b\n1,2,3\n")
    assert list(read_table(p).columns) == ["a", "a.1", "b"]


def test_source_pointing_at_a_non_table_file_does_not_print_it(tmp_path):
    secret = tmp_path / "id_key"
    secret.write_text("SECRET-TOKEN hunter2 do not print\nline two\n")
    e = raises(lambda: train_config(load_config(config(tmp_path, secret)), tmp_path / "m", progress=False),
               str(secret), "does not look like a table")
    assert "hunter2" not in str(e) and "SECRET" not in str(e)
    csv_like = tmp_path / "notes.txt"
    csv_like.write_text("SECRET-TOKEN hunter2\nx\n")
    e = raises(lambda: train_config(load_config(config(tmp_path, csv_like)), tmp_path / "m", progress=False))
    assert "hunter2" not in str(e)


# ---- temporary files ------------------------------------------------------------------------------------
_WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {src!r})
from deepqoe.io import atomic_directory, atomic_path
target = Path(sys.argv[1])
with (atomic_directory if sys.argv[2] == "dir" else atomic_path)(target) as tmp:
    if sys.argv[2] == "dir":
        (tmp / "model.json").write_text("{{}}")
    else:
        tmp.write_bytes(b"x" * 100000)
    print(tmp, flush=True)
    time.sleep(60)
"""


def _killed_writer(target: Path, kind: str) -> Path:
    """Start an atomic write of ``target``, kill -9 it in the middle; return its leftover."""
    p = subprocess.Popen([sys.executable, "-c", _WRITER.format(src=SRC), str(target), kind], stdout=subprocess.PIPE,
                         text=True)
    try:
        tmp = Path(p.stdout.readline().strip())
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
    assert tmp.exists() and tmp.parent == target.parent and tmp.name.startswith(TEMP_PREFIX)
    return tmp


def test_leftovers_of_a_killed_predict_out_are_cleaned_by_the_next_write(tmp_path):
    left = _killed_writer(tmp_path / "pred.csv", "file")
    assert not (tmp_path / "pred.csv").exists() and is_stale_temp(left)
    write_table(pd.DataFrame({"a": [1]}), tmp_path / "pred.csv")
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.csv"]


def test_leftover_folder_of_a_killed_model_save_is_cleaned_by_the_next_save(tmp_path):
    left = _killed_writer(tmp_path / "model", "dir")
    assert left.is_dir() and not (tmp_path / "model").exists()
    t = synthetic_table(40)
    save_model(DeepQoEClassifier(inputs=INPUTS, hidden_layers=(8,), max_epochs=1).fit(t, t.rating), tmp_path / "other")
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_temp_files_of_live_writers_stay_and_old_ones_go(tmp_path):
    from deepqoe.io import _temp_prefix

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = tmp_path / (_temp_prefix(tmp_path / "x.csv") + "abc.tmp")
        theirs = tmp_path / mine.name.replace(f".{os.getpid()}.", f".{live.pid}.")
        old = tmp_path / mine.name.replace(f".{os.getpid()}.", f".{live.pid}.").replace("abc", "old")
        foreign = tmp_path / "unrelated.tmp"
        for p in (mine, theirs, old, foreign):
            p.write_text("partial")
        two_hours_ago = time.time() - 7200
        os.utime(old, (two_hours_ago, two_hours_ago))
        atomic_write_text(tmp_path / "y.txt", "done")
        assert mine.exists() and theirs.exists() and foreign.exists() and not old.exists()
    finally:
        live.kill()
        live.wait()
    atomic_write_text(tmp_path / "y.txt", "again")
    assert not theirs.exists() and mine.exists()


def test_model_directory_appears_with_its_metrics(tmp_path, csv, monkeypatch):
    """metrics.json is written before the directory is renamed into place, never after."""
    import deepqoe.io as dio
    import deepqoe.persistence as persistence

    seen = []
    real = dio.atomic_directory

    @contextlib.contextmanager
    def watching(path):
        with real(path) as tmp:
            yield tmp
            seen.append(sorted(p.name for p in tmp.iterdir()))

    monkeypatch.setattr(persistence, "atomic_directory", watching)
    monkeypatch.setattr(dio, "atomic_write_json", lambda *a, **k: pytest.fail("metrics.json written after the rename"))
    train_config(load_config(config(tmp_path, csv)), tmp_path / "m", progress=False)
    assert seen == [["metrics.json", "model.json", "model.safetensors"]]
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics == json.loads((tmp_path / "m" / "model.json").read_text())["metrics"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "data.csv", "m"]
