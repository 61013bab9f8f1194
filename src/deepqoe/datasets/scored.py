"""Sessions with scores on the common 1-5 scale, by dataset name: what the streaming model trains and is
tested on (:mod:`deepqoe.sessions.training`), for ``deepqoe train`` on a sessions config, the shipped
``streaming`` model and the streaming experiments.

Session scores are mapped to the common 1-5 scale (:mod:`deepqoe.sessions.scales`; z-scored datasets
through their own mean and SD). Continuous-time datasets give per-second ratings. The quality mapping
(bitrate, resolution, frame rate, codec -> VMAF-like quality) is fitted on every chunk that has a measured
VMAF and a bitrate (Waterloo SQoE-IV's logs): objective measurements only, no subjective score, so it is
the same component in every protocol, including the one that leaves Waterloo SQoE-IV out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepqoe.sessions.qoe_model import QualityMapping, builtin_quality_mapping
from deepqoe.sessions.scales import fit_z_reference, to_common

MAPPING_DATASET = "waterloo-sqoe-iv"


@dataclass
class SessionSet:
    """Sessions with scores on the common 1-5 scale (a session dataset, or a part of one)."""

    name: str
    sessions: list
    y: np.ndarray
    groups: np.ndarray
    extra: dict = field(default_factory=dict)
    ratings: list | None = None        # individual ratings per session on ``rating_scale`` (own scale), or None
    rating_scale: str | None = None

    def subset(self, idx) -> "SessionSet":
        idx = np.asarray(idx, dtype=np.int64)
        return SessionSet(self.name, [self.sessions[i] for i in idx], self.y[idx], self.groups[idx], self.extra,
                          None if self.ratings is None else [self.ratings[i] for i in idx], self.rating_scale)


@dataclass
class CurveSet:
    """Sessions with per-wall-second ratings on the common 1-5 scale (a continuous-time dataset)."""

    name: str
    sessions: list
    ratings: list
    ci_low: list
    ci_high: list
    mos: np.ndarray
    groups: np.ndarray
    splits: list | None = None

    def subset(self, idx) -> "CurveSet":
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda a: [a[i] for i in idx]  # noqa: E731
        return CurveSet(self.name, pick(self.sessions), pick(self.ratings), pick(self.ci_low), pick(self.ci_high),
                        self.mos[idx], self.groups[idx], None)


def load_session_set(name: str, root=None) -> SessionSet:
    from deepqoe.datasets.registry import load_session_dataset

    return session_set(load_session_dataset(name, root))


def session_set(d) -> SessionSet:
    """A loaded :class:`~deepqoe.sessions.readers.StreamingDataset` on the common scale, with content groups."""
    name = d.name
    scale = fit_z_reference(d.mos) if d.scale == "z" else d.scale
    meta = d.meta
    col = next((c for c in ("src", "content") if c in meta.columns), None)
    content = meta[col].astype(str).to_numpy() if col else np.array([s.id for s in d.sessions])
    extra = {"O46": meta["O46"].to_numpy(float)} if "O46" in meta.columns else {}
    return SessionSet(name, list(d.sessions), to_common(d.mos, scale), np.array([f"{name}:{c}" for c in content]),
                      extra, getattr(d, "ratings", None), getattr(d, "rating_scale", None))


def load_curve_set(name: str, root=None) -> CurveSet:
    from deepqoe.datasets.registry import load_continuous_dataset

    c = load_continuous_dataset(name, root)
    return CurveSet(name, list(c.sessions), list(c.ratings), list(c.ci_low), list(c.ci_high), np.asarray(c.mos, float),
                    np.array([f"{name}:{g}" for g in c.groups]), c.splits)


def quality_mapping(root=None) -> QualityMapping:
    """The quality mapping every experiment and the shipped models use: the built-in one (fitted by
    ``deepqoe reproduce quality_mapping`` on Waterloo SQoE-IV's chunks and an encode grid; ``root`` is
    unused, kept for the callers that pass their data folder)."""
    return builtin_quality_mapping()
