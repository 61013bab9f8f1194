"""Section 1 (paper Fig. 2/3): the DeepQoE representation helps shallow learners, UPEC lab ratings.

Five shallow learners (:func:`deepqoe.shallow.paper_learners`) on the original features vs on the
representation of a :class:`~deepqoe.estimators.DeepQoERepresentation` in a ``Pipeline``; recipe in
``recipes/upec.yaml``, run sizes in ``recipes/runs.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepqoe.evaluation import metrics as M
from deepqoe.evaluation.parallel import run_parallel
from deepqoe.evaluation.protocols import Split, make_splits
from deepqoe.evaluation.statistics import paired_test, summarise
from deepqoe.experiments.common import Settings, split_seed, timed
from deepqoe.experiments.upec import RECIPE, UPEC_CLASSES, UPEC_RATING_INPUTS, load_upec, small_net
from deepqoe.report import bar_chart, confusion_plot, fmt_p, fmt_pm, md_table
from deepqoe.shallow import original_features, paper_learners

#: the original features of the shallow learners: one-hot categories, standardised numbers
FEATURES = [{"column": c, "modality": "categorical"} for c in ("content", "resolution", "sex_user")] + \
    [{"column": "numeric", "modality": "continuous", "columns": ["bitrate_video", "age_user"]}]


def _split(split: Split, df: pd.DataFrame, settings: Settings) -> dict:
    from sklearn.base import clone
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from deepqoe.estimators import DeepQoERepresentation

    X, y = df, df["mos"].to_numpy()
    Xtr, Xte, ytr, yte = X.iloc[split.train], X.iloc[split.test], y[split.train], y[split.test]
    seed = split_seed(split.name)
    rep = DeepQoERepresentation(task="classification", inputs=UPEC_RATING_INPUTS, classes=UPEC_CLASSES,
                                **small_net(settings, seed))
    _, t_rep = timed(rep.fit, Xtr, ytr)  # fitted on the training split only
    out = {"split": split.name, "deepqoe": {"accuracy": float(np.mean(rep.estimator_.predict(Xte) == yte))},
           "deepqoe_fit_seconds": t_rep, "orig": {}, "rep": {},
           "deepqoe_pred": rep.estimator_.predict(Xte).tolist(), "y_test": yte.tolist()}
    feats = original_features(FEATURES)
    for name, learner in paper_learners(seed, n_jobs=1).items():
        orig = Pipeline([("features", clone(feats)), ("clf", clone(learner))]).fit(Xtr, ytr)
        # The network is fitted once per split (above, on the training split) and shared by the five
        # Pipelines: FrozenEstimator makes the Pipeline's fit leave it as it is.
        on_rep = Pipeline([("deepqoe", FrozenEstimator(rep)), ("scale", StandardScaler()),
                           ("clf", clone(learner))]).fit(Xtr, ytr)
        out["orig"][name] = float(np.mean(orig.predict(Xte) == yte))
        out["rep"][name] = float(np.mean(on_rep.predict(Xte) == yte))
    return out


def run(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    df = load_upec()
    splits = make_splits("repeated", len(df), n_splits=settings.shallow_splits, **RECIPE["splits"])
    log(f"[shallow] {len(splits)} x 90/10 splits of {len(df)} ratings")
    per = run_parallel(_split, [(s, df, settings) for s in splits], settings.jobs)
    learners = list(paper_learners())
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
