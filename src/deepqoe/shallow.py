"""Phase 3, shallow side: classical learners, on the original features or on the DeepQoE representation.

``original_features(inputs)`` is the preprocessing a classical learner gets for the same inputs as
DeepQoE: text and categorical columns one-hot encoded (unknown values ignored), numbers standardised.
``shallow_learner(name, task)`` builds the learners the paper compares with (SVM, decision tree, random
forest, AdaBoost, naive Bayes), trivial baselines (majority class, mean) and strong tabular ones
(LightGBM, linear). ``baseline_pipeline`` joins the two into one scikit-learn Pipeline.
"""

from __future__ import annotations

import math
import typing

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import AdaBoostClassifier, AdaBoostRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from deepqoe.config import Baseline
from deepqoe.errors import DeepQoEError

SHALLOW_LEARNERS = ("svm", "decision_tree", "random_forest", "adaboost", "naive_bayes")
LEARNER_TITLES = {"svm": "SVM", "decision_tree": "Decision tree", "random_forest": "Random forest",
                  "adaboost": "AdaBoost", "naive_bayes": "Naive Bayes", "majority": "Majority class",
                  "mean": "Mean", "linear": "Linear", "lightgbm": "LightGBM"}
BASELINES = typing.get_args(Baseline)  # named once, in deepqoe.config


def _to_str(X):
    return X.astype(str)


# ``baseline_pipeline``: a one-hot encoding wider than this stays sparse (a column of 10^5 ids would
# otherwise be a dense matrix of 10^5 columns); narrower ones are made dense, as before
MAX_DENSE_COLUMNS = 256
# naive Bayes needs dense features: each categorical column keeps its most frequent categories, the rest
# share one "infrequent" column
MAX_DENSE_CATEGORIES = 64


class DenseIfNarrow(TransformerMixin, BaseEstimator):
    """Sparse features made dense when they have at most ``max_columns`` columns (decided at ``fit``):
    learners see the dense matrix they always saw on ordinary data, and a sparse one where the one-hot
    encoding of a high-cardinality column would not fit in memory dense."""

    def __init__(self, max_columns: int = MAX_DENSE_COLUMNS):
        self.max_columns = max_columns

    def fit(self, X, y=None):
        self.dense_ = not sparse.issparse(X) or X.shape[1] <= self.max_columns
        return self

    def transform(self, X):
        return X.toarray() if self.dense_ and sparse.issparse(X) else X


def original_features(inputs: list[dict], *, sparse_output: bool = False,
                      max_categories: int | None = None) -> ColumnTransformer:
    """One-hot for text/categorical inputs, standardisation for continuous/vector inputs.

    ``sparse_output``: the one-hot part stays a sparse matrix (the result is sparse whenever there is a
    categorical input), so a column with many distinct values costs memory per row, not per value x row.
    ``max_categories``: at most this many one-hot columns per input (the rarest values share one)."""
    cats, nums = [], []
    for i in inputs:
        if i.get("projection", 1) == 0:
            continue
        if i["modality"] in ("text", "categorical"):
            cats.append(i["column"])
        elif i["modality"] in ("continuous", "vector"):
            nums.extend(i.get("columns") or [i["column"]])
        # sequences have no flat "original feature" form; session features cover them
    parts = []
    if cats:
        enc = OneHotEncoder(handle_unknown="ignore", sparse_output=sparse_output, max_categories=max_categories)
        parts.append(("onehot", Pipeline([("str", FunctionTransformer(_to_str)), ("enc", enc)]), cats))
    if nums:
        parts.append(("scale", StandardScaler(), nums))
    return ColumnTransformer(parts, sparse_threshold=1.0 if sparse_output else 0.3)


def shallow_learner(name: str, task: str, seed: int = 0, n_jobs: int = 2):
    """A classical learner with the library defaults the paper's comparison uses (RBF SVM, unpruned tree,
    200-tree forest, AdaBoost, Gaussian naive Bayes)."""
    clf = task == "classification"
    if name in ("majority", "mean"):
        return DummyClassifier(strategy="most_frequent") if clf else DummyRegressor(strategy="mean")
    if name == "svm":
        return SVC(C=1.0, gamma="scale", random_state=seed) if clf else SVR(C=1.0, gamma="scale")
    if name == "decision_tree":
        return (DecisionTreeClassifier if clf else DecisionTreeRegressor)(random_state=seed)
    if name == "random_forest":
        return (RandomForestClassifier if clf else RandomForestRegressor)(n_estimators=200, random_state=seed, n_jobs=n_jobs)
    if name == "adaboost":
        return (AdaBoostClassifier if clf else AdaBoostRegressor)(random_state=seed)
    if name == "naive_bayes":
        if not clf:
            raise DeepQoEError("naive Bayes is a classifier; it has no regression form")
        return GaussianNB()
    if name == "linear":
        return LogisticRegression(max_iter=2000) if clf else Ridge(alpha=1.0)
    if name == "lightgbm":
        return lightgbm(task, seed, n_jobs)
    raise DeepQoEError(f"unknown learner '{name}'; use one of {', '.join(BASELINES)}")


# ---- LightGBM: every setting the package gives it, by name ------------------------------------------
LIGHTGBM_SETTINGS = {
    # the tabular baseline of `deepqoe evaluate` and the benchmarks
    "default": dict(n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=10, subsample=0.8,
                    subsample_freq=1, colsample_bytree=0.8),
    # the UGC experiment (60 VIDEVAL features, ~1000 videos)
    "videval": dict(n_estimators=400, learning_rate=0.03, num_leaves=15, min_child_samples=10, subsample=0.8,
                    subsample_freq=1, colsample_bytree=0.7, reg_lambda=1.0),
    # the streaming experiments (a few hundred sessions, a handful of features)
    "streaming": dict(n_estimators=300, learning_rate=0.03, num_leaves=8, min_child_samples=5, subsample=0.8,
                      subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0),
}


def lightgbm(task: str, seed: int = 0, n_jobs: int = 1, settings: str = "default", **overrides):
    """A LightGBM classifier or regressor with the named :data:`LIGHTGBM_SETTINGS` (and ``overrides``)."""
    import lightgbm as lgb

    if settings not in LIGHTGBM_SETTINGS:
        raise DeepQoEError(f"unknown LightGBM settings '{settings}'; use one of {', '.join(LIGHTGBM_SETTINGS)}")
    kw = dict(LIGHTGBM_SETTINGS[settings], random_state=seed, n_jobs=n_jobs, verbose=-1) | overrides
    return lgb.LGBMClassifier(**kw) if task == "classification" else lgb.LGBMRegressor(**kw)


class ColumnLightGBM:
    """A LightGBM regressor on chosen columns of a table (NaN allowed), with optional monotone constraints
    (``{column: +1 | -1}``)."""

    def __init__(self, columns, monotone: dict | None = None, seed: int = 0, settings: str = "streaming",
                 **overrides):
        self.columns, self.monotone, self.seed = list(columns), monotone or {}, seed
        self.settings, self.overrides = settings, overrides

    def fit(self, X, y, groups=None):
        cons = [int(self.monotone.get(c, 0)) for c in self.columns]
        self.m_ = lightgbm("regression", self.seed, 1, self.settings, monotone_constraints=cons, **self.overrides)
        self.m_.fit(X[self.columns].astype(float), np.asarray(y, float))
        return self

    def predict(self, X):
        return self.m_.predict(X[self.columns].astype(float))


def paper_learners(seed: int = 0, n_jobs: int = 1) -> dict:
    """The five shallow learners of the DeepQoE paper, by display title."""
    return {LEARNER_TITLES[n]: shallow_learner(n, "classification", seed, n_jobs) for n in SHALLOW_LEARNERS}


def baseline_pipeline(name: str, task: str, inputs: list[dict], seed: int = 0) -> Pipeline:
    """A classical learner on the original features of the same inputs, in bounded memory: the one-hot
    encoding is sparse and made dense only when narrow (:class:`DenseIfNarrow`); naive Bayes, which needs
    dense features, keeps at most :data:`MAX_DENSE_CATEGORIES` columns per categorical input."""
    learner = shallow_learner(name, task, seed)
    if name == "naive_bayes":
        features = original_features(inputs, max_categories=MAX_DENSE_CATEGORIES)
        return Pipeline([("features", features), ("learner", learner)])
    return Pipeline([("features", original_features(inputs, sparse_output=True)), ("dense", DenseIfNarrow()),
                     ("learner", learner)])


# ---- VIDEVAL's method: RBF-SVR with C and gamma chosen on an inner split (Tu et al., VIDEVAL) ----------
# The authors' evaluation script: inside each 80/20 split i, train_test_split(test_size=0.2,
# random_state=ceil(6.6 i)) picks C and gamma (10 log-spaced values each) by the RMSE of the
# logistic-mapped predictions on the inner validation part; features min-max scaled.
SVR_C_RANGE = tuple(float(v) for v in np.logspace(1, 10, 10, base=2))
SVR_GAMMA_RANGE = tuple(float(v) for v in np.logspace(-8, 1, 10, base=2))


def videval_svr_fit(X_train: np.ndarray, y_train: np.ndarray, i: int, c_range=SVR_C_RANGE,
                    gamma_range=SVR_GAMMA_RANGE):
    """VIDEVAL's SVR for split i: grid search on the inner split, then a refit on the whole training part.

    Returns ``(model, info)`` where ``model`` is a Pipeline (min-max scaler + SVR) and ``info`` holds the
    chosen C, gamma and the grid-search / final-fit times in seconds.
    """
    import time

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from sklearn.svm import SVR

    from deepqoe.evaluation.statistics import logistic_4_fit

    X_train, y_train = np.asarray(X_train, float), np.asarray(y_train, float)
    t0 = time.perf_counter()
    from deepqoe.evaluation.protocols import videval_inner_split

    a, b = videval_inner_split(len(X_train), i)
    scaler = MinMaxScaler().fit(X_train[a])
    xa, xb = scaler.transform(X_train[a]), scaler.transform(X_train[b])
    best, best_rmse = None, math.inf
    for c in c_range:
        for g in gamma_range:
            p = SVR(kernel="rbf", C=c, gamma=g).fit(xa, y_train[a]).predict(xb)
            rmse = float(np.sqrt(np.mean((y_train[b] - logistic_4_fit(p, y_train[b])) ** 2)))
            if rmse < best_rmse:
                best, best_rmse = (c, g), rmse
    t1 = time.perf_counter()
    model = make_pipeline(MinMaxScaler(), SVR(kernel="rbf", C=best[0], gamma=best[1])).fit(X_train, y_train)
    t2 = time.perf_counter()
    return model, {"C": best[0], "gamma": best[1], "grid_search_seconds": t1 - t0, "fit_seconds": t2 - t1,
                   "grid_size": len(c_range) * len(gamma_range)}


# ---- VideoATLAS's method: StandardScaler + RBF SVR, C and gamma by inner cross-validation (Bampis et al.) --
VIDEOATLAS_C = (1e-1, 1e0, 1e1, 1e2, 1e3)
VIDEOATLAS_GAMMA = tuple(float(v) for v in np.logspace(-2, 2, 15))


def _rbf(A, B, g):
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T
    return np.exp(-g * np.maximum(d2, 0.0))


class GridSVR:
    """StandardScaler + RBF SVR on chosen columns, C / gamma chosen by inner cross-validation.

    ``use_groups=False``: KFold(``cv``) scored by R^2 (the VideoATLAS release); ``use_groups=True`` with
    ``groups`` passed to :meth:`fit`: leave-one-group-out scored by SROCC (content-disjoint).
    """

    def __init__(self, columns, C_grid=VIDEOATLAS_C, gamma_grid=VIDEOATLAS_GAMMA, cv=10, use_groups=False):
        self.columns, self.C_grid, self.gamma_grid, self.cv, self.use_groups = (
            list(columns), C_grid, gamma_grid, cv, use_groups)

    def _X(self, X):
        import pandas as pd

        return X[self.columns].to_numpy(float) if isinstance(X, pd.DataFrame) else np.asarray(X, float)

    def fit(self, X, y, groups=None):
        from deepqoe.evaluation.metrics import srocc

        X = np.nan_to_num(self._X(X))
        y = np.asarray(y, float)
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
                        p = SVR(kernel="precomputed", C=C).fit(K[np.ix_(tr, tr)], y[tr]).predict(K[np.ix_(te, tr)])
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
