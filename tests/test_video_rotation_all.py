"""Rotated (phone) videos in every frame-based extractor, and in ``stream``.

Frames of a video with a display rotation are turned upright by :class:`FrameSampler` (the decoding path of
``siti``, ``niqe``, ``cnn-frames`` and ``c3d``) before they are scaled, with the filters of FFmpeg's
autorotation, so a tagged clip gives the very frames, and features, of a copy with the rotation applied to
its pixels (made here by FFmpeg's own autorotation, losslessly). ``stream`` reports sizes as shown and the
rotation. Videos without a rotation give what the code before this change gave: the expected values are
computed here by decoding every frame with PyAV directly (no rotation step) and applying each extractor's
formula, and must be equal to the last bit.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

av = pytest.importorskip("av")

from deepqoe.cli import main  # noqa: E402
from deepqoe.features.video import decode  # noqa: E402
from deepqoe.features.video import full_reference as fr  # noqa: E402
from deepqoe.features.video.base import extractor_class, make_extractor  # noqa: E402
from deepqoe.features.video.decode import FrameSampler  # noqa: E402
from deepqoe.features.video.synth import write_clip  # noqa: E402

W, H, FPS, N = 128, 96, 25, 20  # stored size; 20 frames: one C3D clip of 16


def _ffmpeg(*args: str) -> None:
    subprocess.run([fr.ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """``base`` (128x96, no rotation); ``r90`` / ``r180`` / ``r270``: the same stream with a display rotation;
    ``b90`` / ``b180`` / ``b270``: FFmpeg's autorotation of those applied to the pixels (lossless), no tag."""
    d = tmp_path_factory.mktemp("rotation_all")
    c = {"base": write_clip(d / "base.mp4", seconds=N / FPS, width=W, height=H, fps=FPS, crf=20, seed=7)}
    for deg in (90, 180, 270):
        c[f"r{deg}"] = d / f"r{deg}.mp4"
        _ffmpeg("-display_rotation", str(deg), "-i", str(c["base"]), "-c", "copy", str(c[f"r{deg}"]))
        c[f"b{deg}"] = d / f"b{deg}.mp4"
        _ffmpeg("-i", str(c[f"r{deg}"]), "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", str(c[f"b{deg}"]))
    return c


def _raw(path, fmt: str, size=None) -> list[np.ndarray]:
    """Every frame as the code before autorotation converted it: PyAV's ``to_ndarray`` in stored orientation."""
    kw = {} if size is None else {"width": size[0], "height": size[1], "interpolation": "BILINEAR"}
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt, **kw) for f in c.decode(video=0)]


def _frames(path, **kw) -> list[np.ndarray]:
    return [a for _t, a in FrameSampler(path, **kw)]


def _vec(values: dict) -> np.ndarray:
    return np.array([values[k] for k in sorted(values)])


# -- the decoding path ----------------------------------------------------------------------------------
def test_the_clips_are_what_they_claim(clips):
    assert fr.shown_size(clips["base"]) == (W, H, W, H, 0)
    for deg in (90, 180, 270):
        shown = (H, W) if deg != 180 else (W, H)
        assert fr.shown_size(clips[f"r{deg}"]) == (*shown, W, H, deg)
        assert fr.shown_size(clips[f"b{deg}"]) == (*shown, *shown, 0)  # FFmpeg turned the pixels
    assert all(np.array_equal(a, b) for a, b in zip(_raw(clips["r90"], "gray"), _raw(clips["base"], "gray")))


@pytest.mark.parametrize("deg", [90, 180, 270])
@pytest.mark.parametrize("fmt, size", [("gray", None), ("rgb24", None), ("rgb24", (224, 224)), ("rgb24", (200, 112)),
                                       ("gray", (64, 80))])
def test_frames_are_turned_upright_as_ffmpeg_turns_them(clips, deg, fmt, size):
    """Every frame of the tagged clip is the frame of FFmpeg's autorotated copy, bit for bit, at any size
    (``size`` is width x height as shown); in stored orientation it is a quarter turn of it."""
    rotated, baked = _frames(clips[f"r{deg}"], fmt=fmt, size=size), _frames(clips[f"b{deg}"], fmt=fmt, size=size)
    assert len(rotated) == len(baked) == N
    shown = (H, W) if deg != 180 else (W, H)  # width x height
    want = (shown if size is None else size)[::-1]  # rows x columns
    for a, b in zip(rotated, baked):
        assert a.shape[:2] == want
        assert np.array_equal(a, b)
    if size is None:  # unscaled: the quarter turn of the stored frame (np.rot90 counter-clockwise)
        stored = _frames(clips[f"r{deg}"], fmt=fmt, autorotate=False)
        assert all(np.array_equal(np.rot90(s, deg // 90), a) for s, a in zip(stored, rotated))


@pytest.mark.parametrize("fmt, size", [("gray", None), ("rgb24", None), ("rgb24", (224, 224)), ("gray", (40, 30))])
def test_frames_without_rotation_are_untouched(clips, fmt, size):
    """A video without a rotation: the arrays of the code before (PyAV's to_ndarray), bit for bit."""
    got = _frames(clips["base"], fmt=fmt, size=size)
    want = _raw(clips["base"], fmt, size)
    assert len(got) == len(want) == N
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got, want))


def test_with_previous_turns_both_frames(clips):
    got = list(FrameSampler(clips["r90"], fps=5, fmt="gray", with_previous=True))
    want = list(FrameSampler(clips["b90"], fps=5, fmt="gray", with_previous=True))
    assert len(got) == len(want) == 4
    for (_, a, pa), (_, b, pb) in zip(got, want):
        assert np.array_equal(a, b) and a.shape == (W, H)
        assert (pa is None and pb is None) or np.array_equal(pa, pb)


def test_a_frame_the_filters_refuse_is_turned_after_conversion(clips, monkeypatch):
    def refuse(frame, turn):
        raise ValueError("no filter graph")

    monkeypatch.setattr(decode, "upright_graph", refuse)
    assert all(np.array_equal(a, b) for a, b in zip(_frames(clips["r270"], fmt="rgb24"), _frames(clips["b270"], fmt="rgb24")))
    scaled = _frames(clips["r90"], fmt="rgb24", size=(200, 112))
    assert scaled[0].shape == (112, 200, 3)


def test_chroma_the_filters_cannot_turn_is_turned_after_conversion(clips, tmp_path):
    """4:2:2 (half the chroma columns, all its rows) cannot be transposed as it is: FFmpeg's filters would
    convert it first (to packed 4:4:4, losing its colour range); it is converted, then turned."""
    p422, tagged = tmp_path / "p422.mp4", tmp_path / "p422_r90.mp4"
    _ffmpeg("-i", str(clips["base"]), "-c:v", "libx264", "-pix_fmt", "yuv422p", "-preset", "ultrafast", str(p422))
    _ffmpeg("-display_rotation", "90", "-i", str(p422), "-c", "copy", str(tagged))
    for fmt in ("rgb24", "gray"):
        stored = _frames(tagged, fmt=fmt, autorotate=False)
        turned = _frames(tagged, fmt=fmt)
        assert len(turned) == N and all(np.array_equal(np.rot90(s), a) for s, a in zip(stored, turned))
    assert _frames(tagged, fmt="rgb24", size=(224, 112))[0].shape == (112, 224, 3)


# -- the extractors -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn():
    return make_extractor("cnn-frames", {"fps": 25, "batch_size": 20})  # every frame of the clips


@pytest.fixture(scope="module")
def cnn_base(clips, cnn):
    return cnn.extract(clips["base"]).values


def test_cnn_frames_of_a_rotated_clip_equal_those_of_its_upright_copy(clips, cnn, cnn_base):
    a = cnn.extract(clips["r90"]).values
    b = cnn.extract(clips["b90"]).values
    stored = cnn_base  # what the tagged clip gave before: its pixels as stored
    assert list(a) == list(b) and len(a) == 2560
    np.testing.assert_allclose(_vec(a), _vec(b), rtol=1e-5, atol=1e-6)
    assert np.abs(_vec(a) - _vec(stored)).max() > 0.05  # the network saw it sideways before


def test_cnn_frames_without_rotation_are_as_before(clips, cnn, cnn_base):
    got = cnn_base
    f = cnn.embed_frames(_raw(clips["base"], "rgb24", (224, 224)))
    mean, std = f.mean(axis=0), f.std(axis=0)
    assert [got[f"cnn_mean_{i:04d}"] for i in range(1280)] == [float(v) for v in mean]
    assert [got[f"cnn_std_{i:04d}"] for i in range(1280)] == [float(v) for v in std]


def test_c3d_of_a_rotated_clip_equals_its_upright_copy_and_is_as_before_without_rotation(clips, tmp_path):
    import torch

    from deepqoe.features.video.c3d import CLIP_LENGTH, clip_starts, preprocess_clip, save_random_weights

    ex = make_extractor("c3d", {"weights": save_random_weights(tmp_path / "w.safetensors"), "max_clips": 1})
    a, b = ex.extract(clips["r90"]).values, ex.extract(clips["b90"]).values
    np.testing.assert_allclose(_vec(a), _vec(b), rtol=1e-5, atol=1e-6)
    got = ex.extract(clips["base"]).values
    assert np.abs(_vec(a) - _vec(got)).max() > 0
    (start,) = clip_starts(N, 1)
    frames = _raw(clips["base"], "rgb24", (200, 112))[start:start + CLIP_LENGTH]
    with torch.inference_mode():
        want = ex.model(torch.from_numpy(preprocess_clip(frames)[None])).numpy().astype(np.float64)[0]
    assert [got[f"c3d_{i:04d}"] for i in range(4096)] == [float(v) for v in want]


def test_siti_is_the_same_turned_or_not(clips):
    """SI (Sobel magnitude, border excluded) and TI (frame differences) do not depend on a quarter turn:
    ``siti`` keeps its version. The upright frames give the values of the stored ones within float rounding
    (the same numbers, summed in another order: at most a unit in the last place apart)."""
    from deepqoe.features.video.siti import diff_std, sobel_std

    ex = make_extractor("siti", {"fps": 0})
    base = ex.extract(clips["base"])
    y = _raw(clips["base"], "gray")
    assert base.per_frame["si"] == [sobel_std(f) for f in y]  # as before, to the last bit
    assert base.per_frame["ti"] == [diff_std(f, p) for f, p in zip(y[1:], y[:-1])]
    for deg in (90, 180, 270):
        turned = ex.extract(clips[f"r{deg}"])
        assert turned.values == ex.extract(clips[f"b{deg}"]).values
        for k in ("si", "ti"):
            np.testing.assert_allclose(turned.per_frame[k], base.per_frame[k], rtol=1e-13, atol=0)
    assert extractor_class("siti").version == "2"


def test_niqe_measures_rotated_clips_upright(clips):
    pytest.importorskip("skvideo")
    from deepqoe.features.video.niqe import niqe_frame

    ex = make_extractor("niqe", {"fps": 25})
    assert ex.frame_size(clips["r90"]) == (H, W) and ex.frame_size(clips["base"]) == (W, H)
    a, b = ex.extract(clips["r90"]).values, ex.extract(clips["b90"]).values
    assert a == b
    got = ex.extract(clips["base"])
    assert got.per_frame["niqe"] == [niqe_frame(y) for y in _raw(clips["base"], "gray", (W, H))]  # as before
    assert a != got.values  # NIQE is not invariant to a quarter turn: the version changed


def test_niqe_too_small_names_the_size_as_shown(tmp_path):
    pytest.importorskip("skvideo")
    from deepqoe.features.video.decode import VideoError

    small = write_clip(tmp_path / "s.mp4", seconds=0.2, width=96, height=80, fps=25, crf=20)
    tagged = tmp_path / "s_r90.mp4"
    _ffmpeg("-display_rotation", "90", "-i", str(small), "-c", "copy", str(tagged))
    with pytest.raises(VideoError) as ei:
        make_extractor("niqe", {}).extract(tagged)
    assert "the video is 80x96 pixels as shown (stored 96x80, rotated 90 degrees); NIQE needs" in ei.value.message


@pytest.mark.parametrize("name", ["base", "r90", "r180", "r270", "b90"])
def test_stream_sizes_as_shown_and_rotation(clips, name):
    cls = extractor_class("stream")
    v = make_extractor("stream").extract(clips[name]).values
    assert tuple(v) == cls.columns and all(isinstance(x, float) for x in v.values())
    shown_w, shown_h, _, _, turn = fr.shown_size(clips[name])
    assert (v["stream_width"], v["stream_height"], v["stream_rotation"]) == (shown_w, shown_h, turn)
    assert v["stream_pixels"] == W * H
    if name in ("r90", "r270"):
        assert (v["stream_width"], v["stream_height"]) == (H, W)  # portrait, as shown; stored landscape
    if name == "r90":
        b = make_extractor("stream").extract(clips["b90"]).values
        assert (v["stream_width"], v["stream_height"]) == (b["stream_width"], b["stream_height"])
        assert b["stream_rotation"] == 0.0 and v["stream_rotation"] == 90.0


def test_stream_without_rotation_is_as_before(clips):
    info = decode.probe(clips["base"])
    v = make_extractor("stream").extract(clips["base"]).values
    assert (v["stream_width"], v["stream_height"], v["stream_rotation"]) == (info.width, info.height, 0.0)
    assert v["stream_bitrate_kbps"] == info.bitrate / 1000 and v["stream_fps"] == info.fps


def test_versions_of_the_extractors_whose_output_changed():
    """Cached results of rotated videos must not be reused: the version is part of the cache key."""
    for name, least in (("cnn-frames", 2), ("c3d", 2), ("niqe", 2), ("stream", 4)):
        assert int(extractor_class(name).version) >= least, name


def test_extract_writes_the_rotation_column(clips, tmp_path, monkeypatch, capsys):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    lst = tmp_path / "list.csv"
    pd.DataFrame({"id": ["tagged", "baked"], "path": [str(clips["r90"]), str(clips["b90"])]}).to_csv(lst, index=False)
    code = main(["extract", str(lst), "-e", "stream,siti", "--no-cache", "--no-progress", "-o",
                 str(tmp_path / "f.parquet")])
    err = capsys.readouterr().err
    assert code == 0, err
    df = pd.read_parquet(tmp_path / "f.parquet").set_index("id")
    assert df.loc["tagged", "stream_rotation"] == 90 and df.loc["baked", "stream_rotation"] == 0
    assert df.loc["tagged", "stream_width"] == df.loc["baked", "stream_width"] == H
    assert df.loc["tagged", "siti_si_max"] == df.loc["baked", "siti_si_max"]
