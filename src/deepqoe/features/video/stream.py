"""``stream``: container and stream metadata (no decoding): codec, size, frame rate, duration, bitrate.

The bitrate is in kbit/s (``stream_bitrate_kbps``, 1 kbit = 1000 bits), the unit of every bitrate in
deepqoe; ``stream_bits_per_pixel`` is bits per pixel per frame. The packets are read (not decoded) to
check that the file holds the frames its container declares: a file cut short is an error, not a row of
metadata copied from its header.

All columns are numbers, so the table can be used directly as a ``vector`` input: the codec is one-hot
(``stream_codec_h264``, ``_hevc``, ``_vp9``, ``_av1``, ``_other``).
"""

from __future__ import annotations

import math

from deepqoe.features.video.base import Extractor, Features
from deepqoe.features.video.decode import check_complete, probe

CODECS = ("h264", "hevc", "vp9", "av1")


class StreamExtractor(Extractor):
    name = "stream"
    version = "3"  # 3: frame rates of 1000/s and more (were NaN); 2: stream_bitrate_kbps, truncated files rejected
    defaults: dict = {}

    def extract(self, video_path, reference=None) -> Features:
        info = probe(video_path)
        check_complete(video_path)
        duration = info.duration
        values = {
            "stream_width": float(info.width),
            "stream_height": float(info.height),
            "stream_pixels": float(info.width * info.height),
            "stream_fps": float(info.fps),
            "stream_duration": float(duration),
            "stream_bitrate_kbps": float(info.bitrate) / 1000.0,
            "stream_bits_per_pixel": float(info.bitrate / (info.width * info.height * info.fps))
            if info.fps and math.isfinite(info.fps) and math.isfinite(info.bitrate) else float("nan"),
            "stream_file_size": float(info.file_size),
        }
        for c in CODECS:
            values[f"stream_codec_{c}"] = float(info.codec == c)
        values["stream_codec_other"] = float(info.codec not in CODECS)
        return Features(values=values, frames=0)
