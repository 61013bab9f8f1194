"""The shipped models: present, small, documented, and they load and predict."""

from __future__ import annotations

import numpy as np
import pytest

from deepqoe.persistence import PRETRAINED_DIR, load_model

SHIPPED = ["upec-qoe-lab", "streaming"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_files(name):
    d = PRETRAINED_DIR / name
    if not (d / "model.json").is_file():
        pytest.skip(f"{name} not built")
    for f in ("model.safetensors", "model.json", "MODEL_CARD.md"):
        assert (d / f).is_file(), f
        assert (d / f).stat().st_size < 5_000_000
    card = (d / "MODEL_CARD.md").read_text()
    for section in ("Training data", "Protocol and scores", "Input schema", "Licence"):
        assert section in card
    est = load_model(name)
    assert est.meta_["evaluation"]["scores"]["deepqoe"]
    if hasattr(est, "predict_sessions"):  # the structured session model explains itself part by part
        assert est.meta_["evaluation"]["behaviour"]["ok"]
    else:
        assert est.meta_.get("explain_baseline")


def test_upec_predicts():
    if not (PRETRAINED_DIR / "upec-qoe-lab" / "model.json").is_file():
        pytest.skip("not built")
    from deepqoe.demo import VIEWER_ROWS

    est = load_model("upec-qoe-lab")
    p = est.predict_proba(VIEWER_ROWS)
    assert p.shape == (6, 5) and np.allclose(p.sum(1), 1)
    assert set(est.predict(VIEWER_ROWS)) <= {1, 2, 3, 4, 5}


def test_streaming_predicts_and_curves():
    if not (PRETRAINED_DIR / "streaming" / "model.json").is_file():
        pytest.skip("not built")
    from deepqoe.predictor import Predictor
    from deepqoe.sessions.frame import example_sessions, parse_sessions

    rows, bad = Predictor.load("streaming").predict_sessions(parse_sessions(example_sessions()))
    assert not bad
    score = {r["id"]: r["score"] for r in rows}
    assert all(1.0 <= v <= 5.0 for v in score.values())
    assert score["smooth-hd"] > score["two-stalls"] and score["smooth-hd"] > score["low-quality"]
    for r in rows:
        assert len(r["curve"]) >= 60 and np.isfinite(r["curve"]).all()
        assert r["curve"][-1] == pytest.approx(r["score"], abs=1e-4)
