"""Statistics for reporting: summaries over splits, paired tests, the 4-parameter logistic mapping."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import optimize, stats


#: The one ddof of every reported spread (std over splits, folds, groups or seeds): the sample standard
#: deviation, ddof = 1 (0.0 for a single value). Standardising features or targets *inside* a model
#: (StandardScaler, z-scores) is not a report and keeps the population std (ddof = 0), as scikit-learn does.
STD_DDOF = 1


def describe(values, keep_values: bool = False) -> dict:
    """The one summary of a metric over splits: mean, std (ddof :data:`STD_DDOF`), median, min, max and
    n (NaN for no values); ``keep_values`` adds the values themselves."""
    vals = np.asarray(values, dtype=float).reshape(-1)
    n = len(vals)
    nan = float("nan")
    out = {"mean": float(np.mean(vals)) if n else nan,
           "std": float(np.std(vals, ddof=STD_DDOF)) if n > 1 else (0.0 if n else nan),
           "median": float(np.median(vals)) if n else nan, "min": float(np.min(vals)) if n else nan,
           "max": float(np.max(vals)) if n else nan, "n": n}
    if keep_values:
        out["values"] = vals.tolist()
    return out


def summarise(per_split: list[dict]) -> dict[str, dict]:
    """:func:`describe` of each scalar metric over splits, with the per-split values kept."""
    keys = [k for k, v in per_split[0].items() if isinstance(v, (int, float))] if per_split else []
    return {k: describe([float(s[k]) for s in per_split], keep_values=True) for k in keys}


def paired_test(a, b) -> dict[str, float]:
    """Paired comparison of method A against method B over the same splits (pairs with a NaN dropped):
    mean and median of A - B, the share of splits where A is better (larger) and tied, a paired t-test and
    the Wilcoxon signed-rank test."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = a - b
    n = len(d)
    res = {"mean_difference": float(d.mean()) if n else float("nan"),
           "median_difference": float(np.median(d)) if n else float("nan"),
           "a_better_fraction": float(np.mean(d > 0)) if n else float("nan"),
           "ties_fraction": float(np.mean(d == 0)) if n else float("nan"), "n": int(n)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n >= 2 and np.std(d) > 0:
            res["t_pvalue"] = float(stats.ttest_rel(a, b).pvalue)
            try:
                res["wilcoxon_pvalue"] = float(stats.wilcoxon(a, b).pvalue)
            except ValueError:
                res["wilcoxon_pvalue"] = 1.0
        else:
            res["t_pvalue"] = 1.0
            res["wilcoxon_pvalue"] = 1.0
    return res


def _logistic_4(x, b1, b2, b3, b4):
    return (b1 - b2) / (1 + np.exp(-(x - b3) / np.abs(b4))) + b2


def logistic_4_fit(pred: np.ndarray, mos: np.ndarray) -> np.ndarray:
    """Map predictions onto the MOS scale with the 4-parameter logistic (VQEG), returning the mapped values.

    Falls back to a linear fit when the optimiser does not converge.
    """
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    if len(pred) < 5 or np.std(pred) == 0:
        return pred
    beta0 = [np.max(mos), np.min(mos), np.mean(pred), np.std(pred) / 4 + 1e-6]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            popt, _ = optimize.curve_fit(_logistic_4, pred, mos, p0=beta0, maxfev=20000)
        with np.errstate(over="ignore"):  # a steep fit: exp overflows to inf, and the curve is at its end there
            out = _logistic_4(pred, *popt)
        if np.all(np.isfinite(out)):
            return out
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        pass
    a, b = np.polyfit(pred, mos, 1)
    return a * pred + b
