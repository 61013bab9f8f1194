"""The full-reference extractor compares frames on the reference's time base (extractor version 5).

Both videos are brought onto a constant-rate grid at the reference's frame rate (its average rate when it
varies), each showing at every grid time the frame on screen then (FFmpeg's ``fps`` filter: frames repeated
or dropped). Before, frames were only moved to their nearest grid time: a variable-frame-rate reference whose
frames crowd two into one grid time and leave the next empty slipped every later pair against a
constant-rate transcode of it, and a distorted video at a lower frame rate or with dropped frames was
compared only where it had frames (its missing frames not counted in ``fr_frames`` nor in the scores).

The clips are tiny (64x48, 2 s) lossless H.264 (``qp`` 0) of a pattern of random 4-pixel blocks that moves
4 pixels a frame: a frame compared with its neighbour scores about 10 dB, with itself 60 dB (the cap).
"""

from __future__ import annotations

import bisect
import subprocess
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from deepqoe.features.video import full_reference as fr  # noqa: E402
from deepqoe.features.video.base import make_extractor  # noqa: E402
from deepqoe.features.video.decode import probe  # noqa: E402

W, H = 64, 48


def _blocks(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB frames: random 4x4 blocks moving 4 pixels to the right a frame (every frame differs)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(16, 240, (H // 4, W // 4 + n, 3)).astype(np.uint8)
    base = np.kron(base, np.ones((4, 4, 1), np.uint8))
    return [np.ascontiguousarray(base[:, 4 * i:4 * i + W]) for i in range(n)]


def _write(path, images, pts, time_base: Fraction, rate=None, codec: str = "libx264"):
    """Encode ``images`` (RGB, or YUV 4:2:0 planes as :func:`_decode` gives them) losslessly at the time
    stamps ``pts`` (in ``time_base``; ``rate``, the nominal frame rate, defaults to one frame a tick).
    ``codec``: libx264 (``qp`` 0) or libvpx-vp9 (``lossless``)."""
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=rate or 1 / time_base)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.time_base = time_base
        s.time_base = time_base
        s.options = ({"qp": "0", "preset": "veryfast", "threads": "1"} if codec == "libx264"
                     else {"lossless": "1", "deadline": "realtime", "cpu-used": "8"})
        for img, p in zip(images, pts):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24" if img.ndim == 3 else "yuv420p")
            frame.pts, frame.time_base = int(p), time_base
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)
    return path


def _decode(path) -> tuple[list[float], list[np.ndarray]]:
    """The start times (s) and pictures (YUV 4:2:0 planes, as stored: no colour conversion) of every frame."""
    with av.open(str(path)) as c:
        got = [(float(f.pts * f.time_base), f.to_ndarray(format="yuv420p")) for f in c.decode(video=0)]
    return [t for t, _ in got], [img for _, img in got]


def _remux(src, dst):
    subprocess.run([fr.ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(src), "-c", "copy", str(dst)],
                   check=True)
    return dst


@pytest.fixture(scope="module")
def ex():
    return make_extractor("full-reference", {"threads": 1})


def _scores(ex, video, reference) -> dict:
    r = ex.extract(video, reference=reference)
    assert len(r.per_frame["vmaf"]) == len(r.per_frame["psnr_y"]) == r.values["fr_frames"]
    return {**r.values, "psnr_y": r.per_frame["psnr_y"]}


def test_variable_rate_reference_pairs_with_its_constant_rate_transcode(tmp_path, ex):
    """A variable-frame-rate reference (frames 23, 7, 70 and 33 ms long, 30 frames a second on average) and a
    constant 30-fps lossless transcode whose every frame is the reference frame on screen at its time: each
    pair is the same picture. The old grid put the 7-ms frame and its predecessor on one grid time and none
    on the next: a third of the frames were compared with a neighbour (PSNR 48 dB on average, 13 dB at worst)."""
    tb = Fraction(1, 3000)  # a grid time every 100 ticks (1/30 s)
    starts = [400 * m + d for m in range(15) for d in (0, 70, 90, 300)]
    ref = _write(tmp_path / "vfr.mp4", _blocks(len(starts)), starts, tb, rate=30)
    info = probe(ref)
    assert info.fps == pytest.approx(30.0) and info.frames == 60
    times, pictures = _decode(ref)
    assert max(np.diff(times)) > 2 * min(np.diff(times)) + 0.05  # variable frame rate indeed
    shown = [bisect.bisect_right(times, k / 30 + 1e-6) - 1 for k in range(60)]
    assert shown[:8] == [0, 2, 2, 3, 4, 6, 6, 7]
    cfr = _write(tmp_path / "cfr.mp4", [pictures[i] for i in shown], list(range(60)), Fraction(1, 30))
    v = _scores(ex, cfr, ref)
    assert v["fr_frames"] == 60
    assert v["fr_psnr_y_min"] == v["fr_psnr_y_mean"] == fr.PSNR_CAP, v["psnr_y"]
    assert v["fr_vmaf_mean"] > 95
    same = _scores(ex, ref, ref)  # the transcode scores as the reference against itself
    assert v["fr_vmaf_mean"] == pytest.approx(same["fr_vmaf_mean"], abs=0.01)
    assert same["fr_psnr_y_min"] == fr.PSNR_CAP and same["fr_frames"] == 60


@pytest.fixture(scope="module")
def cfr30(tmp_path_factory):
    d = tmp_path_factory.mktemp("timebase")
    pictures = _blocks(60, seed=1)
    out = {"dir": d, "pictures": pictures}
    out["ref"] = _write(d / "ref.mp4", pictures, list(range(60)), Fraction(1, 30))
    out["full"] = _write(d / "full.mp4", pictures, list(range(60)), Fraction(1, 30))
    out["half"] = _write(d / "half.mp4", pictures[::2], list(range(30)), Fraction(1, 15))
    kept = [i for i in range(60) if not 20 <= i < 26]  # six frames dropped, the others at their times
    out["dropped"] = _write(d / "dropped.mp4", [pictures[i] for i in kept], kept, Fraction(1, 30))
    return out


def test_half_frame_rate_copy_is_compared_at_every_reference_frame(cfr30, ex):
    """A 15-fps copy of a moving 30-fps reference: every reference frame is compared, with the copy's frame on
    screen then (each shown twice): the odd ones differ, so it scores lower than the full-rate copy. The old
    grid compared only the copy's 30 frames (every one identical: PSNR 60, VMAF as the full-rate copy)."""
    full, half = _scores(ex, cfr30["full"], cfr30["ref"]), _scores(ex, cfr30["half"], cfr30["ref"])
    assert full["fr_frames"] == half["fr_frames"] == 60
    assert full["fr_psnr_y_min"] == fr.PSNR_CAP and full["fr_vmaf_mean"] > 97
    assert half["psnr_y"][0::2] == [fr.PSNR_CAP] * 30  # the copy's own frames
    assert max(half["psnr_y"][1::2]) < 20  # its repeats, against the reference's next frame
    assert half["fr_vmaf_mean"] < full["fr_vmaf_mean"] - 20
    assert half["fr_psnr_y_mean"] < full["fr_psnr_y_mean"] - 10


def test_dropped_frames_are_compared_as_the_frame_shown_instead(cfr30, ex):
    """A copy missing six frames (its others at their times) shows the frame before in their place: those six
    grid times score low, the rest as the full-rate copy; the old grid skipped them (54 frames, all 60 dB)."""
    v = _scores(ex, cfr30["dropped"], cfr30["ref"])
    assert v["fr_frames"] == 60
    low = [i for i, p in enumerate(v["psnr_y"]) if p < fr.PSNR_CAP]
    assert low == list(range(20, 26)), v["psnr_y"]
    assert max(v["psnr_y"][20:26]) < 20


def test_identical_copy_scores_the_cap(cfr30, ex):
    """A copy compared with itself, or with the reference file itself: PSNR at its 60-dB cap, VMAF near 100."""
    for video in (cfr30["ref"], cfr30["full"]):
        v = _scores(ex, video, cfr30["ref"])
        assert v["fr_frames"] == 60
        assert v["fr_psnr_y_min"] == v["fr_psnr_cb_min"] == v["fr_psnr_cr_min"] == fr.PSNR_CAP
        assert v["fr_ssim_min"] == pytest.approx(1.0)
        assert v["fr_vmaf_mean"] > 97


def test_millisecond_containers_still_pair_frame_by_frame(tmp_path, ex):
    """29.97 fps in Matroska / WebM (time stamps in whole milliseconds, up to 0.5 ms off the grid): the same
    pictures pair one to one whichever container holds the video or its reference (the bug version 3 fixed),
    and a 14.985-fps copy in Matroska is compared at every reference frame."""
    fps, n = Fraction(30000, 1001), 60
    pictures = _blocks(n, seed=2)
    ref = _write(tmp_path / "ref.mp4", pictures, list(range(n)), 1 / fps)
    ref_mkv = _remux(ref, tmp_path / "ref.mkv")
    mkv = _remux(_write(tmp_path / "d.mp4", pictures, list(range(n)), 1 / fps), tmp_path / "d.mkv")
    webm = _write(tmp_path / "d.webm", pictures, list(range(n)), 1 / fps, codec="libvpx-vp9")
    for video, reference in ((mkv, ref), (webm, ref), (ref, ref_mkv), (mkv, ref_mkv), (webm, ref_mkv)):
        v = _scores(ex, video, reference)
        assert v["fr_frames"] == n, (video.name, reference.name)
        assert v["fr_psnr_y_min"] == fr.PSNR_CAP, (video.name, reference.name, v["psnr_y"])
    half = _remux(_write(tmp_path / "h.mp4", pictures[::2], list(range(n // 2)), 2 / fps), tmp_path / "h.mkv")
    v = _scores(ex, half, ref)
    assert v["fr_frames"] == n
    assert v["psnr_y"][0::2] == [fr.PSNR_CAP] * (n // 2) and max(v["psnr_y"][1::2]) < 20


def test_frame_grid_is_the_fps_filter_at_the_reference_rate():
    assert fr.frame_grid(30.0) == "setpts=PTS-STARTPTS,fps=fps=30.0:round=near"
    assert fr.frame_grid(float("nan")) == fr.frame_grid(0.0) == "setpts=PTS-STARTPTS"
    assert fr.FullReferenceExtractor.version == "5"
