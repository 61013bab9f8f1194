"""Streaming sessions: the session format, readers, features, rating scales.

See ``docs/sessions.md``. Importing this package does not import torch.
"""

from deepqoe.sessions.features import per_second_series, session_features
from deepqoe.sessions.session import DEVICES, Segment, Session, Stall
from deepqoe.sessions.readers import (StreamingDataset, load_live_nflx, load_p1203_open, load_sessions,
                                      load_waterloo_sqoe_iv, save_sessions)
from deepqoe.sessions.scales import COMMON_SCALE, from_common, parse_scale, to_common

__all__ = ["COMMON_SCALE", "DEVICES", "Segment", "Session", "Stall", "StreamingDataset", "from_common",
           "load_live_nflx", "load_p1203_open", "load_sessions", "load_waterloo_sqoe_iv", "parse_scale",
           "per_second_series", "save_sessions", "session_features", "to_common"]
