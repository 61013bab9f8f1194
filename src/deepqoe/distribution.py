"""Rating-distribution heads: from a predicted MOS (and, optionally, the session model's representation) to
the distribution of individual ratings, and from it SOS, %GoB, %PoW and quantiles (issue 13).

    from deepqoe.distribution import RatingDistribution

    head = RatingDistribution("0-100").fit(mos_common, ratings, features)   # ratings: one array per session
    out = head.predict(mos_common, features)   # {"mos", "sos", "p_gob", "p_pow", "q10", "q50", "q90"}

**Family.** Ratings on a bounded scale ``lo-hi`` are modelled by a Beta distribution on the scale padded by
half a rating step at each end (``x = (r - lo + step/2) / (hi - lo + step)``), so that ratings at the ends
have a finite likelihood:

* a *discrete* scale (ACR 1-5, or any with at most :data:`MAX_CATEGORIES` steps) is the Beta
  discretised into one bin per category (bin edges half-way between categories): the likelihood of a
  rating is the probability of its category;
* a *continuous* scale (a 0-100 slider) is the Beta density, per unit of the rating scale.

The mean is tied to the predicted MOS through a line fitted on the training sessions (mean of the
individual ratings against the MOS; a dataset whose MOS is not the plain mean of its ratings, such as
Waterloo SQoE-IV's screened scores, gets its offset there). The precision ``phi`` (Beta ``a + b``) is the
learned part: ``log phi = theta . z`` with ``z = [1, t, t^2, standardised features]``, ``t = (MOS - 3) / 2``
on the common scale, fitted by maximum likelihood on the individual ratings with an L2 penalty
(:data:`L2`) on all but the intercept. A constant ``phi`` is exactly the SOS hypothesis' shape
(the Beta variance is ``m (1 - m) / (1 + phi)``), so the learned part is how the spread departs from it.

**Baselines in the same family** (``kind``): ``"sos"``, the SOS hypothesis of Hossfeld, Schatz and Egger
("SOS: The MOS is not enough!", QoMEX 2011), ``SOS^2 = a (-MOS^2 + (lo + hi) MOS - lo hi)`` with ``a``
fitted by least squares on the training sessions' observed (MOS, SOS); ``"constant"``: the same SOS
everywhere (the training mean of SOS^2). Both turn their SOS into ``phi`` by matching the variance (on a
discrete scale minus Sheppard's step^2 / 12 for the binning), so the log-likelihoods compare.

**GoB / PoW** (defined here only): with ratings mapped linearly to the common 1-5 scale ``c``
(:mod:`deepqoe.sessions.scales`), ``GoB = P(c >= 3.5)`` and ``PoW = P(c <= 2.5)``. On ACR 1-5 that is
``P(r >= 4)`` and ``P(r <= 2)``, the "good or better" and "poor or worse" of ITU-T E.800 / P.800 as used by
Hossfeld et al. ("QoE beyond the MOS", QoMEX 2016); on a continuous scale the thresholds are the ACR
category boundaries. SOS is the standard deviation of the ratings (observed: ``ddof=1``).

Heads are saved as JSON (``distribution.json`` in a model directory: :func:`save_heads`, :func:`load_heads`),
never pickled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import special, stats

from deepqoe.errors import DeepQoEError
from deepqoe.sessions.scales import Z_SPREAD, parse_scale, to_common

GOB_THRESHOLD, POW_THRESHOLD = 3.5, 2.5    # on the common 1-5 scale
QUANTILES = (0.1, 0.5, 0.9)
MAX_CATEGORIES = 11                        # at most this many steps: a discrete (category) scale
L2 = 1e-2
KINDS = ("model", "sos", "constant")
HEAD_FILE = "distribution.json"
_PHI_MIN, _PHI_MAX = 0.2, 1e4
_EPS = 1e-9


# ------------------------------------------------------------------------------------ scales and parsing

class RatingScale:
    """A bounded rating scale: ``lo``, ``hi``, the rating ``step`` and whether ratings are categories."""

    def __init__(self, scale: str = "1-5", discrete: bool | None = None, step: float = 1.0):
        sc = parse_scale(scale)
        if sc.kind != "range":
            raise DeepQoEError(f"rating distributions need a bounded scale such as '1-5' or '0-100', not {scale!r}")
        self.name, self.lo, self.hi, self.step = sc.name, float(sc.lo), float(sc.hi), float(step)
        n_steps = (self.hi - self.lo) / self.step
        self.discrete = bool(n_steps <= MAX_CATEGORIES - 1) if discrete is None else bool(discrete)
        self.width = self.hi - self.lo + self.step
        self.values = self.lo + self.step * np.arange(int(round(n_steps)) + 1) if self.discrete else None

    def to_unit(self, r) -> np.ndarray:
        return (np.asarray(r, float) - self.lo + self.step / 2) / self.width

    def from_unit(self, x) -> np.ndarray:
        return np.asarray(x, float) * self.width + self.lo - self.step / 2

    def to_common(self, r) -> np.ndarray:
        return to_common(r, self.name)

    def state(self) -> dict:
        return {"scale": self.name, "discrete": self.discrete, "step": self.step}


def parse_ratings(text, scale: "str | RatingScale", *, file: str | None = None, column: str | None = None,
                  row: int | None = None) -> np.ndarray:
    """One session's individual ratings from a cell such as ``"[95 83 87]"`` (spaces and/or commas; the
    brackets optional): a non-empty array of finite numbers inside ``scale``, else a one-line
    :class:`~deepqoe.errors.DeepQoEError` naming ``file``, ``column`` and ``row``."""
    sc = scale if isinstance(scale, RatingScale) else RatingScale(scale)
    where = dict(file=file, column=column, row=row)
    if not isinstance(text, str):
        raise DeepQoEError(f"expected a list of ratings such as '[95 83 87]', got {text!r}", **where)
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    elif "[" in body or "]" in body:
        raise DeepQoEError(f"unbalanced brackets in the list of ratings {text!r}", **where)
    tokens = [t for t in re.split(r"[\s,;]+", body.strip()) if t]
    if not tokens:
        raise DeepQoEError("empty list of ratings (each session needs at least one)", **where)
    out = []
    for t in tokens:
        try:
            v = float(t)
        except ValueError:
            raise DeepQoEError(f"rating {t!r} in {text!r} is not a number", **where) from None
        if not np.isfinite(v) or v < sc.lo or v > sc.hi:
            raise DeepQoEError(f"rating {t!r} is outside the scale {sc.name}", **where)
        if sc.discrete and abs((v - sc.lo) / sc.step - round((v - sc.lo) / sc.step)) > 1e-6:
            raise DeepQoEError(f"rating {t!r} is not one of the categories of the scale {sc.name} "
                               f"({', '.join(f'{c:g}' for c in sc.values)})", **where)
        out.append(v)
    return np.asarray(out, float)


# ------------------------------------------------------------------------------------ observed statistics

def observed(ratings: Sequence[np.ndarray], scale: "str | RatingScale") -> dict:
    """Per session: the mean, SOS (``ddof=1``), share of GoB and PoW of its individual ratings."""
    sc = scale if isinstance(scale, RatingScale) else RatingScale(scale)
    mean, sos, gob, pow_ = [], [], [], []
    for r in ratings:
        r = np.asarray(r, float)
        c = sc.to_common(r)
        mean.append(r.mean())
        sos.append(r.std(ddof=1) if r.size > 1 else 0.0)
        gob.append(np.mean(c >= GOB_THRESHOLD - _EPS))
        pow_.append(np.mean(c <= POW_THRESHOLD + _EPS))
    return {k: np.asarray(v, float) for k, v in (("mos", mean), ("sos", sos), ("p_gob", gob), ("p_pow", pow_))}


def sos_hypothesis_term(mos, scale: "str | RatingScale") -> np.ndarray:
    """``-MOS^2 + (lo + hi) MOS - lo hi`` (SOS^2 = a times this)."""
    sc = scale if isinstance(scale, RatingScale) else RatingScale(scale)
    m = np.asarray(mos, float)
    return np.maximum(-m ** 2 + (sc.lo + sc.hi) * m - sc.lo * sc.hi, 0.0)


def fit_sos_hypothesis(mos, sos, scale: "str | RatingScale") -> float:
    """The SOS parameter ``a``: least squares of SOS^2 on the hypothesis' term (no intercept)."""
    t = sos_hypothesis_term(mos, scale)
    return float(np.dot(t, np.asarray(sos, float) ** 2) / max(np.dot(t, t), _EPS))


# ------------------------------------------------------------------------------------ the family

def _beta_params(m, phi):
    return m * phi, (1.0 - m) * phi


def _category_probs(m, phi, sc: RatingScale) -> np.ndarray:
    """(n, K) probabilities of the categories of a discrete scale."""
    a, b = _beta_params(np.asarray(m, float)[:, None], np.asarray(phi, float)[:, None])
    edges = np.linspace(0.0, 1.0, len(sc.values) + 1)[None, :]
    cdf = special.betainc(a, b, edges)
    return np.clip(np.diff(cdf, axis=1), 1e-12, 1.0)


def _loglik_sessions(m, phi, stats_, sc: RatingScale) -> np.ndarray:
    """Sum of the log-likelihoods of each session's ratings (per unit of the rating scale if continuous)."""
    if sc.discrete:
        return (stats_["counts"] * np.log(_category_probs(m, phi, sc))).sum(1)
    a, b = _beta_params(m, phi)
    n = stats_["n"]
    return (n * (special.gammaln(phi) - special.gammaln(a) - special.gammaln(b) - np.log(sc.width))
            + (a - 1) * stats_["slog"] + (b - 1) * stats_["slog1m"])


def _dloglik_dphi(m, phi, stats_, sc: RatingScale) -> np.ndarray:
    if sc.discrete:  # central difference in log phi (K categories: cheap)
        h = 1e-4
        up = _loglik_sessions(m, phi * np.exp(h), stats_, sc)
        down = _loglik_sessions(m, phi * np.exp(-h), stats_, sc)
        return (up - down) / (2 * h) / phi
    a, b = _beta_params(m, phi)
    return (stats_["n"] * (special.digamma(phi) - m * special.digamma(a) - (1 - m) * special.digamma(b))
            + m * stats_["slog"] + (1 - m) * stats_["slog1m"])


def _rating_stats(ratings, sc: RatingScale) -> dict:
    if sc.discrete:
        counts = np.zeros((len(ratings), len(sc.values)))
        for i, r in enumerate(ratings):
            k = np.clip(np.rint((np.asarray(r, float) - sc.lo) / sc.step).astype(int), 0, len(sc.values) - 1)
            np.add.at(counts[i], k, 1.0)
        return {"counts": counts, "n": counts.sum(1)}
    x = [np.clip(sc.to_unit(r), _EPS, 1 - _EPS) for r in ratings]
    return {"n": np.array([len(v) for v in x], float), "slog": np.array([np.log(v).sum() for v in x]),
            "slog1m": np.array([np.log1p(-v).sum() for v in x])}


def phi_for_sd(m, sd, sc: RatingScale) -> np.ndarray:
    """The precision whose Beta has standard deviation ``sd`` (on the rating scale) at unit mean ``m``."""
    var = np.asarray(sd, float) ** 2 - (sc.step ** 2 / 12 if sc.discrete else 0.0)
    var_u = np.maximum(var, 1e-6) / sc.width ** 2
    return np.clip(m * (1 - m) / var_u - 1.0, _PHI_MIN, _PHI_MAX)


# ------------------------------------------------------------------------------------ the estimator

class RatingDistribution:
    """The distribution of individual ratings given the predicted MOS (common 1-5 scale) and optional
    features (module docstring). ``kind``: ``"model"`` (learned spread), ``"sos"`` (SOS hypothesis) or
    ``"constant"`` (one SOS everywhere)."""

    def __init__(self, scale: str = "1-5", discrete: bool | None = None, step: float = 1.0, kind: str = "model",
                 l2: float = L2, use_features: bool = True):
        if kind not in KINDS:
            raise DeepQoEError(f"unknown distribution kind {kind!r}; use one of {', '.join(KINDS)}")
        self.scale, self.discrete, self.step, self.kind = scale, discrete, float(step), kind
        self.l2, self.use_features = float(l2), bool(use_features)
        self.scale_ = RatingScale(scale, discrete, step)

    # ---------------------------------------------------------------- design
    def _own(self, mos_common) -> np.ndarray:
        """Common-scale MOS -> the mean rating on this scale (the fitted line), clipped inside the scale."""
        sc = self.scale_
        own = sc.lo + (np.asarray(mos_common, float) - 1.0) * (sc.hi - sc.lo) / 4.0
        return np.clip(self.mean_link_[0] + self.mean_link_[1] * own, sc.lo, sc.hi)

    def _design(self, mos_common, features) -> np.ndarray:
        t = (np.clip(np.asarray(mos_common, float), 1, 5) - 3.0) / 2.0
        cols = [np.ones_like(t), t, t ** 2]
        if self.use_features and self.feature_mean_ is not None:
            if features is None:
                raise DeepQoEError("this rating-distribution head needs the session model's representation")
            F = (np.asarray(features, float) - self.feature_mean_) / self.feature_std_
            cols += list(F.T)
        return np.column_stack(cols)

    def _unit_mean(self, mos_common) -> np.ndarray:
        return np.clip(self.scale_.to_unit(self._own(mos_common)), 1e-3, 1 - 1e-3)

    def params(self, mos_common, features=None, predictive: bool = False, m=None) -> tuple[np.ndarray, np.ndarray]:
        """``(m, phi)``: the Beta mean on the padded unit interval and the precision, per session: the spread
        of a session's ratings around its mean; ``predictive``: widened by the MOS model's error
        (``mos_sd_``, on the rating scale) for ratings of an unseen session."""
        m = self._unit_mean(mos_common) if m is None else m
        if self.kind == "model":
            eta = self._design(mos_common, features) @ self.theta_
            phi = np.clip(np.exp(np.clip(eta, -5, 10)), _PHI_MIN, _PHI_MAX)
        else:
            if self.kind == "sos":
                sd = np.sqrt(self.sos_a_ * sos_hypothesis_term(self._own(mos_common), self.scale_))
            else:
                sd = np.full(len(m), self.sos_const_)
            phi = phi_for_sd(m, sd, self.scale_)
        if predictive and self.mos_sd_ > 0:
            var_u = m * (1 - m) / (1 + phi) + (self.mos_sd_ / self.scale_.width) ** 2
            phi = np.clip(m * (1 - m) / var_u - 1.0, _PHI_MIN, _PHI_MAX)
        return m, phi

    # ---------------------------------------------------------------- fit
    def fit(self, mos_common, ratings: Sequence[np.ndarray], features=None, mos_observed=None,
            mos_error: bool | None = None) -> "RatingDistribution":
        """Fit on the predicted MOS (common scale; out-of-fold predictions are the honest choice) and each
        session's individual ratings (own scale). The spread around a session's mean is fitted with the
        mean at the session's observed mean rating; ``mos_error`` (default: for ``kind="model"``) also fits
        ``mos_sd_``, the MOS model's error, by maximum likelihood of the ratings around the predicted mean
        (the ``predictive`` distribution). ``mos_observed`` (own scale; default: the ratings' mean) fits
        the SOS hypothesis' ``a``."""
        sc = self.scale_
        mos_common = np.asarray(mos_common, float)
        ratings = [np.asarray(r, float) for r in ratings]
        if len(ratings) != len(mos_common) or not len(ratings):
            raise DeepQoEError(f"{len(mos_common)} predicted scores for {len(ratings)} sessions with ratings")
        if not any(r.size > 1 for r in ratings):  # no spread to learn from
            raise DeepQoEError("a rating distribution needs rows with two or more individual ratings; every row "
                               "here has one (is the individual-ratings column one rating per row?)")
        obs = observed(ratings, sc)
        own = sc.lo + (mos_common - 1.0) * (sc.hi - sc.lo) / 4.0
        slope, icpt = np.polyfit(own, obs["mos"], 1) if np.ptp(own) > 0 else (1.0, 0.0)
        self.mean_link_ = (float(icpt), float(slope)) if slope > 0 else (0.0, 1.0)
        self.theta_, self.feature_mean_, self.feature_std_ = None, None, None
        self.sos_a_ = fit_sos_hypothesis(obs["mos"] if mos_observed is None else mos_observed, obs["sos"], sc)
        self.sos_const_ = float(np.sqrt(np.mean(obs["sos"] ** 2)))
        self.mos_sd_ = 0.0
        st = _rating_stats(ratings, sc)
        if self.kind == "model":
            self._fit_spread(mos_common, features, st, obs)
        if self.kind == "model" if mos_error is None else mos_error:
            self._fit_mos_error(mos_common, features, st)
        return self

    def _fit_mos_error(self, mos_common, features, st) -> None:
        from scipy.optimize import minimize_scalar

        n = float(st["n"].sum())

        def nll(log_sd):
            self.mos_sd_ = float(np.exp(log_sd))
            m, phi = self.params(mos_common, features, predictive=True)
            return -_loglik_sessions(m, phi, st, self.scale_).sum() / n

        w = np.log(self.scale_.width)
        res = minimize_scalar(nll, bounds=(w - 9, w), method="bounded")
        self.mos_sd_ = float(np.exp(res.x))

    def _fit_spread(self, mos_common, features, st, obs) -> None:
        from scipy.optimize import minimize

        sc = self.scale_
        if self.use_features and features is not None:
            F = np.asarray(features, float)
            self.feature_mean_, self.feature_std_ = F.mean(0), F.std(0) + 1e-6
        Z = self._design(mos_common, features)
        m = np.clip(sc.to_unit(obs["mos"]), 1e-3, 1 - 1e-3)   # the spread around each session's own mean
        n_total = float(st["n"].sum())
        pen = np.r_[0.0, np.ones(Z.shape[1] - 1)] * self.l2

        def objective(theta):
            phi = np.clip(np.exp(np.clip(Z @ theta, -5, 10)), _PHI_MIN, _PHI_MAX)
            ll = _loglik_sessions(m, phi, st, sc).sum() / n_total
            g_eta = _dloglik_dphi(m, phi, st, sc) * phi / n_total
            return -ll + 0.5 * np.dot(pen, theta ** 2), -(Z.T @ g_eta) + pen * theta

        theta0 = np.zeros(Z.shape[1])
        theta0[0] = float(np.log(np.median(phi_for_sd(m, np.full(len(m), self.sos_const_), sc))))
        res = minimize(objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
        self.theta_ = res.x
        self.n_iter_ = int(res.nit)

    # ---------------------------------------------------------------- predict
    def predict(self, mos_common, features=None, predictive: bool = False, centred: bool = False) -> dict:
        """Per session, on this head's own rating scale: ``mos`` (the distribution's mean), ``sos``,
        ``p_gob``, ``p_pow`` and the quantiles ``q10``, ``q50``, ``q90`` of the session's ratings around the
        predicted MOS (``predictive``: of the predictive distribution, widened by the MOS model's error).
        ``centred``: the mean is the predicted MOS itself (mapped linearly to this scale), not the fitted
        line of the training dataset's ratings: what a served score needs (its distribution's mean is the
        score shown beside it); the spread is the learned one either way."""
        sc = self.scale_
        m = None
        if centred:
            own = sc.lo + (np.clip(np.asarray(mos_common, float), 1, 5) - 1.0) * (sc.hi - sc.lo) / 4.0
            m = np.clip(sc.to_unit(own), 1e-3, 1 - 1e-3)
        m, phi = self.params(mos_common, features, predictive=predictive, m=m)
        out: dict = {}
        if sc.discrete:
            P = _category_probs(m, phi, sc)
            P /= P.sum(1, keepdims=True)
            v = sc.values
            mean = P @ v
            c = sc.to_common(v)
            out["mos"], out["sos"] = mean, np.sqrt(np.maximum(P @ v ** 2 - mean ** 2, 0.0))
            out["p_gob"] = P[:, c >= GOB_THRESHOLD - _EPS].sum(1)
            out["p_pow"] = P[:, c <= POW_THRESHOLD + _EPS].sum(1)
            cdf = np.cumsum(P, 1)
            for q in QUANTILES:
                out[qname(q)] = v[np.minimum((cdf < q - 1e-12).sum(1), len(v) - 1)]
        else:
            a, b = _beta_params(m, phi)
            out["mos"] = sc.from_unit(m)
            out["sos"] = np.sqrt(m * (1 - m) / (1 + phi)) * sc.width
            to_unit = lambda c: sc.to_unit(sc.lo + (c - 1.0) * (sc.hi - sc.lo) / 4.0)  # noqa: E731
            out["p_gob"] = stats.beta.sf(to_unit(GOB_THRESHOLD), a, b)
            out["p_pow"] = stats.beta.cdf(to_unit(POW_THRESHOLD), a, b)
            for q in QUANTILES:
                out[qname(q)] = np.clip(sc.from_unit(stats.beta.ppf(q, a, b)), sc.lo, sc.hi)
        return {k: np.asarray(v, float) for k, v in out.items()}

    def log_likelihood(self, mos_common, ratings: Sequence[np.ndarray], features=None) -> float:
        """Mean log-likelihood per rating of unseen sessions' ratings under the predictive distribution
        (nats; a continuous scale: density per unit of the rating scale)."""
        m, phi = self.params(mos_common, features, predictive=True)
        st = _rating_stats([np.asarray(r, float) for r in ratings], self.scale_)
        return float(_loglik_sessions(m, phi, st, self.scale_).sum() / st["n"].sum())

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        if not hasattr(self, "mean_link_"):
            raise DeepQoEError("this rating-distribution head is not fitted")
        arr = lambda a: None if a is None else [float(v) for v in np.ravel(a)]  # noqa: E731
        return {"kind": self.kind, **self.scale_.state(), "l2": self.l2, "use_features": self.use_features,
                "mean_link": list(self.mean_link_), "theta": arr(self.theta_), "feature_mean": arr(self.feature_mean_),
                "feature_std": arr(self.feature_std_), "sos_a": self.sos_a_, "sos_const": self.sos_const_,
                "mos_sd": self.mos_sd_}

    @classmethod
    def from_dict(cls, d: dict, file: str | None = None) -> "RatingDistribution":
        try:
            h = cls(d["scale"], d["discrete"], d["step"], d["kind"], d["l2"], d["use_features"])
            h.mean_link_ = (float(d["mean_link"][0]), float(d["mean_link"][1]))
            vec = lambda k: None if d.get(k) is None else np.asarray(d[k], float)  # noqa: E731
            h.theta_, h.feature_mean_, h.feature_std_ = vec("theta"), vec("feature_mean"), vec("feature_std")
            h.sos_a_, h.sos_const_, h.mos_sd_ = float(d["sos_a"]), float(d["sos_const"]), float(d["mos_sd"])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DeepQoEError(f"malformed rating-distribution head ({e})", file=file) from None
        if h.kind == "model" and h.theta_ is None:
            raise DeepQoEError("malformed rating-distribution head (no 'theta')", file=file)
        return h


def qname(q: float) -> str:
    return f"q{int(round(q * 100)):02d}"


# ------------------------------------------------------------------------------------ model directories

def head_files(heads: dict[str, RatingDistribution], default: str | None = None, info: dict | None = None
               ) -> dict:
    """``{"distribution.json": ...}`` for a model's ``save(files=...)``: one head per dataset and the one
    served (``default``: the first)."""
    if not heads:
        raise DeepQoEError("no rating-distribution heads to save")
    default = default or next(iter(heads))
    if default not in heads:
        raise DeepQoEError(f"the served rating-distribution head {default!r} is not among {sorted(heads)}")
    return {HEAD_FILE: {"format": 1, "default": default, "info": info or {},
                        "heads": {k: h.to_dict() for k, h in heads.items()}}}


def save_heads(model_dir: str | Path, heads: dict[str, RatingDistribution], default: str | None = None,
               info: dict | None = None) -> Path:
    """Write ``distribution.json`` into an existing model directory (atomically)."""
    from deepqoe.io import atomic_write_json

    path = Path(model_dir) / HEAD_FILE
    atomic_write_json(path, head_files(heads, default, info)[HEAD_FILE])
    return path


def load_heads(model_dir: str | Path) -> tuple[dict[str, RatingDistribution], str] | None:
    """``(heads, default)`` from a model directory, or None when it has no ``distribution.json``."""
    path = Path(model_dir) / HEAD_FILE
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        heads = {k: RatingDistribution.from_dict(v, str(path)) for k, v in d["heads"].items()}
        default = str(d.get("default") or next(iter(heads)))
    except (ValueError, KeyError, TypeError, StopIteration) as e:
        raise DeepQoEError(f"malformed rating-distribution file ({e})", file=str(path)) from None
    if default not in heads:
        raise DeepQoEError(f"default head {default!r} is not among {sorted(heads)}", file=str(path), field="default")
    return heads, default


def distribution_fields(head: RatingDistribution, mos_common, features, target_scale) -> list[dict]:
    """Per session, ``{"sos", "p_gob", "p_pow", "quantiles": {"0.1", "0.5", "0.9"}}`` on ``target_scale``
    (SOS scales linearly with the scale; quantiles map through the common scale). The distribution is
    centred on the served score (``predict(centred=True)``): its mean is the score reported beside it."""
    from deepqoe.sessions.scales import from_common

    target = parse_scale(target_scale)
    p = head.predict(mos_common, features, centred=True)
    sc = head.scale_
    unit = (target.hi - target.lo) / 4.0 if target.kind == "range" else target.std / Z_SPREAD
    sos = p["sos"] * 4.0 / (sc.hi - sc.lo) * unit
    qs = {q: from_common(sc.to_common(p[qname(q)]), target) for q in QUANTILES}
    return [{"sos": round(float(sos[i]), 6), "p_gob": round(float(p["p_gob"][i]), 6),
             "p_pow": round(float(p["p_pow"][i]), 6),
             "quantiles": {f"{q:g}": round(float(qs[q][i]), 6) for q in QUANTILES}} for i in range(len(sos))]
