"""Does the streaming model hold on sessions it has never seen?  (issue: a streaming model that generalises)

    python -m deepqoe.experiments.streaming_generalisation --out DIR [--quick]

1. **Leave one dataset out** over every shared dataset with session scores (P.1203 open, Waterloo
   SQoE-IV, LIVE-NFLX): the model (:data:`deepqoe.sessions.training.RECIPE`) trains on the others (and on
   the continuous-time ratings, without LIVE-NFLX's when LIVE-NFLX is left out) and is tested on the one
   left out. Beside it, on the same held-out sessions: each single input with its sign fixed in advance
   (mean quality +, mean log-bitrate +, number of stalls -, total stall time -), P.1203's own O46 where
   the data has it, and the previous shipped model (:data:`PREVIOUS_RECIPE`, retrained on the same
   datasets: :func:`previous_recipe_predict`).
2. **LIVE-NFLX fixed splits** (the release's content-disjoint 80/20 splits): the model trains on the two
   other datasets, the continuous ratings of the training contents and the training sessions' scores; the
   previous shipped model's recipe on the same session scores beside it.
3. **Kinds of session** inside each held-out dataset: stall-only (one quality throughout) and quality-only
   (no rebuffering) subsets, scored with the same left-out predictions (:func:`by_session_kind`).
4. **Behaviour** of the model trained on everything (:func:`deepqoe.evaluation.behaviour.check_model`).

Writes ``streaming_generalisation.json``, ``streaming_generalisation.md`` and a scatter plot per held-out
dataset into the output folder.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from deepqoe.evaluation.parallel import run_parallel
from deepqoe.datasets.scored import load_curve_set, load_session_set, quality_mapping
from deepqoe.experiments.streaming_subsets import (SINGLE_INPUTS, by_session_kind, correlations,  # noqa: F401
                                                   single_inputs, stall_cost_by_quality)
from deepqoe.sessions.training import RECIPE, fit_streaming_model

SESSION_DATASETS = ("p1203-open", "waterloo-sqoe-iv", "live-nflx")
CURVE_DATASETS = ("live-nflx-continuous", "lfovia-qoe")
#: The recipe of the shipped model before this one (shipped until 2026-11-27, the model issue 10 measured): a
#: DeepQoE regressor on the session feature frame (:func:`deepqoe.sessions.frame.session_frame`,
#: ``STREAMING_INPUTS``), scores on the common scale, one network (``scripts/build_pretrained.py`` at
#: c147bcc). Retrained here under each protocol, on the same session scores as ours (it cannot use
#: per-second ratings); its model card's leave-one-dataset-out SROCC were 0.695 / 0.716 / 0.617.
PREVIOUS_RECIPE = dict(hidden_layers=(128, 64), dropout=0.2, learning_rate=1e-3, batch_size=64, max_epochs=60,
                       patience=10, validation_fraction=0.1, random_state=0)


def previous_recipe_predict(train: list, test_sessions: list, recipe: dict | None = None) -> np.ndarray:
    """The previous shipped model's recipe (:data:`PREVIOUS_RECIPE`, or ``recipe``) trained on the session
    sets ``train`` together (early stopping on held-out groups), its predictions for ``test_sessions``."""
    from deepqoe.estimators import DeepQoERegressor
    from deepqoe.sessions.frame import STREAMING_INPUTS, session_frame

    X = session_frame([s for d in train for s in d.sessions]).reset_index(drop=True)
    y = np.concatenate([d.y for d in train])
    groups = np.concatenate([d.groups for d in train])
    est = DeepQoERegressor(inputs=STREAMING_INPUTS, **(recipe or PREVIOUS_RECIPE)).fit(X, y, groups=groups)
    return np.asarray(est.predict(session_frame(test_sessions).reset_index(drop=True)), float)


def _lodo_one(held: str, S: dict, C: dict, mapping, params: dict, previous: dict | None = None) -> dict:
    curves = [C[c] for c in C if not (held == "live-nflx" and c.startswith("live-nflx"))]
    model = fit_streaming_model([S[n] for n in S if n != held], curves, mapping=mapping, **params)
    y = S[held].y
    pred = model.predict_sessions(S[held].sessions)
    row = {"ours": correlations(y, pred), "n": int(len(y)), "trained_on": [n for n in S if n != held]
           + [c.name for c in curves], "prediction": [round(float(v), 4) for v in pred]}
    singles = {k: correlations(y, v) for k, v in single_inputs(S[held].sessions, mapping).items()}
    row["single_inputs"] = singles
    valid = {k: v for k, v in singles.items() if v["srocc"] is not None}
    best = max(valid, key=lambda k: valid[k]["srocc"])
    row["best_single_input"] = {"name": best, **valid[best]}
    if "O46" in S[held].extra:
        row["O46"] = correlations(y, S[held].extra["O46"])
    if previous is not None:
        prev = previous_recipe_predict([S[n] for n in S if n != held], S[held].sessions, previous)
        row["previous_shipped"] = correlations(y, prev)
        row["previous_prediction"] = [round(float(v), 4) for v in prev]
    return row


def leave_one_dataset_out(S: dict, C: dict, mapping, params: dict, log=print, jobs: int = 1,
                          previous: dict | None = None) -> dict:
    """Ours left out of each dataset in turn; with ``previous`` (a :data:`PREVIOUS_RECIPE`), that recipe too."""
    t0 = time.perf_counter()
    rows = run_parallel(_lodo_one, [(held, S, C, mapping, params, previous) for held in S], jobs)
    out = dict(zip(S, rows))
    for held, row in out.items():
        b = row["best_single_input"]
        log(f"  left out {held}: ours SROCC {row['ours']['srocc']:.3f} PLCC {row['ours']['plcc']:.3f}; best single "
            f"input ({b['name']}) {b['srocc']:.3f}")
    log(f"  leave one dataset out: {time.perf_counter() - t0:.0f} s")
    return out


def _split_one(j: int, train_mask, S: dict, C: dict, nflx, mapping, params: dict, previous: dict | None = None
               ) -> dict:
    content = lambda g: re.sub(r"^\D*", "", g.split(":", 1)[1])  # noqa: E731  "content_3" and "3" -> "3"
    cont = C["live-nflx-continuous"]
    tr, te = np.flatnonzero(train_mask[:, j]), np.flatnonzero(~train_mask[:, j])
    train_contents = {content(g) for g in nflx.groups[tr]}
    ctr = [i for i, g in enumerate(cont.groups) if content(g) in train_contents]
    model = fit_streaming_model([S["p1203-open"], S["waterloo-sqoe-iv"], nflx.subset(tr)],
                                [cont.subset(ctr), C["lfovia-qoe"]], mapping=mapping, **params)
    test = [nflx.sessions[i] for i in te]
    row = {"split": j + 1, **correlations(nflx.y[te], model.predict_sessions(test))}
    if previous is not None:
        prev = previous_recipe_predict([S["p1203-open"], S["waterloo-sqoe-iv"], nflx.subset(tr)], test, previous)
        row["previous_shipped"] = correlations(nflx.y[te], prev)
    return row


def _median(rows: list, key: str) -> float | None:
    v = [r[key] for r in rows if r.get(key) is not None]
    return round(float(np.median(v)), 4) if v else None


def live_nflx_splits(S: dict, C: dict, mapping, params: dict, splits: range, metric: str = "VMAF",
                     log=print, jobs: int = 1, previous: dict | None = None) -> dict:
    """Ours on the release's fixed splits, with the per-second quality from ``metric`` (VMAF, or STRRED as
    VideoATLAS uses; see :func:`deepqoe.datasets.live_nflx.load_live_nflx`); with ``previous`` (a
    :data:`PREVIOUS_RECIPE`), that recipe on the same splits and session scores."""
    from deepqoe.datasets.live_nflx import live_nflx_splits as fixed_splits, load_live_nflx
    from deepqoe.datasets.scored import session_set

    t0 = time.perf_counter()
    train_mask = fixed_splits()
    nflx = S["live-nflx"] if metric == "VMAF" else session_set(load_live_nflx(quality_metric=metric))
    per_split = run_parallel(_split_one, [(j, train_mask, S, C, nflx, mapping, params, previous) for j in splits],
                             jobs)
    res = {"quality": metric, "splits": f"{splits.start + 1}-{splits.stop}", "median_srocc": _median(per_split, "srocc"),
           "median_plcc": _median(per_split, "plcc"), "per_split": per_split}
    if previous is not None:
        prev = [r["previous_shipped"] for r in per_split]
        res["previous_shipped"] = {"median_srocc": _median(prev, "srocc"), "median_plcc": _median(prev, "plcc")}
    log(f"  LIVE-NFLX ({metric}) splits {splits.start + 1}-{splits.stop}: median SROCC {res['median_srocc']} "
        f"({time.perf_counter() - t0:.0f} s)")
    return res


def behaviour(S: dict, C: dict, mapping, params: dict, n_sessions: int, log=print) -> dict:
    from deepqoe.evaluation.behaviour import check_model
    from deepqoe.predictor import Predictor

    model = fit_streaming_model(list(S.values()), list(C.values()), mapping=mapping, **params)
    report = check_model(Predictor(model), n_sessions=n_sessions, seed=0)
    log(report.table())
    return report.to_dict()


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _fmt(d: dict | None) -> str:
    if not d or d.get("srocc") is None:
        return "-"
    return f"{d['srocc']:.3f} / {d['plcc']:.3f}"


def markdown(res: dict) -> str:
    lines = ["### Leave one dataset out (SROCC / PLCC on the held-out dataset)", "",
             "| held out | n | ours | best single input | " + " | ".join(SINGLE_INPUTS)
             + " | P.1203 O46 | previous shipped model (its recipe, retrained) |", "|---|---:|---:|---:|" + "---:|" * len(SINGLE_INPUTS) + "---:|---:|"]
    for d, r in res["lodo"].items():
        b = r["best_single_input"]
        lines.append(f"| {d} | {r['n']} | **{_fmt(r['ours'])}** | {_fmt(b)} ({b['name']}) | "
                     + " | ".join(_fmt(r["single_inputs"][k]) for k in SINGLE_INPUTS)
                     + f" | {_fmt(r.get('O46'))} | {_fmt(r.get('previous_shipped'))} |")
    if res.get("stall_cost"):
        lines += ["", "### What a stall costs, by quality (held-out dataset; mean score without rebuffering minus "
                      "with more than 4 s of it, same sessions)", "",
                  "| held out | mean quality | sessions (none / > 4 s) | viewers (MOS) | ours (left out) |",
                  "|---|---|---:|---:|---:|"]
        for d, rows in res["stall_cost"].items():
            lines += [f"| {d} | {r['quality']} | {r['n_clean']} / {r['n_stalled']} | {r['observed']:.2f} | "
                      f"{r['predicted']:.2f} |" for r in rows]
        err = [abs(r["observed"] - r["predicted"]) for rows in res["stall_cost"].values() for r in rows]
        lines += ["", f"Mean absolute difference between the two columns: {np.mean(err):.2f} over {len(err)} cells."]
    if res.get("by_kind"):
        lines += ["", "### Kinds of session inside each held-out dataset (SROCC / PLCC; same predictions as above)", "",
                  "| held out | sessions | n (with stalls) | ours | " + " | ".join(SINGLE_INPUTS)
                  + " | previous shipped model |", "|---|---|---:|---:|" + "---:|" * (len(SINGLE_INPUTS) + 1)]
        for d, rows in res["by_kind"].items():
            lines += [f"| {d} | {r['kind']} | {r['n']} ({r['with_stalls']}) | **{_fmt(r['ours'])}** | "
                      + " | ".join(_fmt(r["single_inputs"][k]) for k in SINGLE_INPUTS)
                      + f" | {_fmt(r.get('previous_shipped'))} |" for r in rows]
    if res.get("live_nflx"):
        lines += ["", "### LIVE-NFLX fixed splits (trained on P.1203 open, Waterloo SQoE-IV, LFOVIA and the split's "
                      "training contents of LIVE-NFLX)", "", "| per-second quality | splits | median SROCC | median PLCC "
                      "| previous shipped model (its recipe, same session scores): median SROCC / PLCC |",
                  "|---|---|---:|---:|---:|"]
        for n in res["live_nflx"]:
            prev = n.get("previous_shipped") or {}
            prev = _fmt({"srocc": prev.get("median_srocc"), "plcc": prev.get("median_plcc")})
            lines.append(f"| {n['quality']} | {n['splits']} | {_num(n['median_srocc'])} | {_num(n['median_plcc'])} "
                         f"| {prev} |")
    if res.get("behaviour"):
        lines += ["", "### Behaviour of the model trained on everything", "",
                  "| relation | expected | checked | held | violated |", "|---|---|---:|---:|---:|"]
        for r in res["behaviour"]["relations"]:
            counts = "skipped | | " if r["skipped"] else f"{r['checked']} | {r['held']} | {r['violated']}"
            lines.append(f"| {r['relation']} | {r['description']} | {counts} |")
    lines += ["", f"Recipe: `{json.dumps(res['recipe'])}`; run time {res['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def plot(res: dict, S: dict, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res["lodo"]), figsize=(4 * len(res["lodo"]), 3.6))
    for ax, (d, r) in zip(np.atleast_1d(axes), res["lodo"].items()):
        ax.scatter(r["prediction"], S[d].y, s=6, alpha=0.5)
        ax.set_title(f"{d} (left out)\nSROCC {r['ours']['srocc']:.3f}")
        ax.set_xlabel("predicted QoE (1-5)")
        ax.set_ylabel("MOS (common 1-5 scale)")
    fig.tight_layout()
    path = out_dir / "streaming_generalisation.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def run(settings, out_dir: Path, log=print) -> tuple[str, dict]:
    """The ``deepqoe reproduce streaming_generalisation`` section."""
    res = run_experiment(Path(out_dir), quick=settings.quick, log=log, jobs=settings.jobs)
    return markdown(res), res


def run_experiment(out_dir: Path, quick: bool = False, log=print, nflx_splits: int | None = None,
                   behaviour_sessions: int | None = None, jobs: int = 2) -> dict:
    from deepqoe.io import atomic_write_json, atomic_write_text

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = dict(RECIPE, **({"epochs": 60, "n_members": 1} if quick else {}))
    previous = dict(PREVIOUS_RECIPE, **({"max_epochs": 5} if quick else {}))
    S = {n: load_session_set(n) for n in SESSION_DATASETS}
    C = {n: load_curve_set(n) for n in CURVE_DATASETS}
    mapping = quality_mapping()
    res = {"recipe": params, "previous_recipe": previous,
           "lodo": leave_one_dataset_out(S, C, mapping, params, log, jobs, previous)}
    res["stall_cost"] = stall_cost_by_quality(S, res["lodo"], mapping)
    res["by_kind"] = by_session_kind(S, res["lodo"], mapping)
    n = nflx_splits if nflx_splits is not None else (2 if quick else 20)
    if n:
        res["live_nflx"] = [live_nflx_splits(S, C, mapping, dict(params, n_members=1), range(100, 100 + n), m, log,
                                             jobs, previous) for m in ("VMAF", "STRRED")]
    res["behaviour"] = behaviour(S, C, mapping, params, behaviour_sessions or (100 if quick else 1000), log)
    res["seconds"] = time.perf_counter() - t0
    res["plot"] = plot(res, S, out_dir)
    atomic_write_json(out_dir / "streaming_generalisation.json", res)
    atomic_write_text(out_dir / "streaming_generalisation.md", markdown(res))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 60 epochs, 1 member, 2 LIVE-NFLX splits")
    ap.add_argument("--nflx-splits", type=int, default=None, help="LIVE-NFLX splits (from split 101; default 20)")
    args = ap.parse_args(argv)
    import sys

    import torch

    torch.set_num_threads(1)
    res = run_experiment(Path(args.out), quick=args.quick, nflx_splits=args.nflx_splits, log=lambda m: print(m, file=sys.stderr))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
