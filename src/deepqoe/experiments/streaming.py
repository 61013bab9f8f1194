"""The streaming section of ``deepqoe reproduce``: LIVE-NFLX, the P.1203 open dataset, Waterloo SQoE-IV and
cross-dataset, each in its own module (``streaming_*.py``, recipes in ``recipes/streaming_*.yaml``).

Ours is the DeepQoE fusion model (:class:`~deepqoe.experiments.streaming_models.DeepQoEFusion`); the
baselines are the published methods (VideoATLAS, P.1203's O46, the KSQI release's scores) and shallow
learners from :mod:`deepqoe.shallow`. Splits run in ``settings.jobs`` worker processes
(:func:`deepqoe.evaluation.parallel.run_parallel`); every random choice is seeded. A quick run (CI) uses
fewer splits, epochs and seeds and two Waterloo contents: a smoke test, not results.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from deepqoe.experiments import streaming_cross_dataset as cross_dataset
from deepqoe.experiments import streaming_live_nflx as live_nflx
from deepqoe.experiments import streaming_p1203 as p1203
from deepqoe.experiments import streaming_waterloo as waterloo
from deepqoe.experiments.common import Settings
from deepqoe.experiments.streaming_sessions import BLEND_S, OURS_S
from deepqoe.report import bar_chart


def run(settings: Settings, out_dir: Path, log=print) -> tuple[str, dict]:
    """Every streaming evaluation: ``(markdown, results)``; PNG plots written into ``out_dir``.

    LIVE-NFLX: the cheap methods on ``settings.streaming_splits`` splits, the neural ones on the first
    ``settings.streaming_neural_splits`` (defaults in ``recipes/streaming_live_nflx.yaml``)."""
    from deepqoe.datasets.registry import load_session_dataset

    quick, jobs, size = settings.quick, settings.jobs, "quick" if settings.quick else "full"
    n = settings.streaming_splits or live_nflx.RECIPE["splits"][size]
    nn = settings.streaming_neural_splits or live_nflx.RECIPE["neural_splits"][size]
    t0 = time.time()
    res: dict = {"quick": bool(quick), "date": time.strftime("%Y-%m-%d %H:%M"),
                 "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), {jobs} worker(s)",
                 "jobs": jobs, "section_seconds": {}}
    data = {name: load_session_dataset(name) for name in cross_dataset.RECIPE["datasets"]}
    sections = {"live_nflx": lambda: live_nflx.live_nflx_table(data["live-nflx"], n, quick, log, n_neural=nn, jobs=jobs),
                "p1203": lambda: p1203.p1203_table(data[p1203.P1203["dataset"]], quick, log, jobs=jobs),
                "waterloo": lambda: waterloo.waterloo_table(data[waterloo.WATERLOO["dataset"]], quick, log, jobs=jobs),
                "cross": lambda: cross_dataset.cross_dataset_table(data, log, quick=quick, jobs=jobs)}
    for key, table in sections.items():
        log(f"[streaming] {key} ...")
        t = time.time()
        res[key] = table()
        res["section_seconds"][key] = round(time.time() - t, 1)
    res["cross"], res["cross_normalisations"] = res["cross"]
    res["seconds"] = time.time() - t0
    log(f"  sections (s): {res['section_seconds']}")
    res["targets"] = _targets(res)
    res["plots"] = _plots(res, Path(out_dir))
    res = json.loads(json.dumps(res, default=str))
    return _markdown(res), res


def _markdown(res: dict) -> str:
    L = ["## Streaming QoE", "", f"Mode: {'quick' if res['quick'] else 'full'}; run {res['date']} on "
         f"{res['machine']}; {res['seconds']:.0f} s (sections: {res['section_seconds']}).", ""]
    L += live_nflx.markdown(res["live_nflx"], res["quick"]) + p1203.markdown(res["p1203"])
    L += waterloo.markdown(res["waterloo"]) + cross_dataset.markdown(res["cross"], res["cross_normalisations"])
    L += ["![LIVE-NFLX SROCC](streaming_live_nflx_srocc.png) ![cross-dataset](streaming_cross_dataset.png)", ""]
    return "\n".join(L + ["### Targets", ""] + [f"- {t}" for t in res["targets"]] + [""])


def _targets(res: dict) -> list[str]:
    lodo, w = res["p1203"]["lodo_mean"], res["waterloo"]["loco_mean"]
    out = live_nflx.targets(res["live_nflx"])
    for name in (OURS_S, BLEND_S):
        if name in lodo:
            o, ref = lodo[name], lodo[p1203.O46]
            out.append(f"P.1203 LODO mean, {name}: SROCC {o['srocc']:.3f} / PLCC {o['plcc']:.3f} vs O46 "
                       f"{ref['srocc']:.3f} / {ref['plcc']:.3f}: "
                       f"{'met' if o['srocc'] > ref['srocc'] and o['plcc'] > ref['plcc'] else 'MISSED'}")
    for name in (OURS_S, BLEND_S):
        if name in w:
            out.append(f"Waterloo LOCO mean SROCC {name} {w[name]['srocc']:.3f} vs KSQI (published scores) "
                       f"{w.get('KSQI (published scores)', {}).get('srocc', float('nan')):.3f}")
    return out + cross_dataset.targets(res["cross"])


def _plots(res: dict, out_dir: Path) -> list[str]:
    r = res["live_nflx"]
    names = list(r["methods"])
    bar_chart(out_dir / "streaming_live_nflx_srocc.png", names,
              {"median SROCC": [r["methods"][k]["srocc"]["median"] for k in names]},
              errors={"median SROCC": [r["methods"][k]["srocc"]["std"] for k in names]},
              title=f"LIVE-NFLX: SROCC over the splits (median, std)", ylabel="SROCC")
    keys = list(res["cross"])
    bar_chart(out_dir / "streaming_cross_dataset.png", keys,
              {cross_dataset.CROSS_BLEND: [res["cross"][k][cross_dataset.CROSS_BLEND] for k in keys],
               "best single input": [res["cross"][k]["best single input"]["srocc"] for k in keys]},
              title="Cross-dataset SROCC", ylabel="SROCC")
    return ["streaming_live_nflx_srocc.png", "streaming_cross_dataset.png"]
