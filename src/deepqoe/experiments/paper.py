"""The DeepQoE paper (Zhang et al., ICME 2019), re-run on public stand-in data.

The paper's datasets (WHU-MVQoE2016 and its large JND set) were never released; each experiment names
the public dataset that stands in for them. Every experiment returns ``(markdown, results)``; the
markdown holds tables shaped like the paper's, the results every number of those tables.

* ``shallow``  (Fig. 2/3): five shallow learners on the original features vs on the DeepQoE
  representation (a :class:`~deepqoe.estimators.DeepQoERepresentation` in a ``Pipeline``), UPEC lab data.
* ``mos``      (Table 1): MOS regression per condition, per-title log-bitrate baseline vs DeepQoE.
* ``genre``    (Table 2, Fig. 4): leave one genre out.
* ``ugc``      (Fig. 5, Table 3): KoNViD-1k and YouTube-UGC under the VIDEVAL protocol (SVR, LightGBM,
  DeepQoE on the same splits), 4-class classification, and training times.
* ``transfer``: pre-train on KoNViD-1k, fine-tune on YouTube-UGC (frozen / fine-tuned / scratch).
* ``streaming``: built in :mod:`deepqoe.experiments.streaming` (merged here when importable).

Splits come from :mod:`deepqoe.evaluation.protocols` (the VIDEVAL splits are scikit-learn's
``train_test_split`` with the authors' seeds, as their protocol prescribes), metrics from
:mod:`deepqoe.evaluation.metrics`, summaries and paired tests from :mod:`deepqoe.evaluation.statistics`.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError
from deepqoe.evaluation import metrics as M
from deepqoe.evaluation.protocols import Split, make_splits
from deepqoe.evaluation.statistics import paired_test, summarise
from deepqoe.report import (Report, bar_chart, confusion_plot, fmt, fmt_p, fmt_pm, line_plot, md_table,
                            scatter_plot)

# ------------------------------------------------------------------------------------------ settings


@dataclass
class Settings:
    """How much work each experiment does (a full run vs ``--quick``)."""

    quick: bool
    jobs: int = 2
    ugc_splits: int = 20
    shallow_splits: int = 10
    mos_splits: int = 10
    epochs_small: int = 300       # UPEC networks (tiny data: epochs are cheap)
    seeds_small: int = 3          # ensemble for the small regression experiments
    ugc_epochs: int = 150
    ugc_seeds: int = 12           # DeepQoE regression ensemble size on the UGC data (chosen on splits 91-100)
    ugc_class_seeds: int = 3      # DeepQoE classifier ensemble size on the UGC data
    ugc_class_splits: int = 10
    transfer_splits: int = 5
    transfer_fractions: tuple = (0.1, 0.25, 0.5, 1.0)
    streaming_splits: int | None = None         # LIVE-NFLX splits, cheap methods (None: the module's default)
    streaming_neural_splits: int | None = None  # of which the neural methods run the first N

    @classmethod
    def make(cls, quick: bool, ugc_splits: int | None = None, jobs: int = 2) -> "Settings":
        if quick:
            s = cls(quick=True, jobs=jobs, ugc_splits=2, shallow_splits=3, mos_splits=3, epochs_small=60,
                    seeds_small=1, ugc_epochs=25, ugc_seeds=1, ugc_class_seeds=1, ugc_class_splits=1,
                    transfer_splits=1, transfer_fractions=(0.25, 1.0))
        else:
            s = cls(quick=False, jobs=jobs)
        if ugc_splits is not None:
            s.ugc_splits = int(ugc_splits)
        s.ugc_class_splits = min(s.ugc_class_splits, s.ugc_splits)
        s.transfer_splits = min(s.transfer_splits, s.ugc_splits)
        return s


_WORKER_CPU_SECONDS = [0.0]  # CPU time spent in worker processes (the main process counts its own)
_CPU_KEY = "_worker_cpu_seconds"


def _parallel(fn: Callable, tasks: list[tuple], jobs: int) -> list:
    """Run ``fn(*task)`` for each task, in ``jobs`` worker processes (each with one torch thread).

    Each task returns a dict; the workers add their CPU time under ``_CPU_KEY``, removed here."""
    if jobs <= 1 or len(tasks) <= 1:
        return [fn(*t) for t in tasks]
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=min(jobs, len(tasks)), backend="loky")(delayed(_in_worker)(fn, t) for t in tasks)
    for r in out:
        if isinstance(r, dict):
            _WORKER_CPU_SECONDS[0] += float(r.pop(_CPU_KEY, 0.0))
    return out


def _in_worker(fn: Callable, task: tuple):
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    t = time.process_time()
    r = fn(*task)
    if isinstance(r, dict):
        r[_CPU_KEY] = time.process_time() - t
    return r


def _time(fn: Callable, *a, **k) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


# ------------------------------------------------------------------------------------------ UPEC data
UPEC_FILE = ("upec-qoe-lab", "QoEcontrolledLab.csv")
UPEC_CLASSES = [1, 2, 3, 4, 5]


def _data_root() -> Path:
    from deepqoe.datasets import data_dir

    return data_dir()


def load_upec() -> pd.DataFrame:
    """The UPEC controlled-lab ratings (one row per viewer rating)."""
    from deepqoe.io import read_table

    path = _data_root().joinpath(*UPEC_FILE)
    df = read_table(path, sep=";", decimal=",")
    need = ["id_video", "content", "resolution", "bitrate_video", "age_user", "sex_user", "mos"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DeepQoEError(f"missing column(s): {', '.join(missing)}", file=str(path))
    df = df.copy()
    df["resolution"] = df["resolution"].astype(int).astype(str)
    df["mos"] = df["mos"].astype(int)
    return df


def upec_conditions(df: pd.DataFrame) -> pd.DataFrame:
    """MOS per video condition: the ratings of one source video (``id_video``) at one resolution."""
    g = df.groupby(["id_video", "resolution"], sort=True)
    out = g.agg(content=("content", "first"), bitrate_video=("bitrate_video", "mean"),
                mos=("mos", "mean"), n_ratings=("mos", "size")).reset_index()
    return out


UPEC_RATING_INPUTS = [
    {"column": "content", "modality": "text", "projection": 5},
    {"column": "resolution", "modality": "categorical", "embedding_dim": 8, "projection": None},
    {"column": "bitrate_video", "modality": "continuous", "log": True, "projection": 8},
    {"column": "age_user", "modality": "continuous", "projection": 8},
    {"column": "sex_user", "modality": "categorical", "embedding_dim": 1, "projection": None},
]
UPEC_CONDITION_INPUTS = [
    {"column": "content", "modality": "text", "projection": 5},
    {"column": "resolution", "modality": "categorical", "embedding_dim": 8, "projection": None},
    {"column": "bitrate_video", "modality": "continuous", "log": True, "projection": 8},
]


def _small_net(settings: Settings, seed: int) -> dict:
    """The paper's small-dataset network (FC 512, 256, dropout 0.5)."""
    return dict(hidden_layers=(512, 256), dropout=0.5, optimizer="adam", learning_rate=1e-3,
                batch_size=32, max_epochs=settings.epochs_small, patience=max(10, settings.epochs_small // 6),
                validation_fraction=0.1, random_state=seed)


# ------------------------------------------------------------------------------ shallow learners


def shallow_learners(seed: int = 0) -> dict:
    """The paper's five learners (one definition, in deepqoe.shallow), one job each: splits run in parallel."""
    from deepqoe.shallow import paper_learners

    return paper_learners(seed, n_jobs=1)


def original_features(categorical: list[str], numeric: list[str]):
    """The 'original features' of the shallow learners (deepqoe.shallow.original_features)."""
    from deepqoe.shallow import original_features as features

    return features([{"column": c, "modality": "categorical"} for c in categorical] +
                    ([{"column": "numeric", "modality": "continuous", "columns": list(numeric)}] if numeric else []))


def _shallow_split(split: Split, df: pd.DataFrame, settings: Settings) -> dict:
    from sklearn.base import clone
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from deepqoe.estimators import DeepQoERepresentation

    X, y = df, df["mos"].to_numpy()
    Xtr, Xte, ytr, yte = X.iloc[split.train], X.iloc[split.test], y[split.train], y[split.test]
    seed = int(split.name.removeprefix("split") or 0)
    rep = DeepQoERepresentation(task="classification", inputs=UPEC_RATING_INPUTS, classes=UPEC_CLASSES,
                                **_small_net(settings, seed))
    _, t_rep = _time(rep.fit, Xtr, ytr)  # fitted on the training split only
    out = {"split": split.name, "deepqoe": {"accuracy": float(np.mean(rep.estimator_.predict(Xte) == yte))},
           "deepqoe_fit_seconds": t_rep, "orig": {}, "rep": {},
           "deepqoe_pred": rep.estimator_.predict(Xte).tolist(), "y_test": yte.tolist()}
    feats = original_features(["content", "resolution", "sex_user"], ["bitrate_video", "age_user"])
    for name, learner in shallow_learners(seed).items():
        orig = Pipeline([("features", clone(feats)), ("clf", clone(learner))]).fit(Xtr, ytr)
        # The network is fitted once per split (above, on the training split) and shared by the five
        # Pipelines: FrozenEstimator makes the Pipeline's fit leave it as it is.
        on_rep = Pipeline([("deepqoe", FrozenEstimator(rep)), ("scale", StandardScaler()),
                           ("clf", clone(learner))]).fit(Xtr, ytr)
        out["orig"][name] = float(np.mean(orig.predict(Xte) == yte))
        out["rep"][name] = float(np.mean(on_rep.predict(Xte) == yte))
    return out


def run_shallow(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    df = load_upec()
    splits = make_splits("repeated", len(df), n_splits=settings.shallow_splits, test_size=0.1, seed=0)
    log(f"[shallow] {len(splits)} x 90/10 splits of {len(df)} ratings")
    per = _parallel(_shallow_split, [(s, df, settings) for s in splits], settings.jobs)
    learners = list(shallow_learners())
    rows, res = [], {"dataset": "upec-qoe-lab", "n_rows": len(df), "n_splits": len(splits),
                     "metric": "accuracy", "learners": {}}
    for name in learners:
        a = [p["orig"][name] for p in per]
        b = [p["rep"][name] for p in per]
        test = paired_test(b, a)
        so, sr = summarise([{"accuracy": v} for v in a])["accuracy"], summarise([{"accuracy": v} for v in b])["accuracy"]
        res["learners"][name] = {"original": so, "deepqoe_representation": sr, "paired_test": test}
        rows.append([name, fmt_pm(so["mean"], so["std"]), fmt_pm(sr["mean"], sr["std"]),
                     f"{test['mean_difference']:+.3f}", fmt_p(test["t_pvalue"]), fmt_p(test["wilcoxon_pvalue"])])
    dq = summarise([p["deepqoe"] for p in per])["accuracy"]
    res["deepqoe"] = dq
    res["deepqoe_fit_seconds"] = float(np.mean([p["deepqoe_fit_seconds"] for p in per]))
    rows.append(["DeepQoE (its own softmax head)", "-", fmt_pm(dq["mean"], dq["std"]), "", "", ""])
    majority = float(pd.Series(df["mos"]).value_counts(normalize=True).max())
    res["majority_class_rate"] = majority
    y_all = sum((p["y_test"] for p in per), [])
    p_all = sum((p["deepqoe_pred"] for p in per), [])
    cm = M.confusion_matrix(y_all, p_all, UPEC_CLASSES)
    res["deepqoe_confusion_matrix"] = cm.tolist()
    bar_chart(out_dir / "shallow_accuracy.png", learners,
              {"original features": [res["learners"][n]["original"]["mean"] for n in learners],
               "DeepQoE representation": [res["learners"][n]["deepqoe_representation"]["mean"] for n in learners]},
              errors={"original features": [res["learners"][n]["original"]["std"] for n in learners],
                      "DeepQoE representation": [res["learners"][n]["deepqoe_representation"]["std"] for n in learners]},
              title="UPEC lab: accuracy (5 classes), mean over splits", ylabel="accuracy", ylim=(0, 1))
    confusion_plot(out_dir / "shallow_confusion.png", cm, [str(c) for c in UPEC_CLASSES],
                   title="DeepQoE, UPEC lab ratings (all test splits)")
    better = [n for n in learners if res["learners"][n]["paired_test"]["mean_difference"] > 0]
    md = [
        "## 1. Representation helps shallow learners (paper Fig. 2/3)\n",
        "Stand-in data: **UPEC QoE controlled lab** (562 individual ratings, 1-5, of 24 videos by 62 viewers) "
        "for the paper's unreleased WHU-MVQoE2016. Inputs as in the paper: genre (`content`) as text through "
        "GloVe 6B-50d, resolution (categorical), video bitrate, viewer age, viewer sex. Target: the viewer's "
        f"rating, 5 classes. {len(splits)} random 90/10 splits; mean ± std of test accuracy; paired t-test "
        "and Wilcoxon test of representation vs original per learner.\n",
        "*Original features*: one-hot genre / resolution / sex plus standardised bitrate and age. *DeepQoE "
        "representation*: the last hidden layer (256) of a DeepQoE classifier trained on the training split "
        "only, as a `DeepQoERepresentation` step of a scikit-learn `Pipeline` (standardised, then the learner). "
        "The network is fitted once per split and shared by the five pipelines (`FrozenEstimator`).\n",
        md_table(["learner", "original features", "DeepQoE representation", "difference", "t-test p",
                  "Wilcoxon p"], rows),
        f"Majority-class rate: {majority:.3f}. Learners improved by the representation: "
        f"{', '.join(better) if better else 'none'} ({len(better)} of {len(learners)}).\n",
        "Paper: the representation lifted every shallow learner on WHU-MVQoE2016. Here the ratings are "
        "individual viewers' scores, which disagree a lot for the same condition, so every method is far from "
        "perfect; compare the columns, not the absolute numbers, with the paper.\n",
        "![accuracy per learner](shallow_accuracy.png) ![DeepQoE confusion matrix](shallow_confusion.png)\n",
    ]
    return "\n".join(md), res


# ------------------------------------------------------------------------------ MOS regression


def per_title_log_bitrate(train: pd.DataFrame, test: pd.DataFrame, title: str = "content") -> np.ndarray:
    """The paper's baseline: for each title, MOS = a + b log(bitrate) fitted on that title's training
    conditions (a global fit when a title has fewer than 2 distinct bitrates in training)."""
    def fit(d):
        x, yv = np.log(d["bitrate_video"].to_numpy(float)), d["mos"].to_numpy(float)
        if len(np.unique(x)) < 2:
            return None
        return np.polyfit(x, yv, 1)

    glob = fit(train)
    pred = np.empty(len(test))
    for i, (_, r) in enumerate(test.iterrows()):
        coef = fit(train[train[title] == r[title]])
        coef = glob if coef is None else coef
        pred[i] = np.polyval(coef, math.log(r["bitrate_video"]))
    return pred


def _deepqoe_regress(Xtr, ytr, Xte, inputs, settings: Settings, seeds: int, base_seed: int = 0,
                     **overrides) -> np.ndarray:
    from deepqoe.estimators import DeepQoERegressor

    preds = []
    for s in range(seeds):
        params = _small_net(settings, base_seed * 100 + s)
        params.update(overrides)
        preds.append(DeepQoERegressor(inputs=inputs, **params).fit(Xtr, ytr).predict(Xte))
    return np.mean(preds, 0)


def _mos_split(split: Split, cond: pd.DataFrame, settings: Settings) -> dict:
    tr, te = cond.iloc[split.train], cond.iloc[split.test]
    base = per_title_log_bitrate(tr, te)
    seed = int(split.name.removeprefix("split") or 0)
    dq = _deepqoe_regress(tr, tr["mos"].to_numpy(float), te, UPEC_CONDITION_INPUTS, settings,
                          settings.seeds_small, seed)
    return {"split": split.name, "test_index": split.test.tolist(), "baseline": base.tolist(),
            "deepqoe": dq.tolist()}


PAPER_TABLE1 = {"deepqoe_mse": 0.298, "baseline_mse": 0.126}


def run_mos(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    cond = upec_conditions(load_upec())
    splits = make_splits("repeated", len(cond), n_splits=settings.mos_splits, test_size=0.1, seed=0)
    log(f"[mos] {len(cond)} conditions, {len(splits)} x 90/10 splits")
    per = _parallel(_mos_split, [(s, cond, settings) for s in splits], settings.jobs)
    y = cond["mos"].to_numpy(float)
    split_mse = {"baseline": [], "deepqoe": []}
    pooled = []
    for p in per:
        idx = np.asarray(p["test_index"])
        for m in split_mse:
            split_mse[m].append(float(np.mean((y[idx] - np.asarray(p[m])) ** 2)))
        for j, i in enumerate(idx):
            pooled.append({"i": int(i), "baseline": p["baseline"][j], "deepqoe": p["deepqoe"][j]})
    pooled = pd.DataFrame(pooled)
    pooled["title"] = cond["content"].to_numpy()[pooled["i"]]
    pooled["mos"] = y[pooled["i"]]
    titles = sorted(cond["content"].unique())
    per_title = {}
    rows = []
    for t in titles:
        d = pooled[pooled["title"] == t]
        e = {m: float(np.mean((d["mos"] - d[m]) ** 2)) if len(d) else float("nan") for m in split_mse}
        per_title[t] = {"n_conditions": int((cond["content"] == t).sum()), "n_test_predictions": int(len(d)),
                        "baseline_mse": e["baseline"], "deepqoe_mse": e["deepqoe"]}
        rows.append([t, per_title[t]["n_conditions"], len(d), fmt(e["baseline"]), fmt(e["deepqoe"])])
    summ = {m: summarise([{"mse": v} for v in split_mse[m]])["mse"] for m in split_mse}
    test = paired_test(split_mse["deepqoe"], split_mse["baseline"])
    rows.append(["**mean over splits**", len(cond), len(pooled), fmt_pm(summ["baseline"]["mean"], summ["baseline"]["std"]),
                 fmt_pm(summ["deepqoe"]["mean"], summ["deepqoe"]["std"])])
    rows.append(["paper (WHU-MVQoE2016)", "", "", fmt(PAPER_TABLE1["baseline_mse"]), fmt(PAPER_TABLE1["deepqoe_mse"])])
    extra = {m: M.regression_metrics(pooled["mos"], pooled[m]) for m in split_mse}
    scatter_plot(out_dir / "mos_scatter.png", pooled["mos"], pooled["deepqoe"], groups=pooled["title"].tolist(),
                 title="DeepQoE, MOS per condition (UPEC lab), pooled test splits")
    res = {"dataset": "upec-qoe-lab (MOS per id_video x resolution)", "n_conditions": len(cond),
           "n_splits": len(splits), "mse": summ, "paired_test": test, "per_title": per_title,
           "pooled_metrics": extra, "paper": PAPER_TABLE1}
    winner = "DeepQoE" if summ["deepqoe"]["mean"] < summ["baseline"]["mean"] else "the per-title baseline"
    md = [
        "## 2. MOS regression (paper Table 1)\n",
        "Stand-in data: the UPEC lab ratings averaged per **video condition**. A condition here is one source "
        "video (`id_video`) at one resolution: each `id_video` was watched at up to 6 resolutions with very "
        "different bitrates, so averaging per `id_video` alone (24 rows, ~3 per genre) would erase the bitrate "
        f"the baseline regresses on. This gives {len(cond)} conditions (1-{int(cond['n_ratings'].max())} "
        f"ratings each, median {int(cond['n_ratings'].median())}). {len(splits)} random 90/10 splits of the "
        "conditions, the same for both methods.\n",
        "*Baseline* (paper): per title (genre here), MOS = a + b·log(bitrate) fitted on the title's training "
        "conditions. *DeepQoE*: one network for all titles from genre (GloVe), resolution and log-bitrate "
        f"(ensemble of {settings.seeds_small} seed(s)). MSE per title over all test predictions, and mean ± std of "
        "the per-split MSE.\n",
        md_table(["title (genre)", "conditions", "test predictions", "baseline MSE", "DeepQoE MSE"], rows),
        f"Paired t-test over splits (DeepQoE - baseline MSE): difference {test['mean_difference']:+.3f}, "
        f"p = {fmt_p(test['t_pvalue'])}. Lower MSE here: **{winner}**. In the paper (figures as quoted in our "
        "brief: DeepQoE 0.298, baseline 0.126) the per-video baseline had the lower MSE on its data. Our "
        "conditions average few, noisy individual ratings, so both MSEs are dominated by rating noise.\n",
        "![DeepQoE predicted vs MOS](mos_scatter.png)\n",
    ]
    return "\n".join(md), res


# ------------------------------------------------------------------------------ unseen genre


def _genre_fold(split: Split, cond: pd.DataFrame, settings: Settings) -> dict:
    tr, te = cond.iloc[split.train], cond.iloc[split.test]
    ytr = tr["mos"].to_numpy(float)
    x = np.log(tr["bitrate_video"].to_numpy(float))
    coef = np.polyfit(x, ytr, 1)
    base = np.polyval(coef, np.log(te["bitrate_video"].to_numpy(float)))
    dq = _deepqoe_regress(tr, ytr, te, UPEC_CONDITION_INPUTS, settings, settings.seeds_small, 0)
    as_cat = [dict(UPEC_CONDITION_INPUTS[0], modality="categorical", embedding_dim=5, projection=None)] + \
        UPEC_CONDITION_INPUTS[1:]
    dq_cat = _deepqoe_regress(tr, ytr, te, as_cat, settings, settings.seeds_small, 0)
    return {"genre": split.name.removeprefix("group="), "y": te["mos"].tolist(), "baseline": base.tolist(),
            "deepqoe": dq.tolist(), "deepqoe_categorical_genre": dq_cat.tolist()}


def _compare(gain: float, small: float = 0.02) -> str:
    """Words for an MSE gain (positive = better)."""
    if abs(gain) < small:
        return "makes little difference"
    return "helps" if gain > 0 else "hurts"


def run_genre(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    cond = upec_conditions(load_upec())
    splits = make_splits("group", len(cond), groups=cond["content"].to_numpy())
    log(f"[genre] leave one genre out: {len(splits)} genres")
    per = _parallel(_genre_fold, [(s, cond, settings) for s in splits], settings.jobs)
    methods = {"deepqoe": "DeepQoE (genre as GloVe text)",
               "deepqoe_categorical_genre": "DeepQoE (genre as a category)",
               "baseline": "global log-bitrate regression"}
    res = {"dataset": "upec-qoe-lab (MOS per id_video x resolution)", "protocol": "leave one genre out",
           "genres": {}}
    rows = []
    for p in per:
        g = p["genre"]
        res["genres"][g] = {"n_conditions": len(p["y"])}
        row = [g, len(p["y"])]
        for m in methods:
            r = M.regression_metrics(p["y"], p[m])
            res["genres"][g][m] = {"mse": r["mse"], "srocc": r["srocc"]}
            row += [fmt(r["mse"]), fmt(r["srocc"])]
        rows.append(row)
    mean = {m: {k: float(np.mean([res["genres"][g][m][k] for g in res["genres"]])) for k in ("mse", "srocc")}
            for m in methods}
    res["mean"] = mean
    rows.append(["**mean over genres**", ""] + sum(([fmt(mean[m]["mse"]), fmt(mean[m]["srocc"])] for m in methods), []))
    all_y = sum((p["y"] for p in per), [])
    pooled = {m: M.regression_metrics(all_y, sum((p[m] for p in per), [])) for m in methods}
    res["pooled"] = {m: {"mse": pooled[m]["mse"], "srocc": pooled[m]["srocc"]} for m in methods}
    rows.append(["**all held-out conditions pooled**", len(all_y)] +
                sum(([fmt(pooled[m]["mse"]), fmt(pooled[m]["srocc"])] for m in methods), []))
    best = min(methods, key=lambda m: pooled[m]["mse"])
    genres = list(res["genres"])
    bar_chart(out_dir / "genre_mse.png", genres,
              {methods[m]: [res["genres"][g][m]["mse"] for g in genres] for m in methods},
              title="Unseen genre: MSE on the held-out genre", ylabel="MSE")
    all_p = sum((p["deepqoe"] for p in per), [])
    all_g = sum(([p["genre"]] * len(p["y"]) for p in per), [])
    scatter_plot(out_dir / "genre_scatter.png", all_y, all_p, groups=all_g,
                 title="DeepQoE on unseen genres (each point predicted with its genre held out)")
    header = ["held-out genre", "conditions"] + sum(([f"{v} MSE", "SROCC"] for v in methods.values()), [])
    md = [
        "## 3. Unseen genre (paper Table 2, Fig. 4)\n",
        "Same conditions as Table 1. Each genre in turn is held out: the models are trained on the other "
        "genres and tested on it. The text embedding (GloVe) gives an unseen genre a meaningful input, where "
        "a learned category embedding can only map it to the unknown bucket; the global log-bitrate line is "
        "the genre-blind baseline. SROCC within one genre is over its ~15 conditions, so it is noisy.\n",
        md_table(header, rows, align="lr" + "r" * 6),
        f"Lowest pooled MSE on unseen genres: **{methods[best]}**. Games has only 3 conditions (all at 360p), "
        "so its SROCC is ±0.5 or 1 by construction; the pooled row weighs every condition once. The paper "
        "reports that DeepQoE generalises to an unseen genre thanks to the word embedding; here the GloVe "
        f"input {_compare(pooled['deepqoe_categorical_genre']['mse'] - pooled['deepqoe']['mse'])} "
        "compared with a plain category (pooled MSE "
        f"{pooled['deepqoe']['mse']:.3f} vs {pooled['deepqoe_categorical_genre']['mse']:.3f}), and bitrate and "
        "resolution carry most of what can be predicted.\n",
        "![MSE per held-out genre](genre_mse.png) ![DeepQoE on unseen genres](genre_scatter.png)\n",
    ]
    return "\n".join(md), res


# ------------------------------------------------------------------------------ UGC (VIDEVAL features)
UGC_DATASETS = {"konvid-1k": "KoNViD-1k", "youtube-ugc": "YouTube-UGC"}
VIDEVAL_PUBLISHED = {"konvid-1k": {"srocc": 0.7832, "plcc": 0.7803},
                     "youtube-ugc": {"srocc": 0.7787, "plcc": 0.7733}}
TARGET_SROCC = 0.80
# 4 quality classes cut from the MOS (1-5 scale) at fixed thresholds:
# bad < 2.5 <= fair < 3.5 <= good < 4.0 <= excellent.
MOS_CLASS_THRESHOLDS = (2.5, 3.5, 4.0)
MOS_CLASSES = ["bad", "fair", "good", "excellent"]


def mos_classes(y) -> np.ndarray:
    return np.asarray(MOS_CLASSES, dtype=object)[np.digitize(np.asarray(y, float), MOS_CLASS_THRESHOLDS)]


def ugc_inputs(data, with_metadata: bool = True) -> list[dict]:
    """DeepQoE inputs on the UGC sets: the 60 VIDEVAL features as one vector input, plus (YouTube-UGC)
    the category as text and the resolution as a category."""
    inputs = [{"column": "feats", "modality": "vector", "columns": list(data.feature_columns),
               "normalisation": "standard", "projection": 128}]
    if with_metadata and "category" in data.X.columns:
        inputs += [{"column": "category", "modality": "text", "projection": 8},
                   {"column": "resolution", "modality": "categorical", "embedding_dim": 4, "projection": None}]
    return inputs


def ugc_net(settings: Settings, seed: int) -> dict:
    """The DeepQoE recipe on the UGC sets (chosen on VIDEVAL splits 91-100, never on reported ones)."""
    return dict(hidden_layers=(256, 128), dropout=0.3, optimizer="adamw", learning_rate=2e-3,
                weight_decay=1e-3, batch_size=64, max_epochs=settings.ugc_epochs,
                patience=5 if settings.quick else 15, validation_fraction=0.1, random_state=seed)


def _gbm_matrix(data) -> pd.DataFrame:
    X = data.X[data.feature_columns].copy()
    if "category" in data.X.columns:
        X["category"] = data.X["category"].astype("category")
        X["resolution"] = data.X["resolution"].astype(int)
    return X


def _gbm(seed: int):
    from lightgbm import LGBMRegressor

    return LGBMRegressor(n_estimators=400, learning_rate=0.03, num_leaves=15, min_child_samples=10,
                         subsample=0.8, subsample_freq=1, colsample_bytree=0.7, reg_lambda=1.0,
                         random_state=seed, n_jobs=1, verbose=-1)


def _ugc_split(data, i: int, settings: Settings, classify: bool) -> dict:
    from deepqoe.datasets.videval import SVR_C_RANGE, SVR_GAMMA_RANGE, videval_split, videval_svr_fit
    from deepqoe.estimators import DeepQoEClassifier, DeepQoERegressor

    split = videval_split(len(data.y), i)
    y = data.y
    ytr, yte = y[split.train], y[split.test]
    F = data.features
    out: dict[str, Any] = {"split": i, "metrics": {}, "seconds": {}, "pred": {}, "y_test": yte.tolist()}
    # 1. SVR, exactly VIDEVAL's protocol (features only); a coarser grid in quick runs
    grid = (SVR_C_RANGE, SVR_GAMMA_RANGE) if not settings.quick else (SVR_C_RANGE[::3], SVR_GAMMA_RANGE[::3])
    svr, info = videval_svr_fit(F[split.train], ytr, i, *grid)
    out["svr"] = info
    out["seconds"]["SVR (grid search + fit)"] = info["grid_search_seconds"] + info["fit_seconds"]
    out["seconds"]["SVR (final fit only)"] = info["fit_seconds"]
    out["pred"]["SVR (VIDEVAL)"] = svr.predict(F[split.test])
    # 2. gradient boosting on the same inputs as DeepQoE
    G = _gbm_matrix(data)
    gbm, t = _time(_gbm(i).fit, G.iloc[split.train], ytr)
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
        feats = original_features(cat, list(data.feature_columns))
        for name, learner in shallow_learners(i).items():
            pipe = Pipeline([("features", clone(feats)), ("clf", clone(learner))])
            _, t = _time(pipe.fit, Xtr, ctr)
            csec[name] = t
            acc[name] = float(np.mean(pipe.predict(Xte) == cte))
        out["class_accuracy"] = acc
        out["class_seconds"] = csec
        out["class_confusion"] = M.confusion_matrix(cte.tolist(), dq_pred.tolist(), MOS_CLASSES).tolist()
    return out


def run_ugc(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    from deepqoe.datasets.videval import load_videval

    datas = {k: load_videval(k) for k in UGC_DATASETS}
    tasks = [(datas[k], i, settings, i <= settings.ugc_class_splits)
             for k in UGC_DATASETS for i in range(1, settings.ugc_splits + 1)]
    log(f"[ugc] {settings.ugc_splits} VIDEVAL splits x {len(datas)} datasets, {settings.jobs} worker(s)")
    t0 = time.perf_counter()
    flat = _parallel(_ugc_split, tasks, settings.jobs)
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


# ------------------------------------------------------------------------------ transfer learning


def _transfer_task(target, i: int, fraction: float, pretrained, settings: Settings) -> dict:
    from deepqoe.datasets.videval import videval_split
    from deepqoe.estimators import DeepQoERegressor

    split = videval_split(len(target.y), i)
    rng = np.random.default_rng(1000 * i + int(fraction * 100))
    n_sub = max(20, int(math.ceil(fraction * len(split.train))))
    sub = np.sort(rng.permutation(split.train)[:n_sub]) if fraction < 1 else split.train
    Xtr, ytr = target.X.iloc[sub], target.y[sub]
    Xte, yte = target.X.iloc[split.test], target.y[split.test]
    inputs = ugc_inputs(target, with_metadata=False)
    out = {"split": i, "fraction": fraction, "n_train": int(len(sub)), "metrics": {}, "seconds": {}}
    modes = {"from scratch": {},
             "frozen representation": {"init_from": pretrained, "freeze_representation": True},
             "full fine-tune": {"init_from": pretrained, "learning_rate": 3e-4}}
    for mode, extra in modes.items():
        params = ugc_net(settings, 7 * i)
        params.update(extra)
        est, t = _time(DeepQoERegressor(inputs=inputs, **params).fit, Xtr, ytr)
        r = M.regression_metrics(yte, est.predict(Xte), logistic=True)
        out["metrics"][mode] = {"srocc": r["srocc"], "plcc_logistic": r["plcc_logistic"], "rmse": r["rmse"]}
        out["seconds"][mode] = t
    return out


def run_transfer(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    from deepqoe.datasets.videval import load_videval
    from deepqoe.estimators import DeepQoERegressor

    source, target = load_videval("konvid-1k"), load_videval("youtube-ugc")
    inputs = ugc_inputs(source, with_metadata=False)
    pre, t_pre = _time(DeepQoERegressor(inputs=inputs, **ugc_net(settings, 12345)).fit, source.X, source.y)
    log(f"[transfer] pre-trained on KoNViD-1k in {t_pre:.1f} s; fine-tuning on YouTube-UGC")
    tasks = [(target, i, f, pre, settings) for i in range(1, settings.transfer_splits + 1)
             for f in settings.transfer_fractions]
    flat = _parallel(_transfer_task, tasks, settings.jobs)
    modes = ["from scratch", "frozen representation", "full fine-tune"]
    table, rows = {}, []
    for f in settings.transfer_fractions:
        runs = [r for r in flat if r["fraction"] == f]
        table[str(f)] = {"n_train": int(np.mean([r["n_train"] for r in runs])),
                         **{m: {k: summarise([r["metrics"][m] for r in runs])[k] for k in ("srocc", "plcc_logistic")}
                            for m in modes},
                         "fit_seconds": {m: float(np.mean([r["seconds"][m] for r in runs])) for m in modes}}
        rows.append([f"{int(round(100 * f))} %", table[str(f)]["n_train"]] +
                    [fmt(table[str(f)][m]["srocc"]["median"], 4) for m in modes] +
                    [fmt(table[str(f)][m]["plcc_logistic"]["median"], 4) for m in modes])
    line_plot(out_dir / "transfer_srocc.png", [100 * f for f in settings.transfer_fractions],
              {m: [table[str(f)][m]["srocc"]["median"] for f in settings.transfer_fractions] for m in modes},
              title="KoNViD-1k -> YouTube-UGC (60-d VIDEVAL features)", xlabel="% of target training data",
              ylabel="median SROCC")
    fr = settings.transfer_fractions
    won = [f"{int(round(100 * f))} %" for f in fr
           if table[str(f)]["full fine-tune"]["srocc"]["median"] > table[str(f)]["from scratch"]["srocc"]["median"]]
    wins = len(won)
    frozen_worst = all(table[str(f)]["frozen representation"]["srocc"]["median"] <=
                       min(table[str(f)][m]["srocc"]["median"] for m in modes) for f in fr)
    res = {"source": "konvid-1k (all 1200 videos)", "target": "youtube-ugc (1323 colour videos)",
           "inputs": inputs, "pretrain_seconds": t_pre, "n_splits": settings.transfer_splits,
           "fractions": list(settings.transfer_fractions), "results": table,
           "mechanism": "DeepQoERegressor(init_from=<pre-trained estimator>, freeze_representation=True|False)"}
    md = [
        "## 5. Transfer learning: KoNViD-1k -> YouTube-UGC\n",
        "A DeepQoE regressor is pre-trained on all of KoNViD-1k (60-d VIDEVAL features only, the input both "
        "datasets share), then trained on a fraction of each YouTube-UGC training split: *frozen "
        "representation* (weights copied with `init_from`, only the head trained: `freeze_representation=True`), "
        "*full fine-tune* (all weights from the pre-trained net, learning rate 3e-4) and *from scratch* (same "
        f"recipe, random weights). Medians over the first {settings.transfer_splits} VIDEVAL splits of "
        "YouTube-UGC; the test part is always the whole 20 % test split. The feature standardisation is refitted "
        "on the target's training data.\n",
        md_table(["target data", "training videos"] + [f"SROCC {m}" for m in modes] + [f"PLCC {m}" for m in modes],
                 rows),
        f"Full fine-tuning beats training from scratch at {wins} of {len(fr)} target-data fractions "
        f"({', '.join(won) if won else 'none'}). The frozen KoNViD-1k "
        f"representation {'is the worst of the three everywhere' if frozen_worst else 'is not always the worst'}: "
        "a representation learned on KoNViD-1k's content and subjective study does not carry over unchanged to "
        "YouTube-UGC; it needs adapting, not just a new head.\n",
        "![transfer](transfer_srocc.png)\n",
    ]
    return "\n".join(md), res


# ------------------------------------------------------------------------------ streaming (other module)


def run_streaming(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    import importlib

    try:
        streaming = importlib.import_module("deepqoe.experiments.streaming")
    except ModuleNotFoundError as e:
        if e.name == "deepqoe.experiments.streaming":
            return ("## Streaming QoE\n\nNot run: `deepqoe.experiments.streaming` is not built yet.\n",
                    {"status": "not available"})
        raise
    out = streaming.run(Path(out_dir), settings.quick, n_splits=settings.streaming_splits,
                        n_neural=settings.streaming_neural_splits, jobs=settings.jobs, log=log)
    if not isinstance(out, dict):
        return "## Streaming QoE\n\n(the streaming experiment returned no results)\n", {"status": "no results"}
    md = None
    for key in ("markdown", "report", "report_md"):
        if isinstance(out.get(key), str):
            md = out[key]
            break
    results = out.get("results", {k: v for k, v in out.items() if k not in ("markdown", "report", "report_md")})
    if md is None:
        mdp = Path(out_dir) / "streaming.md"
        md = mdp.read_text(encoding="utf-8") if mdp.is_file() else \
            "## Streaming QoE\n\nSee `results.json` (key `streaming`) for the numbers.\n"
    return md, results


# ------------------------------------------------------------------------------ driver

RUNNERS = {"shallow": run_shallow, "mos": run_mos, "genre": run_genre, "ugc": run_ugc,
           "transfer": run_transfer, "streaming": run_streaming}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    import sklearn
    import torch

    return {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s)",
            "processor": _cpu_model(), "python": platform.python_version(),
            "torch": torch.__version__, "scikit-learn": sklearn.__version__,
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def run_reproduce(experiments: list[str], out_dir: str | os.PathLike, quick: bool = False,
                  ugc_splits: int | None = None, jobs: int = 2, log: Callable = print,
                  streaming_splits: int | None = None, streaming_neural_splits: int | None = None
                  ) -> tuple[Path, Path]:
    """Run the named experiments; write ``report.md`` and ``results.json`` into ``out_dir``."""
    from deepqoe import __version__

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DeepQoEError("the output path exists and is not a folder", file=str(out_dir))
    unknown = [e for e in experiments if e not in RUNNERS]
    if unknown:
        raise DeepQoEError(f"unknown experiment(s): {', '.join(unknown)}; choose from {', '.join(RUNNERS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.make(quick, ugc_splits, jobs)
    settings.streaming_splits, settings.streaming_neural_splits = streaming_splits, streaming_neural_splits
    needs_data = [e for e in experiments if e != "streaming"]
    if needs_data:
        _data_root()
    rep = Report("DeepQoE paper reproduction" + (" (quick run)" if quick else ""))
    info = machine_info() | {"deepqoe": __version__, "quick": quick, "experiments": experiments,
                             "settings": {k: v for k, v in vars(settings).items()}}
    rep.results["run"] = info
    rep.add(
        f"Run {info['date']} on {info['machine']} (Python {info['python']}, torch {info['torch']})"
        f"{'; **quick run**: fewer splits, seeds and epochs than the full run, numbers are indicative only' if quick else ''}.\n\n"
        "The paper's datasets (WHU-MVQoE2016, the large JND dataset) were never released: each section "
        "names the public stand-in dataset used instead, and says where our result differs from the paper's. "
        "Every number of this report is in `results.json`.\n")
    t_all, cpu0, wcpu0 = time.perf_counter(), time.process_time(), _WORKER_CPU_SECONDS[0]
    for name in experiments:
        t = time.perf_counter()
        log(f"[{name}] running")
        md, res = RUNNERS[name](settings, out_dir, log=log)
        sec = time.perf_counter() - t
        res = dict(res) if isinstance(res, dict) else {"value": res}
        res["seconds"] = sec
        rep.results[name] = res
        rep.add(md.rstrip() + f"\n\n*({name}: {sec:.0f} s)*\n")
        log(f"[{name}] done in {sec:.0f} s")
        rep.results["run"]["seconds"] = time.perf_counter() - t_all
        rep.write(out_dir)  # write as we go: a crash late in the run keeps the finished sections
    rep.results["run"]["seconds"] = time.perf_counter() - t_all
    cpu = time.process_time() - cpu0 + _WORKER_CPU_SECONDS[0] - wcpu0
    rep.results["run"]["cpu_seconds"] = cpu
    load = rep.results["run"].get("load_average_at_start")
    rep.add(f"Total run time: {rep.results['run']['seconds']:.0f} s wall, {cpu:.0f} s CPU (main process and "
            f"workers; on an otherwise idle machine the wall time is about CPU / {settings.jobs})."
            + (f" 1-minute load average at the start: {load[0]:.1f} on {os.cpu_count()} CPUs (other work on the "
               "machine slows every timing of this report alike)." if load else "") + "\n")
    return rep.write(out_dir)
