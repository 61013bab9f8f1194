"""``niqe``: no-reference NIQE (Mittal et al. 2013) of sampled frames, via scikit-video.

Needs the PyPI package ``absolutely-not-scikit-video`` (import name ``skvideo``, in ``deepqoe[video]``).
Frames are sampled at ``fps`` (default 1 per second), converted to luma and scaled so that the
shorter side is at most ``max_side`` pixels (default 540; NIQE needs at least 192 x 192). Columns:
``niqe_mean``, ``niqe_median``, ``niqe_max`` (NIQE: lower is better).
"""

from __future__ import annotations

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.features.video.base import Extractor, Features
from deepqoe.features.video.decode import FrameSampler, VideoError, probe


def _niqe():
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import skvideo.measure  # noqa: F401
            from skvideo.measure import niqe
    except Exception as e:  # noqa: BLE001 - any import failure (missing, or broken with this numpy)
        raise DeepQoEError(f"the niqe extractor needs scikit-video, which cannot be imported ({e}); install "
                           "it with: pip install absolutely-not-scikit-video") from None
    return niqe


class NIQEExtractor(Extractor):
    name = "niqe"
    version = "1"
    defaults = {"fps": 1.0, "max_side": 540}

    def __init__(self, **options):
        super().__init__(**options)
        _niqe()  # fail early, once, when scikit-video is missing

    def extract(self, video_path, reference=None) -> Features:
        niqe = _niqe()
        info = probe(video_path)
        short = min(info.width, info.height)
        scale = min(1.0, int(self.opts["max_side"]) / short)
        w, h = int(round(info.width * scale / 2) * 2), int(round(info.height * scale / 2) * 2)
        if min(w, h) < 192:
            raise VideoError(f"frames of {w}x{h} are too small for NIQE (at least 192 x 192)",
                             file=str(video_path))
        sampler = FrameSampler(video_path, fps=float(self.opts["fps"]) or None, size=(w, h), fmt="gray")
        scores = []
        for _t, y in sampler:
            scores.append(float(np.asarray(niqe(y[None].astype(np.float64))).ravel()[0]))
        if not scores:
            raise VideoError("no frame could be decoded", file=str(video_path))
        a = np.asarray(scores)
        return Features(values={"niqe_mean": float(a.mean()), "niqe_median": float(np.median(a)),
                                "niqe_max": float(a.max())}, frames=sampler.stats.packets,
                        per_frame={"niqe": scores})
