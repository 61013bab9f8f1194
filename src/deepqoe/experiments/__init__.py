"""Experiments: the reproduction of the DeepQoE paper (ICME 2019) on public stand-in data.

``deepqoe reproduce [EXPERIMENT ...] [--quick] --out DIR`` (see :mod:`deepqoe.experiments.cli`) runs
them and writes ``DIR/report.md`` with the tables and plots, and ``DIR/results.json`` with every number.
The experiments themselves are in :mod:`deepqoe.experiments.paper` (and ``streaming`` where built).
"""

from __future__ import annotations

EXPERIMENTS = ("shallow", "mos", "genre", "ugc", "transfer", "streaming")

__all__ = ["EXPERIMENTS"]
