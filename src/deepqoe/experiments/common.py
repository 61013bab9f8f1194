"""What every section of the paper reproduction shares: the run's :class:`Settings`, the recipes (YAML files
in ``recipes/`` beside this module) and a timer."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from deepqoe.errors import DeepQoEError

RECIPES = Path(__file__).resolve().parent / "recipes"


def load_recipe(name: str) -> dict:
    """``recipes/<name>.yaml`` as a dict (a fresh copy on every call)."""
    import yaml

    path = RECIPES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.yaml")))
        raise DeepQoEError(f"no recipe '{name}'; recipes: {known}", file=str(path))
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def grid(spec) -> tuple:
    """A grid of a recipe: a list of numbers, or ``{logspace: [start, stop, num]}`` (base 10)."""
    if isinstance(spec, dict) and "logspace" in spec:
        return tuple(float(v) for v in np.logspace(*spec["logspace"]))
    return tuple(float(v) for v in spec)


@dataclass
class Settings:
    """How much work each section does: ``recipes/runs.yaml`` (a full run vs ``--quick``)."""

    quick: bool
    jobs: int = 2
    ugc_splits: int = 20
    shallow_splits: int = 10
    mos_splits: int = 10
    epochs_small: int = 300
    seeds_small: int = 3
    ugc_epochs: int = 150
    ugc_seeds: int = 12
    ugc_class_seeds: int = 3
    ugc_class_splits: int = 10
    transfer_splits: int = 5
    transfer_fractions: tuple = (0.1, 0.25, 0.5, 1.0)
    streaming_splits: int | None = None         # LIVE-NFLX splits, cheap methods (None: the section's default)
    streaming_neural_splits: int | None = None  # of which the neural methods run the first N

    @classmethod
    def make(cls, quick: bool, ugc_splits: int | None = None, jobs: int = 2, streaming_splits: int | None = None,
             streaming_neural_splits: int | None = None) -> "Settings":
        sizes = load_recipe("runs")["quick" if quick else "full"]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(sizes) - known)
        if unknown:
            raise DeepQoEError(f"unknown setting(s) {', '.join(unknown)}", file=str(RECIPES / "runs.yaml"))
        sizes["transfer_fractions"] = tuple(sizes.get("transfer_fractions", cls.transfer_fractions))
        s = cls(quick=quick, jobs=jobs, **sizes)
        if ugc_splits is not None:
            s.ugc_splits = int(ugc_splits)
        s.ugc_class_splits = min(s.ugc_class_splits, s.ugc_splits)
        s.transfer_splits = min(s.transfer_splits, s.ugc_splits)
        s.streaming_splits, s.streaming_neural_splits = streaming_splits, streaming_neural_splits
        return s


def timed(fn: Callable, *a, **k) -> tuple[Any, float]:
    """``(fn(*a, **k), wall seconds)``."""
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def split_seed(name: str) -> int:
    """The number of a split named ``split<N>`` (what seeds its networks)."""
    return int(name.removeprefix("split") or 0)
