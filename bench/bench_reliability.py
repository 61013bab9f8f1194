#!/usr/bin/env python
"""Reliability benchmark: the service under mixed good and bad load, and crash tests of the writers.

1. **Service load.** Starts ``deepqoe serve streaming`` as a real process on 127.0.0.1 (a free port) and
   sends ``--clients`` x ``--requests-per-client`` POST /predict requests from keep-alive httpx clients
   (one thread each): good sessions, good ITU-T P.1203 inputs, bad sessions (wrong types, unknown fields,
   negative durations, huge stalls, numbers beyond a float), malformed bodies (truncated JSON, NaN, random
   bytes, empty) and bodies over the size limit. Counts 2xx / 4xx / 5xx per request class, connection
   errors and wrong answers (a 200 whose score or curve is not finite and inside 1-5, a good request not
   answered 200, a bad one answered 200), p50 / p99 latency and requests per second.
2. **Crash tests.** ``kill -9`` of ``deepqoe predict upec-qoe-lab ROWS.csv --out pred.csv`` (200,000
   rows) and of ``deepqoe train CONFIG --out model``, ``--kills`` times each over an earlier whole
   output: every other kill at a random moment of the run, the others at a random moment of the write
   (timed in the first full run by watching for its temporary file). After each kill the output must be
   the old whole one (never half a file or half a model directory); after one more full run, leftovers
   (temporary files and folders next to the output) are counted.

The Markdown section goes to standard output; progress to standard error.

    python bench/bench_reliability.py                              # 8 x 1,250 requests, 6 kills each
    python bench/bench_reliability.py --requests-per-client 200 --kills 3 --json raw.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import numpy as np

from bench_common import machine, run_clients, served  # noqa: E402  (bench/ is on the path)

ROOT = Path(__file__).resolve().parent.parent
TEMP_PREFIX = ".deepqoe-tmp."  # deepqoe.io.TEMP_PREFIX
MAX_BODY = 2_000_000  # the service's default limit


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def deepqoe_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepqoe.cli", *args]


def child_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))


# ------------------------------------------------------------------------------ request mix
def request_pool() -> dict[str, list[tuple[bytes, str]]]:
    """Request class -> [(body, query)]: the good ones must get 200, the bad ones 4xx."""
    sys.path.insert(0, str(ROOT / "src"))
    from deepqoe.sessions.frame import example_sessions

    ex = example_sessions()
    good = []
    for i, s in enumerate(ex):
        good.append((json.dumps(s).encode(), ""))
        good.append((json.dumps({"sessions": ex[: i + 1]}).encode(), "?curve=true"))
    long = copy.deepcopy(ex[0])  # 2 days of media in one segment: long but valid
    long["segments"] = [{"start": 0, "duration": 172_800, "bitrate_kbps": 3000, "height": 720}]
    good.append((json.dumps(long).encode(), "?curve=true"))
    many_stalls = copy.deepcopy(ex[0])
    media = many_stalls["segments"][-1]["start"] + many_stalls["segments"][-1]["duration"]
    many_stalls["stalls"] = [{"start": round(k * media / 300, 3), "duration": 0.5} for k in range(300)]
    good.append((json.dumps(many_stalls).encode(), "?explain=true"))

    p1203 = []
    for i, s in enumerate(ex):
        segs = [{"start": g["start"], "duration": g["duration"], "bitrate": g.get("bitrate_kbps", 1000),
                 "resolution": f"{g.get('width', 1280)}x{g.get('height', 720)}", "fps": g.get("fps", 30),
                 "codec": "h264"} for g in s["segments"]]
        stalls = [[st["start"], st["duration"]] for st in s.get("stalls", [])]
        p1203.append((json.dumps({"id": f"p{i}", "I13": {"segments": segs}, "I23": {"stalling": stalls},
                                  "IGen": {"device": "pc", "displaySize": "1920x1080"}}).encode(), ""))

    def broken(change) -> bytes:
        d = copy.deepcopy(ex[1])
        change(d)
        return json.dumps(d).encode()

    bad = [broken(f) for f in (
        lambda d: d["segments"][2].update(duration=-4),
        lambda d: d["segments"][0].update(bitrate_kbps="fast"),
        lambda d: d.update(stalls=[{"start": 0, "duration": 1e12}]),
        lambda d: d.update(segments=[{"start": 0, "duration": 1e9, "height": 720}]),
        lambda d: d.update(colour="blue"),
        lambda d: d.pop("segments"),
        lambda d: d.update(device="toaster"),
        lambda d: d.update(stalls=[{"start": 4, "duration": 1}, {"start": 4, "duration": 2}]),
        lambda d: d["segments"][1].update(start=100),
        lambda d: d.update(mos=9, mos_scale="1-5"),
    )]
    big_int = re.sub(r'"bitrate_kbps": [0-9.]+', '"bitrate_kbps": 1' + "0" * 400, json.dumps(ex[1]), count=1).encode()
    bad += [big_int, b'{"sessions": []}', b'{"sessions": {"id": 1}}', b"[1, 2, 3]", b'"text"',
            b'{"I13": {"segments": "no"}}', b'{"sessions": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"]
    bad_q = [(b, "") for b in bad] + [(json.dumps(ex[0]).encode(), "?explain=maybe")]

    body = json.dumps(ex[2]).encode()
    malformed = [(b, "") for b in (body[: len(body) // 2], b"", b"   ", b'{"id": NaN}', b"\xff\xfe\x00garbage",
                                   b"{'single': 'quotes'}", b'{"id": 1,}', b"[" * 5000, bytes(range(256)))]
    filler = b'{"sessions": [' + b",".join([body] * (MAX_BODY // len(body) + 2)) + b"]}"
    huge = [(filler, ""), (b" " * (MAX_BODY + 10) + body, "")]
    return {"good session": good, "good P.1203": p1203, "bad session": bad_q, "malformed body": malformed,
            "huge body": huge}


MIX = {"good session": 0.40, "good P.1203": 0.10, "bad session": 0.25, "malformed body": 0.20, "huge body": 0.05}
EXPECT = {"good session": {200}, "good P.1203": {200}, "bad session": {400, 413, 422},
          "malformed body": {400, 422}, "huge body": {413}}


def answer_ok(cls: str, status: int, text: str) -> bool:
    if status not in EXPECT[cls]:
        return False
    try:
        body = json.loads(text)
    except ValueError:
        return False
    if status != 200:
        return isinstance(body.get("detail"), str) and "\n" not in body["detail"]
    for p in body["predictions"]:
        vals = [p["score"]] + list(p.get("curve") or [])
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and 1 <= v <= 5 for v in vals):
            return False
    return True


def load_test(clients: int, per_client: int, time_limit: float, seed: int) -> dict:
    import httpx

    pool = request_pool()
    with served("streaming", child_env()) as (url, proc, t_up):
        log(f"server up on {url} after {t_up:.1f} s; {clients} clients x {per_client} requests")
        n = clients * per_client
        lat = np.full(n, np.nan)
        status = np.zeros(n, dtype=np.int32)  # -1: connection error, 0: not sent
        klass = [""] * n
        wrong = Counter()
        lock = threading.Lock()
        deadline = time.perf_counter() + time_limit
        names, weights = list(MIX), list(MIX.values())

        def worker(w: int):
            rng = random.Random(seed + w)
            with httpx.Client(base_url=url, timeout=60, headers={"content-type": "application/json"}) as c:
                for k in range(per_client):
                    if time.perf_counter() > deadline:
                        return
                    i = w * per_client + k
                    cls = rng.choices(names, weights)[0]
                    body, query = rng.choice(pool[cls])
                    klass[i] = cls
                    t = time.perf_counter()
                    try:
                        r = c.post("/predict" + query, content=body)
                        status[i] = r.status_code
                        ok = answer_ok(cls, r.status_code, r.text)
                    except httpx.HTTPError:
                        status[i], ok = -1, False
                    lat[i] = time.perf_counter() - t
                    if not ok and status[i] != -1:
                        with lock:
                            wrong[cls] += 1

        wall, load_before, load_after = run_clients(worker, clients)
        alive = proc.poll() is None
        health = None
        if alive:
            try:
                health = httpx.get(f"{url}/health", timeout=5).status_code
            except httpx.HTTPError:
                health = -1
        sent = status != 0
        ms = lat[sent] * 1000
        by_class = defaultdict(Counter)
        for i in np.flatnonzero(sent):
            s = int(status[i])
            by_class[klass[i]]["conn" if s == -1 else f"{s // 100}xx"] += 1
        return {"clients": clients, "requests_planned": n, "requests": int(sent.sum()),
                "2xx": int(((status >= 200) & (status < 300)).sum()),
                "4xx": int(((status >= 400) & (status < 500)).sum()), "5xx": int((status >= 500).sum()),
                "connection_errors": int((status == -1).sum()), "wrong_answers": dict(wrong),
                "status_counts": {str(k): int(v) for k, v in Counter(status[sent].tolist()).items()},
                "by_class": {k: dict(v) for k, v in by_class.items()},
                "seconds": wall, "rps": float(sent.sum() / wall),
                "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max()), "server_alive_after": alive, "health_after": health,
                "stopped_by_time_limit": bool(sent.sum() < n), "load_before": load_before,
                "load_after": load_after}


# ------------------------------------------------------------------------------ crash tests
def temp_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


def run_full(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``cmd`` to the end: (seconds, seconds its temporary files or folders existed: the write)."""
    before = set(temp_entries(cwd))
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = gone = None
    while p.poll() is None:
        now = set(temp_entries(cwd)) - before
        if now and seen is None:
            seen = time.perf_counter()
        if seen is not None and gone is None and not now:
            gone = time.perf_counter()
        time.sleep(0.001)
    end = time.perf_counter()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed ({p.returncode}): {p.stderr.read()[-2000:]}")
    return end - t, ((gone or end) - seen) if seen is not None else 0.0


def kill_at(cmd: list[str], cwd: Path, delay: float, after_write_starts: bool) -> bool:
    """Start ``cmd`` and ``kill -9`` it ``delay`` s after its start, or (``after_write_starts``) ``delay`` s
    after its first temporary file or folder appears in ``cwd``; whether it was still running then."""
    before = set(temp_entries(cwd))
    p = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if after_write_starts:
        while p.poll() is None and not set(temp_entries(cwd)) - before:
            time.sleep(0.001)
    try:
        p.wait(delay)
        return False
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return True


UPEC_INPUTS = ["content", "resolution", "bitrate_video", "age_user", "sex_user"]


def table_whole(path: Path, n: int) -> bool:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError):
        return False
    return len(df) == n and not df.isna().any().any()


def model_whole(path: Path) -> bool:
    if not all((path / f).is_file() for f in ("model.json", "model.safetensors", "metrics.json")):
        return False
    sys.path.insert(0, str(ROOT / "src"))
    from deepqoe.predictor import load_predictor

    try:
        load_predictor(path)
    except Exception:  # noqa: BLE001 - any failure to load is a half model here
        return False
    return True


def crash_test(name: str, cmd: list[str], work: Path, out: Path, whole, kills: int, rng: random.Random) -> dict:
    full, window = run_full(cmd, work)
    log(f"{name}: a full run takes {full:.1f} s, its write {window * 1000:.0f} ms; {kills} kills at random delays")
    res = {"command": name, "full_run_s": full, "write_s": window, "kills": 0, "killed_while_running": 0,
           "killed_mid_write": 0, "half_outputs_after_kill": 0, "temp_left_by_kills": 0}
    for k in range(kills):
        # every other kill lands at a random moment of the run, the others at a random moment of the write
        # (a window a random moment of the run rarely hits)
        targeted = k % 2 == 1
        delay = rng.uniform(0.0, 0.9 * window) if targeted else rng.uniform(0.3, 1.0) * full
        before = set(temp_entries(work))
        running = kill_at(cmd, work, delay, targeted)
        left = set(temp_entries(work)) - before
        res["kills"] += 1
        res["killed_while_running"] += running
        res["killed_mid_write"] += bool(left)
        res["temp_left_by_kills"] += len(left)
        res["half_outputs_after_kill"] += not whole(out)
        log(f"  kill -9 {delay:.3f} s after the {'write began' if targeted else 'start'}: running={running}, "
            f"temp entries left={len(left)}, "
            f"output whole={whole(out)}")
    run_full(cmd, work)
    res["leftovers_after_next_run"] = len(temp_entries(work))
    res["output_whole_after_next_run"] = whole(out)
    return res


def crash_tests(kills: int, seed: int) -> list[dict]:
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "tests"))
    import yaml
    from conftest import INPUTS, synthetic_table

    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="deepqoe-crash-"))
    try:
        rows = synthetic_table(200_000, seed=seed).rename(columns={"genre": "content", "bitrate": "bitrate_video",
                                                                   "age": "age_user", "sex": "sex_user"})
        rows[UPEC_INPUTS].to_csv(work / "rows.csv", index=False)
        predict = crash_test("deepqoe predict upec-qoe-lab rows.csv --out pred.csv (200,000 rows)",
                             deepqoe_cmd("predict", "upec-qoe-lab", "rows.csv", "--out", "pred.csv", "-q"),
                             work, work / "pred.csv", lambda p: table_whole(p, len(rows)), kills, rng)
        synthetic_table(2000).to_csv(work / "table.csv", index=False)
        cfg = {"dataset": {"name": "synthetic", "source": "table.csv", "task": "classification",
                           "target": "rating", "group": "title", "id": "id", "inputs": INPUTS,
                           "classes": [1, 2, 3, 4, 5]},
               "model": {"hidden_layers": [1024, 512]},  # a model file of a few MB: a longer write
               "training": {"max_epochs": 5, "patience": 5, "batch_size": 64}}
        (work / "train.yaml").write_text(yaml.safe_dump(cfg))
        train = crash_test("deepqoe train train.yaml --out model",
                           deepqoe_cmd("train", "train.yaml", "--out", "model", "-q"),
                           work, work / "model", model_whole, kills, rng)
        return [predict, train]
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------ report
def section(load: dict, crash: list[dict], info: dict) -> str:
    L = load
    lines = ["## Measured: service load and crash tests", "",
             f"`python bench/bench_reliability.py` on {info['date']}, machine: {info['machine']} "
             f"({info['cpus']} logical CPUs, shared with other jobs: load average {L['load_before']:.1f} before "
             f"the load test, {L['load_after']:.1f} after, so speed figures are lower bounds).", "",
             "### Service load", "",
             f"One `deepqoe serve streaming` process on 127.0.0.1; {L['clients']} client threads with keep-alive "
             f"httpx connections, {L['requests']:,} requests of {L['requests_planned']:,} planned "
             f"(mix: {', '.join(f'{k} {v:.0%}' for k, v in MIX.items())}).", "",
             "| requests | 2xx | 4xx | 5xx | connection errors | wrong answers | requests/s | p50 (ms) | p99 (ms) "
             "| max (ms) |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {L['requests']:,} | {L['2xx']:,} | {L['4xx']:,} | {L['5xx']} | {L['connection_errors']} | "
             f"{sum(L['wrong_answers'].values())} | {L['rps']:.0f} | {L['p50_ms']:.1f} | {L['p99_ms']:.1f} | "
             f"{L['max_ms']:.0f} |", "",
             "| request class | expected | 2xx | 4xx | 5xx | connection errors |", "|---|---|---:|---:|---:|---:|"]
    for cls in MIX:
        c = L["by_class"].get(cls, {})
        lines.append(f"| {cls} | {', '.join(map(str, sorted(EXPECT[cls])))} | {c.get('2xx', 0)} | "
                     f"{c.get('4xx', 0)} | {c.get('5xx', 0)} | {c.get('conn', 0)} |")
    lines += ["", f"Status codes: {', '.join(f'{k}: {v}' for k, v in sorted(L['status_counts'].items()))}. "
              f"Server alive afterwards: {'yes' if L['server_alive_after'] else 'NO'} "
              f"(`GET /health` -> {L['health_after']}).", "",
              "### Crash tests (`kill -9` at random delays)", "",
              "| command | full run (s) | write (ms) | kills | killed while running | killed mid-write (temp file there) | "
              "half outputs after a kill | temp entries left by the kills | leftovers after the next run | "
              "output whole after it |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in crash:
        lines.append(f"| `{c['command']}` | {c['full_run_s']:.1f} | {c['write_s'] * 1000:.0f} | {c['kills']} | {c['killed_while_running']} | "
                     f"{c['killed_mid_write']} | "
                     f"{c['half_outputs_after_kill']} | {c['temp_left_by_kills']} | {c['leftovers_after_next_run']} | "
                     f"{'yes' if c['output_whole_after_next_run'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8, help="client threads (default: 8)")
    ap.add_argument("--requests-per-client", type=int, default=1250, help="requests per client (default: 1250)")
    ap.add_argument("--time-limit", type=float, default=240.0,
                    help="stop sending after this many seconds (default: 240)")
    ap.add_argument("--kills", type=int, default=6, help="kill -9 runs per command (default: 6)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    ap.add_argument("--json", help="also write the raw results to this file")
    args = ap.parse_args(argv)
    if args.clients * args.requests_per_client > 100_000 or args.clients > 64 or args.kills > 50:
        ap.error("bounded: at most 100,000 requests, 64 clients and 50 kills")
    info = {"machine": machine(), "cpus": os.cpu_count(), "date": date.today().isoformat(),
            "python": platform.python_version()}
    load = load_test(args.clients, args.requests_per_client, args.time_limit, args.seed)
    log(json.dumps(load, indent=1))
    crash = crash_tests(args.kills, args.seed)
    log(json.dumps(crash, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "load": load, "crash": crash}, indent=1))
    print(section(load, crash, info))
    bad = (load["5xx"] or load["connection_errors"] or load["wrong_answers"] or not load["server_alive_after"]
           or any(c["half_outputs_after_kill"] or c["leftovers_after_next_run"] or not c["output_whole_after_next_run"]
                  for c in crash))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
