"""Streaming section: the P.1203 open dataset (mode 0 inputs), leave one database out, per context, and
content-disjoint random splits; O46 (the standard's own output) as the reference. Recipe in
``recipes/streaming_sessions.yaml``."""

from __future__ import annotations

import numpy as np

from deepqoe.evaluation.metrics import plcc, srocc
from deepqoe.evaluation.parallel import run_parallel
from deepqoe.evaluation.protocols import make_splits
from deepqoe.evaluation.statistics import describe
from deepqoe.experiments.streaming_sessions import (LGBM_S, OURS_S, RECIPE, SESSION_FEATURES, cells, fit_split,
                                                    group_table, leave_one_group_out, mean_over_groups,
                                                    session_methods, session_table)
from deepqoe.report import fmt

O46 = "P.1203 (O46, mode 0)"
P1203 = RECIPE["p1203"]


def p1203_table(ds, quick: bool, log=print, jobs: int = 2) -> dict:
    F = session_table(ds)
    y = np.asarray(ds.mos, float)
    meta = ds.meta
    o46 = meta["O46"].to_numpy(float)
    methods = session_methods(ds, SESSION_FEATURES, quick, P1203["seeds"], RECIPE["recipe"])
    dbs = meta["database"].to_numpy()
    lodo = leave_one_group_out(F, y, dbs, methods, {O46: o46}, jobs=jobs, norm_groups=dbs)
    ctx = {}  # per database and context, like the upstream README (mean over databases)
    if not quick:
        for c in ("pc", "mobile"):
            mask = meta["context"].to_numpy() == c
            sub = leave_one_group_out(F[mask].reset_index(drop=True), y[mask], dbs[mask], methods,
                                      {O46: o46[mask]}, jobs=jobs, norm_groups=dbs[mask])
            ctx[c] = mean_over_groups(sub)
    cs_recipe = P1203["content_splits"]
    n_cs = cs_recipe["quick" if quick else "full"]
    splits = make_splits("group-shuffle", len(y), groups=meta["src"].to_numpy(), n_splits=n_cs,
                         test_size=cs_recipe["test_size"], seed=cs_recipe["seed"])
    rows = run_parallel(fit_split, [(s, F, y, methods, dbs) for s in splits], jobs)
    cs = {n: {"srocc": [], "plcc": []} for n in list(methods) + [O46]}
    for (_, row), s in zip(rows, splits):
        for name, v in row.items():
            cs[name]["srocc"].append(v["srocc"])
            cs[name]["plcc"].append(v["plcc"])
        cs[O46]["srocc"].append(srocc(o46[s.test], y[s.test]))
        cs[O46]["plcc"].append(plcc(o46[s.test], y[s.test]))
    log("  P.1203 done")
    return {"lodo": lodo, "lodo_mean": mean_over_groups(lodo), "lodo_mean_by_context": ctx,
            "content_splits": {k: {"srocc": describe(v["srocc"]), "plcc": describe(v["plcc"])}
                               for k, v in cs.items()}, "n_content_splits": n_cs,
            "inputs": {OURS_S: "sessions.frame.session_frame: stalls, startup, quality (bitrate/resolution/fps "
                               "proxy), switches, device, duration groups + per-second series",
                       LGBM_S: "session_features (mode 0: segments, stalls, device)",
                       O46: "the standard's own output (mode 0); never an input of ours"},
            "scale_alignment": "every trained method learns the training databases' MOS standardised within "
                               "each database (the four subjective tests use the 1-5 scale differently)",
            "note": "O46 is the standard's own output on the same sessions; never an input of ours."}


def markdown(r: dict) -> list[str]:
    L = ["### P.1203 open dataset (mode 0 inputs)", "", "Leave-one-database-out (train on three, test on "
         "the fourth); O46 = the standard's own output on the same sessions.", ""]
    L += group_table("held-out", r["lodo"], r["lodo_mean"])
    L += ["", "Cells: SROCC / PLCC. Inputs: " + "; ".join(f"{k}: {v}" for k, v in r["inputs"].items()) + ". "
          "Scale alignment: " + r.get("scale_alignment", "none") + "."]
    if r["lodo_mean_by_context"]:
        pc = r["lodo_mean_by_context"]["pc"]
        L += ["", "Mean over databases, per context (the upstream README's protocol):", "",
              "| context | " + " | ".join(pc.keys()) + " |", "|---|" + "---|" * len(pc)]
        L += [f"| {c} | {cells(row)} |" for c, row in r["lodo_mean_by_context"].items()]
    L += ["", f"Content-disjoint random splits ({r['n_content_splits']}, 20 % of SRCs held out): median SROCC "
          "(std) / median PLCC", ""]
    L += [f"- {k}: {fmt(v['srocc']['median'])} ({fmt(v['srocc']['std'])}) / {fmt(v['plcc']['median'])}"
          for k, v in r["content_splits"].items()]
    return L + [""]
