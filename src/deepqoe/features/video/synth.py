"""Synthetic test clips, encoded with PyAV (for tests, examples and the benchmark).

The pictures move (a drifting gradient, a moving square, and optional noise), so that encoders spend
bits, temporal information is non-zero and lower quality visibly loses detail.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

CODECS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}


def synth_frames(width: int, height: int, n: int, seed: int = 0, noise: float = 12.0, speed: float = 1.0):
    """Yield ``n`` RGB frames (H x W x 3 uint8) of a deterministic moving pattern.

    Separable sinusoids, a drifting blocky texture, a moving red square and (rolled) Gaussian noise:
    cheap enough for 1080p (a few tens of ms a frame).
    """
    rng = np.random.default_rng(seed)
    x = np.arange(width, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)
    texture = rng.normal(0, 1, (height // 8 + 1, width // 8 + 1)).astype(np.float32)
    texture = np.kron(texture, np.ones((8, 8), np.float32))[:height, :width] * 25
    noise_tile = rng.normal(0, noise, (height, width)).astype(np.float32) if noise else None
    phase = rng.uniform(0, 2 * np.pi, 3)
    sq = max(8, min(width, height) // 5)
    two_pi = np.float32(2 * np.pi)
    for i in range(n):
        s = np.float32(i * speed)
        img = np.empty((height, width, 3), np.float32)
        img[..., 0] = (128 + 90 * np.sin(two_pi * (x + 3 * s) / width * 2 + phase[0]))[None, :]
        img[..., 1] = (128 + 90 * np.sin(two_pi * (y + 2 * s) / height * 1.5 + phase[1]))[:, None]
        ax = two_pi * (x - 4 * s) / (width + height) * 3
        ay = two_pi * y / (width + height) * 3 + np.float32(phase[2])
        img[..., 2] = 128 + 60 * (np.sin(ay)[:, None] * np.cos(ax)[None, :] + np.cos(ay)[:, None] * np.sin(ax)[None, :])
        img += np.roll(texture, int(s * 2), axis=1)[..., None]
        x0 = int((width - sq) * (0.5 + 0.45 * np.sin(s / 15)))
        y0 = int((height - sq) * (0.5 + 0.45 * np.cos(s / 11)))
        img[y0:y0 + sq, x0:x0 + sq] = (240, 40, 40)
        if noise_tile is not None:
            img += np.roll(noise_tile, (int(rng.integers(height)), int(rng.integers(width))), axis=(0, 1))[..., None]
        np.clip(img, 0, 255, out=img)
        yield img.astype(np.uint8)


def write_clip(path: str | os.PathLike, seconds: float = 2.0, width: int = 320, height: int = 240,
               fps: int = 25, codec: str = "h264", crf: int | None = 23, bitrate: int | None = None,
               gop: int | None = None, seed: int = 0, noise: float = 12.0, preset: str | None = "veryfast",
               frames=None, faststart: bool = False) -> Path:
    """Encode a clip (``codec``: h264, hevc, vp9 or av1; quality by ``crf`` or ``bitrate``).

    ``faststart``: MP4/MOV with the index (``moov``) before the data, as served for streaming.

    ``frames``: an iterable of RGB frames to encode instead of the synthetic pattern (e.g. the frames
    of a reference clip, to encode it again at a lower quality).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * fps))
    enc = CODECS.get(codec, codec)
    with av.open(str(path), mode="w", options={"movflags": "+faststart"} if faststart else None) as out:
        stream = out.add_stream(enc, rate=Fraction(fps, 1) if isinstance(fps, int) else Fraction(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        opts: dict[str, str] = {}
        if enc == "libx264":
            if preset:
                opts["preset"] = preset
            if crf is not None and bitrate is None:
                opts["crf"] = str(crf)
            opts["threads"] = "2"
        elif enc == "libx265":
            opts["preset"] = preset or "ultrafast"
            params = ["log-level=error", "pools=2"]
            if crf is not None and bitrate is None:
                params.append(f"crf={crf}")
            opts["x265-params"] = ":".join(params)
        elif enc == "libvpx-vp9":
            opts.update({"deadline": "realtime", "cpu-used": "8", "row-mt": "1"})
            if crf is not None and bitrate is None:
                opts.update({"crf": str(crf), "b": "0"})
        elif enc == "libsvtav1":
            opts["preset"] = "12"
            if crf is not None and bitrate is None:
                opts["crf"] = str(crf)
        if bitrate is not None:
            stream.bit_rate = int(bitrate)
        if gop is not None:
            stream.codec_context.gop_size = int(gop)
            if enc == "libx264":
                opts["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        stream.options = opts
        src = frames if frames is not None else synth_frames(width, height, n, seed=seed, noise=noise)
        for i, img in enumerate(src):
            if frames is not None and i >= n:
                break
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if frame.width != width or frame.height != height:
                frame = frame.reformat(width=width, height=height)
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return path
