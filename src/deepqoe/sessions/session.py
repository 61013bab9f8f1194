"""The streaming-session format: one playback session, validated.

A :class:`Session` is what a streaming service knows about one playback: the media segments played
(in media-time order, without gaps), the stalls (initial loading = a stall at media time 0), the
device, the content, optional per-second quality scores and an optional MOS with its scale. The JSON
form is defined once, by :class:`deepqoe.sessions.schema.SessionModel` (``docs/sessions.md``; the file
``deepqoe/schemas/session.schema.json`` is generated from it).

Segments are held column-wise (numpy arrays), so feature computation over thousands of sessions is
vectorised; :attr:`Session.segments` gives them back as :class:`Segment` records.

Every problem is a :class:`~deepqoe.errors.DeepQoEError` naming the session and the field, e.g.
``file 'a.json', field 'segments[3].duration': session 'abc': the duration must be > 0 (got 0)``.
"""

from __future__ import annotations

import difflib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pydantic import ValidationError

from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.sessions.schema import (DEVICE_ALIASES, DEVICE_DISPLAY_HEIGHT, DEVICES, MAX_FPS, MAX_PICTURE_SIDE,
                                     SessionModel, short_value, validation_error)

#: Time bases of stall ``start``: media time (seconds of media played before the stall, the P.1203
#: convention) or wall time (seconds since the user pressed play).
TIME_BASES = ("media", "wall")
#: Tolerance (s) when checking that segments follow each other without gap or overlap.
CONTIGUITY_TOL = 0.05
#: A stall up to this many seconds after the end of the media (rounded timestamps) is moved to the end.
STALL_AFTER_END_TOL = 1.0
#: The longest session (wall time: media + stalls) the package reads: 7 days.
MAX_SESSION_SECONDS = 7 * 86400.0
#: ``context.display_height`` must be a number of pixels in this range (16K is 8640).
DISPLAY_HEIGHT_RANGE = (1, MAX_PICTURE_SIDE)
#: Above this many bits per pixel per frame a segment's ``bitrate_kbps`` is noted as implausible (a unit
#: error: bit/s written as kbit/s is 1000x too much). Delivered streams use ~0.02-0.3 bits/pixel/frame (a
#: 1080p30 stream at 5 Mbit/s is 0.08; even 50 Mbit/s is 0.8); intra-only mezzanine codecs (ProRes 4444 XQ,
#: near-lossless intra) reach a few bits; *uncompressed* 8-bit 4:2:0 video is 12 and 8-bit RGB 24. No
#: compressed stream carries more bits than the raw picture, so 24 never flags a real stream, while a 1000x
#: unit error of any rung above 0.024 bits/pixel/frame lands above it (the P.1203 open and Waterloo SQoE-IV
#: segments have 0.017-0.29, 99 % of them above 0.028). The
#: value is still used as given (check-model feeds far larger bitrates on purpose): this only adds a note.
#: Without ``fps`` 30 frames/s is assumed, without ``width`` a 16:9 picture (as the quality proxy does).
MAX_PLAUSIBLE_BITS_PER_PIXEL = 24.0


#: a change made to a session while reading it (a stall just after the end moved to the end)
SessionNote = DeepQoENote


_SEG_OPTIONAL = ("bitrate_kbps", "width", "height", "fps", "codec", "quality", "representation")


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    duration: float
    bitrate_kbps: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    codec: str | None = None
    quality: float | None = None
    representation: str | float | None = None


@dataclass(frozen=True, slots=True)
class Stall:
    start: float
    duration: float


def _nan_to_none(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


@dataclass(eq=False)
class Session:
    """One playback session. Build it with :meth:`from_dict` (validates) or :meth:`from_arrays`.

    Array fields (one entry per segment, NaN = unknown): ``seg_start``, ``seg_duration``,
    ``bitrate_kbps``, ``width``, ``height``, ``fps``, ``quality``; ``codec`` and ``representation`` (the id
    of the ladder rung played) are lists of str/None (``representation`` may hold numbers).
    Stalls: ``stall_start`` (media time, always: wall-time input is converted), ``stall_duration``.
    """

    id: str
    seg_start: np.ndarray
    seg_duration: np.ndarray
    bitrate_kbps: np.ndarray
    width: np.ndarray
    height: np.ndarray
    fps: np.ndarray
    quality: np.ndarray
    codec: list
    stall_start: np.ndarray
    stall_duration: np.ndarray
    device: str = "unknown"
    context: dict = field(default_factory=dict)
    content: str | None = None
    quality_per_second: np.ndarray | None = None
    mos: float | None = None
    mos_scale: str | None = None
    dataset: str | None = None
    extra: dict = field(default_factory=dict)
    representation: list = field(default_factory=list)

    # ------------------------------------------------------------------ views
    @property
    def n_segments(self) -> int:
        return len(self.seg_start)

    @property
    def media_duration(self) -> float:
        return float(self.seg_start[-1] + self.seg_duration[-1]) if self.n_segments else 0.0

    @property
    def stall_total(self) -> float:
        return float(self.stall_duration.sum())

    @property
    def wall_duration(self) -> float:
        return self.media_duration + self.stall_total

    @property
    def segments(self) -> list[Segment]:
        return [Segment(float(self.seg_start[i]), float(self.seg_duration[i]),
                        _nan_to_none(self.bitrate_kbps[i]),
                        None if not np.isfinite(self.width[i]) else int(self.width[i]),
                        None if not np.isfinite(self.height[i]) else int(self.height[i]),
                        _nan_to_none(self.fps[i]), self.codec[i], _nan_to_none(self.quality[i]),
                        self.representation[i] if self.representation else None)
                for i in range(self.n_segments)]

    def switches(self) -> np.ndarray:
        """Which consecutive segments switch representation: a bool array of ``n_segments - 1``.

        The one definition of a switch in the package (the session model and the feature table use it): a
        change of the ``representation`` id (the ladder rung, when the session gives it), height, frame rate
        or codec.
        Measured chunk bitrates are never compared (VBR jitter is not a switch); a change of bitrate rung at
        the same resolution, frame rate and codec is a switch only when ``representation`` says so."""
        if self.n_segments < 2:
            return np.zeros(0, bool)
        rep = list(self.representation) if self.representation else [None] * self.n_segments
        keys = [(rep[i], None if not np.isfinite(self.height[i]) else float(self.height[i]),
                 None if not np.isfinite(self.fps[i]) else float(self.fps[i]), self.codec[i])
                for i in range(self.n_segments)]
        return np.fromiter((a != b for a, b in zip(keys[1:], keys[:-1])), bool, self.n_segments - 1)

    @property
    def stalls(self) -> list[Stall]:
        return [Stall(float(s), float(d)) for s, d in zip(self.stall_start, self.stall_duration)]

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        segs = []
        for s in self.segments:
            d = {"start": round(s.start, 6), "duration": round(s.duration, 6)}
            for k in _SEG_OPTIONAL:
                v = getattr(s, k)
                if v is not None:
                    d[k] = v
            segs.append(d)
        out: dict[str, Any] = {"id": self.id, "segments": segs,
                               "stalls": [{"start": round(s.start, 6), "duration": round(s.duration, 6)}
                                          for s in self.stalls],
                               "stall_time_base": "media", "device": self.device}
        if self.context:
            out["context"] = self.context
        if self.content is not None:
            out["content"] = self.content
        if self.quality_per_second is not None:
            out["quality_per_second"] = [round(float(q), 4) for q in self.quality_per_second]
        if self.mos is not None:
            out["mos"] = float(self.mos)
            out["mos_scale"] = self.mos_scale
        if self.dataset is not None:
            out["dataset"] = self.dataset
        if self.extra:
            out["extra"] = self.extra
        return out

    @classmethod
    def from_dict(cls, d: Any, *, file: str | None = None, index: int | None = None,
                  ignore_mos: "IgnoredMos | None" = None) -> "Session":
        """Validate a JSON object (already parsed) and build the session. ``ignore_mos`` (reading for
        prediction): an unusable ``mos`` / ``mos_scale`` is left out and counted there instead of failing the
        session (:class:`IgnoredMos`)."""
        return _parse_session(d, file=file, index=index, ignore_mos=ignore_mos)

    @classmethod
    def from_arrays(cls, id: str, seg_start, seg_duration, *, bitrate_kbps=None, width=None, height=None,
                    fps=None, quality=None, codec=None, stall_start=(), stall_duration=(),
                    stall_time_base: str = "media", device: str = "unknown", context=None, content=None,
                    quality_per_second=None, mos=None, mos_scale=None, dataset=None, extra=None,
                    representation=None, file: str | None = None) -> "Session":
        """Build from columns (readers use this); validated like :meth:`from_dict`."""
        n = len(seg_start)

        def col(v):
            if v is None:
                return np.full(n, np.nan)
            a = np.asarray(v, dtype=float).reshape(-1)
            return np.full(n, a[0]) if a.size == 1 and n != 1 else a

        s = cls(id=str(id), seg_start=np.asarray(seg_start, float).reshape(-1),
                seg_duration=np.asarray(seg_duration, float).reshape(-1),
                bitrate_kbps=col(bitrate_kbps), width=col(width), height=col(height), fps=col(fps),
                quality=col(quality),
                codec=list(codec) if codec is not None and not isinstance(codec, str)
                else [codec] * n,
                representation=list(representation) if representation is not None
                and not isinstance(representation, (str, int, float)) else [representation] * n,
                stall_start=np.asarray(stall_start, float).reshape(-1),
                stall_duration=np.asarray(stall_duration, float).reshape(-1),
                device=device, context=dict(context or {}), content=content,
                quality_per_second=None if quality_per_second is None
                else np.asarray(quality_per_second, float).reshape(-1),
                mos=None if mos is None else float(mos), mos_scale=mos_scale, dataset=dataset,
                extra=dict(extra or {}))
        _validate(s, stall_time_base, file)
        return s


# ---------------------------------------------------------------------------------------- parsing

def _err(sid, msg, file, fieldname) -> DeepQoEError:
    return DeepQoEError(f"session '{sid}': {msg}", file=file, field=fieldname)


def warn_note(note: DeepQoEError, stacklevel: int = 2) -> None:
    """Say ``note`` (a change made to a session while reading it, or a doubt about a value) as a
    :data:`SessionNote` of its text, carrying the error itself (``.error``: its file, field and session) for a
    caller that names them its own way (the service; a P.1203 input's field names)."""
    warning = SessionNote(str(note))
    warning.error = note
    warnings.warn(warning, stacklevel=stacklevel + 1)


class IgnoredMos:
    """Reading sessions for prediction, which never uses the ``mos``: a session whose ``mos`` / ``mos_scale`` is
    unusable (a ``mos`` that is not a number or lies outside its scale, a scale that does not parse) is scored
    without them instead of failing (training, ``sessions validate`` and ``convert`` refuse it). Give one to
    :meth:`Session.from_dict` (and the readers) for a file, a request or a batch; it counts those sessions and
    keeps the first one's error, and :meth:`note` says them in one note."""

    def __init__(self) -> None:
        self.n, self.first = 0, None

    def add(self, e: DeepQoEError, n: int = 1) -> None:
        self.n, self.first = self.n + n, self.first if self.first is not None else e

    def note(self) -> None:
        """One note for the sessions counted (none when none was)."""
        if self.n:
            e = self.first
            warn_note(DeepQoEError(f"{e.message} — ignored for prediction (prediction does not use the mos; {self.n} "
                                   f"session{'s' if self.n != 1 else ''}; nor are they compared with the scores); "
                                   "give the mos_scale the mos is on to keep it", file=e.file,
                                   field=e.field, column=e.column, row=e.row))


def _device_key(dev: str) -> str:
    """A device name as the alias tables spell it (case ignored, '-' and ' ' read as '_')."""
    return dev.strip().lower().replace("-", "_").replace(" ", "_")


def normalise_device(dev: Any, sid: str = "?", file: str | None = None, fname: str = "device") -> str:
    if dev is None:
        return "unknown"
    if not isinstance(dev, str):
        raise _err(sid, f"expected a device name (text), got {dev!r}", file, fname)
    key = _device_key(dev)
    if key in DEVICE_ALIASES:
        return DEVICE_ALIASES[key]
    close = difflib.get_close_matches(key, list(DEVICE_ALIASES), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise _err(sid, f"unknown device {dev!r}{hint}; use one of {', '.join(DEVICES)} "
                    f"(aliases: phone, smartphone, desktop, laptop, hdtv, uhdtv)", file, fname)


def _parse_session(d: Any, *, file=None, index=None, ignore_mos: IgnoredMos | None = None) -> Session:
    """Check ``d`` against the format (:class:`~deepqoe.sessions.schema.SessionModel`), then build and
    check the session as a whole (:func:`_validate`)."""
    where = f"#{index}" if index is not None else "?"
    if not isinstance(d, dict):
        raise DeepQoEError(f"session {where}: expected a JSON object, got {type(d).__name__}", file=file)
    raw_id = d.get("id")
    sid = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id).strip() \
        else where
    try:
        m = SessionModel.model_validate(d)
    except ValidationError as e:
        msg, fname = validation_error(e)
        if ignore_mos is not None and all((err.get("loc") or ("",))[0] in ("mos", "mos_scale") for err in e.errors()):
            ignore_mos.add(_err(sid, msg, file, fname))  # a mos that is not a number: prediction does without it
            return _parse_session({k: v for k, v in d.items() if k not in ("mos", "mos_scale")}, file=file,
                                  index=index, ignore_mos=ignore_mos)
        raise _err(sid, msg, file, fname) from None
    except RecursionError:
        raise _err(sid, "nested too deeply", file, None) from None
    segs = m.segments
    n = len(segs)

    def col(name):
        return np.fromiter((np.nan if getattr(g, name) is None else getattr(g, name) for g in segs), float, n)

    stalls = m.stalls or []
    context = dict(m.context or {})
    raw_device = d.get("device")
    if isinstance(raw_device, str) and "display_height" not in context:  # "uhdtv": a 2160p display
        height = DEVICE_DISPLAY_HEIGHT.get(_device_key(raw_device))
        if height is not None:
            context["display_height"] = height
    s = Session(id=str(m.id), seg_start=col("start"), seg_duration=col("duration"), bitrate_kbps=col("bitrate_kbps"),
                width=col("width"), height=col("height"), fps=col("fps"), quality=col("quality"),
                codec=[g.codec.lower() if g.codec is not None else None for g in segs],
                representation=[g.representation for g in segs],
                stall_start=np.array([st.start for st in stalls], float),
                stall_duration=np.array([st.duration for st in stalls], float),
                device=m.device, context=context, content=m.content,
                quality_per_second=None if m.quality_per_second is None else np.array(m.quality_per_second, float),
                mos=m.mos, mos_scale=m.mos_scale, dataset=m.dataset, extra=dict(m.extra or {}))
    _validate(s, m.stall_time_base, file, ignore_mos)
    return s


def _representation_id(r: Any, sid: str, file: str | None, i: int) -> str | float | None:
    """A representation id as stored: text, a finite number, or None (also for NaN, from tables)."""
    if r is None or isinstance(r, str):
        return r
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float, np.integer, np.floating)):
        raise _err(sid, f"expected text or a number, got {r!r}", file, f"segments[{i}].representation")
    v = float(r)
    return None if math.isnan(v) else v


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_display_height(context: dict, sid: str, file: str | None) -> None:
    """``context.display_height``: a number of pixels within :data:`DISPLAY_HEIGHT_RANGE` (null: not given)."""
    v = context.get("display_height")
    if v is None:
        context.pop("display_height", None)
        return
    lo, hi = DISPLAY_HEIGHT_RANGE
    number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
    if not (number and lo <= v <= hi):  # NaN fails the comparison too
        raise _err(sid, f"expected the display's height in pixels, a number within {lo}-{hi} (got {short_value(v)})",
                   file, "context.display_height")
    context["display_height"] = v.item() if isinstance(v, np.generic) else v


def bits_per_pixel(s: Session) -> np.ndarray:
    """Each segment's bits per pixel per frame (``bitrate_kbps * 1000 / (width * height * fps)``; NaN without
    a bitrate or a height; 30 frames/s without ``fps``, a 16:9 picture without ``width``)."""
    h = s.height
    w = np.where(np.isfinite(s.width), s.width, h * 16.0 / 9.0)
    f = np.where(np.isfinite(s.fps), s.fps, 30.0)
    with np.errstate(over="ignore", invalid="ignore"):
        return s.bitrate_kbps * 1000.0 / (w * h * f)


def _note_implausible_bitrate(s: Session, file: str | None) -> None:
    """One note (at most, per session) when a segment's bitrate is more bits per pixel per frame than
    uncompressed video (:data:`MAX_PLAUSIBLE_BITS_PER_PIXEL`): likely bit/s given as ``bitrate_kbps``."""
    bpp = bits_per_pixel(s)
    high = bpp > MAX_PLAUSIBLE_BITS_PER_PIXEL  # NaN (unknown) is not high
    if not high.any():
        return
    i, n_high = _first(high), int(high.sum())
    w = s.width[i] if np.isfinite(s.width[i]) else None
    size = f"{w:g}x{s.height[i]:g}" if w is not None else f"{s.height[i]:g}p"
    fps = f"{s.fps[i]:g} frames/s" if np.isfinite(s.fps[i]) else "30 frames/s (assumed)"
    more = f" (and {n_high - 1} more segment(s) of the session)" if n_high > 1 else ""
    note = _err(s.id, f"{s.bitrate_kbps[i]:g} kbit/s at {size}, {fps} is {bpp[i]:.3g} bits per pixel per frame"
                      f"{more}, more than uncompressed video has ({MAX_PLAUSIBLE_BITS_PER_PIXEL:g}): is it in bit/s? "
                      "bitrate_kbps is kilobits per second (the value is used as given)", file,
                f"segments[{i}].bitrate_kbps")
    warn_note(note, stacklevel=5)


def _validate(s: Session, time_base: str, file: str | None, ignore_mos: IgnoredMos | None = None) -> None:
    """Check a session in place (and convert wall-time stalls to media time); ``ignore_mos``: an unusable
    ``mos`` / ``mos_scale`` (checked last) is left out and counted there (:class:`IgnoredMos`)."""
    sid = s.id
    if not sid:
        raise _err("?", "missing 'id' (a non-empty text)", file, "id")
    s.device = normalise_device(s.device, sid, file)
    _check_display_height(s.context, sid, file)
    n = len(s.seg_start)
    if n == 0:
        raise _err(sid, "must be a non-empty list of segments", file, "segments")
    for name in ("seg_duration", "bitrate_kbps", "width", "height", "fps", "quality", "codec", "representation"):
        if len(getattr(s, name)) != n:
            raise _err(sid, f"{name} has {len(getattr(s, name))} values for {n} segments", file, "segments")
    s.representation = [_representation_id(r, sid, file, i) for i, r in enumerate(s.representation)]
    fields = {"seg_start": "start", "seg_duration": "duration"}
    for arr_name, fname in fields.items():
        a = getattr(s, arr_name)
        bad = ~np.isfinite(a)
        if bad.any():
            raise _err(sid, "missing or not a finite number", file, f"segments[{_first(bad)}].{fname}")
    if (s.seg_start < 0).any():
        i = _first(s.seg_start < 0)
        raise _err(sid, f"the start must be >= 0 (got {s.seg_start[i]:g})", file, f"segments[{i}].start")
    if (s.seg_duration <= 0).any():
        i = _first(s.seg_duration <= 0)
        raise _err(sid, f"the duration must be > 0 (got {s.seg_duration[i]:g})", file,
                   f"segments[{i}].duration")
    if abs(s.seg_start[0]) > CONTIGUITY_TOL:
        raise _err(sid, f"the first segment must start at media time 0 (got {s.seg_start[0]:g})", file,
                   "segments[0].start")
    if n > 1:
        expected = s.seg_start[:-1] + s.seg_duration[:-1]
        diff = s.seg_start[1:] - expected
        if (diff < -CONTIGUITY_TOL).any():
            i = _first(diff < -CONTIGUITY_TOL) + 1
            raise _err(sid, f"segments are out of order or overlap: starts at {s.seg_start[i]:g} s but the "
                            f"previous one ends at {expected[i - 1]:g} s", file, f"segments[{i}].start")
        if (diff > CONTIGUITY_TOL).any():
            i = _first(diff > CONTIGUITY_TOL) + 1
            raise _err(sid, f"gap of {diff[i - 1]:g} s before this segment (previous one ends at "
                            f"{expected[i - 1]:g} s); segments must be contiguous (put a stall for waiting "
                            f"time)", file, f"segments[{i}].start")
    # the one place of the segments' ranges for every reader (the JSON schema bounds the same sides and fps)
    for name, hi in (("bitrate_kbps", None), ("width", MAX_PICTURE_SIDE), ("height", MAX_PICTURE_SIDE),
                     ("fps", MAX_FPS), ("quality", None)):
        a = getattr(s, name)
        fin = np.isfinite(a)
        if name == "quality":
            bad = fin & ((a < 0) | (a > 100))
            what = "must be within 0-100 (e.g. VMAF)"
        else:
            bad = fin & ((a <= 0) | ((a > hi) if hi is not None else False))
            what = "must be > 0"
        if bad.any():
            i = _first(bad)
            if hi is not None and a[i] > hi:  # as the format's own check words it (session dicts)
                what = f"must be <= {hi}"
            raise _err(sid, f"{what} (got {a[i]:g})", file, f"segments[{i}].{name}")
    no_info = ~np.isfinite(s.bitrate_kbps) & ~np.isfinite(s.quality) & ~np.isfinite(s.height)
    if no_info.any():
        i = _first(no_info)
        raise _err(sid, "a segment needs at least one of bitrate_kbps, height or quality", file,
                   f"segments[{i}]")
    # stalls
    if time_base not in TIME_BASES:
        raise _err(sid, f"must be one of {', '.join(TIME_BASES)} (got {time_base!r})", file, "stall_time_base")
    ss, sd = s.stall_start, s.stall_duration
    if len(ss) != len(sd):
        raise _err(sid, "stall starts and durations differ in length", file, "stalls")
    if len(ss):
        if (ss < 0).any():
            i = _first(ss < 0)
            raise _err(sid, f"negative stall start ({ss[i]:g} s)", file, f"stalls[{i}].start")
        if (sd <= 0).any():
            i = _first(sd <= 0)
            raise _err(sid, f"a stall duration must be > 0 (got {sd[i]:g})", file, f"stalls[{i}].duration")
        if len(ss) > 1:
            if time_base == "wall":
                ends = ss[:-1] + sd[:-1]
                bad = ss[1:] < ends - 1e-9
                if bad.any():
                    i = _first(bad) + 1
                    raise _err(sid, f"stall overlaps the previous one (starts at {ss[i]:g} s, previous ends "
                                    f"at {ends[i - 1]:g} s) or stalls are out of order", file,
                               f"stalls[{i}].start")
            else:
                bad = ss[1:] <= ss[:-1]
                if bad.any():
                    i = _first(bad) + 1
                    raise _err(sid, f"stalls overlap or are out of order: two stalls at media time "
                                    f"{ss[i - 1]:g} / {ss[i]:g} s (merge stalls at the same media time, sort "
                                    f"by start)", file, f"stalls[{i}].start")
        if time_base == "wall":
            ss = ss - np.concatenate([[0.0], np.cumsum(sd)[:-1]])
            s.stall_start = ss
        end = s.media_duration
        if (ss > end + STALL_AFTER_END_TOL).any():  # times in full (.15g): 41.0000001 is not "41"
            i = _first(ss > end + STALL_AFTER_END_TOL)
            raise _err(sid, f"stall at media time {ss[i]:.15g} s is more than {STALL_AFTER_END_TOL:g} s after the "
                            f"end of the media ({end:.15g} s)", file, f"stalls[{i}].start")
        late = ss > end
        if late.any():
            i, n_late = _first(late), int(late.sum())
            what = (f"the stall at media time {ss[i]:.15g} s is" if n_late == 1 else
                    f"{n_late} stalls (media times {', '.join(f'{x:.15g}' for x in ss[late])} s) are")
            ss, sd = np.minimum(ss, end), sd.copy()
            merged = ""
            if (ss == end).sum() > 1:  # several stalls now at the end: one stall
                keep = np.ones(len(ss), bool)
                at_end = np.flatnonzero(ss == end)
                sd[at_end[0]] = sd[at_end].sum()
                keep[at_end[1:]] = False
                ss, sd = ss[keep], sd[keep]
                merged = f" (the {len(at_end)} stalls now at the end are merged into one)"
            note = _err(sid, f"{what} after the end of the media ({end:.15g} s); moved to the end{merged}", file,
                        f"stalls[{i}].start")
            warn_note(note, stacklevel=4)
            s.stall_start, s.stall_duration = ss, sd
    total = s.media_duration + float(s.stall_duration.sum())
    if not total <= MAX_SESSION_SECONDS:
        longest = int(np.argmax(s.stall_duration)) if len(s.stall_duration) else None
        fname = (f"stalls[{longest}].duration" if longest is not None
                 and s.stall_duration[longest] > s.media_duration else "segments")
        raise _err(sid, f"the session lasts {total:.6g} s (media + stalls); sessions up to "
                        f"{MAX_SESSION_SECONDS:.0f} s (7 days) are supported", file, fname)
    if s.quality_per_second is not None:
        q = s.quality_per_second
        if q.size == 0:
            s.quality_per_second = None
        else:
            if ((q < 0) | (q > 100)).any():
                i = _first((q < 0) | (q > 100))
                raise _err(sid, f"must be within 0-100 (got {q[i]:g})", file, f"quality_per_second[{i}]")
            dur = s.media_duration
            if not (math.floor(dur) - 1 <= q.size <= math.ceil(dur) + 1):
                raise _err(sid, f"has {q.size} values for {dur:g} s of media (one per media second expected)",
                           file, "quality_per_second")
    _note_implausible_bitrate(s, file)
    try:
        _check_mos(s, file)
    except DeepQoEError as e:
        if ignore_mos is None:
            raise
        s.mos = s.mos_scale = None  # prediction does not use them
        ignore_mos.add(e)


def _check_mos(s: Session, file: str | None) -> None:
    """The session's ``mos`` within its ``mos_scale`` (1-5 by default), the scale a scale (named as parsed)."""
    sid = s.id
    if s.mos is not None:
        from deepqoe.sessions.scales import parse_scale
        try:
            sc = parse_scale(s.mos_scale if s.mos_scale is not None else "1-5")
        except DeepQoEError as e:
            raise _err(sid, e.message, file, "mos_scale") from None
        s.mos_scale = sc.name
        if sc.kind == "range" and not (sc.lo - 1e-9 <= s.mos <= sc.hi + 1e-9):
            raise _err(sid, f"{s.mos:g} is outside the scale {sc.name}", file, "mos")
    elif s.mos_scale is not None:
        from deepqoe.sessions.scales import parse_scale
        try:
            s.mos_scale = parse_scale(s.mos_scale).name
        except DeepQoEError as e:
            raise _err(sid, e.message, file, "mos_scale") from None
