"""Phase 3, shallow side: classical learners, on the original features or on the DeepQoE representation.

``original_features(inputs)`` is the preprocessing a classical learner gets for the same inputs as
DeepQoE: text and categorical columns one-hot encoded (unknown values ignored), numbers standardised.
``shallow_learner(name, task)`` builds the learners the paper compares with (SVM, decision tree, random
forest, AdaBoost, naive Bayes), trivial baselines (majority class, mean) and strong tabular ones
(LightGBM, linear). ``baseline_pipeline`` joins the two into one scikit-learn Pipeline.
"""

from __future__ import annotations

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


def shallow_learner(name: str, task: str, seed: int = 0):
    clf = task == "classification"
    if name in ("majority", "mean"):
        return DummyClassifier(strategy="most_frequent") if clf else DummyRegressor(strategy="mean")
    if name == "svm":
        return SVC(C=1.0, gamma="scale", random_state=seed) if clf else SVR(C=1.0, gamma="scale")
    if name == "decision_tree":
        return (DecisionTreeClassifier if clf else DecisionTreeRegressor)(max_depth=8, random_state=seed)
    if name == "random_forest":
        return (RandomForestClassifier if clf else RandomForestRegressor)(n_estimators=200, random_state=seed, n_jobs=2)
    if name == "adaboost":
        return (AdaBoostClassifier if clf else AdaBoostRegressor)(n_estimators=100, random_state=seed)
    if name == "naive_bayes":
        if not clf:
            raise DeepQoEError("naive Bayes is a classifier; it has no regression form")
        return GaussianNB()
    if name == "linear":
        return LogisticRegression(max_iter=2000) if clf else Ridge(alpha=1.0)
    if name == "lightgbm":
        import lightgbm as lgb

        kw = dict(n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=10, subsample=0.8,
                  subsample_freq=1, colsample_bytree=0.8, random_state=seed, n_jobs=2, verbose=-1)
        return lgb.LGBMClassifier(**kw) if clf else lgb.LGBMRegressor(**kw)
    raise DeepQoEError(f"unknown learner '{name}'; use one of {', '.join(BASELINES)}")


def baseline_pipeline(name: str, task: str, inputs: list[dict], seed: int = 0) -> Pipeline:
    """A classical learner on the original features of the same inputs."""
    return Pipeline([("features", original_features(inputs)), ("learner", shallow_learner(name, task, seed))])
