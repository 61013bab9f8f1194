"""Run the sections of the paper reproduction and write ``report.md`` and ``results.json``."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from pathlib import Path
from typing import Callable

from deepqoe.errors import DeepQoEError
from deepqoe.evaluation.parallel import worker_cpu_seconds
from deepqoe.experiments import SECTIONS, section_runner
from deepqoe.experiments.common import Settings
from deepqoe.report import Report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    import sklearn
    import torch

    return {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s)",
            "processor": _cpu_model(), "python": platform.python_version(),
            "torch": torch.__version__, "scikit-learn": sklearn.__version__,
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def run_reproduce(experiments: list[str], out_dir: str | os.PathLike, quick: bool = False,
                  ugc_splits: int | None = None, jobs: int = 2, log: Callable = print,
                  streaming_splits: int | None = None, streaming_neural_splits: int | None = None
                  ) -> tuple[Path, Path]:
    """Run the named sections; write ``report.md`` and ``results.json`` into ``out_dir``."""
    from deepqoe import __version__
    from deepqoe.datasets import data_dir

    from deepqoe.io import check_output_dir

    # a new or empty folder, or an earlier run's (its results.json, written before the first section): never
    # someone's other files
    out_dir = check_output_dir(out_dir, "results.json", "a deepqoe reproduce folder")
    unknown = [e for e in experiments if e not in SECTIONS]
    if unknown:
        raise DeepQoEError(f"unknown experiment(s): {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    root = data_dir()  # every section reads DEEPQOE_DATA: say so before any work
    from deepqoe.datasets.catalog import fetch_command, missing_for_sections

    if missing := missing_for_sections(experiments, root):
        raise DeepQoEError(f"data missing in {root} for {', '.join(d.name for d in missing)}; run "
                           f"`{fetch_command(missing)}` (or point DEEPQOE_DATA at a folder that has it)")
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.make(quick, ugc_splits, jobs, streaming_splits, streaming_neural_splits)
    rep = Report("DeepQoE paper reproduction" + (" (quick run)" if quick else ""))
    info = machine_info() | {"deepqoe": __version__, "quick": quick, "experiments": experiments,
                             "settings": {k: v for k, v in vars(settings).items()}}
    rep.results["run"] = info
    rep.add(
        f"Run {info['date']} on {info['machine']} (Python {info['python']}, torch {info['torch']})"
        f"{'; **quick run**: fewer splits, seeds and epochs than the full run, numbers are indicative only' if quick else ''}.\n\n"
        "The paper's datasets (WHU-MVQoE2016, the large JND dataset) were never released: each section "
        "names the public stand-in dataset used instead, and says where our result differs from the paper's. "
        "Every number of this report is in `results.json`.\n")
    rep.write(out_dir)  # marks the folder as a reproduce run's (an interrupted first section keeps its caches)
    t_all, cpu0, wcpu0 = time.perf_counter(), time.process_time(), worker_cpu_seconds()
    for name in experiments:
        t = time.perf_counter()
        log(f"[{name}] running")
        md, res = section_runner(name)(settings, out_dir, log=log)
        sec = time.perf_counter() - t
        res = dict(res) if isinstance(res, dict) else {"value": res}
        res["seconds"] = sec
        rep.results[name] = res
        rep.add(md.rstrip() + f"\n\n*({name}: {sec:.0f} s)*\n")
        log(f"[{name}] done in {sec:.0f} s")
        rep.results["run"]["seconds"] = time.perf_counter() - t_all
        rep.write(out_dir)  # write as we go: a crash late in the run keeps the finished sections
    rep.results["run"]["seconds"] = time.perf_counter() - t_all
    cpu = time.process_time() - cpu0 + worker_cpu_seconds() - wcpu0
    rep.results["run"]["cpu_seconds"] = cpu
    load = rep.results["run"].get("load_average_at_start")
    rep.add(f"Total run time: {rep.results['run']['seconds']:.0f} s wall, {cpu:.0f} s CPU (main process and "
            f"workers; on an otherwise idle machine the wall time is about CPU / {settings.jobs})."
            + (f" 1-minute load average at the start: {load[0]:.1f} on {os.cpu_count()} CPUs (other work on the "
               "machine slows every timing of this report alike)." if load else "") + "\n")
    return rep.write(out_dir)
