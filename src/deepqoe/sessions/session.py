"""The streaming-session format: one playback session, validated.

A :class:`Session` is what a streaming service knows about one playback: the media segments played
(in media-time order, without gaps), the stalls (initial loading = a stall at media time 0), the
device, the content, optional per-second quality scores and an optional MOS with its scale. The JSON
form is documented in ``docs/sessions.md`` and ``deepqoe/schemas/session.schema.json``.

Segments are held column-wise (numpy arrays), so feature computation over thousands of sessions is
vectorised; :attr:`Session.segments` gives them back as :class:`Segment` records.

Every problem is a :class:`~deepqoe.errors.DeepQoEError` naming the session and the field, e.g.
``file 'a.json', field 'segments[3].duration': session 'abc': the duration must be > 0 (got 0)``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepqoe.errors import DeepQoEError

#: Devices the format knows; aliases map onto them.
DEVICES = ("pc", "mobile", "tablet", "tv", "unknown")
DEVICE_ALIASES = {
    "pc": "pc", "desktop": "pc", "laptop": "pc", "computer": "pc",
    "mobile": "mobile", "phone": "mobile", "smartphone": "mobile", "handheld": "mobile",
    "tablet": "tablet", "pad": "tablet",
    "tv": "tv", "hdtv": "tv", "uhdtv": "tv", "smarttv": "tv", "smart_tv": "tv", "television": "tv",
    "unknown": "unknown",
}
#: Time bases of stall ``start``: media time (seconds of media played before the stall, the P.1203
#: convention) or wall time (seconds since the user pressed play).
TIME_BASES = ("media", "wall")
#: Tolerance (s) when checking that segments follow each other without gap or overlap.
CONTIGUITY_TOL = 0.05

_SEG_REQUIRED = ("start", "duration")
_SEG_OPTIONAL = ("bitrate_kbps", "width", "height", "fps", "codec", "quality")
_TOP_FIELDS = {"id", "segments", "stalls", "stall_time_base", "device", "context", "content",
               "quality_per_second", "mos", "mos_scale", "dataset", "extra", "$schema"}


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
    ``bitrate_kbps``, ``width``, ``height``, ``fps``, ``quality``; ``codec`` is a list of str/None.
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
                        _nan_to_none(self.fps[i]), self.codec[i], _nan_to_none(self.quality[i]))
                for i in range(self.n_segments)]

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
    def from_dict(cls, d: Any, *, file: str | None = None, index: int | None = None) -> "Session":
        """Validate a JSON object (already parsed) and build the session."""
        return _parse_session(d, file=file, index=index)

    @classmethod
    def from_arrays(cls, id: str, seg_start, seg_duration, *, bitrate_kbps=None, width=None, height=None,
                    fps=None, quality=None, codec=None, stall_start=(), stall_duration=(),
                    stall_time_base: str = "media", device: str = "unknown", context=None, content=None,
                    quality_per_second=None, mos=None, mos_scale=None, dataset=None, extra=None,
                    file: str | None = None) -> "Session":
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


def _num(v, sid, file, fname, *, required=True, integer=False):
    if v is None:
        if required:
            raise _err(sid, "missing (a number is required)", file, fname)
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise _err(sid, f"expected a number, got {v!r}", file, fname) from None
        else:
            raise _err(sid, f"expected a number, got {type(v).__name__} {v!r}", file, fname)
    v = float(v)
    if not math.isfinite(v):
        raise _err(sid, f"expected a finite number, got {v}", file, fname)
    if integer and v != int(v):
        raise _err(sid, f"expected a whole number, got {v}", file, fname)
    return v


def normalise_device(dev: Any, sid: str = "?", file: str | None = None, fname: str = "device") -> str:
    if dev is None:
        return "unknown"
    if not isinstance(dev, str):
        raise _err(sid, f"expected a device name (text), got {dev!r}", file, fname)
    key = dev.strip().lower().replace("-", "_").replace(" ", "_")
    if key in DEVICE_ALIASES:
        return DEVICE_ALIASES[key]
    close = difflib.get_close_matches(key, list(DEVICE_ALIASES), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise _err(sid, f"unknown device {dev!r}{hint}; use one of {', '.join(DEVICES)} "
                    f"(aliases: phone, smartphone, desktop, laptop, hdtv, uhdtv)", file, fname)


def _parse_session(d: Any, *, file=None, index=None) -> Session:
    where = f"#{index}" if index is not None else "?"
    if not isinstance(d, dict):
        raise DeepQoEError(f"session {where}: expected a JSON object, got {type(d).__name__}", file=file)
    sid = d.get("id")
    if sid is None or (isinstance(sid, str) and not sid.strip()):
        raise _err(where, "missing 'id' (a non-empty text)", file, "id")
    if not isinstance(sid, (str, int)):
        raise _err(where, f"'id' must be text, got {type(sid).__name__}", file, "id")
    sid = str(sid)
    unknown = set(d) - _TOP_FIELDS
    if unknown:
        k = sorted(unknown)[0]
        close = difflib.get_close_matches(k, sorted(_TOP_FIELDS), n=1)
        raise _err(sid, f"unknown field '{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""),
                   file, k)
    segs = d.get("segments")
    if segs is None:
        raise _err(sid, "missing (a list of segments is required)", file, "segments")
    if not isinstance(segs, list) or not segs:
        raise _err(sid, "must be a non-empty list of segments", file, "segments")
    n = len(segs)
    start, dur = np.empty(n), np.empty(n)
    br, w, h, fps, q = (np.full(n, np.nan) for _ in range(5))
    codec: list = [None] * n
    for i, s in enumerate(segs):
        f = f"segments[{i}]"
        if not isinstance(s, dict):
            raise _err(sid, f"expected an object, got {type(s).__name__}", file, f)
        for k in s:
            if k not in _SEG_REQUIRED and k not in _SEG_OPTIONAL:
                close = difflib.get_close_matches(k, _SEG_REQUIRED + _SEG_OPTIONAL, n=1)
                raise _err(sid, f"unknown field '{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""),
                           file, f"{f}.{k}")
        start[i] = _num(s.get("start"), sid, file, f"{f}.start")
        dur[i] = _num(s.get("duration"), sid, file, f"{f}.duration")
        br[i] = _num(s.get("bitrate_kbps"), sid, file, f"{f}.bitrate_kbps", required=False)
        w[i] = _num(s.get("width"), sid, file, f"{f}.width", required=False, integer=True)
        h[i] = _num(s.get("height"), sid, file, f"{f}.height", required=False, integer=True)
        fps[i] = _num(s.get("fps"), sid, file, f"{f}.fps", required=False)
        q[i] = _num(s.get("quality"), sid, file, f"{f}.quality", required=False)
        c = s.get("codec")
        if c is not None and not isinstance(c, str):
            raise _err(sid, f"expected text, got {c!r}", file, f"{f}.codec")
        codec[i] = c.lower() if isinstance(c, str) else None
    stalls = d.get("stalls", [])
    if stalls is None:
        stalls = []
    if not isinstance(stalls, list):
        raise _err(sid, "must be a list of {start, duration}", file, "stalls")
    ss, sd = np.empty(len(stalls)), np.empty(len(stalls))
    for i, st in enumerate(stalls):
        f = f"stalls[{i}]"
        if isinstance(st, (list, tuple)) and len(st) == 2:   # P.1203 style [start, duration]
            st = {"start": st[0], "duration": st[1]}
        if not isinstance(st, dict):
            raise _err(sid, "expected an object {start, duration}", file, f)
        ss[i] = _num(st.get("start"), sid, file, f"{f}.start")
        sd[i] = _num(st.get("duration"), sid, file, f"{f}.duration")
    tb = d.get("stall_time_base", "media")
    qps = d.get("quality_per_second")
    if qps is not None:
        if not isinstance(qps, list):
            raise _err(sid, "must be a list of numbers", file, "quality_per_second")
        qps = np.array([_num(v, sid, file, f"quality_per_second[{i}]") for i, v in enumerate(qps)])
    content = d.get("content")
    if content is not None and not isinstance(content, str):
        raise _err(sid, f"expected text, got {content!r}", file, "content")
    context = d.get("context") or {}
    if not isinstance(context, dict):
        raise _err(sid, "must be an object", file, "context")
    extra = d.get("extra") or {}
    if not isinstance(extra, dict):
        raise _err(sid, "must be an object", file, "extra")
    mos = d.get("mos")
    if mos is not None:
        mos = _num(mos, sid, file, "mos")
    s = Session(id=sid, seg_start=start, seg_duration=dur, bitrate_kbps=br, width=w, height=h, fps=fps,
                quality=q, codec=codec, stall_start=ss, stall_duration=sd,
                device=d.get("device", "unknown"), context=context, content=content,
                quality_per_second=qps, mos=mos, mos_scale=d.get("mos_scale"),
                dataset=d.get("dataset"), extra=extra)
    _validate(s, tb, file)
    return s


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _validate(s: Session, time_base: str, file: str | None) -> None:
    """Check a session in place (and convert wall-time stalls to media time)."""
    sid = s.id
    if not sid:
        raise _err("?", "missing 'id' (a non-empty text)", file, "id")
    s.device = normalise_device(s.device, sid, file)
    n = len(s.seg_start)
    if n == 0:
        raise _err(sid, "must be a non-empty list of segments", file, "segments")
    for name in ("seg_duration", "bitrate_kbps", "width", "height", "fps", "quality"):
        if len(getattr(s, name)) != n:
            raise _err(sid, f"{name} has {len(getattr(s, name))} values for {n} segments", file, "segments")
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
    for name, lo, hi in (("bitrate_kbps", 0, None), ("width", 0, None), ("height", 0, None),
                         ("fps", 0, 1000), ("quality", None, None)):
        a = getattr(s, name)
        fin = np.isfinite(a)
        if name == "quality":
            bad = fin & ((a < 0) | (a > 100))
            what = "must be within 0-100 (e.g. VMAF)"
        else:
            bad = fin & ((a <= lo) | ((a > hi) if hi else False))
            what = "must be > 0"
        if bad.any():
            i = _first(bad)
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
        if (ss > end + CONTIGUITY_TOL).any():
            i = _first(ss > end + CONTIGUITY_TOL)
            raise _err(sid, f"stall at media time {ss[i]:g} s is after the end of the media ({end:g} s)", file,
                       f"stalls[{i}].start")
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
