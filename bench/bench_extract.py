"""Benchmark of ``deepqoe extract``: frames per second of each video extractor on 720p and 1080p.

Synthesises ~10 s test clips with PyAV (moving gradients, texture and noise; x264 veryfast, CRF 23,
30 frames/s), times plain decoding of every frame (the reference) and then each extractor on the same
file, all in one run, and prints a Markdown section. With ``--write`` the section
``## Video feature extraction`` of docs/benchmarks.md is replaced (or appended; the file is created with
a ``# Benchmarks`` title when missing). Other sections of that file are left alone.

    python bench/bench_extract.py                       # print only
    python bench/bench_extract.py --write               # and record in docs/benchmarks.md
    python bench/bench_extract.py --sizes 720p --seconds 5 --extractors cnn-frames,full-reference

Targets: ``cnn-frames`` at 2 sampled frames/s at least 5x faster than real time on 1080p (2 cores);
``full-reference`` (VMAF, with PSNR and SSIM) at least 20 frames/s on 1080p.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
FPS = 30
SECTION = "## Video feature extraction"
ALL = ["stream", "siti", "siti-every-frame", "cnn-frames", "c3d", "full-reference", "niqe"]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_clips(workdir: Path, size: str, seconds: float) -> tuple[Path, Path]:
    """The source clip (CRF 23) and a distorted version (CRF 38, the same frames) for full-reference."""
    from deepqoe.features.video.decode import iter_frames
    from deepqoe.features.video.synth import synth_frames, write_clip

    w, h = SIZES[size]
    src = workdir / f"{size}.mp4"
    dist = workdir / f"{size}_crf38.mp4"
    n = int(seconds * FPS)
    if not src.exists():
        write_clip(src, seconds=seconds, width=w, height=h, fps=FPS, crf=23, noise=3,
                   frames=synth_frames(w, h, n, noise=3))
    if not dist.exists():
        write_clip(dist, seconds=seconds, width=w, height=h, fps=FPS, crf=38,
                   frames=(f for _, f in iter_frames(src)))
    return src, dist


def timed(fn, repeat: int = 1) -> tuple[float, float]:
    """Best wall time of ``repeat`` runs, and the CPU time (all threads and child processes) of it."""
    import resource

    best, best_cpu = float("inf"), float("nan")
    for _ in range(repeat):
        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c0 = time.process_time()
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time() - c0 + (ch1.ru_utime - ch0.ru_utime) + (ch1.ru_stime - ch0.ru_stime)
        if wall < best:
            best, best_cpu = wall, cpu
    return best, best_cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="720p,1080p")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--extractors", default=",".join(ALL))
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs (default 1)")
    ap.add_argument("--workdir", help="where the clips are written (default: a temporary folder)")
    ap.add_argument("--write", action="store_true", help="record the section in docs/benchmarks.md")
    ap.add_argument("--doc", default=str(Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"))
    args = ap.parse_args(argv)

    import torch

    from deepqoe.features.video.base import make_extractor
    from deepqoe.features.video.c3d import save_random_weights
    from deepqoe.features.video.decode import FrameSampler, count_frames, probe

    names = [n.strip() for n in args.extractors.split(",") if n.strip()]
    tmp = tempfile.TemporaryDirectory(prefix="deepqoe-bench-")
    workdir = Path(args.workdir or tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    weights = save_random_weights(str(workdir / "c3d_random.safetensors"))
    load_before = os.getloadavg()

    extractors = {
        "stream": lambda: make_extractor("stream"),
        "siti": lambda: make_extractor("siti", {"fps": 2}),
        "siti-every-frame": lambda: make_extractor("siti", {"fps": 0}),
        "cnn-frames": lambda: make_extractor("cnn-frames", {"fps": 2}),
        "c3d": lambda: make_extractor("c3d", {"weights": weights, "max_clips": 8}),
        "full-reference": lambda: make_extractor("full-reference", {"threads": os.cpu_count() or 2}),
        "niqe": lambda: make_extractor("niqe", {"fps": 1}),
    }
    notes = {
        "stream": "metadata only, no decoding",
        "siti": "luma at 2 frames/s, each with its predecessor (P.910 SI/TI)",
        "siti-every-frame": "every frame (P.910 as written)",
        "cnn-frames": "EfficientNet-Lite0, 2 sampled frames/s, 224x224",
        "c3d": "8 clips of 16 frames, fc6 (random weights: same cost)",
        "full-reference": "libvmaf vmaf_v0.6.1 + PSNR + SSIM, vs CRF 38 copy",
        "niqe": "scikit-video NIQE, 1 frame/s, short side 540",
    }
    rows = []
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        t0 = time.perf_counter()
        src, dist = make_clips(workdir, size, args.seconds)
        print(f"[{size}] clips ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        info = probe(src)
        n_frames = info.frames or int(args.seconds * FPS)
        duration = info.duration
        t_dec, c_dec = timed(lambda: count_frames(src), args.repeat)
        rows.append((size, "decode (every frame, no conversion)", t_dec, c_dec, n_frames, duration, t_dec,
                     "PyAV, threaded, the reference"))
        t_samp, c_samp = timed(lambda: list(FrameSampler(src, fps=2, size=(224, 224))), args.repeat)
        rows.append((size, "decode, sample 2 frames/s to 224x224", t_samp, c_samp, n_frames, duration, t_dec,
                     "skips unsampled non-reference frames"))
        print(f"[{size}] decode {n_frames / t_dec:.0f} frames/s", file=sys.stderr)
        for name in names:
            ex = extractors[name]()
            if name in ("cnn-frames", "c3d"):
                ex.extract(src)  # warm-up: model loading and first-call costs are not counted
            ref = src if name == "full-reference" else None
            target = dist if name == "full-reference" else src
            t, c = timed(lambda: ex.extract(target, reference=ref), args.repeat)
            rows.append((size, name, t, c, n_frames, duration, t_dec, notes[name]))
            print(f"[{size}] {name}: {t:.2f} s (CPU {c:.2f} s), {n_frames / t:.0f} frames/s, "
                  f"{duration / t:.1f}x real time", file=sys.stderr)
    load_after = os.getloadavg()

    lines = [SECTION, "",
             f"Measured {dt.date.today().isoformat()} with `python bench/bench_extract.py --write` on "
             f"{cpu_model()}, {os.cpu_count()} cores (torch {torch.__version__}, {torch.get_num_threads()} "
             f"threads); load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (other "
             f"work on the machine slows every number down).",
             f"Clips: {args.seconds:g} s, {FPS} frames/s, x264 veryfast CRF 23, synthetic moving content. "
             "frames/s = video frames covered per second of work; x real time = video duration / time; "
             "vs decode = decode time / time (1.0 = as fast as decoding every frame). CPU s = CPU time of "
             "all threads and FFmpeg child processes; `idle 2-core est.` = video duration / (CPU s / 2), "
             "the speed if that CPU time ran on 2 otherwise idle cores (an upper bound, but far less "
             "sensitive to other load than the wall time).", "",
             "| size | extractor | seconds | CPU s | frames/s | x real time | vs decode | idle 2-core est. (x real time) | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for size, name, t, c, n, dur, t_dec, note in rows:
        est = dur / (c / 2) if c and c > 0 else float("nan")
        lines.append(f"| {size} | {name} | {t:.2f} | {c:.2f} | {n / t:.0f} | {dur / t:.1f} | {t_dec / t:.2f} "
                     f"| {est:.1f} | {note} |")
    res = {(r[0], r[1]): r for r in rows}
    lines += ["", "Targets (on the wall time measured here):"]
    cnn = res.get(("1080p", "cnn-frames"))
    if cnn:
        x = cnn[5] / cnn[2]
        est = cnn[5] / (cnn[3] / 2)
        lines.append(f"- cnn-frames at 2 frames/s on 1080p >= 5x real time: {x:.1f}x, "
                     f"{'met' if x >= 5 else 'MISSED'} (idle 2-core estimate from CPU time: {est:.1f}x).")
    fr = res.get(("1080p", "full-reference"))
    if fr:
        f = fr[4] / fr[2]
        est = fr[4] / (fr[3] / 2)
        lines.append(f"- VMAF (full-reference, with PSNR and SSIM) on 1080p >= 20 frames/s: {f:.0f} frames/s, "
                     f"{'met' if f >= 20 else 'MISSED'} (idle 2-core estimate from CPU time: {est:.0f} frames/s).")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        doc = Path(args.doc)
        old = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
        pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
        if pattern.search(old):
            new = pattern.sub(lambda _m: text + "\n", old, count=1).rstrip("\n") + "\n"
        else:
            new = old.rstrip("\n") + "\n\n" + text
        from deepqoe.io import atomic_write_text

        atomic_write_text(doc, new)
        print(f"recorded in {doc}", file=sys.stderr)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
