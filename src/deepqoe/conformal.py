"""Prediction intervals with guaranteed coverage: split conformal prediction around every regression score.

    from deepqoe.conformal import calibrate, interval_bounds

    cal = calibrate(y_cal, model.predict(X_cal), source="20% of the training rows, held out")
    low, high = interval_bounds(cal, model.predict(X_new), level=0.9)

**Method** (split conformal, absolute residuals; Vovk et al. 2005, Lei et al. 2018). The model is fitted
on one part of the data; on a calibration part it never trained on, the absolute residuals
``r_i = |y_i - f(x_i)|`` are sorted. For a level ``L`` the interval of a new score is ``f(x) ± q`` with
``q = r_(k)``, the k-th smallest residual, ``k = ceil((n + 1) L)`` (the finite-sample correction). If the
calibration and new rows are exchangeable, the interval holds the true score with probability at least
``L`` (and at most ``L + 1/(n + 1)`` without ties), whatever the model. A level needs ``k <= n``, i.e. at
least ``L / (1 - L)`` calibration scores (9 for 0.9, 99 for 0.99): a level the calibration cannot support
is a :class:`~deepqoe.errors.DeepQoEError`. The guarantee is marginal (over rows), not per row or per
dataset: a dataset harder than the calibration mix gets less than ``L``, an easier one more.

**Storage.** MAPIE implements this too, but its fitted objects are saved by pickling, and model
directories here are safetensors + JSON, never pickle (:mod:`deepqoe.persistence`); split conformal needs
only the calibration residuals' order statistics, so it is this one small module. A model directory
holds ``intervals.json``::

    {"method": "split-conformal", "n_calibration": 240, "residuals": [order statistics of |y - f(x)|],
     "ranks": [121, 123, ..., 240], "scale": "1-5", "bounds": [1, 5], "source": "..."}

``residuals`` are the calibration residuals' order statistics at ``ranks`` (1-based): the ranks that the
levels of :data:`LEVEL_GRID` (0.50, 0.51, ..., 0.99, 0.995, 0.999) need, and ``n``. A level off the grid
takes the smallest stored rank ``>= k``: conservative (at most one grid step wider). Storing quantiles, not
every residual, keeps a model directory free of one-number-per-calibration-row data (a shipped model's
calibration rows are a dataset's sessions).
``scale`` names the scale of the residuals (a session model's common 1-5 scale; ``null``: the target's
units of a table model); ``bounds`` (or ``null``) is the range intervals are clipped to, on that scale.

**Per dataset.** A guarantee over a pool of datasets is marginal over the pool: a lab whose sessions the
model predicts worse than the pool's gets less than ``L``. A session model trained on several datasets
also stores, under ``"by_calibration"``, one interval object (the same fields) per training dataset with
enough scores, calibrated on that dataset's own residuals of the model predicting it *as that dataset's
viewers used the scale* (its score calibration; ``deepqoe predict --calibration DATASET``, the service's
``"calibration"``). A lab that resembles one of them gets that dataset's promise (:func:`for_calibration`).

**Where calibration data comes from** (:mod:`deepqoe.workflow`): ``deepqoe train`` on a table config holds
out ``training.calibration_fraction`` of the training rows (group-disjoint when the dataset has a
``group``), fits on the rest and calibrates on them; ``0`` gives no intervals. A session model calibrates on
the out-of-fold predictions of its content-disjoint k-fold cross-validation (the final model trains on
every session, the fold models did not see theirs: a small, usually conservative approximation); with
``--full`` or ``evaluation.protocol: none`` there is no cross-validation and no intervals. Classifiers get
none (they give class probabilities).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from deepqoe.errors import DeepQoEError

INTERVALS_FILE = "intervals.json"
METHOD = "split-conformal"
DEFAULT_LEVEL = 0.9
#: The levels whose conformal ranks are stored (any other level rounds up to the next stored rank).
LEVEL_GRID = tuple(round(0.5 + 0.01 * i, 2) for i in range(50)) + (0.995, 0.999)


# ---- the conformal quantile -------------------------------------------------------------------------------
def min_calibration(level: float) -> int:
    """The fewest calibration scores that support ``level``: the smallest n with ceil((n + 1) L) <= n."""
    return max(1, math.ceil(level / (1.0 - level) - 1e-9))


def conformal_rank(n: int, level: float) -> int:
    """k = ceil((n + 1) level), the rank (1-based) of the residual that bounds the interval."""
    return int(math.ceil((n + 1) * level - 1e-9))


#: the lowest level served: the stored grid starts there (a lower level would get this one's width)
MIN_LEVEL = LEVEL_GRID[0]


def check_level(level, field: str = "interval") -> float:
    """A level as a float in [MIN_LEVEL, 1), else a DeepQoEError naming ``field``."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not (MIN_LEVEL <= float(level) < 1.0):
        raise DeepQoEError(f"the interval level must be a number from {MIN_LEVEL:g} to 1 (exclusive), e.g. 0.9; "
                           f"got {level!r}", field=field)
    return float(level)


def parse_level(text: str | None) -> float | None:
    """A command-line ``--interval`` value: ``none`` -> None, else a level in (0, 1) (``90%`` also reads as
    0.9). A bad value is a DeepQoEError (the caller turns it into a usage error)."""
    if text is None or str(text).strip().lower() in ("none", "off", "no"):
        return None
    s = str(text).strip()
    try:
        v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise DeepQoEError(f"--interval must be a level from {MIN_LEVEL:g} to 1 (e.g. 0.9) or 'none', "
                           f"got '{s}'") from None
    if not (MIN_LEVEL <= v < 1.0):
        raise DeepQoEError(f"--interval must be a level from {MIN_LEVEL:g} to 1 (exclusive), e.g. 0.9, or 'none'; "
                           f"got '{s}'")
    return v


def half_width(cal: dict, level: float) -> float:
    """The conformal half-width ``q`` of ``cal`` (from :func:`calibrate`) at ``level``."""
    level = check_level(level)
    n = int(cal["n_calibration"])
    k = conformal_rank(n, level)
    if k > n:
        raise DeepQoEError(f"a {level:.10g} interval needs at least {min_calibration(level)} calibration scores; "
                           f"this model was calibrated on {n} (the highest level it supports is "
                           f"{math.floor(n / (n + 1) * 1000) / 1000:g})", field="interval")
    res = cal["residuals"]
    ranks = cal.get("ranks")
    if ranks is None:
        return float(res[k - 1])
    j = int(np.searchsorted(np.asarray(ranks), k, side="left"))  # the smallest stored rank >= k
    return float(res[min(j, len(res) - 1)])


def calibrate(y_true, y_pred, *, source: str, scale: str | None = None,
              bounds: tuple[float, float] | None = None) -> dict:
    """The ``intervals.json`` object of calibration scores ``y_true`` and the model's predictions of them
    (finite, same length). ``scale``/``bounds``: see the module's documentation."""
    y, p = np.asarray(y_true, float).reshape(-1), np.asarray(y_pred, float).reshape(-1)
    if y.shape != p.shape:
        raise DeepQoEError(f"calibration: {len(y)} scores but {len(p)} predictions")
    ok = np.isfinite(y) & np.isfinite(p)
    r = np.sort(np.abs(y[ok] - p[ok]))
    n = int(r.size)
    if n == 0:
        raise DeepQoEError("calibration: no finite calibration scores")
    ranks = sorted({k for k in (conformal_rank(n, lv) for lv in LEVEL_GRID) if k <= n} | {n})
    r = r[np.asarray(ranks) - 1]
    # rounded up so that the stored residual is never below the true one (coverage stays >= nominal)
    stored = [math.ceil(v * 1e6) / 1e6 for v in r.tolist()]
    return {"method": METHOD, "n_calibration": n, "residuals": stored, "ranks": ranks, "scale": scale,
            "bounds": None if bounds is None else [float(bounds[0]), float(bounds[1])], "source": source}


def interval_bounds(cal: dict, scores, level: float) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` around ``scores`` (on the calibration's scale), clipped to its ``bounds``."""
    q = half_width(cal, level)
    s = np.asarray(scores, float)
    low, high = s - q, s + q
    if cal.get("bounds") is not None:
        lo, hi = cal["bounds"]
        low, high = np.clip(low, lo, hi), np.clip(high, lo, hi)
    return low, high


def coverage(y_true, low, high) -> dict:
    """Share of scores inside [low, high] and the mean width (what the ``intervals`` section reports)."""
    y, lo, hi = (np.asarray(a, float) for a in (y_true, low, high))
    return {"coverage": float(np.mean((y >= lo) & (y <= hi))), "width": float(np.mean(hi - lo)), "n": int(y.size)}


# ---- intervals.json --------------------------------------------------------------------------------------
def interval_files(cal: dict | None) -> dict:
    """The extra files of a model directory: ``{"intervals.json": cal}``, or nothing without intervals."""
    return {} if cal is None else {INTERVALS_FILE: cal}


def for_calibration(cal: dict | None, calibration: str | None) -> dict | None:
    """The interval object that serves predictions made with the score calibration ``calibration`` (None:
    the pooled one, ``cal`` itself); None when ``cal`` has none for it."""
    if cal is None or calibration is None:
        return cal
    return (cal.get("by_calibration") or {}).get(calibration)


def calibration_sizes(cal: dict) -> dict[str, int]:
    """How many scores calibrate each dataset's own intervals (``by_calibration``; {} without them)."""
    return {d: int(c["n_calibration"]) for d, c in (cal.get("by_calibration") or {}).items()}


def validate(obj, file: str | None = None, prefix: str = "") -> dict:
    """Check an ``intervals.json`` object (each problem one DeepQoEError naming the file and field)."""
    def bad(field: str, msg: str):
        raise DeepQoEError(msg, file=file, field=prefix + field)

    if not isinstance(obj, dict):
        bad("intervals", f"must be a JSON object, not {type(obj).__name__}")
    if obj.get("method") != METHOD:
        bad("method", f"unknown interval method {obj.get('method')!r} (this deepqoe reads '{METHOD}')")
    n = obj.get("n_calibration")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        bad("n_calibration", "must be a positive integer")
    res = obj.get("residuals")
    if not isinstance(res, list) or not res or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in res):
        bad("residuals", "must be a non-empty list of finite non-negative numbers")
    if any(b < a for a, b in zip(res, res[1:])):
        bad("residuals", "must be sorted in increasing order")
    ranks = obj.get("ranks")
    if ranks is None:
        if len(res) != n:
            bad("residuals", f"holds {len(res)} values for n_calibration {n} (and no 'ranks')")
    elif (not isinstance(ranks, list) or len(ranks) != len(res)
          or not all(isinstance(k, int) and 1 <= k <= n for k in ranks)
          or any(b <= a for a, b in zip(ranks, ranks[1:])) or ranks[-1] != n):
        bad("ranks", "must be increasing 1-based ranks, one per residual, ending at n_calibration")
    b = obj.get("bounds")
    if b is not None and (not isinstance(b, list) or len(b) != 2 or not all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in b) or b[0] >= b[1]):
        bad("bounds", "must be null or [low, high] with low < high")
    by = obj.get("by_calibration")
    if by is not None:
        if prefix or not isinstance(by, dict) or not all(isinstance(k, str) and k for k in by):
            bad("by_calibration", "must be an object of interval objects by dataset name (at the top level only)")
        for name, sub in by.items():
            validate(sub, file, f"by_calibration.{name}.")
    return obj


def load_intervals(model_dir: str | Path | None) -> dict | None:
    """``model_dir/intervals.json`` checked, or None when the directory has none."""
    if model_dir is None:
        return None
    path = Path(model_dir) / INTERVALS_FILE
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise DeepQoEError(f"cannot read the prediction intervals: {e}", file=str(path)) from None
    return validate(obj, str(path))


def no_intervals_error(model_dir, why: str | None = None) -> DeepQoEError:
    """The one message for an interval asked of a model that has none (``why``: the reason its model.json
    records, :meth:`deepqoe.predictor.Predictor.why_no_intervals`)."""
    why = why or ("no intervals.json in its directory: classifiers have none, and regression models trained with "
                  "calibration_fraction 0, or session models trained with --full or evaluation: {protocol: none}, "
                  "neither")
    return DeepQoEError(f"this model has no prediction intervals: {why}; ask for no interval (--interval none; "
                        "the service: \"interval\": null)",
                        file=None if model_dir is None else str(model_dir))
