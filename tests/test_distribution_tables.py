"""Rating-distribution heads for table regression configs (issue 13 part 1): ``dataset.individual`` +
``rating_scale`` -> ``deepqoe train`` writes distribution.json, ``deepqoe predict`` / the service give SOS,
%GoB and %PoW with each row's score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from deepqoe.cli import main
from deepqoe.config import load_config

torch.set_num_threads(1)

N_ROWS, N_RATERS = 200, 20


def ratings_table(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    """Rows with two numeric inputs; each row's 20 ACR ratings are drawn around a quality set by ``x1``, with
    a spread set by ``x2``; the target is their mean."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    quality = 1.3 + 3.4 * x1
    spread = 0.4 + 0.8 * x2
    cells, mos = [], []
    for q, s in zip(quality, spread):
        r = np.clip(np.rint(rng.normal(q, s, N_RATERS)), 1, 5).astype(int)
        cells.append("[" + " ".join(map(str, r)) + "]")
        mos.append(r.mean())
    return pd.DataFrame({"id": np.arange(n), "x1": x1.round(4), "x2": x2.round(4), "mos": mos, "votes": cells})


def table_config(d: Path, csv: Path, **dataset) -> Path:
    ds = {"name": "rated", "source": str(csv), "task": "regression", "target": "mos", "id": "id",
          "individual": "votes", "rating_scale": "1-5",
          "inputs": [{"column": "x1", "modality": "continuous", "projection": 8},
                     {"column": "x2", "modality": "continuous", "projection": 8}]}
    ds.update(dataset)
    cfg = {"dataset": {k: v for k, v in ds.items() if v is not None},
           "model": {"hidden_layers": [32, 16], "dropout": 0.1},
           "training": {"max_epochs": 60, "patience": 10, "batch_size": 32, "learning_rate": 3e-3},
           "evaluation": {"test_size": 0.2}}
    p = d / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture(scope="module")
def rated_model(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    d = tmp_path_factory.mktemp("dist_tables")
    df = ratings_table()
    df.to_csv(d / "t.csv", index=False)
    assert main(["train", str(table_config(d, d / "t.csv")), "--out", str(d / "m"), "-q"]) == 0
    return d, d / "m", df


def test_train_writes_the_head(rated_model):
    d, m, _ = rated_model
    heads = json.loads((m / "distribution.json").read_text())
    assert heads["default"] == "rated" and heads["heads"]["rated"]["scale"] == "1-5"
    info = json.loads((m / "metrics.json").read_text())["distribution"]["heads"]["rated"]
    assert info["n_rows"] > 0 and info["n_ratings"] == N_RATERS * info["n_rows"]
    assert "calibration" in info["mos"]


def test_predict_json_has_distribution(rated_model, capsys):
    d, m, df = rated_model
    capsys.readouterr()
    assert main(["predict", str(m), str(d / "t.csv"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # the output table's records: sos, p_gob, p_pow columns
    assert len(rows) == len(df)
    for r in rows:
        assert 0 <= r["p_gob"] <= 1 and 0 <= r["p_pow"] <= 1 and r["sos"] > 0
    generated = np.mean([np.std(np.array(v[1:-1].split(), float), ddof=1) for v in df["votes"]])
    # use_features=False: SOS follows the MOS only; on average it matches the generated spread
    sos = np.array([r["sos"] for r in rows])
    assert abs(sos.mean() - generated) < 0.3, (sos.mean(), generated)
    # a high predicted score has more "good or better" and less "poor or worse" than a low one
    score, gob, pow_ = (np.array([r[k] for r in rows]) for k in ("score", "p_gob", "p_pow"))
    hi, lo = score > np.quantile(score, 0.75), score < np.quantile(score, 0.25)
    assert gob[hi].mean() > gob[lo].mean() + 0.3 and pow_[lo].mean() > pow_[hi].mean() + 0.3


def test_python_api_rows_have_the_distribution(rated_model):
    from deepqoe.predictor import load_predictor
    from deepqoe.workflow import read_prediction_input

    d, m, _ = rated_model
    p = load_predictor(str(m))
    X, ids = read_prediction_input(p.meta, d / "t.csv")
    rows = p.predict_rows(X.iloc[:20], ids=ids[:20] if ids is not None else None)
    for r in rows:
        dist = r["distribution"]
        assert set(dist) == {"head", "sos", "p_gob", "p_pow", "quantiles"}
        assert 1 <= dist["quantiles"]["0.1"] <= dist["quantiles"]["0.5"] <= dist["quantiles"]["0.9"] <= 5


def test_predict_csv_columns(rated_model):
    d, m, df = rated_model
    out = d / "p.csv"
    assert main(["predict", str(m), str(d / "t.csv"), "--out", str(out), "-q"]) == 0
    t = pd.read_csv(out)
    assert {"sos", "p_gob", "p_pow"} <= set(t.columns)
    assert t["p_gob"].between(0, 1).all() and (t["sos"] > 0).all()
    # new rows need the inputs only, not the ratings nor the target
    df.drop(columns=["votes", "mos"]).to_csv(d / "new.csv", index=False)
    assert main(["predict", str(m), str(d / "new.csv"), "--out", str(d / "p2.csv"), "-q"]) == 0
    assert np.allclose(pd.read_csv(d / "p2.csv")["sos"], t["sos"])


def test_service_rows_have_distribution(rated_model):
    from deepqoe.serve import ModelService

    _, m, _ = rated_model
    svc = ModelService(m)
    out = svc.predict_obj({"rows": [svc.example_row()]})
    assert set(out["predictions"][0]["distribution"]) >= {"sos", "p_gob", "p_pow", "quantiles"}
    assert svc.describe()["distribution"]["served"] == "rated"


def test_no_calibration_rows_fits_on_training_rows(tmp_path: Path):
    df = ratings_table(120, seed=1)
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = table_config(tmp_path, tmp_path / "t.csv")
    raw = yaml.safe_load(cfg.read_text())
    raw["evaluation"]["calibration_fraction"] = 0.0
    raw["training"]["max_epochs"] = 10
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["train", str(cfg), "--out", str(tmp_path / "m"), "-q"]) == 0
    info = json.loads((tmp_path / "m" / "metrics.json").read_text())["distribution"]["heads"]["rated"]
    assert "training rows" in info["mos"] and info["n_rows"] == int(round(120 * 0.8))
    assert not (tmp_path / "m" / "intervals.json").exists() and (tmp_path / "m" / "distribution.json").exists()


@pytest.mark.parametrize("cell, what", [("[4 5 x]", "not a number"), ("[]", "empty"), ("[4 6 3]", "outside"),
                                        ("[4 5", "brackets")])
def test_malformed_cell_is_one_line(tmp_path: Path, capsys, cell, what):
    df = ratings_table(40)
    df.loc[6, "votes"] = cell
    df.to_csv(tmp_path / "t.csv", index=False)
    assert main(["train", str(table_config(tmp_path, tmp_path / "t.csv")), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "votes" in err and "row 7" in err and what in err, err
    assert not (tmp_path / "m").exists()


def test_missing_column(tmp_path: Path, capsys):
    ratings_table(40).drop(columns="votes").to_csv(tmp_path / "t.csv", index=False)
    assert main(["train", str(table_config(tmp_path, tmp_path / "t.csv")), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "votes" in err and "individual" in err, err


@pytest.mark.parametrize("over, words", [
    ({"task": "classification", "classes": [1, 2, 3, 4, 5]}, ["individual", "regression"]),
    ({"rating_scale": None}, ["individual", "rating_scale"]),
    ({"individual": None}, ["rating_scale", "individual"]),
    ({"rating_scale": "z"}, ["rating_scale", "bounded"]),
])
def test_config_errors_name_the_field(tmp_path: Path, capsys, over, words):
    from deepqoe.errors import DeepQoEError

    ratings_table(40).to_csv(tmp_path / "t.csv", index=False)
    cfg = table_config(tmp_path, tmp_path / "t.csv", **over)
    with pytest.raises(DeepQoEError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and all(w in msg for w in words), msg
    assert main(["train", str(cfg), "--out", str(tmp_path / "m")]) != 0


def test_intervals_are_clipped_to_the_rating_scale(rated_model):
    """A target on ``rating_scale`` gives intervals.json that scale's bounds: no interval end outside 1-5."""
    d, m, _ = rated_model
    cal = json.loads((m / "intervals.json").read_text())
    assert cal["scale"] == "1-5" and cal["bounds"] == [1.0, 5.0]
    out = d / "iv.csv"
    assert main(["predict", str(m), str(d / "t.csv"), "--interval", "0.95", "--out", str(out), "-q"]) == 0
    t = pd.read_csv(out)
    assert t["interval_low"].min() >= 1.0 and t["interval_high"].max() <= 5.0
    from deepqoe.conformal import interval_bounds

    low, high = interval_bounds(cal, np.array([1.05, 4.95]), 0.9)  # scores near the ends: clipped to them
    assert low[0] == 1.0 and high[1] == 5.0


def test_json_out_and_quantile_columns(rated_model, capsys):
    """``--out x.json`` writes JSON records (not CSV text under a .json name), the same records as ``--json``;
    tables carry the rating quantiles q10 / q50 / q90 and the head."""
    d, m, _ = rated_model
    assert main(["predict", str(m), str(d / "t.csv"), "--out", str(d / "p.json"), "-q"]) == 0
    recs = json.loads((d / "p.json").read_text())
    capsys.readouterr()
    assert main(["predict", str(m), str(d / "t.csv"), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out) == recs
    r = recs[0]
    assert {"q10", "q50", "q90", "rating_head"} <= set(r) and r["rating_head"] == "rated"
    assert 1 <= r["q10"] <= r["q50"] <= r["q90"] <= 5


def test_target_off_the_rating_scale_is_one_error(tmp_path, capsys):
    """A target on another scale than ``rating_scale`` (0-100 MOS with ACR ratings) is one line naming the
    file, the target column and the row, exit 1, and nothing is written."""
    df = ratings_table(40)
    df.loc[7, "mos"] = 97.5
    df.to_csv(tmp_path / "t.csv", index=False)
    code = main(["train", str(table_config(tmp_path, tmp_path / "t.csv")), "--out", str(tmp_path / "m"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "column 'mos'" in err and "row 8" in err and "rating_scale 1-5" in err and "97.5" in err
    assert not (tmp_path / "m").exists()


def test_degenerate_individual_ratings_are_one_error(tmp_path, capsys):
    """One rating per row (no spread to learn) and a fractional rating on a discrete (ACR) scale are each one
    line naming the file and column (and the row), exit 1."""
    df = ratings_table(40)
    df["votes"] = [f"[{int(round(m))}]" for m in df["mos"]]
    df["mos"] = [float(int(round(m))) for m in df["mos"]]
    df.to_csv(tmp_path / "t.csv", index=False)
    code = main(["train", str(table_config(tmp_path, tmp_path / "t.csv")), "--out", str(tmp_path / "m"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "column 'votes'" in err and "one individual rating" in err and len(err.splitlines()) == 1
    df = ratings_table(40)
    df.loc[5, "votes"] = "[4.5 3 5]"
    df.to_csv(tmp_path / "t.csv", index=False)
    code = main(["train", str(table_config(tmp_path, tmp_path / "t.csv")), "--out", str(tmp_path / "m"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "row 6" in err and "'4.5' is not one of the categories" in err


def test_scores_stay_on_the_rating_scale_far_outside_training(rated_model):
    """A target on ``rating_scale`` is a mean rating: inputs far outside the training range give a score at the
    scale's end, not 4.6e8 on a 1-5 target (CLI, Python and the service alike: one predictor)."""
    from deepqoe.predictor import load_predictor
    from deepqoe.workflow import read_prediction_input

    d, m, df = rated_model
    far = df.head(4).copy()
    far["x1"] = [1e12, -1e12, 0.5, 1e6]
    far.to_csv(d / "far.csv", index=False)
    p = load_predictor(str(m))
    X, _ = read_prediction_input(p.meta, d / "far.csv")
    import warnings

    from deepqoe.errors import DeepQoENote

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        scores = [r["score"] for r in p.predict_rows(X)]
    assert all(1.0 <= s <= 5.0 for s in scores) and (max(scores) == 5.0 or min(scores) == 1.0)
    notes = [str(w.message) for w in rec if issubclass(w.category, DeepQoENote)]
    # the inputs far outside their training range are said too (test_table_predict_audit16)
    assert len(notes) == 2 and sum("'x1' far outside its training range" in n for n in notes) == 1, notes
    notes = [n for n in notes if "clipped" in n]
    assert len(notes) == 1 and "rating_scale" in notes[0] and "[1, 5]" in notes[0], notes  # said, not silent
    raw = p.model.predict(X)  # the network alone does go off the scale there
    assert raw.max() > 5.0 or raw.min() < 1.0
