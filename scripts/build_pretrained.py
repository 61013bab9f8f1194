#!/usr/bin/env python
"""Rebuild the models shipped in ``src/deepqoe/pretrained/`` from the public data (needs DEEPQOE_DATA).

For each model: measure its scores with the evaluation protocol, train the final model on all rows,
save it (safetensors + JSON, with its training baseline for explanations and the scores) and write its
``MODEL_CARD.md``. With ``--check`` (the default when the model is already shipped and ``--write`` is not
given) the rebuilt model goes to a temporary folder and the script says whether its scores match the
shipped ones within ``--tolerance``; exit status 1 when they do not.

    DEEPQOE_DATA=../shared/datasets python scripts/build_pretrained.py --write            # rebuild all
    DEEPQOE_DATA=../shared/datasets python scripts/build_pretrained.py --model streaming   # check one

Models:
  upec-qoe-lab  viewer-rating classifier with an optional viewer id (configs/upec-qoe-lab-viewers.yaml): 10
                repeated 90/10 splits (``deepqoe evaluate``), then ``deepqoe train --full``.
  streaming     session-QoE regressor on P.1203-open + Waterloo SQoE-IV + LIVE-NFLX together (common
                1-5 scale): 5 content-disjoint folds (out-of-fold SROCC / PLCC per dataset), then all rows.
                The out-of-fold predictions of 5 content-disjoint folds calibrate its prediction intervals
                (``intervals.json``, deepqoe.conformal).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from deepqoe.errors import DeepQoEError  # noqa: E402
from deepqoe.explain import fit_baseline  # noqa: E402
from deepqoe.conformal import interval_files  # noqa: E402
from deepqoe.persistence import save_model  # noqa: E402

SHIPPED = ROOT / "src" / "deepqoe" / "pretrained"
MODELS = ("upec-qoe-lab", "streaming")
STREAMING_DATASETS = ("p1203-open", "waterloo-sqoe-iv", "live-nflx")
CONTINUOUS_DATASETS = ("live-nflx-continuous", "lfovia-qoe")
LICENCES = {
    "upec-qoe-lab": "UPEC QoE controlled-laboratory dataset (Amour, Souihi, Hoceini, Mellouk 2015): MIT-style "
                    "licence (permission to use, copy, modify, distribute, with the copyright and permission "
                    "notice kept).",
    "p1203-open": "ITU-T P.1203 open dataset (Deutsche Telekom AG, Ericsson AB, NETSCOUT Systems Inc., 2018): "
                  "permission to use for **non-commercial research purposes** only.",
    "waterloo-sqoe-iv": "Waterloo SQoE-IV (Duanmu et al. 2020): CC BY 4.0 (attribution; cite "
                        "doi:10.21227/j15a-8r35).",
    "live-nflx-continuous": "LIVE-NFLX continuous-time ratings (lfovia/lstm_qoe release of LIVE-NFLX): UT Austin "
                            "permissive research licence (cite Bampis et al.).",
    "lfovia-qoe": "LFOVIA QoE (Eswara et al., IEEE TCSVT 2019): research use; cite the paper.",
    "live-nflx": "LIVE-NFLX (Bampis et al., UT Austin / Netflix): UT Austin permissive research licence (keep "
                 "the copyright notice, cite the papers).",
}


def _threads():
    import torch

    torch.set_num_threads(1)  # the same scores on any machine, whatever its core count


def _git_note() -> str:
    return f"built {date.today().isoformat()} by scripts/build_pretrained.py"


# ------------------------------------------------------------------------------ upec-qoe-lab
# the shipped model reads who rated (id_user, an optional viewer input); configs/upec-qoe-lab.yaml without it
# stays the paper-reproduction config
UPEC_CONFIG = "upec-qoe-lab-viewers.yaml"


def build_upec(out_dir: Path, n_splits: int | None = None, quiet: bool = True, max_epochs: int | None = None) -> dict:
    from deepqoe.config import load_config
    from deepqoe.datasets import load_dataset
    from deepqoe.persistence import load_model
    from deepqoe.workflow import evaluate_config, train_config

    cfg = load_config(ROOT / "configs" / UPEC_CONFIG)
    if max_epochs:
        cfg.training.max_epochs = max_epochs
    t0 = time.perf_counter()
    res = evaluate_config(cfg, protocol="repeated", n_splits=n_splits, progress=not quiet)
    scores = {name: {m: {"mean": v["mean"], "std": v["std"]} for m, v in e["metrics"].items()
                     if m in ("accuracy", "macro_f1", "balanced_accuracy", "mae", "rmse")}
              for name, e in res["methods"].items()}
    print(f"upec-qoe-lab: evaluated {res['n_splits']} splits in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{k} acc {v['accuracy']['mean']:.4f}" for k, v in scores.items()))
    with tempfile.TemporaryDirectory() as tmp:
        train_config(cfg, Path(tmp) / "m", full=True, progress=not quiet)
        est = load_model(Path(tmp) / "m")
        meta = dict(est.meta_)
    data = load_dataset(cfg.dataset)
    dataset = dict(meta["dataset"])
    dataset["base_dir"] = None
    evaluation = {"protocol": f"{res['n_splits']} repeated random splits, test size {res['test_size']}, "
                              f"seed {cfg.evaluation.seed}", "n_splits": res["n_splits"],
                  "key_metric": "accuracy", "scores": scores}
    save_model(est, out_dir, dataset_config=dataset, extra={
        "name": "upec-qoe-lab", "training": meta.get("training"), "metrics": meta.get("metrics"),
        "evaluation": evaluation, "explain_baseline": fit_baseline(est, data.X), "built": _git_note()})
    write_card_upec(out_dir, evaluation, len(data), meta)
    return evaluation


def write_card_upec(out_dir: Path, ev: dict, n_rows: int, meta: dict) -> None:
    s = ev["scores"]
    rows = "\n".join(f"| {name} | {v['accuracy']['mean']:.4f} ± {v['accuracy']['std']:.4f} | "
                     f"{v.get('macro_f1', {}).get('mean', float('nan')):.4f} |" for name, v in s.items())
    best = max((k for k in s if k != "deepqoe"), key=lambda k: s[k]["accuracy"]["mean"])
    d, b = s["deepqoe"]["accuracy"]["mean"], s[best]["accuracy"]["mean"]
    verdict = (f"DeepQoE is {'above' if d > b else 'below'} the best baseline ({best}, {b:.4f}) by "
               f"{abs(d - b):.4f} accuracy; with {ev['n_splits']} splits of 56 test ratings the difference is "
               f"{'within' if abs(d - b) < s['deepqoe']['accuracy']['std'] else 'beyond'} one standard deviation "
               "across splits.")
    text = f"""# upec-qoe-lab: viewer-rating classifier

A DeepQoE classifier (Zhang et al., ICME 2019, small-dataset network) that predicts the 1-5 rating a
viewer gives a video, from the video's genre, resolution and bitrate and the viewer's age and sex, and,
optionally, who the viewer is (`id_user`, a per-viewer offset of the class scores; `deepqoe.viewers`).
Without `id_user`, or with an id it was not trained on, it gives the population prediction (the unknown
viewer, trained on 30 % of the ratings with the viewer hidden) and says so (`viewer: unknown`).

## Training data

UPEC QoE controlled-laboratory dataset (Amour et al. 2015): {n_rows} individual ACR ratings (1-5) by 62
viewers of 24 video conditions (`QoEcontrolledLab.csv`). The closest public match to the paper's small
dataset (WHU-MVQoE2016, never released).

## Protocol and scores

{ev['protocol']} (the config's `evaluation` section, `deepqoe evaluate configs/{UPEC_CONFIG}`). Each
split trains a new network on 90 % of the ratings and tests on the other 10 % (test viewers mostly seen in
training, with their id). The shipped model is then trained on all ratings (`deepqoe train
configs/{UPEC_CONFIG} --full`, best epoch {(meta.get('training') or {}).get('best_epoch')}). The baselines
take `id_user` as one more categorical feature. Viewers held out of training, before and after k-shot
adaptation, and the same network without the viewer input: docs/results.md, "Per-viewer QoE"
(`deepqoe reproduce per_viewer`); in short, knowing the viewer helps little on this data.

| method | accuracy (mean ± SD over splits) | macro F1 |
|---|---:|---:|
{rows}

{verdict}

Individual ratings are noisy (two viewers rate the same video differently), so accuracy is bounded well
below 1; compare with the majority class.

## Input schema

One row per (viewer, video), columns:

| column | type | meaning |
|---|---|---|
| `content` | text | genre, e.g. News, Sports, Documentary, Music, Cartoons, Lessons, Movies, Games (GloVe 50-d) |
| `resolution` | category | vertical resolution: 144, 240, 360, 480, 720, 1080 (others map to "unknown") |
| `bitrate_video` | number | video bitrate (kbps, min-max scaled to the training range) |
| `age_user` | number | viewer age (years) |
| `sex_user` | category | viewer sex as in the data (`men` / `women`) |
| `id_user` | category, optional | the viewer's id in the UPEC data (1-62 with gaps); absent, empty or unseen: the population prediction |

Output: the predicted rating (1-5), the probability of each rating, and `viewer` (the id, or `unknown`).
A new viewer is added from k of their own ratings (rows with the columns above and `mos`); only that
viewer's new embedding row is trained, so every other prediction stays the same:

    deepqoe predict upec-qoe-lab rows.csv --out predictions.csv
    deepqoe adapt-viewer upec-qoe-lab my_ratings.csv --viewer me --k 5 --out models/upec-me
    from deepqoe.persistence import load_model; load_model("upec-qoe-lab").predict(df)

## Licence of the data

{LICENCES['upec-qoe-lab']} The model weights are derived from that data.

## Rebuild

    DEEPQOE_DATA=/path/to/datasets python scripts/build_pretrained.py --model upec-qoe-lab

rebuilds it and says whether the scores match the table above.
"""
    (out_dir / "MODEL_CARD.md").write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------ streaming
def build_streaming(out_dir: Path, quiet: bool = True, datasets=STREAMING_DATASETS, continuous=CONTINUOUS_DATASETS,
                    quick: bool = False, behaviour_sessions: int = 1000) -> dict:
    """The structured, monotone session model (deepqoe.sessions.qoe_model) with the one recipe
    (deepqoe.sessions.training.RECIPE): leave-one-dataset-out scores, then the model on everything, its
    behaviour check, saved with its card."""
    from deepqoe.evaluation.behaviour import check_model
    from deepqoe.experiments.streaming_generalisation import PREVIOUS_RECIPE, by_session_kind, leave_one_dataset_out
    from deepqoe.predictor import Predictor
    from deepqoe.datasets.scored import load_curve_set, load_session_set, quality_mapping
    from deepqoe.sessions.training import RECIPE, fit_streaming_model

    params = dict(RECIPE, **({"epochs": 60, "n_members": 1} if quick else {}))
    t0 = time.perf_counter()
    S = {n: load_session_set(n) for n in datasets}
    C = {n: load_curve_set(n) for n in continuous}
    mapping = quality_mapping()
    previous = dict(PREVIOUS_RECIPE, **({"max_epochs": 5} if quick else {}))
    lodo = leave_one_dataset_out(S, C, mapping, params, log=print, previous=previous) if len(S) > 1 else {}
    by_kind = by_session_kind(S, lodo, mapping)
    for row in lodo.values():
        row.pop("prediction", None)
        row.pop("previous_prediction", None)
    model = fit_streaming_model(list(S.values()), list(C.values()), mapping=mapping, **params)
    intervals, oof = streaming_intervals(S, C, mapping, params)
    heads = streaming_distribution(S, model, oof)
    report = check_model(Predictor(model), n_sessions=behaviour_sessions, seed=0)
    print(report.table())
    evaluation = {"protocol": "leave one dataset out: trained on the other session datasets and the continuous-time "
                              "ratings (without LIVE-NFLX's when LIVE-NFLX is left out), tested on the one left out; "
                              "scores on the common 1-5 scale", "key_metric": "srocc",
                  "datasets": {n: len(s.sessions) for n, s in S.items()},
                  "continuous": {n: len(c.sessions) for n, c in C.items()},
                  "scores": {"deepqoe": {d: r["ours"] for d, r in lodo.items()}},
                  "leave_one_dataset_out": lodo, "by_kind": by_kind, "behaviour": report.to_dict(), "recipe": params,
                  "intervals": interval_summary(intervals),
                  "distribution": sorted(heads.get("distribution.json", {}).get("heads", {})),
                  "built": _git_note()}
    model.save(out_dir, extra={"name": "streaming", "evaluation": evaluation, "built": _git_note(),
                               "metrics": {"n_train": sum(len(s.sessions) for s in S.values()),
                                           "datasets": evaluation["datasets"]}},
               files={**interval_files(intervals), **heads})
    write_card_streaming(out_dir, evaluation, model)
    print(f"streaming: built in {time.perf_counter() - t0:.0f} s")
    return evaluation


def streaming_distribution(S: dict, model, oof) -> dict:
    """The rating-distribution heads (deepqoe.distribution; SOS, %GoB, %PoW with each score) on the datasets
    with individual ratings, fitted on the out-of-fold predicted MOS; served: Waterloo SQoE-IV's (the most
    ratings, a 0-100 scale), with P.1203 open's (ACR) beside it. {} when none of S has ratings."""
    from deepqoe.workflow import distribution_heads

    names = [n for n in ("waterloo-sqoe-iv", "p1203-open") if n in S and S[n].ratings is not None]
    if not names:
        return {}
    return distribution_heads(names, names[0], model, list(S.values()), oof)


def interval_summary(intervals: dict) -> dict:
    """What the model card says of ``intervals.json``: sizes, sources and the 80 % / 90 % half-widths, pooled
    and per dataset (``by_calibration``, served with ``--calibration``)."""
    from deepqoe.conformal import half_width

    def one(cal: dict) -> dict:
        return {**{k: cal[k] for k in ("n_calibration", "source")},
                "half_width": {f"{lv:g}": half_width(cal, lv) for lv in (0.8, 0.9)}}

    return {**one(intervals), "by_calibration": {d: one(c) for d, c in intervals.get("by_calibration", {}).items()}}


def streaming_intervals(S: dict, C: dict, mapping, params: dict, n_splits: int = 5, seed: int = 0):
    """(intervals.json object, out-of-fold predictions): the split-conformal prediction intervals of the
    streaming model (deepqoe.conformal), calibrated on the out-of-fold predictions of a content-disjoint
    k-fold over all datasets together (pooled, and per dataset with its own calibration), the path ``deepqoe train`` takes for a sessions config
    (deepqoe.workflow.out_of_fold_sessions, in the order of ``S``'s sessions, on the common 1-5 scale)."""
    import numpy as np

    from deepqoe.sessions.training import fit_streaming_model
    from deepqoe.workflow import out_of_fold_sessions, session_folds, session_intervals

    sets, curves = list(S.values()), list(C.values())
    splits = session_folds(sets, curves, n_splits=n_splits, seed=seed)
    oof = out_of_fold_sessions(lambda ss, cs: fit_streaming_model(ss, cs, mapping=mapping, **params), sets, curves,
                               splits)
    names = np.concatenate([[x.name] * len(x.sessions) for x in sets])
    return session_intervals(np.concatenate([x.y for x in sets]), oof, len(splits), names), oof.common


def what_if_tables(model) -> tuple[str, dict]:
    """What the model says about generated sessions (no data): single 10-s clips on a 2160p display by
    height x bitrate and on a 1080p display by frame rate (the quality mapping), 10-s sessions by VMAF and
    stall length, and a 60-s 1080p session at VMAF 90 with stalls and startup.
    Returns the Markdown tables and the latter's scores by case."""
    from deepqoe.report import md_table
    from deepqoe.sessions.session import Session

    def clip(h, kb, fps=30, device="uhdtv"):
        return Session.from_dict({"id": f"{h}-{kb}-{fps}", "device": device, "segments": [
            {"start": 0, "duration": 10, "bitrate_kbps": kb, "height": h, "width": round(h * 16 / 9), "fps": fps,
             "codec": "h264"}]})

    def sess(stalls=(), startup=0.0):
        return Session.from_dict({"id": "s", "device": "tv", "segments": [
            {"start": 4 * i, "duration": 4, "bitrate_kbps": 5000, "height": 1080, "width": 1920, "fps": 30,
             "codec": "h264", "quality": 90} for i in range(15)],
            "stalls": ([{"start": 0, "duration": startup}] if startup else []) + [
                {"start": t, "duration": d} for t, d in stalls]})

    heights, kbps = (540, 1080, 2160), (500, 2000, 8000, 16000)
    clips = model.predict_sessions([clip(h, kb) for h in heights for kb in kbps]).reshape(len(heights), -1)
    cases = {"no impairment": sess(), "startup 1 s": sess(startup=1.0), "startup 8 s": sess(startup=8.0),
             "one 2-s stall": sess([(30, 2.0)]), "one 8-s stall": sess([(30, 8.0)]),
             "three 2-s stalls": sess([(15, 2.0), (30, 2.0), (45, 2.0)]), "one 60-s stall": sess([(30, 60.0)])}
    scores = model.predict_sessions(list(cases.values()))
    long_ = [Session.from_dict({"id": f"10min-{k}", "device": "tv", "segments": [
        {"start": 4 * i, "duration": 4, "bitrate_kbps": 5000, "height": 1080, "width": 1920, "fps": 30,
         "codec": "h264", "quality": 90} for i in range(150)],
        "stalls": [{"start": 20 * j + 10, "duration": 30} for j in range(k)]}) for k in (0, 29)]
    heavy = model.predict_sessions(long_)
    def short(vmaf, stall):
        return Session.from_dict({"id": f"short-{vmaf}-{stall}", "device": "mobile", "segments": [
            {"start": 2 * i, "duration": 2, "bitrate_kbps": 2000, "height": 720, "width": 1280, "fps": 30,
             "codec": "h264", "quality": vmaf} for i in range(5)],
            "stalls": [{"start": 0, "duration": 0.5}] + ([{"start": 5, "duration": stall}] if stall else [])})

    vmafs, short_stalls = (40, 60, 80, 95), (0, 0.5, 1, 3)
    shorts = model.predict_sessions([short(v, st) for v in vmafs for st in short_stalls]).reshape(len(vmafs), -1)
    rates, rate_kbps = (10, 15, 20, 24, 30, 60), (1000, 4000)
    by_rate = model.predict_sessions([clip(1080, kb, f, "tv") for kb in rate_kbps for f in rates]
                                     ).reshape(len(rate_kbps), -1)
    return "\n".join([
        "Single 10-s H.264 clips at 30 fps on a 2160p display (`device: uhdtv`), no quality metric (the "
        "quality mapping decides; a session without a metric also takes the model's learned offset for such "
        "sessions, so these sit below the same clips given the mapping's quality as a VMAF, by about 0.7 at the "
        "top of the scale and up to 1.5 in its middle: docs/results.md, \"The offset of sessions without a quality metric\"):", "",
        md_table(["height"] + [f"{kb} kbps" for kb in kbps],
                 [[f"{h}p"] + [f"{v:.2f}" for v in row] for h, row in zip(heights, clips)]),
        "Single 10-s 1080p H.264 clips on a 1080p display by frame rate (below 24 fps: the frame-rate "
        "degradation of ITU-T P.1203.1; above it, the same bitrate is shared over more frames: twice the rate "
        f"needs {2 ** model.mapping_.fps_exponent:.2f} x the bitrate for the same fidelity, measured on the "
        "encode grid; no credit for smoother motion):", "",
        md_table(["bitrate"] + [f"{f} fps" for f in rates],
                 [[f"{kb} kbps"] + [f"{v:.2f}" for v in row] for kb, row in zip(rate_kbps, by_rate)]),
        "A 10-s session (five 2-s chunks at one VMAF, 0.5 s of startup) with one stall 5 s in (a short "
        "session: one stall in 10 s is a high stall rate, about 6 per minute):", "",
        md_table(["VMAF"] + ["no stall" if st == 0 else f"{st:g}-s stall" for st in short_stalls],
                 [[str(v)] + [f"{x:.2f}" for x in row] for v, row in zip(vmafs, shorts)]),
        "A 60-s 1080p session at VMAF 90 (stalls starting 15, 30 and 45 s in):", "",
        md_table(["session", "score (1-5)"], [[k, f"{v:.2f}"] for k, v in zip(cases, scores)]),
        f"A 10-minute 1080p session at VMAF 90 scores {heavy[0]:.2f}; with 29 stalls of 30 s (14.5 minutes "
        f"of rebuffering, more than it plays) {heavy[1]:.2f}.", ""]), \
        {**dict(zip(cases, scores.tolist())),
         **{f"10-s VMAF {v}, {st:g}-s stall": float(x) for v, row in zip(vmafs, shorts) for st, x in zip(short_stalls, row)}}


def write_card_streaming(out_dir: Path, ev: dict, model=None) -> None:
    from deepqoe.experiments.streaming_generalisation import markdown

    tables = markdown({"lodo": ev["leave_one_dataset_out"], "by_kind": ev.get("by_kind"), "behaviour": ev["behaviour"],
                       "recipe": ev["recipe"], "seconds": 0}).rsplit("\nRecipe:", 1)[0]
    sizes = ", ".join(f"{d}: {n} sessions" for d, n in ev["datasets"].items())
    curves = ", ".join(f"{d}: {n} sessions" for d, n in ev["continuous"].items())
    lic = "\n".join(f"* {LICENCES[d]}" for d in list(ev["datasets"]) + list(ev["continuous"]) if d in LICENCES)
    uncertainty = ""
    iv = ev.get("intervals") or {}
    if iv.get("half_width"):
        hw = iv["half_width"]
        by = iv.get("by_calibration") or {}
        per_dataset = "" if not by else (
            " Each training dataset also has its own interval, calibrated on its own out-of-fold residuals of the "
            "model predicting it with its own score calibration: `--calibration DATASET` (the service: "
            "`\"calibration\"`) scores as that dataset's viewers used the scale and gives its interval (" + "; ".join(
                f"{d}: +- {c['half_width']['0.8']:.2f} / +- {c['half_width']['0.9']:.2f} from {c['n_calibration']} "
                "sessions" for d, c in by.items()) + "), nominal per dataset within 3 points where measured "
            "(docs/results.md, the *out-of-fold, --calibration* rows).")
        uncertainty = f"""
## Intervals and rating distribution

Every score comes with a split-conformal interval (`intervals.json`, `deepqoe.conformal`; `--interval 0.8`
picks the level, 0.9 by default): score +- {hw["0.8"]:.2f} at 80 %, +- {hw["0.9"]:.2f} at 90 % on the 1-5 scale
(clipped to 1-5), calibrated on {iv["n_calibration"]} out-of-fold predictions ({iv["source"]}). The
guarantee is marginal over the three training datasets' sessions: per dataset, and on data unlike them,
coverage differs (measured per dataset in docs/results.md, "Prediction intervals": LIVE-NFLX's sessions are
covered less often than nominal, Waterloo's more).{per_dataset} Rating-distribution heads (`distribution.json`,
`deepqoe.distribution`, fitted on the individual ratings of {", ".join(ev.get("distribution") or []) or "none"}
against the out-of-fold predicted MOS) add the spread of opinions (SOS), the share of viewers rating good or
better (%GoB) and poor or worse (%PoW), and quantiles; measured against the SOS hypothesis in docs/results.md,
"Rating distributions".
"""
    if model is not None:
        what_if_md, cases = what_if_tables(model)
        cost8 = cases["no impairment"] - cases["one 8-s stall"]
        wait8 = cases["no impairment"] - cases["startup 8 s"]
        short05 = cases["10-s VMAF 80, 0-s stall"] - cases["10-s VMAF 80, 0.5-s stall"]
        step = cases["10-s VMAF 80, 0-s stall"] - cases["10-s VMAF 60, 0-s stall"]
    what_ifs = "" if model is None else f"""
## What it says (generated sessions)

{what_if_md}
Read these as the model's, not viewers', sizes. No training dataset identifies what a startup delay
costs (docs/results.md), so the wait is priced by ITU-T P.1203.3's convention, not learned: it counts as a
third of its length of stalling, as a share of the session's time ({wait8:.2f} for 8 s here, against
{cost8:.2f} for an 8-s stall at VMAF 90). In a 10-s session one 0.5-s stall costs {short05:.2f} at VMAF 80, about as much as VMAF 60 -> 80
({step:.2f}): its rate is high and it is recent when the session ends; no dataset here has sessions under
28 s, so how much viewers of short clips mind a stall is the model's extrapolation. In the data, sessions of the highest third of quality with more than 4 s of rebuffering
score 0.76-0.98 below those without, depending on the dataset (docs/results.md, "What a stall costs, by
quality"), so the model still underestimates stalls in good sessions. Scores use the average calibration of
the three datasets with session scores (how each lab used the scale; the per-second datasets' own
calibrations are left out of it); a lab's own use differs (Waterloo SQoE-IV's lies lower: `--calibration
waterloo-sqoe-iv` scores as its viewers did).
"""
    text = f"""# streaming: session-QoE model (structured, monotone)

Predicts the QoE (mean opinion score, 1-5) of one adaptive-streaming playback session, and its per-second
curve, from what a player knows: the segments played (bitrate, resolution, frame rate, codec, and a quality
metric such as VMAF when there is one), the stalls (initial loading included) and the display.

## What it is

`deepqoe.sessions.qoe_model.SessionQoEModel` (read the module top to bottom): a per-second quality track
(the session's own metric, else the built-in mapping of bitrate, resolution, frame rate and codec: compression
fidelity times an upscaling ceiling, fitted on objective VMAF only, Waterloo SQoE-IV's per-chunk VMAF and an
encode grid of real clips made by `deepqoe reproduce quality_mapping`; it rises with bitrate by construction,
and at a low bitrate a lower resolution can beat a higher one, the crossover of a bitrate ladder; at UHD
sizes it sits at too low a bitrate, see docs/results.md), an asymmetric quality memory (drops are
followed faster than gains), and running penalties for stalls (rate, share of time, longest, recency),
startup delay (its recency: it fades as the session plays; besides it, the wait costs its share of the
session's time counted at a third, ITU-T P.1203.3's weight of initial loading against stalling, fixed, not
learned) and representation switches. Each part goes
through its own projection g_i with non-negative weights. The quality part then goes through a fully
connected layer with non-negative weights and the head to z; startup and switches each give two penalties
>= 0 (0 without them): one subtracted from z, one that takes a share of the score above the floor; stalls
give the share only. The score is `1 + 4 * sigmoid(z - sum L_i) * exp(-sum M_i)` (the hybrid fusion with
`stall_penalty: share`), so the same stall costs more in a better session than in a poorer one, whatever
the weights, as viewers' scores show. A stall also gives a momentary dip D (its length, forgotten within
seconds of playback; weight and memory learned, mostly from the per-second ratings), and the score above
the floor B becomes `B exp(-D / B)`: at most D lower and never below 1, so the curve drops during a stall
in a poor session too, and the cost still grows with B. A rebuffering guard holds beyond the stall times of
the training data: past a stall share of 0.3 of the wall time, the score above the floor is at most the
no-rebuffering score's times (1 - share) / 0.7, so rebuffering that outlasts the playback brings a session
near 1. So, by construction: every score is inside 1-5; more or longer stalls, a longer
startup or more switches never raise it; higher quality, or more bitrate at the same resolution, frame rate
and codec, never lowers it; no input grows with session length (rates, shares, exponentially forgotten
sums), so a session repeated scores the same. The curve is the same network evaluated on every prefix
of the session (the score of the first t seconds); it dips during a stall and recovers after it.
Device offsets are off (they did not carry over between labs; see docs/results.md). {ev["recipe"].get("n_members")}
networks with different seeds are averaged.

## Training data

Session scores (mapped to the common 1-5 scale, `deepqoe.sessions.scales`): {sizes}. Per-second
(continuous-time) ratings, trained jointly: {curves}.

## Protocol and scores

{ev["protocol"]}. Measured by `scripts/build_pretrained.py --model streaming` when the model was built
({ev.get("built", "see model.json 'built'")}, the 2-core CPU machine, one torch thread): the tables below are
the ones that script printed, for the weights shipped here. The same-protocol comparison with the previous
model, the LIVE-NFLX splits and the per-second (continuous-time) table are in docs/results.md
(`deepqoe reproduce streaming_generalisation continuous_time`).

{tables}

For orientation: P.1203's own O46 is in the table where the data has it; KSQI reaches SRCC about 0.70 on
Waterloo SQoE-IV trained on other data. More in docs/results.md (continuous-time table, LIVE-NFLX splits).
{uncertainty}{what_ifs}
## Input schema

A session JSON (`docs/sessions.md`) or an ITU-T P.1203 input JSON:

    deepqoe predict streaming session.json --out scores.json   # score + per-second curve
    deepqoe serve streaming                                    # POST /predict
    deepqoe check-model streaming                              # the behaviour table above

## Licence of the data

{lic}

The weights are derived from these datasets; because the P.1203 open dataset allows non-commercial
research use only, **use this model for non-commercial research**. For other uses rebuild it without
that dataset: `python scripts/build_pretrained.py --model streaming --datasets waterloo-sqoe-iv,live-nflx`.

## Rebuild

    DEEPQOE_DATA=/path/to/datasets python scripts/build_pretrained.py --model streaming --write
"""
    (out_dir / "MODEL_CARD.md").write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------ compare
def _flat_scores(ev: dict) -> dict[str, float]:
    out = {}
    for method, v in ev["scores"].items():
        for k, m in v.items():
            if isinstance(m, dict) and "mean" in m:
                out[f"{method}.{k}"] = m["mean"]
            elif isinstance(m, dict):
                for kk, vv in m.items():
                    out[f"{method}.{k}.{kk}"] = vv
    return out


def compare(name: str, new: dict, tolerance: float) -> bool:
    shipped = SHIPPED / name / "model.json"
    if not shipped.is_file():
        print(f"{name}: no shipped model to compare with")
        return True
    old = json.loads(shipped.read_text()).get("evaluation")
    if not old:
        print(f"{name}: the shipped model has no recorded scores")
        return False
    a, b = _flat_scores(old), _flat_scores(new)
    key = "accuracy" if name == "upec-qoe-lab" else "srocc"
    worst, ok = 0.0, True
    for k in sorted(set(a) & set(b)):
        if k.startswith("deepqoe") and key in k:
            d = abs(a[k] - b[k])
            worst = max(worst, d)
            flag = "ok" if d <= tolerance else "DIFFERS"
            ok &= d <= tolerance
            print(f"  {k}: shipped {a[k]:.4f}  rebuilt {b[k]:.4f}  |diff| {d:.4f}  {flag}")
    print(f"{name}: {'MATCHES' if ok else 'DOES NOT MATCH'} the shipped scores "
          f"(largest difference {worst:.4f}, tolerance {tolerance})")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=MODELS + ("all",), default="all")
    ap.add_argument("--write", action="store_true", help="replace the shipped model(s) with the rebuilt ones")
    ap.add_argument("--out", help="write the rebuilt model(s) here instead (one folder per model)")
    ap.add_argument("--tolerance", type=float, default=0.02, help="allowed difference of the key scores")
    ap.add_argument("--n-splits", type=int, help="upec-qoe-lab: number of evaluation splits (default: config)")
    ap.add_argument("--datasets", default=",".join(STREAMING_DATASETS), help="streaming: datasets to train on")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 2 splits / folds and 10 epochs (scores not comparable with the shipped ones)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not os.environ.get("DEEPQOE_DATA"):
        print("set DEEPQOE_DATA to the folder holding the datasets", file=sys.stderr)
        return 2
    _threads()
    names = MODELS if args.model == "all" else (args.model,)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            base = SHIPPED if args.write else Path(args.out) if args.out else Path(tmp)
            out = base / name
            try:
                if name == "upec-qoe-lab":
                    ev = build_upec(out, n_splits=2 if args.quick else args.n_splits, quiet=not args.verbose,
                                    max_epochs=10 if args.quick else None)
                else:
                    ev = build_streaming(out, quiet=not args.verbose, datasets=tuple(args.datasets.split(",")),
                                         quick=args.quick, behaviour_sessions=100 if args.quick else 1000)
            except DeepQoEError as e:
                print(f"{name}: error: {e}", file=sys.stderr)
                ok = False
                continue
            size = sum(f.stat().st_size for f in out.iterdir())
            print(f"{name}: written to {out} ({size / 1e6:.2f} MB)")
            if not args.write and not args.quick:
                ok &= compare(name, ev, args.tolerance)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
