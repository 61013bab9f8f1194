"""What the session-dataset sections (P.1203, Waterloo) share: the methods compared, leave-one-group-out
evaluation and the table cells; recipe in ``recipes/streaming_sessions.yaml``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepqoe.evaluation.metrics import plcc, srocc
from deepqoe.evaluation.parallel import run_parallel
from deepqoe.evaluation.protocols import Split, make_splits
from deepqoe.experiments.common import grid, load_recipe
from deepqoe.experiments.streaming_models import BlendOf, DeepQoEFusion, Ensemble, blend_preds
from deepqoe.report import fmt
from deepqoe.shallow import ColumnLightGBM, GridSVR

RECIPE = load_recipe("streaming_sessions")
SESSION_FEATURES: list[str] = RECIPE["session_features"]
QUALITY_FEATURES: list[str] = RECIPE["quality_features"]
MONO: dict[str, int] = RECIPE["monotone"]

OURS_S = "ours: DeepQoE fusion (STREAMING_INPUTS)"
BLEND_S = "ours + monotone LightGBM (blend)"
LGBM_S = "LightGBM (monotone, session features)"
SVR_LGBM_S = "monotone LightGBM + SVR (previous 'ours')"


def session_table(ds) -> pd.DataFrame:
    """session_features (for the baselines) + ``_row``, the row of the shipped model's frame (ours)."""
    from deepqoe.sessions.features import session_features

    F = session_features(ds.sessions).reset_index()
    for c in ("device", "codec"):
        F[c + "_code"] = F[c].astype("category").cat.codes.astype(float)
    F["_row"] = np.arange(len(F))
    return F


class _RowFrame:
    """Picklable frame builder: rows ``X['_row']`` of a precomputed sessions.frame.session_frame."""

    def __init__(self, SF: pd.DataFrame):
        self.SF = SF.reset_index(drop=True)

    def __call__(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.SF.iloc[X["_row"].to_numpy()].reset_index(drop=True)


def session_methods(ds, cols: list[str], quick: bool, seeds: int, recipe: dict) -> dict:
    """name -> factory (or :class:`BlendOf`) of the methods compared on a session dataset."""
    from deepqoe.sessions.frame import STREAMING_INPUTS, session_frame

    frame = _RowFrame(session_frame(list(ds.sessions)).reset_index(drop=True))
    inputs = [dict(i) for i in STREAMING_INPUTS]
    if quick:
        recipe = dict(recipe, **{k: v for k, v in RECIPE["quick"].items() if k != "seeds"})
        seeds = RECIPE["quick"]["seeds"]
    g = RECIPE["svr_lightgbm"]
    m = {OURS_S: lambda: DeepQoEFusion(inputs, frame=frame, seeds=seeds, **recipe),
         LGBM_S: lambda: ColumnLightGBM(cols + ["device_code"], monotone=MONO)}
    if not quick:
        m[BLEND_S] = BlendOf(OURS_S, LGBM_S)
        m[SVR_LGBM_S] = lambda: Ensemble([ColumnLightGBM(cols + ["device_code"], monotone=MONO, seed=0),
                                          GridSVR(cols, grid(g["C"]), grid(g["gamma"]), cv=g["cv"])])
    return m


def _per_group_z(y: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Scale alignment of training targets: each group's (database's) MOS standardised within the group."""
    if groups is None:
        return y
    y = np.asarray(y, float).copy()
    for g in pd.unique(groups):
        k = groups == g
        y[k] = (y[k] - y[k].mean()) / (y[k].std() or 1.0)
    return y


def fit_split(split: Split, F: pd.DataFrame, y: np.ndarray, methods: dict, norm_groups=None) -> tuple:
    """SROCC / PLCC of every method on one split (``norm_groups``: standardise the training MOS within
    each of these groups first). Returns ``(split name, row)``."""
    tr, te = split.train, split.test
    row, preds = {}, {}
    ytr = _per_group_z(y[tr], None if norm_groups is None else norm_groups[tr])
    Ftr, Fte = F.iloc[tr].reset_index(drop=True), F.iloc[te].reset_index(drop=True)
    for name, make in methods.items():
        if isinstance(make, BlendOf):
            continue
        m = make().fit(Ftr, ytr)
        p = m.predict(Fte)
        preds[name] = (np.asarray(m.predict(Ftr), float), np.asarray(p, float))
        row[name] = {"srocc": srocc(p, y[te]), "plcc": plcc(p, y[te])}
    for name, spec in methods.items():
        if isinstance(spec, BlendOf):
            (a_tr, a_te), (b_tr, b_te) = preds[spec.a], preds[spec.b]
            p = blend_preds(a_tr, b_tr, a_te, b_te, ytr, spec.w)
            row[name] = {"srocc": srocc(p, y[te]), "plcc": plcc(p, y[te])}
    return split.name, {k: row[k] for k in methods}


def leave_one_group_out(F, y, group_vals, methods, extra_scores: dict | None = None, jobs: int = 1,
                        only: list | None = None, norm_groups=None) -> dict:
    """Per held-out group, SROCC / PLCC of each method and of each reference score in ``extra_scores``."""
    splits = [s for s in make_splits("group", len(y), groups=group_vals)
              if only is None or s.name.removeprefix("group=") in only]
    out = dict(run_parallel(fit_split, [(s, F, y, methods, norm_groups) for s in splits], jobs))
    out = {name.removeprefix("group="): row for name, row in out.items()}
    for s in splits:
        g = s.name.removeprefix("group=")
        for name, sc in (extra_scores or {}).items():
            out[g][name] = {"srocc": srocc(sc[s.test], y[s.test]), "plcc": plcc(sc[s.test], y[s.test])}
    return out


def mean_over_groups(tab: dict) -> dict:
    names = next(iter(tab.values())).keys()
    return {n: {"srocc": float(np.mean([r[n]["srocc"] for r in tab.values()])),
                "plcc": float(np.mean([r[n]["plcc"] for r in tab.values()]))} for n in names}


def cells(row: dict) -> str:
    """Table cells ``SROCC / PLCC``, one per method."""
    return " | ".join(f"{fmt(v['srocc'])} / {fmt(v['plcc'])}" for v in row.values())


def group_table(title: str, groups: dict, mean: dict) -> list[str]:
    """Markdown lines: one row per held-out group and the mean row."""
    first = next(iter(groups.values()))
    lines = [f"| {title} | " + " | ".join(first.keys()) + " |", "|---|" + "---|" * len(first)]
    return lines + [f"| {g} | {cells(row)} |" for g, row in list(groups.items()) + [("**mean**", mean)]]
