"""Sessions whose quality comes from the bitrate mapping (no metric) get a learned offset of z only with
``mapped_offset`` (the recipe's): without it a session without a metric scores exactly as the same session given
the mapping's quality for a metric. Where the metric-less training sessions all come from one dataset, the offset
trades off exactly against that dataset's calibration; the shipped recipe keeps it (without it Waterloo SQoE-IV
left out falls by 0.02, docs/results.md). Model files written before the option learned it and keep it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepqoe.config import SessionModelOverrides
from deepqoe.sessions.qoe_model import SessionQoEModel, TrainingData, builtin_quality_mapping, mapped_segments
from deepqoe.sessions.session import Session
from deepqoe.sessions.training import RECIPE

torch.set_num_threads(1)
LADDER = [(300, 640, 360), (1200, 1280, 720), (3000, 1920, 1080), (6000, 1920, 1080)]


def _rated(n: int = 40, seed: int = 0):
    """Lab A rates sessions with a VMAF track; lab B, on its own use of the scale, sessions with bitrates only."""
    rng = np.random.default_rng(seed)
    mapping = builtin_quality_mapping()
    sessions, y, names = [], [], []
    for i in range(n):
        kb, w, h = LADDER[i % len(LADDER)]
        stalls = i % 3
        s = Session.from_arrays(f"b{i}", np.arange(10) * 2.0, np.full(10, 2.0), bitrate_kbps=kb, width=w, height=h,
                                fps=30, codec="h264", stall_start=np.linspace(4, 12, stalls),
                                stall_duration=np.full(stalls, 2.0))
        q = float(mapped_segments([s], mapping)[0].mean())
        vmaf = float(rng.uniform(30, 98))
        sessions += [Session.from_arrays(f"a{i}", np.arange(10) * 2.0, np.full(10, 2.0), quality=vmaf,
                                         stall_start=np.linspace(4, 12, stalls), stall_duration=np.full(stalls, 2.0)), s]
        y += [1 + 4 * vmaf / 100 - 0.4 * stalls, 0.5 + 4 * q / 100 - 0.4 * stalls]   # lab B rates 0.5 lower
        names += ["lab-a", "lab-b"]
    return TrainingData(sessions, np.clip(y, 1, 5), np.array(names)), mapping


def _fit(data, mapping, **kw) -> SessionQoEModel:
    params = {**RECIPE, "n_members": 2, "epochs": 60, **kw}
    return SessionQoEModel(**params).fit(data, mapping)


def test_without_the_offset_mapped_quality_scores_as_a_metric(tmp_path):
    data, mapping = _rated()
    assert RECIPE["mapped_offset"] is True
    model = _fit(data, mapping, mapped_offset=False)
    assert all(float(net.mapped_offset.detach()) == 0.0 for net in model.net_)
    # a session without a metric scores as the same session given the mapping's quality as its metric
    s = data.sessions[1]
    q = mapped_segments([s], mapping)[0]
    with_metric = Session.from_arrays("m", s.seg_start, s.seg_duration, quality=q, stall_start=s.stall_start,
                                      stall_duration=s.stall_duration)
    assert model.predict_sessions([s])[0] == pytest.approx(model.predict_sessions([with_metric])[0], abs=1e-6)
    # learned (the recipe's, and the form of the files written before): then the two differ
    learned = _fit(data, mapping)
    assert all(abs(float(net.mapped_offset.detach())) > 1e-3 for net in learned.net_)
    assert abs(learned.predict_sessions([s])[0] - learned.predict_sessions([with_metric])[0]) > 1e-3
    assert model.get_params()["mapped_offset"] is False and learned.get_params()["mapped_offset"] is True


def test_files_written_before_the_option_keep_their_learned_offset(tmp_path):
    from deepqoe.persistence import load_model

    data, mapping = _rated(12)
    model = _fit(data, mapping, mapped_offset=True, n_members=1, epochs=20)
    model.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["params"]["mapped_offset"]                       # as written before the option
    meta_path.write_text(json.dumps(meta))
    old = load_model(tmp_path / "m")
    assert old.mapped_offset is True
    assert float(old.net_[0].mapped_offset.detach()) == pytest.approx(float(model.net_[0].mapped_offset.detach()))
    assert np.allclose(old.predict_sessions(data.sessions[:4]), model.predict_sessions(data.sessions[:4]))


def test_a_sessions_config_can_ask_for_it():
    assert SessionModelOverrides.model_validate({"mapped_offset": True}).mapped_offset is True
    assert SessionModelOverrides.model_validate({}).mapped_offset is None
