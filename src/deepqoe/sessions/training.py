"""Training the streaming QoE model on datasets by name: the one recipe behind ``deepqoe train`` on a
sessions config, the shipped ``streaming`` model and the streaming experiments.

    model = fit_streaming_model(["p1203-open", "waterloo-sqoe-iv", "live-nflx"],
                                continuous=["live-nflx-continuous", "lfovia-qoe"])

Session scores are mapped to the common 1-5 scale (:mod:`deepqoe.sessions.scales`; z-scored datasets
through their own mean and SD). Per-second ratings come from continuous-time datasets
(:mod:`deepqoe.sessions.continuous`); their sessions add curve targets only (their session scores, where
the same sessions are also a session dataset, are not counted twice). The quality mapping (bitrate,
resolution, frame rate, codec -> VMAF-like quality) is fitted on every chunk that has a measured VMAF and a
bitrate (Waterloo SQoE-IV's logs): objective measurements only, no subjective score, so it is the same
component in every protocol, including the one that leaves Waterloo SQoE-IV out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.sessions.qoe_model import QualityMapping, SessionQoEModel, TrainingData, fit_quality_mapping
from deepqoe.sessions.scales import fit_z_reference, to_common

#: The recipe of the shipped model and of every experiment (chosen before the leave-one-dataset-out runs
#: except where docs/results.md says otherwise).
RECIPE = dict(width=4, hidden=8, epochs=400, learning_rate=0.03, curve_weight=1.0, weight_decay=1e-2,
              device_offsets=False, n_members=5)
MAPPING_DATASET = "waterloo-sqoe-iv"


@dataclass
class SessionSet:
    """Sessions with scores on the common 1-5 scale (a session dataset, or a part of one)."""

    name: str
    sessions: list
    y: np.ndarray
    groups: np.ndarray
    extra: dict = field(default_factory=dict)

    def subset(self, idx) -> "SessionSet":
        idx = np.asarray(idx, dtype=np.int64)
        return SessionSet(self.name, [self.sessions[i] for i in idx], self.y[idx], self.groups[idx], self.extra)


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
                      extra)


def load_curve_set(name: str, root=None) -> CurveSet:
    from deepqoe.datasets.registry import load_continuous_dataset

    c = load_continuous_dataset(name, root)
    return CurveSet(name, list(c.sessions), list(c.ratings), list(c.ci_low), list(c.ci_high), np.asarray(c.mos, float),
                    np.array([f"{name}:{g}" for g in c.groups]), c.splits)


def quality_mapping(root=None) -> QualityMapping:
    """The quality mapping, fitted on the chunks of Waterloo SQoE-IV (VMAF and bitrate per chunk)."""
    return fit_quality_mapping(load_session_set(MAPPING_DATASET, root).sessions)


def training_data(session_sets: Sequence[SessionSet], curve_sets: Sequence[CurveSet] = ()) -> TrainingData:
    sessions, y, names, curves = [], [], [], []
    for s in session_sets:
        sessions += s.sessions
        y.append(s.y)
        names += [s.name] * len(s.sessions)
        curves += [None] * len(s.sessions)
    for c in curve_sets:
        sessions += c.sessions
        y.append(np.full(len(c.sessions), np.nan))
        names += [c.name] * len(c.sessions)
        curves += list(c.ratings)
    if not sessions:
        raise DeepQoEError("no training sessions")
    return TrainingData(sessions, np.concatenate(y).astype(float), np.asarray(names), curves)


def fit_streaming_model(session_sets: Sequence[SessionSet | str], curve_sets: Sequence[CurveSet | str] = (), *,
                        mapping: QualityMapping | None = None, root=None, progress=None, **params) -> SessionQoEModel:
    """Fit the streaming model (``RECIPE`` unless ``params`` override) on session and curve datasets."""
    ss = [load_session_set(s, root) if isinstance(s, str) else s for s in session_sets]
    cs = [load_curve_set(c, root) if isinstance(c, str) else c for c in curve_sets]
    model = SessionQoEModel(**{**RECIPE, **params})
    return model.fit(training_data(ss, cs), mapping or quality_mapping(root), progress=progress)
