"""ONNX export of the streaming session model (SessionQoEModel): onnxruntime gives the scores and curves of
``predict_sessions`` / ``predict_curves`` (max abs difference under 1e-5), inside the 1-5 scale, on
sessions the model never saw (many stalls, an hour, ten hours); the old DeepQoERegressor session model
still exports as before."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import ladder_session, random_ladder_sessions, synthetic_mos  # noqa: E402
from deepqoe.cli import main  # noqa: E402
from deepqoe.export import SESSION_INPUTS, onnx_session, parity, session_feeds  # noqa: E402
from deepqoe.persistence import load_model  # noqa: E402
from deepqoe.sessions.qoe_model import QualityMapping, SessionQoEModel, TrainingData, make_batch  # noqa: E402

session = ladder_session


def random_sessions(n, rng, with_quality=False, prefix="s"):
    return random_ladder_sessions(n, rng, with_quality, prefix, vary_device_codec=True)


def unseen_sessions():
    """Sessions unlike the training ones: many long stalls, one hour, one segment, a metric track."""
    rng = np.random.default_rng(7)
    many = session("many-stalls", [2] * 30, [(0.0, 2.0)] + [(4.0 * k + 1, 20.0 + k) for k in range(29)])
    hour = session("one-hour", (np.arange(900) // 50 % 4).tolist(), [(0.0, 1.5), (600.0, 5.0), (3000.0, 12.0)],
                   device="tv")
    single = session("single", [3], [(0.0, 0.5)], device="mobile")
    return random_sessions(12, rng, prefix="u") + random_sessions(4, rng, True, prefix="m") + [many, hour, single]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny two-member SessionQoEModel (trains in seconds), saved and exported through the CLI."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    sessions = random_sessions(20, rng) + random_sessions(10, rng, with_quality=True)
    mapping = QualityMapping(bias=5.0, w_bpp=0.45, w_res=0.9, w_fps=0.0, w_h=1.0,
                             codec_offset={"h264": 0.0, "hevc": 0.35})
    data = TrainingData(sessions, synthetic_mos(sessions, mapping), np.array(["a"] * 20 + ["b"] * 10))
    est = SessionQoEModel(epochs=30, n_members=2, device_offsets=True).fit(data, mapping)
    d = tmp_path_factory.mktemp("session-model")
    est.save(d / "model", extra={"name": "tiny-sessions"})
    out = d / "model.onnx"
    assert main(["export", str(d / "model"), "--onnx", str(out)]) == 0
    return load_model(d / "model"), d / "model", out


def _run(onnx_path, batch) -> np.ndarray:
    return onnx_session(onnx_path).run(["score"], session_feeds(batch))[0].astype(np.float64)


def test_cli_export_and_metadata(trained, capsys):
    import onnx

    model, model_dir, out = trained
    m = onnx.load(str(out))
    meta = {p.key: p.value for p in m.metadata_props}
    inputs = json.loads(meta["deepqoe.inputs"])
    assert [i["name"] for i in inputs] == [i.name for i in m.graph.input] == [n for n, *_ in SESSION_INPUTS]
    assert [o.name for o in m.graph.output] == ["score"]
    info = json.loads(meta["deepqoe.model"])
    assert info["estimator"] == "SessionQoEModel" and info["scale"] == "1-5" and info["members"] == 2
    assert "make_batch" in meta["deepqoe.preprocessing"]
    # every named dimension is free in the graph; the loop over the quality track is an ONNX Loop
    for spec, graph_input in zip(inputs, m.graph.input):
        dims = graph_input.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == spec["shape"]
    assert "Loop" in {n.op_type for n in m.graph.node}
    assert parity(model_dir, out) < 1e-5
    # the CLI's own parity check runs on the example sessions
    assert main(["export", str(model_dir), "--onnx", str(out)]) == 0
    assert "max |ONNX - PyTorch|" in capsys.readouterr().err  # a status line: standard error


def test_scores_match_predict_sessions(trained):
    model, _, out = trained
    test = unseen_sessions()
    batch = make_batch(test, model.mapping_, False)
    got = _run(out, batch)
    assert len(got) == len(test)  # one point per session without curves
    want = model.predict_sessions(test)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.all(np.isfinite(got)) and np.all((got >= 1.0) & (got <= 5.0))
    assert np.ptp(got) > 0.05  # the sessions differ: a constant graph would not pass


def test_export_with_a_calibration(trained, tmp_path, capsys):
    """``--calibration`` bakes a training dataset's use of the scale into the file: its scores are
    ``predict_sessions(calibration=...)``, said in the metadata; an unknown name is one clear error."""
    model, model_dir, _ = trained
    out = tmp_path / "b.onnx"
    assert main(["export", str(model_dir), "--onnx", str(out), "--calibration", "b"]) == 0
    assert parity(model_dir, out) < 1e-5
    test = unseen_sessions()
    got = _run(out, make_batch(test, model.mapping_, False))
    np.testing.assert_allclose(got, model.predict_sessions(test, calibration="b"), atol=1e-5, rtol=0)
    assert np.abs(got - model.predict_sessions(test)).max() > 1e-3  # not the average calibration
    assert json.loads(onnx_session(out).get_modelmeta().custom_metadata_map["deepqoe.model"])["calibration"] == "b"
    capsys.readouterr()
    assert main(["export", str(model_dir), "--onnx", str(tmp_path / "c.onnx"), "--calibration", "c"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown calibration 'c'" in err and not (tmp_path / "c.onnx").exists()


def test_curves_match_predict_curves(trained):
    model, _, out = trained
    test = unseen_sessions()
    batch = make_batch(test, model.mapping_, True)
    got = _run(out, batch)
    p_sess = batch.p_sess.numpy()
    curves = model.predict_curves(test)
    for k, (s, want) in enumerate(zip(test, curves)):
        mine = got[p_sess == k]
        assert len(mine) == len(want), s.id
        np.testing.assert_allclose(mine, want, atol=1e-5, rtol=0, err_msg=s.id)
    assert len(curves[-2]) > 3600  # the hour-long session: one point per wall second
    assert np.all((got >= 1.0) & (got <= 5.0))


def test_padding_in_a_batch_changes_nothing(trained):
    """q is padded with its last value to the longest track of the batch: points of a short session are the
    same alone and beside the hour-long one (the memory loop is causal)."""
    model, _, out = trained
    test = unseen_sessions()
    together = _run(out, make_batch(test, model.mapping_, True))
    p_sess = make_batch(test, model.mapping_, True).p_sess.numpy()
    for k in (0, len(test) - 3, len(test) - 1):
        alone = _run(out, make_batch([test[k]], model.mapping_, True))
        np.testing.assert_allclose(together[p_sess == k], alone, atol=1e-6, rtol=0)


def test_extreme_sessions_and_weights_stay_in_scale(trained, tmp_path):
    """A 10-h session, a 6-day stall and weights scrambled far from the trained ones: the exported graph
    still scores inside 1-5, as PyTorch does."""
    model, _, _ = trained
    with torch.no_grad():
        g = torch.Generator().manual_seed(3)
        for p in model.net_.parameters():
            p.add_(5.0 * torch.randn(p.shape, generator=g))
    model.save(tmp_path / "wild")
    out = tmp_path / "wild.onnx"
    assert main(["export", str(tmp_path / "wild"), "--onnx", str(out)]) == 0
    extreme = [session("ten-hours", [k % 4 for k in range(9000)], [(0.0, 3.0), (20000.0, 60.0)]),
               session("huge-stall", [1] * 10, [(0.0, 1.0), (8.0, 6 * 86400.0)]),
               *unseen_sessions()[-3:]]
    batch = make_batch(extreme, model.mapping_, False)
    got = _run(out, batch)
    np.testing.assert_allclose(got, load_model(tmp_path / "wild").predict_sessions(extreme), atol=1e-5, rtol=0)
    assert np.all(np.isfinite(got)) and np.all((got >= 1.0) & (got <= 5.0))


def test_old_deepqoe_regressor_session_model_still_exports(tmp_path):
    """A session model of the previous kind (a DeepQoERegressor on session_frame) exports its encoded-input
    network as before: outputs 'output' and 'prediction', parity on real session rows."""
    import onnx

    from deepqoe.estimators import DeepQoERegressor
    from deepqoe.persistence import save_model
    from deepqoe.sessions.frame import STREAMING_INPUTS, session_frame, session_model_meta

    torch.set_num_threads(1)
    rng = np.random.default_rng(5)
    sessions = random_sessions(30, rng)
    X = session_frame(sessions)
    y = synthetic_mos(sessions, QualityMapping(bias=5.0, w_bpp=0.45, w_res=0.9, w_h=1.0))
    est = DeepQoERegressor(inputs=[dict(i) for i in STREAMING_INPUTS], hidden_layers=(8,), max_epochs=3,
                           batch_size=16, random_state=0).fit(X, y)
    save_model(est, tmp_path / "old", extra={"session_model": session_model_meta(), "name": "old-streaming"})
    out = tmp_path / "old.onnx"
    assert main(["export", str(tmp_path / "old"), "--onnx", str(out)]) == 0
    m = onnx.load(str(out))
    assert [o.name for o in m.graph.output] == ["output", "prediction"]
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["deepqoe.model"])["estimator"] == "DeepQoERegressor"
    assert parity(tmp_path / "old", out, X) < 1e-5
    old = load_model(tmp_path / "old")
    feeds = {i.name: t.numpy() for i, t in zip(onnx_session(out).get_inputs(), old.encode(X))}
    np.testing.assert_allclose(onnx_session(out).run(["prediction"], feeds)[0], old.predict(X), atol=1e-5)
