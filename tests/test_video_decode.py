"""Decoding and frame sampling (deepqoe.features.video.decode) on clips encoded by the test."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")

from deepqoe.errors import DeepQoEError  # noqa: E402
from deepqoe.features.video.decode import FrameSampler, VideoError, count_frames, probe  # noqa: E402
from deepqoe.features.video.synth import write_clip  # noqa: E402


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode")
    return {
        "h264": write_clip(d / "h264.mp4", seconds=2, width=160, height=120, fps=25, crf=28),
        "gop": write_clip(d / "gop.mp4", seconds=4, width=160, height=120, fps=25, crf=28, gop=10),
        "hevc": write_clip(d / "hevc.mp4", seconds=1, width=160, height=128, fps=25, codec="hevc", crf=30),
        "vp9": write_clip(d / "vp9.webm", seconds=1, width=160, height=120, fps=25, codec="vp9", crf=40),
        "av1": write_clip(d / "av1.mkv", seconds=1, width=160, height=128, fps=25, codec="av1", crf=45),
        "dir": d,
    }


def test_probe_reads_stream_metadata(clips):
    info = probe(clips["h264"])
    assert (info.codec, info.width, info.height, info.fps) == ("h264", 160, 120, 25.0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.frames == 50
    assert info.bitrate > 0


@pytest.mark.parametrize("codec", ["hevc", "vp9", "av1"])
def test_other_codecs_decode(clips, codec):
    info = probe(clips[codec])
    assert info.codec == codec
    frames = list(FrameSampler(clips[codec], fps=None, fmt="gray"))
    assert len(frames) == 25
    assert frames[0][1].shape == (info.height, info.width)


def test_sampling_rate_and_resize(clips):
    s = FrameSampler(clips["h264"], fps=2, size=(64, 48))
    out = list(s)
    times = [t for t, _ in out]
    assert len(out) == 4
    assert times[0] == 0.0
    # the first frame at or after each 0.5 s step
    assert np.allclose(times, [0.0, 0.52, 1.0, 1.52], atol=1e-6)
    assert out[0][1].shape == (48, 64, 3) and out[0][1].dtype == np.uint8
    assert s.stats.packets == 50 and s.stats.sampled == 4 and s.stats.decoded <= 50


def sample_by_hand(path, fps, fmt="gray"):
    """Decode every frame, then pick the first frame at or after each 1/fps step (and its predecessor)."""
    frames = list(FrameSampler(path, fmt=fmt))
    period, target, out = 1.0 / fps, 0.0, []
    for i, (t, a) in enumerate(frames):
        if t + 1e-6 >= target:
            out.append((t, a, frames[i - 1][1] if i else None))
            target = (np.floor((t + 1e-6) / period) + 1) * period
    return out


def test_gop_skipping_gives_the_same_frames_as_full_decoding(clips):
    fast = FrameSampler(clips["gop"], fps=0.5, fmt="gray")
    a = list(fast)
    b = sample_by_hand(clips["gop"], 0.5)
    assert fast.stats.skipped_gops > 0 and fast.stats.decoded < 100
    assert [t for t, *_ in a] == [t for t, *_ in b] == [0.0, 2.0]
    for (_, x), (_, y, _p) in zip(a, b):
        assert np.array_equal(x, y)


def test_every_frame_and_max_frames(clips):
    assert len(list(FrameSampler(clips["h264"]))) == 50
    assert len(list(FrameSampler(clips["h264"], max_frames=7))) == 7
    assert count_frames(clips["h264"]).decoded == 50


def test_bad_files_raise_video_errors(clips, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("this is not a video\n" * 50)
    data = clips["h264"].read_bytes()
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError, match="empty"):
        probe(empty)
    with pytest.raises(VideoError, match="not a readable video"):
        probe(text)
    with pytest.raises(VideoError, match="not found"):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(VideoError):
        list(FrameSampler(trunc))
    with pytest.raises(VideoError, match="folder"):
        probe(tmp_path)
    assert issubclass(VideoError, DeepQoEError)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_unsampled_non_reference_frames_are_not_decoded(clips, codec):
    """B-frames nobody refers to are skipped unless sampled; the sampled frames are unchanged."""
    fast = FrameSampler(clips[codec], fps=2, fmt="rgb24")
    a = list(fast)
    b = sample_by_hand(clips[codec], 2, fmt="rgb24")
    assert fast.stats.skipped_nonref > 0 and fast.stats.decoded < fast.stats.packets
    assert [t for t, *_ in a] == [t for t, *_ in b]
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))


@pytest.mark.parametrize("name,fps", [("h264", 2), ("gop", 0.5), ("hevc", 3), ("vp9", 2)])
def test_sampled_frames_come_with_their_true_predecessor(clips, name, fps):
    s = FrameSampler(clips[name], fps=fps, fmt="gray", with_previous=True)
    a = list(s)
    b = sample_by_hand(clips[name], fps)
    assert [t for t, *_ in a] == [t for t, *_ in b]
    for (_, x, px), (_, y, py) in zip(a, b):
        assert np.array_equal(x, y)
        assert (px is None and py is None) or np.array_equal(px, py)
