"""``deepqoe sessions compare A B``: is one set of streaming sessions better than another?

A streaming engineer compares two players, ABR algorithms, ladders or networks by their sessions' logs (no
viewer rated them). Both sets are scored by one model through :meth:`deepqoe.predictor.Predictor.predict_sessions`
(the path of ``deepqoe predict``), and each set gets, beside what the logs say (rebuffering, startup,
switches: :func:`deepqoe.sessions.features.session_features`):

* the mean and median predicted score, and where the model has a rating-distribution head the mean share of
  viewers expected to rate poor or worse (%PoW) and good or better (%GoB);
* for each of those, the difference B - A with a bootstrap confidence interval (percentile, ``n_boot``
  resamples, seeded): **paired** when the two sets hold the same session ids (the same network traces
  replayed through two players: the ids' differences are resampled), else **independent** (each set
  resampled apart).

What the interval covers: which sessions happened to be in each set, not the model's error. One model scores
both sets, so its error is shared and partly cancels in a difference, but not where the two sets differ in
kind (e.g. one player stalls, the other drops quality); docs/results.md says how the model ranks each kind
on data it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from deepqoe.errors import DeepQoEError

#: the statistics compared, in the order shown: (key, label, source) - "score": the prediction rows, "log": the
#: session feature table (deepqoe.sessions.features), "head": the rating-distribution head
STATISTICS = (
    ("score_mean", "mean score", "score"),
    ("score_median", "median score", "score"),
    ("p_pow", "%PoW (poor or worse)", "head"),
    ("p_gob", "%GoB (good or better)", "head"),
    ("stall_ratio", "rebuffering share of media time", "log"),
    ("with_stalls", "sessions with a stall", "log"),
    ("startup_delay", "startup delay (s)", "log"),
    ("switch_rate", "switches per minute", "log"),
)
LEVEL = 0.95
N_BOOT = 2000
MIN_SESSIONS = 2


@dataclass
class _Set:
    ids: list
    values: dict  # key -> per-session values (float array)


def _per_session(predictor, sessions: Sequence, label: str, **predict) -> tuple[_Set, list]:
    from deepqoe.sessions.features import session_features

    rows, failures = predictor.predict_sessions(sessions, curve=False, interval=None, **predict)
    if len(rows) < MIN_SESSIONS:
        raise DeepQoEError(f"set {label}: {len(rows)} session(s) could be scored; a comparison needs at least "
                           f"{MIN_SESSIONS} in each set" + (f" ({len(failures)} failed)" if failures else ""))
    kept, it = [], iter(_sessions(sessions))   # the rows keep the input's order, failed sessions left out
    for r in rows:
        kept.append(next(s for s in it if s.id == r["id"]))
    F = session_features(kept)
    score = np.array([r["score"] for r in rows], float)
    values = {"score_mean": score, "score_median": score,
              "stall_ratio": F["stall_ratio"].to_numpy(float),
              "with_stalls": (F["n_stalls"].to_numpy(float) > 0).astype(float),
              "startup_delay": F["startup_delay"].to_numpy(float),
              "switch_rate": F["switch_rate"].to_numpy(float)}
    if rows and "distribution" in rows[0]:
        values["p_pow"] = np.array([r["distribution"]["p_pow"] for r in rows], float)
        values["p_gob"] = np.array([r["distribution"]["p_gob"] for r in rows], float)
    return _Set([r["id"] for r in rows], values), failures


def _sessions(items) -> list:
    from deepqoe.predictor import _as_sessions

    return _as_sessions(items)[0]


def _stat(key: str, v: np.ndarray, axis=-1) -> np.ndarray:
    return np.median(v, axis=axis) if key == "score_median" else np.mean(v, axis=axis)


def compare_sessions(predictor, a: Sequence, b: Sequence, *, labels: tuple[str, str] = ("A", "B"),
                     paired: str = "auto", n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0,
                     scale: str | None = None, calibration: str | None = None) -> dict:
    """Compare two sets of sessions (Session objects or session dicts) scored by ``predictor``: a dict with
    each set's size and statistics (:data:`STATISTICS`), the difference B - A of each with its bootstrap
    interval, how the sets were paired, and the sessions that could not be scored (``failures``:
    DeepQoEErrors, per set). ``paired``: ``"auto"`` (paired when the sets hold the same ids), ``"yes"`` (an
    error unless they do), ``"no"``."""
    if paired not in ("auto", "yes", "no"):
        raise DeepQoEError(f"paired must be auto, yes or no, not {paired!r}", field="paired")
    if not (isinstance(n_boot, int) and 100 <= n_boot <= 100_000):
        raise DeepQoEError(f"the number of bootstrap resamples must be a whole number from 100 to 100000, not {n_boot!r}",
                           field="n_boot")
    if not 0.5 <= level < 1:
        raise DeepQoEError(f"the confidence level must be in [0.5, 1), not {level!r}", field="level")
    predictor.require_sessions()
    sa, fa = _per_session(predictor, a, labels[0], scale=scale, calibration=calibration)
    sb, fb = _per_session(predictor, b, labels[1], scale=scale, calibration=calibration)
    same_ids = set(sa.ids) == set(sb.ids) and len(set(sa.ids)) == len(sa.ids) == len(sb.ids)
    if paired == "yes" and not same_ids:
        common = len(set(sa.ids) & set(sb.ids))
        raise DeepQoEError(f"a paired comparison needs the same session ids in both sets; {labels[0]} has "
                           f"{len(sa.ids)}, {labels[1]} {len(sb.ids)}, {common} in common (use --paired no)")
    is_paired = same_ids and paired != "no"
    if is_paired:  # B in A's order
        where = {sid: k for k, sid in enumerate(sb.ids)}
        order = np.array([where[sid] for sid in sa.ids])
        sb = _Set(sa.ids, {k: v[order] for k, v in sb.values.items()})
    rng = np.random.default_rng(seed)
    na, nb = len(sa.ids), len(sb.ids)
    ia = rng.integers(0, na, (n_boot, na))
    ib = ia if is_paired else rng.integers(0, nb, (n_boot, nb))
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    stats = []
    for key, label, source in STATISTICS:
        if key not in sa.values or key not in sb.values:
            continue
        va, vb = sa.values[key], sb.values[key]
        diff = float(_stat(key, vb) - _stat(key, va))
        boot = _stat(key, vb[ib]) - _stat(key, va[ia])
        lo, hi = np.quantile(boot, [lo_q, hi_q])
        stats.append({"statistic": key, "label": label, "source": source, labels[0]: float(_stat(key, va)),
                      labels[1]: float(_stat(key, vb)), "difference": diff, "low": float(lo), "high": float(hi),
                      "excludes_zero": bool(lo > 0 or hi < 0)})
    return {"sets": {labels[0]: na, labels[1]: nb}, "labels": list(labels), "paired": is_paired,
            "level": level, "n_boot": n_boot, "seed": seed, "scale": scale or "1-5",
            "calibration": calibration, "statistics": stats, "failures": {labels[0]: fa, labels[1]: fb}}


def _fmt(key: str, v: float) -> str:
    if key in ("p_pow", "p_gob", "stall_ratio", "with_stalls"):
        return f"{100 * v:.1f} %"
    return f"{v:.3f}" if key.startswith("score") else f"{v:.2f}"


def _fmt_diff(key: str, v: float) -> str:
    if key in ("p_pow", "p_gob", "stall_ratio", "with_stalls"):
        return f"{100 * v:+.1f} pp"
    return f"{v:+.3f}" if key.startswith("score") else f"{v:+.2f}"


def comparison_table(res: dict) -> str:
    """The comparison for people: one line per statistic, the two sets, B - A and its interval."""
    a, b = res["labels"]
    rows = [("", f"{a} ({res['sets'][a]})", f"{b} ({res['sets'][b]})",
             f"{b} - {a} [{100 * res['level']:g} % CI]")]
    for s in res["statistics"]:
        mark = " *" if s["excludes_zero"] else ""
        rows.append((s["label"], _fmt(s["statistic"], s[a]), _fmt(s["statistic"], s[b]),
                     f"{_fmt_diff(s['statistic'], s['difference'])} [{_fmt_diff(s['statistic'], s['low'])}, "
                     f"{_fmt_diff(s['statistic'], s['high'])}]{mark}"))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    how = "paired by session id" if res["paired"] else "independent sets"
    lines.append(f"(scores on {res['scale']}; {how}; * the interval excludes 0; bootstrap of {res['n_boot']} "
                 "resamples: it covers which sessions were sampled, not the model's error)")
    return "\n".join(lines)
