"""``deepqoe sessions compare A B``: is one set of streaming sessions better than another?

A streaming engineer compares two players, ABR algorithms, ladders or networks by their sessions' logs (no
viewer rated them). Both sets are scored by one model through :meth:`deepqoe.predictor.Predictor.predict_sessions`
(the path of ``deepqoe predict``), and each set gets, beside what the logs say (rebuffering, startup,
switches: :func:`deepqoe.sessions.features.session_features`):

* the mean and median predicted score, and where the model has a rating-distribution head the mean share of
  viewers expected to rate poor or worse (%PoW) and good or better (%GoB);
* for each of those, the difference B - A with a confidence interval: **paired** when the two sets hold the
  same session ids (the same network traces replayed through two players), on the ids both hold (those of
  one set only are left out, said in ``notes``), else **independent**. Every statistic but the median is a
  mean: its interval is Student's t (of the per-id differences when paired, Welch's otherwise), which holds
  its level far better than a bootstrap on a handful of sessions; the median's is a percentile bootstrap
  (``n_boot`` resamples, seeded, drawn in chunks so memory stays small). A set of fewer than
  :data:`FEW_SESSIONS` sessions gets a note: its intervals are rough.

What the interval covers: which sessions happened to be in each set, not the model's error. One model scores
both sets, so its error is shared and partly cancels in a difference, but not where the two sets differ in
kind (e.g. one player stalls, the other drops quality); docs/results.md says how the model ranks each kind
on data it never saw. Where one set gives a quality metric (VMAF) far more often than the other, a note says
that the difference mixes the sets with their kind of input: the streaming model scores a session without a
metric lower than the same session with one (:data:`MIXED_METRIC`).
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
FEW_SESSIONS = 10
#: the range of each statistic's per-session values (None: unbounded on that side; the scores': the scale's), so
#: that a difference's interval is clipped to the differences possible: t intervals on 2 or 3 sessions reach far
#: past them (a share of sessions with a stall cannot differ by 685 percentage points)
VALUE_RANGES = {"p_pow": (0.0, 1.0), "p_gob": (0.0, 1.0), "with_stalls": (0.0, 1.0), "stall_ratio": (0.0, None),
                "startup_delay": (0.0, None), "switch_rate": (0.0, None)}
#: in auto mode the sets are paired when the ids they share are at least this share of the larger set's
PAIRED_SHARE = 0.8
#: a note when the shares of sessions with a quality metric in the two sets differ by more than this
MIXED_METRIC = 0.1
_CHUNK = 256  # bootstrap resamples drawn at a time


@dataclass
class _Set:
    ids: list
    values: dict  # key -> per-session values (float array)

    def take(self, index) -> "_Set":
        return _Set([self.ids[k] for k in index], {k: v[index] for k, v in self.values.items()})


def _per_session(predictor, sessions: Sequence, label: str, **predict) -> tuple[_Set, list]:
    from deepqoe.sessions.features import session_features

    from deepqoe.predictor import _as_sessions

    sessions, unread = _as_sessions(sessions)  # session dicts read once, for the scores and the log statistics
    rows, failures = predictor.predict_sessions(sessions, curve=False, interval=None, **predict)
    failures = list(unread) + list(failures)
    if len(rows) < MIN_SESSIONS:
        first = f"; {failures[0]}" if failures else ""
        raise DeepQoEError(f"set {label}: {len(rows)} session(s) could be scored; a comparison needs at least "
                           f"{MIN_SESSIONS} in each set" + (f" ({len(failures)} failed{first})" if failures else ""))
    kept, it = [], iter(sessions)   # the rows keep the input's order, failed sessions left out
    for r in rows:
        kept.append(next(s for s in it if s.id == r["id"]))
    F = session_features(kept)
    score = np.array([r["score"] for r in rows], float)
    values = {"score_mean": score, "score_median": score,
              "stall_ratio": F["stall_ratio"].to_numpy(float),
              "with_stalls": (F["n_stalls"].to_numpy(float) > 0).astype(float),
              "startup_delay": F["startup_delay"].to_numpy(float),
              "switch_rate": F["switch_rate"].to_numpy(float)}
    from deepqoe.sessions.qoe_model import has_metric, sampled_steps

    values["with_metric"] = np.array([has_metric(sampled_steps(s)) for s in kept], float)
    if rows and "distribution" in rows[0]:
        values["p_pow"] = np.array([r["distribution"]["p_pow"] for r in rows], float)
        values["p_gob"] = np.array([r["distribution"]["p_gob"] for r in rows], float)
    return _Set([r["id"] for r in rows], values), failures


def _t_interval(va: np.ndarray, vb: np.ndarray, paired: bool, level: float) -> tuple[float, float]:
    """Student's t interval of mean(vb) - mean(va): of the differences when paired, Welch's otherwise."""
    from scipy import stats

    diff = float(vb.mean() - va.mean())
    if paired:
        d = vb - va
        se, df = (float(d.std(ddof=1)) / np.sqrt(len(d)), len(d) - 1)
    else:
        sa, sb = float(va.var(ddof=1)) / len(va), float(vb.var(ddof=1)) / len(vb)
        se = np.sqrt(sa + sb)
        df = (sa + sb) ** 2 / (sa ** 2 / (len(va) - 1) + sb ** 2 / (len(vb) - 1)) if sa + sb > 0 else 1.0
    if not se > 0:
        return diff, diff
    h = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return diff - h, diff + h


def _bootstrap_median(va: np.ndarray, vb: np.ndarray, paired: bool, level: float, n_boot: int,
                      rng: np.random.Generator) -> tuple[float, float]:
    boot = []
    for start in range(0, n_boot, _CHUNK):
        m = min(_CHUNK, n_boot - start)
        ia = rng.integers(0, len(va), (m, len(va)))
        ib = ia if paired else rng.integers(0, len(vb), (m, len(vb)))
        boot.append(np.median(vb[ib], axis=1) - np.median(va[ia], axis=1))
    lo, hi = np.quantile(np.concatenate(boot), [0.5 - level / 2, 0.5 + level / 2])
    return float(lo), float(hi)


def compare_sessions(predictor, a: Sequence, b: Sequence, *, labels: tuple[str, str] = ("A", "B"),
                     paired: str = "auto", n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0,
                     scale: str | None = None, calibration: str | None = None) -> dict:
    """Compare two sets of sessions (Session objects or session dicts) scored by ``predictor``: a dict with
    each set's size, each statistic (:data:`STATISTICS`) of both sets (``values``, by label), the difference
    B - A and its interval, how the sets were paired, ``notes``, and the sessions that could not be scored
    (``failures``: DeepQoEErrors, per set). ``paired``: ``"auto"`` (paired when the ids both sets hold are at
    least :data:`PAIRED_SHARE` of the larger set), ``"yes"`` (paired on the common ids; an error when fewer
    than 2), ``"no"``."""
    if paired not in ("auto", "yes", "no"):
        raise DeepQoEError(f"paired must be auto, yes or no, not {paired!r}", field="paired")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or not 100 <= n_boot <= 100_000:
        raise DeepQoEError(f"the number of bootstrap resamples must be a whole number from 100 to 100000, not "
                           f"{n_boot!r}", field="n_boot")
    if not (isinstance(level, (int, float)) and 0.5 <= level < 1):
        raise DeepQoEError(f"the confidence level must be in [0.5, 1), not {level!r}", field="level")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DeepQoEError(f"the seed must be a whole number, 0 or more, not {seed!r}", field="seed")
    if len(labels) != 2 or labels[0] == labels[1]:
        raise DeepQoEError(f"two different labels are needed, not {labels!r}", field="labels")
    predictor.require_sessions()
    sa, fa = _per_session(predictor, a, labels[0], scale=scale, calibration=calibration)
    sb, fb = _per_session(predictor, b, labels[1], scale=scale, calibration=calibration)
    notes = []
    unique = len(set(sa.ids)) == len(sa.ids) and len(set(sb.ids)) == len(sb.ids)
    where = {sid: k for k, sid in enumerate(sb.ids)} if unique else {}
    common = [k for k, sid in enumerate(sa.ids) if sid in where]
    is_paired = paired == "yes" or (paired == "auto" and unique
                                    and len(common) >= max(MIN_SESSIONS, PAIRED_SHARE * max(len(sa.ids), len(sb.ids))))
    if is_paired:
        if not unique or len(common) < MIN_SESSIONS:
            why = "a session id appears twice in a set" if not unique else f"{len(common)} in common"
            raise DeepQoEError(f"a paired comparison needs at least {MIN_SESSIONS} session ids in both sets; "
                               f"{labels[0]} has {len(sa.ids)}, {labels[1]} {len(sb.ids)}, {why} (use --paired no)")
        only_a, only_b = len(sa.ids) - len(common), len(sb.ids) - len(common)
        if only_a or only_b:
            notes.append(f"paired on the {len(common)} session ids both sets hold: {only_a} of {labels[0]} and "
                         f"{only_b} of {labels[1]} have no partner and are left out")
        sb = sb.take([where[sa.ids[k]] for k in common])   # B in A's order
        sa = sa.take(common)
    metric = [st.values["with_metric"] for st in (sa, sb)]
    if abs(metric[0].mean() - metric[1].mean()) > MIXED_METRIC:
        notes.append(f"set {labels[0]} gives a quality metric (quality, quality_per_second) for {int(metric[0].sum())} "
                     f"of {len(metric[0])} session(s), set {labels[1]} for {int(metric[1].sum())} of {len(metric[1])}: "
                     "the others are scored from their bitrates, and the streaming model scores such a session lower "
                     "than the same session with a VMAF (docs/results.md, 'The offset of sessions without a quality "
                     "metric'), so the score difference mixes the sets with their kind of input; compare sessions "
                     "of one kind")
    for label, st in zip(labels, (sa, sb)):
        if len(st.ids) < FEW_SESSIONS:
            notes.append(f"set {label} has {len(st.ids)} session(s): with fewer than {FEW_SESSIONS} the intervals "
                         "are rough (they assume the set stands for its population)")
    from deepqoe.sessions.scales import parse_scale

    sc = parse_scale(scale or "1-5")
    ranges = {**VALUE_RANGES, **{k: (sc.lo, sc.hi) if sc.kind == "range" else (None, None)
                                 for k in ("score_mean", "score_median")}}
    rng = np.random.default_rng(seed)
    stats = []
    for key, label, source in STATISTICS:
        if key not in sa.values or key not in sb.values:
            continue
        va, vb = sa.values[key], sb.values[key]
        if key == "score_median":
            diff = float(np.median(vb) - np.median(va))
            lo, hi = _bootstrap_median(va, vb, is_paired, level, n_boot, rng)
            how = "bootstrap"
        else:
            diff = float(vb.mean() - va.mean())
            lo, hi = _t_interval(va, vb, is_paired, level)
            how = "t"
        lo, hi = _possible(lo, hi, ranges.get(key, (None, None)))
        stats.append({"statistic": key, "label": label, "source": source,
                      "values": {labels[0]: float(_stat(key, va)), labels[1]: float(_stat(key, vb))},
                      "difference": diff, "low": float(lo), "high": float(hi), "interval": how,
                      "excludes_zero": bool(lo > 0 or hi < 0)})
    return {"sets": {labels[0]: len(sa.ids), labels[1]: len(sb.ids)}, "labels": list(labels), "paired": is_paired,
            "level": level, "n_boot": n_boot, "seed": seed, "scale": scale or "1-5",
            "calibration": calibration, "statistics": stats, "notes": notes, "failures": {labels[0]: fa, labels[1]: fb}}


def _possible(lo: float, hi: float, values: tuple) -> tuple[float, float]:
    """The interval ``lo``-``hi`` of a difference B - A clipped to the differences possible when each value lies in
    ``values`` (low, high; None: unbounded): within high - low of 0 either way."""
    a, b = values
    if a is None or b is None:
        return lo, hi
    span = float(b - a)
    return max(lo, -span), min(hi, span)


def _stat(key: str, v: np.ndarray) -> float:
    return float(np.median(v) if key == "score_median" else np.mean(v))


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
        rows.append((s["label"], _fmt(s["statistic"], s["values"][a]), _fmt(s["statistic"], s["values"][b]),
                     f"{_fmt_diff(s['statistic'], s['difference'])} [{_fmt_diff(s['statistic'], s['low'])}, "
                     f"{_fmt_diff(s['statistic'], s['high'])}]{mark}"))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    how = "paired by session id" if res["paired"] else "independent sets"
    lines.append(f"(scores on {res['scale']}; {how}; * the interval excludes 0; means: Student's t, the median: "
                 f"a bootstrap of {res['n_boot']} resamples; the intervals cover which sessions were sampled, not the "
                 "model's error)")
    return "\n".join(lines)
