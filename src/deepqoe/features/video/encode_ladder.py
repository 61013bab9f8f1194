"""Encode ladders of real clips and measure them: the objective data a bitrate -> quality mapping is fitted on.

Each clip's first seconds are decoded once into a reference (``.y4m``); every cell of the grid (height x
bitrate x codec, and optionally a lower frame rate) is encoded from it with FFmpeg (x264, x265,
libvpx-vp9, SVT-AV1; one pass, average bitrate), its bitrate measured from the file and its VMAF (libvmaf's default
model, as the full-reference extractor) measured against the reference after bicubic upscaling to the
reference's size. A cell at a lower frame rate is encoded from, and measured against, the reference at
that rate (every other frame at half the rate): its VMAF is the compression fidelity at that rate, what
sizes the bits a frame rate needs; the judder of a lower rate is not measured (VMAF of frames repeated back
to the clip's rate scores each repeat as a spatial error, far more than viewers mark it down). Cells are
cached one JSON file each, keyed by the encoder options, the VMAF model and the clip length, so a rerun
resumes. Used by ``deepqoe reproduce quality_mapping``
(:mod:`deepqoe.experiments.quality_mapping`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from deepqoe.errors import DeepQoEError
from deepqoe.io import atomic_path, atomic_write_text

#: the encoders: codec family -> FFmpeg output options (one pass, average bitrate)
ENCODERS = {
    "h264": ["-c:v", "libx264", "-preset", "medium"],
    "hevc": ["-c:v", "libx265", "-preset", "fast", "-x265-params", "log-level=error"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "4", "-row-mt", "1"],
    "av1": ["-c:v", "libsvtav1", "-preset", "8", "-svtav1-params", "lp=1"],
}
BASE_PIXELS = 960 * 540  # plan_grid's bitrates are for a clip of this many pixels


@dataclass(frozen=True)
class Encode:
    """One cell of the grid."""

    clip: str
    width: int
    height: int
    fps: float
    codec: str
    kbps: int


def _run(cmd: list[str], what: str) -> None:
    from deepqoe.features.video.full_reference import ffmpeg_failure

    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:  # killed by a signal (a crash): named, as the full-reference extractor does
        raise DeepQoEError(f"FFmpeg failed on {what}: {ffmpeg_failure(proc)}")


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def plan_grid(clips: dict[str, tuple[int, int, float]], heights, bitrates, codecs, fps_fractions=(),
              fps_heights=(1.0,)) -> list[Encode]:
    """The cells for ``clips`` (name -> (width, height, fps)): every codec x height (a fraction of the clip's)
    x bitrate (kbps for a 960x540 clip, scaled by the clip's pixel count, so bits per pixel compare across
    clips), and H.264 at each of ``fps_fractions`` of the clip's rate at each of ``fps_heights`` (measured
    against the reference at that rate, see :func:`measure`)."""
    cells = []
    for name, (W, H, fps) in clips.items():
        scale = W * H / BASE_PIXELS
        for codec in codecs:
            for fr in heights:
                for kb in bitrates:
                    cells.append(Encode(name, _even(W * fr), _even(H * fr), fps, codec, int(round(kb * scale))))
        for ff in fps_fractions:
            for fr in fps_heights:
                for kb in bitrates:
                    cells.append(Encode(name, _even(W * fr), _even(H * fr), round(fps * ff, 3), "h264",
                                        int(round(kb * scale))))
    return cells


def _lower_rate(cell: Encode, ref_fps: float) -> bool:
    """Is ``cell`` below its reference's frame rate (encoded from and measured against the reference at its rate)?"""
    return cell.fps < ref_fps - 1e-3


def rate_reference(ref: Path, fps: float) -> Path:
    """The reference ``ref`` at the lower frame rate ``fps`` (frames dropped, none blended), made once."""
    from deepqoe.features.video.full_reference import ffmpeg_exe

    out = ref.with_name(f"{ref.stem}_{fps:g}fps.y4m")
    if not out.is_file():
        with atomic_path(out) as tmp:
            _run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(ref), "-vf", f"fps={fps:g}",
                  "-pix_fmt", "yuv420p", str(tmp)], out.name)
    return out


def measure(cell: Encode, ref: Path, ref_size: tuple[int, int, float], seconds: float, work: Path) -> dict:
    """Encode ``cell`` from the reference, measure its bitrate and its VMAF against the reference (the
    encode scaled back to the reference's size). Below the reference's frame rate both the encode and the
    reference are at the cell's rate (:func:`rate_reference`): compression fidelity, judder not counted."""
    from deepqoe.features.video.full_reference import DEFAULT_MODEL, _escape, ffmpeg_exe, frame_grid

    W, H, fps = ref_size
    lower = _lower_rate(cell, fps)
    own_rate = ["own-rate reference"] if lower else []  # part of the key: cells measured before it differ
    # WebM cells measured before the frame grid were misaligned (its 1-ms time stamps); MP4 ones are unchanged
    grid_key = ["frame grid"] if cell.codec == "vp9" else []
    settings = hashlib.sha256(json.dumps([ENCODERS[cell.codec], DEFAULT_MODEL, seconds] + own_rate + grid_key)
                              .encode()).hexdigest()[:8]
    stem = f"{cell.clip}_{cell.codec}_{cell.height}_{cell.fps:g}_{cell.kbps}_{settings}"
    cache = work / f"{stem}.json"  # the key holds the encoder options, the VMAF model and the clip length
    if cache.is_file():
        return json.loads(cache.read_text())
    ff = ffmpeg_exe()
    ext = "webm" if cell.codec == "vp9" else "mp4"
    if lower:
        ref = rate_reference(ref, cell.fps)
    with tempfile.TemporaryDirectory(prefix="deepqoe-grid-", dir=work) as tmp:
        dist = Path(tmp) / f"d.{ext}"
        _run([ff, "-nostdin", "-v", "error", "-y", "-i", str(ref), "-vf", f"scale={cell.width}:{cell.height}:flags=bicubic",
              *ENCODERS[cell.codec], "-b:v", f"{cell.kbps}k", "-an", str(dist)], stem)
        kbps = dist.stat().st_size * 8 / 1000.0 / seconds
        # VMAF only (libvmaf's default model, as the full-reference extractor): the extractor's PSNR / SSIM
        # and its completeness checks of both files would triple the cost of these small encodes
        log, grid = Path(tmp) / "vmaf.json", frame_grid(cell.fps)
        _run([ff, "-nostdin", "-v", "error", "-i", str(dist), "-i", str(ref), "-lavfi",
              f"[0:v]scale={W}:{H}:flags=bicubic,{grid}[d];[1:v]{grid}[r];"
              f"[d][r]libvmaf=model={DEFAULT_MODEL}:n_threads=1:log_fmt=json:log_path={_escape(str(log))}",
              "-f", "null", "-"], stem)
        vmaf = float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])
    row = {"clip": cell.clip, "codec": cell.codec, "width": cell.width, "height": cell.height, "fps": cell.fps,
           "display_height": H, "target_kbps": cell.kbps, "bitrate_kbps": round(kbps, 2),
           "vmaf": round(vmaf, 3)}
    atomic_write_text(cache, json.dumps(row))
    return row


def build_grid(files: list[Path], work: Path, seconds: float, jobs: int = 2, log=print, **plan) -> list[dict]:
    """Every cell of ``plan_grid(clips, **plan)`` for the clips in ``files``, measured (cached per cell in
    ``work``): a list of rows (clip, codec, width, height, fps, display_height, target_kbps, bitrate_kbps, vmaf)."""
    from deepqoe.features.video.decode import probe
    from deepqoe.features.video.full_reference import MIN_SIDE, ffmpeg_exe

    if not files:
        raise DeepQoEError("no clips to build the encode grid from")
    work.mkdir(parents=True, exist_ok=True)
    refs, sizes = {}, {}
    for f in files:
        info = probe(f)
        if min(info.width, info.height) < MIN_SIDE:  # VMAF is measured at this size: libvmaf would crash
            raise DeepQoEError(f"frames too small for VMAF: {info.width}x{info.height} pixels; libvmaf needs frames "
                               f"at least {MIN_SIDE} pixels wide and high (smaller ones crash it)", file=str(f))
        ref = work / f"{f.stem}_{seconds:g}s.y4m"
        if not ref.is_file():
            with atomic_path(ref) as tmp:
                _run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(f), "-t", f"{seconds:g}",
                      "-pix_fmt", "yuv420p", str(tmp)], f.name)
        refs[f.stem], sizes[f.stem] = ref, (info.width, info.height, round(float(info.fps), 3))
    cells = plan_grid(sizes, **plan)
    # each lower-rate reference once, before the workers (which would otherwise race to make the same one)
    for clip, fps in sorted({(c.clip, c.fps) for c in cells if _lower_rate(c, sizes[c.clip][2])}):
        rate_reference(refs[clip], fps)
    log(f"encode grid: {len(cells)} encodes of {len(files)} clips ({seconds:g} s each) ...")
    done = [0]

    def one(cell):
        row = measure(cell, refs[cell.clip], sizes[cell.clip], seconds, work)
        done[0] += 1
        if done[0] % 50 == 0:
            log(f"  {done[0]}/{len(cells)}")
        return row

    with ThreadPoolExecutor(max(1, int(jobs))) as ex:
        return list(ex.map(one, cells))
