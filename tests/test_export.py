"""ONNX export: the graph's outputs match PyTorch's (max abs difference under 1e-5) and the metadata
documents the encoded inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from deepqoe.cli import main  # noqa: E402
from deepqoe.persistence import PRETRAINED_DIR  # noqa: E402


def _need(name):
    if not (PRETRAINED_DIR / name / "model.json").is_file():
        pytest.skip(f"shipped model {name} not in this build")


def test_onnx_parity_classifier_on_real_rows(tmp_path, capsys):
    _need("upec-qoe-lab")
    import onnx

    from deepqoe.demo import VIEWER_ROWS
    from deepqoe.export import parity

    out = tmp_path / "upec.onnx"
    assert main(["export", "upec-qoe-lab", "--onnx", str(out)]) == 0
    assert "max |ONNX - PyTorch|" in capsys.readouterr().err  # a status line: standard error
    assert parity("upec-qoe-lab", out, VIEWER_ROWS.drop(columns=["id"])) < 1e-5
    assert parity("upec-qoe-lab", out, n=64) < 1e-5
    m = onnx.load(str(out))
    meta = {p.key: p.value for p in m.metadata_props}
    inputs = json.loads(meta["deepqoe.inputs"])
    assert [i["input"] for i in inputs] == ["content", "resolution", "bitrate_video", "age_user", "sex_user",
                                            "id_user"]  # the optional viewer (code 0: unknown)
    assert inputs[1]["kind"] == "index" and inputs[1]["dtype"] == "int64" and "vocabulary" in inputs[1]["encoder"]
    assert json.loads(meta["deepqoe.model"])["classes"] == [1, 2, 3, 4, 5]
    assert [o.name for o in m.graph.output] == ["output", "probabilities"]


def test_onnx_parity_session_regressor(tmp_path):
    """The shipped streaming model (a SessionQoEModel; more in tests/test_export_sessions.py)."""
    _need("streaming")
    from deepqoe.export import onnx_session, parity, session_feeds
    from deepqoe.persistence import load_model
    from deepqoe.sessions.frame import example_sessions, parse_sessions
    from deepqoe.sessions.qoe_model import make_batch

    out = tmp_path / "streaming.onnx"
    assert main(["export", "streaming", "--onnx", str(out)]) == 0
    sessions = parse_sessions(example_sessions())
    assert parity("streaming", out, sessions) < 1e-5
    # the 'score' output is the model's score, batch size free
    est = load_model("streaming")
    pred = onnx_session(out).run(["score"], session_feeds(make_batch(sessions, est.mapping_)))[0]
    np.testing.assert_allclose(pred, est.predict_sessions(sessions), atol=1e-5)
    assert np.all((pred >= 1.0) & (pred <= 5.0))


def test_export_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--onnx", str(tmp_path / "x.onnx")]) == 1
    assert "no such model" in capsys.readouterr().err
