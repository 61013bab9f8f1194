"""The CSV-of-sessions reader (``load_sessions`` on a CSV, the parser batch scoring shares), side by side with
another checkout of deepqoe in the same run.

    python bench/bench_csv_reader.py [--n 25000] [--repeat 3] [--against /path/to/other/src] [--markdown]

Writes ``--n`` generated sessions (the batch-scoring benchmark's: 8 segments of 4 s, a startup stall, some
rebuffering) as one CSV, then times ``deepqoe.sessions.readers.load_sessions`` on it in fresh processes,
alternating this checkout's ``src`` and ``--against`` (e.g. a ``git worktree`` of an older commit), ``--repeat``
times each; reports the median seconds and the ratio. Each process reads the file once before timing (the
OS file cache) and checks that every session was read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_batch_scoring import session_chunk  # noqa: E402
from bench_common import machine  # noqa: E402

HERE_SRC = Path(__file__).resolve().parents[1] / "src"
TIMER = """
import sys, time
from deepqoe.sessions.readers import load_sessions
path, n = sys.argv[1], int(sys.argv[2])
load_sessions(path)
t = time.perf_counter()
sessions, failures = load_sessions(path)
s = time.perf_counter() - t
assert len(sessions) == n and not failures, (len(sessions), failures[:1])
print(s)
"""


def time_once(src: Path, csv: Path, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", TIMER, str(csv), str(n)], env=env, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=25000, help="sessions (8 rows each)")
    ap.add_argument("--repeat", type=int, default=3, help="timed reads per checkout (alternating)")
    ap.add_argument("--against", type=Path, help="the src folder of another checkout to compare with")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table instead of JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        csv = Path(d) / "sessions.csv"
        session_chunk(0, args.n, seed=0).to_csv(csv, index=False)
        srcs = {"this checkout": HERE_SRC, **({"--against": args.against.resolve()} if args.against else {})}
        times = {k: [] for k in srcs}
        for _ in range(args.repeat):
            for k, src in srcs.items():
                times[k].append(time_once(src, csv, args.n))
    res = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
           "n_sessions": args.n, "rows": args.n * 8,
           "median_s": {k: statistics.median(v) for k, v in times.items()}, "runs_s": times}
    if args.against:
        res["ratio"] = res["median_s"]["this checkout"] / res["median_s"]["--against"]
    if args.markdown:
        print(f"{res['date']}, {res['machine']}, {args.n:,} sessions ({args.n * 8:,} rows), median of "
              f"{args.repeat} alternating runs\n")
        print("| reader | median s | sessions/s |\n|---|---:|---:|")
        for k, v in res["median_s"].items():
            print(f"| {k} | {v:.2f} | {args.n / v:,.0f} |")
        if args.against:
            print(f"\nratio (this / --against): {res['ratio']:.2f}")
    else:
        print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
