"""``deepqoe reproduce intervals rating_distribution per_viewer --quick``: the sections of issue 13 run end
to end on the real data and report finite, sane numbers (a quick run's values mean little; the full
numbers are in docs/results.md)."""

from __future__ import annotations

import json
import math

import pytest

from conftest import real_data
from deepqoe.cli import main

SECTIONS = ["intervals", "rating_distribution", "per_viewer"]


def _in(x, lo, hi) -> bool:
    return x is not None and math.isfinite(float(x)) and lo <= float(x) <= hi


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    for folder in ("waterloo-sqoe-iv", "p1203-open", "live-nflx", "videval-ugc", "upec-qoe-lab"):
        real_data(folder)
    out = tmp_path_factory.mktemp("beyond_mos")
    assert main(["reproduce", *SECTIONS, "--quick", "--out", str(out), "-q"]) == 0
    return (out / "report.md").read_text(encoding="utf-8"), json.loads((out / "results.json").read_text())


def test_intervals_section(quick_run):
    md, res = quick_run
    r = res["intervals"]
    assert {"p1203-open", "waterloo-sqoe-iv", "live-nflx", "konvid-1k", "youtube-ugc"} <= set(r["datasets"])
    # the shipped way too: calibrated on out-of-fold predictions of the training sessions
    assert {"p1203-open (out-of-fold)", "waterloo-sqoe-iv (out-of-fold)"} <= set(r["datasets"])
    for d, e in r["datasets"].items():
        for lv in ("0.8", "0.9"):
            assert _in(e[lv]["coverage"]["mean"], 0, 1) and _in(e[lv]["width"]["mean"], 0, 10), d
        # a wider level never covers less (the same splits, a larger conformal quantile)
        assert e["0.9"]["width"]["mean"] >= e["0.8"]["width"]["mean"] - 1e-9, d
    assert "Prediction intervals" in md or "coverage" in md


def test_rating_distribution_section(quick_run):
    _, res = quick_run
    r = res["rating_distribution"]
    assert set(r["datasets"]) == {"waterloo-sqoe-iv", "p1203-open"}
    for d, t in r["datasets"].items():
        assert len(t["methods"]) >= 3, d   # ours and the two baselines (at least)
        for name, m in t["methods"].items():
            assert _in(m["sos_mae"], 0, 2) and _in(m["gob_mae_pp"], 0, 100) and _in(m["pow_mae_pp"], 0, 100)
            assert math.isfinite(m["loglik"]) and m["loglik"] < 0, (d, name)
        assert _in(t["mos_model"]["srocc"], 0.2, 1), d   # the MOS model learned something even in a quick run


def test_per_viewer_section(quick_run):
    _, res = quick_run
    r = res["per_viewer"]
    assert r["dataset"] == "upec-qoe-lab" and r["n_viewers"] == 62
    for which in ("without", "with"):
        assert _in(r["seen"]["deepqoe"][which]["accuracy"]["mean"], 0.15, 0.8)
    for k, v in r["held_out"].items():
        if v["n_ratings"]:
            assert _in(v["before"]["accuracy"], 0, 1) and _in(v["after"]["accuracy"], 0, 1), k
