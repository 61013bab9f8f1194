"""``deepqoe predict`` of a session model scores its predictions against the sessions' own ``mos``: a line on
standard error whenever 3 or more predicted sessions carry one, ``--metrics FILE.json`` writes PLCC (also after a
logistic fit), SROCC, KROCC and RMSE with every session's mos and score, and ``--plots`` adds a scatter. Each mos
is put on the output scale from its own ``mos_scale``; the predictions themselves never read it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepqoe.evaluation.metrics import regression_metrics
from deepqoe.sessions.readers import save_sessions
from deepqoe.sessions.session import Session

from test_predict_explain_cli import _run  # (code, stdout, stderr) of a deepqoe command


def _session(sid: str, vmaf: float, stalls: int, mos=None, mos_scale=None) -> Session:
    return Session.from_arrays(sid, np.arange(10) * 2.0, np.full(10, 2.0), quality=np.full(10, vmaf),
                               stall_start=np.linspace(4.0, 12.0, stalls), stall_duration=np.full(stalls, 2.0),
                               mos=mos, mos_scale=mos_scale)


def _sessions(n_mos: int = 8, n_plain: int = 2) -> list[Session]:
    """``n_mos`` sessions with a mos (half of them on 0-100, half on 1-5), then ``n_plain`` without one."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n_mos):
        vmaf, stalls = float(rng.uniform(30, 95)), i % 3
        mos = float(np.clip(1 + 4 * vmaf / 100 - 0.5 * stalls + rng.normal(0, 0.2), 1, 5))
        out.append(_session(f"m{i}", vmaf, stalls, *((25 * (mos - 1), "0-100") if i % 2 else (mos, "1-5"))))
    out += [_session(f"p{i}", 70.0, 1) for i in range(n_plain)]
    return out


def test_the_predictions_are_scored_against_each_sessions_own_mos(tmp_path, capsys):
    sessions = _sessions()
    save_sessions(sessions, tmp_path / "s.json")
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "s.json", "--out", tmp_path / "scores.csv",
                          "--metrics", tmp_path / "m.json", "--scale", "0-100", "--plots", tmp_path / "plots")
    assert code == 0, err
    assert out == ""                                           # stdout stays the predictions' (here: a file)
    scores = pd.read_csv(tmp_path / "scores.csv").set_index("id")["score"]
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n"] == 8 and m["n_predicted"] == 10 and m["scale"] == "0-100" and m["mos_scales"] == ["0-100", "1-5"]
    # every mos on the output scale 0-100, whatever scale the session wrote it on
    expect_mos = [s.mos if s.mos_scale == "0-100" else 25 * (s.mos - 1) for s in sessions[:8]]
    assert [r["id"] for r in m["sessions"]] == [s.id for s in sessions[:8]]
    assert np.allclose([r["mos"] for r in m["sessions"]], expect_mos)
    assert np.allclose([r["score"] for r in m["sessions"]], scores.loc[[s.id for s in sessions[:8]]], atol=1e-5)
    ref = regression_metrics(expect_mos, scores.loc[[s.id for s in sessions[:8]]].to_numpy(), logistic=True)
    for k in ("plcc", "srocc", "krocc", "rmse", "plcc_logistic"):
        assert m[k] == pytest.approx(ref[k], abs=1e-4), k
    assert m["srocc"] > 0.5                                    # the model follows these sessions' quality and stalls
    line = next(ln for ln in err.splitlines() if ln.startswith("against the sessions' own mos"))
    assert "(8 of 10 sessions, on the scale 0-100; mos on 2 scales: 0-100, 1-5)" in line and f"SROCC {m['srocc']:.3f}" in line
    assert (tmp_path / "plots" / "predicted-vs-mos.png").stat().st_size > 0


def test_the_line_is_said_without_metrics_and_not_with_too_few_mos(tmp_path, capsys):
    save_sessions(_sessions(), tmp_path / "s.json")
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "s.json", "--json")
    assert code == 0 and "against the sessions' own mos (8 of 10 sessions, on the scale 1-5" in err
    assert len(json.loads(out)) == 10
    save_sessions(_sessions(n_mos=2), tmp_path / "few.json")
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "few.json", "--json")
    assert code == 0 and "against the sessions' own mos" not in err
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "s.json", "--json", "-q")
    assert code == 0 and "against" not in err                  # --quiet: no status lines


def test_metrics_without_enough_mos_is_one_error_and_writes_nothing(tmp_path, capsys):
    save_sessions(_sessions(n_mos=2), tmp_path / "few.json")
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "few.json", "--out", tmp_path / "scores.csv",
                          "--metrics", tmp_path / "m.json")
    assert code == 1, err
    assert "--metrics: 2 of the 4 session(s) read carry a usable mos; 3 or more are needed" in err
    assert "few.json" in err and "Traceback" not in err
    assert not (tmp_path / "scores.csv").exists() and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("argv,expect", [
    (["streaming", "{s}", "--metrics", "{t}/m.csv"], "--metrics must end in .json"),
    (["upec-qoe-lab", "{t}/rows.csv", "--metrics", "{t}/m.json"], "--metrics is for session models"),
    (["streaming", "{s}", "--metrics", "{t}/m.json", "--scheduler", "local", "--out", "{t}/parts"],
     "--metrics and --mos-scale are not available with --scheduler"),
    (["upec-qoe-lab", "{t}/rows.csv", "--mos-scale", "1-5"], "--mos-scale is for session models"),
    (["streaming", "{s}", "--mos-scale", "stars"], "--mos-scale: unknown rating scale 'stars'"),
])
def test_metrics_misuse_is_a_usage_error(tmp_path, capsys, argv, expect):
    save_sessions(_sessions(), tmp_path / "s.json")
    pd.DataFrame({"content": ["News"], "resolution": [720]}).to_csv(tmp_path / "rows.csv", index=False)
    args = [a.format(s=tmp_path / "s.json", t=tmp_path) for a in argv]
    code, out, err = _run(capsys, "predict", *args)
    assert code == 2 and expect in err, err
    assert not (tmp_path / "m.json").exists()


def test_the_metrics_file_is_neither_the_output_nor_the_input(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    save_sessions(_sessions(), tmp_path / "in" / "s.json")
    for argv, expect in (
            (["--out", tmp_path / "same.json", "--metrics", tmp_path / "same.json"], "--metrics and --out name the same file"),
            (["--metrics", tmp_path / "in" / "m.json"], "is inside the input folder"),
            (["--metrics", ""], "--metrics: give a file name ending in .json")):
        code, out, err = _run(capsys, "predict", "streaming", tmp_path / "in", *argv)
        assert code == 2 and expect in err, err
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "in" / "s.json", "--metrics",
                          tmp_path / "in" / "s.json")
    assert code == 2 and "is the input file" in err, err
    assert not (tmp_path / "same.json").exists() and not (tmp_path / "in" / "m.json").exists()
    assert len(list((tmp_path / "in").iterdir())) == 1           # the input is untouched
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "in", "--metrics", tmp_path / "in" / "sub" / "m.json")
    assert code == 0, err                                        # a subfolder is not read: allowed


def test_too_few_with_a_failed_session_says_why(tmp_path, capsys):
    sessions = _sessions(n_mos=3, n_plain=1)
    save_sessions(sessions, tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    data["sessions"][0]["segments"][1]["duration"] = 0.0       # a bad session that carried a mos
    (tmp_path / "s.json").write_text(json.dumps(data))
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "s.json", "--metrics", tmp_path / "m.json")
    assert code == 1, err
    assert "2 of the 3 session(s) read carry a usable mos" in err
    assert "(1 session(s) or file(s) could not be read or predicted; the first: " in err and "segments[1].duration" in err


def test_z_scored_mos_go_through_their_own_mean_and_sd(tmp_path, capsys):
    """As training reads a z-scored dataset: the same ranking whatever mean and SD the lab's z-scores have, and the
    same RMSE as the same scores given on 1-5 with that mean and SD; fewer than 5 sessions: no logistic fit."""
    from deepqoe.sessions.predict import against_mos
    from deepqoe.sessions.scales import parse_scale

    base = _sessions(n_mos=8, n_plain=0)
    common = np.array([s.mos if s.mos_scale == "1-5" else 1 + s.mos / 25 for s in base])
    rows = [{"id": s.id, "score": float(3.0 + 0.1 * k)} for k, s in enumerate(base)]
    for mean, sd in ((0.0, 1.0), (-0.5, 0.4)):
        zs = [_session(s.id, 70.0, 0, mos=mean + sd * (c - common.mean()) / common.std(ddof=1), mos_scale="z")
              for s, c in zip(base, common)]
        m = against_mos(rows, zs, parse_scale("1-5"))
        assert np.allclose([p[1] for p in m["pairs"]], 3 + 0.8 * (common - common.mean()) / common.std(ddof=1), atol=1e-5)
        assert m["mos_scales"] == ["z"]
    few = against_mos(rows[:4], base[:4], parse_scale("1-5"))
    assert few["plcc_logistic"] is None and few["plcc"] is not None
    flat = against_mos(rows, [_session(s.id, 70.0, 0, mos=3.0) for s in base], parse_scale("1-5"))
    assert flat["plcc"] is None and flat["undefined"] == "every mos is the same"


def test_a_mos_that_is_not_a_number_is_left_out_with_a_note(tmp_path, capsys):
    """JSON text, a CSV cell of text: prediction does without the mos (as for a mos outside its scale); training
    and validation still refuse such a session."""
    save_sessions(_sessions(n_mos=5, n_plain=0), tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    data["sessions"][0]["mos"] = "3.5"
    (tmp_path / "s.json").write_text(json.dumps(data))
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "s.json", "--json")
    assert code == 0, err
    assert len(json.loads(out)) == 5 and "against the sessions' own mos (4 of 5 sessions" in err
    note = next(ln for ln in err.splitlines() if "ignored for prediction" in ln)
    assert "session 'm0'" in note and "field 'mos'" in note
    code, out, err = _run(capsys, "sessions", "validate", tmp_path / "s.json")
    assert code != 0 and "'mos'" in err
    save_sessions(_sessions(n_mos=4, n_plain=0), tmp_path / "t.csv")
    table = pd.read_csv(tmp_path / "t.csv", dtype=str)
    table.loc[table["session_id"] == "m1", "mos"] = "N/A"
    table.to_csv(tmp_path / "t.csv", index=False)
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "t.csv", "--json")
    assert code == 0 and len(json.loads(out)) == 4, err
    assert "against the sessions' own mos (3 of 4 sessions" in err


def test_a_waterloo_folder_rated_1_to_5_with_mos_scale_and_a_bad_mos_cell(tmp_path, capsys):
    """--mos-scale reads every mos on the given scale (the Waterloo layout's own is 0-100); a data.csv mos that
    is not a number is left out of the comparison with one note, not a failed run."""
    import shutil

    from conftest import real_data

    src = real_data("waterloo-sqoe-iv")
    data = pd.read_csv(src / "data.csv", dtype=str).head(8)
    (tmp_path / "wl" / "streaming_logs").mkdir(parents=True)
    for log in data["streaming_log"]:
        shutil.copy(src / "streaming_logs" / log, tmp_path / "wl" / "streaming_logs" / log)
    data["mos"] = [f"{1 + 4 * float(v) / 100:.3f}" for v in data["mos"]]     # the same scores, on 1-5
    data.loc[2, "mos"] = "abc"
    data.to_csv(tmp_path / "wl" / "data.csv", index=False)
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "wl", "--json", "--mos-scale", "1-5",
                          "--metrics", tmp_path / "m.json")
    assert code == 0, err
    assert "column 'mos', row 3: expected a finite number, got \"abc\" — ignored for prediction" in err
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n"] == 7 and m["mos_scales"] == ["1-5"]
    assert np.allclose([r["mos"] for r in m["sessions"]], [float(v) for k, v in enumerate(data["mos"]) if k != 2])
    code, out, err = _run(capsys, "predict", "streaming", tmp_path / "wl", "--json")   # read on 0-100: a note
    assert code == 0 and "--mos-scale 1-5" in err, err
