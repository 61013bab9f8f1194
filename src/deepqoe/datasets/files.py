"""What every dataset loader needs to find and read its files: the data folder, a missing-file error,
the natural order of numbered file names and the values of a MATLAB ``.mat`` file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from deepqoe.errors import DeepQoEError


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` as a path, or the data folder (``$DEEPQOE_DATA``) when None."""
    if root is not None:
        return Path(root)
    from deepqoe.datasets import data_dir

    return data_dir()


def need(p: Path) -> Path:
    """``p``, or a DeepQoEError naming it when it does not exist."""
    if not p.exists():
        from deepqoe.datasets.catalog import missing_hint

        raise DeepQoEError(f"dataset file not found (is DEEPQOE_DATA right?){missing_hint(p)}", file=str(p))
    return p


def natural_key(s: str):
    """Sort key that orders numbers by value: ``content_2`` before ``content_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def mat_vector(d: dict, key: str, file: Path) -> np.ndarray:
    """The variable ``key`` of a loaded ``.mat`` file as a flat float array."""
    if key not in d:
        raise DeepQoEError(f"missing the variable '{key}'", file=str(file), field=key)
    return np.asarray(d[key], dtype=float).reshape(-1)


def mat_scalar(d: dict, key: str, file: Path) -> float:
    """The first value of the variable ``key`` of a loaded ``.mat`` file."""
    return float(mat_vector(d, key, file)[0])
