"""Rating scales and the common scale, so one model can learn from several datasets at once.

The **common scale is 1-5** (ACR MOS).

* A bounded scale ``"lo-hi"`` (``"1-5"``, ``"0-100"``, ``"1-7"``, ``"0-10"``...) maps linearly:
  ``common = 1 + 4 * (x - lo) / (hi - lo)``; back: ``x = lo + (common - 1) * (hi - lo) / 4``.
* ``"z"`` (z-scores, e.g. LIVE-NFLX ``final_subj_score``) has no bounds, so it is mapped through the
  dataset's own distribution: ``z' = (x - mean_d) / std_d`` with the mean and standard deviation of
  that dataset's scores (:func:`fit_z_reference`), then ``common = 3 + 0.8 * z'`` clipped to [1, 5]
  (mean 3 and SD 0.8 are typical of ACR MOS in streaming tests). Back: ``x = mean_d + std_d * (common -
  3) / 0.8`` (exact inverse inside [1, 5]). Without a fitted reference, ``mean_d = 0, std_d = 1``.

The mapping is monotone for every scale, so rank correlations (SROCC) are unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from deepqoe.errors import DeepQoEError

COMMON_SCALE = "1-5"
Z_CENTRE, Z_SPREAD = 3.0, 0.8


@dataclass(frozen=True)
class Scale:
    name: str
    kind: str            # "range" or "z"
    lo: float = 1.0
    hi: float = 5.0
    mean: float = 0.0    # z only: the dataset's own distribution
    std: float = 1.0


_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|to|\.\.)\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_scale(scale: "str | Scale") -> Scale:
    """``"1-5"``, ``"0-100"``, ``"z"`` (also ``"zscore"``) or a :class:`Scale`."""
    if isinstance(scale, Scale):
        return scale
    if not isinstance(scale, str):
        raise DeepQoEError(f"unknown rating scale {scale!r}; use e.g. '1-5', '0-100' or 'z'")
    s = scale.strip().lower()
    if s in ("z", "zscore", "z-score", "z_score"):
        return Scale("z", "z")
    m = _RANGE.match(s)
    if m:
        lo, hi = float(m.group(1)), float(m.group(2))
        if hi <= lo:
            raise DeepQoEError(f"rating scale {scale!r}: the top must be above the bottom")
        name = f"{lo:g}-{hi:g}"
        return Scale(name, "range", lo, hi)
    raise DeepQoEError(f"unknown rating scale {scale!r}; use e.g. '1-5', '0-100' or 'z'")


def requested_scale(value: "str | Scale | None") -> Scale:
    """The scale scores are asked for on, read as ``deepqoe predict --scale`` and the service's ``scale``
    (``?scale=``) both read it: None or ``""`` (not given) -> the common scale (1-5); else :func:`parse_scale`
    (a DeepQoEError naming the value when it is not a scale)."""
    return parse_scale(COMMON_SCALE if value is None or value == "" else value)


def fit_z_reference(scores, scale: str = "z") -> Scale:
    """A z scale carrying this dataset's mean and SD (use it for to/from common)."""
    a = np.asarray(scores, float)
    a = a[np.isfinite(a)]
    if a.size < 2:
        raise DeepQoEError("at least two scores are needed to fit a z-score reference")
    sd = float(a.std(ddof=1)) or 1.0
    return Scale("z", "z", mean=float(a.mean()), std=sd)


def to_common(values, scale: "str | Scale") -> np.ndarray:
    """Scores on ``scale`` -> the common 1-5 scale."""
    sc = parse_scale(scale)
    x = np.asarray(values, float)
    if sc.kind == "range":
        return 1.0 + 4.0 * (x - sc.lo) / (sc.hi - sc.lo)
    return np.clip(Z_CENTRE + Z_SPREAD * (x - sc.mean) / sc.std, 1.0, 5.0)


def from_common(values, scale: "str | Scale") -> np.ndarray:
    """Common 1-5 scale -> scores on ``scale`` (the one the user asks for)."""
    sc = parse_scale(scale)
    c = np.asarray(values, float)
    if sc.kind == "range":
        return sc.lo + (c - 1.0) * (sc.hi - sc.lo) / 4.0
    return sc.mean + sc.std * (c - Z_CENTRE) / Z_SPREAD


def convert(values, src: "str | Scale", dst: "str | Scale") -> np.ndarray:
    return from_common(to_common(values, src), dst)


def points_per_common_point(scale: "str | Scale") -> float:
    """How many points of ``scale`` one point of the common scale is (the slope of :func:`from_common`):
    what a difference, such as an explanation's contribution, is multiplied by on that scale."""
    sc = parse_scale(scale)
    return (sc.hi - sc.lo) / 4.0 if sc.kind == "range" else sc.std / Z_SPREAD
