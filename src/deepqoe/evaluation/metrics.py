"""The metrics of the QoE field, in one place.

Classification: accuracy, macro-F1, confusion matrix. Regression: MSE, RMSE, PLCC (Pearson), SROCC
(Spearman), KROCC (Kendall), and PLCC after the 4-parameter logistic mapping customary in video quality
assessment (VQEG / VIDEVAL).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from scipy import stats

from deepqoe.evaluation.statistics import logistic_4_fit


#: The correlations of :func:`regression_metrics`: undefined against a constant (:func:`constant`).
CORRELATIONS = ("plcc", "srocc", "krocc")


def constant(values) -> bool:
    """Whether ``values`` cannot rank or vary: fewer than 2, or all the same. The one rule for an undefined
    correlation: a correlation with a constant (the scores, or the predictions of a model that predicts one
    score for every row) is undefined, not "no correlation"."""
    v = np.asarray(values, float).reshape(-1)
    return len(v) < 2 or bool(np.all(v == v[0]))


def correlation_undefined(y_true, y_pred) -> bool:
    """Whether PLCC / SROCC / KROCC of ``y_pred`` against ``y_true`` are undefined (:func:`constant`)."""
    return constant(y_true) or constant(y_pred)


def _corr(fn, a, b, undefined: float | None = 0.0) -> float | None:
    """The correlation, or ``undefined`` where it is (:func:`correlation_undefined`, or not finite)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if correlation_undefined(a, b):
        return undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = fn(a, b)[0]
    return float(r) if np.isfinite(r) else undefined


def plcc(y_true, y_pred, undefined: float | None = 0.0) -> float | None:
    return _corr(stats.pearsonr, y_true, y_pred, undefined)


def srocc(y_true, y_pred, undefined: float | None = 0.0) -> float | None:
    return _corr(stats.spearmanr, y_true, y_pred, undefined)


def krocc(y_true, y_pred, undefined: float | None = 0.0) -> float | None:
    return _corr(stats.kendalltau, y_true, y_pred, undefined)


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(np.mean((np.asarray(y_true, float) - np.asarray(y_pred, float)) ** 2)))


def plcc_logistic(y_true, y_pred, undefined: float | None = 0.0) -> float | None:
    """PLCC after fitting the 4-parameter logistic mapping from predictions to MOS."""
    mapped = logistic_4_fit(np.asarray(y_pred, float), np.asarray(y_true, float))
    return plcc(y_true, mapped, undefined)


def regression_metrics(y_true, y_pred, logistic: bool = False, undefined: float | None = 0.0
                       ) -> dict[str, float | None]:
    """MSE, RMSE, PLCC, SROCC, KROCC (and ``plcc_logistic``). ``undefined``: the value of a correlation that
    is undefined (:func:`correlation_undefined`: the scores or the predictions all the same): ``None`` in
    what is reported to people (``metrics.json``, ``deepqoe evaluate``: null, said in a note), ``0.0`` (the
    default) where a number is needed to average (the experiments' tables)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    mse = float(np.mean((y_true - y_pred) ** 2))
    out = {"mse": mse, "rmse": float(np.sqrt(mse)), "plcc": plcc(y_true, y_pred, undefined),
           "srocc": srocc(y_true, y_pred, undefined), "krocc": krocc(y_true, y_pred, undefined)}
    if logistic:
        out["plcc_logistic"] = plcc_logistic(y_true, y_pred, undefined)
    return out


def outage_rate(y_pred, ci_low, ci_high) -> float:
    """Share of predictions outside their ratings' confidence interval [ci_low, ci_high] (continuous QoE)."""
    p, lo, hi = (np.asarray(a, float) for a in (y_pred, ci_low, ci_high))
    return float(np.mean((p < lo) | (p > hi))) if p.size else float("nan")


def confusion_matrix(y_true, y_pred, labels: Sequence) -> np.ndarray:
    index = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        if t in index and p in index:
            cm[index[t], index[p]] += 1
    return cm


def classification_metrics(y_true, y_pred, labels: Sequence) -> dict:
    """Accuracy, macro-F1 (over the classes present in y_true or y_pred) and the confusion matrix."""
    y_true, y_pred = list(y_true), list(y_pred)
    cm = confusion_matrix(y_true, y_pred, labels)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    present = (support + predicted) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"accuracy": float(tp.sum() / max(cm.sum(), 1)),
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "confusion_matrix": cm.tolist()}


def scalar_metrics(m: dict) -> dict[str, float | None]:
    """The metrics that are single numbers (for mean +- std over splits), an undefined one (None) kept."""
    return {k: v for k, v in m.items() if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
