"""``device: auto | cpu | cuda``: names, the config field, the estimator parameter, the CLI flags, and
(only where a CUDA GPU is present) GPU results against the CPU's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import synthetic_table, write_config
from deepqoe.cli import ExitCode, main
from deepqoe.config import TrainingConfig, load_config
from deepqoe.devices import NO_CUDA, check_device_name, resolve_device
from deepqoe.errors import DeepQoEError
from deepqoe.estimators import DeepQoEClassifier, DeepQoERegressor

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine (runs on a GPU machine)")


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as one without a GPU, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """This machine as one with two GPUs (only names are resolved; nothing runs on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture
def csv(tmp_path):
    p = tmp_path / "data.csv"
    synthetic_table(160).to_csv(p, index=False)
    return p


# ---- names -------------------------------------------------------------------------------------------
def test_resolve_device_names(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:0", "CUDA"):
        with pytest.raises(DeepQoEError) as e:
            resolve_device(name)
        assert e.value.message == NO_CUDA and e.value.field == "device"


def test_resolve_device_with_gpus(fake_cuda):
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(DeepQoEError, match=r"no CUDA device 2: this machine has 2"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", "mps", "cuda:", "cpu:0", 3, None.__class__])
def test_unknown_device_names_are_one_clear_error(bad):
    with pytest.raises(DeepQoEError) as e:
        check_device_name(bad)
    assert "unknown device" in e.value.message and "auto, cpu, cuda" in e.value.message
    assert "\n" not in str(e.value)


# ---- config and estimator parameter --------------------------------------------------------------------
def test_config_field_validates_names_without_a_gpu(tmp_path, csv, no_cuda):
    assert TrainingConfig().device == "cpu"
    assert TrainingConfig(device="CUDA").device == "cuda"  # a GPU config validates on any machine
    cfg = load_config(write_config(tmp_path, csv, training={"device": "auto"}))
    assert cfg.training.device == "auto"
    bad = write_config(tmp_path, csv, training={"device": "gpu"})
    with pytest.raises(DeepQoEError) as e:
        load_config(bad)
    assert e.value.field == "training.device" and e.value.file == str(bad)
    assert "unknown device 'gpu'" in e.value.message


def test_estimator_parameter_derives_from_the_config(no_cuda):
    est = DeepQoERegressor()
    assert est.get_params()["device"] == "cpu"
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = X.sum(1)
    with pytest.raises(DeepQoEError) as e:
        DeepQoERegressor(device="gpu", max_epochs=2).fit(X, y)
    assert e.value.field == "device" and "unknown device 'gpu'" in e.value.message
    with pytest.raises(DeepQoEError, match="no CUDA device"):
        DeepQoERegressor(device="cuda", max_epochs=2).fit(X, y)


def test_auto_equals_cpu_on_this_machine(table, inputs):
    """auto is the GPU where there is one (then within float tolerance), else exactly the CPU."""
    X, y = table, table["rating"]
    kw = dict(inputs=inputs, max_epochs=6, patience=3, hidden_layers=(32, 16), random_state=3)
    cpu = DeepQoEClassifier(device="cpu", **kw).fit(X, y)
    auto = DeepQoEClassifier(device="auto", **kw).fit(X, y)
    if HAS_CUDA:  # dropout draws from the GPU's random stream: same recipe, not the same weights
        assert auto.fit_result_.epochs_run >= 1 and np.isfinite(auto.predict_proba(X)).all()
    else:
        assert np.array_equal(cpu.predict_proba(X), auto.predict_proba(X))
        assert cpu.fit_result_.history == auto.fit_result_.history
    for est in (cpu, auto):  # the network is back on the CPU after training
        assert all(p.device.type == "cpu" for p in est.network_.parameters())


def test_saved_model_loads_on_the_cpu(tmp_path, table, inputs):
    from deepqoe.persistence import load_model, save_model

    est = DeepQoEClassifier(inputs=inputs, max_epochs=3, device="auto", random_state=0).fit(table, table["rating"])
    state, weights = est.get_state()
    assert state["params"]["device"] == "auto" and all(w.device.type == "cpu" for w in weights.values())
    save_model(est, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.device == "cpu"  # a model trained on a GPU loads anywhere
    assert np.allclose(loaded.predict_proba(table), est.predict_proba(table), atol=1e-6)


# ---- CLI -----------------------------------------------------------------------------------------------
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_cli_bad_device_name_is_a_usage_error(tmp_path, csv, capsys):
    cfg = write_config(tmp_path, csv)
    for argv in (["train", str(cfg), "--out", str(tmp_path / "m")], ["evaluate", str(cfg)],
                 ["predict", "upec-qoe-lab", str(csv)], ["extract", str(csv), "--out", str(tmp_path / "f.parquet")],
                 ["serve"]):
        with pytest.raises(SystemExit) as e:
            main([*argv, "--device", "gpu"])
        assert e.value.code == ExitCode.USAGE
        assert "unknown device 'gpu'" in capsys.readouterr().err


def test_cli_cuda_without_a_gpu_is_one_line_exit_1(tmp_path, csv, capsys, no_cuda):
    cfg = write_config(tmp_path, csv)
    assert main(["train", str(cfg), "--out", str(tmp_path / "m"), "--device", "cuda", "-q"]) == ExitCode.DATA_ERROR
    assert NO_CUDA in _one_error_line(capsys)
    assert not (tmp_path / "m").exists()
    assert main(["evaluate", str(cfg), "--device", "cuda", "-q"]) == ExitCode.DATA_ERROR
    assert NO_CUDA in _one_error_line(capsys)
    gpu_cfg = write_config(tmp_path, csv, training={"device": "cuda"})
    assert main(["train", str(gpu_cfg), "--out", str(tmp_path / "m"), "-q"]) == ExitCode.DATA_ERROR
    assert NO_CUDA in _one_error_line(capsys)
    assert main(["predict", "upec-qoe-lab", str(csv), "--device", "cuda"]) == ExitCode.DATA_ERROR
    assert NO_CUDA in _one_error_line(capsys)
    # the command line overrides the config: --device cpu trains the GPU config on the CPU
    assert main(["train", str(gpu_cfg), "--out", str(tmp_path / "m"), "--device", "cpu", "-q", "--epochs", "2"]) == 0
    assert json.loads((tmp_path / "m" / "model.json").read_text())["params"]["device"] == "cpu"


def test_cli_auto_trains_and_predicts_like_cpu(tmp_path, csv, capsys):
    cfg = write_config(tmp_path, csv, training={"max_epochs": 4})
    outs = {}
    for d in ("cpu", "auto"):
        assert main(["train", str(cfg), "--out", str(tmp_path / d), "--device", d, "-q"]) == 0
        assert main(["predict", str(tmp_path / d), str(csv), "--device", d, "--json"]) == 0
        outs[d] = json.loads(capsys.readouterr().out)
    if not HAS_CUDA:
        assert outs["cpu"] == outs["auto"]
    assert len(outs["auto"]) == 160


def test_predictor_and_extractors_take_a_device(tmp_path, no_cuda):
    from deepqoe.features.video.c3d import C3DExtractor, save_random_weights
    from deepqoe.features.video.cli import extract_options
    from deepqoe.predictor import load_predictor

    assert load_predictor("upec-qoe-lab", device="auto").model.device == "auto"  # resolved when predicting
    with pytest.raises(DeepQoEError, match="no CUDA device"):
        load_predictor("upec-qoe-lab", device="cuda")
    with pytest.raises(DeepQoEError, match="unknown device"):
        load_predictor("upec-qoe-lab", device="gpu")
    # a session model has no device: it runs on the CPU ("auto" is fine, a missing GPU still an error)
    assert load_predictor("streaming", device="auto").is_session
    with pytest.raises(DeepQoEError, match="no CUDA device"):
        load_predictor("streaming", device="cuda")
    from deepqoe.features.video.base import make_extractor

    with pytest.raises(DeepQoEError, match="no CUDA device"):
        make_extractor("cnn-frames", {"device": "cuda"})
    w = save_random_weights(tmp_path / "c3d.safetensors")
    with pytest.raises(DeepQoEError, match="no CUDA device"):
        C3DExtractor(weights=w, device="cuda")
    ex = C3DExtractor(weights=w, device="auto")
    assert ex.device == torch.device("cpu") and "device" not in ex.options()  # not part of the cache key

    class Args:  # what argparse gives `deepqoe extract`
        fps = c3d_weights = c3d_max_clips = vmaf_model = threads = None
        device = "auto"

    assert extract_options(Args())["device"] == "auto"


def test_config_yaml_roundtrip_keeps_the_device(tmp_path, csv):
    p = write_config(tmp_path, csv, training={"device": "cuda:1"})
    assert yaml.safe_load(p.read_text())["training"]["device"] == "cuda:1"
    assert load_config(p).training.device == "cuda:1"


# ---- on a GPU only -------------------------------------------------------------------------------------
@needs_cuda
def test_gpu_prediction_equals_cpu_within_tolerance(table, inputs, tmp_path):
    from deepqoe.persistence import load_model, save_model

    est = DeepQoEClassifier(inputs=inputs, max_epochs=5, random_state=0).fit(table, table["rating"])
    p_cpu = est.predict_proba(table)
    est.set_params(device="cuda")
    p_gpu = est.predict_proba(table)
    assert np.allclose(p_cpu, p_gpu, atol=1e-5)
    assert all(p.device.type == "cpu" for p in est.network_.parameters())  # the copy is on the GPU
    gpu = DeepQoERegressor(inputs=inputs, max_epochs=5, dropout=0.0, device="cuda", random_state=0)
    cpu = DeepQoERegressor(inputs=inputs, max_epochs=5, dropout=0.0, device="cpu", random_state=0)
    y_gpu, y_cpu = gpu.fit(table, table["mos"]).predict(table), cpu.fit(table, table["mos"]).predict(table)
    assert np.allclose(y_gpu, y_cpu, atol=1e-3)  # same batches, no dropout: only rounding differs
    save_model(gpu, tmp_path / "g")
    assert np.allclose(load_model(tmp_path / "g").predict(table), y_gpu, atol=1e-5)


@needs_cuda
def test_gpu_extractors_equal_cpu_within_tolerance(tmp_path):
    pytest.importorskip("av")
    from deepqoe.features.video.c3d import C3DExtractor, save_random_weights
    from deepqoe.features.video.synth import write_clip

    clip = write_clip(tmp_path / "c.mp4", seconds=1, width=160, height=120, fps=25, crf=20)
    w = save_random_weights(tmp_path / "c3d.safetensors")
    a = np.array(list(C3DExtractor(weights=w, max_clips=1).extract(clip).values.values()))
    b = np.array(list(C3DExtractor(weights=w, max_clips=1, device="cuda").extract(clip).values.values()))
    # cuDNN convolutions may run in TF32 (10-bit mantissa) on recent GPUs: 2 % of the largest feature
    assert np.abs(a - b).max() <= 2e-2 * np.abs(a).max() and np.abs(a).max() > 0
