"""The prediction service: one model behind a small HTTP API (FastAPI + uvicorn).

    deepqoe serve [MODEL_DIR or shipped name] [--host 127.0.0.1] [--port 8000]

Endpoints (the OpenAPI schema at ``/openapi.json``; ``/docs`` is a small page built in, so it works offline):

* ``POST /predict`` - rows (table models) or sessions (session models) in JSON:

  - a table model takes one row object, a list of rows, or ``{"rows": [...], "explain": false}``; a row
    holds exactly the model's input columns (``GET /model`` lists them), plus an optional ``id`` (or, as
    ``deepqoe predict`` reads it, the model's id column, its config's ``dataset.id``: both given, the same
    id); a value is read as ``deepqoe predict`` reads a table's (a text of blanks is a missing text, a number
    above 1e15 in magnitude too large: a 422 naming the row);
  - a session model (the shipped ``streaming`` model) takes one session, a list of sessions,
    ``{"sessions": [...]}``, or an ITU-T P.1203 input JSON (``I13`` / ``I23`` / ``IGen``);
  - a prediction interval (split conformal, :mod:`deepqoe.conformal`) comes with every score of a model that
    has ``intervals.json``: ``"interval": {"level", "low", "high"}``, at 0.9 unless the request says
    ``"interval": 0.8`` next to ``rows`` / ``sessions`` (or ``?interval=0.8``; ``null`` / ``none``: off);
  - a session model trained on several datasets takes ``"calibration": "p1203-open"`` next to ``sessions``
    (or ``?calibration=``; ``none`` / ``null``: the average): scores as that dataset's viewers used the
    scale, with that dataset's own interval (``GET /model`` lists the calibrations; each prediction then says
    ``"calibration"``), and that dataset's own rating-distribution head where there is one;
    ``"rating_head": "p1203-open"`` (or ``?rating_head=``) serves another head;
  - a session model reports on another MOS scale with ``"scale": "0-100"`` next to ``sessions`` (or
    ``?scale=0-100``; any ``lo-hi``, or ``z``), read and applied as ``deepqoe predict --scale`` does
    (:func:`deepqoe.sessions.scales.requested_scale`, then the Predictor): the score, the interval, the
    curve, the distribution's ``sos`` and quantiles and the explanation on that scale; the answer's and each
    prediction's ``"scale"`` say which;
  - a session model, or a table regression model trained with ``dataset.individual``, with a
    rating-distribution head (``distribution.json``, :mod:`deepqoe.distribution`) adds
    ``"distribution": {"head", "sos", "p_gob", "p_pow", "quantiles"}`` to every prediction;
  - ``"explain": true`` next to ``rows`` / ``sessions`` (or ``?explain=true``) adds each input's contribution
    (:func:`deepqoe.explain.explain`); for sessions the contributions of stalls, quality, switches, startup
    and context; ``"curve": true`` next to ``sessions`` (or ``?curve=true``) adds a session model's
    per-second QoE curve (a null ``explain`` or ``curve`` in the body: as left out).

  The answer is ``{"model", "task", "n", "predictions": [...]}`` (and ``"scale"``, the scale asked for, for
  session models; ``"notes"``, one line each, when the input raised notes that ``deepqoe predict`` prints
  as ``deepqoe: note: ...``: a category not seen in training, a text with no word the embedding knows, a
  number far outside its input's training range, scores clipped to the training targets' range, a stall just
  after the media's end moved to it); each prediction has ``score`` (and ``id``), computed by
  :class:`deepqoe.predictor.Predictor`, the path ``deepqoe predict`` takes: a session model's scores and
  curves are always inside its scale.

* ``GET /health`` - liveness; ``GET /model`` - the input schema, classes / scale, scores, model card.

Every bad request gets a 4xx answer with a ``detail`` that says what is wrong (and ``field`` where it
applies): 400 for a body that is not JSON (NaN and Infinity are not JSON; a string must be Unicode text,
so no lone surrogate escape such as ``\\ud800``), 413 for a body over the size limit or too many rows, 422
for JSON of the wrong shape, unknown or missing fields, unknown query parameters, wrong types, non-finite
numbers. A bad session of a request is named by its place and its id: ``sessions[3] (id 'abc'):
context.display_height: ...``, with the field ``sessions[3].context.display_height`` (a single session is
``sessions[0]``); one bad session fails the whole request. A 422 about the request's sessions (or rows)
also lists every bad one, one error each (its first, as ``detail`` would say it), in ``errors``:
``[{"detail", "field"}, ...]``, the one ``detail`` names first, then the others in the request's order; at
most 50, and ``errors_left_out`` says how many more there are::

    {"detail": "sessions[1] (id 'b'): segments: ...", "field": "sessions[1].segments",
     "errors": [{"detail": "sessions[1] (id 'b'): segments: ...", "field": "sessions[1].segments"},
                {"detail": "sessions[4] (id 'e'): id: the id is used twice (as sessions[0])",
                 "field": "sessions[4].id"}],
     "errors_left_out": 0}

The list covers the sessions that fail validation (each read on its own, and each whose id an earlier
session already has) or, when every session is valid, those the predictor could not score; for a table
model, the bad rows (each row's first bad field). An option given both in the body and in the query: the
body's wins. The model is loaded once;
inference runs in a thread pool, so the event loop keeps accepting requests while the network computes.
"""


import contextvars
import difflib
import json
import logging
import math
import re
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from deepqoe.conformal import MIN_LEVEL
from deepqoe.errors import DeepQoEError, DeepQoENote, one_line

log = logging.getLogger("deepqoe.serve")

#: the notes (DeepQoENote warnings: a category not seen in training, scores clipped, a late stall moved) of
#: the request running in this context; :func:`_hook_notes` routes them here, and the answer lists them
_REQUEST_NOTES: contextvars.ContextVar[list | None] = contextvars.ContextVar("deepqoe_request_notes", default=None)
_HOOK_LOCK = threading.Lock()


def _hook_notes() -> None:
    """Route every :class:`DeepQoENote` raised while a request is predicted (in its worker thread) to that
    request's list, each time (the filter "always": a note per request, not once per process); notes outside
    a request go to the log; other warnings as before. Installed where missing (anything that restores the
    warnings state, such as ``warnings.catch_warnings``, removes it)."""
    with _HOOK_LOCK:
        first = next((f for f in warnings.filters if issubclass(DeepQoENote, f[2])), None)  # the filter that acts
        if first is None or first[0] != "always":
            warnings.filterwarnings("always", category=DeepQoENote)
        if getattr(warnings.showwarning, "_deepqoe_request_notes", False):
            return
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, DeepQoENote):
                bucket = _REQUEST_NOTES.get()
                if bucket is not None:
                    bucket.append(message)  # the warning itself: a session's note says which session
                else:
                    log.info("note: %s", one_line(str(message)))
                return
            shown(message, category, filename, lineno, file, line)

        show._deepqoe_request_notes = True
        warnings.showwarning = show

DEFAULT_MAX_BODY = 2_000_000  # bytes
DEFAULT_MAX_ITEMS = 1000  # rows or sessions per request


#: The most errors a 422 lists in ``errors`` (the rest are counted in ``errors_left_out``).
MAX_LISTED_ERRORS = 50


class RequestError(Exception):
    """A bad request: HTTP status, message, and the field it concerns; ``errors``: for a request with several
    bad sessions or rows, every one's (message, field), this one's first (see :func:`every_error`)."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 errors: list[tuple[str, str | None]] | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.errors = errors


def row_error(e: DeepQoEError) -> RequestError:
    """The 422 for a table row the predictor could not read (``e`` names its 1-based row and its column), in
    the shape of the request's own row errors: ``rows[k].COLUMN: message``, with the field ``rows[k].COLUMN``."""
    where = f"rows[{e.row - 1}]" + (f".{e.column or e.field}" if e.column or e.field else "")
    return RequestError(422, f"{where}: {e.message}", where)


def every_error(errors: list[RequestError]) -> RequestError:
    """The error of a request with the bad sessions or rows ``errors`` (at least one): the first's status,
    message and field (what the request said before it listed them all), listing every one."""
    first = errors[0]
    return RequestError(first.status, first.message, first.field, [(e.message, e.field) for e in errors])


INTERVAL_SCHEMA = {"anyOf": [{"type": "number", "minimum": MIN_LEVEL, "exclusiveMaximum": 1}, {"type": "null"}],
                   "description": "prediction interval level (default 0.9 when the model has intervals); null: none"}
ERROR_SCHEMA = {"type": "object", "required": ["detail"], "description": "what is wrong, on one line",
                "properties": {"detail": {"type": "string"}, "field": {"type": "string"}}}
ITEM_ERRORS_SCHEMA = {
    **ERROR_SCHEMA,
    "properties": {**ERROR_SCHEMA["properties"],
                   "errors": {"type": "array", "maxItems": MAX_LISTED_ERRORS,
                              "items": {**ERROR_SCHEMA, "description": "one bad session's or row's error"},
                              "description": "for bad sessions or rows: every bad one's error (its first), the "
                                             "one `detail` names first, then the others in the request's order; "
                                             f"at most {MAX_LISTED_ERRORS}"},
                   "errors_left_out": {"type": "integer", "minimum": 0,
                                       "description": "how many bad sessions or rows `errors` leaves out"}}}
ERROR_RESPONSES = {status: {"description": text, "content": {"application/json": {"schema": schema}}}
                   for status, text, schema in (
                       (400, "the body is not JSON (or not UTF-8 / Unicode text)", ERROR_SCHEMA),
                       (413, "the body is over the size limit, or too many rows / sessions", ERROR_SCHEMA),
                       (422, "wrong shape, unknown or missing fields or query parameters, wrong types, values out "
                             "of range; with bad sessions or rows, `errors` lists every bad one (at most "
                             f"{MAX_LISTED_ERRORS}; `errors_left_out`: how many more)", ITEM_ERRORS_SCHEMA))}
#: The query parameters of ``POST /predict``; those after the first two are for session models.
QUERY_PARAMETERS = ("explain", "interval", "curve", "calibration", "rating_head", "scale")
SCALE_DESCRIPTION = ("session models: the MOS scale to report scores on, as `deepqoe predict --scale` takes it: "
                     "'lo-hi' such as '0-100' or '1-7' (linear from the common 1-5 scale), or 'z' ((score - 3) "
                     "/ 0.8); intervals, curves and distribution quantiles too. Default (null, left out): 1-5")


def default_model() -> str:
    """The shipped streaming-session model if this build has it, else the viewer-rating classifier."""
    from deepqoe.persistence import PRETRAINED_DIR

    for name in ("streaming", "upec-qoe-lab"):
        if (PRETRAINED_DIR / name / "model.json").is_file():
            return name
    raise DeepQoEError("no shipped model in this build; give a model directory: deepqoe serve MODEL_DIR")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (use null or a finite number)")


def _short(text: Any, n: int = 60) -> str:
    """``text`` on one line (line breaks and other control characters escaped), at most ``n`` characters:
    a key or value echoed in a message."""
    s = one_line(text)
    return s if len(s) <= n else s[: n - 3] + "..."


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _not_unicode(obj: Any) -> str | None:
    """The path (``rows[0].content``) of a string or key in ``obj`` that is not Unicode text (a lone surrogate
    such as ``\\ud800``: legal JSON, but no UTF-8 encodes it), "" for the whole body; None if there is none."""
    def bad(s: str) -> bool:
        try:
            s.encode("utf-8")
            return False
        except UnicodeEncodeError:
            return True

    stack = [(obj, "")]
    while stack:
        v, path = stack.pop()
        if isinstance(v, str) and bad(v):
            return path
        if isinstance(v, list):
            stack.extend((x, f"{path}[{i}]") for i, x in enumerate(v))
        elif isinstance(v, dict):
            for k, x in v.items():
                key = f"{path}.{one_line(k)}" if path else one_line(k)
                if bad(k):
                    return key
                stack.append((x, key))
    return None


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN / Infinity, every string Unicode text (no lone surrogate escape)."""
    if not body.strip():
        raise RequestError(400, "empty request body; send JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "the request body is not UTF-8 text; send JSON") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise RequestError(400, f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except ValueError as e:
        raise RequestError(400, f"malformed JSON: {e}") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    where = _not_unicode(obj) if _SURROGATE_ESCAPE.search(text) else None
    if where is not None:
        raise RequestError(400, (f"'{_short(where)}': " if where else "") + "a string that is not Unicode text (a "
                                "lone surrogate escape \\ud800-\\udfff); send UTF-8 text", where or None)
    return obj


#: What a malformed session can raise besides a DeepQoEError (reported as "not a valid session").
_NOT_A_SESSION = (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError)


def session_label(k: int, item: Any) -> str:
    """``sessions[3] (id 'abc')``: a request's session by its place in the list (a single session is
    ``sessions[0]``), and its ``id`` (or ``session_id``) when it has one."""
    where = f"sessions[{k}]"
    if isinstance(item, dict):
        for key in ("id", "session_id"):
            v = item.get(key)
            if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip():
                return f"{where} ({key} '{_short(v)}')"
    return where


def session_error(k: int, item: Any, message: str, field: str | None) -> RequestError:
    """A 422 about the request's session ``k`` (``item``, as sent): ``sessions[k] (id 'x'): FIELD: message``,
    with the field ``sessions[k].FIELD`` (``sessions[k]`` when the error names no field)."""
    where = f"sessions[{k}]"
    full = (where if not field else f"{where}{field}" if field.startswith("[") else f"{where}.{field}")
    return RequestError(422, f"{session_label(k, item)}: " + (f"{_short(field)}: " if field else "") + message, full)


def _library_ids(item: Any, k: int) -> list[str]:
    """The names :mod:`deepqoe.sessions` gives session ``k`` of a list in its messages (``session 'NAME': ``):
    its id, ``#k`` without one, ``p1203-k`` for a P.1203 input without one."""
    names = [f"#{k}", f"p1203-{k}", "?"]
    v = item.get("id") if isinstance(item, dict) else None
    if v is not None and not isinstance(v, (dict, list)):
        names.insert(0, one_line(v))
    return names


def _without_session_prefix(message: str, names: list[str]) -> tuple[str | None, str]:
    """(NAME, the rest) of a ``message`` that begins ``session 'NAME': `` for one of ``names`` (the label
    says which session it is); (None, ``message``) otherwise."""
    for name in names:
        head = f"session '{name}': "
        if message.startswith(head):
            return name, message[len(head):]
    return None, message


def _session_index(sessions: list) -> dict[str, int]:
    """Each session's id (on one line) and its place in ``sessions`` (the first, should two share it)."""
    index: dict[str, int] = {}
    for k, s in enumerate(sessions):
        index.setdefault(one_line(s.id), k)
    return index


def _named_session(message: str, sessions: list, index: dict[str, int]) -> tuple[int | None, str]:
    """(k, the rest) of a ``message`` that begins ``session 'ID': `` with session k's ID (the first such
    session); else (k, ``message``) for the first session whose ``'ID'`` the message holds further on; (None,
    ``message``) when it names none. ``index``: :func:`_session_index` of ``sessions``: a look-up per
    candidate name, not a pass over the sessions (a request where every session fails stays linear)."""
    head = "session '"
    if message.startswith(head):
        found = []
        p = message.find("': ", len(head))
        while p != -1:
            k = index.get(message[len(head):p])
            if k is not None:
                found.append((k, message[p + 3:]))
            p = message.find("': ", p + 1)
        if found:
            return min(found, key=lambda f: f[0])
    quotes = [i for i, ch in enumerate(message) if ch == "'"]
    if len(quotes) <= 64:  # every 'quoted' text in the message
        ks = [k for n, a in enumerate(quotes) for b in quotes[n + 1:]
              if (k := index.get(message[a + 1:b])) is not None]
        return (min(ks) if ks else None), message
    return next((k for k, s in enumerate(sessions) if f"'{one_line(s.id)}'" in message), None), message


def prediction_failure(e: DeepQoEError, sessions: list, items: list,
                       index: dict[str, int] | None = None) -> RequestError:
    """The 422 for a session the predictor could not score (``e``, one of the failures of
    :meth:`~deepqoe.predictor.Predictor.predict_sessions`, which names the session by its id, or the error a
    session's note carries), named as a session that fails validation is (:func:`session_error`);
    ``sessions`` as read from ``items``; ``index``: their :func:`_session_index` (made here if not given)."""
    field = e.field or e.column
    k, msg = _named_session(e.message, sessions, _session_index(sessions) if index is None else index)
    if k is not None:
        return session_error(k, items[k], msg, field)
    return RequestError(422, str(e), field)


def _session_failure(k: int, item: Any, e: Exception, names: list[str]) -> RequestError:
    """The 422 for session ``k`` (``item``, as sent) that the reading of sessions failed on with ``e``
    (its message's ``session 'NAME': `` left out for one of ``names``, the label says which session)."""
    if isinstance(e, DeepQoEError):
        _, msg = _without_session_prefix(e.message, names)
        return session_error(k, item, msg, e.field)
    return session_error(k, item, "not a valid session: " + ("nested too deeply" if isinstance(e, RecursionError)
                                                             else str(e)[:200]), None)


def _parse_each(items: list, parse, skip=()) -> list:
    """Each session of ``items`` read on its own (``parse([item])``): the session, or the exception (None for
    the places in ``skip``)."""
    out = []
    for k, d in enumerate(items):
        if k in skip:
            out.append(None)
            continue
        try:
            out.append(parse([d])[0])
        except (DeepQoEError, *_NOT_A_SESSION) as e:
            out.append(e)
    return out


def _session_id(item: Any, k: int, read: Any) -> str | None:
    """The id session ``k`` (``item``, as sent; ``read``: it read on its own, or the exception) has in
    the request: its id, a P.1203 input's default ``p1203-k``; the id a bad session names, if it names one."""
    from deepqoe.sessions.readers import is_p1203_input

    if is_p1203_input(item) and "id" not in item:
        return f"p1203-{k}"
    if not isinstance(read, BaseException):
        return read.id
    v = item.get("id") if isinstance(item, dict) else None
    return str(v) if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip() else None


def _every_bad_session(items: list, each: list, known: dict[int, RequestError]) -> list[tuple[int, RequestError]]:
    """(k, its 422) for every bad session of ``items`` (``each``: :func:`_parse_each`, or None where
    ``known`` has the session's error already), in order: one that fails on its own (its own error), or one
    that reads well but whose id an earlier session (good or bad) already has. One pass, a look-up each."""
    first_with: dict[str, int] = {}
    out = []
    for k, (d, read) in enumerate(zip(items, each)):
        if k in known:
            out.append((k, known[k]))
        elif isinstance(read, BaseException):
            out.append((k, _session_failure(k, d, read, _library_ids(d, 0))))  # read alone: '#0
        sid = None if k in known else _session_id(d, k, read)
        if sid is None:
            continue
        j = first_with.setdefault(sid, k)
        if j != k and not isinstance(read, BaseException):
            out.append((k, session_error(k, d, f"the id is used twice (as sessions[{j}])", "id")))
    return out


def _fails(parse, items: list) -> bool:
    try:
        parse(items)
    except (DeepQoEError, *_NOT_A_SESSION):
        return True
    return False


def _first_bad_session(items: list, parse, each: list | None = None) -> int:
    """The index of the session ``parse(items)`` fails on. It stops at the first bad one: the first session
    that fails on its own, unless the list fails before it (an id used twice), found then as the shortest
    prefix that fails (a binary search), so the sessions are read as the request reads them (their place,
    P.1203 default ids, ids used twice). About two more reads of the sessions up to the bad one (one when
    ``each``, :func:`_parse_each` of ``items``, says which sessions fail on their own)."""
    if each is not None:
        k = next((i for i, r in enumerate(each) if isinstance(r, BaseException)), len(items))
    else:
        k = next((i for i, d in enumerate(items) if _fails(parse, [d])), len(items))
    if k < len(items) and (k == 0 or not _fails(parse, items[:k])):
        return k
    if each is not None:  # the usual cause: an id used again; its first reuse ends the shortest failing prefix
        seen: set = set()
        for i in range(min(k, len(items))):
            sid = _session_id(items[i], i, each[i])
            if sid in seen:
                if _fails(parse, items[:i + 1]) and not _fails(parse, items[:i]):
                    return i
                break  # not what makes the list fail: search for it
            seen.add(sid)
    lo, hi = 1, min(k, len(items))  # parse(items[:hi]) fails
    while lo < hi:
        mid = (lo + hi) // 2
        if _fails(parse, items[:mid]):
            hi = mid
        else:
            lo = mid + 1
    return hi - 1


def _earlier_with_id(items: list, k: int, sid: str, parse) -> str:
    """`` (as sessions[j])`` for the earlier session with the id ``sid`` that session ``k`` uses again; ""
    if none is found."""
    try:
        before = parse(items[:k]) if k else []
    except (DeepQoEError, *_NOT_A_SESSION):
        return ""
    j = next((j for j, s in enumerate(before) if one_line(s.id) == sid), None)
    return "" if j is None else f" (as sessions[{j}])"


def _finite(x: int | float) -> bool:
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def _type_name(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(v), type(v).__name__)


def _body_flag(value: Any, name: str) -> bool | None:
    """A yes/no option given in the body (``explain``, ``curve``): true or false (it wins over the query's),
    or null (None: as if not in the body, the query's or the default); a 422 naming it otherwise."""
    if value is not None and not isinstance(value, bool):
        raise RequestError(422, f"'{name}' must be true or false, got {_type_name(value)}", name)
    return value


class ModelService:
    """A loaded model and everything the endpoints need: schema, validation, prediction."""

    def __init__(self, model: str | Path | None = None, *, max_items: int = DEFAULT_MAX_ITEMS,
                 max_body_bytes: int = DEFAULT_MAX_BODY, explain_default: bool = False, device: str | None = None):
        from deepqoe.predictor import Predictor

        self.predictor = Predictor.load(model or default_model(), device=device)
        self.model_dir = self.predictor.model_dir
        self.est = self.predictor.model
        self.meta = self.predictor.meta
        self.name = self.predictor.name
        self.task = self.predictor.task
        self.max_items, self.max_body_bytes = int(max_items), int(max_body_bytes)
        self.explain_default = explain_default
        self.is_session = self.predictor.is_session
        card = self.model_dir / "MODEL_CARD.md"
        self.card = card.read_text(encoding="utf-8") if card.is_file() else None
        self.columns = self._columns()
        self.id_column = self._id_column()
        self.started = time.time()
        self.n_requests = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ schema
    def _id_column(self) -> str | None:
        """The id column of the table model's config (``dataset.id``, which ``deepqoe predict`` copies as each
        row's id): a row may give its id under that name as well as ``id``; None when there is none (or it is
        ``id``, or an input)."""
        if self.is_session:
            return None
        col = (self.meta.get("dataset") or {}).get("id")
        return col if isinstance(col, str) and col and col != "id" and col not in self.columns else None

    def _columns(self) -> dict[str, dict]:
        """Input column -> {modality, type, ...} for table models."""
        cols: dict[str, dict] = {}
        if self.is_session:
            return cols
        for cfg, enc in zip(self.est.input_configs_, self.est.encoders_):
            for c in enc.columns:
                d: dict[str, Any] = {"input": cfg.key, "modality": cfg.modality}
                if cfg.modality in ("continuous", "vector"):
                    d["type"] = "number"
                elif cfg.modality == "text":
                    d["type"] = "string"
                elif cfg.modality == "categorical":
                    d["type"] = "string or integer"
                    d["categories"] = list(enc.vocabulary)
                    if cfg.role == "viewer":  # who rates: optional (absent or null: the population prediction)
                        d["optional"] = True
                else:
                    d["type"] = "array"
                    d["channels"] = int(enc.channels)
                    d["max_length"] = int(cfg.sequence_length)
                cols[c] = d
        return cols

    def example_row(self) -> dict:
        row: dict[str, Any] = {}
        for c, d in self.columns.items():
            if d["modality"] == "categorical":
                v = d["categories"][0] if d["categories"] else "unknown"
                row[c] = int(v) if v.lstrip("-").isdigit() else v
            elif d["modality"] == "text":
                row[c] = "News"
            elif d["modality"] == "sequence":
                row[c] = [[0.0] * d["channels"]] * 4 if d["channels"] > 1 else [0.0] * 4
            else:
                enc = next(e for e in self.est.encoders_ if c in e.columns)
                j = enc.columns.index(c)
                v = float(enc.shift[j] + (0.5 * enc.scale[j] if enc.cfg.normalisation == "minmax" else 0.0))
                row[c] = round(v, 3)
        return row

    def example_request(self) -> Any:
        if self.is_session:
            from deepqoe.sessions.frame import example_sessions

            return {"sessions": example_sessions()[2:3]}
        return {"rows": [self.example_row()]}

    def request_schema(self) -> dict:
        if self.is_session:
            from deepqoe.sessions.schema import session_json_schema

            session = session_json_schema(inline=True)
            p1203 = {"type": "object", "required": ["I13"], "description": "an ITU-T P.1203 input JSON (I13, "
                                                                           "I23, IGen), with an optional id",
                     "properties": {"id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                                    "I13": {"type": "object"}, "I23": {"type": "object"}, "IGen": {"type": "object"}}}
            session = {"anyOf": [session, p1203]}
            wrapper = {"type": "object", "required": ["sessions"], "additionalProperties": False,
                       "properties": {"sessions": {"type": "array", "items": session, "maxItems": self.max_items},
                                      "explain": {"type": "boolean"}, "interval": INTERVAL_SCHEMA,
                                      "curve": {"type": "boolean",
                                                "description": "add the per-second QoE curve (default: none)"},
                                      "scale": {"anyOf": [{"type": "string"}, {"type": "null"}],
                                                "examples": ["0-100", "z"], "description": SCALE_DESCRIPTION}}}
            if self.predictor.calibrations:
                wrapper["properties"]["calibration"] = {
                    "type": "string", "enum": self.predictor.calibrations,
                    "description": "score as this training dataset's viewers used the scale, with its own "
                                   "interval (default: the average calibration, the pooled interval)"}
            if self.predictor.distribution is not None:
                wrapper["properties"]["rating_head"] = {
                    "type": "string", "enum": sorted(self.predictor.distribution[0]),
                    "description": "the rating-distribution head to serve (default: the calibration's own, "
                                   "else the model's default)"}
            return {"anyOf": [wrapper, session, {"type": "array", "items": session, "maxItems": self.max_items}]}
        props = {}
        for c, d in self.columns.items():
            if d["modality"] in ("continuous", "vector"):
                props[c] = {"type": "number"}
            elif d["modality"] == "text":
                props[c] = {"type": "string"}
            elif d["modality"] == "categorical":
                props[c] = {"oneOf": [{"type": "string"}, {"type": "integer"}],
                            "description": f"known values: {', '.join(d['categories'][:40])}"}
                if d.get("optional"):  # the viewer: may be absent or null (the population prediction)
                    props[c]["oneOf"].append({"type": "null"})
            else:
                props[c] = {"type": "array", "maxItems": d["max_length"]}
        props["id"] = {"oneOf": [{"type": "string"}, {"type": "integer"}], "description": "optional, echoed back"}
        if self.id_column:  # the config's id column, as deepqoe predict reads it
            props[self.id_column] = {"oneOf": [{"type": "string"}, {"type": "integer"}],
                                     "description": "optional: the row's id under the model's id column (as "
                                                    "'id'), echoed back as 'id'"}
        required = [c for c, d in self.columns.items() if not d.get("optional")]
        row = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
        wrapper = {"type": "object", "required": ["rows"], "additionalProperties": False,
                   "properties": {"rows": {"type": "array", "items": row, "maxItems": self.max_items},
                                  "explain": {"type": "boolean"}, "interval": INTERVAL_SCHEMA}}
        return {"oneOf": [wrapper, row, {"type": "array", "items": row}]}

    def describe(self) -> dict:
        from deepqoe.conformal import calibration_sizes

        m = self.meta
        out = {"name": self.name, "task": self.task, "estimator": m.get("estimator"),
               "kind": "sessions" if self.is_session else "rows",
               "classes": m.get("classes"),
               "scale": (m.get("session_model") or {}).get("scale"),
               "inputs": [] if self.is_session else [{"column": c, **d} for c, d in self.columns.items()],
               "id_column": self.id_column,  # a row's id may come under this name too (None: 'id' only)
               "session_model": m.get("session_model"),
               "explain_groups": list(m.get("explain_groups")
                                      or [c.key for c in getattr(self.est, "input_configs_", [])]),
               "evaluation": m.get("evaluation"), "versions": m.get("versions"),
               "intervals": None if self.predictor.intervals is None else {
                   **{k: self.predictor.intervals.get(k) for k in ("method", "n_calibration", "scale", "source")},
                   "by_calibration": calibration_sizes(self.predictor.intervals)},
               "calibrations": self.predictor.calibrations,
               "distribution": None if getattr(self.predictor, "distribution", None) is None else {
                   "served": self.predictor.distribution[1], "heads": sorted(self.predictor.distribution[0])},
               "limits": {"max_body_bytes": self.max_body_bytes, "max_items": self.max_items},
               "request_schema": self.request_schema(), "example_request": self.example_request(),
               "model_card": self.card}
        return out

    # ------------------------------------------------------------------ validation
    def _items(self, obj: Any, key: str) -> tuple[list, bool | None]:
        explain = None
        if isinstance(obj, dict) and key in obj and key not in self.columns:
            extra = set(obj) - {key, "explain"}
            if extra:
                k = sorted(extra)[0]
                allowed = [key, *(QUERY_PARAMETERS if self.is_session else QUERY_PARAMETERS[:2])]
                raise RequestError(422, f"unknown field '{_short(k)}' next to '{key}' (allowed: "
                                        f"{', '.join(repr(a) for a in allowed)})", k)
            explain = _body_flag(obj.get("explain"), "explain")
            obj = obj[key]
            if not isinstance(obj, list):
                raise RequestError(422, f"'{key}' must be an array, got {_type_name(obj)}", key)
        items = obj if isinstance(obj, list) else [obj]
        if not items:
            raise RequestError(422, f"no {key} given (an empty array)", key)
        if len(items) > self.max_items:
            raise RequestError(413, f"too many {key}: {len(items)} in one request (at most {self.max_items}); "
                                    "split the request", key)
        return items, explain

    def parse_rows(self, obj: Any) -> tuple[pd.DataFrame, list | None, bool | None]:
        """The rows of a request as the model's input table, their ids (None: none has one) and ``explain``
        (None: not in the body); a 422 naming the first bad row and its field otherwise, listing every bad
        row's first error (:attr:`RequestError.errors`)."""
        items, explain = self._items(obj, "rows")
        cols = list(self.columns)
        out: dict[str, list] = {c: [] for c in cols}
        ids: list = []
        bad: list[RequestError] = []
        for r, row in enumerate(items):
            try:
                rid, values = self._read_row(r, row, cols)
            except RequestError as e:
                bad.append(e)
                continue
            if not bad:  # no table to build once a row is bad
                ids.append(rid)
                for c, v in zip(cols, values):
                    out[c].append(v)
        if bad:
            raise every_error(bad)
        df = pd.DataFrame(out, columns=cols)
        return df, (ids if any(i is not None for i in ids) else None), explain

    def _read_row(self, r: int, row: Any, cols: list[str]) -> tuple[Any, list]:
        """(id, the values of ``cols``) of the request's row ``r``; a 422 on its first bad field otherwise."""
        where = f"rows[{r}]"
        if not isinstance(row, dict):
            raise RequestError(422, f"{where}: expected an object with the input columns, got {_type_name(row)}",
                               where)
        ids = ["id"] + ([self.id_column] if self.id_column else [])
        extra = [k for k in row if k not in self.columns and k not in ids]
        if extra:
            close = difflib.get_close_matches(extra[0], cols + ids, n=1)
            hint = (f" (did you mean '{close[0]}'?)" if close else f" (the inputs are: {', '.join(cols)}; the id: "
                                                                    f"{' or '.join(map(repr, ids))})")
            raise RequestError(422, f"{where}: unknown field '{_short(extra[0])}'{hint}", f"{where}.{extra[0]}")
        missing = [c for c in cols if c not in row and not self.columns[c].get("optional")]
        if missing:
            raise RequestError(422, f"{where}: missing field '{missing[0]}'", f"{where}.{missing[0]}")
        rid, named = None, None
        for key in ids:  # 'id', or the model's id column (deepqoe predict's): the same id if both are given
            v = row.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise RequestError(422, f"{where}: '{key}' must be a string or an integer", f"{where}.{key}")
            if named is not None and str(v) != str(rid):
                raise RequestError(422, f"{where}: '{named}' and '{key}' (the model's id column) give different ids "
                                        f"({_short(json.dumps(rid), 40)} and {_short(json.dumps(v), 40)}); give "
                                        "one", f"{where}.{key}")
            if named is None:
                rid, named = v, key
        values = []
        for c in cols:
            optional = self.columns[c].get("optional") and row.get(c) is None  # the unknown viewer
            values.append(None if optional else self._check_value(row[c], self.columns[c], f"{where}.{c}"))
        return rid, values

    @staticmethod
    def _check_value(v: Any, d: dict, field: str) -> Any:
        from deepqoe.features.tabular import MAX_ABS_VALUE, missing_text  # the rules of every table

        mod = d["modality"]
        if mod in ("continuous", "vector"):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise RequestError(422, f"{field}: expected a number, got {_type_name(v)} {json.dumps(v)[:40]}", field)
            try:
                f = float(v)
            except OverflowError:  # a JSON integer of hundreds of digits
                f = math.inf
            if not math.isfinite(f):
                raise RequestError(422, f"{field}: expected a finite number", field)
            if abs(f) > MAX_ABS_VALUE:  # the rule of every table (deepqoe.features.tabular.numeric_matrix)
                raise RequestError(422, f"{field}: the value {f:g} is too large (the limit is {MAX_ABS_VALUE:g} in "
                                        "magnitude); fix or drop it", field)
            return f
        if mod == "text":
            if v is None or (isinstance(v, str) and missing_text(v)):  # the encoder's rule, as a CLI file's empty cell
                raise RequestError(422, f"{field}: a missing text value", field)
            if not isinstance(v, str):
                raise RequestError(422, f"{field}: expected a string, got {_type_name(v)}", field)
            if len(v) > 1000:
                raise RequestError(422, f"{field}: text longer than 1000 characters", field)
            return v
        if mod == "categorical":
            if isinstance(v, float) and math.isfinite(v) and v.is_integer():
                v = int(v)
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise RequestError(422, f"{field}: expected a string or an integer, got {_type_name(v)}", field)
            return str(v)
        # sequence
        if not isinstance(v, list) or not v:
            raise RequestError(422, f"{field}: expected a non-empty array (a per-second series)", field)
        if len(v) > 100_000:
            raise RequestError(422, f"{field}: series too long", field)
        ch = d["channels"]
        for t, step in enumerate(v):
            vals = step if isinstance(step, list) else [step]
            if len(vals) != ch:
                raise RequestError(422, f"{field}[{t}]: expected {ch} value(s) per step, got {len(vals)}", field)
            for x in vals:
                if isinstance(x, bool) or not isinstance(x, (int, float)) or not _finite(x):
                    raise RequestError(422, f"{field}[{t}]: expected finite numbers", field)
        return v

    def parse_sessions(self, obj: Any) -> tuple[list, bool | None]:
        """The sessions of a request and its ``explain`` (None: not in the body); a 422 naming the first
        bad session (``sessions[k] (id 'x')``) and its field otherwise, listing every bad one
        (:attr:`RequestError.errors`)."""
        sessions, explain, _ = self._read_sessions(obj)
        return sessions, explain

    def _read_sessions(self, obj: Any) -> tuple[list, bool | None, list]:
        """(sessions, explain, the sessions as sent): :meth:`parse_sessions`, with what the request sent for
        each session (to name a session that fails later, in the prediction)."""
        from deepqoe.sessions import frame
        from deepqoe.sessions.readers import is_p1203_input
        from deepqoe.sessions.schema import short_value
        from deepqoe.sessions.session import IgnoredMos

        ignored = IgnoredMos()  # the mos plays no part in a prediction: an unusable one is left out, one note

        def parse_sessions(given: Any) -> list:
            return frame.parse_sessions(given, ignore_mos=ignored)

        items, explain = self._items([obj] if is_p1203_input(obj) else obj, "sessions")
        shape: dict[int, RequestError] = {}  # the sessions that are no session object, or a P.1203 input's bad id
        for i, d in enumerate(items):
            where = f"sessions[{i}]"
            if not isinstance(d, dict):
                shape[i] = RequestError(422, f"{where}: expected a session object (or a P.1203 input), got "
                                             f"{_type_name(d)}", where)
                continue
            sid = d.get("id")  # a P.1203 input's id: checked as a session's is (the schema's string or integer)
            if is_p1203_input(d) and "id" in d and (isinstance(sid, bool) or not isinstance(sid, (str, int))
                                                    or not str(sid).strip()):
                shape[i] = RequestError(422, f"{where}: 'id' must be a non-empty string or an integer, got "
                                             f"{_type_name(sid)} {short_value(sid)}", f"{where}.id")
        if shape:  # the first of them is the detail, as it was before the sessions were read
            k = next(iter(shape))
            each = _parse_each(items, parse_sessions, skip=shape)
            raise self._every_session_error(shape[k], k, items, each, shape) from None
        try:
            sessions = parse_sessions(items)
        except (DeepQoEError, *_NOT_A_SESSION) as e:
            each = _parse_each(items, parse_sessions)
            k = _first_bad_session(items, parse_sessions, each)  # the session (sessions[k]) the error is about
            if isinstance(e, DeepQoEError):
                name, msg = _without_session_prefix(e.message, _library_ids(items[k], k))
                fname = e.field
                if fname == "id" and "used twice" in msg and name is not None:  # say which earlier one has it
                    msg += _earlier_with_id(items, k, name, parse_sessions)
            else:
                msg = "not a valid session: " + ("nested too deeply" if isinstance(e, RecursionError)
                                                 else str(e)[:200])
                fname = None
            raise self._every_session_error(session_error(k, items[k], msg, fname), k, items, each, {}) from None
        ignored.note()
        return sessions, explain, items

    @staticmethod
    def _every_session_error(first: RequestError, k: int, items: list, each: list,
                             known: dict[int, RequestError]) -> RequestError:
        """The 422 of a request with bad sessions: ``first`` (about session ``k``: what the request said
        before it listed every bad session), then every other bad session's (:func:`_every_bad_session`)."""
        return every_error([first] + [e for i, e in _every_bad_session(items, each, known) if i != k])

    # ------------------------------------------------------------------ prediction
    @staticmethod
    def _dataset_option(field: str, value: Any, check) -> str | None:
        """A request option that names a training dataset (None: not given), checked by the predictor's
        ``check`` (422 on ``field`` otherwise)."""
        if value is not None and not isinstance(value, str):
            raise RequestError(422, f"'{field}' must be a dataset name (a string) or null, got {_type_name(value)}",
                               field)
        try:
            return check(value)
        except DeepQoEError as e:
            raise RequestError(422, e.message, field) from None

    def calibration(self, value: Any) -> str | None:
        """The ``calibration`` of a request (None: the average one): a training dataset's name (422 otherwise)."""
        return self._dataset_option("calibration", value, self.predictor.check_calibration)

    def rating_head(self, value: Any) -> str | None:
        """The ``rating_head`` of a request (None: the calibration's own, else the default): a dataset the
        session model has a rating-distribution head of (422 otherwise)."""
        if value is not None and not self.is_session:
            raise RequestError(422, "'rating_head' is for session models; this model predicts from table rows",
                               "rating_head")
        return self._dataset_option("rating_head", value, self.predictor.check_rating_head)

    def scale(self, value: Any):
        """The :class:`~deepqoe.sessions.scales.Scale` a session model's request asks its scores on (None: not
        given, the common 1-5 scale), read by the function ``deepqoe predict --scale`` reads its value with
        (:func:`~deepqoe.sessions.scales.requested_scale`); a 422 on ``scale`` otherwise, and for a table
        model."""
        if value is not None and not self.is_session:
            raise RequestError(422, "'scale' is for session models; this model predicts from table rows", "scale")
        if value is not None and not isinstance(value, str):
            raise RequestError(422, f"'scale' must be a rating scale (text such as '0-100' or 'z') or null, got "
                                    f"{_type_name(value)} {_short(json.dumps(value), 40)}", "scale")
        from deepqoe.sessions.scales import requested_scale

        try:
            return requested_scale(value)
        except DeepQoEError as e:
            raise RequestError(422, e.message, "scale") from None

    def interval_level(self, value: Any, given: bool, calibration: str | None = None) -> float | None:
        """The interval level of a request: the model's default when not ``given``; None for null / "none";
        else a level in (0, 1) the model's calibration (``calibration``'s) supports (422 otherwise)."""
        from deepqoe.conformal import parse_level

        if not given:
            return self.predictor.interval_default(calibration)
        if isinstance(value, str):  # the query's text: the spellings of --interval ("0.8", "80%", "none"), null
            try:
                value = None if value.strip().lower() == "null" else parse_level(value)
            except DeepQoEError:
                pass  # the message below names the JSON value
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_LEVEL <= value < 1:
            raise RequestError(422, f"'interval' must be a level from {MIN_LEVEL:g} to 1 (e.g. 0.9) or null, got "
                                    f"{json.dumps(value)[:40]}", "interval")
        try:
            return self.predictor.check_interval(float(value), calibration)
        except DeepQoEError as e:
            raise RequestError(422, e.message, "interval") from None

    def predict_obj(self, obj: Any, explain: bool | None = None, curve: bool = False,
                    interval: str | None = None, calibration: str | None = None,
                    rating_head: str | None = None, scale: str | None = None) -> dict:
        """Validate a parsed JSON request and predict with the :class:`~deepqoe.predictor.Predictor`
        (runs in a worker thread). ``explain``, ``curve``, ``interval``, ``calibration``, ``rating_head``,
        ``scale``: the query's (the body's win). The notes the prediction raised (:class:`DeepQoENote`) are the answer's
        ``"notes"``."""
        _hook_notes()
        token = _REQUEST_NOTES.set([])
        try:
            return self._predict_obj(obj, explain, curve, interval, calibration, rating_head, scale)
        finally:
            _REQUEST_NOTES.reset(token)

    @staticmethod
    def _notes(sessions: list | None = None, items: list | None = None) -> list[str]:
        """The request's notes so far, one line each, once each; a session's note named as the request's
        errors name it (``sessions[0] (id 'x'): stalls[0].start: ...``)."""
        out, index = [], None
        for w in _REQUEST_NOTES.get() or []:
            err = getattr(w, "error", None)  # a session's note carries its error: named as a failure is
            named = isinstance(err, DeepQoEError) and sessions and items
            if named and index is None:
                index = _session_index(sessions)
            out.append(one_line(prediction_failure(err, sessions, items, index).message if named else str(w)))
        return list(dict.fromkeys(out))

    def _predict_obj(self, obj: Any, explain: bool | None, curve: bool, interval: str | None,
                     calibration: str | None, rating_head: str | None, scale: str | None) -> dict:
        with self._lock:
            self.n_requests += 1
        wrapper = "sessions" if self.is_session else "rows"
        wrapped = isinstance(obj, dict) and wrapper in obj and wrapper not in self.columns
        in_body = wrapped and "interval" in obj
        cal_in_body = wrapped and self.is_session and "calibration" in obj
        head_in_body = wrapped and self.is_session and "rating_head" in obj
        scale_in_body = wrapped and "scale" in obj  # a table model's: the 422 below, not "unknown field"
        curve_in_body = wrapped and "curve" in obj  # a table model's too, as ?curve= is
        if in_body or cal_in_body or head_in_body or scale_in_body or curve_in_body:
            obj = dict(obj)
        body_curve = _body_flag(obj.pop("curve"), "curve") if curve_in_body else None
        curve = bool(body_curve if body_curve is not None else curve)  # the body's wins, as explain's does
        if curve and not self.is_session:
            raise RequestError(422, "'curve' is for session models; this model predicts from table rows", "curve")
        target = self.scale(obj.pop("scale") if scale_in_body else scale)
        cal = self.calibration(obj.pop("calibration") if cal_in_body else calibration)
        head = self.rating_head(obj.pop("rating_head") if head_in_body else rating_head)
        level = self.interval_level(obj.pop("interval") if in_body else interval, in_body or interval is not None,
                                    cal)
        if self.is_session:
            sessions, ex, items = self._read_sessions(obj)
        else:
            X, ids, ex = self.parse_rows(obj)
        explain = bool(ex if ex is not None else explain if explain is not None else self.explain_default)
        try:
            if self.is_session:
                preds, failures = self.predictor.predict_sessions(sessions, scale=target, curve=curve,
                                                                  explain=explain, interval=level,
                                                                  calibration=cal, rating_head=head)
                if failures:  # the whole request fails, naming the (first) session that did, listing them all
                    index = _session_index(sessions)
                    raise every_error([prediction_failure(f, sessions, items, index) for f in failures])
            else:
                preds = self.predictor.predict_rows(X, explain=explain, ids=ids, interval=level)
        except DeepQoEError as e:
            if not self.is_session and e.row is not None and 1 <= e.row <= len(X):
                raise every_error([row_error(e)]) from None  # as the request's own check names a bad row
            raise RequestError(422, str(e), e.field or e.column) from None
        out = {"model": self.name, "task": self.task, "n": len(preds), "predictions": preds}
        if self.is_session:
            out["scale"] = target.name  # the scale asked for (the predictions say it too)
        notes = self._notes(sessions, items) if self.is_session else self._notes()
        if notes:
            out["notes"] = notes
        return out

    def warm_up(self) -> None:
        """One prediction at start-up (loads word vectors etc.), so the first request is not slow."""
        try:
            self.predict_obj(self.example_request(), explain=False)
        except RequestError as e:  # pragma: no cover - a model whose example does not fit
            log.warning("warm-up prediction failed: %s", e.message)
        self.n_requests = 0


def docs_page(svc: ModelService) -> str:
    """The ``/docs`` page: the endpoints, an example request and the request schema, with no script and
    nothing loaded from elsewhere (Swagger UI needs a CDN, so it is a blank page offline)."""
    import html

    def pre(obj: Any) -> str:
        return f"<pre>{html.escape(json.dumps(obj, indent=2, ensure_ascii=False))}</pre>"

    kind = "sessions" if svc.is_session else "rows"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>deepqoe: {html.escape(svc.name)}</title><style>body{{font-family:system-ui,sans-serif;"
        "max-width:960px;margin:2em auto;padding:0 1em}pre{background:#f4f4f4;padding:.6em;overflow:auto;"
        "font-size:.85em}code{background:#f4f4f4}</style></head><body>"
        f"<h1>deepqoe: {html.escape(svc.name)}</h1><p>Model task: {html.escape(svc.task)}; input: {kind}.</p>"
        "<h2>Endpoints</h2><ul>"
        f"<li><code>POST /predict</code>: one or many {kind} as JSON; each prediction has <code>score</code>. "
        "Query parameters: <code>explain=true</code> adds each input's contribution; <code>interval=0.8</code> "
        "the prediction interval's level (<code>none</code>: no interval)"
        + ("; <code>curve=true</code> the per-second QoE curve; <code>calibration=DATASET</code> scores as that "
           "training dataset's viewers used the scale; <code>rating_head=DATASET</code> the rating-distribution "
           "head to serve; <code>scale=0-100</code> the MOS scale to report on (<code>lo-hi</code> or "
           "<code>z</code>, as <code>deepqoe predict --scale</code>; scores, intervals, curves and quantiles; "
           "default 1-5)" if svc.is_session else "")
        + f". A value given in the body (next to <code>{kind}</code>) wins over the query's. A bad request gets "
        "400, 413 or 422 with <code>{\"detail\", \"field\"}</code>; a 422 about bad " + kind + " lists every "
        "bad one in <code>errors</code> (<code>[{\"detail\", \"field\"}, ...]</code>, the one <code>detail"
        f"</code> names first; at most {MAX_LISTED_ERRORS}, <code>errors_left_out</code>: how many more).</li>"
        "<li><code>GET /model</code>: input schema, classes or scale, scores, model card</li>"
        "<li><code>GET /health</code>: liveness</li>"
        "<li><code><a href='/openapi.json'>GET /openapi.json</a></code>: the OpenAPI schema (for code "
        "generators and API tools)</li></ul>"
        "<h2>Example</h2><pre>curl -s -X POST http://HOST:PORT/predict -H 'content-type: application/json' "
        "-d @request.json</pre>" + pre(svc.example_request())
        + "<h2>Request schema</h2>" + pre(svc.request_schema()) + "</body></html>")


def create_app(model: str | Path | None = None, *, max_body_bytes: int = DEFAULT_MAX_BODY,
               max_items: int = DEFAULT_MAX_ITEMS, explain_default: bool = False, warm_up: bool = True,
               device: str | None = None):
    """The FastAPI application serving one model (loaded here, once, to predict on ``device``: cpu by
    default, see :mod:`deepqoe.devices`)."""
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from deepqoe import __version__

    svc = ModelService(model, max_items=max_items, max_body_bytes=max_body_bytes, explain_default=explain_default,
                       device=device)
    if warm_up:
        svc.warm_up()
    kind = "sessions" if svc.is_session else "rows"
    app = FastAPI(title=f"deepqoe: {svc.name}", version=__version__, docs_url=None, redoc_url=None,
                  description=f"Predict video QoE with the DeepQoE model **{svc.name}** ({svc.task}, input: "
                              f"{kind}). `GET /model` gives the input schema and the model card.")
    app.state.service = svc

    def one_error(message: str, field: str | None) -> dict:
        body = {"detail": _short(message, 1000)}  # one line, bounded, whatever the request echoed
        if field:
            body["field"] = _short(field, 200)
        return body

    def error(status: int, message: str, field: str | None = None, headers: dict | None = None,
              errors: list[tuple[str, str | None]] | None = None) -> JSONResponse:
        body = one_error(message, field)
        if errors:  # every bad session / row, each as the body says one: at most MAX_LISTED_ERRORS, counted
            body["errors"] = [one_error(m, f) for m, f in errors[:MAX_LISTED_ERRORS]]
            body["errors_left_out"] = max(0, len(errors) - MAX_LISTED_ERRORS)
        return JSONResponse(status_code=status, content=body, headers=headers)

    @app.exception_handler(RequestError)
    async def _request_error(request, exc: RequestError):
        return error(exc.status, exc.message, exc.field, errors=exc.errors)

    @app.exception_handler(DeepQoEError)
    async def _deepqoe_error(request, exc: DeepQoEError):
        return error(422, str(exc), exc.field or exc.column)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        e = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body"))
        return error(422, f"{loc}: {e.get('msg', 'invalid value')}" if loc else e.get("msg", "invalid request"),
                     loc or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), headers=exc.headers)  # 405 keeps its Allow

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):  # pragma: no cover - a bug, not a bad request
        log.exception("unexpected error")
        return error(500, f"internal error ({type(exc).__name__}); the service keeps running")

    async def read_body(request: Request) -> bytes:
        limit = svc.max_body_bytes
        cl = request.headers.get("content-length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                raise RequestError(400, "invalid Content-Length header") from None
            if n > limit:
                raise RequestError(413, f"request body of {n} bytes is over the limit of {limit} bytes; "
                                        "split the request")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"request body is over the limit of {limit} bytes; split the request")
            chunks.append(chunk)
        return b"".join(chunks)

    @app.get("/health", summary="liveness")
    def health() -> dict:
        return {"status": "ok", "model": svc.name, "uptime_s": round(time.time() - svc.started, 1),
                "requests": svc.n_requests}

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(svc))

    @app.get("/model", summary="the model: input schema, classes or scale, scores, model card")
    def model_info() -> dict:
        return svc.describe()

    allowed = QUERY_PARAMETERS if svc.is_session else QUERY_PARAMETERS[:2]

    def unset(v: str | None) -> str | None:  # ?calibration=none / null: the default, as leaving it out
        return None if v is not None and v.strip().lower() in ("none", "null") else v

    @app.post("/predict", summary=f"predict QoE for one or many {kind}", responses=ERROR_RESPONSES,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": svc.request_schema(), "example": svc.example_request()}}}})
    async def predict(request: Request,
                      explain: bool | None = Query(None, description="add each input's contribution"),
                      curve: bool = Query(False, description="session models: add the per-second QoE curve"),
                      interval: str | None = Query(None, description="prediction interval level (0-1) or none / "
                                                                     "null; default 0.9 for a model with "
                                                                     "intervals"),
                      calibration: str | None = Query(None, description="session models: a training dataset whose "
                                                                        "use of the scale (and interval) to predict "
                                                                        "with; default: the average"),
                      rating_head: str | None = Query(None, description="session models: the rating-distribution "
                                                                        "head to serve (default: the calibration's "
                                                                        "own, else the model's default)"),
                      scale: str | None = Query(None, description=SCALE_DESCRIPTION)):
        unknown = [k for k in request.query_params if k not in QUERY_PARAMETERS]
        if unknown:
            raise RequestError(422, f"unknown query parameter '{_short(unknown[0])}' (allowed: "
                                    f"{', '.join(allowed)})", unknown[0])
        obj = parse_json(await read_body(request))
        return await run_in_threadpool(svc.predict_obj, obj, explain, curve, interval, unset(calibration),
                                       unset(rating_head), scale)

    return app


def listen_socket(host: str, port: int):
    """A TCP socket bound to ``host:port`` as uvicorn binds one, or a DeepQoEError saying why not (a port in
    use, an address that is not this machine's)."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as e:
        sock.close()
        raise DeepQoEError(f"cannot listen on {host}:{port}: {getattr(e, 'strerror', None) or e}") from None
    return sock


def run_server(model: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000, *,
               max_body_bytes: int = DEFAULT_MAX_BODY, max_items: int = DEFAULT_MAX_ITEMS,
               explain_default: bool = False, access_log: bool = False, log_level: str = "info",
               device: str | None = None) -> None:
    import torch
    import uvicorn

    torch.set_num_threads(1)  # many small requests: one thread each beats threads fighting for cores
    with listen_socket(host, port) as sock:  # before loading the model: a port in use fails at once
        app = create_app(model, max_body_bytes=max_body_bytes, max_items=max_items,
                         explain_default=explain_default, device=device)
        svc, port = app.state.service, sock.getsockname()[1]
        print(f"deepqoe: serving model '{svc.name}' ({svc.task}, input: {'sessions' if svc.is_session else 'rows'}) "
              f"on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
        config = uvicorn.Config(app, host=host, port=port, access_log=access_log, log_level=log_level,
                                backlog=2048, timeout_keep_alive=30)
        uvicorn.Server(config).run(sockets=[sock])
