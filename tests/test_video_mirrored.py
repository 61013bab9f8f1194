"""Mirrored display matrices (a flip, alone or with a quarter turn: front cameras, ``ffmpeg -display_hflip`` /
``-display_vflip``) in the decoding path, the frame-based extractors and ``stream``.

FFmpeg's autorotation reads the flip from the display matrix (its determinant is negative) and undoes it with
``hflip`` / ``vflip``, or a transpose of the other direction for 90 and 270 degrees. :class:`FrameSampler`
(the decoding path of ``siti``, ``niqe``, ``cnn-frames`` and ``c3d``) applies the same filters, so a tagged
clip gives the very frames of ``ffmpeg -i tagged`` (raw output) and of a copy with the matrix applied to its
pixels (made here by FFmpeg's own autorotation, losslessly); before, the flip was dropped (a flip left to right
was read as a half turn, a flip upside down as nothing, a flip with a quarter turn as the turn alone).
``stream`` says it: ``stream_mirrored``.

The four mirrored matrices (of the eight that map the picture onto itself by quarter turns and flips) are
all here: ``h`` (flip left to right; FFmpeg reports it as 180 degrees), ``v`` (upside down; 0 degrees),
``r90h`` (90 degrees and a flip: the anti-transpose) and ``r90v`` (the other: the transpose).
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

av = pytest.importorskip("av")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

from deepqoe.features.video import decode  # noqa: E402
from deepqoe.features.video.base import extractor_class, make_extractor  # noqa: E402
from deepqoe.features.video.decode import FrameSampler  # noqa: E402
from deepqoe.features.video.synth import write_clip  # noqa: E402

W, H, FPS, N = 128, 96, 25, 16  # stored size; 16 frames: one C3D clip; 96 px: NIQE's least side

#: name -> (FFmpeg's tagging options, rotation as FFmpeg reports it, width and height swapped, the stored
#: frame as shown: the flip in numpy)
CASES = {
    "h": (["-display_hflip"], 180, False, lambda a: a[:, ::-1]),
    "v": (["-display_vflip"], 0, False, lambda a: a[::-1]),
    "r90h": (["-display_rotation", "90", "-display_hflip"], 90, True, lambda a: a[::-1, ::-1].swapaxes(0, 1)),
    "r90v": (["-display_rotation", "90", "-display_vflip"], 270, True, lambda a: a.swapaxes(0, 1)),
}


def _ffmpeg(*args: str) -> bytes:
    return subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args], check=True,
                          stdout=subprocess.PIPE).stdout


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """``base`` (128x96, no display matrix); ``h`` / ``v`` / ``r90h`` / ``r90v``: the same stream tagged with a
    mirrored display matrix (no re-encoding); ``b_h`` ...: FFmpeg's autorotation of those applied to the pixels
    (lossless), no tag."""
    d = tmp_path_factory.mktemp("mirrored")
    c = {"base": write_clip(d / "base.mp4", seconds=N / FPS, width=W, height=H, fps=FPS, crf=20, seed=11)}
    for name, (opts, *_rest) in CASES.items():
        c[name], c[f"b_{name}"] = d / f"{name}.mp4", d / f"b_{name}.mp4"
        _ffmpeg(*opts, "-i", str(c["base"]), "-c", "copy", str(c[name]))
        _ffmpeg("-i", str(c[name]), "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", str(c[f"b_{name}"]))
    return c


def _frames(path, **kw) -> list[np.ndarray]:
    return [a for _t, a in FrameSampler(path, **kw)]


def _matrix(path) -> np.ndarray | None:
    with av.open(str(path)) as c:
        return decode._side_matrix(next(c.decode(video=0)))


def _vec(values: dict) -> np.ndarray:
    return np.array([values[k] for k in sorted(values)])


# -- the clips and what is read of them ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_the_clips_are_mirrored_and_their_sizes_as_shown(clips, name):
    _opts, turn, swapped, _flip = CASES[name]
    shown = (H, W) if swapped else (W, H)
    assert decode.is_mirrored(_matrix(clips[name]))
    assert decode.shown_size(clips[name]) == (*shown, W, H, turn)  # the angle FFmpeg reports
    assert decode.rotation(clips[name]) == turn
    assert decode.display_orientation(clips[name]) == (turn, True)
    assert decode.shown_size(clips[f"b_{name}"]) == (*shown, *shown, 0)  # FFmpeg applied it to the pixels
    assert decode.display_orientation(clips[f"b_{name}"]) == (0, False)
    stored, base = _frames(clips[name], fmt="gray", autorotate=False), _frames(clips["base"], fmt="gray")
    assert len(stored) == N and all(np.array_equal(a, b) for a, b in zip(stored, base))  # a tag, no re-encoding
    assert not np.array_equal(CASES[name][3](base[0]), base[0])  # the pattern is not symmetric


def test_the_filters_are_those_of_ffmpegs_autorotation():
    """fftools' table, for the eight matrices of quarter turns and flips (16.16 fixed point, as stored); a
    matrix that does not mirror gets the filters of the rotation alone (as before this change)."""
    one = 1 << 16

    def m(a, b, c, d):
        return np.array([a * one, b * one, 0, c * one, d * one, 0, 0, 0, 1 << 30])

    table = {  # matrix -> (rotation as FFmpeg reports it, filters FFmpeg inserts)
        (1, 0, 0, 1): (0, ()), (0, -1, 1, 0): (90, (("transpose", "cclock"),)),
        (-1, 0, 0, -1): (180, (("hflip", None), ("vflip", None))), (0, 1, -1, 0): (270, (("transpose", "clock"),)),
        (-1, 0, 0, 1): (180, (("hflip", None),)), (1, 0, 0, -1): (0, (("vflip", None),)),
        (0, -1, -1, 0): (90, (("transpose", "clock_flip"),)), (0, 1, 1, 0): (270, (("transpose", "cclock_flip"),)),
    }
    for k, (turn, filters) in table.items():
        matrix = m(*k)
        assert decode.quarter_turns(decode._matrix_rotation(matrix.astype(np.int32).tobytes())) == turn, k
        assert decode.upright_filters(turn, matrix) == filters, k
        assert decode.is_mirrored(matrix) == (k[0] * k[3] - k[1] * k[2] < 0), k
        if not decode.is_mirrored(matrix):
            assert filters == decode.UPRIGHT_FILTERS.get(turn, ())
    for turn in (0, 90, 180, 270):  # the angle alone (old PyAV, no matrix): the rotation's filters
        assert decode.upright_filters(turn, None) == decode.UPRIGHT_FILTERS.get(turn, ())


# -- the decoding path ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_frames_are_those_of_ffmpeg_itself(clips, name):
    """Every frame is the one ``ffmpeg -i tagged -f rawvideo`` gives (its autorotation), bit for bit, and the
    flip (with the turn) of the stored frame."""
    _opts, _turn, swapped, flip = CASES[name]
    w, h = (H, W) if swapped else (W, H)
    raw = _ffmpeg("-i", str(clips[name]), "-f", "rawvideo", "-pix_fmt", "gray", "-")
    want = np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w)
    got = _frames(clips[name], fmt="gray")
    assert len(got) == len(want) == N
    assert all(a.shape == (h, w) and np.array_equal(a, b) for a, b in zip(got, want))
    stored = _frames(clips[name], fmt="gray", autorotate=False)
    assert all(np.array_equal(flip(s), a) for s, a in zip(stored, got))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("fmt, size", [("rgb24", None), ("rgb24", (224, 224)), ("rgb24", (200, 112)),
                                       ("gray", (64, 80))])
def test_frames_equal_those_of_a_copy_with_the_flip_applied(clips, name, fmt, size):
    """At any size (``size``: width x height as shown), the frames of FFmpeg's autorotated copy, bit for bit:
    the flip and turn come before the scaling."""
    tagged, baked = _frames(clips[name], fmt=fmt, size=size), _frames(clips[f"b_{name}"], fmt=fmt, size=size)
    assert len(tagged) == len(baked) == N
    if size is not None:
        assert tagged[0].shape[:2] == size[::-1]
    assert all(np.array_equal(a, b) for a, b in zip(tagged, baked))


def test_a_frame_the_filters_refuse_is_flipped_after_conversion(clips, monkeypatch):
    def refuse(frame, filters):
        raise ValueError("no filter graph")

    monkeypatch.setattr(decode, "upright_graph", refuse)
    for name in CASES:
        tagged, baked = _frames(clips[name], fmt="rgb24"), _frames(clips[f"b_{name}"], fmt="rgb24")
        assert all(np.array_equal(a, b) for a, b in zip(tagged, baked)), name
    assert _frames(clips["r90h"], fmt="rgb24", size=(200, 112))[0].shape == (112, 200, 3)


def test_chroma_a_transpose_cannot_keep_is_flipped_after_conversion(clips, tmp_path):
    """4:2:2 cannot be transposed as it is (FFmpeg's filters would convert it first): it is converted, then
    turned and flipped; a flip alone keeps it, so FFmpeg's filters do it."""
    p422 = tmp_path / "p422.mp4"
    _ffmpeg("-i", str(clips["base"]), "-c:v", "libx264", "-pix_fmt", "yuv422p", "-preset", "ultrafast", str(p422))
    for name in ("r90h", "h"):
        tagged = tmp_path / f"p422_{name}.mp4"
        _ffmpeg(*CASES[name][0], "-i", str(p422), "-c", "copy", str(tagged))
        for fmt in ("rgb24", "gray"):
            stored = _frames(tagged, fmt=fmt, autorotate=False)
            shown = _frames(tagged, fmt=fmt)
            assert len(shown) == N and all(np.array_equal(CASES[name][3](s), a) for s, a in zip(stored, shown))


# -- the extractors -------------------------------------------------------------------------------------
def test_cnn_frames_of_a_mirrored_clip_equal_those_of_its_unmirrored_copy(clips):
    cnn = make_extractor("cnn-frames", {"fps": 5, "batch_size": 4})
    base = cnn.extract(clips["base"]).values  # what the tagged clips gave before: their pixels as stored
    for name in ("h", "r90v"):
        a, b = cnn.extract(clips[name]).values, cnn.extract(clips[f"b_{name}"]).values
        assert list(a) == list(b)
        np.testing.assert_allclose(_vec(a), _vec(b), rtol=1e-5, atol=1e-6)
        assert np.abs(_vec(a) - _vec(base)).max() > 1e-3  # the network is not invariant to a flip


def test_c3d_of_a_mirrored_clip_equals_its_unmirrored_copy(clips, tmp_path):
    pytest.importorskip("torch")
    from deepqoe.features.video.c3d import save_random_weights

    ex = make_extractor("c3d", {"weights": save_random_weights(tmp_path / "w.safetensors"), "max_clips": 1})
    a, b = ex.extract(clips["r90h"]).values, ex.extract(clips["b_r90h"]).values
    np.testing.assert_allclose(_vec(a), _vec(b), rtol=1e-5, atol=1e-6)


def test_niqe_measures_mirrored_clips_unmirrored(clips):
    pytest.importorskip("skvideo")
    ex = make_extractor("niqe", {"fps": 25})
    assert ex.frame_size(clips["r90v"]) == (H, W) and ex.frame_size(clips["h"]) == (W, H)
    for name in ("h", "r90v"):
        assert ex.extract(clips[name]).values == ex.extract(clips[f"b_{name}"]).values
    assert ex.extract(clips["h"]).values != ex.extract(clips["base"]).values  # NIQE is not invariant to a flip


def test_siti_is_the_same_flipped_or_not(clips):
    """SI (Sobel magnitude) and TI (frame differences) do not depend on a flip: ``siti`` keeps its version (as
    for a quarter turn): the values of the stored frames within float rounding."""
    ex = make_extractor("siti", {"fps": 0})
    base = ex.extract(clips["base"])
    for name in CASES:
        got = ex.extract(clips[name])
        assert got.values == ex.extract(clips[f"b_{name}"]).values
        for k in ("si", "ti"):
            np.testing.assert_allclose(got.per_frame[k], base.per_frame[k], rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", ["base", *CASES, "b_h", "b_r90h"])
def test_stream_says_the_flip(clips, name):
    cls = extractor_class("stream")
    v = make_extractor("stream").extract(clips[name]).values
    assert tuple(v) == cls.columns and "stream_mirrored" in cls.columns
    assert all(isinstance(x, float) for x in v.values())
    w, h, _, _, turn = decode.shown_size(clips[name])
    assert (v["stream_width"], v["stream_height"], v["stream_rotation"]) == (w, h, turn)
    assert v["stream_mirrored"] == (1.0 if name in CASES else 0.0)
    if name in CASES:
        assert v["stream_rotation"] == CASES[name][1]


def test_versions_of_the_extractors_whose_output_changed():
    """Cached results of mirrored videos (computed on mirrored frames) must not be reused: the version is part
    of the cache key. ``siti`` does not change (a flip leaves SI and TI as they are)."""
    for name, least in (("cnn-frames", 3), ("c3d", 3), ("niqe", 3), ("stream", 6)):
        assert int(extractor_class(name).version) >= least, name
    assert extractor_class("siti").version == "2"
