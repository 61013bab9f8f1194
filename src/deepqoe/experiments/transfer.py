"""Section 5: transfer learning, pre-train on KoNViD-1k, fine-tune on YouTube-UGC (frozen representation /
full fine-tune / from scratch) on fractions of each VIDEVAL training split; recipe in ``recipes/ugc.yaml``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from deepqoe.evaluation import metrics as M
from deepqoe.evaluation.parallel import run_parallel
from deepqoe.evaluation.protocols import videval_split
from deepqoe.evaluation.statistics import summarise
from deepqoe.experiments.common import Settings, timed
from deepqoe.experiments.ugc import RECIPE, ugc_inputs, ugc_net
from deepqoe.report import fmt, line_plot, md_table

TRANSFER = RECIPE["transfer"]


def _task(target, i: int, fraction: float, pretrained, settings: Settings) -> dict:
    from deepqoe.estimators import DeepQoERegressor

    split = videval_split(len(target.y), i)
    rng = np.random.default_rng(1000 * i + int(fraction * 100))
    n_sub = max(TRANSFER["min_train"], int(math.ceil(fraction * len(split.train))))
    sub = np.sort(rng.permutation(split.train)[:n_sub]) if fraction < 1 else split.train
    Xtr, ytr = target.X.iloc[sub], target.y[sub]
    Xte, yte = target.X.iloc[split.test], target.y[split.test]
    inputs = ugc_inputs(target, with_metadata=False)
    out = {"split": i, "fraction": fraction, "n_train": int(len(sub)), "metrics": {}, "seconds": {}}
    modes = {"from scratch": {},
             "frozen representation": {"init_from": pretrained, "freeze_representation": True},
             "full fine-tune": {"init_from": pretrained, "learning_rate": TRANSFER["fine_tune_learning_rate"]}}
    for mode, extra in modes.items():
        params = ugc_net(settings, 7 * i)
        params.update(extra)
        est, t = timed(DeepQoERegressor(inputs=inputs, **params).fit, Xtr, ytr)
        r = M.regression_metrics(yte, est.predict(Xte), logistic=True)
        out["metrics"][mode] = {"srocc": r["srocc"], "plcc_logistic": r["plcc_logistic"], "rmse": r["rmse"]}
        out["seconds"][mode] = t
    return out


def run(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    from deepqoe.datasets.registry import get_dataset
    from deepqoe.estimators import DeepQoERegressor

    source, target = get_dataset(TRANSFER["source"]).load(), get_dataset(TRANSFER["target"]).load()
    inputs = ugc_inputs(source, with_metadata=False)
    pre, t_pre = timed(DeepQoERegressor(inputs=inputs, **ugc_net(settings, TRANSFER["pretrain_seed"])).fit,
                       source.X, source.y)
    log(f"[transfer] pre-trained on KoNViD-1k in {t_pre:.1f} s; fine-tuning on YouTube-UGC")
    tasks = [(target, i, f, pre, settings) for i in range(1, settings.transfer_splits + 1)
             for f in settings.transfer_fractions]
    flat = run_parallel(_task, tasks, settings.jobs)
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
