"""Phase 3, shallow side: classical learners, on the original features or on the DeepQoE representation.

``original_features(inputs)`` is the preprocessing a classical learner gets for the same inputs as
DeepQoE: text and categorical columns one-hot encoded (unknown values ignored), numbers standardised.
``shallow_learner(name, task)`` builds the learners the paper compares with (SVM, decision tree, random
forest, AdaBoost, naive Bayes), trivial baselines (majority class, mean) and strong tabular ones
(LightGBM, linear). ``baseline_pipeline`` joins the two into one scikit-learn Pipeline.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import AdaBoostClassifier, AdaBoostRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from deepqoe.errors import DeepQoEError

SHALLOW_LEARNERS = ("svm", "decision_tree", "random_forest", "adaboost", "naive_bayes")
LEARNER_TITLES = {"svm": "SVM", "decision_tree": "Decision tree", "random_forest": "Random forest",
                  "adaboost": "AdaBoost", "naive_bayes": "Naive Bayes", "majority": "Majority class",
                  "mean": "Mean", "linear": "Linear", "lightgbm": "LightGBM"}
BASELINES = ("majority", "mean", "random_forest", "lightgbm", "svm", "linear", "decision_tree", "adaboost",
             "naive_bayes")


def _to_str(X):
    return X.astype(str)


def original_features(inputs: list[dict]) -> ColumnTransformer:
    """One-hot for text/categorical inputs, standardisation for continuous/vector inputs."""
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
        parts.append(("onehot", Pipeline([("str", FunctionTransformer(_to_str)),
                                          ("enc", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), cats))
    if nums:
        parts.append(("scale", StandardScaler(), nums))
    return ColumnTransformer(parts)


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
        import lightgbm as lgb

        kw = dict(n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=10, subsample=0.8,
                  subsample_freq=1, colsample_bytree=0.8, random_state=seed, n_jobs=n_jobs, verbose=-1)
        return lgb.LGBMClassifier(**kw) if clf else lgb.LGBMRegressor(**kw)
    raise DeepQoEError(f"unknown learner '{name}'; use one of {', '.join(BASELINES)}")


def paper_learners(seed: int = 0, n_jobs: int = 1) -> dict:
    """The five shallow learners of the DeepQoE paper, by display title."""
    return {LEARNER_TITLES[n]: shallow_learner(n, "classification", seed, n_jobs) for n in SHALLOW_LEARNERS}


def baseline_pipeline(name: str, task: str, inputs: list[dict], seed: int = 0) -> Pipeline:
    """A classical learner on the original features of the same inputs."""
    return Pipeline([("features", original_features(inputs)), ("learner", shallow_learner(name, task, seed))])


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
