"""Rating distributions (issue 13): the ``deepqoe reproduce rating_distribution`` section.

On Waterloo SQoE-IV (0-100, about 31 ratings per session) and the P.1203 open dataset (ACR 1-5, about 26),
content-disjoint k-fold (``evaluation.protocols.make_splits("group-kfold")`` on the content groups; recipe
``recipes/rating_distribution.yaml``). Per outer fold: the session model (``training.RECIPE`` with the
recipe's overrides) is trained on the training sessions of that dataset only; the heads are fitted on the
training sessions' **out-of-fold** predicted MOS (inner group-kfold, so the head sees MOS errors like those
at test time) and the final model's representation; then every method predicts the test sessions'
distributions from the final model's predicted MOS. Methods, all in the same Beta family
(:mod:`deepqoe.distribution`) with the same mean:

* **ours**: learned precision from the predicted MOS and the session model's representation;
* **ours (MOS only)**: the same without the representation (an ablation);
* **SOS hypothesis**: ``SOS^2 = a(-MOS^2 + (lo+hi) MOS - lo hi)``, ``a`` fitted on the training sessions'
  observed MOS and SOS, applied to the predicted MOS;
* **constant spread**: the training sessions' root-mean-square SOS everywhere;
* **SOS hypothesis + MOS error**: the SOS hypothesis with ours' widening by the MOS model's error (fitted
  the same way), to show how much of ours' likelihood gain comes from that alone.

SOS, %GoB and %PoW are those of the session's rating distribution centred at the predicted MOS (chosen over
the predictive distribution's, which scored worse on %GoB / %PoW MAE for every widened method on the
recipe's folds with ``seed: 1``: P.1203 14.79 vs 14.25 pp GoB; Waterloo's 5 contents give the same folds
for any seed, so there the choice was not made on separate splits); the
likelihood of held-out ratings is that of the predictive distribution (for ours, widened by the MOS model's
error, ``RatingDistribution.mos_sd_``, fitted on the out-of-fold predictions; the two plain baselines have
none, as the issue defines them).

Metrics over all test sessions (each tested once): MAE of SOS (on the common 1-5 scale), of %GoB and %PoW
(percentage points) against the observed ones, and the mean log-likelihood per held-out rating (nats; on
0-100 a density per rating point, on ACR the probability of the category).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from deepqoe.distribution import RatingDistribution, RatingScale, observed
from deepqoe.evaluation.metrics import plcc, srocc
from deepqoe.evaluation.parallel import run_parallel
from deepqoe.evaluation.protocols import make_splits
from deepqoe.experiments.common import load_recipe

OURS, OURS_MOS, SOS, CONST = "ours", "ours (MOS only)", "SOS hypothesis", "constant spread"
SOS_ERR = "SOS hypothesis + MOS error"
METHODS = {OURS: dict(kind="model", use_features=True), OURS_MOS: dict(kind="model", use_features=False),
           SOS: dict(kind="sos"), CONST: dict(kind="constant"), SOS_ERR: dict(kind="sos", mos_error=True)}
METRICS = ("sos_mae", "gob_mae_pp", "pow_mae_pp", "loglik")


def _fit_predict(S, tr, te, mapping, recipe: dict):
    """The session model on ``tr``: (predicted MOS of ``te`` on the common scale, representation of tr, te)."""
    from deepqoe.sessions.training import RECIPE, fit_streaming_model

    model = fit_streaming_model([S.subset(tr)], mapping=mapping, **{**RECIPE, **recipe})
    te_s = [S.sessions[i] for i in te]
    return model, model.predict_sessions(te_s, calibration=S.name)


def _fold(S, split, mapping, recipe: dict, inner_folds: int, seed: int, l2: float) -> dict:
    """One outer fold: per method, the test sessions' predicted distribution summaries and log-likelihood."""
    tr, te = split.train, split.test
    oof = np.empty(len(tr))
    inner = make_splits("group-kfold", len(tr), groups=S.groups[tr], n_splits=inner_folds, seed=seed)
    for sp in inner:
        oof[sp.test] = _fit_predict(S, tr[sp.train], tr[sp.test], mapping, recipe)[1]
    model, mos_te = _fit_predict(S, tr, te, mapping, recipe)
    rep_tr = model.transform_sessions([S.sessions[i] for i in tr])
    rep_te = model.transform_sessions([S.sessions[i] for i in te])
    r_tr, r_te = [S.ratings[i] for i in tr], [S.ratings[i] for i in te]
    out = {"test": te, "mos_pred": mos_te, "methods": {}}
    for name, kw in METHODS.items():
        kw = {"use_features": False, **kw}
        err = kw.pop("mos_error", None)
        head = RatingDistribution(S.rating_scale, l2=l2, **kw)
        head.fit(oof, r_tr, rep_tr if head.use_features else None, mos_error=err)
        feats = rep_te if head.use_features else None
        n = int(sum(len(r) for r in r_te))
        wide = head.predict(mos_te, feats, predictive=True)
        out["methods"][name] = {**head.predict(mos_te, feats), "n_ratings": n, "mos_sd": head.mos_sd_,
                                "p_gob_predictive": wide["p_gob"], "p_pow_predictive": wide["p_pow"],
                                "loglik_sum": head.log_likelihood(mos_te, r_te, feats) * n}
    return out


def dataset_table(S, mapping, quick: bool, jobs: int = 2, log=print, rec: dict | None = None) -> dict:
    rec = rec or load_recipe("rating_distribution")
    size = "quick" if quick else "full"
    splits = make_splits("group-kfold", len(S.y), groups=S.groups, n_splits=rec["folds"], seed=rec["seed"])
    folds = run_parallel(_fold, [(S, sp, mapping, rec["model"][size], rec["inner_folds"][size], rec["seed"],
                                  rec["l2"]) for sp in splits], jobs)
    sc = RatingScale(S.rating_scale)
    obs = observed(S.ratings, sc)
    to_c = 4.0 / (sc.hi - sc.lo)  # SOS on the common 1-5 scale
    mos_pred = np.full(len(S.y), np.nan)
    res: dict = {"n_sessions": len(S.y), "n_ratings": int(sum(len(r) for r in S.ratings)), "scale": sc.name,
                 "family": "discretised Beta (categories)" if sc.discrete else "Beta density (0-100, padded)",
                 "n_folds": len(splits), "methods": {}, "per_fold": {}}
    for name in METHODS:
        pred = {k: np.full(len(S.y), np.nan) for k in ("sos", "p_gob", "p_pow", "p_gob_predictive",
                                                       "p_pow_predictive")}
        ll, n = 0.0, 0
        fold_ll = []
        for f in folds:
            m = f["methods"][name]
            for k in pred:
                pred[k][f["test"]] = m[k]
            ll, n = ll + m["loglik_sum"], n + m["n_ratings"]
            fold_ll.append(m["loglik_sum"] / m["n_ratings"])
            mos_pred[f["test"]] = f["mos_pred"]
        res["methods"][name] = {
            "sos_mae": float(np.mean(np.abs(pred["sos"] - obs["sos"])) * to_c),
            "gob_mae_pp": float(np.mean(np.abs(pred["p_gob"] - obs["p_gob"])) * 100),
            "pow_mae_pp": float(np.mean(np.abs(pred["p_pow"] - obs["p_pow"])) * 100),
            "gob_mae_pp_predictive": float(np.mean(np.abs(pred["p_gob_predictive"] - obs["p_gob"])) * 100),
            "pow_mae_pp_predictive": float(np.mean(np.abs(pred["p_pow_predictive"] - obs["p_pow"])) * 100),
            "loglik": ll / n}
        res["per_fold"][name] = {"loglik": fold_ll}
    res["mos_model"] = {"srocc": srocc(S.y, mos_pred), "plcc": plcc(S.y, mos_pred),
                        "rmse": float(np.sqrt(np.mean((S.y - mos_pred) ** 2)))}
    ours = res["methods"][OURS]
    res["ours_better_than_both"] = {
        k: bool(all((ours[k] > res["methods"][b][k]) if k == "loglik" else (ours[k] < res["methods"][b][k])
                    for b in (SOS, CONST))) for k in METRICS}
    log(f"  {S.name}: done")
    return res


def run(settings, out_dir: Path, log=print) -> tuple[str, dict]:
    """The ``deepqoe reproduce rating_distribution`` section: ``(markdown, results)``."""
    import torch

    from deepqoe.datasets.scored import load_session_set, quality_mapping

    torch.set_num_threads(1)
    t0 = time.time()
    rec = load_recipe("rating_distribution")
    sets = {name: load_session_set(name) for name in rec["datasets"]}
    mapping = quality_mapping()
    res: dict = {"quick": bool(settings.quick), "date": time.strftime("%Y-%m-%d %H:%M"),
                 "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), "
                            f"{settings.jobs} worker(s)", "recipe": rec, "datasets": {}}
    for name, S in sets.items():
        log(f"[rating_distribution] {name} ...")
        res["datasets"][name] = dataset_table(S, mapping, settings.quick, settings.jobs, log)
    res["seconds"] = round(time.time() - t0, 1)
    return markdown(res), res


def markdown(res: dict) -> str:
    size = res["recipe"]["model"]["quick" if res["quick"] else "full"]
    L = ["## Rating distributions", "",
         f"Mode: {'quick (smoke run, not results)' if res['quick'] else 'full'}; run {res['date']} on "
         f"{res['machine']}; {res['seconds']:.0f} s. Content-disjoint {res['recipe']['folds']}-fold; session "
         f"model per fold `training.RECIPE` with {size}; heads fitted on out-of-fold predicted MOS (inner "
         f"{res['recipe']['inner_folds']['quick' if res['quick'] else 'full']}-fold). All methods share the Beta "
         "family and the mean (`deepqoe.distribution`).", "",
         "| dataset | method | SOS MAE (1-5) | %GoB MAE (pp) | %PoW MAE (pp) | log-lik / rating |",
         "|---|---|---|---|---|---|"]
    for name, d in res["datasets"].items():
        for m, v in d["methods"].items():
            L.append(f"| {name} | {m} | {v['sos_mae']:.3f} | {v['gob_mae_pp']:.2f} | {v['pow_mae_pp']:.2f} | "
                     f"{v['loglik']:.4f} |")
    L += [""]
    for name, d in res["datasets"].items():
        mm, won = d["mos_model"], d["ours_better_than_both"]
        L.append(f"- {name}: {d['n_sessions']} sessions, {d['n_ratings']} ratings, scale {d['scale']}, "
                 f"{d['family']}; predicted MOS SROCC {mm['srocc']:.3f} / PLCC {mm['plcc']:.3f} / RMSE "
                 f"{mm['rmse']:.3f}. Ours better than both baselines on: "
                 + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in won.items()) + ".")
    L += ["", "Log-likelihood: 0-100 ratings as a density per rating point, ACR as category probabilities "
          "(compare methods within a dataset, not across). Observed SOS uses ddof=1; GoB = P(c >= 3.5), "
          "PoW = P(c <= 2.5) on the common 1-5 scale (ACR: r >= 4, r <= 2).", ""]
    return "\n".join(L)
