"""``siti``: ITU-T P.910 spatial and temporal information of the luma plane.

For each analysed frame F_n (8-bit luma, full size):

* SI_n = standard deviation over the pixels of the Sobel gradient magnitude of F_n (border excluded);
* TI_n = standard deviation over the pixels of F_n - F_{n-1} (F_{n-1}: the frame decoded just before).

P.910 reports SI = max_n SI_n and TI = max_n TI_n; the means are given too. With ``fps`` > 0 only the
frames sampled at that rate are analysed (each with its own predecessor, so TI stays a difference of
consecutive frames); ``fps: 0`` analyses every frame, as in P.910. A video shorter than one sampling
step (one sampled frame, which has no predecessor) is analysed frame by frame. TI is NaN only for a
video of a single frame.
"""

from __future__ import annotations

import numpy as np

from deepqoe.features.video.base import Extractor, Features
from deepqoe.features.video.decode import FrameSampler, VideoError


def sobel_std(y: np.ndarray) -> float:
    """Standard deviation of the Sobel magnitude over the inner pixels of a luma frame.

    Separable and in 16-bit integers (exact for 8-bit luma) until the magnitude.
    """
    f = y.astype(np.int16)
    s = f[:-2] + f[2:]          # vertical smoothing [1 2 1] ...
    s += f[1:-1]
    s += f[1:-1]
    gx = (s[:, 2:] - s[:, :-2]).astype(np.float32)   # ... then horizontal difference
    t = f[:, :-2] + f[:, 2:]    # horizontal smoothing ...
    t += f[:, 1:-1]
    t += f[:, 1:-1]
    gy = (t[2:] - t[:-2]).astype(np.float32)         # ... then vertical difference
    gx *= gx
    gy *= gy
    gx += gy
    np.sqrt(gx, out=gx)
    return float(gx.std(dtype=np.float64))


def diff_std(y: np.ndarray, prev: np.ndarray) -> float:
    return float((y.astype(np.int16) - prev.astype(np.int16)).std(dtype=np.float64))


class SITIExtractor(Extractor):
    name = "siti"
    version = "2"  # 2: a video shorter than one sampling step is analysed frame by frame (its TI was NaN)
    defaults = {"fps": 2.0}

    def _analyse(self, video_path, fps: float):
        sampler = FrameSampler(video_path, fps=fps or None, fmt="gray", with_previous=True)
        si, ti = [], []
        for _t, y, prev in sampler:
            if y.shape[0] < 3 or y.shape[1] < 3:
                raise VideoError(f"frames of {y.shape[1]}x{y.shape[0]} pixels are too small for SI/TI",
                                 file=str(video_path))
            si.append(sobel_std(y))
            if prev is not None:
                ti.append(diff_std(y, prev))
        return si, ti, sampler.stats

    def extract(self, video_path, reference=None) -> Features:
        fps = float(self.opts["fps"] or 0)
        si, ti, stats = self._analyse(video_path, fps)
        frames = stats.packets
        if fps and len(si) == 1 and not ti and stats.packets > 1:
            # shorter than one sampling step: the one sampled frame (the first) has no predecessor, so
            # no TI; such a clip is analysed frame by frame, as with fps 0
            si, ti, stats = self._analyse(video_path, 0.0)
            frames += stats.packets
        if not si:
            raise VideoError("no frame could be decoded", file=str(video_path))
        nan = float("nan")  # TI of a one-frame video: there is no frame difference
        values = {"siti_si_max": max(si), "siti_si_mean": float(np.mean(si)),
                  "siti_ti_max": max(ti) if ti else nan, "siti_ti_mean": float(np.mean(ti)) if ti else nan}
        return Features(values=values, frames=frames, per_frame={"si": si, "ti": ti})
