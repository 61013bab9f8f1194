"""The quality mapping (bitrate, resolution, frame rate, codec -> quality) and its reproduce section."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import real_data
from deepqoe.experiments.quality_mapping import best_rung_agreement, frame_rate_exponent, full_rate, grid_rows
from deepqoe.features.video.encode_ladder import Encode, plan_grid
from deepqoe.sessions.qoe_model import (MappingRows, QualityMapping, builtin_quality_mapping,
                                        fit_quality_mapping, frame_rate_kept)

CODECS = ("h264", "hevc", "vp9", "av1", None, "mpeg2")


def _q(m, kbps, h, fps=30.0, codec="h264", display=2160.0):
    n = np.broadcast(np.asarray(kbps, float), np.asarray(h, float), np.asarray(fps, float)).shape
    h = np.broadcast_to(np.asarray(h, float), n)
    return m(np.broadcast_to(np.asarray(kbps, float), n), h * 16 / 9, h, np.broadcast_to(np.asarray(fps, float), n),
             np.broadcast_to(np.asarray(codec, dtype=object), n), display)


@pytest.fixture(scope="module")
def builtin():
    return builtin_quality_mapping()


def test_builtin_mapping_is_a_ceiling_form_within_its_bounds(builtin):
    meta = json.loads(__import__("deepqoe.sessions.qoe_model", fromlist=["BUILTIN_MAPPING"]).BUILTIN_MAPPING.read_text())
    assert meta["form"] == "ceiling" and meta["quick"] is False
    assert meta["fitted_on"]["encode grid"] > 100 and meta["fitted_on"]["waterloo-sqoe-iv chunks"] > 1000
    assert builtin.w_res == 0.0 and builtin.w_fps == 0.0       # the older logit terms are off
    assert builtin.c_res > 0 and 0 < builtin.w_bpp and 0 <= builtin.w_h <= 2 * builtin.w_bpp + 1e-9


@pytest.mark.parametrize("codec", CODECS)
def test_builtin_never_falls_with_bitrate_and_stays_in_range(builtin, codec):
    br = np.geomspace(50, 60000, 300)
    for h in (144, 360, 540, 720, 1080, 1440, 2160, 4320):
        for fps in (10, 15, 24, 30, 60):
            for disp in (720, 1080, 2160):
                q = _q(builtin, br, h, fps, codec, disp)
                assert np.all(np.diff(q) >= -1e-9) and np.all((q >= 0) & (q <= 100))


def test_builtin_lower_frame_rate_never_raises_quality(builtin):
    """Below 24 fps the bits per frame earn nothing and P.1203.1's frame-rate degradation takes a share of
    the quality: lower rates score lower, and 23.976 scores as 24."""
    assert builtin.frame_rate_term == "p1203"
    fps = np.array([5, 10, 12, 15, 20, 23.976, 24, 25, 30, 50, 60])
    for h in (360, 1080, 2160):
        for kb in (300, 3000, 30000):
            q = _q(builtin, kb, h, fps)
            assert np.all(np.diff(q[:6]) > 0)
            assert q[5] == pytest.approx(q[6], abs=1e-9)
            assert q[0] / q[6] == pytest.approx(frame_rate_kept(5.0), rel=1e-9)


def test_frame_rate_kept_is_the_p1203_degradation():
    """D_t / (100 - D_q - D_u) = (t1 - t2 fps) / (t3 + fps) of ITU-T P.1203.1 below 24 fps, else 0."""
    assert float(frame_rate_kept(15.0)) == pytest.approx(1 - (30.98 - 1.29 * 15) / (64.65 + 15), rel=1e-12)
    kept = frame_rate_kept(np.array([0.5, 10, 15, 20, 23.976, 24, 60, np.nan, -3.0]))
    assert np.all(np.diff(kept[:5]) > 0) and np.all(kept[4:] == 1.0) and np.all((kept > 0.5) & (kept <= 1))
    assert np.all(frame_rate_kept([5, 15, 30], "none") == 1.0)
    with pytest.raises(ValueError, match="frame_rate_term"):
        frame_rate_kept(15.0, "judder")
    with pytest.raises(ValueError, match="frame_rate_term"):
        QualityMapping(frame_rate_term="judder")


def test_builtin_has_the_crossover_of_a_bitrate_ladder(builtin):
    """On a 2160p display a lower resolution wins at a low bitrate and a higher one at a high bitrate."""
    low = _q(builtin, 500, np.array([540, 1080, 2160]))
    high = _q(builtin, 16000, np.array([540, 1080, 2160]))
    assert low[1] > low[2]                      # 1080p beats 2160p at 500 kbps
    assert high[2] > high[1] > high[0]          # and loses to it at 16 Mbps
    assert high[2] > 90 and low[2] < 60
    # the crossover moves up with the bitrate: the best of 360p-2160p is a higher rung at a higher bitrate
    hs = np.array([360, 540, 720, 1080, 1440, 2160])
    best = [hs[np.argmax(_q(builtin, kb, hs))] for kb in (200, 500, 1000, 2000, 4000, 8000, 16000)]
    assert best == sorted(best) and best[0] < 2160 and best[-1] == 2160


def test_builtin_codec_offsets_order(builtin):
    q = {c: float(_q(builtin, 2000, 1080, 30, c)) for c in ("h264", "hevc", "vp9", "av1")}
    assert q["hevc"] >= q["h264"] and q["vp9"] >= q["h264"] and q["av1"] >= q["h264"]


def test_codec_family_fallback_chain():
    m = QualityMapping(bias=0.0, w_bpp=1.0, codec_offset={"h264": 0.0, "hevc": 0.5, "vp9": 0.3})
    off = m.codec_offsets(np.array(["H264", "hvc1", "vp09", "av1", "", None, "theora"], dtype=object), (7,))
    assert off.tolist() == [0.0, 0.5, 0.3, 0.3, 0.0, 0.0, 0.0]      # AV1 takes VP9's offset; unknown: H.264
    assert QualityMapping(codec_offset={"h264": 0.0, "hevc": 0.4}).codec_offsets("av1", ()) == 0.4


@pytest.mark.parametrize("text,family", [
    ("h264", "h264"), ("AVC1.64001F", "h264"), ("avc3.640028", "h264"), ("H.264", "h264"), ("libx264", "h264"),
    ("hvc1.1.6.L93.B0", "hevc"), ("hev1.2.4.L120.90", "hevc"), ("H.265", "hevc"), ("x265", "hevc"),
    ("vp09.00.10.08", "vp9"), ("VP9", "vp9"), ("av01.0.04M.08", "av1"), ("AV1", "av1"),
    ("", "h264"), (None, "h264"), ("vp8", "h264"), ("mp4v.20.9", "h264")])
def test_codec_family_reads_player_codec_strings(text, family):
    from deepqoe.sessions.qoe_model import codec_family

    assert codec_family(text) == family


def test_older_model_state_keeps_its_formula():
    """A model file written before the ceiling form (no c_res, no r0) maps as before (at 24 fps or more)."""
    old = {"bias": 4.99, "w_bpp": 0.45, "w_res": 0.89, "w_fps": 0.0, "w_h": 1.08,
           "codec_offset": {"h264": 0.0, "hevc": 0.35}, "median_log_bpp": -3.33}
    m = QualityMapping(**old)
    kb, w, h, f, disp = 3000.0, 1280.0, 720.0, 30.0, 1080.0
    z = (4.99 + 0.35 + 0.45 * np.log2(kb * 1000 / (w * h * f)) + 0.89 * np.log2(h / disp) + 1.08 * np.log2(h / 1080))
    assert float(m(kb, w, h, f, "hevc", disp)) == pytest.approx(100 / (1 + np.exp(-z)), rel=1e-9)
    # a state without a frame-rate term (written before it) gives 15 fps no cost beyond its bits per frame
    assert m.frame_rate_term == "none"
    assert float(m(kb, w, h, 15.0, "hevc", disp)) == pytest.approx(float(m(kb, w, h, 24.0, "hevc", disp)), rel=1e-9)


def _synthetic_rows(truth: QualityMapping, n: int, seed: int, noise: float, fps=(30.0,)) -> MappingRows:
    rng = np.random.default_rng(seed)
    h = rng.choice([180, 270, 360, 540, 720, 1080, 2160], n).astype(float)
    kb = np.exp(rng.uniform(np.log(50), np.log(30000), n))
    codec = rng.choice(["h264", "hevc", "vp9"], n).astype(object)
    disp = rng.choice([1080.0, 2160.0], n)
    f = rng.choice(np.asarray(fps, float), n)
    q = truth(kb, h * 16 / 9, h, f, codec, disp) + rng.normal(0, noise, n)
    return MappingRows.from_columns(dict(bitrate_kbps=kb, width=h * 16 / 9, height=h, fps=f, codec=codec,
                                         display_height=disp, quality=q, source=np.where(rng.random(n) < .5, "a", "b")))


def test_fit_recovers_a_ceiling_mapping():
    truth = QualityMapping(bias=6.0, w_bpp=1.0, w_h=1.5, c_res=1.6, r0=3.5,
                           codec_offset={"h264": 0.0, "hevc": 0.6, "vp9": 0.4})
    rows = _synthetic_rows(truth, 3000, 0, 2.0)
    fit = fit_quality_mapping(rows)
    test = _synthetic_rows(truth, 1000, 1, 0.0)
    pred = fit(test.bitrate_kbps, test.width, test.height, test.fps, test.codec, test.display_height)
    assert np.sqrt(np.mean((pred - test.quality) ** 2)) < 1.0
    assert fit.codec_offset["hevc"] == pytest.approx(0.6, abs=0.15) and fit.w_h <= 2 * fit.w_bpp + 1e-9
    assert fit.frame_rate_term == "p1203"
    # the older additive form cannot express the crossover and fits worse
    add = fit_quality_mapping(rows, form="additive")
    pa = add(test.bitrate_kbps, test.width, test.height, test.fps, test.codec, test.display_height)
    assert np.sqrt(np.mean((pa - test.quality) ** 2)) > np.sqrt(np.mean((pred - test.quality) ** 2)) + 0.5


def test_fit_takes_the_frame_rate_share_as_known():
    """Rows below 24 fps are fitted through the fixed P.1203.1 share: the same parameters come back as from
    rows at 30 fps only (a fit that ignored the share would read low-rate rows as harder content)."""
    truth = QualityMapping(bias=6.0, w_bpp=1.0, w_h=1.5, c_res=1.6, r0=3.5, codec_offset={"h264": 0.0, "hevc": 0.6},
                           frame_rate_term="p1203")
    fit = fit_quality_mapping(_synthetic_rows(truth, 3000, 2, 1.0, fps=(12.0, 15.0, 30.0)))
    for k in ("bias", "w_bpp", "w_h", "c_res"):
        assert getattr(fit, k) == pytest.approx(getattr(truth, k), rel=0.1), k
    test = _synthetic_rows(truth, 500, 3, 0.0, fps=(10.0, 15.0, 24.0, 60.0))
    pred = fit(test.bitrate_kbps, test.width, test.height, test.fps, test.codec, test.display_height)
    assert np.sqrt(np.mean((pred - test.quality) ** 2)) < 1.0


def test_fit_with_a_held_shape_adds_only_the_new_codecs_offset():
    """hold=: the shape and the held codecs' offsets come back exactly; the missing codec's offset is
    recovered from its rows (even where its rows alone would pull the shape elsewhere)."""
    truth = QualityMapping(bias=6.0, w_bpp=1.0, w_h=1.5, c_res=1.6, r0=3.5, frame_rate_term="p1203",
                           codec_offset={"h264": 0.0, "hevc": 0.6, "vp9": 0.4})
    rows = _synthetic_rows(truth, 3000, 4, 1.0)
    shape = fit_quality_mapping(rows.subset(rows.codec != "vp9"))
    assert "vp9" not in shape.codec_offset
    held = fit_quality_mapping(rows, hold=shape)
    for k in ("bias", "w_bpp", "w_h", "c_res", "r0", "median_log_bpp", "fps_exponent", "frame_rate_term"):
        assert getattr(held, k) == getattr(shape, k), k
    assert held.codec_offset["hevc"] == shape.codec_offset["hevc"] and held.codec_offset["h264"] == 0.0
    assert held.codec_offset["vp9"] == pytest.approx(0.4, abs=0.1)
    with pytest.raises(ValueError, match="hold"):
        fit_quality_mapping(rows, form="additive", hold=shape)
    with pytest.raises(ValueError, match="reference codec"):
        fit_quality_mapping(rows, hold=QualityMapping(bias=6.0, w_bpp=1.0, w_h=1.5, c_res=1.6, r0=3.5,
                                                      frame_rate_term="p1203", codec_offset={"hevc": 0.6}))


def test_offset_only_codecs_are_fitted_each_on_its_own_cells():
    """``reproduce quality_mapping``'s offset-only codecs (VP9, AV1): each offset is recovered from its own
    cells with the shape held, and measuring one more codec never moves another's offset."""
    from deepqoe.experiments.quality_mapping import grid_rows, offset_only

    truth = QualityMapping(bias=6.0, w_bpp=1.0, w_h=1.5, c_res=1.6, r0=3.5, frame_rate_term="p1203",
                           codec_offset={"h264": 0.0, "hevc": 0.6, "vp9": 0.4, "av1": 0.9})
    rng = np.random.default_rng(5)

    def cells(codec, clip, level):  # a clip's grid: heights x bitrates (level: added to its quality)
        out = []
        for h in (270, 540, 1080):
            for kb in (100, 400, 1600, 6400):
                q = float(truth(kb, h * 16 / 9, h, 30.0, codec, 1080.0)) + level + rng.normal(0, 0.5)
                out.append({"clip": clip, "codec": codec, "width": h * 16 / 9, "height": h, "fps": 30.0,
                            "display_height": 1080.0, "bitrate_kbps": kb, "vmaf": q})
        return out

    clips = {"a": 0.0, "b": 0.0, "c": 0.0}
    fitted = [r for c, lv in clips.items() for f in ("h264", "hevc") for r in cells(f, c, lv)]
    vp9 = [r for c, lv in clips.items() for r in cells("vp9", c, lv)]
    av1 = [r for c, lv in clips.items() for r in cells("av1", c, lv)]
    W = _synthetic_rows(truth, 1500, 6, 1.0)
    W = W.subset(W.codec != "vp9")  # like Waterloo's chunks: H.264 and HEVC only
    shape = fit_quality_mapping(W + grid_rows(fitted), fps_exponent=1.0)
    both, info = offset_only(shape, W, fitted, vp9 + av1, 1.0)
    alone, _ = offset_only(shape, W, fitted, vp9, 1.0)
    assert both.codec_offset["vp9"] == alone.codec_offset["vp9"]  # AV1's cells did not move VP9's offset
    assert both.codec_offset["vp9"] == pytest.approx(0.4, abs=0.15) and both.codec_offset["av1"] == pytest.approx(0.9, abs=0.15)
    assert {k: v for k, v in both.codec_offset.items() if k in shape.codec_offset} == shape.codec_offset
    assert both.w_bpp == shape.w_bpp and both.bias == shape.bias
    assert info["cells"] == len(vp9 + av1) and set(info["per_clip"]) == set(clips)
    assert all(set(d) == {"av1", "vp9"} for d in info["per_clip"].values())


def test_builtin_mapping_measures_every_codec_family(builtin):
    """H.264 / HEVC set the shape, VP9 and AV1 are measured on the encode grid (none falls back)."""
    assert set(builtin.codec_offset) == {"h264", "hevc", "vp9", "av1"}


def test_fit_needs_enough_rows_and_a_known_form():
    from deepqoe.errors import DeepQoEError

    rows = _synthetic_rows(QualityMapping(), 10, 0, 0.0)
    with pytest.raises(DeepQoEError, match="at least 20 segments"):
        fit_quality_mapping(rows)
    with pytest.raises(ValueError, match="form"):
        fit_quality_mapping(_synthetic_rows(QualityMapping(), 50, 0, 0.0), form="cubic")


def _rate_pairs(gamma, clips=("a", "b"), fps=30.0):
    """Grid rows of two frame rates whose VMAF depends on bitrate / fps ** gamma (the exponent to recover)."""
    rows = []
    for k, clip in enumerate(clips):
        for f in (fps, fps / 2):
            for kb in (50, 100, 200, 400, 800, 1600, 3200):
                v = 100 / (1 + np.exp(-(1.3 * np.log2(kb / f ** gamma) - 7.0 - 0.3 * k)))
                rows.append({"clip": clip, "codec": "h264", "height": 540, "width": 960, "fps": f,
                             "target_kbps": kb, "bitrate_kbps": kb * 1.03, "vmaf": v, "display_height": 540})
    return rows


@pytest.mark.parametrize("gamma", [0.3, 0.6, 1.0])
def test_frame_rate_exponent_recovers_how_bitrate_grows_with_frame_rate(gamma):
    est = frame_rate_exponent(_rate_pairs(gamma))
    assert est["exponent"] == pytest.approx(gamma, abs=0.05) and set(est["per_clip"]) == {"a", "b"}
    assert est["n"] >= 6
    rows = _rate_pairs(gamma)
    assert all(r["fps"] == 30.0 for r in full_rate(rows)) and len(full_rate(rows)) == len(rows) // 2
    assert frame_rate_exponent(full_rate(rows)) == {"exponent": None, "per_clip": {}, "n": 0}


def test_fps_exponent_shares_bits_over_frames_and_is_validated():
    """With fps_exponent 1 (mappings written before it) bits count per frame; below 1 a higher rate at the
    same bitrate loses less, never gains over a lower rate, and the rates below 24 fps are unchanged."""
    old = QualityMapping(w_bpp=1.0, bias=4.0, frame_rate_term="p1203")
    new = QualityMapping(w_bpp=1.0, bias=4.0, frame_rate_term="p1203", fps_exponent=0.6)
    for m in (old, new):
        assert np.all(np.diff(_q(m, 1000, 1080, np.array([24.0, 30.0, 48.0, 60.0, 120.0]))) <= 1e-12)
    assert _q(new, 1000, 1080, 60.0) > _q(old, 1000, 1080, 60.0)
    assert _q(new, 1000, 1080, 30.0) == pytest.approx(_q(old, 1000, 1080, 30.0), rel=1e-12)
    assert _q(new, 1000, 1080, 15.0) < _q(new, 1000, 1080, 24.0)
    at = lambda m, f: float(np.ravel(_q(m, 1000, 1080, f))[0])  # noqa: E731
    assert at(new, 15.0) / at(new, 24.0) == pytest.approx(at(old, 15.0) / at(old, 24.0), rel=1e-9)
    lbpp_old = old._inputs(np.array([1000.0]), np.array([1920.0]), np.array([1080.0]), np.array([60.0]), 1080.0)[0]
    lbpp_new = new._inputs(np.array([1000.0]), np.array([1920.0]), np.array([1080.0]), np.array([60.0]), 1080.0)[0]
    assert float((lbpp_new - lbpp_old)[0]) == pytest.approx(0.4, abs=1e-9)    # (1 - 0.6) * log2(60 / 30)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="fps_exponent"):
            QualityMapping(fps_exponent=bad)
    assert fit_quality_mapping(_synthetic_rows(QualityMapping(), 60, 0, 0.0), fps_exponent=0.6).fps_exponent == 0.6


def test_plan_grid_and_best_rung_agreement():
    cells = plan_grid({"a": (1920, 1080, 30.0)}, heights=[1, 0.5], bitrates=[100, 1000], codecs=["h264", "vp9"],
                      fps_fractions=[0.5], fps_heights=[1])
    assert len(cells) == 2 * 2 * 2 + 2
    assert Encode("a", 960, 540, 30.0, "vp9", 400) in cells       # 100 kbps at 960x540 scaled by pixels (x4)
    assert any(c.fps == 15.0 for c in cells) and all(c.width % 2 == 0 and c.height % 2 == 0 for c in cells)
    rows = [{"clip": "a", "codec": "h264", "fps": 30.0, "target_kbps": kb, "height": h, "vmaf": v,
             "bitrate_kbps": kb, "width": h * 16 // 9, "display_height": 1080}
            for kb, h, v in ((100, 540, 40.0), (100, 1080, 30.0), (1000, 540, 70.0), (1000, 1080, 90.0))]
    assert best_rung_agreement(rows, np.array([40.0, 30.0, 70.0, 90.0])) == 1.0
    assert best_rung_agreement(rows, np.array([30.0, 40.0, 70.0, 90.0])) == 0.5
    G = grid_rows(rows)
    assert len(G) == 4 and set(G.source) == {"grid:a"} and G.quality.tolist() == [40.0, 30.0, 70.0, 90.0]


def test_reproduce_quality_mapping_quick(tmp_path):
    """The section on real clips (quick: 2 clips, a few encodes): the table, the what-ifs and the JSON file
    that ``sessions/quality_mapping.json`` is a copy of."""
    from deepqoe.cli import main

    real_data("clips"), real_data("waterloo-sqoe-iv")
    out = tmp_path / "qm"
    assert main(["reproduce", "quality_mapping", "--quick", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["quality_mapping"]
    assert res["n_grid"] > 20 and res["n_waterloo_chunks"] > 1000
    assert set(res["compare"]) == {f"{f} / {w}" for f in ("ceiling", "additive")
                                   for w in ("Waterloo only", "Waterloo + grid")}
    for v in res["compare"].values():
        assert 0.0 <= v["grid"]["best_rung_agreement"] <= 1.0 and v["waterloo_rmse"] > 0
    # the half-rate encodes (measured against the clip at half its rate) size the exponent
    fe = res["frame_rate_exponent"]
    assert fe["n"] > 0 and 0.0 <= fe["exponent"] <= 1.0
    written = json.loads((out / "quality_mapping.json").read_text())
    assert written["mapping"]["fps_exponent"] == pytest.approx(fe["exponent"])
    assert written["quick"] is True and written["form"] == "ceiling"
    m = QualityMapping(**written["mapping"])
    assert np.all(np.diff(_q(m, np.geomspace(100, 20000, 50), 1080)) >= -1e-9)
    assert "Quality mapping" in (out / "report.md").read_text()
    assert (out / "quality_mapping.png").stat().st_size > 10_000


def test_sessions_config_uses_the_builtin_mapping_by_default(builtin):
    from types import SimpleNamespace

    from deepqoe.config import BUILTIN, SessionsDataConfig
    from deepqoe.workflow import _session_quality_mapping

    sc = SessionsDataConfig(datasets=["p1203-open"])
    assert sc.quality_mapping == BUILTIN and sc.quality_mapping_path is None
    assert _session_quality_mapping(SimpleNamespace(sessions=sc, path=None, base_dir=None)) == builtin
    assert SessionsDataConfig(datasets=["p1203-open"], quality_mapping="my/chunks/").quality_mapping_path == "my/chunks/"


@pytest.mark.parametrize("device,given,expected", [
    ("uhdtv", None, 2160), ("UHD TV", None, 2160), ("4k-tv", None, 2160), ("hdtv", None, 1080),
    ("uhdtv", 1440, 1440), ("tv", None, None), (None, None, None)])
def test_a_uhd_device_says_the_display_height(device, given, expected):
    from deepqoe.sessions.session import Session

    d = {"id": "a", "segments": [{"start": 0, "duration": 4, "bitrate_kbps": 3000, "height": 1080}]}
    if device is not None:
        d["device"] = device
    if given is not None:
        d["context"] = {"display_height": given}
    s = Session.from_dict(d)
    assert s.context.get("display_height") == expected
    assert s.device == ("tv" if device else "unknown")


def test_uhd_display_changes_the_score_of_a_lower_rung(builtin):
    """On a UHD TV a 540p stream is upscaled 4x and scores lower than on an HD TV; a 2160p one does not."""
    from deepqoe.predictor import load_predictor
    from deepqoe.sessions.session import Session

    m = load_predictor("streaming").model
    seg = lambda h: [{"start": 4 * i, "duration": 4, "bitrate_kbps": 8000, "height": h, "width": h * 16 // 9,  # noqa: E731
                      "fps": 30, "codec": "h264"} for i in range(5)]
    s = [Session.from_dict({"id": f"{dev}{h}", "device": dev, "segments": seg(h)})
         for dev in ("hdtv", "uhdtv") for h in (540, 2160)]
    hd540, hd2160, uhd540, uhd2160 = m.predict_sessions(s)
    assert uhd540 < hd540 - 0.2 and abs(uhd2160 - hd2160) < 1e-6 and uhd2160 > uhd540


def test_encode_grid_errors_are_one_line(tmp_path):
    from deepqoe.errors import DeepQoEError
    from deepqoe.experiments.quality_mapping import build_grid
    from deepqoe.features.video.encode_ladder import measure

    with pytest.raises(DeepQoEError, match="no clips"):
        build_grid(tmp_path, tmp_path / "work", quick=True, jobs=1)
    bad = tmp_path / "ref.y4m"
    bad.write_bytes(b"not a video")
    with pytest.raises(DeepQoEError, match="FFmpeg failed on c_h264_180"):
        measure(Encode("c", 320, 180, 30.0, "h264", 100), bad, (640, 360, 30.0), 1.0, tmp_path)
    assert not list(tmp_path.glob("*.json"))          # nothing cached for a failed cell


def test_encode_and_measure_one_cell_then_reuse_it(tmp_path):
    """A synthetic 1-s clip: one cell encoded with x264 and measured with VMAF; a second call reads the cache."""
    import subprocess

    from deepqoe.features.video.encode_ladder import measure
    from deepqoe.features.video.full_reference import ffmpeg_exe

    ref = tmp_path / "ref.y4m"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=1",
                    "-pix_fmt", "yuv420p", str(ref)], check=True)
    cell = Encode("synthetic", 160, 90, 30.0, "h264", 150)
    row = measure(cell, ref, (320, 180, 30.0), 1.0, tmp_path)
    assert row["clip"] == "synthetic" and row["height"] == 90 and row["display_height"] == 180
    assert 0 < row["bitrate_kbps"] < 1000 and 0 <= row["vmaf"] <= 100
    ref.write_bytes(b"gone")                           # the cell is cached: no FFmpeg run this time
    assert measure(cell, ref, (320, 180, 30.0), 1.0, tmp_path) == row


def test_extreme_sizes_stay_monotone():
    """Bits per pixel from a sum of logs: a bitrate or frame size so extreme that the quotient would overflow
    or underflow to +-inf is clipped like any other, never read as "no bitrate" (the typical quality): more
    bitrate never lowers the mapped quality, more pixels at the same bitrate never raise it."""
    m = builtin_quality_mapping()
    br = np.array([5e-324, 1e-320, 1e-10, 1.0, 300.0, 3000.0, 1e15, 1e300, 1e308])
    q = m(br, 1280.0, 720.0, 30.0, "h264")
    assert np.all(np.diff(q) >= 0) and q[0] < 5 and q[-1] > 90
    w = np.array([320.0, 1280.0, 1e15, 1e300, 1e308])
    qw = m(1000.0, w, 720.0, 30.0, "h264")
    assert np.all(np.diff(qw) <= 1e-9) and qw[-1] < 5
    assert np.isclose(m(np.nan, 1280.0, 720.0, 30.0, "h264"), m(np.exp2(m.median_log_bpp) * 1280 * 720 * 30 / 1000,
                                                            1280.0, 720.0, 30.0, "h264"))
