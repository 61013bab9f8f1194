"""NIQE on small frames (QCIF and smaller), and full-reference scores of rotated (phone) videos.

NIQE: scikit-video's ``niqe`` refuses frames under 194 pixels a side (the extractor refused under 192 and
crashed with an AssertionError at 192 / 193). ``niqe_frame`` gives scikit-video's values where it applies
and covers a side of 96 to 191 pixels with two overlapping 96-pixel patches; smaller frames are refused in
one line naming the file, the size and the minimum.

Full reference: FFmpeg turns rotated inputs upright as it decodes them; sizes are taken as shown, so a
transcode that applied the rotation to its pixels is compared with its tagged original, and a video shown
in portrait against a reference shown in landscape is refused before FFmpeg runs, in one line naming both.
"""

from __future__ import annotations

import subprocess
import warnings

import numpy as np
import pytest

pytest.importorskip("av")

from deepqoe.cli import main  # noqa: E402
from deepqoe.errors import DeepQoEError  # noqa: E402
from deepqoe.features.video import full_reference as fr  # noqa: E402
from deepqoe.features.video.base import make_extractor  # noqa: E402
from deepqoe.features.video import decode  # noqa: E402
from deepqoe.features.video.decode import VideoError  # noqa: E402
from deepqoe.features.video.synth import synth_frames, write_clip  # noqa: E402


def _lines(err: str) -> list[str]:
    return [ln for ln in err.strip().splitlines() if ln.strip()]


def _luma(w: int, h: int, seed: int = 2) -> np.ndarray:
    rgb = next(iter(synth_frames(w, h, 1, seed=seed))).astype(np.float64)
    return np.round(rgb @ np.array([0.299, 0.587, 0.114]))


# -- NIQE on small frames ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def niqe():
    pytest.importorskip("skvideo")
    from deepqoe.features.video import niqe

    return niqe


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("niqe_small")
    sizes = {"qcif": (176, 144), "qqvga": (160, 120), "sqcif": (128, 96), "sq192": (192, 192),
             "tiny": (80, 60), "one_patch": (96, 96)}
    return d, {k: write_clip(d / f"{k}.mp4", seconds=0.4, width=w, height=h, fps=25, crf=20, seed=3)
               for k, (w, h) in sizes.items()}


@pytest.mark.parametrize("w, h", [(194, 200), (320, 240), (300, 450), (640, 360)])
def test_niqe_frame_is_scikit_video_where_scikit_video_applies(niqe, w, h):
    """Frames of 194 px a side or more: the very value of scikit-video (cached results stay valid)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from skvideo.measure import niqe as skvideo_niqe
    y = _luma(w, h)
    assert niqe.niqe_frame(y) == float(skvideo_niqe(y[None])[0])


def test_patch_layout(niqe):
    assert niqe.patch_starts(300) == ([0, 96, 192], 288)  # tiled, the rest cropped (scikit-video)
    assert niqe.patch_starts(192) == ([0, 96], 192)
    assert niqe.patch_starts(176) == ([0, 80], 176)  # two overlapping patches cover the side
    assert niqe.patch_starts(144) == ([0, 48], 144)
    assert niqe.patch_starts(96) == ([0], 96)
    assert niqe.patch_starts(94) == ([], 94)
    assert niqe.too_small(176, 144) is None and niqe.too_small(128, 96) is None
    assert niqe.too_small(96, 96) and niqe.too_small(94, 400) and niqe.too_small(400, 80)


def test_small_frames_are_measured_on_the_whole_frame(niqe):
    y = _luma(176, 144)
    a = niqe.niqe_frame(y)
    assert np.isfinite(a) and a > 0 and niqe.niqe_frame(y.copy()) == a
    corner = y.copy()  # the corner a crop to 96 x 96 would drop
    corner[-40:, -60:] = np.random.default_rng(0).integers(0, 256, (40, 60))
    assert niqe.niqe_frame(corner) != a
    with pytest.raises(ValueError, match="80x60 are too small"):
        niqe.niqe_frame(_luma(80, 60))


@pytest.mark.parametrize("which", ["qcif", "qqvga", "sqcif", "sq192"])
def test_niqe_extractor_measures_small_clips(niqe, small, which):
    f = make_extractor("niqe", {"fps": 10}).extract(small[1][which])
    assert set(f.values) == {"niqe_mean", "niqe_median", "niqe_max"}
    assert all(np.isfinite(v) and v > 0 for v in f.values.values())
    assert len(f.per_frame["niqe"]) == 4


@pytest.mark.parametrize("which, message", [
    ("tiny", "the video is 80x60 pixels; NIQE needs frames at least 96 pixels wide and high"),
    ("one_patch", "the video is 96x96 pixels; NIQE needs frames at least 96 pixels wide and high (its patch "
                  "size) that hold two patches at least")])
def test_too_small_for_niqe_is_one_line_with_size_and_minimum(niqe, small, which, message):
    path = small[1][which]
    with pytest.raises(VideoError) as ei:
        make_extractor("niqe", {}).extract(path)
    e = ei.value
    assert e.file == str(path) and "\n" not in str(e)
    assert e.message.startswith("frames too small for NIQE: ") and message in e.message


def test_niqe_max_side_is_checked_and_small_scaled_frames_work(niqe, small):
    with pytest.raises(DeepQoEError, match="96 or more") as ei:
        make_extractor("niqe", {"max_side": 50})
    assert ei.value.field == "max_side"
    f = make_extractor("niqe", {"max_side": 120, "fps": 10}).extract(small[1]["sq192"])  # measured at 120x120
    assert np.isfinite(f.values["niqe_mean"])
    f = make_extractor("niqe", {"max_side": 96, "fps": 10}).extract(small[1]["qcif"])  # at 118x96
    assert np.isfinite(f.values["niqe_mean"])
    with pytest.raises(VideoError, match=r"the video is 192x192 \(measured at 96x96\) pixels; .*two patches"):
        make_extractor("niqe", {"max_side": 96}).extract(small[1]["sq192"])


def test_extract_small_clips_with_niqe_and_siti(niqe, small, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "v"
    d.mkdir()
    for k in ("qcif", "qqvga", "tiny"):
        (d / f"{k}.mp4").write_bytes(small[1][k].read_bytes())
    code = main(["extract", str(d), "-e", "niqe,siti", "--no-cache", "--no-progress", "-o",
                 str(tmp_path / "f.parquet")])
    err = capsys.readouterr().err
    assert code == 3, err  # partial: the QCIF and QQVGA clips are done
    assert "Traceback" not in err and "every video failed" not in err
    line = [ln for ln in _lines(err) if ln.strip().startswith("tiny:")]
    assert len(line) == 1 and "80x60" in line[0] and "at least 96 pixels" in line[0], err
    import pandas as pd

    df = pd.read_parquet(tmp_path / "f.parquet").set_index("id")
    # the tiny clip keeps its row (siti succeeded on it), its niqe columns empty
    assert sorted(df.index) == ["qcif", "qqvga", "tiny"] and df.loc[["qcif", "qqvga"], "niqe_mean"].notna().all()
    assert df.loc["tiny", ["niqe_mean", "niqe_median", "niqe_max"]].isna().all() and df.loc["tiny", "siti_si_mean"] > 0


# -- rotated videos in the full-reference extractor -----------------------------------------------------
def _ffmpeg(*args: str) -> None:
    subprocess.run([fr.ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    """96x64 clips: ref / dist without rotation, with a display rotation, and with it applied to the pixels."""
    d = tmp_path_factory.mktemp("rotated")
    c = {"ref": write_clip(d / "ref.mp4", seconds=0.4, width=96, height=64, fps=25, crf=8, seed=1),
         "dist": write_clip(d / "dist.mp4", seconds=0.4, width=96, height=64, fps=25, crf=30, seed=1)}
    for name in ("ref", "dist"):
        for deg in (90, 270, 180):
            c[f"{name}_r{deg}"] = d / f"{name}_r{deg}.mp4"
            _ffmpeg("-display_rotation", str(deg), "-i", str(c[name]), "-c", "copy", str(c[f"{name}_r{deg}"]))
        c[f"{name}_baked"] = d / f"{name}_baked.mp4"  # the rotation applied to the pixels, losslessly; no tag
        _ffmpeg("-i", str(c[f"{name}_r90"]), "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast",
                str(c[f"{name}_baked"]))
    return c


def _no_ffmpeg(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError(f"FFmpeg was run: {a[0] if a else k}")

    monkeypatch.setattr(fr.subprocess, "run", refuse)


def test_rotation_and_shown_size(rotated):
    assert fr.shown_size(rotated["ref"]) == (96, 64, 96, 64, 0)
    assert fr.shown_size(rotated["ref_r90"]) == (64, 96, 96, 64, 90)
    assert fr.shown_size(rotated["ref_r270"]) == (64, 96, 96, 64, 270)
    assert fr.shown_size(rotated["ref_r180"]) == (96, 64, 96, 64, 180)
    assert fr.shown_size(rotated["ref_baked"]) == (64, 96, 64, 96, 0)


def test_display_matrix_fallback_matches_pyav(rotated):
    """The side-data parser (for PyAV without ``frame.rotation``) reads what PyAV reads."""
    import av

    for key in ("ref_r90", "ref_r270", "ref_r180"):
        with av.open(str(rotated[key])) as c:
            frame = next(c.decode(video=0))
            sd = [s for s in decode.side_data_items(frame) if "DISPLAYMATRIX" in str(s.type).upper()]
            assert len(sd) == 1
            assert decode.quarter_turns(decode._matrix_rotation(bytes(sd[0]))) == decode.quarter_turns(frame.rotation) \
                == int(key[5:])
    for theta, turn in ((45, 0), (-90, 270), (89.5, 90), (359.6, 0), (-180, 180), (float("nan"), 0)):
        assert decode.quarter_turns(theta) == turn


def _scores(dist, ref):
    return fr.FullReferenceExtractor(threads=1).extract(dist, ref).values


@pytest.fixture(scope="module")
def upright(rotated):
    return _scores(rotated["dist"], rotated["ref"])


def test_both_rotated_are_compared_upright(rotated, upright):
    v = _scores(rotated["dist_r90"], rotated["ref_r90"])
    assert v["fr_frames"] == upright["fr_frames"] == 10
    assert v["fr_psnr_y_mean"] == pytest.approx(upright["fr_psnr_y_mean"], abs=1e-6)  # the same pixels
    assert v["fr_ssim_mean"] == pytest.approx(upright["fr_ssim_mean"], abs=2e-3)
    assert v["fr_vmaf_mean"] == pytest.approx(upright["fr_vmaf_mean"], abs=3)  # VMAF is not rotation-invariant


@pytest.mark.parametrize("dist, ref", [("dist_baked", "ref_r90"), ("dist_r90", "ref_baked")])
def test_rotation_applied_to_the_pixels_matches_the_tagged_original(rotated, dist, ref):
    """A transcode that turned the pixels and dropped the tag is compared with its tagged original, unscaled."""
    ex = fr.FullReferenceExtractor(threads=1)
    cmd = ex.command(rotated[dist], rotated[ref], {"vmaf": "v", "psnr": "p", "ssim": "s"})
    assert "scale=" not in cmd[cmd.index("-filter_complex") + 1]
    assert cmd.count("-autorotate") == 2
    tagged = _scores(rotated["dist_r90"], rotated["ref_r90"])
    v = _scores(rotated[dist], rotated[ref])
    assert v["fr_psnr_y_mean"] == pytest.approx(tagged["fr_psnr_y_mean"], abs=1e-6)
    assert v["fr_vmaf_mean"] == pytest.approx(tagged["fr_vmaf_mean"], abs=1e-3)


@pytest.mark.parametrize("dist, ref, shown", [
    ("dist_r90", "ref", "the video {d} is 96x64 rotated 90 degrees on display, shown 64x96, portrait; its "
                        "reference {r} is 96x64 (no rotation), landscape"),
    ("dist", "ref_r270", "the video {d} is 96x64 (no rotation), landscape; its reference {r} is 96x64 rotated "
                         "270 degrees on display, shown 64x96, portrait"),
    ("dist_baked", "ref", "the video {d} is 64x96 (no rotation), portrait; its reference {r} is 96x64 (no "
                          "rotation), landscape")])
def test_orientation_mismatch_is_one_line_naming_both_files(rotated, monkeypatch, dist, ref, shown):
    _no_ffmpeg(monkeypatch)
    with pytest.raises(VideoError) as ei:
        fr.FullReferenceExtractor(threads=1).extract(rotated[dist], rotated[ref])
    e = ei.value
    assert e.file == str(rotated[dist]) and "\n" not in str(e)
    assert e.message.startswith("the video and its reference are shown in different orientations: ")
    assert shown.format(d=rotated[dist], r=rotated[ref]) in e.message


def test_extract_rotated_pairs(rotated, tmp_path, monkeypatch, capsys):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    pairs = {"both": ("dist_r90", "ref_r90"), "baked": ("dist_baked", "ref_r90"), "lost": ("dist_r90", "ref")}
    lst = tmp_path / "list.csv"
    pd.DataFrame({"id": list(pairs), "path": [str(rotated[d]) for d, _ in pairs.values()],
                  "reference": [str(rotated[r]) for _, r in pairs.values()]}).to_csv(lst, index=False)
    code = main(["extract", str(lst), "-e", "full-reference", "--threads", "1", "--no-cache", "--no-progress",
                 "-o", str(tmp_path / "f.parquet")])
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err, err
    line = [ln for ln in _lines(err) if ln.strip().startswith("lost:")]
    assert len(line) == 1 and "different orientations" in line[0] and str(rotated["ref"]) in line[0], err
    df = pd.read_parquet(tmp_path / "f.parquet").set_index("id")
    assert sorted(df.index) == ["baked", "both"]
    assert df.loc["baked", "fr_psnr_y_mean"] == pytest.approx(df.loc["both", "fr_psnr_y_mean"], abs=1e-6)


def test_a_filter_complaint_is_preferred_to_ffmpegs_closing_line():
    err = ("[Parsed_libvmaf_8 @ 0x1] input width must match.\n[fc#0 @ 0x2] Error reinitializing filters!\n"
           "[out#0/null @ 0x3] Nothing was written into output file, because at least one of its streams "
           "received no packets.\n")
    assert fr._specific_failure(subprocess.CompletedProcess([], 234, "", err)) == "input width must match."
    assert fr._specific_failure(subprocess.CompletedProcess([], 1, "", "x\nInvalid data\n")) == "Invalid data"
