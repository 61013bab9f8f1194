"""``deepqoe predict --explain``: the explanation Python's ``explain=True`` and the service's ``"explain"`` give,
now from the command line too (table models: Shapley columns; session models: each part's contribution),
in every output form; refused with --scheduler (exit 2)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from deepqoe.cli import main
from deepqoe.predictor import load_predictor

ROWS = pd.DataFrame({"content": ["Sports", "News", "Cartoons"], "resolution": [1080, 480, 240],
                     "bitrate_video": [3300.0, 900.0, 150.0], "age_user": [24, 31, 40],
                     "sex_user": ["men", "women", "men"]})
SESSION = {"id": "a", "segments": [{"start": 0, "duration": 4, "quality": 85}, {"start": 4, "duration": 4, "quality": 60},
                                   {"start": 8, "duration": 4, "quality": 85}],
           "stalls": [{"start": 6, "duration": 2}]}


def _run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_table_models_explanation_on_the_command_line_is_pythons(tmp_path, capsys):
    ROWS.to_csv(tmp_path / "r.csv", index=False)
    code, out, err = _run(capsys, "predict", "upec-qoe-lab", tmp_path / "r.csv", "--explain")
    assert code == 0, err
    table = pd.read_csv(io.StringIO(out))
    contrib = [c for c in table.columns if c.startswith("contrib_")]
    assert {"contrib_content", "contrib_resolution", "contrib_bitrate_video"} <= set(contrib)
    assert (table["explanation_method"] == "shapley").all()
    # Shapley values add up: baseline + contributions = the expected rating explained
    total = table["explanation_baseline"] + table[contrib].sum(axis=1)
    assert np.allclose(total, table["expected_rating"], atol=1e-4)
    py = load_predictor("upec-qoe-lab").predict_rows(ROWS, explain=True)
    for k, r in enumerate(py):
        for name, v in r["explanation"]["contributions"].items():
            assert table.loc[k, f"contrib_{name}"] == pytest.approx(v, abs=1e-6)
    code, out, _ = _run(capsys, "predict", "upec-qoe-lab", tmp_path / "r.csv")
    assert code == 0 and "contrib_" not in out   # only when asked for


def test_a_session_models_explanation_in_every_output(tmp_path, capsys):
    (tmp_path / "s.json").write_text(json.dumps(SESSION))
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "s.json", "--explain", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    py, _ = load_predictor("streaming").predict_sessions([SESSION], explain=True)
    assert row["explanation"]["contributions"] == pytest.approx(py[0]["explanation"]["contributions"])
    assert row["explanation"]["contributions"]["stalls"] < 0
    code, _, err = _run(capsys, "predict", "streaming", tmp_path / "s.json", "--explain", "--out", tmp_path / "s.csv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "s.csv")
    assert table.loc[0, "contrib_stalls"] == pytest.approx(row["explanation"]["contributions"]["stalls"], abs=1e-6)
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "s.json", "--explain")
    head, line = out.splitlines()[:2]
    assert code == 0 and "stalls" in head and f"{row['explanation']['contributions']['stalls']:+.3f}" in line, out


def test_explain_with_a_scheduler_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "s.json").write_text(json.dumps(SESSION))
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "s.json", "--explain", "--scheduler", "local",
                          "--out", tmp_path / "o")
    assert code == 2 and "--explain is not available with --scheduler" in err and not out
    assert not (tmp_path / "o").exists()
