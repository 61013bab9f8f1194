"""The README's main job: `deepqoe demo` on a fresh install, with no datasets and no network."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deepqoe.persistence import PRETRAINED_DIR


def test_demo_without_data(tmp_path):
    if not (PRETRAINED_DIR / "upec-qoe-lab" / "model.json").is_file():
        pytest.skip("no shipped model in this build")
    env = {k: v for k, v in os.environ.items() if k != "DEEPQOE_DATA"}
    out = tmp_path / "demo-report"
    r = subprocess.run([sys.executable, "-m", "deepqoe.cli", "demo", "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "report written to" in r.stderr and "Viewer ratings" in r.stderr  # status and tables: stderr
    assert r.stdout == ""
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<img") >= 2
    assert "Viewer ratings" in page and "DEEPQOE_DATA" in page  # the real-data part says how to enable it
    assert (out / "viewer_contributions.png").stat().st_size > 1000
    assert (out / "results.json").is_file()
    if (PRETRAINED_DIR / "streaming" / "model.json").is_file():
        assert "Per-second QoE" in r.stderr or (out / "session_curves.png").is_file()
        assert "smooth-hd" in page
