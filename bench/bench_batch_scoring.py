"""Batch scoring on Dask against the single-process ``deepqoe predict``: sessions/s and peak memory.

    python bench/bench_batch_scoring.py [--n 1000000] [--workers 1,2] [--work-dir DIR] [--markdown]

Generates ``--n`` sessions in the CSV-of-sessions layout (8 segments of 4 s each, a startup stall, some
rebuffering), written twice: as one CSV (what the single-process ``deepqoe predict streaming x.csv`` reads)
and as a folder of Parquet partitions (``--rows-per-part`` rows each; the cuts fall inside sessions, so
sessions straddle partitions). Then times, each as its own ``deepqoe`` process with the shipped
``streaming`` model:

* ``deepqoe predict streaming sessions.csv --out single.parquet`` (single process; it also computes the
  per-second curves, which the Parquet output does not keep);
* ``deepqoe predict streaming parts/ --out dask-K/ --scheduler local --workers K`` for each K.

Wall time includes starting Python, the cluster and loading the model. Peak memory is the largest
resident set of the whole process tree (the ``deepqoe`` process, Dask's nannies and workers), sampled
every 0.2 s with psutil. Prints a Markdown table (``--markdown``) or JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import machine  # noqa: E402

SEGMENTS = 8


def session_chunk(start: int, n: int, seed: int) -> pd.DataFrame:
    """Rows of sessions ``start`` .. ``start + n - 1`` (``SEGMENTS`` rows each)."""
    rng = np.random.default_rng(seed)
    ladder = np.array([[400, 360], [1000, 480], [2500, 720], [5000, 1080]])
    k = np.tile(np.arange(SEGMENTS), n)
    level = np.clip(np.repeat(rng.integers(0, 4, n), SEGMENTS) + rng.integers(-1, 2, n * SEGMENTS), 0, 3)
    stall = np.where(k == 0, np.repeat(rng.uniform(0.2, 3, n), SEGMENTS),
                     np.where(rng.random(n * SEGMENTS) < 0.05, rng.uniform(0.5, 4, n * SEGMENTS), 0.0))
    return pd.DataFrame({"session_id": np.repeat([f"s{i:08d}" for i in range(start, start + n)], SEGMENTS),
                         "start": 4 * k, "duration": 4, "bitrate_kbps": ladder[level, 0],
                         "height": ladder[level, 1], "stall_before": stall.round(2), "device": "pc"})


def generate(n: int, folder: Path, rows_per_part: int) -> tuple[Path, Path]:
    """``folder/sessions.csv`` and ``folder/parts/part-NNNNN.parquet`` (the same rows), in chunks."""
    csv, parts = folder / "sessions.csv", folder / "parts"
    parts.mkdir(parents=True)
    per_chunk = max(1, rows_per_part // SEGMENTS)
    carry = None
    header = True
    for j, start in enumerate(range(0, n, per_chunk)):
        df = session_chunk(start, min(per_chunk, n - start), seed=j)
        df.to_csv(csv, mode="a", header=header, index=False)
        header = False
        # cut 3 rows into the next chunk's first session: that session straddles two partitions
        if carry is not None:
            df = pd.concat([carry, df], ignore_index=True)
        last = start + per_chunk >= n
        carry = None if last else df.iloc[-(SEGMENTS - 3):]
        (df if last else df.iloc[:-(SEGMENTS - 3)]).to_parquet(parts / f"part-{j:05d}.parquet", index=False)
    return csv, parts


def run_measured(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; wall seconds, exit status and the peak resident memory of its process tree."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            total = 0
            try:
                for p in [root] + root.children(recursive=True):
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            peak[0] = max(peak[0], total)
            done.wait(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    done.set()
    t.join()
    return {"seconds": time.perf_counter() - t0, "rc": proc.returncode, "peak_mib": peak[0] / 2**20,
            "stderr_tail": err.strip().splitlines()[-2:] if err else []}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="sessions to generate (default 1,000,000)")
    ap.add_argument("--workers", default="1,2", help="local Dask worker counts to time (default 1,2)")
    ap.add_argument("--rows-per-part", type=int, default=200_000, help="rows per input Parquet partition")
    ap.add_argument("--work-dir", help="folder for the generated data and outputs (default: a temporary one)")
    ap.add_argument("--skip-single", action="store_true", help="do not time the single-process predict")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table instead of JSON")
    args = ap.parse_args()
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="deepqoe-bench-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    exe = [sys.executable, "-m", "deepqoe.cli"]
    try:
        t0 = time.perf_counter()
        csv, parts = generate(args.n, work / "data", args.rows_per_part)
        gen_s = time.perf_counter() - t0
        print(f"generated {args.n} sessions ({args.n * SEGMENTS} rows, {len(list(parts.iterdir()))} Parquet "
              f"partitions) in {gen_s:.0f} s", file=sys.stderr)
        runs = []
        if not args.skip_single:
            r = run_measured(exe + ["predict", "streaming", str(csv), "--out", str(work / "single.parquet")], env)
            runs.append({"how": "single process (`deepqoe predict`, CSV in)", "workers": 1, **r})
            print(f"single: {r['seconds']:.1f} s, rc {r['rc']}", file=sys.stderr)
        for k in [int(x) for x in args.workers.split(",") if x]:
            out = work / f"dask-{k}"
            shutil.rmtree(out, ignore_errors=True)
            r = run_measured(exe + ["predict", "streaming", str(parts), "--out", str(out), "--scheduler", "local",
                                    "--workers", str(k)], env)
            runs.append({"how": f"`--scheduler local --workers {k}` (Parquet in/out)", "workers": k, **r})
            print(f"dask {k}: {r['seconds']:.1f} s, rc {r['rc']}", file=sys.stderr)
        if not args.skip_single and (work / "single.parquet").exists():  # the same scores?
            a = pd.read_parquet(work / "single.parquet")
            for k in [int(x) for x in args.workers.split(",") if x]:
                if (work / f"dask-{k}").exists():
                    b = pd.read_parquet(work / f"dask-{k}")
                    m = a.merge(b, on="id")
                    print(f"dask {k}: {len(b)} sessions, {len(m)} matched, max |score difference| "
                          f"{np.abs(m['score_x'] - m['score_y']).max():.2g}", file=sys.stderr)
        for r in runs:
            r["sessions_per_s"] = args.n / r["seconds"] if r["rc"] == 0 else None
        result = {"n": args.n, "rows": args.n * SEGMENTS, "machine": machine(), "cores": os.cpu_count(),
                  "date": dt.date.today().isoformat(), "runs": runs}
        if args.markdown:
            print(f"n = {args.n:,} sessions ({args.n * SEGMENTS:,} rows); {machine()}, {os.cpu_count()} cores, "
                  f"{result['date']}\n")
            print("| run | wall s | sessions/s | peak memory (MiB, process tree) |")
            print("|---|---:|---:|---:|")
            for r in runs:
                rate = f"{r['sessions_per_s']:,.0f}" if r["sessions_per_s"] else f"failed (rc {r['rc']})"
                print(f"| {r['how']} | {r['seconds']:.1f} | {rate} | {r['peak_mib']:,.0f} |")
        else:
            print(json.dumps(result, indent=2))
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
