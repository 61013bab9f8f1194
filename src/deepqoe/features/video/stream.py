"""``stream``: container and stream metadata (no decoding but of the first frame): codec, size, frame rate,
duration, bitrate, rotation, mirroring.

Columns: ``stream_width``, ``stream_height`` (pixels, as shown), ``stream_pixels``, ``stream_fps``,
``stream_duration`` (s), ``stream_bitrate_kbps``, ``stream_bits_per_pixel``, ``stream_file_size`` (bytes),
``stream_rotation`` (degrees), ``stream_mirrored`` (0 or 1) and ``stream_codec_h264`` / ``_hevc`` / ``_vp9`` /
``_av1`` / ``_other``.

Sizes are as the video is shown: a phone clip with a display rotation (display matrix) of 90 or 270
degrees has its stored width and height swapped (a portrait clip stored as 1920 x 1080 and turned 90
degrees is 1080 wide, 1920 high, as FFmpeg's autorotation and every frame-based extractor see it), and
``stream_rotation`` is that rotation, 0, 90, 180 or 270 degrees counter-clockwise (the first frame is
decoded to read it: :func:`deepqoe.features.video.decode.display_orientation`). ``stream_mirrored`` is 1 when
the display matrix mirrors the picture as well (a flip, alone or with a turn: some front cameras, ``ffmpeg
-display_hflip`` / ``-display_vflip``), else 0; ``stream_rotation`` is then the angle FFmpeg reports for that
matrix (``av_display_rotation_get``: a flip left to right alone is 180 degrees and mirrored, a flip upside down
alone 0 degrees and mirrored), and every frame-based extractor sees the frames unmirrored, as players show them.

The bitrate is the video stream's own, in kbit/s (``stream_bitrate_kbps``, 1 kbit = 1000 bits, the unit of
every bitrate in deepqoe): the bytes of its packets over the seconds they cover, so neither an audio track
nor the container's overhead counts (a file's declared rate includes them in Matroska and MPEG-TS); ``stream_bits_per_pixel`` is bits per pixel per frame. The packets are read (not decoded) to
check that the file holds the frames its container declares: a file cut short is an error, not a row of
metadata copied from its header.

All columns are numbers, so the table can be used directly as a ``vector`` input: the codec is one-hot
(``stream_codec_h264``, ``_hevc``, ``_vp9``, ``_av1``, ``_other``).
"""

from __future__ import annotations

import math

from deepqoe.features.video.base import Extractor, Features
from deepqoe.features.video.decode import check_complete, display_orientation, probe

CODECS = ("h264", "hevc", "vp9", "av1")


class StreamExtractor(Extractor):
    name = "stream"
    # 6: stream_mirrored column (a mirrored display matrix: a flip, alone or with a turn);
    # 5: stream_bitrate_kbps from the video stream's own packets (was the stream's or the container's
    #    declared rate: with audio, Matroska and MPEG-TS gave 444-568 kbit/s for a 287-kbit/s video);
    # 4: width and height as shown (swapped for a rotation of 90 / 270 degrees), stream_rotation column;
    # 3: frame rates of 1000/s and more (were NaN); 2: stream_bitrate_kbps, truncated files rejected
    version = "6"
    #: the columns, in order
    columns = ("stream_width", "stream_height", "stream_pixels", "stream_fps", "stream_duration",
               "stream_bitrate_kbps", "stream_bits_per_pixel", "stream_file_size", "stream_rotation",
               "stream_mirrored",
               *(f"stream_codec_{c}" for c in CODECS), "stream_codec_other")
    defaults: dict = {}

    def extract(self, video_path, reference=None) -> Features:
        info = probe(video_path)
        packets, size, covered = check_complete(video_path)
        turn, mirrored = display_orientation(video_path)
        width, height = (info.height, info.width) if turn in (90, 270) else (info.width, info.height)
        duration = info.duration
        # the video stream's own bitrate: its packets' bytes over the time they cover (frames / average rate,
        # else their time stamps), whatever the container, its overhead and the audio beside it
        seconds = packets / info.fps if info.fps and math.isfinite(info.fps) and packets else covered
        bitrate = size * 8.0 / seconds if seconds > 0 and size > 0 else float(info.bitrate)
        values = {
            "stream_width": float(width),
            "stream_height": float(height),
            "stream_pixels": float(info.width * info.height),
            "stream_fps": float(info.fps),
            "stream_duration": float(duration),
            "stream_bitrate_kbps": bitrate / 1000.0,
            "stream_bits_per_pixel": float(bitrate / (info.width * info.height * info.fps))
            if info.fps and math.isfinite(info.fps) and math.isfinite(bitrate) else float("nan"),
            "stream_file_size": float(info.file_size),
            "stream_rotation": float(turn),
            "stream_mirrored": float(mirrored),
        }
        for c in CODECS:
            values[f"stream_codec_{c}"] = float(info.codec == c)
        values["stream_codec_other"] = float(info.codec not in CODECS)
        return Features(values=values, frames=0)
