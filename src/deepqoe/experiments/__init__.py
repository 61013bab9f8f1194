"""Experiments: the reproduction of the DeepQoE paper (ICME 2019) on public stand-in data.

``deepqoe reproduce [EXPERIMENT ...] [--quick] --out DIR`` (see :mod:`deepqoe.experiments.cli` and
:func:`deepqoe.experiments.reproduce.run_reproduce`) runs the sections of :data:`SECTIONS` and writes
``DIR/report.md`` with the tables and plots, and ``DIR/results.json`` with every number.

Each section is one module with ``run(settings, out_dir, log) -> (markdown, results)``; its recipe is a
YAML file in ``recipes/``. Splits, the parallel runner and summaries come from :mod:`deepqoe.evaluation`,
shallow learners and their settings from :mod:`deepqoe.shallow`.
"""

from __future__ import annotations

#: The sections of ``deepqoe reproduce``, in report order: name -> module of this package. A new section
#: is its module plus one line here.
SECTIONS = {
    "shallow": "shallow_learners",   # 1. representation helps shallow learners (Fig. 2/3)
    "mos": "mos_regression",         # 2. MOS regression (Table 1)
    "genre": "genre_text",           # 3. unseen genre (Table 2, Fig. 4)
    "ugc": "ugc_videval",            # 4. KoNViD-1k / YouTube-UGC, VIDEVAL protocol (Fig. 5, Table 3)
    "transfer": "transfer",          # 5. KoNViD-1k -> YouTube-UGC
    "streaming": "streaming",        # streaming QoE: LIVE-NFLX, P.1203, Waterloo, cross-dataset
    "quality_mapping": "quality_mapping",  # bitrate / resolution / frame rate / codec -> quality (encode grid)
    "streaming_generalisation": "streaming_generalisation",  # the shipped streaming model on unseen datasets
    "continuous_time": "continuous_time",  # per-second QoE curves against continuous-time ratings
    "per_viewer": "per_viewer",      # per-viewer QoE: viewer input, k-shot adaptation (upec-qoe-lab)
    "intervals": "intervals",        # split-conformal prediction intervals: coverage per regression dataset
    "rating_distribution": "rating_distribution",  # distributions of individual ratings: SOS, %GoB, %PoW
}
EXPERIMENTS = tuple(SECTIONS)


def section_runner(name: str):
    """The ``run`` function of section ``name`` (imported on first use)."""
    import importlib

    return importlib.import_module(f"{__name__}.{SECTIONS[name]}").run


__all__ = ["EXPERIMENTS", "SECTIONS", "section_runner"]
