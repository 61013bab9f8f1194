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
