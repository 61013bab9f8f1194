"""``full-reference``: PSNR, SSIM and VMAF of a video against its reference (original) video.

Runs the static FFmpeg shipped by ``imageio-ffmpeg`` (it is built with libvmaf; the model is the
built-in default ``vmaf_v0.6.1``), in one pass: the distorted video is scaled (bicubic) to the
reference's size and both are brought onto the reference's time base frame by frame (:func:`frame_grid`):
a constant-rate grid at the reference's frame rate (its average rate when it has a variable frame rate)
from time 0 (both videos start at 0), and at each grid time the frame each video shows then, as FFmpeg's
``fps`` filter picks it (every frame goes to the nearest grid time; of two that land on one grid time the
later is kept, and a grid time no frame lands on repeats the frame before). Every reference frame is thus
compared with the distorted frame on screen at its time: a variable-frame-rate reference with a
constant-rate transcode of it, a distorted video at a lower frame rate (its frames repeated) or with dropped
frames (the frame before shown on), and the whole-millisecond time stamps of WebM / Matroska alike. The
frames are compared on that grid up to the end of the shorter video by libvmaf (VMAF, ``n_threads``)
and by FFmpeg's own ``psnr`` and ``ssim`` filters (SIMD code, faster than libvmaf's float_ssim).
Every frame's ``vmaf``, ``psnr_y``, ``psnr_cb``, ``psnr_cr`` (capped at 60 dB, as libvmaf does for
8-bit video; identical frames would be infinite) and ``ssim`` (luma) are kept as per-frame series and
pooled into columns ``fr_<metric>_mean``, ``_min``, ``_p05`` (5th percentile) and, for VMAF,
``fr_vmaf_hmean`` (harmonic mean), plus ``fr_psnr_yuv_mean`` (6:1:1 weighted PSNR) and ``fr_frames`` (the
grid times compared: the reference's frame count up to the end of the shorter video, for a
constant-rate reference). A transcode that moved its frames in time is compared as shown, its shifts counted:
FFmpeg's ``-r`` / ``-fps_mode cfr`` keeps every frame in order and lets it drift up to about a frame interval
from its time before it repeats or drops one.
A reference under :data:`MIN_SIDE` (18) pixels wide or high (8 with a ``vmaf_float`` model) is refused
before FFmpeg runs: libvmaf crashes on such frames. An FFmpeg killed by a signal is named as such.

Rotated videos (phone videos carry a display matrix, the old ``rotate`` tag): FFmpeg turns every input's
frames upright as it decodes them (``-autorotate``, on by default and given explicitly), so the frames are
compared as they are shown, and sizes are taken as shown (:func:`deepqoe.features.video.decode.shown_size`): a reference and a video that
both carry a rotation are compared upright, and a transcode that applied the rotation to its pixels (and
dropped the tag) is compared with its tagged original without being scaled. A video shown in portrait
and its reference in landscape (or the other way round) is refused before FFmpeg runs, in one line naming
both files, their stored sizes and rotations: scaling one onto the other would compare a squashed picture.
A rotation of 180 degrees on one side only cannot be told from the sizes: the frames are compared as shown.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.features.video.base import Extractor, Features
from deepqoe.features.video.decode import VideoError, check_complete, probe, shown_size

METRICS = ("vmaf", "psnr_y", "psnr_cb", "psnr_cr", "ssim")
PSNR_CAP = 60.0
DEFAULT_MODEL = "version=vmaf_v0.6.1"

#: the smallest frame side (pixels, width and height alike) the libvmaf of the FFmpeg of imageio-ffmpeg
#: measures: below 18 its integer features (those of the default ``vmaf_v0.6.1``, ``..neg`` and the 4k models)
#: crash FFmpeg (SIGSEGV); the float models (``vmaf_float_*``) abort (SIGABRT) below 8. Checked before FFmpeg runs.
MIN_SIDE = 18
MIN_SIDE_FLOAT = 8


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise DeepQoEError("the full-reference extractor needs imageio-ffmpeg (pip install imageio-ffmpeg)"
                           ) from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def min_frame_side(model: str = DEFAULT_MODEL) -> int:
    """The smallest width and height (pixels) of the reference that libvmaf with ``model`` (as
    :func:`normalize_model` reads it) measures without crashing: :data:`MIN_SIDE_FLOAT` when every model
    is a built-in float one, :data:`MIN_SIDE` otherwise (a model file may use the integer features)."""
    versions = []
    for part in normalize_model(model).split("|"):
        opts = [o for o in part.replace("\\", "").split(":") if o.startswith(("version=", "path="))]
        versions.append(opts[0][len("version="):] if opts and opts[0].startswith("version=") else "")
    return MIN_SIDE_FLOAT if versions and all(v.startswith("vmaf_float") for v in versions) else MIN_SIDE


def signal_name(returncode: int) -> str:
    """The name of the signal a negative return code of :mod:`subprocess` stands for (``SIGSEGV``)."""
    try:
        return signal.Signals(-int(returncode)).name
    except ValueError:
        return f"signal {-int(returncode)}"


def ffmpeg_failure(proc: subprocess.CompletedProcess, program: str = "FFmpeg") -> str:
    """Why a run of FFmpeg failed, in one line: its last message, or the signal that killed it (a negative
    return code: a crash, SIGSEGV, is named as one) or its exit status when it said nothing."""
    err = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
    last = err[-1] if err else ""
    rc = proc.returncode
    if rc is not None and rc < 0:
        name = signal_name(rc)
        why = {"SIGSEGV": "it crashed", "SIGBUS": "it crashed", "SIGILL": "it crashed", "SIGFPE": "it crashed",
               "SIGABRT": "it aborted", "SIGKILL": "out of memory, or stopped from outside?"}.get(name)
        return f"{program} was killed by {name}" + (f" ({why})" if why else "") + (f": {last}" if last else "")
    return last or f"{program} exited with status {rc}"


def _escape(path: str) -> str:
    """Escape a path for an option value inside an FFmpeg filter graph."""
    return path.replace("\\", "/").replace(":", "\\:").replace("'", "\\'")


def frame_grid(fps: float) -> str:
    """The FFmpeg filters that bring a video onto the reference's time base, for both inputs of a
    full-reference comparison: a constant-rate grid of ``fps`` frames a second (the reference's rate, its
    average rate when it varies) from time 0, and at each grid time the frame the video shows then.

    FFmpeg's ``fps`` filter (``round=near``, its default) does it: every frame goes to the nearest grid time;
    of two frames on one grid time the later is kept (the earlier dropped), and a grid time no frame lands on
    repeats the frame before. Both videos then have one frame per grid time and FFmpeg pairs them by time
    stamp. So a variable-rate reference pairs with a constant-rate transcode of it (moving each frame to its
    nearest grid time, dropping and repeating none, put two reference frames on one grid time and none on the
    next, and the pairs around slipped: PSNR 48 dB instead of 60 for a lossless transcode), a 15-fps video is
    compared with every frame of a 30-fps reference (each of its frames twice, the second time against the
    reference's next frame), a dropped frame as the frame shown in its place, and time stamps off the grid by
    under half a frame interval still pair: a 29.97-fps encode in WebM or Matroska (time stamps in whole
    milliseconds) lands up to 0.5 ms after the reference's frame in about half the frames, which paired with
    the previous reference frame under ``setpts=PTS-STARTPTS`` alone (VMAF 80.6 instead of 96.8 for the same
    VP9 encode stored as MP4, 540p, 1.6 Mbps). An unknown rate falls back to the time stamps themselves."""
    if not (math.isfinite(fps) and fps > 0):
        return "setpts=PTS-STARTPTS"
    return f"setpts=PTS-STARTPTS,fps=fps={float(fps)!r}:round=near"


def _describe(size: tuple[int, int, int, int, int]) -> str:
    w, h, sw, sh, turn = size
    if not turn:
        return f"{w}x{h} (no rotation)"
    return f"{sw}x{sh} rotated {turn} degrees on display, shown {w}x{h}"


def _orientation(w: int, h: int) -> str:
    return "portrait" if h > w else "landscape" if w > h else "square"


def _specific_failure(proc: subprocess.CompletedProcess) -> str:
    """:func:`ffmpeg_failure`, but a filter's own complaint (libvmaf's "input width must match.") rather than
    FFmpeg's closing line ("Nothing was written into output file ...") when there is one."""
    for ln in (proc.stderr or "").splitlines():
        if ln.strip().endswith("must match.") and (proc.returncode or 0) > 0:
            return ln.split("]", 1)[-1].strip()
    return ffmpeg_failure(proc)


#: the models of the libvmaf built into the FFmpeg of imageio-ffmpeg (``version=NAME``), for messages
BUILT_IN_MODELS = ("vmaf_v0.6.1", "vmaf_v0.6.1neg", "vmaf_4k_v0.6.1", "vmaf_4k_v0.6.1neg", "vmaf_float_v0.6.1",
                   "vmaf_float_v0.6.1neg", "vmaf_float_4k_v0.6.1")
_model_checked: dict[str, str | None] = {}


def normalize_model(model: str) -> str:
    """``--vmaf-model`` as libvmaf's ``model`` option: ``version=NAME`` or ``path=FILE`` (several joined by
    ``|``) as given; a bare name is ``version=NAME``, a bare path to a file ``path=FILE``."""
    model = str(model).strip()
    if "=" in model:
        return model
    q = Path(model).expanduser()
    if q.suffix.lower() in (".json", ".pkl") or q.exists() or "/" in model:
        return f"path={q}"
    return f"version={model}"


def check_vmaf_model(model: str) -> str:
    """``model`` normalised (:func:`normalize_model`), once it is known that the bundled FFmpeg's libvmaf
    loads it: a DeepQoEError naming the file for a ``path=`` that does not exist, naming the field
    ``vmaf-model`` for a model libvmaf does not know (checked once per process, on a one-frame clip)."""
    model = normalize_model(model)
    if not model:
        raise DeepQoEError("empty model name", field="vmaf-model")
    for part in model.split("|"):
        for opt in part.replace("\\", "").split(":"):
            if opt.startswith("path="):
                f = Path(opt[5:]).expanduser()
                if not f.exists():
                    raise DeepQoEError("VMAF model file not found (--vmaf-model)", file=str(f))
                if not f.is_file():
                    raise DeepQoEError("is a folder, not a VMAF model file (--vmaf-model)", file=str(f))
    if model == DEFAULT_MODEL:
        return model
    if model not in _model_checked:
        probe_input = ["-f", "lavfi", "-i", "color=c=gray:s=64x64:d=0.04:r=25"]
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", *probe_input, *probe_input,
               "-lavfi", f"[0:v][1:v]libvmaf=model={model}", "-f", "null", "-"]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  errors="replace", timeout=120)
        except (OSError, subprocess.SubprocessError) as e:
            raise DeepQoEError(f"cannot run FFmpeg to check the VMAF model: {e}") from None
        if proc.returncode < 0:  # killed by a signal: no verdict on the model
            raise DeepQoEError(f"cannot check the VMAF model: {ffmpeg_failure(proc)}")
        _model_checked[model] = None if proc.returncode == 0 else ffmpeg_failure(proc)
    why = _model_checked[model]
    if why is not None:
        raise DeepQoEError(f"libvmaf cannot load the model '{model}' ({why}); the built-in models are "
                           + ", ".join(f"version={m}" for m in BUILT_IN_MODELS)
                           + ", or give a model file as path=FILE.json", field="vmaf-model")
    return model


class FullReferenceExtractor(Extractor):
    name = "full-reference"
    # 5: both videos on the reference's time base frame by frame (fps filter: frames repeated or dropped), so a
    #    variable-rate reference pairs with a constant-rate transcode and a lower frame rate or dropped frames count;
    # 4: sizes as shown (rotation), a portrait video against a landscape reference refused (was squashed);
    # 3: frames put on the reference's frame grid (WebM / Matroska inputs were misaligned)
    version = "5"
    needs_reference = True
    defaults = {"model": DEFAULT_MODEL, "threads": 0, "subsample": 1}

    def __init__(self, **options):
        super().__init__(**options)
        self.opts["model"] = check_vmaf_model(self.opts["model"])
        for k, least in (("threads", 0), ("subsample", 1)):
            v = self.opts[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v) \
                    or int(v) < least:
                raise DeepQoEError(f"must be a whole number, {least} or more; got {v!r}", field=k)

    def options(self) -> dict:
        return {"model": self.opts["model"], "subsample": int(self.opts["subsample"])}

    def command(self, video_path, reference, logs: dict[str, str], sizes=None) -> list[str]:
        """The FFmpeg command line. ``sizes``: the :func:`shown_size` of the video and of its reference (found
        when not given): the video is scaled to its reference's size as shown (both are turned upright)."""
        dist_size, ref_size = sizes or (shown_size(video_path), shown_size(reference))
        ref = probe(reference)
        threads = int(self.opts["threads"] or 0) or (os.cpu_count() or 1)
        grid = frame_grid(ref.fps)
        dist_chain = grid
        if dist_size[:2] != ref_size[:2]:
            dist_chain = f"scale={ref_size[0]}:{ref_size[1]}:flags=bicubic," + dist_chain
        vmaf = (f"libvmaf=model={self.opts['model']}:n_threads={threads}"
                f":n_subsample={int(self.opts['subsample'])}"
                f":log_fmt=json:log_path={_escape(logs['vmaf'])}:shortest=1")
        graph = (f"[0:v]{dist_chain},format=yuv420p,split=3[d0][d1][d2];"
                 f"[1:v]{grid},format=yuv420p,split=3[r0][r1][r2];"
                 f"[d0][r0]{vmaf};"
                 f"[d1][r1]psnr=stats_file={_escape(logs['psnr'])}:shortest=1;"
                 f"[d2][r2]ssim=stats_file={_escape(logs['ssim'])}:shortest=1")
        return [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", str(threads),
                "-autorotate", "-i", str(video_path), "-autorotate", "-i", str(reference),
                "-filter_complex", graph, "-f", "null", "-"]

    def sizes(self, video_path, reference) -> tuple[tuple, tuple]:
        """The :func:`shown_size` of the video and of its reference (a VideoError naming the reference when it
        cannot be read)."""
        try:
            ref_size = shown_size(reference)
        except VideoError as e:
            raise VideoError(f"reference video {reference}: {e.message}", file=str(video_path)) from None
        return shown_size(video_path), ref_size

    def check_orientation(self, video_path, reference, sizes=None) -> None:
        """A VideoError (one line naming both files, their sizes and rotations) when the video is shown in
        portrait and its reference in landscape or the other way round: the frames are compared upright, and
        scaling one onto the other would squash the picture (a rotation tag lost, or added, on one side)."""
        dist_size, ref_size = sizes or self.sizes(video_path, reference)
        a, b = _orientation(*dist_size[:2]), _orientation(*ref_size[:2])
        if "square" in (a, b) or a == b:
            return
        raise VideoError(f"the video and its reference are shown in different orientations: the video {video_path} "
                         f"is {_describe(dist_size)}, {a}; its reference {reference} is {_describe(ref_size)}, {b}; "
                         "VMAF, PSNR and SSIM compare frames in one orientation (re-encode one with the rotation "
                         "applied to its pixels, or correct its rotation metadata)", file=str(video_path))

    def check_size(self, video_path, reference, sizes=None) -> None:
        """A VideoError (one line: the sizes and the minimum) when the frames compared, the reference's
        size (the video is scaled to it), are smaller than libvmaf measures (:func:`min_frame_side`): FFmpeg
        would crash on them."""
        least = min_frame_side(self.opts["model"])
        dist_size, ref_size = sizes or self.sizes(video_path, reference)
        if min(ref_size[:2]) >= least:
            return
        rw, rh = ref_size[:2]
        if dist_size[:2] == ref_size[:2]:
            what = f"the video and its reference are {rw}x{rh} pixels"
        else:
            what = (f"the reference {reference} is {rw}x{rh} pixels (the video, {dist_size[0]}x"
                    f"{dist_size[1]}, is compared at the reference's size)")
        raise VideoError(f"frames too small for VMAF: {what}; libvmaf needs frames at least {least} "
                         "pixels wide and high (smaller ones crash it)", file=str(video_path))

    @staticmethod
    def _read_stats(path: str, keys: dict[str, str]) -> dict[str, list[float]]:
        """Per-frame values from an FFmpeg psnr/ssim stats file (``n:1 key:value ...`` lines)."""
        out: dict[str, list[float]] = {v: [] for v in keys.values()}
        with open(path, encoding="utf-8") as f:
            for line in f:
                fields = dict(p.split(":", 1) for p in line.split() if ":" in p)
                for k, name in keys.items():
                    if k in fields:
                        try:
                            v = float(fields[k])
                        except ValueError:
                            v = float("nan")
                        out[name].append(v)
        return out

    def extract(self, video_path, reference=None) -> Features:
        check_complete(video_path)  # a damaged video is said as such, before anything about its reference
        if reference is None:
            raise VideoError("no reference video for the full-reference extractor (give --reference-dir "
                             "or --reference-map, or a 'reference' column in the input list)",
                             file=str(video_path))
        from deepqoe.features.video.decode import file_problem

        problem = file_problem(reference)
        if problem is not None:  # not found, a folder, a broken link, empty...
            problem = "not found" if problem == "file not found" else problem.replace(", not a video file", "")
            raise VideoError(f"reference video {reference}: {problem}", file=str(video_path))
        try:  # (the video was checked first: FFmpeg would compare the frames of a cut file and say nothing)
            check_complete(reference)
        except VideoError as e:
            raise VideoError(f"reference video {reference}: {e.message}", file=str(video_path)) from None
        sizes = self.sizes(video_path, reference)
        self.check_size(video_path, reference, sizes)
        self.check_orientation(video_path, reference, sizes)
        with tempfile.TemporaryDirectory(prefix="deepqoe-vmaf-") as tmp:
            logs = {k: os.path.join(tmp, f"{k}.log") for k in ("vmaf", "psnr", "ssim")}
            cmd = self.command(video_path, reference, logs, sizes)
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
            if proc.returncode != 0:
                raise VideoError(f"FFmpeg/libvmaf failed: {_specific_failure(proc)}", file=str(video_path))
            if not all(os.path.exists(p) for p in logs.values()):
                raise VideoError("FFmpeg/libvmaf wrote no per-frame scores" + (
                    f": {ffmpeg_failure(proc)}" if (proc.stderr or "").strip() else ""), file=str(video_path))
            with open(logs["vmaf"], encoding="utf-8") as f:
                data = json.load(f)
            series = {"vmaf": [float(fr["metrics"]["vmaf"]) for fr in data.get("frames") or []
                               if "vmaf" in fr.get("metrics", {})]}
            series.update(self._read_stats(logs["psnr"], {"psnr_y": "psnr_y", "psnr_u": "psnr_cb",
                                                          "psnr_v": "psnr_cr"}))
            series.update(self._read_stats(logs["ssim"], {"Y": "ssim"}))
        for k in ("psnr_y", "psnr_cb", "psnr_cr"):
            series[k] = [min(v, PSNR_CAP) for v in series[k]]
        frames = series["vmaf"]
        if not frames:
            raise VideoError("no frame could be compared with the reference", file=str(video_path))
        values: dict[str, float] = {}
        for m, s in series.items():
            short = m
            a = np.asarray(s, np.float64)
            if a.size == 0:
                continue
            values[f"fr_{short}_mean"] = float(a.mean())
            values[f"fr_{short}_min"] = float(a.min())
            values[f"fr_{short}_p05"] = float(np.percentile(a, 5))
        v = np.asarray(series["vmaf"], np.float64)
        values["fr_vmaf_hmean"] = float(len(v) / np.sum(1.0 / (v + 1.0)) - 1.0) if v.size else float("nan")
        if series["psnr_y"] and series["psnr_cb"] and series["psnr_cr"]:
            values["fr_psnr_yuv_mean"] = float(np.mean(
                (6 * np.asarray(series["psnr_y"]) + np.asarray(series["psnr_cb"])
                 + np.asarray(series["psnr_cr"])) / 8))
        values["fr_frames"] = float(len(frames))
        return Features(values=values, frames=2 * len(frames) * int(self.opts["subsample"]),
                        per_frame=series)
