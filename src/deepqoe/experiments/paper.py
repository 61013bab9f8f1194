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
    ugc_seeds: int = 3            # DeepQoE ensemble size on the UGC data
    ugc_class_splits: int = 10
    transfer_splits: int = 5
    transfer_fractions: tuple = (0.1, 0.25, 0.5, 1.0)

    @classmethod
    def make(cls, quick: bool, ugc_splits: int | None = None, jobs: int = 2) -> "Settings":
        if quick:
            s = cls(quick=True, jobs=jobs, ugc_splits=3, shallow_splits=3, mos_splits=3, epochs_small=60,
                    seeds_small=1, ugc_epochs=25, ugc_seeds=1, ugc_class_splits=2, transfer_splits=1,
                    transfer_fractions=(0.25, 1.0))
        else:
            s = cls(quick=False, jobs=jobs)
        if ugc_splits is not None:
            s.ugc_splits = int(ugc_splits)
        s.ugc_class_splits = min(s.ugc_class_splits, s.ugc_splits)
        s.transfer_splits = min(s.transfer_splits, s.ugc_splits)
        return s


def _parallel(fn: Callable, tasks: list[tuple], jobs: int) -> list:
    """Run ``fn(*task)`` for each task, in ``jobs`` worker processes (each with one torch thread)."""
    if jobs <= 1 or len(tasks) <= 1:
        return [fn(*t) for t in tasks]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=min(jobs, len(tasks)), backend="loky")(delayed(_in_worker)(fn, t) for t in tasks)


def _in_worker(fn: Callable, task: tuple):
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    return fn(*task)


def _time(fn: Callable, *a, **k) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


# ------------------------------------------------------------------------------------------ UPEC data
UPEC_FILE = ("upec-qoe-lab", "QoEcontrolledLab.csv")
UPEC_CLASSES = [1, 2, 3, 4, 5]


def _data_root() -> Path:
    d = os.environ.get("DEEPQOE_DATA")
    if not d:
        raise DeepQoEError("set DEEPQOE_DATA to the folder that holds the datasets "
                           "(the reproduction reads upec-qoe-lab/ and videval-ugc/ there)")
    p = Path(d)
    if not p.is_dir():
        raise DeepQoEError(f"DEEPQOE_DATA points at '{d}', which is not a folder")
    return p


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
    from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    return {"SVM": SVC(C=1.0, kernel="rbf", gamma="scale"),
            "Decision tree": DecisionTreeClassifier(random_state=seed),
            "Random forest": RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1),
            "AdaBoost": AdaBoostClassifier(random_state=seed),
            "Naive Bayes": GaussianNB()}


def original_features(categorical: list[str], numeric: list[str]):
    """The 'original features' of the shallow learners: one-hot categories, standardised numbers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if categorical:
        parts.append(("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    if numeric:
        parts.append(("scale", StandardScaler(), numeric))
    return ColumnTransformer(parts)


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
    rows.append(["**mean**", ""] + sum(([fmt(mean[m]["mse"]), fmt(mean[m]["srocc"])] for m in methods), []))
    genres = list(res["genres"])
    bar_chart(out_dir / "genre_mse.png", genres,
              {methods[m]: [res["genres"][g][m]["mse"] for g in genres] for m in methods},
              title="Unseen genre: MSE on the held-out genre", ylabel="MSE")
    all_y = sum((p["y"] for p in per), [])
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
        "![MSE per held-out genre](genre_mse.png) ![DeepQoE on unseen genres](genre_scatter.png)\n",
    ]
    return "\n".join(md), res
