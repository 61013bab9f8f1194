"""Section 4 (paper Fig. 5, Table 3): KoNViD-1k and YouTube-UGC under the VIDEVAL protocol.

SVR (VIDEVAL's own method), LightGBM and DeepQoE on the same splits; 4-class classification; training
times. Recipe in ``recipes/ugc.yaml``, shallow learners and their settings in :mod:`deepqoe.shallow`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepqoe.evaluation import metrics as M
from deepqoe.evaluation.parallel import run_parallel
from deepqoe.evaluation.protocols import videval_split
from deepqoe.evaluation.statistics import paired_test, summarise
from deepqoe.experiments.common import Settings, timed
from deepqoe.experiments.ugc import (MOS_CLASS_THRESHOLDS, MOS_CLASSES, RECIPE, TARGET_SROCC, UGC_DATASETS,
                                     VIDEVAL_PUBLISHED, mos_classes, ugc_inputs, ugc_net)
from deepqoe.report import bar_chart, confusion_plot, fmt, fmt_pm, md_table, scatter_plot
from deepqoe.shallow import SVR_C_RANGE, SVR_GAMMA_RANGE, lightgbm, original_features, paper_learners, videval_svr_fit


def _gbm_matrix(data) -> pd.DataFrame:
    X = data.X[data.feature_columns].copy()
    if "category" in data.X.columns:
        X["category"] = data.X["category"].astype("category")
        X["resolution"] = data.X["resolution"].astype(int)
    return X


def _split(data, i: int, settings: Settings, classify: bool) -> dict:
    from deepqoe.estimators import DeepQoEClassifier, DeepQoERegressor

    split = videval_split(len(data.y), i)
    y = data.y
    ytr, yte = y[split.train], y[split.test]
    F = data.features
    out: dict[str, Any] = {"split": i, "metrics": {}, "seconds": {}, "pred": {}, "y_test": yte.tolist()}
    # 1. SVR, exactly VIDEVAL's protocol (features only); a coarser grid in quick runs
    k = RECIPE["svr_quick_grid_stride"] if settings.quick else 1
    svr, info = videval_svr_fit(F[split.train], ytr, i, SVR_C_RANGE[::k], SVR_GAMMA_RANGE[::k])
    out["svr"] = info
    out["seconds"]["SVR (grid search + fit)"] = info["grid_search_seconds"] + info["fit_seconds"]
    out["seconds"]["SVR (final fit only)"] = info["fit_seconds"]
    out["pred"]["SVR (VIDEVAL)"] = svr.predict(F[split.test])
    # 2. gradient boosting on the same inputs as DeepQoE
    G = _gbm_matrix(data)
    gbm, t = timed(lightgbm("regression", i, 1, RECIPE["lightgbm"]).fit, G.iloc[split.train], ytr)
    out["seconds"]["LightGBM"] = t
    out["pred"]["LightGBM"] = gbm.predict(G.iloc[split.test])
    # 3. DeepQoE: an ensemble of a few seeds
    Xtr, Xte = data.X.iloc[split.train], data.X.iloc[split.test]
    preds, t0 = [], time.perf_counter()
    epochs = []
    for s in range(settings.ugc_seeds):
        est = DeepQoERegressor(inputs=ugc_inputs(data), **ugc_net(settings, 1000 * i + s)).fit(Xtr, ytr)
        preds.append(est.predict(Xte))
        epochs.append(est.fit_result_.epochs_run)
    out["seconds"][f"DeepQoE ({settings.ugc_seeds} seeds)"] = time.perf_counter() - t0
    out["seconds"]["DeepQoE (one network)"] = out["seconds"][f"DeepQoE ({settings.ugc_seeds} seeds)"] / settings.ugc_seeds
    out["deepqoe_epochs"] = epochs
    out["pred"]["DeepQoE"] = np.mean(preds, 0)
    for name, p in out["pred"].items():
        out["metrics"][name] = M.regression_metrics(yte, p, logistic=True)
        out["pred"][name] = np.asarray(p, float).tolist()
    # 4. classification into 4 classes
    if classify:
        ctr, cte = mos_classes(ytr), mos_classes(yte)
        acc, csec = {}, {}
        probs, t0 = [], time.perf_counter()
        for s in range(settings.ugc_class_seeds):
            clf = DeepQoEClassifier(inputs=ugc_inputs(data), classes=MOS_CLASSES,
                                    **ugc_net(settings, 1000 * i + s)).fit(Xtr, ctr)
            probs.append(clf.predict_proba(Xte))
        csec["DeepQoE"] = time.perf_counter() - t0
        dq_pred = np.asarray(MOS_CLASSES, dtype=object)[np.mean(probs, 0).argmax(1)]
        acc["DeepQoE"] = float(np.mean(dq_pred == cte))
        acc["DeepQoE regression, thresholded"] = float(np.mean(mos_classes(out["pred"]["DeepQoE"]) == cte))
        from sklearn.base import clone
        from sklearn.pipeline import Pipeline

        cat = ["category", "resolution"] if "category" in data.X.columns else []
        feats = original_features([{"column": c, "modality": "categorical"} for c in cat] +
                                  [{"column": "numeric", "modality": "continuous", "columns": list(data.feature_columns)}])
        for name, learner in paper_learners(i, n_jobs=1).items():
            pipe = Pipeline([("features", clone(feats)), ("clf", clone(learner))])
            _, t = timed(pipe.fit, Xtr, ctr)
            csec[name] = t
            acc[name] = float(np.mean(pipe.predict(Xte) == cte))
        out["class_accuracy"] = acc
        out["class_seconds"] = csec
        out["class_confusion"] = M.confusion_matrix(cte.tolist(), dq_pred.tolist(), MOS_CLASSES).tolist()
    return out


def run(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    from deepqoe.datasets.registry import get_dataset

    datas = {k: get_dataset(k).load() for k in UGC_DATASETS}
    tasks = [(datas[k], i, settings, i <= settings.ugc_class_splits)
             for k in UGC_DATASETS for i in range(1, settings.ugc_splits + 1)]
    log(f"[ugc] {settings.ugc_splits} VIDEVAL splits x {len(datas)} datasets, {settings.jobs} worker(s)")
    t0 = time.perf_counter()
    flat = run_parallel(_split, tasks, settings.jobs)
    log(f"[ugc] done in {time.perf_counter() - t0:.0f} s")
    per = {k: [] for k in UGC_DATASETS}
    for (d, *_), r in zip(tasks, flat):
        per[d.name].append(r)
    res: dict[str, Any] = {"protocol": {
        "splits": f"VIDEVAL splits i = 1..{settings.ugc_splits} (train_test_split(test_size=0.2, "
                  "random_state=ceil(8.8 i)); the published protocol uses i = 1..100)",
        "n_splits": settings.ugc_splits, "svr_grid": "C in 2^1..2^10, gamma in 2^-8..2^1 (10 x 10)"
        if not settings.quick else "quick run: 4 x 4 subgrid of VIDEVAL's 10 x 10",
        "class_thresholds": list(MOS_CLASS_THRESHOLDS), "classes": MOS_CLASSES,
        "class_splits": settings.ugc_class_splits, "deepqoe_seeds": settings.ugc_seeds,
        "deepqoe_classifier_seeds": settings.ugc_class_seeds,
        "deepqoe_recipe": ugc_net(settings, 0)}, "datasets": {}}
    reg_rows, cls_rows, time_rows = [], [], []
    methods = ["SVR (VIDEVAL)", "LightGBM", "DeepQoE"]
    for k, label in UGC_DATASETS.items():
        runs = per[k]
        d: dict[str, Any] = {"n_videos": int(len(datas[k].y)), "inputs": ugc_inputs(datas[k]), "regression": {}}
        for m in methods:
            s = summarise([r["metrics"][m] for r in runs])
            d["regression"][m] = {key: s[key] for key in ("srocc", "plcc_logistic", "rmse", "krocc")}
            reg_rows.append([label, m, fmt(s["srocc"]["median"], 4), fmt(s["srocc"]["std"], 4),
                             fmt(s["plcc_logistic"]["median"], 4), fmt(s["plcc_logistic"]["std"], 4),
                             fmt(s["rmse"]["median"], 4)])
        pub = VIDEVAL_PUBLISHED[k]
        reg_rows.append([label, "VIDEVAL published (100 splits)", fmt(pub["srocc"], 4), "", fmt(pub["plcc"], 4), "", ""])
        dq = d["regression"]["DeepQoE"]["srocc"]["median"]
        d["target"] = {"srocc_target": TARGET_SROCC, "deepqoe_srocc_median": dq,
                       "meets_target": bool(dq >= TARGET_SROCC), "gap_to_target": float(TARGET_SROCC - dq),
                       "beats_svr": bool(dq > d["regression"]["SVR (VIDEVAL)"]["srocc"]["median"]),
                       "beats_lightgbm": bool(dq > d["regression"]["LightGBM"]["srocc"]["median"])}
        d["paired_tests_srocc"] = {
            f"DeepQoE vs {m}": paired_test([r["metrics"]["DeepQoE"]["srocc"] for r in runs],
                                           [r["metrics"][m]["srocc"] for r in runs]) for m in methods[:2]}
        d["svr_chosen"] = [{"C": r["svr"]["C"], "gamma": r["svr"]["gamma"]} for r in runs]
        d["deepqoe_epochs_run"] = [e for r in runs for e in r["deepqoe_epochs"]]
        secs = {name: float(np.mean([r["seconds"][name] for r in runs])) for name in runs[0]["seconds"]}
        crun = [r for r in runs if "class_accuracy" in r]
        if crun:
            names = list(crun[0]["class_accuracy"])
            d["classification"] = {n: summarise([{"accuracy": r["class_accuracy"][n]} for r in crun])["accuracy"]
                                   for n in names}
            d["classification_majority_rate"] = float(pd.Series(mos_classes(datas[k].y)).value_counts(normalize=True).max())
            cm = np.sum([r["class_confusion"] for r in crun], 0)
            d["classification_confusion_deepqoe"] = cm.tolist()
            for n in names:
                s = d["classification"][n]
                cls_rows.append([label, n, fmt_pm(s["mean"], s["std"])])
            confusion_plot(out_dir / f"ugc_{k}_confusion.png", cm, MOS_CLASSES,
                           title=f"DeepQoE, 4 classes, {label} ({len(crun)} test splits)")
            for n in crun[0]["class_seconds"]:
                secs[f"{n} (classifier)"] = float(np.mean([r["class_seconds"][n] for r in crun]))
        d["fit_seconds"] = secs
        for n, v in secs.items():
            time_rows.append([label, n, fmt(v, 2)])
        res["datasets"][k] = d
        first = runs[0]
        scatter_plot(out_dir / f"ugc_{k}_scatter.png", first["y_test"], first["pred"]["DeepQoE"],
                     title=f"DeepQoE on {label}, VIDEVAL split 1 (SROCC "
                           f"{first['metrics']['DeepQoE']['srocc']:.3f})")
    bar_chart(out_dir / "ugc_srocc.png", list(UGC_DATASETS.values()),
              {m: [res["datasets"][k]["regression"][m]["srocc"]["median"] for k in UGC_DATASETS] for m in methods}
              | {"VIDEVAL published": [VIDEVAL_PUBLISHED[k]["srocc"] for k in UGC_DATASETS]},
              title=f"Median SROCC over {settings.ugc_splits} VIDEVAL splits", ylabel="SROCC", ylim=(0.5, 0.9))
    verdict = []
    for k, label in UGC_DATASETS.items():
        t = res["datasets"][k]["target"]
        r = res["datasets"][k]["regression"]
        verdict.append(
            f"* **{label}**: DeepQoE median SROCC {t['deepqoe_srocc_median']:.4f} "
            f"({'meets' if t['meets_target'] else 'misses'} the {TARGET_SROCC:.2f} target"
            f"{'' if t['meets_target'] else ' by ' + format(t['gap_to_target'], '.4f')}); "
            f"SVR of this run {r['SVR (VIDEVAL)']['srocc']['median']:.4f}, LightGBM {r['LightGBM']['srocc']['median']:.4f}, "
            f"VIDEVAL published {VIDEVAL_PUBLISHED[k]['srocc']:.4f}. DeepQoE "
            f"{'beats' if t['beats_svr'] else 'does not beat'} the SVR and "
            f"{'beats' if t['beats_lightgbm'] else 'does not beat'} LightGBM.")
    md = [
        "## 4. The large UGC datasets (paper Fig. 5, Table 3)\n",
        "Stand-in data for the paper's unreleased large JND dataset: the 60-d **VIDEVAL** features of "
        "**KoNViD-1k** (1200 videos) and **YouTube-UGC** (1380 videos less the 57 greyscale ones the VIDEVAL "
        "authors drop: 1323). Protocol as VIDEVAL's evaluation script: " + res["protocol"]["splits"] +
        "; NaN/inf features set to 0; SROCC on raw predictions, PLCC after the 4-parameter logistic mapping; "
        "medians and std over the splits. *SVR (VIDEVAL)*: min-max scaling, RBF-SVR with C and gamma picked "
        "on the inner 80/20 split (random_state = ceil(6.6 i)) by the RMSE of logistic-mapped predictions "
        f"({res['protocol']['svr_grid']}), features only, as published. *LightGBM* and *DeepQoE* see the same "
        "inputs: the 60 features, plus for YouTube-UGC the category (DeepQoE: as GloVe text) and resolution. "
        f"DeepQoE: the mean prediction of an ensemble of {settings.ugc_seeds} network(s) that differ only in "
        "their seed (vector projection 128, FC 256-128, dropout 0.3, AdamW, weight decay 1e-3, early stopping "
        f"on 10 % of the training part, at most {settings.ugc_epochs} epochs). The recipe, including the "
        "ensemble size, was chosen on VIDEVAL splits 91-100, which are not among the reported splits: there "
        "the median SROCC rose with the ensemble size (3 -> 12 networks) and levelled off from about 8-12 "
        "networks; dropout, width, weight decay, learning rate, batch size, fixed-epoch training, input noise, "
        "a quantile transform of the features and an SVR on the learned representation (alone or averaged "
        "with the networks) were within noise of it or worse.\n",
        "### Regression (Fig. 5)\n",
        md_table(["dataset", "method", "SROCC median", "SROCC std", "PLCC median", "PLCC std", "RMSE median"],
                 reg_rows, align="llrrrrr"),
        "\n".join(verdict) + "\n",
        ("" if all(res["datasets"][k]["target"]["meets_target"] for k in UGC_DATASETS) else
         "Why the 0.80 target is missed: the 60 VIDEVAL features were *selected by their authors for an "
         "RBF-SVR* on these very datasets, so the SVR is the model they favour; with ~850-1060 training videos a "
         "network has no more information than those 60 numbers (plus category and resolution on YouTube-UGC) "
         "and lands within about ±0.01 SROCC of the SVR, while the split-to-split spread of every method "
         "(std ≈ 0.02-0.03) is larger than the gaps between methods. Getting past 0.80 would need richer "
         "inputs (e.g. deep frame features) rather than a different head on the same features.\n"),
        "![median SROCC](ugc_srocc.png) ![KoNViD-1k scatter](ugc_konvid-1k_scatter.png) "
        "![YouTube-UGC scatter](ugc_youtube-ugc_scatter.png)\n",
        "### Classification into 4 classes\n",
        f"MOS cut at fixed thresholds: bad < {MOS_CLASS_THRESHOLDS[0]} <= fair < {MOS_CLASS_THRESHOLDS[1]} <= good "
        f"< {MOS_CLASS_THRESHOLDS[2]} <= excellent. Accuracy (mean ± std) on the first "
        f"{settings.ugc_class_splits} of the splits above; DeepQoE averages the class probabilities of "
        f"{settings.ugc_class_seeds} network(s); the shallow learners get the standardised features "
        "(plus one-hot category and resolution for YouTube-UGC). *DeepQoE regression, thresholded* cuts the "
        "regression ensemble's predictions at the same thresholds. Paper (large JND set, not public): DeepQoE "
        "90.94 % vs SVM 82.84 %.\n",
        md_table(["dataset", "method", "accuracy"], cls_rows, align="llr"),
        "Majority-class rates: " + ", ".join(
            f"{UGC_DATASETS[k]} {res['datasets'][k].get('classification_majority_rate', float('nan')):.3f}"
            for k in UGC_DATASETS) + ".\n",
        "![KoNViD-1k confusion](ugc_konvid-1k_confusion.png) ![YouTube-UGC confusion](ugc_youtube-ugc_confusion.png)\n",
        "### Training time (Table 3)\n",
        "Mean wall-clock fit time per split in seconds, same data and same run (each worker process uses "
        f"one CPU thread; {settings.jobs} worker(s) ran side by side). The SVR's cost is dominated by VIDEVAL's "
        "grid search.\n",
        md_table(["dataset", "method", "fit seconds"], time_rows, align="llr"),
    ]
    return "\n".join(md), res
