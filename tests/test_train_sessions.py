"""``deepqoe train`` on a sessions config: the streaming session model from rated sessions (issue 10.5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import real_data
from deepqoe.cli import main
from deepqoe.errors import DeepQoEError
from deepqoe.evaluation.metrics import srocc

torch.set_num_threads(1)

LADDER = [(240, 300), (360, 700), (480, 1200), (720, 2500), (1080, 5000)]  # (height, kbps)


def synthetic_session(rng: np.random.Generator, sid: str, content: str) -> tuple[dict, float]:
    """A 40-s session and its MOS on 1-5: rising with quality, falling with stalls and startup delay."""
    level = int(rng.integers(0, len(LADDER)))
    segs, qs = [], []
    for k in range(10):
        lv = int(np.clip(level + (rng.random() < 0.2) * rng.choice([-1, 1]), 0, len(LADDER) - 1))
        h, kbps = LADDER[lv]
        q = float(np.clip(25 + 15 * lv + rng.normal(0, 3), 0, 100))
        qs.append(q)
        segs.append({"start": 4.0 * k, "duration": 4.0, "bitrate_kbps": kbps * float(rng.uniform(0.9, 1.1)),
                     "width": h * 16 // 9, "height": h, "fps": 30, "codec": "h264", "quality": round(q, 2)})
    startup = float(rng.uniform(0.2, 4.0))
    n_stalls = int(rng.integers(0, 4))
    stalls = [{"start": 0.0, "duration": startup}] + [
        {"start": float(t), "duration": float(rng.uniform(1, 5))} for t in sorted(rng.uniform(2, 38, n_stalls))]
    mos = 1.2 + 3.6 * np.mean(qs) / 100 - 0.45 * n_stalls - 0.08 * startup + rng.normal(0, 0.1)
    return ({"id": sid, "content": content, "segments": segs, "stalls": stalls, "device": "pc"},
            float(np.clip(mos, 1.0, 5.0)))


def write_data(root: Path, n: int = 40, seed: int = 0) -> tuple[Path, Path]:
    """Half the sessions as one JSON file each (MOS on 1-5), half in one file (MOS on 0-100)."""
    rng = np.random.default_rng(seed)
    one = root / "one-per-file"
    one.mkdir(parents=True)
    many = []
    for i in range(n):
        d, mos = synthetic_session(rng, f"s{i:03d}", f"clip{i % 10}")
        if i % 2 == 0:
            (one / f"{d['id']}.json").write_text(json.dumps({**d, "mos": round(mos, 3)}))
        else:
            many.append({**d, "mos": round(25 * (mos - 1), 2), "mos_scale": "0-100"})
    (root / "lab-b.json").write_text(json.dumps({"sessions": many}))
    return one, root / "lab-b.json"


def write_sessions_config(root: Path, **over) -> Path:
    cfg = {"sessions": {"name": "tiny-streaming", "datasets": [{"path": "one-per-file"}, {"path": "lab-b.json"}],
                        "quality_mapping": "one-per-file"},
           "model": {"n_members": 1},
           "training": {"epochs": 30},
           "evaluation": {"n_splits": 2}}
    for k, v in over.items():
        cfg[k] = v if v is None or not isinstance(cfg.get(k), dict) else {**cfg[k], **v}
    p = root / "streaming.yaml"
    p.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if v is not None}))
    return p


@pytest.fixture
def data(tmp_path: Path) -> Path:
    write_data(tmp_path)
    return tmp_path


def test_train_sessions_config_cli_then_predict(data: Path, capsys):
    out = data / "model"
    assert main(["train", str(write_sessions_config(data)), "--out", str(out)]) == 0
    std = capsys.readouterr()
    assert std.out == ""  # machine output only on stdout; the summary goes to stderr
    assert "40 sessions" in std.err
    assert "\r" not in std.err and "epoch" not in std.err  # no progress bar: stderr is not a terminal
    assert {"model.json", "model.safetensors", "metrics.json"} <= {p.name for p in out.iterdir()}
    from deepqoe.io import TEMP_PREFIX

    assert not [p for p in data.iterdir() if p.name.startswith((".model", TEMP_PREFIX))]  # no temp folder left
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["datasets"] == {"one-per-file": 20, "lab-b.json": 20}
    scores = metrics["evaluation"]["scores"]
    assert set(scores) == {"one-per-file", "lab-b.json", "all"}
    assert scores["all"]["n"] == 40 and {"srocc", "plcc", "rmse"} <= set(scores["all"])
    assert metrics["params"]["epochs"] == 30 and metrics["params"]["n_members"] == 1
    assert json.loads((out / "model.json").read_text())["name"] == "tiny-streaming"
    # the mapping fitted on the lab's chunks keeps the built-in measurement of the bits a frame rate needs
    from deepqoe.sessions.qoe_model import builtin_quality_mapping

    fitted = json.loads((out / "model.json").read_text())["quality_mapping"]
    assert fitted["fps_exponent"] == builtin_quality_mapping().fps_exponent < 1.0

    # predict on the sessions (the MOS on two scales was aligned: the fit ranks them together)
    sessions = data / "sessions.json"
    rows = [json.loads(f.read_text()) for f in sorted((data / "one-per-file").iterdir())]
    rows += json.loads((data / "lab-b.json").read_text())["sessions"]
    sessions.write_text(json.dumps({"sessions": rows}))
    assert main(["predict", str(out), str(sessions), "--out", str(data / "x.json")]) == 0
    pred = json.loads((data / "x.json").read_text())
    assert len(pred) == 40
    score = np.array([p["score"] for p in pred])
    assert ((score >= 1.0) & (score <= 5.0)).all() and np.isfinite(score).all()
    common = np.array([r["mos"] if r.get("mos_scale") is None else 1 + r["mos"] / 25 for r in rows])
    assert srocc(common, score) > 0.6
    assert metrics["train"]["all"]["srocc"] == pytest.approx(srocc(common, score), abs=1e-3)


def test_fusion_from_the_config(data: Path, capsys):
    """``model.fusion`` reaches the estimator and its model file (the logit form trains from a config too)."""
    out = data / "logit"
    cfg = write_sessions_config(data, model={"fusion": "logit"}, evaluation={"protocol": "none"})
    assert main(["train", str(cfg), "--out", str(out)]) == 0
    assert json.loads((out / "model.json").read_text())["params"]["fusion"] == "logit"
    from deepqoe.persistence import load_model

    assert load_model(out).fusion == "logit"


def test_python_api_matches_saved_model(data: Path):
    from deepqoe.config import load_sessions_config
    from deepqoe.predictor import load_predictor
    from deepqoe.sessions.readers import load_sessions
    from deepqoe.workflow import train_sessions_config

    cfg = load_sessions_config(write_sessions_config(data, evaluation={"protocol": "none"}))
    metrics = train_sessions_config(cfg, data / "m", progress=False)
    assert metrics["evaluation"] is None
    sessions, failures = load_sessions(data / "lab-b.json")
    assert not failures
    rows, failures = load_predictor(data / "m").predict_sessions(sessions)
    assert not failures and all(1 <= r["score"] <= 5 for r in rows)
    assert all(len(r["curve"]) >= 40 for r in rows)  # the per-second curve of each session


def test_progress_bar_on_a_terminal(data: Path, capsys, monkeypatch):
    import sys

    from deepqoe.config import load_sessions_config
    from deepqoe.workflow import train_sessions_config

    cfg = load_sessions_config(write_sessions_config(data, training={"epochs": 5}))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    metrics = train_sessions_config(cfg, data / "m", full=True)
    assert metrics["evaluation"] is None  # full: no cross-validated score
    std = capsys.readouterr()
    assert std.out == "" and "epoch" in std.err


def test_scale_override_and_z(data: Path):
    from deepqoe.config import SessionSource
    from deepqoe.workflow import read_session_source

    a = read_session_source(SessionSource(path="one-per-file"), str(data))
    b = read_session_source(SessionSource(path="lab-b.json"), str(data))
    assert a.y.min() >= 1 and a.y.max() <= 5 and b.y.min() >= 1 and b.y.max() <= 5
    raw = np.array([s.mos for s in b.sessions])
    assert np.allclose(b.y, 1 + raw / 25)  # 0-100 -> 1-5
    assert a.groups[0].startswith("one-per-file:clip")
    z = read_session_source(SessionSource(path="one-per-file", scale="z"), str(data))
    assert z.y.mean() == pytest.approx(3.0, abs=0.05)  # z: through the scores' own mean and SD
    assert srocc(a.y, z.y) == pytest.approx(1.0)


def _one_line_error(capsys, argv) -> str:
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("over, field, words", [
    ({"sessions": {"datasets": ["p1203-opne"]}}, "sessions.datasets.0.dataset", "did you mean 'p1203-open'"),
    ({"sessions": {"datasets": ["lfovia-qoe"]}}, "sessions.datasets.0.dataset", "not a sessions one"),
    ({"sessions": {"datasets": [{"path": "nowhere/"}]}}, "sessions.datasets.0.path", "no such file or folder"),
    ({"sessions": {"datasets": [{"path": "lab-b.json", "scale": "1-to-5x"}]}}, "sessions.datasets.0.scale",
     "unknown rating scale"),
    ({"sessions": {"datasets": [{"pth": "lab-b.json"}]}}, "sessions.datasets.0.pth", "did you mean 'path'"),
    ({"trainig": {"epochs": 3}}, "trainig", "did you mean 'training'"),
    ({"training": {"epochs": 0}}, "training.epochs", "greater than or equal to 1"),
    ({"sessions": {"continuous": ["live-nflx"]}}, "sessions.continuous", "not a continuous one"),
    ({"sessions": {"quality_mapping": "no-such-mapping"}}, "sessions.quality_mapping", "no such file or folder"),
    ({"model": {"fusion": "additive"}}, "model.fusion", "'hybrid', 'multiplicative' or 'logit'"),
])
def test_bad_configs_one_line(data: Path, capsys, over, field, words):
    over = {k: ({**{"datasets": [{"path": "lab-b.json"}]}, **v} if k == "sessions" else v) for k, v in over.items()}
    cfg = write_sessions_config(data, **over)
    err = _one_line_error(capsys, ["train", str(cfg), "--out", str(data / "m")])
    assert str(cfg) in err and f"field '{field}'" in err and words in err, err
    assert not (data / "m").exists()


def test_sessions_without_mos_are_named(data: Path, capsys):
    f = data / "one-per-file" / "s004.json"
    d = json.loads(f.read_text())
    f.write_text(json.dumps({k: v for k, v in d.items() if k != "mos"}))
    err = _one_line_error(capsys, ["train", str(write_sessions_config(data)), "--out", str(data / "m")])
    assert str(f) in err and "session 's004'" in err and "'mos'" in err


def test_bad_session_is_named(data: Path, capsys):
    f = data / "one-per-file" / "s006.json"
    d = json.loads(f.read_text())
    d["segments"][2]["duration"] = -1
    f.write_text(json.dumps(d))
    err = _one_line_error(capsys, ["train", str(write_sessions_config(data)), "--out", str(data / "m")])
    assert str(f) in err and "s006" in err and "segments[2].duration" in err


def test_evaluate_rejects_a_sessions_config(data: Path, capsys):
    err = _one_line_error(capsys, ["evaluate", str(write_sessions_config(data)), "--quiet"])
    assert "deepqoe train" in err


def test_shipped_streaming_config_is_valid():
    from deepqoe.config import load_sessions_config

    cfg = load_sessions_config(Path(__file__).resolve().parents[1] / "configs" / "streaming.yaml")
    assert [s.label for s in cfg.sessions.datasets] == ["p1203-open", "waterloo-sqoe-iv", "live-nflx"]
    assert cfg.sessions.continuous == ["live-nflx-continuous", "lfovia-qoe"]
    assert cfg.model_params() == {"random_state": 0}  # the recipe as it is


def test_sessions_config_sets_or_turns_off_the_fixed_terms(tmp_path: Path):
    """model.stall_guard / model.startup_weight: a number sets the term, false turns it off; a value out of
    range is one error naming the field; model.stall_penalty picks how stalls are priced (share / both)."""
    from deepqoe.config import load_sessions_config

    cfg = tmp_path / "c.yaml"
    body = {"sessions": {"datasets": ["p1203-open"]}}
    cfg.write_text(yaml.safe_dump({**body, "model": {"stall_guard": 0.4, "startup_weight": False}}))
    assert load_sessions_config(cfg).model_params() == {"stall_guard": 0.4, "startup_weight": None, "random_state": 0}
    cfg.write_text(yaml.safe_dump({**body, "model": {"stall_penalty": "both"}}))
    assert load_sessions_config(cfg).model_params() == {"stall_penalty": "both", "random_state": 0}
    cfg.write_text(yaml.safe_dump({**body, "model": {"stall_dip": False}}))  # false stays false (no term to drop)
    assert load_sessions_config(cfg).model_params() == {"stall_dip": False, "random_state": 0}
    for field, bad in (("stall_guard", 1.0), ("startup_weight", 0.0), ("startup_weight", True),
                       ("stall_penalty", "logit"), ("stall_dip", "yes"), ("stall_dip", 1)):
        cfg.write_text(yaml.safe_dump({**body, "model": {field: bad}}))
        with pytest.raises(DeepQoEError, match=field):
            load_sessions_config(cfg)
    cfg.write_text(yaml.safe_dump({**body, "model": {"stall_penalty": "both", "fusion": "logit"}}))
    with pytest.raises(DeepQoEError, match="hybrid fusion"):
        load_sessions_config(cfg)
    cfg.write_text(yaml.safe_dump({**body, "model": {"stall_dip": True, "fusion": "logit"}}))
    with pytest.raises(DeepQoEError, match="stall_dip"):
        load_sessions_config(cfg)


def test_registered_datasets_by_name(tmp_path: Path, capsys):
    real_data("live-nflx")
    real_data("continuous-qoe", "live-nflx")
    real_data("waterloo-sqoe-iv")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"sessions": {"datasets": ["live-nflx"], "continuous": ["live-nflx-continuous"]},
                                   "model": {"n_members": 1}, "evaluation": {"n_splits": 2}}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "m"), "--epochs", "15", "--quiet"]) == 0
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["params"]["epochs"] == 15 and metrics["evaluation"]["n_splits"] == 2
    assert metrics["datasets"] == {"live-nflx": 112}
    assert metrics["continuous"] == {"live-nflx-continuous": 100}
    assert metrics["evaluation"]["scores"]["live-nflx"]["n"] == 112
    assert metrics["name"] == "m"
    for part in ("evaluation", "train"):
        s = metrics[part]["scores"]["live-nflx"] if part == "evaluation" else metrics[part]["live-nflx"]
        assert np.isfinite(s["srocc"]) and 0 < s["rmse"] < 4


def test_diverging_training_and_too_few_contents_name_the_config(data: Path, capsys):
    """A learning rate that makes training diverge names ``training.learning_rate`` in the config (not a model
    file that does not exist); a k-fold with fewer contents than folds names ``evaluation.n_splits``."""
    cfg = write_sessions_config(data, training={"learning_rate": 10, "epochs": 200},
                                evaluation={"protocol": "none"})
    err = _one_line_error(capsys, ["train", str(cfg), "--out", str(data / "m")])
    assert str(cfg) in err and "training.learning_rate" in err and "diverged" in err
    cfg = write_sessions_config(data, evaluation={"n_splits": 50})  # 10 contents
    err = _one_line_error(capsys, ["train", str(cfg), "--out", str(data / "m")])
    assert str(cfg) in err and "evaluation.n_splits" in err and "contents" in err
