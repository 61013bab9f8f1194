"""Decoding videos with PyAV: probing, and fast frame sampling.

Speed matters here, so:

* the decoder runs with threads (``thread_type = "AUTO"``: frame and slice threading);
* with a sampling rate, whole groups of pictures (GOP: a key frame up to the next one) that hold no
  sampled frame are never sent to the decoder (demuxing is cheap, decoding is not), and inside the
  other GOPs the frames that will not be sampled are sent with ``skip_frame = NONREF``: the decoder
  drops them unless other frames refer to them (typically half the frames of H.264/HEVC with B-frames);
* only the sampled frames are converted (scaled and turned into RGB or luma arrays, by libswscale).

Frames come out as they are shown: the frames of a video with a display rotation (phone videos: a display
matrix, the old ``rotate`` tag) are turned upright by quarter turns before they are converted, by the filters
FFmpeg's autorotation uses (:func:`frame_orientation`, :func:`upright_graph`), so every extractor that reads
frames through :class:`FrameSampler` (``siti``, ``niqe``, ``cnn-frames``, ``c3d``) sees a portrait phone clip in
portrait, exactly as a copy with the rotation applied to its pixels. A mirrored display matrix (a flip, alone or
with a turn: front cameras, ``ffmpeg -display_hflip``) is undone as FFmpeg undoes it too (``hflip``, ``vflip``,
or a transpose of the other direction: :func:`upright_filters`). Frames shown as stored are untouched.

A frame is *sampled* at rate ``fps`` when it is the first frame at or after one of the times
``0, 1/fps, 2/fps, ...`` (seconds from the start of the stream), so the choice does not depend on
whether GOPs are skipped. Every problem with a file is a :class:`VideoError` (a DeepQoEError), which the
extraction records in its error table.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from deepqoe.errors import DeepQoEError

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".flv",
                    ".wmv", ".mpg", ".mpeg", ".3gp", ".y4m", ".ivf", ".h264", ".264", ".h265", ".265",
                    ".hevc", ".obu", ".ogv")


class VideoError(DeepQoEError):
    """A video that cannot be read or used (corrupt, truncated, empty, not a video, too short)."""


@dataclass
class VideoInfo:
    codec: str
    width: int
    height: int
    fps: float
    duration: float          # seconds (nan when unknown)
    bitrate: float           # bits/s of the video stream (container rate when the stream has none)
    frames: int              # frame count from the container (0 when unknown)
    pix_fmt: str
    file_size: int

    def as_dict(self) -> dict:
        return asdict(self)


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a video file (without opening it), or None when it may be one.

    A folder (even one named ``x.mp4``), a broken symbolic link, a pipe, device or socket (opening a
    pipe would block), an unreadable or an empty file.
    """
    p = Path(path)
    if p.is_symlink() and not p.exists():
        return f"broken symbolic link (its target '{os.readlink(p)}' does not exist)"
    if not p.exists():
        return "file not found"
    if p.is_dir():
        return "is a folder, not a video file"
    if not p.is_file():
        return "not a regular file (a pipe, socket or device)"
    if not os.access(p, os.R_OK):
        return "cannot read the file (permission denied)"
    if p.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    return None


def _check_file(path: str | os.PathLike) -> Path:
    problem = file_problem(path)
    if problem is not None:
        raise VideoError(problem, file=str(path))
    return Path(path)


#: a file is truncated when the frames (or, when the container gives no frame count, the seconds) that
#: can be demuxed fall short of the container's declaration by more than this fraction
TRUNCATION_TOLERANCE = 0.1


def _declared(container, stream) -> tuple[int, float]:
    """The frame count (0: unknown) and duration in seconds (nan: unknown) the container declares."""
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = float("nan")
    return int(stream.frames or 0), duration


def truncation_problem(declared_frames: int, declared_duration: float, packets: int,
                       covered: float) -> str | None:
    """A one-line reason when a video holds far less than its container declares, else None.

    ``packets``: frames demuxed; ``covered``: seconds from the first to the end of the last demuxed
    frame. The frame count is used when the container has one (MP4, MOV, AVI), else the duration
    (Matroska, WebM); the tolerance is 10 % (and half a second of duration), so edit lists, audio
    longer than the video and rounding do not count as truncation.
    """
    if declared_frames > 0:
        if packets < (1 - TRUNCATION_TOLERANCE) * declared_frames:
            return (f"truncated or damaged: the file holds {packets} of the {declared_frames} frames its "
                    "container declares")
        return None
    if math.isfinite(declared_duration) and declared_duration > 0:
        if declared_duration - covered > max(TRUNCATION_TOLERANCE * declared_duration, 0.5):
            return (f"truncated or damaged: the file holds {max(covered, 0.0):.1f} s of the "
                    f"{declared_duration:.1f} s its container declares")
    return None


def check_complete(path: str | os.PathLike) -> tuple[int, int, float]:
    """Raise :class:`VideoError` when the file holds far fewer frames than its container declares; else
    return what was demuxed of the video stream: ``(packets, bytes, seconds covered by their time stamps)``.

    A truncated download or copy whose index is at the start (a "faststart" MP4, Matroska, WebM, AVI)
    still opens and decodes up to where it was cut. This reads every packet of the video stream
    (demuxing, no decoding) and compares with the declaration (:func:`truncation_problem`), as
    :class:`FrameSampler` does after decoding.
    """
    import av

    container, stream = open_video(path)
    try:
        extent = _Extent(container, stream)
        try:
            for packet in container.demux(stream):
                if not (packet.size == 0 and packet.pts is None):  # not the demuxer's end marker
                    extent.add(packet)
        except av.error.FFmpegError:
            pass  # a cut or damaged file: judged by what could be read, as when decoding
    finally:
        container.close()
    extent.check(path)
    return extent.packets, extent.bytes, extent.covered


class _Extent:
    """What the container declares, and how many frames (and seconds) were demuxed."""

    def __init__(self, container, stream):
        self.frames, self.duration = _declared(container, stream)
        self.tb = stream.time_base or Fraction(1, 90000)
        self.packets, self.bytes, self.first, self.last = 0, 0, None, None

    def add(self, packet) -> None:
        self.packets += 1
        self.bytes += int(packet.size or 0)
        if packet.pts is not None:
            self.first = packet.pts if self.first is None else min(self.first, packet.pts)
            end = packet.pts + (packet.duration or 0)
            self.last = end if self.last is None else max(self.last, end)

    @property
    def covered(self) -> float:
        """Seconds from the first packet's time stamp to the end of the last one."""
        return float((self.last - self.first) * self.tb) if self.first is not None else 0.0

    def check(self, path) -> None:
        problem = truncation_problem(self.frames, self.duration, self.packets, self.covered)
        if problem is not None:
            raise VideoError(problem, file=str(path))


def open_video(path: str | os.PathLike, threads: int = 0):
    """Open a file and its first video stream; returns ``(container, stream)``."""
    import av

    p = _check_file(path)
    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as e:
        hint = ("; it has media data but no index (no 'moov' box): an MP4 / MOV whose end was never written, "
                "e.g. a cut download or a recording that was not finished" if _mp4_without_index(p) else "")
        raise VideoError(f"not a readable video ({_av_message(e)}){hint}", file=str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise VideoError(f"cannot open: {e}", file=str(p)) from None
    if not container.streams.video:
        container.close()
        raise VideoError("has no video stream", file=str(p))
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise VideoError("video codec not supported by this build of FFmpeg", file=str(p))
    stream.thread_type = "AUTO"
    stream.thread_count = threads
    return container, stream


def _mp4_without_index(path: Path) -> bool:
    """Whether ``path`` is an ISO media file (MP4, MOV, ...) with media data (``mdat``) but no index
    (``moov``): its top-level boxes are walked (sizes and types only, nothing else is read)."""
    import struct

    try:
        size = path.stat().st_size
        seen, pos = set(), 0
        with open(path, "rb") as f:
            for _ in range(10_000):
                if pos + 8 > size:
                    break
                f.seek(pos)
                n, kind = struct.unpack(">I4s", f.read(8))
                if n == 1:  # a 64-bit size follows
                    n = struct.unpack(">Q", f.read(8))[0]
                elif n == 0:  # to the end of the file
                    n = size - pos
                if n < 8 or not kind.isalnum() and kind not in (b"ftyp", b"free", b"skip", b"mdat", b"moov"):
                    return False  # not an ISO media file's boxes
                seen.add(kind)
                pos += n
        return b"ftyp" in seen and b"mdat" in seen and b"moov" not in seen
    except (OSError, struct.error):
        return False


def _av_message(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).split(": '", 1)[0].strip()


_CODEC_NAMES = {"libdav1d": "av1", "libaom-av1": "av1", "av1_cuvid": "av1", "libvpx-vp9": "vp9",
                "libvpx": "vp8", "libopenh264": "h264", "h264_cuvid": "h264", "hevc_cuvid": "hevc"}


def codec_name(stream) -> str:
    """The format's name (h264, hevc, vp9, av1), not the decoder library's (libdav1d)."""
    name = stream.codec_context.name
    return _CODEC_NAMES.get(name, name)


MAX_FPS = 100_000.0  # high-speed cameras record thousands of frames a second


def _rate(stream) -> float:
    """The frame rate: the average rate (frames over duration) when the container gives one, else FFmpeg's
    base or guessed rate below 1000 (a rate of 1000 or more there is usually the 1-ms time base of
    Matroska / WebM, not a frame rate). NaN when unknown."""
    avg = stream.average_rate
    if avg:
        f = float(avg)
        if 0 < f <= MAX_FPS:
            return f
    for r in (stream.base_rate, getattr(stream, "guessed_rate", None)):
        if r:
            f = float(r)
            if 0 < f < 1000:
                return f
    return float("nan")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Container and stream metadata, without decoding."""
    p = _check_file(path)
    container, stream = open_video(p)
    try:
        cc = stream.codec_context
        width, height = int(cc.width or stream.width or 0), int(cc.height or stream.height or 0)
        if width <= 0 or height <= 0:
            raise VideoError("the video stream has no picture size (corrupt header?)", file=str(p))
        fps = _rate(stream)
        _, duration = _declared(container, stream)
        if not math.isfinite(duration) and stream.frames and math.isfinite(fps):
            duration = stream.frames / fps
        size = p.stat().st_size
        bitrate = float(stream.bit_rate or cc.bit_rate or container.bit_rate or 0) or (
            size * 8 / duration if duration and math.isfinite(duration) and duration > 0 else float("nan"))
        return VideoInfo(codec=codec_name(stream), width=width, height=height, fps=fps, duration=duration,
                         bitrate=bitrate, frames=int(stream.frames or 0), pix_fmt=str(cc.format.name
                                                                                       if cc.format else ""),
                         file_size=size)
    finally:
        container.close()


@dataclass
class DecodeStats:
    decoded: int = 0         # frames that came out of the decoder
    sampled: int = 0         # frames returned to the caller
    errors: int = 0          # packets the decoder rejected
    skipped_gops: int = 0    # GOPs never decoded
    packets: int = 0         # frames of the stream covered (demuxed), decoded or not
    skipped_nonref: int = 0  # packets sent with "skip if not a reference frame"


# ---------------------------------------------------------------------------------- display rotation
def _matrix(data: bytes) -> np.ndarray | None:
    """A display matrix (9 32-bit fixed-point numbers, FFmpeg's ``int32_t[9]``) as 9 integers; None when
    the side data is too short to be one."""
    raw = bytes(data)[:36]
    if len(raw) < 36:
        return None
    return np.frombuffer(raw, dtype=np.int32).astype(np.int64)


def _matrix_rotation(data: bytes) -> float:
    """The rotation (degrees) of a display matrix (9 32-bit fixed-point numbers), as FFmpeg's
    ``av_display_rotation_get`` computes it; NaN for a degenerate matrix."""
    m = _matrix(data)
    if m is None:
        return float("nan")
    m = m.astype(np.float64) / 65536.0
    sx, sy = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if sx == 0 or sy == 0:
        return float("nan")
    return -math.degrees(math.atan2(m[1] / sy, m[0] / sx))


def side_data_items(frame) -> list:
    """The side data of a decoded PyAV frame as a list of side-data objects (each with its ``type``): PyAV 18
    gives a mapping of type -> side data, earlier versions a sequence of them; [] when it has none."""
    side = getattr(frame, "side_data", None)
    if side is None:
        return []
    return list(side.values()) if hasattr(side, "values") else list(side)


def _side_matrix(frame) -> np.ndarray | None:
    """The display matrix of a decoded PyAV frame (its ``DISPLAYMATRIX`` side data), None when it has none."""
    try:
        for sd in side_data_items(frame):
            if "DISPLAYMATRIX" in str(getattr(sd, "type", "")).upper():
                return _matrix(bytes(sd))
    except (TypeError, ValueError, AttributeError):
        pass
    return None


def _frame_rotation(frame) -> float:
    """The display rotation (degrees) of a decoded PyAV frame: ``frame.rotation`` (PyAV 14 and later), else
    its display-matrix side data; 0 when it has none."""
    r = getattr(frame, "rotation", None)
    if r is not None:
        return float(r)
    m = _side_matrix(frame)
    return _matrix_rotation(m.astype(np.int32).tobytes()) if m is not None else 0.0


def quarter_turns(theta: float) -> int:
    """``theta`` (degrees) as FFmpeg's autorotation applies it: 0, 90, 180 or 270 when it is within 1 degree
    of one of them, else 0 (FFmpeg turns frames by quarter turns only; it warns about other angles)."""
    if not math.isfinite(theta):
        return 0
    theta = theta % 360.0
    for a in (0, 90, 180, 270, 360):
        if abs(theta - a) < 1.0:
            return a % 360
    return 0


def _is_quarter(theta: float) -> bool:
    """Whether ``theta`` (degrees) is within 1 degree of a quarter turn (0 included)."""
    return math.isfinite(theta) and min(abs(theta % 360.0 - a) for a in (0, 90, 180, 270, 360)) < 1.0


def is_mirrored(matrix) -> bool:
    """Whether a display matrix (9 integers, or its bytes) mirrors the picture: a flip, alone or with a
    turn (its determinant is negative: ``ffmpeg -display_hflip`` / ``-display_vflip``, some front cameras)."""
    m = _matrix(matrix) if isinstance(matrix, (bytes, bytearray, memoryview)) else np.asarray(matrix)
    return m is not None and int(m[0]) * int(m[4]) - int(m[1]) * int(m[3]) < 0


def upright_filters(turn: int, matrix=None) -> tuple[tuple[str, str | None], ...]:
    """The filters FFmpeg's autorotation (fftools, FFmpeg 6.1 and later) inserts for a frame whose display
    rotation is ``turn`` (0, 90, 180, 270 degrees, counter-clockwise: :func:`quarter_turns`) and whose display
    matrix is ``matrix`` (9 integers; None: a pure rotation). A mirrored matrix (:func:`is_mirrored`) adds its
    flip as FFmpeg does: the transpose of the other direction for 90 and 270 degrees, ``hflip`` or ``vflip``
    alone for 180 and 0 degrees. Empty: the frame is shown as stored."""
    m = None if matrix is None else np.asarray(matrix)
    if m is None or m.size < 9:  # a rotation without its matrix (the old PyAV, the rotate tag): no flip
        return UPRIGHT_FILTERS.get(turn, ())
    # fftools' ``theta`` is the clockwise angle: 360 - turn
    if turn == 90:     # theta 270
        return (("transpose", "clock_flip" if m[3] < 0 else "cclock"),)
    if turn == 270:    # theta 90
        return (("transpose", "cclock_flip" if m[3] > 0 else "clock"),)
    if turn == 180:
        return tuple(f for f, flip in ((("hflip", None), m[0] < 0), (("vflip", None), m[4] < 0)) if flip)
    return (("vflip", None),) if m[4] < 0 else ()


def frame_orientation(frame) -> tuple[int, tuple[tuple[str, str | None], ...]]:
    """``(turn, filters)`` of a decoded PyAV frame: its display rotation as FFmpeg's autorotation applies it
    (:func:`frame_turn`) and the filters that show it upright and unmirrored (:func:`upright_filters`; empty
    for a frame shown as stored). A rotation that is not a quarter turn is not applied (as before)."""
    theta = _frame_rotation(frame)
    if not _is_quarter(theta):
        return 0, ()
    turn = quarter_turns(theta)
    return turn, upright_filters(turn, _side_matrix(frame))


def display_orientation(path) -> tuple[int, bool]:
    """``(rotation, mirrored)`` of the video ``path``, read from its first frame: how many degrees (0, 90,
    180, 270) FFmpeg turns its frames as it decodes them (its display matrix, or the ``DISPLAYMATRIX`` stream
    side data of older PyAV), as FFmpeg reports it (``av_display_rotation_get``), and whether the display
    matrix mirrors the picture too (:func:`is_mirrored`; older PyAV, which gives the angle only: False)."""
    import av

    container, stream = open_video(path)
    try:
        side = getattr(stream, "side_data", None)  # PyAV before 14: {"DISPLAYMATRIX": degrees}
        if isinstance(side, dict) and "DISPLAYMATRIX" in side:
            return quarter_turns(float(side["DISPLAYMATRIX"])), False
        try:
            for frame in container.decode(stream):
                theta = _frame_rotation(frame)
                m = _side_matrix(frame) if _is_quarter(theta) else None
                return quarter_turns(theta), m is not None and is_mirrored(m)
        except (av.error.FFmpegError, ValueError):
            pass  # a first frame that does not decode: FFmpeg says what is wrong with the file
        return 0, False
    finally:
        container.close()


def rotation(path) -> int:
    """How many degrees (0, 90, 180, 270) FFmpeg turns the frames of the video ``path`` as it decodes them
    (its display matrix, or the ``DISPLAYMATRIX`` stream side data of older PyAV), read from its first frame.
    For a mirrored display matrix this is the angle FFmpeg reports (a flip left to right alone is 180 degrees
    and mirrored): :func:`display_orientation` tells the flip too."""
    return display_orientation(path)[0]


def shown_size(path) -> tuple[int, int, int, int, int]:
    """``(width, height, stored_width, stored_height, rotation)`` of the video ``path``: the size of its frames
    as FFmpeg decodes them (turned upright: width and height swap for a rotation of 90 or 270 degrees, mirrored
    or not), the size they are stored at, and the rotation (:func:`rotation`)."""
    info = probe(path)
    turn = rotation(path)
    w, h = (info.height, info.width) if turn in (90, 270) else (info.width, info.height)
    return w, h, info.width, info.height, turn


def frame_turn(frame) -> int:
    """How many degrees (0, 90, 180, 270, counter-clockwise) a decoded PyAV frame is turned to be shown
    upright: its display rotation as FFmpeg's autorotation applies it (:func:`rotation` reads the same for a
    whole file, from its first frame). A mirrored frame is flipped too: :func:`frame_orientation`."""
    return quarter_turns(_frame_rotation(frame))


#: the filters FFmpeg's autorotation inserts to turn frames upright, by rotation (:func:`frame_turn`), for a
#: display matrix that does not mirror the picture (:func:`upright_filters` gives those of any matrix)
UPRIGHT_FILTERS = {90: (("transpose", "cclock"),), 180: (("hflip", None), ("vflip", None)),
                   270: (("transpose", "clock"),)}

#: each filter of :func:`upright_filters` on an array (rows x columns [x channels]), for frames the filters
#: cannot turn in their own pixel format: scaled and converted first, then turned and flipped
_ARRAY_FILTERS = {
    ("transpose", "cclock"): lambda a: np.rot90(a, 1),
    ("transpose", "clock"): lambda a: np.rot90(a, -1),
    ("transpose", "cclock_flip"): lambda a: a.swapaxes(0, 1),
    ("transpose", "clock_flip"): lambda a: a[::-1, ::-1].swapaxes(0, 1),
    ("hflip", None): lambda a: a[:, ::-1],
    ("vflip", None): lambda a: a[::-1],
}


def _swaps(filters) -> bool:
    """Whether ``filters`` swap the width and the height (a transpose)."""
    return any(name == "transpose" for name, _arg in filters)


def upright_graph(frame, filters):
    """A PyAV filter graph that shows frames like ``frame`` (size, pixel format) upright: ``filters`` are
    FFmpeg's own (:func:`upright_filters`), or a rotation in degrees (:data:`UPRIGHT_FILTERS`):
    ``graph.push(frame); graph.pull()``."""
    import av

    chain = UPRIGHT_FILTERS[filters] if isinstance(filters, int) else tuple(filters)
    graph = av.filter.Graph()
    last = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                            time_base=frame.time_base or Fraction(1, 90000))
    for name, arg in chain:
        f = graph.add(name, arg) if arg else graph.add(name)
        last.link_to(f)
        last = f
    sink = graph.add("buffersink")
    last.link_to(sink)
    graph.configure()
    return graph


class FrameSampler:
    """Iterate over (sampled) frames of a video as numpy arrays, turned upright as they are shown.

    ``fps``: sampling rate in frames/s (``None`` or ``0``: every frame). ``size``: ``(width, height)``
    to scale to, as shown (``None``: full size). ``fmt``: ``"rgb24"`` (H x W x 3 uint8) or ``"gray"`` (H x W
    uint8 luma). ``with_previous``: also return the frame just before each sampled one (for temporal
    differences; these are decoded too). ``max_frames``: stop after so many sampled frames.
    ``select``: a function ``index -> bool`` on decoded frame indices, instead of ``fps``.
    ``autorotate``: turn the frames of a video with a display rotation upright, and unmirror those of a
    mirrored display matrix (:func:`frame_orientation`), as FFmpeg's ``-autorotate`` does (the default);
    ``False``: frames as stored.

    After iterating, ``stats`` tells how many frames were decoded and sampled. A file that holds far
    fewer frames than its container declares (cut short) raises :class:`VideoError` once every frame
    it has was yielded (:func:`truncation_problem`); stopping early (``max_frames``) skips that check.
    """

    def __init__(self, path, fps: float | None = None, size: tuple[int, int] | None = None,
                 fmt: str = "rgb24", with_previous: bool = False, max_frames: int | None = None,
                 threads: int = 0, select=None, interpolation: str = "BILINEAR", autorotate: bool = True):
        self.path = str(path)
        self.fps = float(fps) if fps else None
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise DeepQoEError(f"the sampling rate must be a finite number above 0, got {fps}", field="fps")
        self.size = size
        self.fmt = fmt
        self.with_previous = with_previous
        self.max_frames = max_frames
        self.threads = threads
        self.select = select
        self.interpolation = interpolation
        self.autorotate = bool(autorotate)
        self._graph, self._graph_key = None, None
        self.stats = DecodeStats()

    # -- conversion -------------------------------------------------------------------------------
    def _upright(self, frame, filters):
        """``frame`` turned upright (and unmirrored) by FFmpeg's filters (:func:`upright_graph`, one graph per
        filter chain, size and pixel format), or None when they cannot turn it in its own pixel format (4:2:2
        chroma, which a transpose would convert first) or refuse it: a graph that failed is not tried again for
        frames of that kind."""
        import av

        key = (filters, frame.width, frame.height, frame.format.name)
        try:
            if key != self._graph_key:
                self._graph, self._graph_key = None, key
                self._graph = upright_graph(frame, filters)
            if self._graph is None:
                return None
            self._graph.push(frame)
            out = self._graph.pull()
        except (av.error.FFmpegError, ValueError, TypeError):
            self._graph = None
            return None
        if out.format.name != frame.format.name:
            self._graph = None
            return None
        return out

    def _convert(self, frame) -> np.ndarray:
        """The frame as an array (scaled and converted by libswscale), upright.

        A frame with a display rotation (or a mirrored display matrix) is turned (and flipped) before it is
        scaled, by the filters FFmpeg's autorotation uses (:func:`frame_orientation`), so the array is the very
        one of a copy of the video with the display matrix applied to its pixels (libswscale's scaling is not
        symmetric: scaling, then turning, would differ by a few levels at edges). Should the filters refuse a
        frame (or need to convert its pixel format), it is scaled as stored and the array turned and flipped
        (numpy). A frame shown as stored is converted as before, untouched."""
        filters = frame_orientation(frame)[1] if self.autorotate else ()
        if filters:
            turned = self._upright(frame, filters)
            if turned is not None:
                frame, filters = turned, ()
        kw = {}
        if self.size is not None:
            w, h = int(self.size[0]), int(self.size[1])
            kw["width"], kw["height"] = (h, w) if _swaps(filters) else (w, h)
            kw["interpolation"] = self.interpolation
        arr = frame.to_ndarray(format=self.fmt, **kw)
        if filters:
            for f in filters:
                arr = _ARRAY_FILTERS[f](arr)
            arr = np.ascontiguousarray(arr)
        return arr

    # -- iteration ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[float, np.ndarray] | tuple[float, np.ndarray, np.ndarray | None]]:
        import av

        container, stream = open_video(self.path, self.threads)
        extent = _Extent(container, stream)
        tb = stream.time_base or Fraction(1, 90000)
        start = stream.start_time if stream.start_time is not None else None
        rate = _rate(stream)
        period = 1.0 / self.fps if self.fps else None
        eps = 1e-6
        state = {"next_target": 0.0, "index": 0, "prev": None, "prev_frame": None, "done": False,
                 "start": start}

        def frame_time(frame) -> float:
            if frame.pts is not None:
                if state["start"] is None:
                    state["start"] = frame.pts
                return float((frame.pts - state["start"]) * tb)
            return state["index"] / rate if math.isfinite(rate) else float(state["index"])

        def wanted(t: float, index: int) -> bool:
            if self.select is not None:
                return bool(self.select(index))
            if period is None:
                return True
            if t + eps >= state["next_target"]:
                state["next_target"] = (math.floor((t + eps) / period) + 1) * period
                return True
            return False

        def emit(frames):
            for frame in frames:
                t = frame_time(frame)
                idx = state["index"]
                state["index"] += 1
                self.stats.decoded += 1
                if wanted(t, idx):
                    arr = self._convert(frame)
                    self.stats.sampled += 1
                    if self.with_previous:
                        prev = state["prev_frame"]
                        yield (t, arr, None if prev is None else self._convert(prev))
                    else:
                        yield (t, arr)
                    if self.max_frames is not None and self.stats.sampled >= self.max_frames:
                        state["done"] = True
                        return
                if self.with_previous:
                    state["prev_frame"] = frame

        def decode(packet):
            try:
                return stream.codec_context.decode(packet) if packet is not None else \
                    stream.codec_context.decode(None)
            except av.error.EOFError:
                return []
            except (av.error.InvalidDataError, av.error.FFmpegError, ValueError):
                self.stats.errors += 1
                return []

        # skipping only for plain rate sampling with timestamps
        can_skip = period is not None and self.select is None
        gop: list = []                # packets of the current GOP
        gop_pts: list[int] = []
        last_max_t = [-math.inf]      # largest frame time of the previous GOP

        def gop_plan(pts_list) -> set | None:
            """The pts of this GOP's frames that may be sampled (None: the whole GOP is not needed).

            A frame is sampled when a target time lies in (time of the frame before it, its time]; the
            check here is a little generous (2 eps), so it never drops a frame that will be sampled.
            With ``with_previous`` the frame before each sampled one is kept too, and so is the last
            frame of every GOP (it may be the predecessor of the next GOP's first frame).
            """
            if not pts_list:
                return set()
            st = state["start"] if state["start"] is not None else min(pts_list)
            prev = last_max_t[0]
            keep = set()
            ordered = sorted(set(pts_list))
            for j, pts in enumerate(ordered):
                t = float((pts - st) * tb)
                k = 0 if prev == -math.inf else math.floor((prev - 2 * eps) / period) + 1
                if k * period <= t + 2 * eps:
                    keep.add(pts)
                    if self.with_previous and j > 0:
                        keep.add(ordered[j - 1])
                prev = t
            last_max_t[0] = max(last_max_t[0], prev)
            if self.with_previous:
                keep.add(ordered[-1])
                return keep
            return keep or None

        cc = stream.codec_context
        skip_mode = ["DEFAULT"]

        def set_skip(mode: str):
            if skip_mode[0] != mode:
                try:
                    cc.skip_frame = mode
                except (AttributeError, ValueError, TypeError):
                    return
                skip_mode[0] = mode

        def flush_gop():
            if state["start"] is None and gop_pts:
                state["start"] = min(gop_pts)
            keep = gop_plan(gop_pts)
            if keep is not None:
                for pk in gop:
                    # frames that will not be sampled need decoding only if others refer to them
                    if pk.pts in keep:
                        set_skip("DEFAULT")
                    else:
                        set_skip("NONREF")
                        self.stats.skipped_nonref += 1
                    yield from emit(decode(pk))
                    if state["done"]:
                        return
            else:
                self.stats.skipped_gops += 1
            gop.clear()
            gop_pts.clear()

        try:
            try:
                for packet in container.demux(stream):
                    if packet.size == 0 and packet.pts is None:
                        continue  # the demuxer's end marker; the decoder is flushed below
                    self.stats.packets += 1
                    extent.add(packet)
                    if can_skip and packet.pts is None:
                        can_skip = False  # no timestamps: decode everything
                        set_skip("DEFAULT")
                        for pk in gop:
                            yield from emit(decode(pk))
                        gop.clear()
                        gop_pts.clear()
                        if state["done"]:
                            return
                    if can_skip:
                        if packet.is_keyframe and gop:
                            yield from flush_gop()
                            if state["done"]:
                                return
                        gop.append(packet)
                        gop_pts.append(packet.pts)
                    else:
                        yield from emit(decode(packet))
                        if state["done"]:
                            return
            except av.error.FFmpegError as e:  # demuxing error (truncated or corrupt container)
                self.stats.errors += 1
                if self.stats.decoded == 0 and not gop:
                    raise VideoError(f"cannot read the video data ({_av_message(e)})",
                                     file=self.path) from None
            if can_skip and gop:
                yield from flush_gop()
                if state["done"]:
                    return
            set_skip("DEFAULT")
            yield from emit(decode(None))
        finally:
            container.close()
        if self.stats.decoded == 0:
            raise VideoError("no frame could be decoded (corrupt or truncated video?)", file=self.path)
        extent.check(self.path)  # read to the end: a cut file must not pass for a whole one


def iter_frames(path, fps: float | None = None, size: tuple[int, int] | None = None, fmt: str = "rgb24",
                **kw) -> Iterator[tuple[float, np.ndarray]]:
    """Shorthand: ``for t, frame in iter_frames(path, fps=2, size=(224, 224)): ...``."""
    return iter(FrameSampler(path, fps=fps, size=size, fmt=fmt, **kw))


def count_frames(path) -> DecodeStats:
    """Decode every frame, convert none (the reference speed for the benchmark)."""
    import av

    container, stream = open_video(path)
    stats = DecodeStats()
    try:
        for packet in container.demux(stream):
            try:
                for _ in stream.codec_context.decode(packet if packet.size or packet.pts is not None
                                                     else None):
                    stats.decoded += 1
            except av.error.FFmpegError:
                stats.errors += 1
    finally:
        container.close()
    return stats


def prefetch(iterable, size: int = 8):
    """Iterate ``iterable`` in a background thread, ``size`` items ahead.

    Decoding (FFmpeg, which releases the GIL) then overlaps with the caller's work on the frames (e.g.
    a CNN). Exceptions of the producer are raised in the caller; stopping early stops the producer.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=max(1, size))
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(("error", e))

    t = threading.Thread(target=produce, name="deepqoe-decode", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "item":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except Exception:  # noqa: BLE001 - queue empty
                pass
            t.join(timeout=0.05)
