"""Kept so that model directories saved before the move keep loading: their ``model.json`` names
``deepqoe.pretrained.session_input.session_frame`` as the frame builder. The code lives in
:mod:`deepqoe.sessions.frame`."""

from deepqoe.sessions.frame import *  # noqa: F401,F403
from deepqoe.sessions.frame import session_frame  # noqa: F401
