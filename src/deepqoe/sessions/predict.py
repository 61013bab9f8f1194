"""``deepqoe predict MODEL_DIR SESSIONS``: QoE of streaming sessions with a session model.

    deepqoe predict streaming session.json                 # a table on standard output
    deepqoe predict streaming sessions/ --out scores.json  # one object per session, with the curve
    deepqoe predict streaming sessions.csv --out scores.csv --scale 0-100

``SESSIONS`` is anything :func:`deepqoe.sessions.load_sessions` reads: a session JSON (one session, a
list, ``{"sessions": [...]}``), a P.1203 input JSON, a CSV of sessions (one row per segment) or a folder
of those. The model's ``model.json`` names the frame builder in its ``session_model`` entry
(``deepqoe.sessions.frame.session_frame`` for the shipped ``streaming`` model); scores are
predicted on the model's scale (``session_model.scale``, the common 1-5 scale) and converted to
``--scale`` (default ``1-5``; any ``lo-hi`` such as ``0-100``, or ``z``: ``(common - 3) / 0.8``, see
:mod:`deepqoe.sessions.scales`).

Output (by the suffix of ``--out``):

* ``.json``: ``[{"id", "score", "scale", "curve", "curve_step_s"}, ...]``; ``curve`` is the per-second QoE
  (the score of the first t seconds of wall-clock playback, stalls included, for t = 1, 2, ...; a
  session longer than the model's sequence length is averaged into that many equal bins, each
  ``curve_step_s`` seconds long); ``null`` when the model has no sequence input;
* ``.csv`` / ``.parquet``: ``id, score`` (and ``scale``);
* no ``--out``: a table on standard output.

A bad session does not stop the batch: the others are predicted and the failures (session and field)
are listed on standard error at the end. The exit status is non-zero only when no session could be
predicted.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError
from deepqoe.sessions.scales import COMMON_SCALE, from_common, parse_scale, to_common

DEFAULT_FRAME = "deepqoe.sessions.frame.session_frame"


def is_session_model(meta: dict | None) -> bool:
    """True when ``model.json`` (``meta``) describes a model whose input is streaming sessions."""
    return bool(isinstance(meta, dict) and meta.get("session_model"))


def frame_builder(meta: dict) -> Callable[[Sequence[Any]], pd.DataFrame]:
    """The function that turns sessions into the model's input table, as named in ``model.json``."""
    info = (meta or {}).get("session_model") or {}
    if not isinstance(info, dict):
        info = {}
    name = str(info.get("frame") or DEFAULT_FRAME)
    mod_name, _, attr = name.rpartition(".")
    if not mod_name.startswith("deepqoe.") or not attr:
        raise DeepQoEError(f"model.json: unknown session frame builder {name!r} (must be a deepqoe function)",
                           field="session_model.frame")
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError):
        raise DeepQoEError(f"model.json: the session frame builder {name!r} is not in this build of deepqoe",
                           field="session_model.frame") from None
    want = info.get("frame_version")
    have = getattr(sys.modules[mod_name], "FRAME_VERSION", None)
    if want is not None and have is not None and int(want) != int(have):
        raise DeepQoEError(f"the model needs session frame version {want}, this deepqoe builds version {have}; "
                           "use the deepqoe version the model was trained with", field="session_model.frame_version")
    return fn


def _build_frame(build, sessions: list) -> tuple[pd.DataFrame | None, list, list[DeepQoEError]]:
    """The frame of the batch; when the batch fails, session by session so one bad session is named."""
    try:
        return build(sessions), list(sessions), []
    except DeepQoEError:
        if len(sessions) == 1:
            raise
    frames, ok, bad = [], [], []
    for s in sessions:
        try:
            frames.append(build([s]))
            ok.append(s)
        except DeepQoEError as e:
            bad.append(e if f"'{s.id}'" in e.message else
                       DeepQoEError(f"session '{s.id}': {e.message}", file=e.file, field=e.field))
    if not frames:
        return None, [], bad
    return pd.concat(frames), ok, bad


def _wall_seconds(s) -> int:
    """Steps of the per-second series (media seconds + whole stall seconds), as per_second_series counts."""
    T = int(math.ceil(float(s.media_duration) - 1e-9))
    if len(s.stall_duration):
        T += int(np.maximum(np.rint(s.stall_duration).astype(np.int64), 1).sum())
    return T


def _has_sequence(est) -> bool:
    return any(getattr(e, "kind", None) == "sequence" for e in getattr(est, "encoders_", []))


def predict_frame(est, sessions: list, scale: str | None = None) -> list[dict]:
    """Predict the sessions: ``[{"id", "score", "scale", "curve", "curve_step_s"}, ...]`` (same order).

    Raises a DeepQoEError when the frame cannot be built (use :func:`predict_session_batch` for a batch
    that goes on past bad sessions)."""
    meta = getattr(est, "meta_", {}) or {}
    build = frame_builder(meta)
    X = build(sessions)
    return _predict(est, meta, sessions, X, scale)


def _predict(est, meta: dict, sessions: list, X: pd.DataFrame, scale: str | None) -> list[dict]:
    info = meta.get("session_model") or {}
    model_scale = parse_scale(info.get("scale", COMMON_SCALE))
    target = parse_scale(scale or COMMON_SCALE)
    X = X.reset_index(drop=True)
    common = np.clip(to_common(est.predict(X), model_scale), 1.0, 5.0)
    score = from_common(common, target)
    curves = None
    if _has_sequence(est):
        c = est.predict_curve(X)
        curves = from_common(np.clip(to_common(c, model_scale), 1.0, 5.0), target)
    out = []
    for k, s in enumerate(sessions):
        row = {"id": s.id, "score": round(float(score[k]), 4), "scale": target.name, "curve": None,
               "curve_step_s": None}
        if curves is not None:
            cv = curves[k]
            cv = cv[np.isfinite(cv)]
            row["curve"] = [round(float(v), 4) for v in cv]
            if len(cv):
                row["curve_step_s"] = round(max(_wall_seconds(s), len(cv)) / len(cv), 4)
        out.append(row)
    return out


def predict_session_batch(est, sessions: list, scale: str | None = None
                          ) -> tuple[list[dict], list[DeepQoEError]]:
    """Predict a batch, going on past sessions whose input cannot be built: (rows, failures)."""
    meta = getattr(est, "meta_", {}) or {}
    parse_scale(scale or COMMON_SCALE)  # a bad --scale fails before any work
    build = frame_builder(meta)
    X, ok, bad = _build_frame(build, list(sessions))
    if X is None or not ok:
        return [], bad
    return _predict(est, meta, ok, X, scale), bad


def _describe_failure(e: DeepQoEError) -> str:
    return str(e)


def write_predictions(rows: list[dict], out: str | None, stream=None) -> None:
    """JSON (every field), CSV / Parquet (id, score, scale) by the suffix of ``out``; a table when None."""
    stream = stream or sys.stdout
    if out:
        p = Path(out)
        suffix = p.suffix.lower()
        if suffix == ".json":
            from deepqoe.io import atomic_write_json

            atomic_write_json(p, rows)
        elif suffix in (".csv", ".parquet", ".pq"):
            from deepqoe.io import write_table

            write_table(pd.DataFrame({"id": [r["id"] for r in rows], "score": [r["score"] for r in rows],
                                      "scale": [r["scale"] for r in rows]}), p)
        else:
            raise DeepQoEError("the output must end in .json (scores and per-second curves), .csv or .parquet",
                               file=str(p))
        print(f"{len(rows)} session(s) written to {p}", file=stream)
        return
    w = max([len("id")] + [len(str(r["id"])) for r in rows])
    print(f"{'id':<{w}}  {'score':>8}  scale  curve (min / last)", file=stream)
    for r in rows:
        cv = r.get("curve") or []
        tail = f"{min(cv):.2f} / {cv[-1]:.2f} ({len(cv)} steps)" if cv else "-"
        print(f"{str(r['id']):<{w}}  {r['score']:>8.3f}  {r['scale']:<5}  {tail}", file=stream)


def predict_sessions(est, args) -> int:
    """The ``deepqoe predict`` route for session input (``args``: ``data``, ``out``, ``scale``)."""
    from deepqoe.sessions.readers import load_sessions

    scale = getattr(args, "scale", None)
    parse_scale(scale or COMMON_SCALE)
    if not is_session_model(getattr(est, "meta_", None)):
        raise DeepQoEError("this model was not trained on streaming sessions (its model.json has no "
                           "'session_model' entry); give it a table (CSV / Parquet) instead",
                           file=str(getattr(est, "model_dir_", "")) or None)
    sessions, failures = load_sessions(args.data)
    rows, bad = predict_session_batch(est, sessions, scale) if sessions else ([], [])
    failures = list(failures) + list(bad)
    if rows:
        write_predictions(rows, getattr(args, "out", None))
    if failures:
        print(f"{len(failures)} session(s) or file(s) could not be predicted:", file=sys.stderr)
        for e in failures:
            print(f"  - {_describe_failure(e)}", file=sys.stderr)
    if not rows:
        raise DeepQoEError("no session could be predicted" + (f" ({len(failures)} failure(s) above)"
                                                              if failures else ""), file=str(args.data))
    return 0


def predictions_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2)
