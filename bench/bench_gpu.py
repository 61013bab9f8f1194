"""GPU against CPU, in one run: training samples/s, and cnn-frames / c3d frames/s (``device: cuda``).

Runs on any machine: without a CUDA GPU it measures the CPU only and prints "no GPU: not measured" in the
GPU columns. Measured, each on the CPU and (when present) the GPU:

(a) training throughput of the deepqoe fit loop (``deepqoe.train.fit_network``) on ``--rows`` synthetic
    rows (default 1,000,000; the network and data of ``bench_train.py``: the paper's small-dataset
    network, FC 512-256, dropout 0.5), one epoch per setting after a short warm-up; and the largest
    |GPU - CPU| difference of predictions from the same weights (the parity the tests check);
(b) the networks alone: EfficientNet-Lite0 (``cnn-frames``) on batches of 224x224 frames and C3D on
    batches of 16-frame 112x112 clips (random weights: the same cost), in frames/s;
(c) the extractors end to end on a synthetic clip (decoding included, as ``deepqoe extract`` runs them),
    in video frames covered per second.

    python bench/bench_gpu.py                      # 1M rows, 720p 10 s clip
    python bench/bench_gpu.py --quick              # 20k rows, 360p 4 s clip: a minute on 2 CPU cores
    python bench/bench_gpu.py --rows 200000 --json gpu.json

On a GPU machine: ``pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu12x``
(cu12x: your CUDA version, e.g. cu128; see README), ``pip install -e '.[video]'``, then the command above.
Record the card's name (printed) with the figures in docs/benchmarks.md, section "GPU".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402
from bench_train import encode, synthetic  # noqa: E402

from deepqoe.config import TrainingConfig  # noqa: E402
from deepqoe.devices import device_label  # noqa: E402
from deepqoe.model import DeepQoENet  # noqa: E402
from deepqoe.train import fit_network, seed_everything  # noqa: E402

NO_GPU = "no GPU: not measured"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn, units: float, device: torch.device, min_seconds: float = 1.0) -> float:
    """units per second of ``fn()`` (repeated for at least ``min_seconds`` after one warm-up call)."""
    fn()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        _sync(device)
        if time.perf_counter() - t0 >= min_seconds:
            return units * n / (time.perf_counter() - t0)


# ---- (a) training ----------------------------------------------------------------------------------------
TRAIN_SETTINGS = [  # (label, batch size, precision)
    ("batch 4096, fp32", 4096, "fp32"),
    ("batch 32768, fp32", 32768, "fp32"),
    ("batch 32768, bf16 mixed precision", 32768, "bf16"),
]


def train_throughput(rows: int, devices: list[torch.device], threads: int) -> dict:
    df, y = synthetic(rows)
    tensors, specs = encode(df, df)
    yt = torch.from_numpy(y - 1)
    out: dict = {}
    for label, bs, precision in TRAIN_SETTINGS:
        out[label] = {}
        for dev in devices:
            name = "cuda" if dev.type == "cuda" else "cpu"
            cfg = dict(batch_size=bs, learning_rate=1e-3, n_threads=threads, precision=precision, device=name)
            seed_everything(0)
            warm = DeepQoENet(specs, (512, 256), 0.5, 5)  # warm-up: kernels, allocator, autotuning
            k = min(rows, 4 * bs)
            fit_network(warm, [t[:k] for t in tensors], yt[:k], None, None, task="classification",
                        training=TrainingConfig(max_epochs=1, **cfg))
            seed_everything(0)
            net = DeepQoENet(specs, (512, 256), 0.5, 5)
            _sync(dev)
            t0 = time.perf_counter()
            fit_network(net, tensors, yt, None, None, task="classification", training=TrainingConfig(max_epochs=1, **cfg))
            _sync(dev)
            out[label][name] = rows / (time.perf_counter() - t0)
            print(f"  train {label} on {name}: {out[label][name]:,.0f} samples/s", file=sys.stderr)
    return out


def prediction_parity(rows: int) -> float | None:
    """max |GPU - CPU| of the class probabilities of the same weights on ``rows`` rows."""
    if not torch.cuda.is_available():
        return None
    df, y = synthetic(min(rows, 50_000), seed=1)
    tensors, specs = encode(df, df)
    seed_everything(0)
    net = DeepQoENet(specs, (512, 256), 0.5, 5).eval()
    with torch.no_grad():
        cpu = torch.softmax(net(tensors), 1)
        gpu = torch.softmax(net.to("cuda")([t.to("cuda") for t in tensors]), 1).cpu()
    return float((cpu - gpu).abs().max())


# ---- (b) networks alone ------------------------------------------------------------------------------------
def network_rates(devices: list[torch.device], threads: int, quick: bool) -> dict:
    import copy

    from deepqoe.features.video.c3d import build_c3d

    out: dict = {"cnn-frames network (EfficientNet-Lite0, 224x224)": {}, "c3d network (16x112x112 clips)": {}}
    try:
        from deepqoe.features.video.cnn_frames import load_efficientnet_lite0

        eff = load_efficientnet_lite0()
    except Exception as e:  # noqa: BLE001 - the video extra is optional
        eff = None
        print(f"  cnn-frames network not measured: {e}", file=sys.stderr)
    torch.manual_seed(0)
    c3d = build_c3d().eval()
    torch.set_num_threads(threads)
    for dev in devices:
        name = "cuda" if dev.type == "cuda" else "cpu"
        bs = 8 if dev.type == "cpu" else 64
        if eff is not None:
            m = eff if dev.type == "cpu" else copy.deepcopy(eff).to(dev)
            x = torch.rand(bs, 3, 224, 224, device=dev)
            with torch.inference_mode():
                out["cnn-frames network (EfficientNet-Lite0, 224x224)"][name] = _rate(
                    lambda: m.extract_features(x).mean(dim=(2, 3)), bs, dev)
        clips = 1 if dev.type == "cpu" else 16
        m3 = c3d if dev.type == "cpu" else copy.deepcopy(c3d).to(dev)
        x3 = torch.rand(clips, 3, 16, 112, 112, device=dev) * 255
        with torch.inference_mode():
            out["c3d network (16x112x112 clips)"][name] = _rate(lambda: m3(x3), 16 * clips, dev,
                                                                 min_seconds=0.5 if quick else 2.0)
        for k, v in out.items():
            if name in v:
                print(f"  {k} on {name}: {v[name]:,.0f} frames/s", file=sys.stderr)
    return out


# ---- (c) extractors end to end --------------------------------------------------------------------------
def extractor_rates(devices: list[torch.device], threads: int, quick: bool) -> dict:
    from deepqoe.features.video.base import make_extractor
    from deepqoe.features.video.c3d import save_random_weights
    from deepqoe.features.video.synth import synth_frames, write_clip

    w, h, seconds, fps = (640, 360, 4, 25) if quick else (1280, 720, 10, 30)
    out: dict = {"clip": f"{h}p, {seconds} s, {fps} frames/s"}
    with tempfile.TemporaryDirectory() as d:
        clip = write_clip(Path(d) / "clip.mp4", seconds=seconds, width=w, height=h, fps=fps, crf=23,
                          frames=synth_frames(w, h, seconds * fps, noise=3))
        weights = save_random_weights(Path(d) / "c3d.safetensors")
        for ex_name, opts in (("cnn-frames", {"fps": 2, "torch_threads": threads}),
                              ("c3d", {"weights": weights, "max_clips": 8})):
            out[ex_name] = {}
            for dev in devices:
                name = "cuda" if dev.type == "cuda" else "cpu"
                try:
                    ex = make_extractor(ex_name, {**opts, "device": name})
                    ex.extract(clip)  # warm-up (model load, first kernels)
                    torch.set_num_threads(threads)
                    t0 = time.perf_counter()
                    f = ex.extract(clip)
                    out[ex_name][name] = seconds * fps / (time.perf_counter() - t0)
                    out[ex_name][f"{name}_values"] = list(f.values.values())
                except Exception as e:  # noqa: BLE001 - e.g. the video extra missing
                    print(f"  {ex_name} on {name} not measured: {e}", file=sys.stderr)
            if "cpu_values" in out[ex_name] and "cuda_values" in out[ex_name]:
                a, b = np.array(out[ex_name]["cpu_values"]), np.array(out[ex_name]["cuda_values"])
                out[ex_name]["max_rel_diff"] = float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))
            for k in ("cpu_values", "cuda_values"):
                out[ex_name].pop(k, None)
            for k in ("cpu", "cuda"):
                if k in out[ex_name]:
                    print(f"  extract {ex_name} on {k}: {out[ex_name][k]:,.0f} video frames/s", file=sys.stderr)
    return out


# ---- report ----------------------------------------------------------------------------------------------
def _cell(v: float | None, fmt: str = "{:,.0f}") -> str:
    return NO_GPU if v is None else fmt.format(v)


def markdown(res: dict) -> str:
    gpu = res["gpu"]
    lines = [f"Machine: {res['cpu']} (torch {res['torch']}, {res['threads']} CPU thread(s)); GPU: {gpu or 'none'}; "
             f"{res['date']}. Command: `python bench/bench_gpu.py {res['argv']}`.", "",
             f"**Training, {res['rows']:,} synthetic rows, one epoch** (samples/s):", "",
             "| setting | CPU | GPU | GPU / CPU |", "|---|---:|---:|---:|"]
    for label, r in res["train"].items():
        g = r.get("cuda")
        lines.append(f"| {label} | {r['cpu']:,.0f} | {_cell(g)} | {_cell(g and g / r['cpu'], '{:.1f}x')} |")
    if res["parity"] is not None:
        lines += ["", f"Same weights, predictions: max |GPU - CPU| = {res['parity']:.1e} (probabilities)."]
    if not res["networks"]:
        return "\n".join(lines + ["", "(video networks and extractors: not run, --skip-video)"])
    lines += ["", "**Video networks alone** (frames/s; CPU batch 8 frames / 1 clip, GPU 64 frames / 16 clips):", "",
              "| network | CPU | GPU | GPU / CPU |", "|---|---:|---:|---:|"]
    for label, r in res["networks"].items():
        if "cpu" not in r:
            continue
        g = r.get("cuda")
        lines.append(f"| {label} | {r['cpu']:,.0f} | {_cell(g)} | {_cell(g and g / r['cpu'], '{:.1f}x')} |")
    ex = res["extract"]
    lines += ["", f"**Extractors end to end** ({ex['clip']}, decoding included; video frames covered per second):",
              "", "| extractor | CPU | GPU | GPU / CPU | max relative |GPU - CPU| |", "|---|---:|---:|---:|---:|"]
    for name in ("cnn-frames", "c3d"):
        r = ex.get(name, {})
        if "cpu" not in r:
            continue
        g = r.get("cuda")
        diff = r.get("max_rel_diff")
        lines.append(f"| {name} | {r['cpu']:,.0f} | {_cell(g)} | {_cell(g and g / r['cpu'], '{:.1f}x')} | "
                     f"{_cell(diff, '{:.1e}')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=None, help="training rows (default 1,000,000; --quick: 20,000)")
    ap.add_argument("--quick", action="store_true", help="a small run: 20k rows, a 4 s 360p clip")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or 1,
                    help="CPU threads for the CPU side (default: OMP_NUM_THREADS, else 1)")
    ap.add_argument("--skip-video", action="store_true", help="training only")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    rows = args.rows or (20_000 if args.quick else 1_000_000)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    gpu = device_label("cuda") if torch.cuda.is_available() else None
    print(f"bench_gpu: CPU {machine()}; GPU: {gpu or NO_GPU}", file=sys.stderr)
    res = {"cpu": f"{machine()}, {os.cpu_count()} cores", "gpu": gpu, "torch": torch.__version__,
           "threads": args.threads, "rows": rows,
           "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "argv": " ".join(argv if argv is not None else sys.argv[1:])}
    res["train"] = train_throughput(rows, devices, args.threads)
    res["parity"] = prediction_parity(rows)
    res["networks"] = {} if args.skip_video else network_rates(devices, args.threads, args.quick)
    res["extract"] = {"clip": "-"} if args.skip_video else extractor_rates(devices, args.threads, args.quick)
    print(markdown(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
