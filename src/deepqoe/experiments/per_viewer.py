"""Per-viewer QoE on upec-qoe-lab (issue 13 part 3): the ``per_viewer`` section of ``deepqoe reproduce``.

Recipe in ``recipes/per_viewer.yaml``; the networks are those of ``configs/upec-qoe-lab.yaml`` (no viewer
input) and ``configs/upec-qoe-lab-viewers.yaml`` (the same plus ``id_user`` with ``role: viewer``, the
shipped model's config; see :mod:`deepqoe.viewers`).

(a) **Seen viewers**: the upec table's repeated 90/10 splits (the configs' evaluation seed), DeepQoE with
    and without the viewer input, random forest and LightGBM with and without ``id_user`` as a feature
    (:func:`deepqoe.workflow.evaluate_config` on each config: the same splits for every method).
(b) **Held-out viewers**: group k-fold by ``id_user``. Per fold, the viewer-aware network and the network
    without viewer input are trained on the other viewers; each held-out viewer's ratings are put in a
    seeded random order, :func:`deepqoe.viewers.adapt_viewer` adds the viewer from the first k, and the
    rest are scored: before (the population prediction, viewer unknown), after, and by the network
    without viewer input, all on the same ratings (only viewers with more than k ratings; n reported).
Accuracy and macro-F1 from :mod:`deepqoe.evaluation.metrics` (pooled over the scored ratings in (b)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepqoe.evaluation.metrics import classification_metrics
from deepqoe.evaluation.parallel import run_parallel
from deepqoe.evaluation.statistics import paired_test
from deepqoe.experiments.common import Settings, load_recipe
from deepqoe.report import fmt_p, fmt_pm, md_table

RECIPE = load_recipe("per_viewer")


def _configs():
    from deepqoe.config import load_config
    from deepqoe.datasets.registry import CONFIG_DIR

    return {k: load_config(CONFIG_DIR / v) for k, v in RECIPE["configs"].items()}


def _seen(which: str, n_splits: int, max_epochs: int | None, baselines: list[str]) -> dict:
    from deepqoe.workflow import evaluate_config

    res = evaluate_config(_configs()[which], protocol="repeated", n_splits=n_splits, baselines=baselines,
                          progress=False, max_epochs=max_epochs)
    res.pop("_pooled")
    return res


def _fold(k_fold: int, train: np.ndarray, test: np.ndarray, max_epochs: int | None) -> dict:
    """One fold of (b): per k, the scored ratings' truth and the three predictions."""
    from deepqoe.datasets import load_dataset
    from deepqoe.estimators import estimator_from_config
    from deepqoe.viewers import adapt_viewer

    cfgs = _configs()
    data = load_dataset(cfgs["with"].dataset)
    over = {"max_epochs": max_epochs} if max_epochs else {}
    seed = RECIPE["seed"] + k_fold
    X, y = data.X, data.y
    with_v = estimator_from_config(cfgs["with"], data.inputs, random_state=seed, **over).fit(X.iloc[train], y[train])
    plain = [i for i in data.inputs if i.get("role") != "viewer"]
    without = estimator_from_config(cfgs["without"], plain, random_state=seed, **over).fit(X.iloc[train], y[train])
    col = RECIPE["viewer_column"]
    ids = X[col].astype(str).to_numpy()
    rng = np.random.default_rng(RECIPE["seed"] * 1000 + k_fold)
    out = {k: {"y": [], "before": [], "after": [], "without": [], "viewers": 0} for k in RECIPE["ks"]}
    for viewer in sorted(set(ids[test])):
        rows = rng.permutation(test[ids[test] == viewer])
        Xv, yv = X.iloc[rows].reset_index(drop=True), y[rows]
        before, plain_pred = with_v.predict(Xv), without.predict(Xv)
        for k in RECIPE["ks"]:
            if len(rows) <= k:
                continue
            after = adapt_viewer(with_v, Xv, yv, viewer, k).predict(Xv.iloc[k:])
            o = out[k]
            o["viewers"] += 1
            o["y"] += yv[k:].tolist()
            o["before"] += before[k:].tolist()
            o["after"] += after.tolist()
            o["without"] += plain_pred[k:].tolist()
    return out


def _scores(y, pred, classes: list) -> dict:
    m = classification_metrics(y, pred, classes)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


def run(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    from deepqoe.datasets import load_dataset
    from deepqoe.evaluation.protocols import make_splits

    sizes = RECIPE["quick" if settings.quick else "full"]
    max_epochs = sizes["max_epochs"] or (settings.epochs_small if settings.quick else None)
    n_splits = settings.shallow_splits
    cfg = _configs()["with"]
    data, classes = load_dataset(cfg.dataset), list(cfg.dataset.classes)
    col = RECIPE["viewer_column"]
    folds = make_splits("group-kfold", len(data), groups=data.X[col].astype(str).to_numpy(),
                        n_splits=sizes["folds"], seed=RECIPE["seed"])
    log(f"[per_viewer] seen viewers: {n_splits} x 90/10 splits; held-out viewers: {len(folds)}-fold by {col}")
    baselines = sizes.get("baselines", RECIPE["baselines"])
    tasks = [("seen", (w, n_splits, max_epochs, baselines)) for w in ("without", "with")] + \
        [("fold", (i, f.train, f.test, max_epochs)) for i, f in enumerate(folds)]
    done = run_parallel(_task, tasks, settings.jobs)
    seen = {"without": done[0], "with": done[1]}
    res: dict = {"dataset": "upec-qoe-lab", "n_rows": len(data), "n_viewers": int(data.X[col].nunique()),
                 "goal_accuracy": RECIPE["goal_accuracy"], "seen": {}, "held_out": {}}
    # (a) seen viewers
    rows_a = []
    names = {"deepqoe": "DeepQoE", "random_forest": "random forest", "lightgbm": "LightGBM"}
    for m in ["deepqoe"] + baselines:
        label = names.get(m, m)
        r = {}
        for which in ("without", "with"):
            ms = seen[which]["methods"][m]["metrics"]
            r[which] = {k: ms[k] for k in ("accuracy", "macro_f1")}
        test = paired_test(r["with"]["accuracy"]["values"], r["without"]["accuracy"]["values"])
        res["seen"][m] = {**r, "paired_test_accuracy": test}
        rows_a.append([label] + [fmt_pm(r[w][k]["mean"], r[w][k]["std"]) for k in ("accuracy", "macro_f1")
                                 for w in ("without", "with")]
                      + [f"{test['mean_difference']:+.3f}", fmt_p(test["t_pvalue"])])
    # (b) held-out viewers, pooled over folds
    parts = done[2:]
    rows_b = []
    for k in RECIPE["ks"]:
        y = sum((p[k]["y"] for p in parts), [])
        nv = sum(p[k]["viewers"] for p in parts)
        if not y:
            res["held_out"][str(k)] = {"n_viewers": 0, "n_ratings": 0}
            rows_b.append([k, 0, 0, "-", "-", "-", "-", "-", "-"])
            continue
        s = {w: _scores(y, sum((p[k][w] for p in parts), []), classes) for w in ("before", "after", "without")}
        res["held_out"][str(k)] = {"n_viewers": nv, "n_ratings": len(y), **s}
        rows_b.append([k, nv, len(y)] + [f"{s[w][m]:.3f}" for m in ("accuracy", "macro_f1")
                                         for w in ("without", "before", "after")])
    dq = res["seen"]["deepqoe"]["with"]["accuracy"]["mean"]
    best_after = max((v["after"]["accuracy"] for v in res["held_out"].values() if "after" in v), default=float("nan"))
    goal = RECIPE["goal_accuracy"]
    md = [
        "## Per-viewer QoE\n",
        f"UPEC QoE controlled lab ({len(data)} ratings, 1-5, by {res['n_viewers']} viewers). The network of "
        "`configs/upec-qoe-lab.yaml` without and with the viewer input of `configs/upec-qoe-lab-viewers.yaml` "
        "(`id_user`, `role: viewer`: a learned 8-d viewer embedding mapped to an offset of the class scores, "
        "code 0 = unknown viewer, trained with 30 % of rows' viewer replaced by unknown so the unknown bucket is "
        "the population model; `deepqoe.viewers`).\n",
        f"**Seen viewers**: the upec table's {n_splits} repeated 90/10 splits (seed 0); mean ± std over splits; "
        "paired t-test of with vs without the viewer input. Random forest and LightGBM take `id_user` as one "
        "more categorical feature.\n",
        md_table(["method", "accuracy without viewer", "accuracy with viewer", "macro-F1 without",
                  "macro-F1 with", "accuracy difference", "t-test p"],
                 [[r[0], r[1], r[2], r[3], r[4], r[5], r[6]] for r in rows_a]),
        f"**Held-out viewers**: {len(folds)}-fold group split by `id_user`; each held-out viewer's ratings in "
        "a seeded random order, k-shot adaptation (`adapt_viewer`: one new embedding row initialised from the "
        "unknown viewer and trained alone, L2 pull toward it; every other weight unchanged) on the first k, "
        "scored on the rest. Pooled over the scored ratings of viewers with more than k ratings (n below); "
        "*before* = the same viewer-aware network with the viewer unknown (population prediction), *without* "
        "= the network trained without viewer input, all on the same ratings.\n",
        md_table(["k", "viewers", "ratings scored", "accuracy without", "accuracy before", "accuracy after",
                  "macro-F1 without", "macro-F1 before", "macro-F1 after"], rows_b),
        f"Goal: {goal:.2f} accuracy once the viewer is known. Measured: {dq:.3f} for seen viewers with the "
        f"viewer input, {best_after:.3f} at best after k-shot adaptation of held-out viewers: the goal is "
        f"{'met' if max(dq, best_after) >= goal else 'missed'}.\n",
    ]
    return "\n".join(md), res


def _task(kind: str, args: tuple):
    return _seen(*args) if kind == "seen" else _fold(*args)
