"""The one training recipe of the streaming QoE model: behind ``deepqoe train`` on a sessions config, the
shipped ``streaming`` model and the streaming experiments.

    from deepqoe.datasets.scored import load_session_set, load_curve_set, quality_mapping
    model = fit_streaming_model([load_session_set("p1203-open"), ...], [load_curve_set("lfovia-qoe")],
                                mapping=quality_mapping())

Session sets hold scores on the common 1-5 scale; curve sets add per-second targets only (their session
scores, where the same sessions are also a session set, are not counted twice). Datasets are read on the
:mod:`deepqoe.datasets` side (:mod:`deepqoe.datasets.scored`); this module knows no files.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.sessions.qoe_model import QualityMapping, SessionQoEModel, TrainingData

#: The recipe of the shipped model and of every experiment (chosen before the leave-one-dataset-out runs
#: except where docs/results.md says otherwise).
RECIPE = dict(width=4, hidden=8, epochs=400, learning_rate=0.03, curve_weight=1.0, weight_decay=1e-2,
              device_offsets=False, mapped_offset=True, n_members=5, fusion="hybrid", stall_penalty="share")


def training_data(session_sets: Sequence, curve_sets: Sequence = ()) -> TrainingData:
    """Session sets (name, sessions, y) and curve sets (name, sessions, ratings) -> :class:`TrainingData`."""
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


def fit_streaming_model(session_sets: Sequence, curve_sets: Sequence = (), *, mapping: QualityMapping,
                        progress=None, **params) -> SessionQoEModel:
    """Fit the streaming model (``RECIPE`` unless ``params`` override) on session and curve sets."""
    model = SessionQoEModel(**{**RECIPE, **params})
    return model.fit(training_data(session_sets, curve_sets), mapping, progress=progress)
