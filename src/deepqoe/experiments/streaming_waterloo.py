"""Streaming section: Waterloo SQoE-IV, leave one content out, with the published models' scores
(KSQI, SQI, VideoATLAS, P.1203) as references. Recipe in ``recipes/streaming_sessions.yaml``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepqoe.experiments.streaming_sessions import (QUALITY_FEATURES, RECIPE, SESSION_FEATURES, group_table,
                                                    leave_one_group_out, mean_over_groups, session_methods,
                                                    session_table)

WATERLOO = RECIPE["waterloo"]


def waterloo_table(ds, quick: bool, log=print, jobs: int = 2) -> dict:
    from deepqoe.datasets import data_dir

    F = session_table(ds)
    for c in WATERLOO["extra_features"]:
        F[c] = ds.meta[c].to_numpy()
    y = np.asarray(ds.mos, float)
    cols = SESSION_FEATURES + QUALITY_FEATURES + WATERLOO["extra_features"]
    methods = session_methods(ds, cols, quick, WATERLOO["seeds"],
                              dict(RECIPE["recipe"], max_epochs=WATERLOO["max_epochs"]))
    ref = {"VMAF pooled (no training)": F["q_mean"].to_numpy()}
    pub = data_dir() / WATERLOO["published"]
    pub_scores, pub_perf = pub / "scores.csv", pub / "performance.csv"
    if pub_scores.exists():
        sc = pd.read_csv(pub_scores).set_index("streaming_log").reindex(ds.meta["streaming_log"])
        for k in WATERLOO["published_models"]:
            ref[f"{k} (published scores)"] = sc[k].to_numpy(float) * (-1 if k == "P1203" else 1)
    contents = ds.meta["content"].to_numpy()
    only = [str(c) for c in pd.unique(contents)][:WATERLOO["quick_contents"]] if quick else None
    loco = leave_one_group_out(F, y, contents, methods, ref, jobs=jobs, only=only)
    published = pd.read_csv(pub_perf).set_index("qoe_model").to_dict("index") if pub_perf.exists() else {}
    log("  Waterloo done")
    return {"loco": loco, "loco_mean": mean_over_groups(loco), "published_performance_csv": published,
            "held_out_contents": only or [str(c) for c in pd.unique(contents)],
            "note": "published scores are models trained elsewhere, evaluated here per held-out content on "
                    "the same sessions; the P1203 column is sign-flipped back."}


def markdown(r: dict) -> list[str]:
    L = ["### Waterloo SQoE-IV (leave-one-content-out, 1350 sessions)", ""]
    L += group_table("held-out content", r["loco"], r["loco_mean"])
    return L + ["", "Cells: SROCC / PLCC. Published (ksqi `performance.csv`, whole database, PLCC / SRCC): " +
                ", ".join(f"{k} {v['PLCC']} / {v['SRCC']}" for k, v in r["published_performance_csv"].items()
                          if k in ("KSQI", "SQI", "VideoATLAS", "P1203")), ""]
