"""The quality mapping (issue 10): how a session without a quality metric gets its per-second quality.
Recipe: ``recipes/quality_mapping.yaml``.

    deepqoe reproduce quality_mapping [--quick] --out DIR

:class:`deepqoe.sessions.qoe_model.QualityMapping` turns (bitrate, resolution, frame rate, codec, display)
into a VMAF-like 0-100 quality. It is fitted on objective measurements only, never on subjective scores:

* **Waterloo SQoE-IV's chunks** (per-chunk VMAF of H.264 / HEVC ladders, 180p-2160p). Their ladders tie
  resolution to bitrate, so they cannot say what a resolution is worth at a bitrate it was not paired with.
* **An encode grid made here** from the real clips of ``DEEPQOE_DATA/clips`` (KoNViD-1k, LSVQ; 540p-720p)
  by :mod:`deepqoe.features.video.encode_ladder`: each clip's first seconds re-encoded with x264, x265,
  libvpx-vp9 and SVT-AV1 at several heights x bitrates, VMAF against the clip upscaled (bicubic): bitrate
  varied at a fixed resolution, codec and frame rate, the crossover of a bitrate ladder. The shape is
  fitted on H.264 / HEVC; VP9 and AV1 each give their offset alone (``hold=``, ``offset_only``).
* **Frame-rate pairs** of the same grid: each clip's H.264 encodes at half its frame rate, measured against
  the clip at that rate. At equal VMAF, how much more bitrate the full rate needs gives the mapping's
  ``fps_exponent`` (:func:`frame_rate_exponent`: 1 would be bits per pixel per frame). These rows size the
  exponent only; the mapping itself is fitted on the full-rate rows (its frame-rate term below 24 fps is
  P.1203.1's, not fitted).

Two forms are compared: **ceiling** (the mapping's form: compression fidelity x a resolution / frame-rate
ceiling) and **additive** (the older form: every term inside one logit), each fitted on Waterloo alone and
on Waterloo + the grid. Held-out measures: on the grid, leave one clip out (the grid part of the fit never
sees the clip tested); on Waterloo, content-disjoint folds. The grid metrics are RMSE, the per-clip SROCC
and the **best-rung agreement**: at each (clip, codec, frame rate, bitrate), does the mapping pick the
height with the highest measured VMAF? It writes ``quality_mapping.json`` (fitted on Waterloo + the whole
grid in the chosen form; shipped as ``deepqoe/sessions/quality_mapping.json``) and ``quality_mapping.png``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.evaluation.metrics import plcc, rmse, srocc
from deepqoe.experiments.common import load_recipe
from deepqoe.io import atomic_write_text
from deepqoe.report import md_table

RECIPE = load_recipe("quality_mapping")
#: the what-if grid of the report: a 2160p display, H.264 at 30 fps unless said
UHD_HEIGHTS = (540, 1080, 2160)
UHD_KBPS = (500, 2000, 8000, 16000)


def build_grid(clips_dir: Path, work: Path, quick: bool, jobs: int, log=print) -> list[dict]:
    """The recipe's encode grid of the clips in ``clips_dir`` (:mod:`deepqoe.features.video.encode_ladder`)."""
    from deepqoe.features.video.encode_ladder import build_grid as build

    g = RECIPE["grid"]
    pick = (lambda k: g[k]["quick" if quick else "full"])  # noqa: E731
    files = sorted(Path(clips_dir).glob("*.mp4"))
    if not files:
        raise DeepQoEError("no clips (*.mp4) to build the encode grid from", file=str(clips_dir))
    files = files if pick("clips") == "all" else files[: int(pick("clips"))]
    return build(files, work, float(pick("seconds")), jobs, lambda m: log(f"[quality_mapping] {m}"),
                 heights=pick("heights"), bitrates=pick("bitrates"), codecs=pick("codecs"),
                 fps_fractions=pick("fps_fractions"), fps_heights=pick("fps_heights"))


def full_rate(rows: list[dict]) -> list[dict]:
    """The grid's rows at their clip's own frame rate (what the mapping is fitted on)."""
    top = {}
    for r in rows:
        top[r["clip"]] = max(top.get(r["clip"], 0.0), float(r["fps"]))
    return [r for r in rows if float(r["fps"]) >= top[r["clip"]] - 1e-3]


def frame_rate_exponent(rows: list[dict], levels=(30.0, 50.0, 70.0, 85.0)) -> dict:
    """How the bitrate needed for a given fidelity grows with the frame rate, from the grid's frame-rate pairs
    (the same clip, codec and height at its full and a lower rate, each against the reference at its own
    rate): at each VMAF level of ``levels`` that both rates' curves reach, log2(bitrate at the full rate /
    bitrate at the lower rate) / log2(full rate / lower rate), interpolated in log2 bitrate along each
    measured curve. ``{"exponent": median over clips and levels (None without pairs), "per_clip": {clip:
    median}, "n": values}``."""
    curves: dict[tuple, dict] = {}
    for r in rows:
        curves.setdefault((r["clip"], r["codec"], r["height"]), {}).setdefault(float(r["fps"]), []).append(r)
    values: dict[str, list[float]] = {}
    for (clip, _, _), by_rate in sorted(curves.items()):
        if len(by_rate) < 2:
            continue
        hi, lo = max(by_rate), min(by_rate)
        pts = {}
        for f in (hi, lo):
            rr = sorted(by_rate[f], key=lambda r: r["bitrate_kbps"])
            v = np.maximum.accumulate([r["vmaf"] for r in rr]) + 1e-6 * np.arange(len(rr))  # monotone
            pts[f] = (v, np.log2([r["bitrate_kbps"] for r in rr]))
        for L in levels:
            if all(pts[f][0][0] <= L <= pts[f][0][-1] for f in (hi, lo)):
                gap = np.interp(L, *pts[hi]) - np.interp(L, *pts[lo])
                values.setdefault(clip, []).append(float(gap / np.log2(hi / lo)))
    every = [v for vs in values.values() for v in vs]
    return {"exponent": float(np.clip(np.median(every), 0.0, 1.0)) if every else None,
            "per_clip": {c: float(np.median(v)) for c, v in values.items()}, "n": len(every)}


def _exponent(rows: list[dict], measured: dict | None = None) -> float:
    """The exponent the fits use: measured on ``rows`` (or given as ``measured``), 1 without pairs."""
    e = (measured or frame_rate_exponent(rows))["exponent"]
    return 1.0 if e is None else e


def grid_rows(rows: list[dict]):
    from deepqoe.sessions.qoe_model import MappingRows

    cols = {k: [r[k] for r in rows] for k in ("bitrate_kbps", "width", "height", "fps", "codec", "display_height")}
    return MappingRows.from_columns({**cols, "quality": [r["vmaf"] for r in rows],
                                     "source": [f"grid:{r['clip']}" for r in rows]})


def _apply(mapping, rows) -> np.ndarray:
    return mapping(rows.bitrate_kbps, rows.width, rows.height, rows.fps, rows.codec, rows.display_height)


def best_rung_agreement(rows: list[dict], pred: np.ndarray) -> float:
    """Share of (clip, codec, frame rate, target bitrate) groups with several heights in which the predicted
    best height is the measured best one."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["clip"], r["codec"], r["fps"], r["target_kbps"]), []).append(i)
    hits = [rows[ix[int(np.argmax([rows[i]["vmaf"] for i in ix]))]]["height"]
            == rows[ix[int(np.argmax(pred[ix]))]]["height"] for ix in groups.values() if len(ix) > 1]
    return float(np.mean(hits)) if hits else float("nan")


def grid_metrics(rows: list[dict], pred: np.ndarray) -> dict:
    y = np.array([r["vmaf"] for r in rows])
    clips = np.array([r["clip"] for r in rows])
    per_clip = [srocc(y[clips == c], pred[clips == c]) for c in dict.fromkeys(clips.tolist())]
    return {"rmse": rmse(y, pred), "plcc": plcc(y, pred), "srocc_per_clip_median": float(np.median(per_clip)),
            "best_rung_agreement": best_rung_agreement(rows, pred)}


def held_out(form: str, with_grid: bool, W, rows: list[dict], contents: np.ndarray, folds: int) -> dict:
    """Waterloo content-fold RMSE and leave-one-clip-out grid metrics of one form and fitting set (the
    frame-rate exponent, from the grid's frame-rate pairs, also without the held-out clip)."""
    from deepqoe.sessions.qoe_model import fit_quality_mapping

    pairs, rows = rows, full_rate(rows)
    G = grid_rows(rows)
    clips = np.array([r["clip"] for r in rows])
    pred = np.full(len(rows), np.nan)
    for c in dict.fromkeys(clips.tolist()):  # the grid part of the fit never sees the clip it is tested on
        keep = clips != c
        data = W + G.subset(keep) if with_grid else W
        gamma = _exponent([r for r in pairs if r["clip"] != c]) if with_grid else 1.0
        pred[~keep] = _apply(fit_quality_mapping(data, form=form, fps_exponent=gamma), G.subset(~keep))
    uniq = np.array(sorted(set(contents.tolist())))
    fold_of = {u: k % folds for k, u in enumerate(uniq)}
    fold = np.array([fold_of[c] for c in contents])
    pw = np.full(len(W), np.nan)
    gamma = _exponent(pairs) if with_grid else 1.0
    for k in range(folds):
        data = W.subset(fold != k) + G if with_grid else W.subset(fold != k)
        pw[fold == k] = _apply(fit_quality_mapping(data, form=form, fps_exponent=gamma), W.subset(fold == k))
    return {"grid": grid_metrics(rows, pred), "waterloo_rmse": rmse(W.quality, pw),
            "waterloo_srocc": srocc(W.quality, pw)}


def offset_only(shape, W, fitted_rows: list[dict], offset_rows: list[dict], gamma: float) -> tuple:
    """``shape`` with the offsets of the recipe's ``offset_only`` codecs, each fitted on its own cells with the
    shape held (one codec's cells never move another's); and those offsets, also from each clip's alone."""
    from deepqoe.sessions.qoe_model import fit_quality_mapping
    def fit(c, clip=None):  # codec c's offset from its cells (of one clip)
        rows = fitted_rows + [r for r in offset_rows if r["codec"] == c and clip in (None, r["clip"])]
        return float(fit_quality_mapping(W + grid_rows(rows), fps_exponent=gamma, hold=shape).codec_offset[c])
    codecs = sorted({r["codec"] for r in offset_rows})
    alone = {c: fit(c) for c in codecs}
    per_clip = {k: {c: round(fit(c, k), 4) for c in codecs} for k in sorted({r["clip"] for r in offset_rows})}
    return (replace(shape, codec_offset={**shape.codec_offset, **alone}),
            {"cells": len(offset_rows), "offset": {c: round(v, 4) for c, v in alone.items()}, "per_clip": per_clip})


def what_ifs(mapping) -> dict:
    """The mapping on a 2160p display: H.264 30 fps heights x bitrates, codecs at 1080p / 2 Mbps, 15 vs 30 fps."""
    out = {"h264_30fps": {f"{h}p": {f"{kb}": round(float(mapping(kb, h * 16 / 9, h, 30.0, "h264", 2160.0)), 1)
                                     for kb in UHD_KBPS} for h in UHD_HEIGHTS}}
    out["codecs_1080p_2000k"] = {c: round(float(mapping(2000, 1920, 1080, 30.0, c, 2160.0)), 1)
                                 for c in ("h264", "hevc", "vp9", "av1")}
    out["fps_1080p_4000k"] = {f"{f:g}": round(float(mapping(4000, 1920, 1080, f, "h264", 2160.0)), 1)
                              for f in (15.0, 24.0, 30.0, 60.0)}
    return out


def at_clip_level(mapping, rows: list[dict]):
    """``mapping`` with its bias moved to the level of ``rows`` (one clip: its difficulty), by least squares."""
    from scipy.optimize import minimize_scalar

    G = grid_rows(rows)
    err = lambda d: float(np.mean((_apply(replace(mapping, bias=mapping.bias + d), G) - G.quality) ** 2))  # noqa: E731
    return replace(mapping, bias=mapping.bias + float(minimize_scalar(err, bounds=(-10, 10), method="bounded").x))


def plot(rows: list[dict], mapping, path: Path) -> None:
    """``quality_mapping.png``: left, one clip's H.264 encodes (VMAF against bitrate, one colour per height)
    with the mapping's curves, its level moved to the clip's (the shape is the mapping's; each clip has its
    own difficulty); right, the mapping on a 2160p display (H.264, 30 fps) per height."""
    from deepqoe.report import _new_figure, _save

    clip = sorted({r["clip"] for r in rows})[0]
    mine = [r for r in rows if r["clip"] == clip and r["codec"] == "h264"]
    m = at_clip_level(mapping, mine)
    fig = _new_figure(10.0, 4.0)
    ax, bx = fig.add_subplot(121), fig.add_subplot(122)
    W, H = max(r["width"] for r in mine), mine[0]["display_height"]
    kb = np.geomspace(min(r["bitrate_kbps"] for r in mine) / 1.5, max(r["bitrate_kbps"] for r in mine) * 1.5, 80)
    for k, h in enumerate(sorted({r["height"] for r in mine})):
        pts = [r for r in mine if r["height"] == h]
        ax.scatter([r["bitrate_kbps"] for r in pts], [r["vmaf"] for r in pts], s=12, color=f"C{k}")
        ax.plot(kb, m(kb, np.full(kb.shape, W * h / H), np.full(kb.shape, float(h)), np.full(kb.shape, pts[0]["fps"]),
                      np.full(kb.shape, "h264", dtype=object), float(H)), color=f"C{k}", label=f"{h}p")
    ax.set_xscale("log")
    ax.set(xlabel="bitrate (kbps)", ylabel="VMAF (dots) / mapped quality (lines)",
           title=f"{clip}: H.264 encodes on its {H}p display")
    ax.legend(fontsize=7)
    kb = np.geomspace(200, 40000, 100)
    for h in (360, 540, 720, 1080, 1440, 2160):
        bx.plot(kb, mapping(kb, np.full(kb.shape, h * 16 / 9), np.full(kb.shape, float(h)), np.full(kb.shape, 30.0),
                            np.full(kb.shape, "h264", dtype=object), 2160.0), label=f"{h}p")
    bx.set_xscale("log")
    bx.set(xlabel="bitrate (kbps)", ylabel="mapped quality", title="the mapping on a 2160p display (H.264, 30 fps)")
    bx.legend(fontsize=7)
    for a_ in (ax, bx):
        a_.title.set_fontsize(9)
        a_.grid(alpha=0.3)
    _save(fig, path)


def run(settings, out_dir: Path, log=print) -> tuple[str, dict]:
    """The ``deepqoe reproduce quality_mapping`` section: ``(markdown, results)``."""
    import torch

    from deepqoe.datasets import data_dir
    from deepqoe.datasets.scored import MAPPING_DATASET, load_session_set
    from deepqoe.sessions.qoe_model import MappingRows, fit_quality_mapping

    torch.set_num_threads(1)
    t0 = time.time()
    quick = bool(settings.quick)
    work = Path(out_dir) / "encode-grid"
    rows = build_grid(data_dir() / "clips", work, quick, settings.jobs, log)
    t_grid = time.time() - t0
    S = load_session_set(MAPPING_DATASET)
    by_content = MappingRows.from_sessions(S.sessions, S.groups)  # one pass: each chunk's content
    contents = by_content.source
    W = replace(by_content, source=np.full(len(contents), MAPPING_DATASET, dtype=object))
    folds = int(RECIPE["waterloo_folds"]) if not quick else 2
    res: dict = {"quick": quick, "date": time.strftime("%Y-%m-%d %H:%M"),
                 "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), "
                            f"{settings.jobs} worker(s)", "recipe": RECIPE, "n_grid": len(rows),
                 "n_waterloo_chunks": len(W), "clips": sorted({r["clip"] for r in rows}), "compare": {}}
    only = set(RECIPE["grid"].get("offset_only", []))
    shape_rows = [r for r in rows if r["codec"] not in only]   # what the shape is fitted and compared on
    for form in RECIPE["forms"]:
        for with_grid in (False, True):
            key = f"{form} / {'Waterloo + grid' if with_grid else 'Waterloo only'}"
            log(f"[quality_mapping] {key} ...")
            res["compare"][key] = held_out(form, with_grid, W, shape_rows, contents, folds)
    res["frame_rate_exponent"] = frame_rate_exponent(shape_rows)
    gamma = _exponent(shape_rows, res["frame_rate_exponent"])
    full = full_rate(rows)
    fitted_rows = [r for r in full if r["codec"] not in only]
    final = fit_quality_mapping(W + grid_rows(fitted_rows), form="ceiling", fps_exponent=gamma)
    offset_rows = [r for r in full if r["codec"] in only]
    if offset_rows:
        final, res["offset_only"] = offset_only(final, W, fitted_rows, offset_rows, gamma)
    res["mapping"] = final.state()
    plot(fitted_rows, final, Path(out_dir) / "quality_mapping.png")
    res["what_ifs"] = what_ifs(final)
    res["seconds"] = round(time.time() - t0, 1)
    res["grid_seconds"] = round(t_grid, 1)
    payload = {"mapping": final.state(), "form": "ceiling",
               "fitted_on": {"waterloo-sqoe-iv chunks": len(W), "encode grid": len(rows), "clips": res["clips"]},
               "made_by": "deepqoe reproduce quality_mapping", "date": res["date"], "quick": quick}
    atomic_write_text(Path(out_dir) / "quality_mapping.json", json.dumps(payload, indent=1) + "\n")
    return markdown(res), res


def markdown(res: dict) -> str:
    L = ["## Quality mapping (bitrate, resolution, frame rate, codec -> quality)", "",
         f"Mode: {'quick (smoke run, not results)' if res['quick'] else 'full'}; run {res['date']} on "
         f"{res['machine']}; {res['seconds']:.0f} s ({res['grid_seconds']:.0f} s for the encode grid). "
         f"{res['n_waterloo_chunks']} Waterloo SQoE-IV chunks; encode grid of {res['n_grid']} encodes of "
         f"{len(res['clips'])} clips. Held out: grid leave-one-clip-out, Waterloo content-disjoint folds.", ""]
    head = ["form / fitted on", "grid RMSE", "grid PLCC", "grid SROCC (per clip, median)",
            "best-rung agreement", "Waterloo RMSE", "Waterloo SROCC"]
    body = [[k, f"{v['grid']['rmse']:.2f}", f"{v['grid']['plcc']:.3f}", f"{v['grid']['srocc_per_clip_median']:.3f}",
             f"{v['grid']['best_rung_agreement']:.2f}", f"{v['waterloo_rmse']:.2f}", f"{v['waterloo_srocc']:.3f}"]
            for k, v in res["compare"].items()]
    L += [md_table(head, body), ""]
    fe = res["frame_rate_exponent"]
    if fe["exponent"] is None:
        L += ["No frame-rate pairs in this grid: the mapping counts bits per pixel per frame (fps_exponent 1).", ""]
    else:
        L += [f"Frame rate (H.264 encodes at half each clip's rate, against the clip at that rate; {fe['n']} "
              f"matched VMAF levels): twice the frame rate needs 2^{fe['exponent']:.2f} = "
              f"{2 ** fe['exponent']:.2f} x the bitrate for the same VMAF (per clip: "
              + ", ".join(f"{c} {v:.2f}" for c, v in fe["per_clip"].items()) + "); `fps_exponent` "
              f"{fe['exponent']:.2f}. The Waterloo + grid rows use it (held out: the clip's own pairs left out of it).", ""]
    if res.get("offset_only"):
        oo = res["offset_only"]
        L += [f"Offsets fitted alone, each codec on its own cells, the shape above held ({oo['cells']} cells): " + ", ".join(f"{f} {v:+.2f} logit" for f, v in oo["offset"].items()) + " (each clip's cells alone: " + "; ".join(f"{c} " + ", ".join(f"{f} {v:+.2f}" for f, v in d.items()) for c, d in oo["per_clip"].items()) + "); the table scores the shape's codecs only.", ""]
    w = res["what_ifs"]
    L += ["What the shipped form (ceiling, Waterloo + grid) says on a 2160p display (H.264, 30 fps; kbps):", "",
          md_table(["height"] + [f"{kb} kbps" for kb in UHD_KBPS],
                   [[h] + [f"{v:.1f}" for v in row.values()] for h, row in w["h264_30fps"].items()]), "",
          "Codecs at 1080p / 2000 kbps: " + ", ".join(f"{c} {v:.1f}" for c, v in w["codecs_1080p_2000k"].items())
          + ". Frame rate at 1080p / 4000 kbps: " + ", ".join(f"{f} fps {v:.1f}" for f, v in w["fps_1080p_4000k"].items())
          + ".", "", "Plot: `quality_mapping.png`.", "", "Mapping: `" + json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                                                  for k, v in res["mapping"].items()}) + "`", ""]
    return "\n".join(L)
