"""Shared test fixtures: synthetic QoE tables and the real-data directory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def real_data(*parts: str) -> Path:
    """A path inside DEEPQOE_DATA; missing data fails under CI=true and skips elsewhere."""
    root = os.environ.get("DEEPQOE_DATA")
    path = Path(root, *parts) if root else None
    if path is None or not path.exists():
        msg = f"dataset {'/'.join(parts)} not found (DEEPQOE_DATA={root!r})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


GENRES = ["News", "Sports", "Documentary", "Music", "Cartoons", "Movies"]


def synthetic_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A QoE-like table whose 1-5 rating depends on bitrate, resolution and genre."""
    rng = np.random.default_rng(seed)
    res = rng.choice([240, 360, 480, 720, 1080], n)
    bitrate = np.exp(rng.uniform(np.log(100), np.log(5000), n))
    genre = rng.choice(GENRES, n)
    age = rng.integers(18, 70, n)
    sex = rng.choice(["men", "women"], n)
    score = 1 + 4 * (np.log(bitrate) - np.log(100)) / (np.log(5000) - np.log(100))
    score += 0.3 * (res >= 720) - 0.3 * np.isin(genre, ["Sports"]) + rng.normal(0, 0.3, n)
    rating = np.clip(np.round(score), 1, 5).astype(int)
    return pd.DataFrame({"id": np.arange(n), "genre": genre, "resolution": res, "bitrate": bitrate.round(1),
                         "age": age, "sex": sex, "rating": rating, "mos": score.round(3),
                         "title": rng.choice(list("ABCDEFGH"), n)})


INPUTS = [
    {"column": "genre", "modality": "text", "projection": 5},
    {"column": "resolution", "modality": "categorical", "embedding_dim": 8, "projection": None},
    {"column": "bitrate", "modality": "continuous", "log": True, "projection": 8},
    {"column": "age", "modality": "continuous", "projection": 8},
    {"column": "sex", "modality": "categorical", "embedding_dim": 1, "projection": None},
]


@pytest.fixture
def table() -> pd.DataFrame:
    return synthetic_table()


@pytest.fixture
def inputs() -> list[dict]:
    return [dict(i) for i in INPUTS]


def write_config(tmp_path: Path, csv: Path, task: str = "classification", **over) -> Path:
    import yaml

    ds = {"name": "synthetic", "source": str(csv), "task": task,
          "target": "rating" if task == "classification" else "mos", "group": "title", "id": "id",
          "inputs": [dict(i) for i in INPUTS]}
    if task == "classification":
        ds["classes"] = [1, 2, 3, 4, 5]
    ds.update(over.pop("dataset", {}))
    cfg = {"dataset": ds, "model": {"hidden_layers": [64, 32], "dropout": 0.2},
           "training": {"max_epochs": 15, "patience": 5, "batch_size": 64},
           "evaluation": {"n_splits": 2, "test_size": 0.2, "baselines": ["majority", "random_forest"]}}
    for k, v in over.items():
        cfg.setdefault(k, {}).update(v)
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


# ---- synthetic streaming sessions (tests of the session model and its export) ----------------------------
SESSION_LADDER = [(300, 240), (800, 480), (2000, 720), (4500, 1080)]  # (kbps, height) per rung
SESSION_DEVICES = ["pc", "mobile", "tv", "tablet"]


def ladder_session(sid, levels, stalls=(), seg=4.0, quality=None, reps=None, fps=30, codec="h264", device="pc"):
    """A session of ``seg``-s segments on the rungs ``levels`` of SESSION_LADDER, with stalls [(start, duration)]."""
    from deepqoe.sessions import Session

    segs = []
    for i, lv in enumerate(levels):
        br, h = SESSION_LADDER[lv]
        d = {"start": i * seg, "duration": seg, "bitrate_kbps": br, "height": h, "width": int(h * 16 / 9),
             "fps": fps, "codec": codec}
        if quality is not None:
            d["quality"] = quality[i]
        if reps is not None:
            d["representation"] = reps[i]
        segs.append(d)
    return Session.from_dict({"id": sid, "segments": segs, "device": device,
                              "stalls": [{"start": s, "duration": d} for s, d in stalls]})


def random_ladder_sessions(n, rng, with_quality=False, prefix="s", vary_device_codec=False):
    """``n`` random-walk ladder sessions with a startup and up to two stalls (a quality track if asked)."""
    import numpy as np

    out = []
    for i in range(n):
        k = int(rng.integers(3, 30))
        lv = np.clip(np.cumsum(rng.integers(-1, 2, k)) + 2, 0, 3)
        st = [(0.0, float(rng.uniform(0, 4)))] + [(float(t), float(rng.uniform(0.5, 8))) for t in
                                                   sorted(set(rng.uniform(1, 4 * k - 1, int(rng.integers(0, 3)))))]
        q = list(20 + 20 * lv + rng.uniform(-5, 5, k)) if with_quality else None
        extra = ({"device": SESSION_DEVICES[i % len(SESSION_DEVICES)], "codec": "hevc" if i % 3 == 0 else "h264"}
                 if vary_device_codec else {})
        out.append(ladder_session(f"{prefix}{i}", lv.tolist(), st, quality=q, **extra))
    return out


def synthetic_mos(sessions, mapping):
    """A score that rises with the mapped quality and falls with rebuffering (a relation to learn)."""
    import numpy as np

    from deepqoe.sessions.qoe_model import quality_steps

    q = np.array([quality_steps(s, mapping)[0].mean() for s in sessions])
    reb = np.array([float(s.stall_duration[s.stall_start > 0].sum()) for s in sessions])
    return np.clip(1.5 + 3.0 * q - 0.8 * np.log1p(reb), 1, 5)


@pytest.fixture(scope="session")
def frame_session_model_dir(tmp_path_factory) -> Path:
    """A small session model of the older kind (a DeepQoERegressor on ``session_frame``, named in model.json
    by its frame-builder key), trained in seconds on synthetic sessions: old model directories must load."""
    import numpy as np
    import torch

    from deepqoe.estimators import DeepQoERegressor
    from deepqoe.explain import fit_baseline
    from deepqoe.persistence import save_model
    from deepqoe.sessions import Session
    from deepqoe.sessions.frame import EXPLAIN_GROUPS, STREAMING_INPUTS, session_frame, session_model_meta

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    ladder = [(300, 240), (800, 480), (2000, 720), (4500, 1080)]
    sessions, y = [], []
    for i in range(60):
        lv = int(rng.integers(0, 4))
        n_st = int(rng.integers(0, 3))
        segs = [{"start": 4 * k, "duration": 4, "bitrate_kbps": ladder[lv][0], "height": ladder[lv][1],
                 "fps": 30, "codec": "h264"} for k in range(10)]
        stalls = [[0, float(rng.uniform(0, 3))]] + [[8.0 * (j + 1), 3.0] for j in range(n_st)]
        sessions.append(Session.from_dict({"id": f"t{i}", "segments": segs, "stalls": stalls,
                                           "device": ["pc", "mobile"][i % 2]}))
        y.append(1.5 + 0.8 * lv - 0.5 * n_st)
    X = session_frame(sessions).reset_index(drop=True)
    est = DeepQoERegressor(inputs=STREAMING_INPUTS, hidden_layers=(16,), max_epochs=15, patience=15,
                           random_state=0).fit(X, np.array(y))
    d = tmp_path_factory.mktemp("frame-model") / "model"
    save_model(est, d, extra={"name": "frame-session-model", "session_model": session_model_meta(),
                              "explain_groups": EXPLAIN_GROUPS, "explain_baseline": fit_baseline(est, X)})
    return d


# ------------------------------------------------------------------------- the service of a shipped model
def shipped_app(name: str, **options):
    """``deepqoe.serve.create_app`` of the shipped model ``name`` (no warm-up); skips when this build lacks it."""
    from deepqoe.persistence import PRETRAINED_DIR

    if not (PRETRAINED_DIR / name / "model.json").is_file():
        pytest.skip(f"shipped model {name} not in this build")
    from deepqoe.serve import create_app

    return create_app(name, warm_up=False, **options)


def post_json(client, body, **params):
    """``POST /predict`` with ``body`` as JSON and ``params`` as the query."""
    import json

    return client.post("/predict", content=json.dumps(body), headers={"content-type": "application/json"},
                       params=params)


def _test_client():
    import warnings

    with warnings.catch_warnings():  # starlette's notice about its httpx backend
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient


@pytest.fixture(scope="module")
def client(app):
    """A TestClient of the module's ``app`` fixture (server errors answered as 500s, not raised)."""
    with _test_client()(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def table_client():
    """A TestClient of the shipped table model ``upec-qoe-lab``."""
    with _test_client()(shipped_app("upec-qoe-lab"), raise_server_exceptions=False) as c:
        yield c
