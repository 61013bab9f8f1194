"""Streaming-QoE evaluation harness: LIVE-NFLX, P.1203 open dataset, Waterloo SQoE-IV, cross-dataset.

``run(out_dir, quick)`` writes ``report_streaming.md``, ``results_streaming.json`` and PNG plots.

Methods ("ours" is pluggable: :data:`OURS_FACTORIES` maps a dataset name to a factory returning an
object with ``fit(X: DataFrame, y)`` / ``predict(X)``):

* **ours = the DeepQoE fusion model** (:class:`DeepQoEFusion`: a seed ensemble of
  ``deepqoe.estimators.DeepQoERegressor`` with grouped inputs): on LIVE-NFLX the groups of
  :data:`NFLX_INPUTS` (pooled STRRED as ``quality``, the VideoATLAS stall / memory features as
  ``stalls``); on P.1203 and Waterloo the shipped model's ``sessions.frame.STREAMING_INPUTS`` built by
  ``session_frame`` (stalls, startup, quality, switches, device, duration, per-second series); across
  datasets :data:`CROSS_INPUTS` on dataset-normalised common features. A blend of ours with a
  monotone-constrained LightGBM (:class:`Blend`, mean of z-scored outputs) is a separate, named row;
* pooled VQA alone (no training; SROCC / PLCC of the raw pooled score);
* VideoATLAS: StandardScaler + RBF SVR, C in {0.1..1000} x gamma in logspace(-2, 2, 15) by 10-fold
  KFold CV on R^2 (the authors' release), on pooled STRRED + ds_norm, ns, tsl_norm, lt_norm;
* LightGBM on the same 5 features; monotone LightGBM on the session features;
* the original DeepQoE streaming network: a small MLP (5 -> 32 -> 16 -> 1, ReLU, dropout 0.2, Adam);
* the previous engineer's models, kept as named rows: an SVR average over VQA metrics with a
  content-disjoint inner CV (LIVE-NFLX), a monotone LightGBM + SVR ensemble (session datasets), and
  DeepQoE with all five features as one input.

Splits run in ``jobs`` worker processes (joblib, one torch thread each). LIVE-NFLX: the cheap methods on
the first ``n_splits`` of the 1000 fixed splits, the neural ones on the first ``n_neural`` (medians of every
method on those same splits are reported too). All random choices are seeded. ``quick`` (CI): 5 / 3
splits, reduced VideoATLAS grid, fewer epochs and seeds, two Waterloo folds: a smoke test, not results.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from deepqoe.evaluation.metrics import plcc, srocc  # symmetric in their arguments
from deepqoe.evaluation.statistics import paired_test
from deepqoe.io import atomic_write_json, atomic_write_text
from deepqoe.sessions.features import session_features
from deepqoe.sessions.readers import (StreamingDataset, live_nflx_splits, load_live_nflx, load_p1203_open,
                                      load_waterloo_sqoe_iv)

warnings.filterwarnings("ignore", category=UserWarning)

C_GRID = (1e-1, 1e0, 1e1, 1e2, 1e3)
G_GRID = tuple(np.logspace(-2, 2, 15))
C_GRID_QUICK = (1e0, 1e1, 1e2)
G_GRID_QUICK = (0.01, 0.03, 0.1, 0.3, 1.0)
STALL4 = ["ds_norm", "ns", "tsl_norm", "lt_norm"]


# ------------------------------------------------------------------------------------ metrics

def _summary(vals) -> dict:
    a = np.asarray(vals, float)
    return {"median": float(np.median(a)), "mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)}


# ------------------------------------------------------------------------------------ models

def _rbf(A, B, g):
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T
    return np.exp(-g * np.maximum(d2, 0.0))


class GridSVR:
    """StandardScaler + RBF SVR with C / gamma chosen by inner cross-validation.

    ``groups=None`` -> KFold(cv) scored by R^2 (the VideoATLAS release); with ``groups`` passed to
    :meth:`fit`, leave-one-group-out scored by SROCC (content-disjoint, ours).
    """

    def __init__(self, columns, C_grid=C_GRID, gamma_grid=G_GRID, cv=10, use_groups=False):
        self.columns, self.C_grid, self.gamma_grid, self.cv, self.use_groups = (
            list(columns), C_grid, gamma_grid, cv, use_groups)

    def _X(self, X):
        return X[self.columns].to_numpy(float) if isinstance(X, pd.DataFrame) else np.asarray(X, float)

    def fit(self, X, y, groups=None):
        from sklearn.svm import SVR

        X = self._X(X)
        y = np.asarray(y, float)
        X = np.nan_to_num(X)
        self.mu_, self.sd_ = X.mean(0), X.std(0)
        self.sd_[self.sd_ == 0] = 1.0
        Z = (X - self.mu_) / self.sd_
        n = len(y)
        if self.use_groups and groups is not None:
            g = np.asarray(groups)
            folds = [np.flatnonzero(g == v) for v in np.unique(g)]
        else:
            folds = np.array_split(np.arange(n), min(self.cv, n))
        best, best_s = (self.C_grid[0], self.gamma_grid[0]), -np.inf
        if len(self.C_grid) * len(self.gamma_grid) > 1:
            for gm in self.gamma_grid:
                K = _rbf(Z, Z, gm)
                for C in self.C_grid:
                    sc, preds = [], np.zeros(n)
                    for te in folds:
                        tr = np.setdiff1d(np.arange(n), te)
                        m = SVR(kernel="precomputed", C=C).fit(K[np.ix_(tr, tr)], y[tr])
                        p = m.predict(K[np.ix_(te, tr)])
                        preds[te] = p
                        if not self.use_groups:
                            yt = y[te]
                            ss = ((yt - yt.mean()) ** 2).sum()
                            sc.append(1 - ((yt - p) ** 2).sum() / ss if ss > 0 else 0.0)
                    s = srocc(preds, y) if self.use_groups else float(np.mean(sc))
                    if s > best_s:
                        best_s, best = s, (C, gm)
        self.C_, self.gamma_ = best
        self.Z_ = Z
        self.m_ = SVR(kernel="precomputed", C=self.C_).fit(_rbf(Z, Z, self.gamma_), y)
        return self

    def predict(self, X):
        Z = (np.nan_to_num(self._X(X)) - self.mu_) / self.sd_
        return self.m_.predict(_rbf(Z, self.Z_, self.gamma_))


class LGBM:
    """LightGBM regressor on chosen columns (NaN allowed), optional monotone constraints."""

    def __init__(self, columns, monotone: dict | None = None, seed: int = 0, **params):
        self.columns = list(columns)
        self.monotone = monotone or {}
        self.seed = seed
        self.params = dict(n_estimators=300, learning_rate=0.03, num_leaves=8, min_child_samples=5,
                           subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0)
        self.params.update(params)

    def fit(self, X, y, groups=None):
        import lightgbm as lgb

        cons = [int(self.monotone.get(c, 0)) for c in self.columns]
        self.m_ = lgb.LGBMRegressor(random_state=self.seed, verbose=-1, monotone_constraints=cons,
                                    n_jobs=1, **self.params)
        self.m_.fit(X[self.columns].astype(float), np.asarray(y, float))
        return self

    def predict(self, X):
        return self.m_.predict(X[self.columns].astype(float))


class SmallMLP:
    """The original DeepQoE streaming network (a small MLP on the 5 VideoATLAS features)."""

    def __init__(self, columns, hidden=(32, 16), dropout=0.2, epochs=300, lr=1e-3, seed=0):
        self.columns, self.hidden, self.dropout, self.epochs, self.lr, self.seed = (
            list(columns), hidden, dropout, epochs, lr, seed)

    def fit(self, X, y, groups=None):
        import torch

        torch.manual_seed(self.seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny data: threads only add overhead
        try:
            return self._fit(torch, X, y)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, torch, X, y):
        X = np.nan_to_num(X[self.columns].to_numpy(float))
        self.mu_, self.sd_ = X.mean(0), X.std(0) + 1e-9
        self.ym_, self.ys_ = float(np.mean(y)), float(np.std(y) + 1e-9)
        xt = torch.tensor((X - self.mu_) / self.sd_, dtype=torch.float32)
        yt = torch.tensor((np.asarray(y, float) - self.ym_) / self.ys_, dtype=torch.float32)[:, None]
        layers, d = [], xt.shape[1]
        for h in self.hidden:
            layers += [torch.nn.Linear(d, h), torch.nn.ReLU(), torch.nn.Dropout(self.dropout)]
            d = h
        layers.append(torch.nn.Linear(d, 1))
        self.net_ = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=1e-4)
        self.net_.train()
        for _ in range(self.epochs):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(self.net_(xt), yt)
            loss.backward()
            opt.step()
        return self

    def predict(self, X):
        import torch

        self.net_.eval()
        x = np.nan_to_num(X[self.columns].to_numpy(float))
        with torch.no_grad():
            p = self.net_(torch.tensor((x - self.mu_) / self.sd_, dtype=torch.float32)).numpy()[:, 0]
        return p * self.ys_ + self.ym_


def _pred_stats(p) -> tuple[float, float]:
    """Mean and std (never 0) of a member's training-set predictions: what its outputs are z-scored with."""
    p = np.asarray(p, float)
    return float(p.mean()), float(p.std() + 1e-9)


def _z_combine(preds: list, stats: list, y_mean: float, y_std: float, weights=None) -> np.ndarray:
    """Members' predictions z-scored with their own training statistics, averaged (or weighted), mapped back
    to the training target's mean and std. The one combination rule of Ensemble, Blend, BlendOf and
    DeepQoEFusion."""
    z = [(np.asarray(p, float) - a) / b for p, (a, b) in zip(preds, stats)]
    mix = np.mean(z, axis=0) if weights is None else sum(w * zi for w, zi in zip(weights, z))
    return y_mean + y_std * mix


class Ensemble:
    """Average (or ``weights``-weighted sum) of member predictions, each z-scored with its own training-set
    prediction statistics."""

    def __init__(self, members: list, weights: list | None = None):
        self.members, self.weights = members, weights

    def fit(self, X, y, groups=None):
        self.stats_ = []
        for m in self.members:
            m.fit(X, y, groups=groups)
            self.stats_.append(_pred_stats(m.predict(X)))
        self.ym_, self.ys_ = float(np.mean(y)), float(np.std(y))
        return self

    def predict(self, X):
        return _z_combine([m.predict(X) for m in self.members], self.stats_, self.ym_, self.ys_, self.weights)


def deepqoe_available() -> bool:
    try:
        return importlib.util.find_spec("deepqoe.estimators") is not None
    except (ImportError, ValueError):
        return False


def _one_thread():
    import torch

    torch.set_num_threads(1)  # tiny data, 2 shared cores: one thread per worker


def _par(fn, tasks: list, jobs: int) -> list:
    """``[fn(*t) for t in tasks]``, in ``jobs`` worker processes (joblib/loky) when jobs > 1."""
    if jobs <= 1 or len(tasks) <= 1:
        _one_thread()
        return [fn(*t) for t in tasks]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=jobs, backend="loky")(delayed(_worker)(fn, t) for t in tasks)


def _worker(fn, t):
    _one_thread()
    return fn(*t)


class DeepQoEWrapper:
    """``deepqoe.estimators.DeepQoERegressor`` on continuous (and categorical) session columns, all
    continuous columns as ONE input (the previous engineer's baseline, kept for comparison)."""

    def __init__(self, continuous, categorical=(), max_epochs=300, seed=0):
        self.continuous, self.categorical, self.max_epochs, self.seed = (
            list(continuous), list(categorical), max_epochs, seed)

    def fit(self, X, y, groups=None):
        from deepqoe.estimators import DeepQoERegressor

        inputs = [{"column": "__cont__", "name": "session", "modality": "continuous",
                   "columns": self.continuous, "normalisation": "standard"}]
        inputs += [{"column": c, "modality": "categorical"} for c in self.categorical]
        self.m_ = DeepQoERegressor(inputs=inputs, hidden_layers=[64, 32], dropout=0.2,
                                   max_epochs=self.max_epochs, random_state=self.seed)
        self.m_.fit(self._X(X), np.asarray(y, float))
        return self

    def _X(self, X):
        X = X[self.continuous + self.categorical].copy()
        X[self.continuous] = X[self.continuous].fillna(0.0)
        X["__cont__"] = 0.0
        return X

    def predict(self, X):
        return np.asarray(self.m_.predict(self._X(X)), float).reshape(-1)


# ---- ours: the DeepQoE fusion model (deepqoe.estimators.DeepQoERegressor with grouped inputs) ----

#: LIVE-NFLX variant of STREAMING_INPUTS: the release gives pooled VQA (no bitrates, no real stall
#: positions), so the fusion model reads two groups: ``quality`` = the pooled STRRED score the dataset
#: provides, ``stalls`` = its stall / memory features (the VideoATLAS inputs, grouped), each through a
#: 16-wide projection, fused by [64, 32]. Recipe chosen on the first 20-100 splits (see docs/results.md:
#: projection None / [32, 16] / 300 epochs 0.874, this one 0.903 median SROCC over the first 100).
NFLX_INPUTS: list[dict] = [
    {"column": "quality", "name": "quality", "modality": "continuous", "columns": ["STRRED_mean"],
     "normalisation": "standard", "projection": 16},
    {"column": "stalls", "name": "stalls", "modality": "continuous", "columns": STALL4,
     "normalisation": "standard", "projection": 16},
]
NFLX_RECIPE = dict(hidden_layers=[64, 32], dropout=0.2, weight_decay=1e-4, learning_rate=1e-3, batch_size=128,
                   max_epochs=500, patience=500, validation_fraction=0.0)
NFLX_SEEDS = 2
# The LIVE-NFLX recipe of ours was chosen by looking at the first 100 fixed splits; splits 101.. are held out
# from that choice, and the report gives ours vs VideoATLAS on them separately.
NFLX_TUNED_SPLITS = 100
#: session datasets: the shipped model's inputs (sessions.frame.STREAMING_INPUTS) and a recipe close to it
SESSION_RECIPE = dict(hidden_layers=[128, 64], dropout=0.2, weight_decay=1e-4, learning_rate=1e-3, batch_size=64,
                      max_epochs=60, patience=10, validation_fraction=0.1)


class DeepQoEFusion:
    """Ours: a seed ensemble of ``DeepQoERegressor(inputs=...)``; members averaged on z-scored outputs
    (each with its own training-set prediction statistics), mapped back to the training MOS."""

    def __init__(self, inputs: list[dict], frame: Callable | None = None, seeds: int = 3, **recipe):
        self.inputs, self.frame, self.seeds, self.recipe = inputs, frame, seeds, recipe

    def _X(self, X):
        X = self.frame(X) if self.frame is not None else X.copy()
        for i in self.inputs:
            if i["column"] not in X.columns:
                X[i["column"]] = 0.0  # grouped inputs read ``columns``; the key column is a placeholder
        return X.reset_index(drop=True)

    def fit(self, X, y, groups=None):
        from deepqoe.estimators import DeepQoERegressor

        X = self._X(X)
        y = np.asarray(y, float)
        self.members_, self.stats_ = [], []
        for s in range(self.seeds):
            m = DeepQoERegressor(inputs=self.inputs, random_state=s, **self.recipe).fit(X, y)
            self.members_.append(m)
            self.stats_.append(_pred_stats(m.predict(X)))
        self.ym_, self.ys_ = float(y.mean()), float(y.std())
        return self

    def predict(self, X):
        X = self._X(X)
        return _z_combine([m.predict(X) for m in self.members_], self.stats_, self.ym_, self.ys_)


def _shipped_frame(X: pd.DataFrame) -> pd.DataFrame:
    """The shipped model's frame (sessions.frame.session_frame) of the sessions held in ``X['_session']``."""
    from deepqoe.sessions.frame import session_frame

    return session_frame(list(X["_session"])).reset_index(drop=True)


def _streaming_inputs() -> list[dict]:
    from deepqoe.sessions.frame import STREAMING_INPUTS

    return [dict(i) for i in STREAMING_INPUTS]


class Blend(Ensemble):
    """Honest blend: ``w`` x the z-scored output of a DeepQoE model + (1 - ``w``) x that of a
    monotone-constrained LightGBM (each z-scored with its own training-set prediction statistics)."""

    def __init__(self, a, b, w: float = 0.5):
        super().__init__([a, b], [w, 1 - w])
        self.a, self.b, self.w = a, b, w


# ------------------------------------------------------------------------------------ LIVE-NFLX

def _nflx_svr_ensemble(quick: bool) -> Callable:
    """The previous engineer's "ours": content-CV SVRs averaged over VQA metrics / feature sets."""
    cg, gg = (1.0, 10.0, 100.0), (0.01, 0.03, 0.1, 0.3, 1.0)
    sets = [["STRRED_mean"] + STALL4, ["STRRED_hyst"] + STALL4, ["SSIM_mean"] + STALL4,
            ["STRRED_mean", "MSSIM_mean"] + STALL4]
    if quick:
        cg, gg, sets = (10.0, 100.0), (0.01, 0.03, 0.1), sets[:2]

    def make():
        return Ensemble([GridSVR(c, cg, gg, use_groups=True) for c in sets])
    return make


OURS = "ours: DeepQoE fusion (quality + stalls groups)"
VA = "VideoATLAS (SVR, STRRED)"
SVR_AVG = "SVR average over VQA metrics (content-CV)"

#: dataset -> factory of "ours" (pluggable: replace an entry to evaluate another model).
OURS_FACTORIES: dict[str, Callable] = {}


def _nflx_methods(quick: bool) -> tuple[dict, dict]:
    """(cheap methods run on every split, neural methods run on the first n_neural splits)."""
    cg, gg = (C_GRID_QUICK, G_GRID_QUICK) if quick else (C_GRID, G_GRID)
    va_cols = ["STRRED_mean"] + STALL4
    seeds = 1 if quick else NFLX_SEEDS
    recipe = dict(NFLX_RECIPE, max_epochs=150) if quick else NFLX_RECIPE
    cheap = {VA: lambda: GridSVR(va_cols, cg, gg, cv=10),
             "LightGBM (5 features)": lambda: LGBM(va_cols, n_estimators=200, learning_rate=0.05)}
    neural = {OURS: OURS_FACTORIES.get("live-nflx", lambda: DeepQoEFusion(NFLX_INPUTS, seeds=seeds, **recipe)),
              "DeepQoE original streaming MLP": lambda: SmallMLP(va_cols)}
    if not quick:
        neural[SVR_AVG] = _nflx_svr_ensemble(quick)
    return cheap, neural


NFLX_SINGLE = {"STRRED_mean": -1, "VMAF_mean": 1, "MSSIM_mean": 1, "SSIM_mean": 1, "PSNR_mean": 1}


def _nflx_split(j: int, tr: np.ndarray, X: pd.DataFrame, y: np.ndarray, quick: bool, neural: bool) -> dict:
    te = ~tr
    groups = X["content"].to_numpy()
    out = {}
    for k, sign in NFLX_SINGLE.items():
        out[k] = (srocc(sign * X.loc[te, k], y[te]), plcc(sign * X.loc[te, k], y[te]), 0.0)
    cheap, nets = _nflx_methods(quick)
    methods = {**cheap, **(nets if neural else {})}
    for name, make in methods.items():
        t = time.perf_counter()
        try:
            m = make().fit(X[tr].reset_index(drop=True), y[tr], groups=groups[tr])
            p = np.asarray(m.predict(X[te].reset_index(drop=True)), float)
        except Exception as e:  # a plug-in failing must not sink the table
            print(f"  {name}: failed on split {j}: {e}")
            p = np.full(te.sum(), np.nan)
        ok = np.isfinite(p).all()
        out[name] = (srocc(p, y[te]) if ok else np.nan, plcc(p, y[te]) if ok else np.nan,
                     time.perf_counter() - t)
    return out


def live_nflx_table(ds: StreamingDataset, n_splits: int, quick: bool, log=print, n_neural: int | None = None,
                    jobs: int = 2) -> dict:
    """Median / std of SROCC and PLCC over the fixed content-disjoint splits: the cheap methods on the
    first ``n_splits``, the neural ones (ours included) on the first ``n_neural`` of them."""
    S = live_nflx_splits()[:, :n_splits]
    n_neural = min(n_splits, n_neural if n_neural is not None else n_splits)
    X = ds.meta.copy()
    y = np.asarray(ds.mos, float)
    t0 = time.perf_counter()
    tasks = [(j, S[:, j], X, y, quick, j < n_neural) for j in range(S.shape[1])]
    outs = _par(_nflx_split, tasks, jobs)
    log(f"  LIVE-NFLX: {S.shape[1]} splits ({n_neural} with the neural methods) in "
        f"{time.perf_counter() - t0:.0f} s")
    names = list(dict.fromkeys(k for o in outs for k in o))
    per = {k: {"srocc": [o[k][0] for o in outs if k in o], "plcc": [o[k][1] for o in outs if k in o],
               "seconds": sum(o[k][2] for o in outs if k in o)} for k in names}
    rows = {}
    for k, v in per.items():
        s = np.asarray(v["srocc"], float)
        p = np.asarray(v["plcc"], float)
        first = s[:n_neural]
        rows[k] = {"srocc": _summary(s[np.isfinite(s)]), "plcc": _summary(np.abs(p[np.isfinite(p)])),
                   "srocc_first_n": _summary(first[np.isfinite(first)]),
                   "plcc_first_n": _summary(np.abs(p[:n_neural][np.isfinite(p[:n_neural])])),
                   "n_splits": int(len(s)),
                   "kind": "single pooled VQA (no training)" if k in NFLX_SINGLE else "trained",
                   "seconds": round(v["seconds"], 1)}
    cg, gg = (C_GRID_QUICK, G_GRID_QUICK) if quick else (C_GRID, G_GRID)
    held = slice(NFLX_TUNED_SPLITS, n_neural)
    heldout = None
    if n_neural > NFLX_TUNED_SPLITS:  # splits the recipe was not chosen on
        heldout = {"splits": f"{NFLX_TUNED_SPLITS + 1}-{n_neural}",
                   "methods": {k: {"srocc": _summary(np.asarray(v["srocc"][held], float)),
                                   "plcc": _summary(np.abs(np.asarray(v["plcc"][held], float)))}
                               for k, v in per.items() if len(v["srocc"]) >= n_neural},
                   "paired_test_ours_vs_videoatlas": paired_test(per[OURS]["srocc"][held], per[VA]["srocc"][held])}
    return {"n_splits": int(S.shape[1]), "n_neural_splits": int(n_neural), "methods": rows,
            "held_out_from_tuning": heldout,
            "paired_test_ours_vs_videoatlas": paired_test(per[OURS]["srocc"], per[VA]["srocc"][:n_neural]),
            "paired_test_ours_vs_videoatlas_plcc": paired_test(np.abs(per[OURS]["plcc"]),
                                                           np.abs(per[VA]["plcc"][:n_neural])),
            "videoatlas_grid": {"C": list(cg), "gamma": [float(g) for g in gg], "cv": 10},
            "ours_inputs": NFLX_INPUTS, "ours_recipe": NFLX_RECIPE,
            "_srocc": {k: v["srocc"] for k, v in per.items()}}


# ------------------------------------------------------------------------------------ session datasets

CONT = ["startup_delay", "n_stalls", "stall_total", "stall_ratio", "stall_max", "stall_freq", "tsl_norm",
        "tsl_stall_norm", "time_below_best_norm", "qp_mean", "qp_min", "qp_std", "qp_last10",
        "br_log_mean", "br_log_std", "height_mean", "height_min", "pixels_mean", "fps_mean", "n_switches",
        "n_down", "switch_mag_mean", "media_duration"]
QCOLS = ["q_mean", "q_min", "q_std", "q_first10", "q_last10", "q_var_sum", "q_drop_sum"]
MONO = {"startup_delay": -1, "n_stalls": -1, "stall_total": -1, "stall_ratio": -1, "stall_max": -1,
        "stall_freq": -1, "qp_mean": 1, "qp_min": 1, "qp_last10": 1, "br_log_mean": 1, "height_mean": 1,
        "height_min": 1, "q_mean": 1, "q_min": 1, "q_first10": 1, "q_last10": 1, "tsl_stall_norm": 1,
        "time_below_best_norm": -1}


def _session_frame(ds: StreamingDataset) -> pd.DataFrame:
    """session_features (for the baselines) + ``_row``, the row of the shipped model's frame (ours)."""
    F = session_features(ds.sessions).reset_index()
    for c in ("device", "codec"):
        F[c + "_code"] = F[c].astype("category").cat.codes.astype(float)
    F["_row"] = np.arange(len(F))
    return F


def _session_ours(cols: list[str], seed: int = 0) -> Callable:
    """The previous engineer's "ours": monotone LightGBM + SVR ensemble on session features."""
    def make():
        return Ensemble([LGBM(cols + ["device_code"], monotone=MONO, seed=seed),
                         GridSVR(cols, (1.0, 10.0), (0.01, 0.03, 0.1), cv=5)])
    return make


class _RowFrame:
    """Picklable frame builder: rows ``X['_row']`` of a precomputed sessions.frame.session_frame."""

    def __init__(self, SF: pd.DataFrame):
        self.SF = SF.reset_index(drop=True)

    def __call__(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.SF.iloc[X["_row"].to_numpy()].reset_index(drop=True)


OURS_S = "ours: DeepQoE fusion (STREAMING_INPUTS)"
BLEND_S = "ours + monotone LightGBM (blend)"
LGBM_S = "LightGBM (monotone, session features)"
SVR_LGBM_S = "monotone LightGBM + SVR (previous 'ours')"


def _session_methods(ds: StreamingDataset, cols: list[str], key: str, quick: bool, seeds: int,
                     recipe: dict) -> dict:
    SF = _shipped_frame(pd.DataFrame({"_session": ds.sessions}))
    frame = _RowFrame(SF)
    inputs = _streaming_inputs()
    if quick:
        recipe = dict(recipe, max_epochs=15, patience=5)
        seeds = 1
    ours = OURS_FACTORIES.get(key, lambda: DeepQoEFusion(inputs, frame=frame, seeds=seeds, **recipe))
    mono = lambda: LGBM(cols + ["device_code"], monotone=MONO)  # noqa: E731
    m = {OURS_S: ours, LGBM_S: mono}
    if not quick:
        m[BLEND_S] = BlendOf(OURS_S, LGBM_S)
        m[SVR_LGBM_S] = _session_ours(cols)
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


class BlendOf:
    """A method entry meaning ``Blend(methods[a], methods[b])``, computed from the two members already
    fitted on the same fold (identical to fitting the Blend, at half the cost)."""

    def __init__(self, a: str, b: str, w: float = 0.5):
        self.a, self.b, self.w = a, b, w


def _blend_preds(pa_tr, pb_tr, pa, pb, ytr, w=0.5):
    """What :class:`Blend` predicts, from its two members' predictions already at hand."""
    return _z_combine([pa, pb], [_pred_stats(pa_tr), _pred_stats(pb_tr)], float(np.mean(ytr)),
                      float(np.std(ytr)), [w, 1 - w])


def _fit_group(g, tr, te, F, y, methods, norm_groups=None) -> tuple:
    row, preds = {}, {}
    ytr = _per_group_z(y[tr], None if norm_groups is None else norm_groups[tr])
    Ftr, Fte = F[tr].reset_index(drop=True), F[te].reset_index(drop=True)
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
            p = _blend_preds(a_tr, b_tr, a_te, b_te, ytr, spec.w)
            row[name] = {"srocc": srocc(p, y[te]), "plcc": plcc(p, y[te])}
    return g, {k: row[k] for k in methods}


def _eval_groups(F, y, group_vals, methods, extra_scores: dict | None = None, jobs: int = 1,
                 only: list | None = None, norm_groups=None) -> dict:
    """Leave-one-group-out: per held-out group SROCC/PLCC for each method and reference score
    (``norm_groups``: standardise the training MOS within each of these groups first)."""
    groups = [g for g in pd.unique(group_vals) if only is None or g in only]
    tasks = [(str(g), group_vals != g, group_vals == g, F, y, methods, norm_groups) for g in groups]
    out = dict(_par(_fit_group, tasks, jobs))
    for g in groups:
        te = group_vals == g
        for name, s in (extra_scores or {}).items():
            out[str(g)][name] = {"srocc": srocc(s[te], y[te]), "plcc": plcc(s[te], y[te])}
    return out


def _mean_over_groups(tab: dict) -> dict:
    names = next(iter(tab.values())).keys()
    return {n: {"srocc": float(np.mean([r[n]["srocc"] for r in tab.values()])),
                "plcc": float(np.mean([r[n]["plcc"] for r in tab.values()]))} for n in names}


def _content_splits(groups, n_splits, seed=0, test_frac=0.2):
    rng = np.random.default_rng(seed)
    u = np.unique(groups)
    k = max(1, int(round(test_frac * len(u))))
    for _ in range(n_splits):
        te_g = rng.choice(u, k, replace=False)
        te = np.isin(groups, te_g)
        yield ~te, te


O46 = "P.1203 (O46, mode 0)"


def p1203_table(ds: StreamingDataset, quick: bool, log=print, jobs: int = 2) -> dict:
    F = _session_frame(ds)
    y = np.asarray(ds.mos, float)
    meta = ds.meta
    o46 = meta["O46"].to_numpy(float)
    methods = _session_methods(ds, CONT, "p1203-open", quick, 3, SESSION_RECIPE)
    dbs = meta["database"].to_numpy()
    lodo = _eval_groups(F, y, dbs, methods, {O46: o46}, jobs=jobs, norm_groups=dbs)
    # per database and context, like the upstream README (mean over databases)
    ctx = {}
    if not quick:
        for c in ("pc", "mobile"):
            mask = meta["context"].to_numpy() == c
            sub = _eval_groups(F[mask].reset_index(drop=True), y[mask], dbs[mask], methods, {O46: o46[mask]},
                               jobs=jobs, norm_groups=dbs[mask])
            ctx[c] = _mean_over_groups(sub)
    n_cs = 2 if quick else 10
    cs = {n: {"srocc": [], "plcc": []} for n in list(methods) + [O46]}
    splits = list(_content_splits(meta["src"].to_numpy(), n_cs, seed=1))
    res = _par(_fit_group, [(i, tr, te, F, y, methods, dbs) for i, (tr, te) in enumerate(splits)], jobs)
    for (i, row), (tr, te) in zip(res, splits):
        for name, v in row.items():
            cs[name]["srocc"].append(v["srocc"])
            cs[name]["plcc"].append(v["plcc"])
        cs[O46]["srocc"].append(srocc(o46[te], y[te]))
        cs[O46]["plcc"].append(plcc(o46[te], y[te]))
    log("  P.1203 done")
    return {"lodo": lodo, "lodo_mean": _mean_over_groups(lodo), "lodo_mean_by_context": ctx,
            "content_splits": {k: {"srocc": _summary(v["srocc"]), "plcc": _summary(v["plcc"])}
                               for k, v in cs.items()}, "n_content_splits": n_cs,
            "inputs": {OURS_S: "sessions.frame.session_frame: stalls, startup, quality (bitrate/resolution/fps "
                               "proxy), switches, device, duration groups + per-second series",
                       LGBM_S: "session_features (mode 0: segments, stalls, device)",
                       O46: "the standard's own output (mode 0); never an input of ours"},
            "scale_alignment": "every trained method learns the training databases' MOS standardised within "
                               "each database (the four subjective tests use the 1-5 scale differently)",
            "note": "O46 is the standard's own output on the same sessions; never an input of ours."}


def waterloo_table(ds: StreamingDataset, quick: bool, log=print, jobs: int = 2) -> dict:
    import os

    F = _session_frame(ds)
    F["psnr_mean"] = ds.meta["psnr_mean"].to_numpy()
    F["ssim_mean"] = ds.meta["ssim_mean"].to_numpy()
    y = np.asarray(ds.mos, float)
    cols = CONT + QCOLS + ["psnr_mean", "ssim_mean"]
    methods = _session_methods(ds, cols, "waterloo-sqoe-iv", quick, 2, dict(SESSION_RECIPE, max_epochs=40))
    ref = {"VMAF pooled (no training)": F["q_mean"].to_numpy()}
    pub_scores = Path(os.environ.get("DEEPQOE_DATA", ".")) / "published/ksqi/WaterlooSQoE-IV/scores.csv"
    pub_perf = pub_scores.with_name("performance.csv")
    if pub_scores.exists():
        sc = pd.read_csv(pub_scores).set_index("streaming_log").reindex(ds.meta["streaming_log"])
        for k in ("KSQI", "VideoATLAS", "SQI", "P1203"):
            ref[f"{k} (published scores)"] = sc[k].to_numpy(float) * (-1 if k == "P1203" else 1)
    contents = ds.meta["content"].to_numpy()
    only = list(pd.unique(contents))[:2] if quick else None
    loco = _eval_groups(F, y, contents, methods, ref, jobs=jobs, only=only)
    published = pd.read_csv(pub_perf).set_index("qoe_model").to_dict("index") if pub_perf.exists() else {}
    log("  Waterloo done")
    return {"loco": loco, "loco_mean": _mean_over_groups(loco), "published_performance_csv": published,
            "held_out_contents": [str(c) for c in (only or pd.unique(contents))],
            "note": "published scores are models trained elsewhere, evaluated here per held-out content on "
                    "the same sessions; the P1203 column is sign-flipped back."}


# ------------------------------------------------------------------------------------ cross-dataset

def _common_frame(name: str, ds: StreamingDataset) -> pd.DataFrame:
    """Features every dataset has, the quality metric normalised within the dataset (percentile rank)."""
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


CROSS_MONO = {"quality": 1, "quality_min": 1, "quality_last": 1, "stall_ratio": -1, "n_stalls": -1,
              "startup_delay": -1, "tsl_stall_norm": 1, "below_best": -1}


CROSS_INPUTS: list[dict] = [
    {"column": "q", "name": "quality", "modality": "continuous",
     "columns": ["quality", "quality_min", "quality_last", "below_best"], "normalisation": "standard", "projection": 8},
    {"column": "s", "name": "stalls", "modality": "continuous",
     "columns": ["stall_ratio", "n_stalls", "tsl_stall_norm"], "normalisation": "standard", "projection": 8},
    {"column": "startup_delay", "name": "startup", "modality": "continuous", "normalisation": "standard",
     "projection": 4},
]
CROSS_RECIPE = dict(hidden_layers=[32, 16], dropout=0.2, weight_decay=1e-4, learning_rate=1e-3, batch_size=64,
                    max_epochs=100, patience=15, validation_fraction=0.1)
CROSS_OURS = "ours: DeepQoE fusion"
CROSS_BLEND = "ours + monotone LightGBM (blend)"
CROSS_LGBM = "monotone LightGBM"


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


# (per-dataset normalisation, clip the test features to the training range)
CROSS_NORMS = {"quality rank only": ("none", False), "+ clip to training range": ("none", True),
               "per-dataset rank": ("rank", False), "per-dataset z-score": ("z", False),
               "per-dataset z-score + clip": ("z", True)}
CROSS_NORM = "per-dataset z-score + clip"   # the one the main table uses


def _cross_inputs(Fa: pd.DataFrame, Fb: pd.DataFrame, norm: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    how, clip = CROSS_NORMS[norm]
    Fa, Fb = normalise_per_dataset(Fa, how), normalise_per_dataset(Fb, how)
    if clip:  # a network extrapolates linearly outside the training range; trees clip implicitly
        Fb = Fb.clip(Fa.min(), Fa.max(), axis=1)
    return Fa, Fb


def _cross_pair(a, b, Fa, ya, Fb, yb, quick, norm=CROSS_NORM, baselines=True) -> tuple:
    cols = list(CROSS_MONO)
    recipe = dict(CROSS_RECIPE, max_epochs=30) if quick else CROSS_RECIPE
    mono = lambda: LGBM(cols, monotone=CROSS_MONO, n_estimators=200, learning_rate=0.05, num_leaves=4,  # noqa
                        min_child_samples=10)
    dq = lambda: DeepQoEFusion(CROSS_INPUTS, seeds=1 if quick else 3, **recipe)  # noqa: E731
    Xa, Xb = _cross_inputs(Fa, Fb, norm)
    d, g = dq().fit(Xa, ya), mono().fit(Xa, ya)
    pd_, pg = d.predict(Xb), g.predict(Xb)
    row = {CROSS_OURS: srocc(pd_, yb),
           CROSS_BLEND: srocc(_blend_preds(d.predict(Xa), g.predict(Xa), pd_, pg, ya), yb),
           CROSS_LGBM: srocc(pg, yb)}
    if baselines:
        row["SVR (same features)"] = srocc(GridSVR(cols, (1.0,), (0.1,)).fit(Xa, ya).predict(Xb), yb)
        row["pooled quality alone"] = srocc(Fb["quality"], yb)
        best = max(((c, abs(srocc(Fb[c], yb))) for c in cols), key=lambda t: t[1])
        row["best single input"] = {"feature": best[0], "srocc": best[1]}
    return (f"{a} -> {b}", norm), row


def cross_dataset_table(datasets: dict[str, StreamingDataset], log=print, quick: bool = False,
                        jobs: int = 2) -> tuple[dict, dict]:
    """Train on one dataset, test on another, for every ordered pair. Returns the main table (normalisation
    :data:`CROSS_NORM`) and, when not ``quick``, the DeepQoE / LightGBM / blend SROCC under every
    normalisation of :data:`CROSS_NORMS` (how the remedy was chosen, shown beside the result)."""
    frames = {k: _common_frame(k, d) for k, d in datasets.items()}
    ranks = {k: pd.Series(d.mos).rank(pct=True).to_numpy() for k, d in datasets.items()}  # scale-free target
    norms = list(CROSS_NORMS) if not quick else [CROSS_NORM]
    tasks = [(a, b, frames[a], ranks[a], frames[b], np.asarray(datasets[b].mos, float), quick, n, n == CROSS_NORM)
             for n in norms for a in datasets for b in datasets if a != b]
    res = dict(_par(_cross_pair, tasks, jobs))
    main = {pair: row for (pair, n), row in res.items() if n == CROSS_NORM}
    variants = {n: {pair: row for (pair, m), row in res.items() if m == n} for n in norms}
    log("  cross-dataset done")
    return main, variants


# ------------------------------------------------------------------------------------ report

def _fmt(x, nd=3):
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def _cells(row: dict) -> str:
    return " | ".join(f"{_fmt(v['srocc'])} / {_fmt(v['plcc'])}" for v in row.values())


def _markdown(res: dict) -> str:
    L = ["## Streaming QoE", "", f"Mode: {'quick' if res['quick'] else 'full'}; run {res['date']} on "
         f"{res.get('machine', '?')}; {res['seconds']:.0f} s (sections: {res.get('section_seconds')}).", ""]
    if "live_nflx" in res:
        r = res["live_nflx"]
        n, nn = r["n_splits"], r["n_neural_splits"]
        L += [f"### LIVE-NFLX (fixed content-disjoint splits of the release)", "",
              f"Cheap methods (no training, VideoATLAS, LightGBM) on the first {n} splits; the neural methods "
              f"(ours included) and the SVR average on the first {nn}. The last two columns give every method on "
              f"the same first {nn} splits (a paired comparison).", "",
              f"| method | splits | median SROCC | std SROCC | median PLCC | median SROCC (first {nn}) | "
              f"median PLCC (first {nn}) |", "|---|---|---|---|---|---|---|"]
        for k, v in r["methods"].items():
            L.append(f"| {k} | {v['n_splits']} | {_fmt(v['srocc']['median'])} | {_fmt(v['srocc']['std'])} | "
                     f"{_fmt(v['plcc']['median'])} | {_fmt(v['srocc_first_n']['median'])} | "
                     f"{_fmt(v['plcc_first_n']['median'])} |")
        t = r["paired_test_ours_vs_videoatlas"]
        tp = r["paired_test_ours_vs_videoatlas_plcc"]
        L += ["", f"Paired test, ours vs VideoATLAS over the same {t['n']} splits: SROCC median difference "
              f"{_fmt(t['median_difference'])}, ours better on {100 * t['a_better_fraction']:.0f} % "
              f"of splits, Wilcoxon signed-rank p = {_fmt(t['wilcoxon_pvalue'], 4)}; PLCC median difference "
              f"{_fmt(tp['median_difference'])}, better on {100 * tp['a_better_fraction']:.0f} %, "
              f"p = {_fmt(tp['wilcoxon_pvalue'], 4)}.", "",
              "Ours = `DeepQoERegressor` with two grouped inputs: `quality` (pooled STRRED, the VQA score the "
              "release provides) and `stalls` (ds_norm, ns, tsl_norm, lt_norm), projections 16, fusion [64, 32], "
              "dropout 0.2, Adam 1e-3, weight decay 1e-4, full batch, 500 epochs, "
              f"{1 if res['quick'] else NFLX_SEEDS} seed(s) averaged. Same inputs as VideoATLAS.",
              "Single pooled VQA rows: SROCC / |PLCC| of the raw pooled score (STRRED sign-flipped).",
              f"VideoATLAS grid: C {r['videoatlas_grid']['C']}, gamma {len(r['videoatlas_grid']['gamma'])} "
              "values, 10-fold KFold on R^2 (the release's GridSearchCV).", ""]
        h = r.get("held_out_from_tuning")
        if h:
            t = h["paired_test_ours_vs_videoatlas"]
            L += [f"**Held out from the choice of our recipe** (it was chosen on the first {NFLX_TUNED_SPLITS} "
                  f"splits): splits {h['splits']}, median SROCC / median PLCC:", "",
                  "| method | median SROCC | median PLCC |", "|---|---|---|"]
            L += [f"| {k} | {_fmt(v['srocc']['median'])} | {_fmt(v['plcc']['median'])} |" for k, v in h["methods"].items()]
            L += ["", f"Paired test on these splits, ours vs VideoATLAS: SROCC median difference "
                  f"{_fmt(t['median_difference'])}, ours better on {100 * t['a_better_fraction']:.0f} % "
                  f"of {t['n']} splits, Wilcoxon p = {_fmt(t['wilcoxon_pvalue'], 4)}.", ""]
    if "p1203" in res:
        r = res["p1203"]
        first = next(iter(r["lodo"].values()))
        L += ["### P.1203 open dataset (mode 0 inputs)", "", "Leave-one-database-out (train on three, test on "
              "the fourth); O46 = the standard's own output on the same sessions.", "",
              "| held-out | " + " | ".join(first.keys()) + " |", "|---|" + "---|" * len(first)]
        for g, row in list(r["lodo"].items()) + [("**mean**", r["lodo_mean"])]:
            L.append(f"| {g} | {_cells(row)} |")
        L += ["", "Cells: SROCC / PLCC. Inputs: " + "; ".join(f"{k}: {v}" for k, v in r["inputs"].items()) + ". "
              "Scale alignment: " + r.get("scale_alignment", "none") + "."]
        if r["lodo_mean_by_context"]:
            pc = r["lodo_mean_by_context"]["pc"]
            L += ["", "Mean over databases, per context (the upstream README's protocol):", "",
                  "| context | " + " | ".join(pc.keys()) + " |", "|---|" + "---|" * len(pc)]
            for c, row in r["lodo_mean_by_context"].items():
                L.append(f"| {c} | {_cells(row)} |")
        L += ["", f"Content-disjoint random splits ({r['n_content_splits']}, 20 % of SRCs held out): median SROCC "
              "(std) / median PLCC", ""]
        for k, v in r["content_splits"].items():
            L.append(f"- {k}: {_fmt(v['srocc']['median'])} ({_fmt(v['srocc']['std'])}) / "
                     f"{_fmt(v['plcc']['median'])}")
        L.append("")
    if "waterloo" in res:
        r = res["waterloo"]
        first = next(iter(r["loco"].values()))
        L += ["### Waterloo SQoE-IV (leave-one-content-out, 1350 sessions)", "",
              "| held-out content | " + " | ".join(first.keys()) + " |", "|---|" + "---|" * len(first)]
        for g, row in list(r["loco"].items()) + [("**mean**", r["loco_mean"])]:
            L.append(f"| {g} | {_cells(row)} |")
        L += ["", "Cells: SROCC / PLCC. Published (ksqi `performance.csv`, whole database, PLCC / SRCC): " +
              ", ".join(f"{k} {v['PLCC']} / {v['SRCC']}" for k, v in r["published_performance_csv"].items()
                        if k in ("KSQI", "SQI", "VideoATLAS", "P1203")), ""]
    if "cross" in res:
        names = [k for k in next(iter(res["cross"].values())) if k != "best single input"]
        L += ["### Cross-dataset SROCC (train on one, test on another)", "",
              "| train -> test | " + " | ".join(names) + " | best single input |", "|---|" + "---|" * (len(names) + 1)]
        for k, v in res["cross"].items():
            b = v["best single input"]
            L.append(f"| {k} | " + " | ".join(_fmt(v[n]) for n in names) + f" | {_fmt(b['srocc'])} ({b['feature']}) |")
        L += ["", "Common features: the dataset's quality metric (LIVE-NFLX STRRED, Waterloo VMAF, P.1203 a "
              "bitrate/resolution proxy) as a percentile rank within its dataset, stall ratio, stall count, "
              "startup delay, time since the last stall, time below best; targets as percentile ranks. Trained "
              f"models see them after **{CROSS_NORM}**: every feature z-scored within its own dataset (features "
              "only, never scores), and the test features clipped to the training range. Best single input: the "
              "largest |SROCC| of one raw common feature on the test set (an oracle choice).", ""]
        var = res.get("cross_normalisations") or {}
        if len(var) > 1:
            pairs = list(res["cross"])
            L += ["Normalisation of the common features (SROCC of ours / monotone LightGBM / blend per pair; the "
                  "main table uses the last row). Chosen after seeing these pairs, so its margins are optimistic:",
                  "", "| normalisation | " + " | ".join(pairs) + " | pairs >= best single input (ours) |",
                  "|---|" + "---|" * (len(pairs) + 1)]
            for n, tab in var.items():
                cells = [f"{_fmt(tab[p][CROSS_OURS])} / {_fmt(tab[p][CROSS_LGBM])} / {_fmt(tab[p][CROSS_BLEND])}"
                         for p in pairs]
                ok_n = sum(tab[p][CROSS_OURS] >= res["cross"][p]["best single input"]["srocc"] for p in pairs)
                L.append(f"| {n} | " + " | ".join(cells) + f" | {ok_n} / {len(pairs)} |")
            L.append("")
    L += ["### Targets", ""] + [f"- {t}" for t in res.get("targets", [])] + [""]
    return "\n".join(L)


def _plots(res: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    if "live_nflx" in res:
        sr = res["live_nflx"]["_srocc"]
        fig, ax = plt.subplots(figsize=(9, 4))
        names = list(sr)
        ax.boxplot([np.asarray(sr[k], float)[np.isfinite(sr[k])] for k in names], orientation="horizontal")
        ax.set_yticks(range(1, len(names) + 1), names, fontsize=7)
        ax.set_xlabel("SROCC per split")
        ax.set_title("LIVE-NFLX")
        fig.tight_layout()
        p = out_dir / "streaming_live_nflx_srocc.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        files.append(p.name)
    if "cross" in res:
        keys = list(res["cross"])
        fig, ax = plt.subplots(figsize=(8, 4))
        xs = np.arange(len(keys))
        ax.bar(xs - 0.2, [res["cross"][k][CROSS_BLEND] for k in keys], 0.4, label=CROSS_BLEND)
        ax.bar(xs + 0.2, [res["cross"][k]["best single input"]["srocc"] for k in keys], 0.4,
               label="best single input")
        ax.set_xticks(xs, keys, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("SROCC")
        ax.legend()
        fig.tight_layout()
        p = out_dir / "streaming_cross_dataset.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        files.append(p.name)
    return files


def _env_int(name: str) -> int | None:
    import os

    v = os.environ.get(name)
    return int(v) if v and v.strip().isdigit() else None


def run(out_dir: Path, quick: bool = False, n_splits: int | None = None, log=print, n_neural: int | None = None,
        jobs: int = 2) -> dict:
    """Run every streaming evaluation; write report_streaming.md, results_streaming.json, PNGs.

    ``n_splits``: LIVE-NFLX splits for the cheap methods (default 1000, quick 5; env
    ``DEEPQOE_STREAMING_SPLITS``); ``n_neural``: how many of them (the first ones) the neural methods run on
    (default 200: the 100 the recipe was chosen on and 100 held out; quick 3; env
    ``DEEPQOE_STREAMING_NEURAL_SPLITS``); ``jobs``: worker processes."""
    import os
    import platform

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    n = n_splits or _env_int("DEEPQOE_STREAMING_SPLITS") or (5 if quick else 1000)
    nn = n_neural or _env_int("DEEPQOE_STREAMING_NEURAL_SPLITS") or (3 if quick else 2 * NFLX_TUNED_SPLITS)
    res: dict = {"quick": bool(quick), "date": time.strftime("%Y-%m-%d %H:%M"), "deepqoe_model":
                 deepqoe_available(), "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), "
                 f"{jobs} worker(s)", "jobs": jobs}
    nflx = load_live_nflx()
    log("LIVE-NFLX ...")
    t = time.time()
    res["live_nflx"] = live_nflx_table(nflx, n, quick, log, n_neural=nn, jobs=jobs)
    res["section_seconds"] = {"live_nflx": round(time.time() - t, 1)}
    p12 = load_p1203_open()
    log("P.1203 ...")
    t = time.time()
    res["p1203"] = p1203_table(p12, quick, log, jobs=jobs)
    res["section_seconds"]["p1203"] = round(time.time() - t, 1)
    wat = load_waterloo_sqoe_iv()
    log("Waterloo ...")
    t = time.time()
    res["waterloo"] = waterloo_table(wat, quick, log, jobs=jobs)
    res["section_seconds"]["waterloo"] = round(time.time() - t, 1)
    t = time.time()
    res["cross"], res["cross_normalisations"] = cross_dataset_table(
        {"live-nflx": nflx, "p1203-open": p12, "waterloo-sqoe-iv": wat}, log, quick=quick, jobs=jobs)
    res["section_seconds"]["cross"] = round(time.time() - t, 1)
    res["seconds"] = time.time() - t0
    log(f"  sections (s): {res['section_seconds']}")
    res["targets"] = _targets(res)
    res["plots"] = _plots(res, out_dir)
    md = _markdown(res)
    atomic_write_text(out_dir / "report_streaming.md", md)
    public = json.loads(json.dumps({k: v for k, v in res.items()}, default=str))
    public["live_nflx"].pop("_srocc", None)
    atomic_write_json(out_dir / "results_streaming.json", public)
    public["markdown"] = md  # deepqoe reproduce embeds it in report.md
    return public


def _targets(res: dict) -> list[str]:
    r = res["live_nflx"]
    ours = r["methods"][OURS]["srocc"]
    va = r["methods"][VA]
    lodo = res["p1203"]["lodo_mean"]
    w = res["waterloo"]["loco_mean"]
    ok = lambda c: "met" if c else "MISSED"  # noqa: E731
    out = [f"LIVE-NFLX ours median SROCC {ours['median']:.3f} over the first {ours['n']} splits >= 0.90: "
           f"{ok(ours['median'] >= 0.90)} (VideoATLAS {va['srocc_first_n']['median']:.3f} on the same splits, "
           f"{va['srocc']['median']:.3f} over {va['srocc']['n']})"]
    h = r.get("held_out_from_tuning")
    if h:
        ho, hv = h["methods"][OURS]["srocc"]["median"], h["methods"][VA]["srocc"]["median"]
        out.append(f"LIVE-NFLX held-out splits {h['splits']} (not used to choose the recipe): ours {ho:.3f} vs "
                   f"VideoATLAS {hv:.3f}; >= 0.90: {ok(ho >= 0.90)}")
    for name in (OURS_S, BLEND_S):
        if name in lodo:
            o = lodo[name]
            out.append(f"P.1203 LODO mean, {name}: SROCC {o['srocc']:.3f} / PLCC {o['plcc']:.3f} vs O46 "
                       f"{lodo[O46]['srocc']:.3f} / {lodo[O46]['plcc']:.3f}: "
                       f"{ok(o['srocc'] > lodo[O46]['srocc'] and o['plcc'] > lodo[O46]['plcc'])}")
    for name in (OURS_S, BLEND_S):
        if name in w:
            out.append(f"Waterloo LOCO mean SROCC {name} {w[name]['srocc']:.3f} vs KSQI (published scores) "
                       f"{w.get('KSQI (published scores)', {}).get('srocc', float('nan')):.3f}")
    for name in (CROSS_OURS, CROSS_BLEND):
        bad = [k for k, v in res["cross"].items() if v[name] < v["best single input"]["srocc"] - 1e-9]
        out.append(f"cross-dataset, {name} >= best single input on every pair: {ok(not bad)}"
                   + (f" (below on {', '.join(bad)})" if bad else ""))
    return out


if __name__ == "__main__":  # python -m deepqoe.experiments.streaming OUT [--quick] [--splits N] [--neural-splits M]
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--splits", type=int, help="LIVE-NFLX splits for the cheap methods (default 1000)")
    ap.add_argument("--neural-splits", type=int, help="first splits for the neural methods (default 200)")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    r = run(a.out, a.quick, a.splits, n_neural=a.neural_splits, jobs=a.jobs)
    print("\n".join(r["targets"]))
