#!/usr/bin/env python
"""Load test of the prediction service on loopback (127.0.0.1 only), bounded in count and time.

Starts ``deepqoe serve MODEL`` on a free local port, sends ``--requests`` POST /predict requests from
``--clients`` concurrent keep-alive clients (one row or one session each), checks every answer, and
reports p50 / p99 latency and requests per second. With ``--write`` the results replace the section
``## Prediction service`` of ``docs/benchmarks.md`` (other sections are kept).

    python bench/bench_serve.py                      # 8 clients, 10,000 requests, the default model
    python bench/bench_serve.py --model upec-qoe-lab --requests 2000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

from bench_common import machine, run_clients, served  # noqa: E402  (bench/ is on the path)

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Prediction service"


def request_body(model: str) -> bytes:
    sys.path.insert(0, str(ROOT / "src"))
    from deepqoe.persistence import read_model_meta

    meta = read_model_meta(model)
    if meta.get("session_model"):
        from deepqoe.sessions.frame import example_sessions

        return json.dumps(example_sessions()[2]).encode()
    return json.dumps({"content": "Sports", "resolution": 720, "bitrate_video": 1500.0, "age_user": 30,
                       "sex_user": "men"}).encode()


def run(model: str | None, clients: int, requests: int, time_limit: float) -> dict:
    import httpx

    sys.path.insert(0, str(ROOT / "src"))
    from deepqoe.serve import default_model

    model = model or default_model()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with served(model, env) as (url, proc, _):
        body = request_body(model)
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=url) as c:  # warm-up, and the reference answer
            ref = c.post("/predict", content=body, headers=headers).json()["predictions"][0]["score"]
        lat = np.zeros(requests)
        status = np.zeros(requests, dtype=np.int32)
        wrong = [0]
        counter = iter(range(requests))
        lock = threading.Lock()
        deadline = time.perf_counter() + time_limit

        def worker():
            with httpx.Client(base_url=url, timeout=30) as c:
                while time.perf_counter() < deadline:
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    t = time.perf_counter()
                    try:
                        r = c.post("/predict", content=body, headers=headers)
                        status[i] = r.status_code
                        if r.status_code == 200 and r.json()["predictions"][0]["score"] != ref:
                            with lock:
                                wrong[0] += 1
                    except httpx.HTTPError:
                        status[i] = -1
                    lat[i] = time.perf_counter() - t

        wall, load_before, load_after = run_clients(lambda k: worker(), clients)
        done = status != 0
        n = int(done.sum())
        ok = int((status == 200).sum())
        ms = lat[done] * 1000
        return {"model": model, "clients": clients, "requests": n, "ok": ok, "errors": n - ok + wrong[0],
                "wrong_answers": wrong[0], "seconds": wall, "rps": n / wall,
                "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
                "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
                "body_bytes": len(body), "machine": machine(), "cpus": os.cpu_count(),
                "date": date.today().isoformat(), "stopped_by_time_limit": n < requests,
                "load_before": load_before, "load_after": load_after}


def section(results: list[dict]) -> str:
    r0 = results[0]
    lines = [SECTION, "",
             f"`python bench/bench_serve.py --write` on {r0['date']}, machine: {r0['machine']} ({r0['cpus']} logical "
             f"CPUs, shared with other jobs: load average {r0['load_before']:.1f} before, {results[-1]['load_after']:.1f} "
             "after, so the numbers are lower bounds). One `deepqoe serve` process (uvicorn, one worker, "
             "inference in its thread pool, 1 torch thread) on 127.0.0.1; the clients are threads of one "
             "Python process with keep-alive httpx connections, each request one row or one session, every "
             "answer checked against the reference prediction.", "",
             "| model | input per request | clients | requests | errors | requests/s | p50 (ms) | p90 (ms) | "
             "p99 (ms) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        kind = "one session (JSON, 15 segments, 3 stalls)" if r["model"] == "streaming" else "one row"
        lines.append(f"| {r['model']} | {kind} | {r['clients']} | {r['requests']} | {r['errors']} | {r['rps']:.0f} | "
                     f"{r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} |")
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    old = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    if SECTION in old:
        start = old.index(SECTION)
        nxt = old.find("\n## ", start + len(SECTION))
        rest = old[nxt + 1:] if nxt != -1 else ""
        new = old[:start] + text + ("\n" + rest if rest else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="model(s) to serve (default: the default model); repeat")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--time-limit", type=float, default=600.0, help="stop sending after this many seconds")
    ap.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)
    if args.requests > 100_000 or args.clients > 64:
        ap.error("bounded: at most 100,000 requests and 64 clients")
    results = []
    for m in args.model or [None]:
        r = run(m, args.clients, args.requests, args.time_limit)
        print(json.dumps(r, indent=1))
        results.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write:
        write_section(section(results))
        print("docs/benchmarks.md updated")
    return 0 if all(r["errors"] == 0 and not r["stopped_by_time_limit"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
