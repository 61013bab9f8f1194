"""The behaviour suite (``deepqoe check-model``): it must catch wrong models and pass a monotone one."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from deepqoe.errors import DeepQoEError
from deepqoe.evaluation import behaviour
from deepqoe.evaluation.behaviour import RELATIONS, check_model

MONOTONE = ("stall_added", "stall_longer", "startup_longer", "more_switches", "quality_higher",
            "bitrate_higher", "frame_rate_lower")


class RunningMeanQoE:
    """Monotone by construction: quality per wall-clock second (``quality``, else a rising function of
    bitrate; 0 during stalls), its running mean as the curve, minus 0.02 per switch of height, clipped
    to 1-5. Curves longer than ``max_steps`` seconds are sampled at ``max_steps`` equal steps."""

    max_steps = 600
    offset = 0.0      # added after clipping (a subclass uses it to leave the scale)
    stall_bonus = 0.0  # per stall second, added before clipping (a subclass uses it to reward stalls)

    @staticmethod
    def _pieces(s):
        value = np.where(np.isfinite(s.quality), s.quality, 100 / (1 + 1500 / s.bitrate_kbps))
        dur, val, j, n_st = [], [], 0, len(s.stall_start)
        for i in range(s.n_segments):
            a, b = s.seg_start[i], s.seg_start[i] + s.seg_duration[i]
            while j < n_st and (s.stall_start[j] < b or i == s.n_segments - 1):
                p = min(max(s.stall_start[j], a), b)
                if p > a:
                    dur.append(p - a), val.append(value[i])
                    a = p
                dur.append(s.stall_duration[j]), val.append(0.0)
                j += 1
            if b > a:
                dur.append(b - a), val.append(value[i])
        return np.asarray(dur), np.asarray(val)

    def _score(self, s):
        dur, val = self._pieces(s)
        t = np.concatenate([[0.0], np.cumsum(dur)])
        area = np.concatenate([[0.0], np.cumsum(dur * val)])
        wall = t[-1]
        k = min(int(np.ceil(wall - 1e-9)), self.max_steps)
        step = wall / k if k == self.max_steps else 1.0
        grid = np.minimum(step * np.arange(1, k + 1), wall)
        curve = np.clip(1 + 4 * np.interp(grid, t, area) / grid / 100, 1, 5)
        switches = int((np.diff(s.height) != 0).sum())
        score = np.clip(curve[-1] - 0.02 * switches + self.stall_bonus * s.stall_total, 1, 5) + self.offset
        return float(score), curve + self.offset, step

    def predict_sessions(self, sessions, scale=None, curve=True):
        rows = []
        for s in sessions:
            score, cv, step = self._score(s)
            rows.append({"id": s.id, "score": score, "scale": "1-5", "curve": cv.tolist(), "curve_step_s": step})
        return rows, []


class StallsRaiseScore(RunningMeanQoE):
    """Wrong: every second of stalling adds 0.05 to the score (inside the scale)."""

    stall_bonus = 0.05


class LowFrameRatesScoreHigher(RunningMeanQoE):
    """Wrong: 0.03 more per frame per second below 24 fps (the error of counting bits per frame alone)."""

    def _score(self, s):
        score, curve, step = super()._score(s)
        bonus = 0.03 * float(np.mean(np.clip(24 - s.fps, 0, None)))
        return min(score + bonus, 5.0), np.minimum(curve + bonus, 5.0), step


class StallCostShrinksAtTheTop(RunningMeanQoE):
    """Monotone in every input, but wrong on sizes: one logistic of quality minus stalls (the form whose
    sigmoid shrinks a stall's cost near the top of the scale)."""

    def _score(self, s):
        _, curve, step = super()._score(s)
        q = np.where(np.isfinite(s.quality), s.quality, 100 / (1 + 1500 / s.bitrate_kbps))
        z = 0.08 * (float(np.average(q, weights=s.seg_duration)) - 50) - 0.15 * float(s.stall_total)
        return 1 + 4 / (1 + np.exp(-z)), curve, step


class ChargesEveryStallEvent(RunningMeanQoE):
    """Monotone, but a stall of any length, however short, costs 0.1: the score jumps at zero length."""

    def _score(self, s):
        score, curve, step = super()._score(s)
        n = int((np.asarray(s.stall_start) > 0).sum())
        return max(score - 0.1 * n, 1.0), curve, step


class OutOfScale(RunningMeanQoE):
    """Wrong: monotone, but half a point above the 1-5 scale's range at the top."""

    offset = 0.5


class CrashesOnLongSessions(RunningMeanQoE):
    """Wrong: a traceback (not a DeepQoEError) for sessions over 10 hours."""

    def predict_sessions(self, sessions, scale=None, curve=True):
        if any(s.wall_duration > 30_000 for s in sessions):
            raise ValueError("cannot convert float NaN to integer")
        return super().predict_sessions(sessions, scale, curve)


class RefusesLongSessions(RunningMeanQoE):
    """Right: a one-line DeepQoEError for sessions over 10 hours (batch: in the failures)."""

    def predict_sessions(self, sessions, scale=None, curve=True):
        ok = [s for s in sessions if s.wall_duration <= 30_000]
        bad = [DeepQoEError(f"session '{s.id}': too long") for s in sessions if s.wall_duration > 30_000]
        return super().predict_sessions(ok, scale, curve)[0], bad


N = 60


def test_monotone_toy_model_violates_nothing():
    report = check_model(RunningMeanQoE(), n_sessions=N, seed=3)
    assert report.ok, report.table()
    for name, _ in RELATIONS:
        r = report[name]
        if name in ("python_vs_service", "python_vs_cli", "python_vs_onnx"):  # no model name: no other path
            assert r.skipped and r.checked == 0
            continue
        assert r.checked > 0, name
        assert r.violated == 0 and r.held == r.checked, name
    # every random session is perturbed: each gets a stall and a longer startup
    assert report["stall_added"].checked >= N - 2
    assert report["startup_longer"].checked == N
    # one quality or bitrate perturbation per session, plus a ladder of 4 extreme-bitrate pairs for some
    extra = report["quality_higher"].checked + report["bitrate_higher"].checked - N
    assert extra > 0 and extra % 4 == 0
    assert report["frame_rate_lower"].checked == report["bitrate_higher"].checked - extra
    assert report["repeat_steady"].worst < 1e-9   # a running mean is exactly invariant


def test_a_stall_cost_that_shrinks_with_quality_is_caught():
    report = check_model(StallCostShrinksAtTheTop(), n_sessions=N, seed=3)
    assert not report.ok
    r = report["stall_cost_quality"]
    assert r.checked > 0 and r.violated > 0 and r.worst > 1e-3
    for name in MONOTONE:  # monotone everywhere: only the sizes are wrong
        assert report[name].violated == 0, name


def test_a_stall_that_costs_in_full_at_any_length_is_caught():
    report = check_model(ChargesEveryStallEvent(), n_sessions=N, seed=3)
    assert not report.ok
    r = report["stall_vanishing"]
    assert r.checked >= N - 2 and r.violated > 0 and r.worst > 0.05, report.table()
    for name in MONOTONE:  # monotone everywhere: only the jump at zero length is wrong
        assert report[name].violated == 0, name
    assert check_model(RunningMeanQoE(), n_sessions=N, seed=3)["stall_vanishing"].violated == 0


def test_stalls_that_raise_the_score_are_caught():
    report = check_model(StallsRaiseScore(), n_sessions=N, seed=3)
    assert not report.ok
    for name in ("stall_added", "stall_longer", "startup_longer"):
        r = report[name]
        assert r.violated > 0 and r.worst > 0.1 and r.example, name
    assert report["bounds"].violated == 0
    assert report["quality_higher"].violated == 0


def test_a_low_frame_rate_that_scores_higher_is_caught():
    report = check_model(LowFrameRatesScoreHigher(), n_sessions=N, seed=3)
    r = report["frame_rate_lower"]
    assert not report.ok and r.violated > 0 and r.worst > 0.1 and "~fps" in r.example
    assert all(report[name].violated == 0 for name in MONOTONE if name != "frame_rate_lower")


def test_scores_outside_the_scale_are_caught():
    report = check_model(OutOfScale(), n_sessions=N, seed=3)
    assert not report.ok
    b = report["bounds"]
    assert b.violated > 0 and 0 < b.worst <= 0.5 + 1e-9   # at most the offset above the top
    assert all(report[name].violated == 0 for name in MONOTONE)


def test_a_crash_on_an_extreme_session_is_a_violation_and_a_clear_error_is_not():
    crash = check_model(CrashesOnLongSessions(), n_sessions=10, seed=0)
    assert crash["bounds"].violated >= 1
    assert "ValueError" in crash["bounds"].example
    refuse = check_model(RefusesLongSessions(), n_sessions=10, seed=0)
    assert refuse["bounds"].violated == 0
    assert any("too long" in n for n in refuse.notes)


def test_report_is_reproducible_and_json():
    a = check_model(RunningMeanQoE(), n_sessions=20, seed=7).to_dict()
    b = check_model(RunningMeanQoE(), n_sessions=20, seed=7).to_dict()
    c = check_model(RunningMeanQoE(), n_sessions=20, seed=8).to_dict()
    for d in (a, b, c):
        d.pop("seconds")
    assert a == b
    assert a != c   # another seed draws other sessions
    json.dumps(a, allow_nan=False)
    assert [r["relation"] for r in a["relations"]] == [name for name, _ in RELATIONS]


def test_n_sessions_must_be_positive():
    with pytest.raises(DeepQoEError):
        check_model(RunningMeanQoE(), n_sessions=0)


@pytest.mark.parametrize("toy, code", [(RunningMeanQoE, 0), (StallsRaiseScore, 1)])
def test_main_check_model_exit_status_and_json(monkeypatch, capsys, toy, code):
    monkeypatch.setattr(behaviour, "load_predictor", lambda model: toy())
    for path in ("_service_scores", "_cli_scores", "_onnx_scores"):
        monkeypatch.setattr(behaviour, path, lambda model, sessions: ([], "no other path for a toy"))
    args = argparse.Namespace(model="toy", n_sessions=15, seed=0, json=True)
    assert behaviour.main_check_model(args) == code
    out, err = capsys.readouterr()
    doc = json.loads(out)     # stdout holds only the JSON report
    assert doc["ok"] is (code == 0)
    assert doc["model"] == "toy" and doc["n_sessions"] == 15
    assert "check-model:" in err
    args.json = False
    assert behaviour.main_check_model(args) == code
    out, _ = capsys.readouterr()
    assert out.splitlines()[0].split()[:4] == ["relation", "checked", "held", "violated"]
    assert ("all relations hold" in out) is (code == 0)


@pytest.fixture(scope="module")
def shipped_report():
    return check_model(behaviour.load_predictor("streaming"), n_sessions=50, seed=0, model="streaming")


def test_shipped_streaming_model_report_structure(shipped_report):
    r = shipped_report
    assert [x.name for x in r.relations] == [name for name, _ in RELATIONS]
    assert r.scale == "1-5" and r.n_sessions == 50
    for x in r.relations:
        assert x.held + x.violated == x.checked
        assert x.violated == 0 or x.example
    for name in ("stall_added", "startup_longer", "curve_stall_dip", "repeat_steady", "bounds"):
        assert r[name].checked > 0, name
    svc = r["python_vs_service"]
    try:
        import fastapi.testclient  # noqa: F401
    except ImportError:
        assert svc.skipped
    else:
        assert svc.checked > 0
    assert r["python_vs_cli"].checked > 0
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        assert r["python_vs_onnx"].skipped
    else:
        assert r["python_vs_onnx"].checked == r["python_vs_cli"].checked
    json.dumps(r.to_dict(), allow_nan=False)
    table = r.table()
    assert all(name in table for name, _ in RELATIONS)


def test_shipped_streaming_model_violates_nothing(shipped_report):
    assert shipped_report.ok, shipped_report.table()


def test_shipped_streaming_card_has_its_tables():
    """The card shows the leave-one-dataset-out table, a behaviour row for every relation of the suite (a
    relation added later makes a stale card fail here) and the what-if tables."""
    from deepqoe.persistence import PRETRAINED_DIR

    card = (PRETRAINED_DIR / "streaming" / "MODEL_CARD.md").read_text(encoding="utf-8")
    proto, _, what = card.partition("## What it says")
    assert "### Leave one dataset out" in proto and "| p1203-open | 239 |" in proto
    for name, _ in RELATIONS:
        assert f"| {name} |" in proto, name
    assert "by frame rate" in what and "one 8-s stall" in what



def test_a_path_that_scores_otherwise_is_a_violation(monkeypatch):
    """python_vs_cli / python_vs_onnx compare each path's score with Python's and check its bounds: a path
    that is off by 0.01, or outside the scale, or fails a session, violates them."""
    def off(model, sessions):
        return [(s.id, 3.0 if k == 0 else 9.0 if k == 1 else None, "boom") for k, s in enumerate(sessions)], None

    monkeypatch.setattr(behaviour, "_cli_scores", off)
    monkeypatch.setattr(behaviour, "_onnx_scores", lambda model, sessions: ([], "python_vs_onnx skipped: test"))
    r = check_model(behaviour.load_predictor("streaming"), n_sessions=12, seed=1, model="streaming")
    cli = r["python_vs_cli"]
    assert cli.checked >= 3 and cli.violated == cli.checked, r.table()  # 3.0 is not Python's score either
    assert r["bounds"].violated >= 1 and "(CLI)" in r["bounds"].example
    assert r["python_vs_onnx"].skipped and r["python_vs_onnx"].note == "python_vs_onnx skipped: test"
    assert not r.ok
