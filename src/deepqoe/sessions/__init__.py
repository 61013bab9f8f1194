"""Streaming sessions: the session format, readers, features, rating scales.

See ``docs/sessions.md``. The public datasets' loaders are in :mod:`deepqoe.datasets` (by name through
:mod:`deepqoe.datasets.registry`). Importing this package does not import torch.
"""

from deepqoe.sessions.features import per_second_series, session_features
from deepqoe.sessions.session import DEVICES, Segment, Session, Stall
from deepqoe.sessions.readers import StreamingDataset, load_sessions, save_sessions
from deepqoe.sessions.scales import COMMON_SCALE, from_common, parse_scale, to_common

__all__ = ["COMMON_SCALE", "DEVICES", "Segment", "Session", "Stall", "StreamingDataset", "from_common",
           "load_sessions", "parse_scale", "per_second_series", "save_sessions", "session_features",
           "to_common"]
