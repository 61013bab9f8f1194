"""The input of the shipped streaming-session model: sessions -> one table row each.

A session model is an ordinary :class:`~deepqoe.estimators.DeepQoERegressor` whose inputs are columns of
:func:`session_frame`, built from :func:`deepqoe.sessions.session_features` and
:func:`deepqoe.sessions.per_second_series`, grouped the way a person reads a session:

=========  ======================================================================================
stalls     number, total and longest stall, stall ratio and frequency, time since the last stall
startup    initial loading delay
quality    mean / min / spread / first and last 10 s of the quality score (the session's own quality
           metric, e.g. VMAF, when it has one, else a proxy from bitrate, resolution and frame rate),
           share of time below the best quality
switches   number of quality switches (up, down), switch rate and size
context    device, media duration
series     the per-second series (quality, log bitrate, height, stall flag), through a temporal
           encoder; it gives the per-second QoE curve (``DeepQoERegressor.predict_curve``)
=========  ======================================================================================

Scores are on the common 1-5 scale of :mod:`deepqoe.sessions.scales`. ``model.json`` of a session
model holds ``session_model`` (the frame builder, by its key in :data:`FRAME_BUILDERS`, and its
version), and ``explain_groups`` so
:func:`deepqoe.explain.explain` reports the contributions of stalls, quality, switches, startup and
context (the series' stall channel counts as stalls, its other channels as quality).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError

FRAME_VERSION = 1
SEQUENCE_LENGTH = 128
#: The key ``model.json`` records for :func:`session_frame` (see :data:`FRAME_BUILDERS`).
FRAME_BUILDER = "session-frame-v1"

STALL_COLUMNS = ["n_stalls", "stall_total_log", "stall_max_log", "stall_ratio", "stall_freq", "tsl_stall_norm"]
STARTUP_COLUMNS = ["startup_delay_log"]
QUALITY_COLUMNS = ["quality_mean", "quality_min", "quality_std", "quality_first10", "quality_last10",
                   "time_below_best_norm", "quality_is_metric"]
SWITCH_COLUMNS = ["n_switches", "n_up", "n_down", "switch_rate", "switch_mag_mean"]

STREAMING_INPUTS: list[dict] = [
    {"column": "stalls", "name": "stalls", "modality": "continuous", "columns": STALL_COLUMNS,
     "normalisation": "standard", "projection": 8},
    {"column": "startup", "name": "startup", "modality": "continuous", "columns": STARTUP_COLUMNS,
     "normalisation": "standard", "projection": 4},
    {"column": "quality", "name": "quality", "modality": "continuous", "columns": QUALITY_COLUMNS,
     "normalisation": "standard", "projection": 8},
    {"column": "switches", "name": "switches", "modality": "continuous", "columns": SWITCH_COLUMNS,
     "normalisation": "standard", "projection": 8},
    {"column": "device", "modality": "categorical", "embedding_dim": 2, "projection": None},
    {"column": "media_duration_log", "name": "duration", "modality": "continuous", "normalisation": "standard",
     "projection": 2},
    {"column": "series", "modality": "sequence", "sequence_length": SEQUENCE_LENGTH, "sequence_encoder": "conv",
     "projection": 8},
]

#: group -> [[input key, channels (None = all)], ...]; the series channels are those of
#: deepqoe.sessions.features.SERIES_CHANNELS (quality, log_bitrate, height, stall).
EXPLAIN_GROUPS: dict[str, list] = {
    "stalls": [["stalls", None], ["series", [3]]],
    "startup": [["startup", None]],
    "quality": [["quality", None], ["series", [0, 1, 2]]],
    "switches": [["switches", None]],
    "context": [["device", None], ["duration", None]],
}


def _sessions_module():
    try:
        import deepqoe.sessions as sessions
    except ModuleNotFoundError as e:  # pragma: no cover - a build without the session support
        raise DeepQoEError("streaming-session support (deepqoe.sessions) is not available in this build; "
                           "session models cannot be used") from e
    return sessions


def session_model_meta() -> dict:
    """What ``model.json`` records about a session model's input."""
    return {"frame": FRAME_BUILDER, "frame_version": FRAME_VERSION, "scale": "1-5",
            "sequence_length": SEQUENCE_LENGTH}


def is_session_model(meta: dict | None) -> bool:
    """True when ``model.json`` (``meta``) describes a model whose input is streaming sessions."""
    return bool(isinstance(meta, dict) and meta.get("session_model"))


def frame_builder(meta: dict | None, file: str | None = None):
    """The function that turns sessions into the model's input table, chosen by the key that ``model.json``
    holds in ``session_model.frame`` from the fixed :data:`FRAME_BUILDERS` (old import paths of the same
    function are accepted as aliases). Nothing named in a model file is imported or called."""
    info = (meta or {}).get("session_model")
    info = info if isinstance(info, dict) else {}
    name = info.get("frame", FRAME_BUILDER)
    key = FRAME_ALIASES.get(name, name) if isinstance(name, str) else None
    if key not in FRAME_BUILDERS:
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise DeepQoEError(f"model.json: unknown session frame builder {shown}; known: {', '.join(FRAME_BUILDERS)}",
                           file=file, field="session_model.frame")
    want = info.get("frame_version")
    if want is not None and (isinstance(want, bool) or not isinstance(want, int) or want != FRAME_VERSION):
        raise DeepQoEError(f"model.json: the model needs session frame version {want!r}, this deepqoe builds "
                           f"version {FRAME_VERSION}; use the deepqoe version the model was trained with",
                           file=file, field="session_model.frame_version")
    return FRAME_BUILDERS[key]


def _first_finite(*arrays: np.ndarray) -> np.ndarray:
    out = np.asarray(arrays[0], float).copy()
    for a in arrays[1:]:
        bad = ~np.isfinite(out)
        out[bad] = np.asarray(a, float)[bad]
    return out


def session_frame(sessions: Sequence[Any]) -> pd.DataFrame:
    """One row per session with the columns the streaming model reads (no NaN: unknowns become neutral
    values, and ``quality_is_metric`` tells whether the quality columns come from a real quality metric)."""
    mod = _sessions_module()
    if not sessions:
        raise DeepQoEError("no sessions to predict")
    F = mod.session_features(list(sessions), extra=False)
    n = len(F)
    f = {c: F[c].to_numpy(float) for c in F.columns if c not in ("device", "codec", "content")}
    has_q = np.isfinite(f["q_mean"])
    pick = lambda q, qp: np.nan_to_num(_first_finite(f[q], f[qp]), nan=50.0)  # noqa: E731
    cols: dict[str, Any] = {
        "n_stalls": f["n_stalls"],
        "stall_total_log": np.log1p(f["stall_total"]),
        "stall_max_log": np.log1p(f["stall_max"]),
        "stall_ratio": np.nan_to_num(f["stall_ratio"]),
        "stall_freq": np.nan_to_num(f["stall_freq"]),
        "tsl_stall_norm": np.nan_to_num(f["tsl_stall_norm"], nan=1.0),
        "startup_delay_log": np.log1p(f["startup_delay"]),
        "quality_mean": pick("q_mean", "qp_mean"),
        "quality_min": pick("q_min", "qp_min"),
        "quality_std": np.nan_to_num(_first_finite(f["q_std"], f["qp_std"])),
        "quality_first10": pick("q_first10", "qp_mean"),
        "quality_last10": pick("q_last10", "qp_last10"),
        "time_below_best_norm": np.nan_to_num(f["time_below_best_norm"]),
        "quality_is_metric": has_q.astype(float),
    }
    for c in SWITCH_COLUMNS:
        cols[c] = np.nan_to_num(f[c])
    num = np.column_stack(list(cols.values()))
    if not np.isfinite(num).all():  # pragma: no cover - every column is guarded above
        r, c = np.argwhere(~np.isfinite(num))[0]
        raise DeepQoEError(f"session '{F.index[r]}': could not compute feature {list(cols)[c]}")
    cols["device"] = F["device"].astype(str).to_numpy()
    cols["media_duration_log"] = np.log1p(f["media_duration"])
    X, lengths = mod.per_second_series(list(sessions), length=SEQUENCE_LENGTH)
    cols["series"] = [X[k, :max(int(lengths[k]), 1)].astype(float) for k in range(n)]  # arrays: no list round trip
    out = pd.DataFrame(cols, index=F.index)
    return out


#: Frame builders a model file may name, by key.
FRAME_BUILDERS = {"session-frame-v1": session_frame}
#: What model files saved by earlier versions hold in ``session_model.frame`` -> the key.
FRAME_ALIASES = {"deepqoe.sessions.frame.session_frame": "session-frame-v1",
                 "deepqoe.pretrained.session_input.session_frame": "session-frame-v1"}


def parse_sessions(obj: Any, source: str = "request", ignore_mos=None) -> list:
    """Sessions from parsed JSON: one session object, a list of them, ``{"sessions": [...]}``, or a
    P.1203 input (``I13`` / ``I23`` / ``IGen``) or a list of P.1203 inputs. The first bad session raises a
    DeepQoEError naming it and the field. ``ignore_mos`` (an :class:`~deepqoe.sessions.session.IgnoredMos`,
    reading for prediction): an unusable ``mos`` is left out and counted there."""
    mod = _sessions_module()
    from deepqoe.sessions.readers import is_p1203_input, session_from_p1203

    if isinstance(obj, dict) and "sessions" in obj and not is_p1203_input(obj):
        if set(obj) - {"sessions", "explain"}:
            k = sorted(set(obj) - {"sessions", "explain"})[0]
            raise DeepQoEError(f"unknown field '{k}' next to 'sessions'", field=k)
        obj = obj["sessions"]
    items = obj if isinstance(obj, list) else [obj]
    if not items:
        raise DeepQoEError("no sessions given (an empty list)")
    out, seen = [], set()
    for i, d in enumerate(items):
        if is_p1203_input(d):
            sid = str(d.get("id", f"p1203-{i}")) if isinstance(d, dict) else f"p1203-{i}"
            body = {k: v for k, v in d.items() if k != "id"}
            s = session_from_p1203(body, sid, file=source)
        else:
            s = mod.Session.from_dict(d, file=source, index=i if isinstance(obj, list) else None,
                                      ignore_mos=ignore_mos)
        if s.id in seen:
            raise DeepQoEError(f"session '{s.id}': the id is used twice", file=source, field="id")
        seen.add(s.id)
        out.append(s)
    return out


# ------------------------------------------------------------------------- example sessions (demo)
def _segments(plan: list[tuple[float, int, int]], seg: float = 4.0, fps: float = 30.0, codec: str = "h264"):
    """[(seconds, height, kbps), ...] -> 4-s segments."""
    out, t = [], 0.0
    for seconds, height, kbps in plan:
        for _ in range(int(round(seconds / seg))):
            out.append({"start": t, "duration": seg, "bitrate_kbps": kbps, "width": int(round(height * 16 / 9)),
                        "height": height, "fps": fps, "codec": codec})
            t += seg
    return out


def example_sessions() -> list[dict]:
    """A few realistic 60-s sessions (JSON form) for the demo and the service's docs."""
    return [
        {"id": "smooth-hd", "device": "tv", "content": "sports",
         "segments": _segments([(60, 1080, 5000)]), "stalls": [{"start": 0, "duration": 0.8}]},
        {"id": "slow-start", "device": "pc", "content": "movie",
         "segments": _segments([(60, 1080, 4500)]), "stalls": [{"start": 0, "duration": 8.0}]},
        {"id": "two-stalls", "device": "pc", "content": "news",
         "segments": _segments([(20, 720, 2500), (20, 480, 1200), (20, 720, 2500)]),
         "stalls": [{"start": 0, "duration": 1.0}, {"start": 18, "duration": 4.0}, {"start": 40, "duration": 6.0}]},
        {"id": "low-quality", "device": "mobile", "content": "documentary",
         "segments": _segments([(60, 240, 250)]), "stalls": [{"start": 0, "duration": 1.0}]},
        {"id": "switching", "device": "mobile", "content": "music",
         "segments": _segments([(8, 720, 2200), (8, 360, 600), (8, 720, 2200), (8, 240, 300), (8, 1080, 4000),
                                (8, 360, 600), (12, 720, 2200)]),
         "stalls": [{"start": 0, "duration": 1.5}, {"start": 24, "duration": 2.0}]},
    ]
