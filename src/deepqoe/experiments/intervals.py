"""Prediction intervals (issue 13 part 2): do nominal 80 % and 90 % split-conformal intervals
(:mod:`deepqoe.conformal`) cover 80 % and 90 % of held-out scores on every regression dataset of
``deepqoe reproduce``? Recipe: ``recipes/intervals.yaml``.

    deepqoe reproduce intervals [--quick] --out DIR

Each split cuts a dataset into a training part (fit), a calibration part (the residuals' order
statistics) and a test part (coverage and mean width), three disjoint parts; group-disjoint (by content)
for the streaming sessions. Datasets and models:

* **streaming**: P.1203 open, Waterloo SQoE-IV and LIVE-NFLX together, the session model
  (:func:`deepqoe.sessions.training.fit_streaming_model`, one member, fewer epochs than the shipped recipe),
  content-disjoint parts, **one calibration pooled over the three datasets**, coverage per dataset on the
  common 1-5 scale; and, beside it, each dataset calibrated on its own calibration part (*own
  calibration*). With ``streaming.out_of_fold: k`` also **the shipped way** (``deepqoe train`` on a sessions
  config, the ``streaming`` model): the model trains on the training and calibration parts together and is
  calibrated on the out-of-fold predictions of a content-disjoint k-fold over those sessions (*out-of-fold*,
  pooled and per dataset): more calibration sessions, from more contents, than a 20 % part; and what the
  model serves with ``--calibration DATASET`` (*out-of-fold, --calibration*): each dataset's sessions
  predicted with its own score calibration, its intervals from its own out-of-fold residuals of that;
* **UPEC MOS per condition** (section 2's data): the small DeepQoE regressor of :mod:`.upec`;
* **KoNViD-1k, YouTube-UGC** (sections 4 and 5): VIDEVAL's min-max + RBF-SVR on the 60 VIDEVAL features.

Reported per dataset and level: coverage mean ± std over splits, the mean interval width, and whether the
mean is within ``tolerance`` of nominal. Split conformal guarantees coverage >= nominal over the rows the
calibration was drawn with; a dataset inside a pooled calibration can be covered more or less than that.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from deepqoe.conformal import calibrate, coverage, interval_bounds, min_calibration
from deepqoe.evaluation.parallel import run_parallel
from deepqoe.evaluation.protocols import make_splits, validation_split
from deepqoe.evaluation.statistics import summarise
from deepqoe.experiments.common import Settings, load_recipe
from deepqoe.report import fmt, fmt_pm, md_table

RECIPE = load_recipe("intervals")


def three_parts(n: int, seed: int, groups=None, test_size: float | None = None,
                calibration_fraction: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, calibration, test) row indices: a test part, then a calibration part of what is left
    (both group-disjoint when ``groups`` is given)."""
    test_size = RECIPE["test_size"] if test_size is None else test_size
    frac = RECIPE["calibration_fraction"] if calibration_fraction is None else calibration_fraction
    protocol = "group-shuffle" if groups is not None else "holdout"
    split = make_splits(protocol, n, groups=groups, n_splits=1, test_size=test_size, seed=seed)[0]
    g = None if groups is None else np.asarray(groups)[split.train]
    fit, cal = validation_split(len(split.train), frac, seed, g)
    return split.train[fit], split.train[cal], split.test


def score_split(y_cal, p_cal, y_test, p_test, names_test, levels, bounds=None) -> dict:
    """Coverage and width per dataset name and level, calibrating on (y_cal, p_cal)."""
    cal = calibrate(y_cal, p_cal, source="calibration part", bounds=bounds)
    out: dict = {}
    for d in dict.fromkeys(np.asarray(names_test).tolist()):
        sel = np.asarray(names_test) == d
        out[d] = {f"{lv:g}": coverage(np.asarray(y_test)[sel], *interval_bounds(cal, np.asarray(p_test)[sel], lv))
                  for lv in levels}
        out[d]["n_calibration"] = cal["n_calibration"]
    return out


# ------------------------------------------------------------------------------------ the three model kinds
@lru_cache(maxsize=None)
def _session_sets(names: tuple) -> tuple:
    from deepqoe.datasets.scored import load_session_set

    return tuple(load_session_set(n) for n in names)


def _streaming_split(k: int, quick: bool) -> dict:
    from deepqoe.datasets.scored import quality_mapping
    from deepqoe.sessions.training import RECIPE as SESSION_RECIPE, fit_streaming_model

    rc = RECIPE["streaming"]
    sets = list(_session_sets(tuple(rc["datasets"])))
    y = np.concatenate([s.y for s in sets])
    names = np.concatenate([[s.name] * len(s.sessions) for s in sets])
    keys = np.array([s.content or g for x in sets for s, g in zip(x.sessions, x.groups)])
    tr, ca, te = three_parts(len(y), RECIPE["seed"] + k, groups=keys)
    offsets = np.cumsum([0] + [len(s.sessions) for s in sets])

    def subset(idx):
        return [s.subset(idx[(idx >= offsets[j]) & (idx < offsets[j + 1])] - offsets[j]) for j, s in enumerate(sets)]

    params = dict(SESSION_RECIPE, n_members=rc["n_members"], epochs=rc["epochs"]["quick" if quick else "full"],
                  random_state=k)
    model = fit_streaming_model([s for s in subset(tr) if len(s.sessions)], [], mapping=quality_mapping(), **params)

    def predict(idx):  # in the order of idx (sorted), through the model's average calibration, clipped to 1-5
        return np.clip(np.concatenate([np.asarray(model.predict_sessions(s.sessions), float)
                                       for s in subset(idx) if len(s.sessions)]), 1.0, 5.0)

    pc, pt = predict(ca), predict(te)
    out = score_split(y[ca], pc, y[te], pt, names[te], RECIPE["levels"], bounds=(1.0, 5.0))
    out.update(_own_calibrations(y[ca], pc, names[ca], y[te], pt, names[te], "own calibration"))
    if rc.get("out_of_fold"):
        out.update(_out_of_fold(np.sort(np.concatenate([tr, ca])), te, subset, y, names, params, k, rc["out_of_fold"]))
    return out


def _own_calibrations(y_cal, p_cal, names_cal, y_test, p_test, names_test, tag: str) -> dict:
    """Each dataset calibrated on its own calibration rows (a model serving one lab): rows "<dataset> (tag)"."""
    out: dict = {}
    for d in dict.fromkeys(np.asarray(names_test).tolist()):
        c, t = names_cal == d, names_test == d
        if c.sum() >= 9 and t.any():
            out.update(score_split(y_cal[c], p_cal[c], y_test[t], p_test[t], [f"{d} ({tag})"] * int(t.sum()),
                                   [lv for lv in RECIPE["levels"] if c.sum() >= min_calibration(lv)],
                                   bounds=(1.0, 5.0)))
    return out


def _out_of_fold(fit_idx, te, subset, y, names, params: dict, k: int, n_folds: int) -> dict:
    """The shipped way (``deepqoe train`` on a sessions config, the ``streaming`` model): the model trains on
    the training and calibration parts together, and its intervals are calibrated on the out-of-fold
    predictions of a content-disjoint ``n_folds``-fold over those same sessions
    (:func:`deepqoe.workflow.out_of_fold_sessions`); rows "<dataset> (out-of-fold[, own calibration])", and
    "<dataset> (out-of-fold, --calibration)": the test sessions predicted with their dataset's own score
    calibration and calibrated on its own out-of-fold residuals of it (what ``--calibration`` serves)."""
    from deepqoe.datasets.scored import quality_mapping
    from deepqoe.sessions.training import fit_streaming_model
    from deepqoe.workflow import out_of_fold_sessions, predict_common, session_folds

    mapping = quality_mapping()
    sets = [s for s in subset(fit_idx) if len(s.sessions)]

    def fit(ss: list, cs: list):
        return fit_streaming_model(ss, cs, mapping=mapping, **params)

    oof = out_of_fold_sessions(fit, sets, [], session_folds(sets, [], n_folds, seed=k))
    model = fit(sets, [])
    p_test = np.concatenate([predict_common(model, s.sessions) for s in subset(te) if len(s.sessions)])
    y_fit, names_fit = y[fit_idx], names[fit_idx]
    ok = np.isfinite(oof.common)
    out = score_split(y_fit[ok], oof.common[ok], y[te], p_test, [f"{d} (out-of-fold)" for d in names[te]],
                      RECIPE["levels"], bounds=(1.0, 5.0))
    out.update(_own_calibrations(y_fit[ok], oof.common[ok], names_fit[ok], y[te], p_test, names[te],
                                 "out-of-fold, own calibration"))
    # what the model serves with --calibration DATASET: the dataset's own score calibration, and intervals
    # from its own out-of-fold residuals of that calibration (intervals.json's by_calibration)
    p_own = np.concatenate([predict_common(model, s.sessions, calibration=s.name) for s in subset(te) if len(s.sessions)])
    ok = np.isfinite(oof.own)
    out.update(_own_calibrations(y_fit[ok], oof.own[ok], names_fit[ok], y[te], p_own, names[te],
                                 "out-of-fold, --calibration"))
    return out


def _upec_split(k: int, settings: Settings) -> dict:
    from deepqoe.experiments.upec import UPEC_CONDITION_INPUTS, deepqoe_regress, load_upec, upec_conditions

    rc = RECIPE["upec_mos"]
    cond = upec_conditions(load_upec())
    y = cond["mos"].to_numpy(float)
    tr, ca, te = three_parts(len(y), RECIPE["seed"] + k)
    s = Settings.make(settings.quick, jobs=1)
    s.epochs_small = rc["epochs"]["quick" if settings.quick else "full"]
    both = np.concatenate([ca, te])
    p = deepqoe_regress(cond.iloc[tr], y[tr], cond.iloc[both], UPEC_CONDITION_INPUTS, s, rc["seeds"], k)
    return score_split(y[ca], p[:len(ca)], y[te], p[len(ca):], ["upec-mos (conditions)"] * len(te),
                       RECIPE["levels"])


def _ugc_split(name: str, k: int, quick: bool) -> dict:
    from deepqoe.datasets.registry import get_dataset
    from deepqoe.shallow import SVR_C_RANGE, SVR_GAMMA_RANGE, videval_svr_fit

    data = get_dataset(name).load()
    F, y = np.asarray(data.features, float), np.asarray(data.y, float)
    tr, ca, te = three_parts(len(y), RECIPE["seed"] + k)
    stride = RECIPE["ugc"]["grid_stride"]["quick" if quick else "full"]
    svr, _ = videval_svr_fit(F[tr], y[tr], k + 1, SVR_C_RANGE[::stride], SVR_GAMMA_RANGE[::stride])
    return score_split(y[ca], svr.predict(F[ca]), y[te], svr.predict(F[te]), [name] * len(te), RECIPE["levels"])


def _task(kind: str, k: int, settings: Settings, name: str | None = None) -> dict:
    if kind == "streaming":
        return _streaming_split(k, settings.quick)
    if kind == "upec":
        return _upec_split(k, settings)
    return _ugc_split(name, k, settings.quick)


# ------------------------------------------------------------------------------------ the section
def run(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    mode = "quick" if settings.quick else "full"
    n = RECIPE["splits"][mode]
    # the streaming sets have few contents (Waterloo SQoE-IV 5, LIVE-NFLX 14): one split's coverage swings
    # with which contents land in calibration and test, so their mean needs more splits to be measured
    n_streaming = RECIPE["streaming"].get("splits", RECIPE["splits"])[mode]
    tasks = [("streaming", k, settings) for k in range(n_streaming)] + [("upec", k, settings) for k in range(n)]
    tasks += [("ugc", k, settings, d) for d in RECIPE["ugc"]["datasets"] for k in range(n)]
    log(f"[intervals] {n} train / calibration / test split(s) per dataset ({n_streaming} for the streaming sets), "
        f"{settings.jobs} worker(s)")
    t0 = time.perf_counter()
    per = run_parallel(_task, tasks, settings.jobs)
    seconds = time.perf_counter() - t0
    log(f"[intervals] done in {seconds:.0f} s")
    by: dict[str, list[dict]] = {}
    for r in per:
        for d, v in r.items():
            by.setdefault(d, []).append(v)
    tol = RECIPE["tolerance"]
    datasets = {}
    for d, runs in by.items():
        e = {"n_splits": len(runs), "n_calibration": summarise([{"n": r["n_calibration"]} for r in runs])["n"],
             "n_test": summarise([{"n": r["0.9"]["n"]} for r in runs])["n"]}
        for lv in RECIPE["levels"]:
            key = f"{lv:g}"
            s = summarise([{"coverage": r[key]["coverage"], "width": r[key]["width"]} for r in runs])
            e[key] = {"coverage": s["coverage"], "width": s["width"],
                      "within_tolerance": bool(abs(s["coverage"]["mean"] - lv) <= tol)}
        datasets[d] = e
    res = {"levels": RECIPE["levels"], "tolerance": tol, "n_splits": n, "quick": settings.quick,
           "seconds": seconds, "datasets": datasets, "recipe": RECIPE}
    return markdown(res), res


def markdown(res: dict) -> str:
    levels = [f"{lv:g}" for lv in res["levels"]]
    head = ["dataset", "splits", "n cal / test"] + [h for lv in levels for h in (f"coverage {float(lv):.0%}",
                                                                      f"width {float(lv):.0%}")]
    rows = []
    for d, e in res["datasets"].items():
        row = [d, str(e["n_splits"]), f"{e['n_calibration']['mean']:.0f} / {e['n_test']['mean']:.0f}"]
        for lv in levels:
            c = e[lv]["coverage"]
            mark = "" if e[lv]["within_tolerance"] else " ✗"
            row += [fmt_pm(c["mean"], c["std"]) + mark, fmt(e[lv]["width"]["mean"])]
        rows.append(row)
    ok = all(e[lv]["within_tolerance"] for e in res["datasets"].values() for lv in levels)
    tol = round(100 * res["tolerance"])
    verdict = ("every dataset is within" if ok else
               "not every dataset is within (✗: outside)") + f" ±{tol} points of nominal."
    return "\n".join([
        "## Prediction intervals (split conformal)", "",
        f"Nominal 80 % and 90 % intervals ({'`--quick`: ' if res['quick'] else ''}the table's number of "
        "splits per dataset into 60 % train / 20 % calibration / 20 % test; coverage = share of test scores inside "
        "the interval, mean ± std over splits; width = mean interval width on the dataset's MOS scale, 1-5 for "
        "the streaming sets). Streaming: one session model on the three datasets together, content-disjoint "
        "parts, one calibration pooled over them (the shipped model's way); *(own calibration)*: the same "
        "predictions, each dataset calibrated on its own calibration part (a model serving one lab); "
        "*(out-of-fold)*: the shipped way, the model trained on the training and calibration parts together and "
        "calibrated on the out-of-fold predictions of a content-disjoint k-fold over them (pooled, and each "
        "dataset on its own); *(out-of-fold, --calibration)*: what `--calibration DATASET` serves, the dataset's "
        "sessions predicted with its own score calibration, calibrated on its own out-of-fold residuals of "
        "them. UPEC: the small DeepQoE regressor on MOS per condition. "
        "KoNViD-1k / YouTube-UGC: VIDEVAL's SVR.", "",
        md_table(head, rows), "",
        f"Coverage {verdict} Run time {res['seconds']:.0f} s.", ""])
