"""The session format, defined once: typed models from which everything else is derived.

* :meth:`deepqoe.sessions.Session.from_dict` validates a JSON object with :class:`SessionModel`
  (types, ranges, unknown fields) before the checks that span several fields (segments contiguous,
  stalls in order and inside the media);
* ``deepqoe/schemas/session.schema.json`` is generated from :class:`SessionModel`
  (:func:`write_session_schema`; a test keeps the file equal to :func:`session_json_schema`);
* the prediction service's OpenAPI request schema is :func:`session_json_schema` too.

Numbers are JSON numbers (not text, not booleans, finite); whole numbers may be written ``1080`` or
``1080.0``. Device names are matched ignoring case, with ``-`` and spaces read as ``_``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from typing_extensions import Annotated

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "session.schema.json"
SCHEMA_ID = "https://deepqoe.example/schemas/session.schema.json"

#: Devices the format knows, and the aliases that map onto them (matched ignoring case).
DEVICES = ("pc", "mobile", "tablet", "tv", "unknown")
DEVICE_ALIASES = {
    "pc": "pc", "desktop": "pc", "laptop": "pc", "computer": "pc",
    "mobile": "mobile", "phone": "mobile", "smartphone": "mobile", "handheld": "mobile",
    "tablet": "tablet", "pad": "tablet",
    "tv": "tv", "hdtv": "tv", "uhdtv": "tv", "uhd_tv": "tv", "4k_tv": "tv", "4ktv": "tv", "smarttv": "tv",
    "smart_tv": "tv", "television": "tv",
    "unknown": "unknown",
}
#: device aliases that also say the display's height: the session's ``context.display_height`` when the
#: context does not give one (the quality mapping's upscaling ceiling is relative to it; default 1080)
DEVICE_DISPLAY_HEIGHT = {"uhdtv": 2160, "uhd_tv": 2160, "4k_tv": 2160, "4ktv": 2160, "hdtv": 1080}


def short_value(v: Any) -> str:
    """A value for an error message, never long (a 400-digit integer is not echoed)."""
    if isinstance(v, float):
        return f"{v:g}"
    try:
        text = json.dumps(v) if isinstance(v, (str, list, dict)) else repr(v)
    except (ValueError, TypeError, RecursionError):
        return f"a {type(v).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "text", list: "list",
            dict: "object", type(None): "null"}.get(type(v), type(v).__name__)


def _got(v: Any) -> str:
    """What a value is, for "expected ..., got ..." (``null``, not ``null None``)."""
    return "null" if v is None else f"{_type_name(v)} {short_value(v)}"


def _number(v: Any) -> Any:
    """A JSON number that fits a float (no text, no boolean, no NaN / Infinity)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PydanticCustomError("deepqoe", "expected a number, got {got}", {"got": _got(v)})
    try:
        f = float(v)
    except OverflowError:
        raise PydanticCustomError("deepqoe", "expected a finite number, got an integer too large for a "
                                             "floating-point number") from None
    if not math.isfinite(f):
        raise PydanticCustomError("deepqoe", "expected a finite number, got {got}", {"got": repr(f)})
    return f


def _whole(v: Any) -> Any:
    f = _number(v)
    if f != int(f):
        raise PydanticCustomError("deepqoe", "expected a whole number, got {got}", {"got": repr(f)})
    return int(f)


def _text(v: Any) -> Any:
    if v is not None and not isinstance(v, str):
        raise PydanticCustomError("deepqoe", "expected text, got {got}", {"got": _got(v)})
    return v


def _id(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise PydanticCustomError("deepqoe", "'id' must be text, got {got}", {"got": _type_name(v)})
    if isinstance(v, str) and not v.strip():
        raise PydanticCustomError("deepqoe", "missing 'id' (a non-empty text)")
    return v


def _representation(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    return _number(v)


def number(**bounds) -> Any:
    """A finite JSON number, with bounds (``gt``, ``ge``, ``le``) that show in the JSON schema."""
    return Annotated[float, Field(**bounds), BeforeValidator(_number)]


def whole_number(**bounds) -> Any:
    return Annotated[int, Field(**bounds), BeforeValidator(_whole)]


Number = number()
Text = Annotated[str, BeforeValidator(_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


#: The largest picture side (pixels) a segment's ``width`` / ``height`` may have: 16K video is 15360x8640,
#: so 16384 leaves room for any real picture, while 100000 or 1e9 (a unit or column mix-up) is refused rather
#: than scored (a ``width`` of 1e9 would otherwise lower the score through the quality mapping's bits per pixel).
MAX_PICTURE_SIDE = 16384
#: The highest frame rate (frames/s) a segment's ``fps`` may have.
MAX_FPS = 1000


class SegmentModel(_Strict):
    """One media segment (a chunk of the stream played at one representation)."""

    start: number(ge=0) = Field(description="Media time (s) where the segment starts.")
    duration: number(gt=0) = Field(description="Seconds of media in the segment.")
    bitrate_kbps: number(gt=0) | None = Field(None, description="Bitrate of the segment (kbit/s).")
    width: whole_number(gt=0, le=MAX_PICTURE_SIDE) | None = Field(None, description="Picture width (pixels).")
    height: whole_number(gt=0, le=MAX_PICTURE_SIDE) | None = Field(None, description="Picture height (pixels).")
    fps: number(gt=0, le=MAX_FPS) | None = Field(None, description="Frame rate (frames/s).")
    codec: Text | None = Field(None, description="e.g. h264, hevc, vp9, av1, or the RFC 6381 string a player "
                                                 "logs (avc1.64001f, hvc1.1.6.L93.B0, vp09.00.10.08, "
                                                 "av01.0.04M.08); lower-cased on reading.")
    quality: number(ge=0, le=100) | None = Field(None, description="Per-segment quality on 0-100, e.g. VMAF.")
    representation: Annotated[str | float | None, BeforeValidator(_representation)] = Field(
        None, description="Id of the representation (ladder rung) the segment was played from; a change of "
                          "it is a quality switch even at the same height.")


def _stall_schema(schema: dict) -> None:
    obj = {k: schema.pop(k) for k in list(schema) if k not in ("title", "description")}
    schema["anyOf"] = [obj, {"type": "array", "minItems": 2, "maxItems": 2,
                             "prefixItems": [{"type": "number", "minimum": 0}, {"type": "number", "exclusiveMinimum": 0}],
                             "items": False, "description": "P.1203 style [start, duration]"}]


class StallModel(_Strict):
    """A stall: playback waits ``duration`` seconds at media time ``start`` (0 = initial loading)."""

    model_config = ConfigDict(json_schema_extra=_stall_schema)

    start: number(ge=0) = Field(description="Media time (or wall time, see stall_time_base) of the stall.")
    duration: number(gt=0) = Field(description="Seconds of waiting.")

    @model_validator(mode="before")
    @classmethod
    def _pair(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            if len(v) != 2:
                raise PydanticCustomError("deepqoe", "expected an object {start, duration} or a pair "
                                                     "[start, duration], got {n} values", {"n": len(v)})
            return {"start": v[0], "duration": v[1]}
        if not isinstance(v, dict):
            raise PydanticCustomError("deepqoe", "expected an object {start, duration}, got {got}",
                                      {"got": _type_name(v)})
        return v


class SessionModel(_Strict):
    """One playback session (see docs/sessions.md). A file holds one session, a list of sessions, or
    {"sessions": [...]}. Times are in seconds. Media time = seconds of content played; wall time =
    seconds since the user pressed play (media + stalls)."""

    model_config = ConfigDict(title="deepqoe streaming session")

    schema_: Text | None = Field(None, alias="$schema", description="The schema's address (ignored).")
    id: Annotated[Annotated[str, Field(min_length=1)] | int, BeforeValidator(_id)] = Field(
        description="Unique session id (integers are read as text).")
    segments: list[SegmentModel] = Field(
        min_length=1,
        description="Media segments in playback order, contiguous in media time: the first starts at 0 and each "
                    "starts where the previous one ends (tolerance 0.05 s). Each needs at least one of "
                    "bitrate_kbps, height or quality.")
    stalls: list[StallModel] | None = Field(
        None, description="Stalls (initial loading = a stall at start 0), sorted by start, no two at the same "
                          "media time. A stall up to 1 s after the end of the media is moved to the end "
                          "(with a warning).")
    stall_time_base: Literal["media", "wall"] = Field(
        "media", description="What stalls[].start measures: media time (the P.1203 convention) or wall time. "
                             "Wall times are converted to media time on reading.")
    device: Annotated[str | None, BeforeValidator(_text)] = Field(
        None, json_schema_extra={"enum": sorted(DEVICE_ALIASES) + [None]},
        description="pc, mobile, tablet, tv or unknown (default); aliases: desktop, laptop, computer -> pc; "
                    "phone, smartphone, handheld -> mobile; pad -> tablet; hdtv, uhdtv (also sets "
                    "context.display_height 2160 unless given), smarttv, television -> "
                    "tv. Case is ignored, '-' and ' ' are read as '_'.")
    context: dict[str, Any] | None = Field(
        None, description="Free context. Known keys: display_width, display_height (pixels; display_height is "
                          "the 'best' resolution for time_below_best, default 1080), viewing_distance.")
    content: Text | None = Field(None, description="What was watched, as text (title, genre).")
    quality_per_second: list[number(ge=0, le=100)] | None = Field(
        None, description="Optional per-media-second quality (0-100), one value per second of media.")
    mos: Number | None = Field(None, description="Optional subjective score (for training).")
    mos_scale: Text | None = Field(None, description="Scale of mos: '1-5' (default), '0-100', any 'lo-hi', or "
                                                     "'z' (z-scores).")
    dataset: Text | None = Field(None, description="Name of the dataset the session comes from.")
    extra: dict[str, Any] | None = Field(
        None, description="Extra numeric per-session values; they become feature columns x_<key>.")


#: Every top-level field name of the format (as written in JSON).
TOP_FIELDS = tuple(f.alias or k for k, f in SessionModel.model_fields.items())
SEGMENT_FIELDS = tuple(SegmentModel.model_fields)


def _strip_titles(node: Any, top: bool = True) -> Any:
    if isinstance(node, dict):
        return {k: _strip_titles(v, False) for k, v in node.items() if not (k == "title" and not top
                                                                              and isinstance(v, str))}
    if isinstance(node, list):
        return [_strip_titles(v, False) for v in node]
    return node


def _inline_refs(node: Any, defs: dict) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return _inline_refs(defs[name], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def session_json_schema(*, inline: bool = False) -> dict:
    """The JSON Schema (draft 2020-12) of one session, generated from :class:`SessionModel`.

    ``inline=True`` resolves the ``$defs`` references (for embedding in another document, e.g. OpenAPI)."""
    body = SessionModel.model_json_schema(by_alias=True)
    body = _strip_titles(body)
    if inline:
        defs = body.pop("$defs", {})
        return _inline_refs(body, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **body}


def session_schema_text() -> str:
    return json.dumps(session_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_session_schema(path: str | Path | None = None) -> Path:
    """Write the generated schema to ``deepqoe/schemas/session.schema.json`` (or ``path``)."""
    from deepqoe.io import atomic_write_text

    p = Path(path) if path is not None else SCHEMA_PATH
    atomic_write_text(p, session_schema_text())
    return p


def validation_error(e, *, prefix: str = "") -> tuple[str, str | None]:
    """The first problem of a pydantic ``ValidationError`` as (message, field path), in this package's words."""
    import difflib

    err = e.errors(include_url=False)[0]
    loc = [p for p in err.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-"))]
    # drop union member tags ("str", "int", ...) that pydantic puts in the location
    loc = [p for i, p in enumerate(loc) if isinstance(p, int) or p in _KNOWN_NAMES
           or (i == len(loc) - 1 and err["type"] == "extra_forbidden")]
    field = prefix
    for p in loc:
        field = f"{field}[{p}]" if isinstance(p, int) else (f"{field}.{p}" if field else str(p))
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    last = loc[-1] if loc else None
    if kind == "deepqoe":
        msg = err["msg"]
    elif kind == "missing":
        msg = {"segments": "missing (a list of segments is required)", "id": "missing 'id' (a non-empty text)"
               }.get(last, "missing (a number is required)")
    elif kind == "extra_forbidden":
        names = SEGMENT_FIELDS if len(loc) >= 3 and loc[0] == "segments" else (
            tuple(StallModel.model_fields) if loc and loc[0] == "stalls" else TOP_FIELDS)
        close = difflib.get_close_matches(str(last), names, n=1)
        msg = f"unknown field '{last}'" + (f" (did you mean '{close[0]}'?)" if close else "")
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        if last in ("quality", "quality_per_second") or (len(loc) >= 2 and loc[-2] == "quality_per_second"):
            msg = f"must be within 0-100, e.g. VMAF (got {short_value(value)})"
        else:
            op, bound = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
                         "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}[kind]
            msg = (f"must not be negative (got {short_value(value)})" if kind == "greater_than_equal" and ctx.get(bound) == 0
                   else f"must be {op} {ctx.get(bound, 0):g} (got {short_value(value)})")
    elif kind == "too_short":
        msg = "must be a non-empty list of segments" if last == "segments" else "must not be empty"
    elif kind == "list_type":
        msg = f"must be a list, got {_type_name(value)}"
    elif kind in ("dict_type", "model_type"):
        msg = f"expected an object, got {_type_name(value)}"
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected', '')} (got {short_value(value)})"
    elif kind == "string_too_short":
        msg = "must not be empty"
    else:
        msg = f"{err['msg']} (got {_got(value)})"
    return msg, field or None


_KNOWN_NAMES = set(TOP_FIELDS) | set(SEGMENT_FIELDS) | {"start", "duration"}


if __name__ == "__main__":  # python -m deepqoe.sessions.schema: regenerate the schema file
    print(write_session_schema())
