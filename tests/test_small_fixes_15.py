"""Small fixes: fixed y axis of per-second charts on unbounded scales, "1080.0" text as category '1080',
one ``--out`` check for train / finetune, and the demo's figures made and saved by report.py's helpers."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from deepqoe.cli import main
from deepqoe.persistence import PRETRAINED_DIR


# ---- 1. per-second charts on an unbounded scale share a fixed y axis ---------------------------------------
def _session(sid, stalls=(), heights=(1080,) * 10):
    return {"id": sid, "segments": [{"start": k * 4, "duration": 4, "bitrate_kbps": 4000 if h >= 1080 else 400,
                                     "height": h} for k, h in enumerate(heights)],
            "stalls": [list(s) for s in stalls], "device": "pc"}


def _capture_charts(monkeypatch) -> list[dict]:
    """Record each chart's y limits and plotted curve values as report.py saves it."""
    import deepqoe.report as report

    charts, save = [], report._save

    def spy(fig, path):
        ax = fig.axes[0]
        ys = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()])
        charts.append({"path": pathlib.Path(path).name, "ylim": tuple(ax.get_ylim()), "y": ys})
        return save(fig, path)

    monkeypatch.setattr(report, "_save", spy)
    return charts


@pytest.mark.skipif(not (PRETRAINED_DIR / "streaming" / "model.json").is_file(), reason="no shipped streaming model")
def test_curve_charts_on_z_share_a_fixed_y_axis_that_holds_the_curves(tmp_path, monkeypatch, capsys):
    from deepqoe.sessions.scales import from_common

    src = tmp_path / "s.json"
    src.write_text(json.dumps([_session("flat"),  # smooth HD: a nearly flat curve
                               _session("bumpy", stalls=[(0, 3.0), (20, 6.0)], heights=(1080, 240) * 5)]))
    charts = _capture_charts(monkeypatch)
    out = tmp_path / "p.json"
    assert main(["predict", "streaming", str(src), "--scale", "z", "--plots", str(tmp_path / "c"),
                 "--out", str(out), "-q"]) == 0
    assert sorted(c["path"] for c in charts) == ["curve-bumpy.png", "curve-flat.png"]
    a, b = charts
    assert a["ylim"] == b["ylim"]  # every chart of one run: the same axis
    lo, hi = a["ylim"]
    assert (lo, hi) == pytest.approx(tuple(from_common([1.0, 5.0], "z")))  # the 1-5 bounds put on z
    rows = {r["id"]: r for r in json.loads(out.read_text())}
    for c in charts:
        assert np.isfinite(c["y"]).all() and lo <= c["y"].min() and c["y"].max() <= hi
    for r in rows.values():
        assert r["scale"] == "z" and lo <= min(r["curve"]) and max(r["curve"]) <= hi
    flat = np.asarray(rows["flat"]["curve"])
    assert np.ptp(flat) < 0.5 * (hi - lo)  # so a nearly flat curve looks flat (autoscale would fill the axis)


def test_curves_plot_y_axis_on_every_scale(tmp_path, monkeypatch):
    """A bounded scale keeps its range; z gets the common bounds on z, whatever the curve's own spread."""
    from deepqoe.report import curves_plot
    from deepqoe.sessions.session import Session

    s = Session.from_dict(_session("x"))
    charts = _capture_charts(monkeypatch)
    curves_plot(tmp_path / "a.png", [[0.1, 0.11, 0.12]], [s], ["x"], [1.0], "z")
    curves_plot(tmp_path / "b.png", [[-2.0, 0.0, 2.0]], [s], ["x"], [1.0], "z")
    curves_plot(tmp_path / "c.png", [[40.0, 50.0]], [s], ["x"], [1.0], "0-100")
    curves_plot(tmp_path / "d.png", [[3.0, 3.1]], [s], ["x"], [1.0], "1-5")
    assert charts[0]["ylim"] == charts[1]["ylim"] == pytest.approx((-2.5, 2.5))
    assert charts[2]["ylim"] == pytest.approx((0.0, 100.0)) and charts[3]["ylim"] == pytest.approx((1.0, 5.0))


# ---- 2. a text "1080.0" is the category '1080', as the float 1080.0 is --------------------------------------
def _encoder():
    from deepqoe.config import InputConfig
    from deepqoe.features.tabular import build_encoder

    return build_encoder(InputConfig(column="resolution", modality="categorical"))


@pytest.mark.parametrize("value, text", [
    ("1080.0", "1080"), ("1080.00", "1080"), ("0.0", "0"), ("-0.0", "0"), ("-3.000", "-3"),
    ("007", "007"), ("007.0", "007.0"), ("1e3", "1e3"), ("1080.5", "1080.5"), ("1080.", "1080."),
    (".0", ".0"), ("+5.0", "+5.0"), (" 1080.0", " 1080.0"), ("1080.0 ", "1080.0 "), ("unknown", "unknown"),
    ("99999999999999999.0", "99999999999999999.0"),  # beyond 2**53: as a float column would keep it
])
def test_category_text_of_a_zero_fraction_string(value, text):
    from deepqoe.features.tabular import CategoricalEncoder

    assert CategoricalEncoder._as_str(pd.Series([value, "unknown"], dtype=object))[0] == text


def test_text_column_matches_the_float_category():
    enc = _encoder().fit(pd.DataFrame({"resolution": [1080.0, 720.0, 1080.0, 480.0]}))
    assert set(enc.vocabulary) == {"1080", "720", "480"}
    floats = enc.transform(pd.DataFrame({"resolution": [1080.0, 720.0, 480.0]}))
    # read as text because another row says "unknown"
    text = enc.transform(pd.DataFrame({"resolution": ["1080.0", "720.00", "480", "unknown", "1080.5", "1e3"]}))
    assert text[:3].tolist() == floats.tolist() and (text[:3] > 0).all()
    assert text[3:].tolist() == [0, 0, 0] and enc.last_unseen == 3
    assert enc.last_unseen_values == ["1080.5", "1e3", "unknown"]
    mixed = enc.transform(pd.DataFrame({"resolution": pd.Series([1080.0, "unknown"], dtype=object)}))
    assert mixed.tolist() == [floats[0], 0]  # a float in an object column too


def test_ids_keep_their_leading_zeros():
    enc = _encoder().fit(pd.DataFrame({"resolution": ["007", "7", "007", "7.5"]}))
    assert set(enc.vocabulary) == {"007", "7", "7.5"}
    codes = enc.transform(pd.DataFrame({"resolution": ["007", "7", "7.0", "7.5", "007.0"]}))
    assert codes[0] != codes[1] and codes[2] == codes[1] and codes[3] > 0 and codes[4] == 0


def test_export_metadata_encodes_as_the_encoder_does():
    """encode_with_metadata (what another runtime follows) gives the predictor's codes for text "1080.0", and
    the metadata describes the rule."""
    from deepqoe.estimators import DeepQoERegressor
    from deepqoe.export import encode_with_metadata, input_descriptions

    rng = np.random.default_rng(0)
    n = 30
    df = pd.DataFrame({"resolution": rng.choice([1080.0, 720.0, 480.0], n), "bitrate": rng.uniform(100, 5000, n)})
    inputs = [{"column": "resolution", "modality": "categorical"}, {"column": "bitrate", "modality": "continuous"}]
    est = DeepQoERegressor(inputs=inputs, hidden_layers=(4,), max_epochs=2, patience=2,
                           random_state=0).fit(df, df.bitrate / 1000)
    descriptions = input_descriptions(est)
    cat = next(d for d in descriptions if d["input"] == "resolution")
    rule = cat["preprocessing"]["as_text"]
    assert "'1080.0' -> '1080'" in rule and "'007'" in rule
    rows = pd.DataFrame({"resolution": ["1080.0", "720.00", "480", "unknown", "007"], "bitrate": [900.0] * 5})
    feeds = encode_with_metadata(descriptions, rows)
    k = [d["input"] for d in descriptions].index("resolution")
    ours = est.encoders_[k].transform(rows)
    assert feeds[cat["name"]].tolist() == ours.tolist()
    floats = est.encoders_[k].transform(pd.DataFrame({"resolution": [1080.0, 720.0, 480.0]}))
    assert ours[:3].tolist() == floats.tolist() and (ours[:3] > 0).all() and ours[3:].tolist() == [0, 0]


# ---- 3. train / finetune check --out once, before any work, with the same messages -------------------------
@pytest.mark.parametrize("command", ["train", "finetune"])
def test_out_is_checked_once_before_any_work(command, tmp_path, monkeypatch, capsys):
    import deepqoe.workflow as workflow

    def no_work(*a, **k):
        raise AssertionError("trained although --out cannot be written")

    for name in ("train_config", "train_sessions_config", "finetune"):
        monkeypatch.setattr(workflow, name, no_work)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    head = [command] + (["upec-qoe-lab"] if command == "finetune" else []) + [str(tmp_path / "no-config.yaml")]

    def err_for(out) -> str:
        assert main(head + ["--out", str(out), "-q"]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        return err

    assert "exists and is not a folder; the output is a folder (a deepqoe model directory): give a new name" in \
        err_for(tmp_path / "afile")
    assert "exists and is not a deepqoe model directory (no model.json in it), so it is not replaced" in \
        err_for(tmp_path / "mine")
    assert f"--out: cannot write here: '{tmp_path / 'afile'}' is a file, not a folder" in \
        err_for(tmp_path / "afile" / "m")
    assert "config file not found" in err_for(tmp_path / "new")  # a good --out: on to the config
    assert (tmp_path / "afile").read_text() == "x" and not (tmp_path / "new").exists()

    # the output is judged once: its existence is looked at by one check, not by two in turn
    looked, exists, target = [], pathlib.Path.exists, tmp_path / "new"

    def spy(self, *a, **k):
        if self == target:
            looked.append(1)
        return exists(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "exists", spy)
    assert main(head + ["--out", str(target), "-q"]) == 1
    assert len(looked) == 1


# ---- 4. the demo makes and saves its figures with report.py's helpers, at its own dpi ----------------------
def test_demo_uses_the_report_figure_helpers_at_its_dpi(tmp_path):
    from PIL import Image

    import deepqoe.demo as demo
    import deepqoe.report as report

    assert demo._new_figure is report._new_figure and demo._save is report._save
    assert not hasattr(demo, "_figure")
    results = {"methods": {"deepqoe": {"metrics": {"srocc": {"mean": 0.8, "std": 0.05}}},
                           "ridge": {"metrics": {"srocc": {"mean": 0.6, "std": 0.04}}}},
               "key_metric": "srocc", "dataset": "upec", "n_splits": 2}
    path = demo.scores_plot(tmp_path / "scores.png", results)
    assert path == tmp_path / "scores.png"
    contrib = pd.DataFrame({"baseline": [3.0, 3.0], "prediction": [3.5, 2.2], "stalls": [-0.2, -0.6],
                            "quality": [0.7, -0.2]})
    path2 = demo.contributions_plot(tmp_path / "contrib.png", contrib, ["a", "b"], "t", "x")
    for p in (path, path2):
        with Image.open(p) as im:
            assert im.info["dpi"] == pytest.approx((demo.DEMO_DPI, demo.DEMO_DPI), abs=0.01)
    assert demo.DEMO_DPI == 100 and report.FIGURE_DPI == 110  # the demo's charts as they were; the report's too
    with Image.open(path) as im:  # 5.5 x 3.2 inches at 100 dpi, trimmed to the drawing ('tight')
        w, h = im.size
    assert 450 <= w <= 600 and 250 <= h <= 340
    fig = report._new_figure(2.0, 1.0)
    assert fig.dpi == 110 and report._new_figure(2.0, 1.0, dpi=72).dpi == 72
    assert report._save(fig, tmp_path / "r.png") == tmp_path / "r.png"


def test_the_demo_finds_the_datasets_where_every_loader_does(tmp_path, monkeypatch, capsys):
    """Without DEEPQOE_DATA the demo's real-data part looks in the per-user folder `deepqoe datasets fetch`
    fills (it only read DEEPQOE_DATA, so fetched data never reached the demo)."""
    from deepqoe import demo
    from deepqoe.datasets import catalog

    monkeypatch.delenv("DEEPQOE_DATA", raising=False)
    fetched = tmp_path / "fetched"
    monkeypatch.setattr(catalog, "default_data_dir", lambda: fetched)
    assert demo.data_part(tmp_path / "out", quiet=False) is None   # nothing fetched: no real-data part
    fetched.mkdir()
    assert demo.data_part(tmp_path / "out", quiet=False) is None   # fetched, but no UPEC data in it
    assert f"the datasets folder {fetched} has no upec-qoe-lab" in capsys.readouterr().out  # the CLI sends it to stderr
