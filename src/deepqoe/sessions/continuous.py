"""Continuous-time (per-second) subjective QoE: the dataset type and the wall timeline.

A continuous-time dataset loader (``deepqoe.datasets.live_nflx_continuous``,
``deepqoe.datasets.lfovia_qoe``; by name through :mod:`deepqoe.datasets.registry`) returns a
:class:`ContinuousDataset`: the sessions (media as 1-s segments with a VMAF-like ``quality`` 0-100,
stalls at their media positions; a stall at media 0 is the startup delay), the continuous score per
**wall-clock second** on the common 1-5 scale with its confidence bounds, the per-second stall mask,
the session score, content groups and the authors' splits.

Timeline (the same for every dataset, and what a per-second model must follow): the wall timeline is
the media played in order with each stall inserted at its media ``start``; wall second ``k`` covers
``[k, k + 1)``; every per-second array has ``ceil(session.wall_duration)`` entries.
:func:`stall_fraction` gives the stalled share of each wall second and ``stall_mask`` is
``stall_fraction >= 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.sessions.scales import to_common
from deepqoe.sessions.session import Session


@dataclass
class ContinuousDataset:
    """Sessions with a continuous (per wall second) subjective score; see the module docstring."""

    name: str
    sessions: list[Session]
    ratings: list[np.ndarray]
    ci_low: list[np.ndarray]
    ci_high: list[np.ndarray]
    stall_mask: list[np.ndarray]
    mos: np.ndarray
    groups: np.ndarray
    splits: list[tuple[np.ndarray, np.ndarray]] | None
    quality_source: str

    def __len__(self) -> int:
        return len(self.sessions)


# ------------------------------------------------------------------------------------ wall timeline

def wall_seconds(session: Session) -> int:
    """Number of wall seconds: ``ceil(session.wall_duration)``."""
    return math.ceil(session.wall_duration)


def stall_intervals(session: Session) -> np.ndarray:
    """The stalls on the wall clock: array (n_stalls, 2) of ``[wall_start, wall_end)``, in play order.

    A stall at media time ``m`` starts at wall time ``m`` plus all the stalling before it; stalls at
    the same media time follow one another in their given order."""
    order = np.argsort(session.stall_start, kind="stable")
    start = session.stall_start[order]
    dur = session.stall_duration[order]
    wall_start = start + np.concatenate([[0.0], np.cumsum(dur)[:-1]])
    return np.column_stack([wall_start, wall_start + dur])


def stall_fraction(session: Session) -> np.ndarray:
    """Share of each wall second ``[k, k + 1)`` spent stalled (0-1), ``wall_seconds(session)`` long."""
    n = wall_seconds(session)
    k = np.arange(n, dtype=float)
    out = np.zeros(n)
    for a, b in stall_intervals(session):
        out += np.clip(np.minimum(k + 1.0, b) - np.maximum(k, a), 0.0, None)
    return np.clip(out, 0.0, 1.0)


def stall_mask_of(session: Session) -> np.ndarray:
    """True for the wall seconds that are at least half stalled (the ``stall_mask`` of the loaders)."""
    return stall_fraction(session) >= 0.5


# ------------------------------------------------------------------------------------ for loaders

def common_ratings(values, low, high, scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-second ratings and their bounds on the common 1-5 scale (from ``scale``), clipped to [1, 5]."""
    return tuple(np.clip(to_common(v, scale), 1.0, 5.0) for v in (values, low, high))


@dataclass
class RatedSessions:
    """What a continuous-time loader collects, session by session; :meth:`add` checks the timeline and
    :meth:`dataset` derives the stall masks."""

    sessions: list = field(default_factory=list)
    ratings: list = field(default_factory=list)
    ci_low: list = field(default_factory=list)
    ci_high: list = field(default_factory=list)

    def add(self, session: Session, ratings, low, high, file: Path) -> None:
        check_wall_length(session, len(ratings), file)
        self.sessions.append(session)
        self.ratings.append(ratings)
        self.ci_low.append(low)
        self.ci_high.append(high)

    def dataset(self, name: str, mos, groups, splits, quality_source: str) -> ContinuousDataset:
        return ContinuousDataset(name, self.sessions, self.ratings, self.ci_low, self.ci_high,
                                 [stall_mask_of(s) for s in self.sessions], np.asarray(mos, float),
                                 np.asarray(groups), splits, quality_source)


def check_wall_length(s: Session, n: int, file: Path) -> None:
    """A DeepQoEError naming ``file`` unless ``n`` per-second values cover the session's wall seconds."""
    if wall_seconds(s) != n:
        raise DeepQoEError(f"{n} per-second scores, but the session lasts {s.wall_duration:.3f} s on the "
                           f"wall clock ({wall_seconds(s)} seconds)", file=str(file))
