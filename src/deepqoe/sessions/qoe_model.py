"""The streaming QoE model: QoE's known parts, each learned from data, monotone by construction.

One readable file, top to bottom (the DeepQoE design with the streaming parts as its g_i branches):

1. **Quality track** (phase 1). Per media second, a quality q_t in 0-100: the session's own metric
   (``quality_per_second``, else the segments' ``quality``, e.g. VMAF) when it has one, else
   :class:`QualityMapping` of bitrate, resolution, frame rate, codec and display height: compression
   fidelity times an upscaling ceiling, fitted on objective VMAF only (``fit_quality_mapping``; the
   built-in one, ``quality_mapping.json``, on Waterloo SQoE-IV's chunks and an encode grid of real clips,
   ``deepqoe reproduce quality_mapping``). It rises with bitrate at a fixed resolution, frame rate and
   codec, and at a low bitrate a lower rung can beat a higher one once upscaled.
2. **Parts, as running (prefix) features**, evaluated at any wall-clock time t, so the same network
   gives the session score (t = end) and the per-second curve (t = 1, 2, ... s):

   ============  ==========================================================================  ========
   part          features at wall time t                                                    sign
   ============  ==========================================================================  ========
   quality       running mean of q; a memory track m (asymmetric exponential memory: it      +
                 follows drops faster than gains, learned rates); mean of m; m now
   stalls        log stall rate per media minute (a stall counts 1 - exp(-(length / 2 ms)^2) -
                 events: continuous and flat in its length at 0); stall share of the wall time;
                 log longest stall; recency: sum of log(1 + duration) * exp(-age / tau)
   startup       log(1 + initial loading delay); its recency: the same times                -
                 exp(-media played / tau) (tau shared with the stalls)
   switches      log switch rate per media minute; recency-weighted switch count             -
   ============  ==========================================================================  ========

   A switch is a change of representation (``representation`` id, height, frame rate or codec), never
   VBR jitter of measured chunk sizes. No feature grows with session length: every count is a rate,
   every time a share, a maximum or an exponentially forgotten sum, so a 10-s and a 10-min session with
   the same impairment rate are on the same footing, and a steady session repeated scores the same.
3. **Monotone fusion** (phases 2 and 3). Each part's features (penalties negated) go through its own
   projection g_i with non-negative weights and a monotone activation. The quality part's g_i goes through
   a fully connected layer with non-negative weights to the representation and the head to z; each
   impairment's g_i gives two penalties >= 0 (exactly 0 without that impairment): L_i, subtracted from z
   inside the sigmoid, and M_i, which takes a share of what lies above the scale's floor. The score is
   ``1 + 4 * sigmoid(z - sum L_i) * exp(-sum M_i)`` (:class:`SessionQoENet`, ``fusion="hybrid"``): inside
   1-5 for any input, never higher with more or longer stalls, a longer startup or more switches, never
   lower with higher quality. Stalls take the share only (``stall_penalty="share"``, L = 0): the same
   stall costs more in a better session, by construction (viewers' scores show it in every dataset here,
   and SQI models it; the sigmoid shrinks every penalty inside it near the top of the scale). The device and
   "quality from the mapping, not a metric" can only add an offset to z (they cannot flip a sign). The recipe
   learns the second (``mapped_offset``), not the first (``device_offsets``). Where the training sessions
   without a metric all come from one dataset (P.1203's), that offset trades off exactly against the
   dataset's own calibration, so the data cannot say how much of that lab's level is "no metric" and how
   much is the lab; the split still matters, as prediction averages the calibrations. The shipped model
   puts -0.64 in z there, so a flawless 1080p session scores 4.1 from its bitrates against 4.8 with the
   mapping's quality as its VMAF (2.6 against 4.1 at 360p, 400 kbps). Without the offset
   (``mapped_offset=False``: a session without a metric scores as with the mapping's quality for a metric)
   Waterloo SQoE-IV left out falls from 0.710 to 0.689 (three seeds) and the stall costs by quality fit
   worse (docs/results.md).
4. **Rebuffering guard.** The g_i are bounded (tanh), so a stall penalty learned from the training data
   stops growing where the data stop (a stall share of at most 0.29 of a session's wall time). Beyond a
   stall share of ``stall_guard`` (0.3), the stalls' M also gets ``max(0, r - r0)``, r = log(1 + stall
   time / media played) and r0 its value at the guard, with weight 1 and nothing learned: the score above
   the floor is then at most the no-rebuffering one times ``(1 - share) / (1 - stall_guard)``, so
   rebuffering that outlasts the playback brings a session near the floor. Inside the training range the
   data alone decide (files written before the guard name none and have none).
5. **The wait before playback.** No dataset here identifies what a startup delay costs, so besides its
   learned part (which fades as the session plays) the startup's M gets ``log(1 + w * startup / media
   played)`` with w = ``startup_weight`` (1/3, ITU-T P.1203.3's weight of initial loading against
   stalling) and nothing learned: the score above the floor is multiplied by ``media / (media + w *
   startup)``, the share of the session's time spent watching with the wait counted at a third. An 8-s
   startup then costs about 4 % of what lies above the floor in a 60-s session and 21 % in a 10-s one
   (files written before it name none and have none).

6. **A stall's momentary dip** (``stall_dip``, the recipe's since 2026-12-07). Viewers' per-second ratings
   drop deeply during a stall at any quality and recover within seconds, while a share of the score above
   the floor is small where that score is low. So the stalls also give D = w sum log(1 + elapsed length)
   exp(-age / tau_dip) >= 0 (w >= 0 and a short memory tau_dip, both learned, age = media played since the
   stall), and the score above the floor B becomes ``B exp(-D / B)``: at most D lower, never below the
   floor, exactly B without stalls. The cost ``B - B exp(-D / B)`` grows with B, so a stall still costs no
   less in a better session, for any weights (files written before it have no dip).

Training (:meth:`SessionQoEModel.fit`) minimises the squared error of the session scores of several
datasets together (each through its own positive affine calibration of z, so labs with different scale
use do not fight; prediction uses the average calibration of the datasets with session scores) plus the squared error of the curve against
per-second (continuous-time) ratings where given. Model directories: ``model.safetensors`` +
``model.json`` (``"estimator": "SessionQoEModel"``).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepqoe.config import SessionFusion, SessionStallPenalty, session_term_ok, session_term_range
from deepqoe.errors import DeepQoEError

MAX_STEPS = 4096          # media steps of the quality track (longer sessions use longer steps)
MAX_CURVE_POINTS = 4096   # points of a per-second curve (longer sessions: equal wall-time bins)
MAX_STALLS = 64           # stalls kept for the recency term (the most recent ones)
#: a stall counts in the stall rate as ``1 - exp(-(length / STALL_EVENT_TAU)^2)`` of one event: a whole one
#: from about 6 ms (far below a frame; the shortest stall in the training logs, 15 ms, counts 1), nothing at
#: zero length, so the score is continuous in a stall's length (a 1e-9-s stall from rounded timestamps costs
#: nothing); squared, so that it is also flat there: a stall of microseconds counts ~(length / 2 ms)^2, not
#: length / 2 ms, and even a barely trained model gives it no visible cost
STALL_EVENT_TAU = 0.002
DEVICES = ("pc", "mobile", "tablet", "tv", "unknown")
DEFAULT_DISPLAY_HEIGHT = 1080.0
PART_FEATURES = {
    "quality": ("q_running_mean", "q_memory_mean", "q_memory_now"),
    "stalls": ("stall_rate_log", "stall_share", "stall_longest_log", "stall_recency"),
    "startup": ("startup_recency",),
    "switches": ("switch_rate_log", "switch_recency"),
}
#: the parts of ``fusion="logit"`` (model files written before the other fusions): no startup recency
LOGIT_PART_FEATURES = {**PART_FEATURES, "startup": ("startup_log",)}
PART_SIGN = {"quality": 1.0, "stalls": -1.0, "startup": -1.0, "switches": -1.0}
#: the stall share of the wall time beyond which the rebuffering guard holds (about the largest share in the
#: session-score training data, 0.29); ``SessionQoEModel(stall_guard=None)`` turns it off
STALL_GUARD = 0.3
_STALL_SHARE_COLUMN = 1  # the stall share's column in the stalls' part
#: what the wait before playback costs, as a share of rebuffering time: ITU-T P.1203.3 counts the initial
#: loading as a third of its length of stalling (its random-forest part adds startup / 3 to the stall time),
#: and Allard, Roskuski & Claypool measured an interruption about twice as costly as the same buffering before
#: playback. No dataset here identifies it (docs/results.md), so it is taken from the standard, not learned;
#: ``SessionQoEModel(startup_weight=None)`` turns it off
STARTUP_WEIGHT = 1.0 / 3.0
#: the initial memory (s of media played) of a stall's momentary dip (``SessionQoEModel(stall_dip=True)``); learned
DIP_TAU_INIT = 5.0
IMPAIRMENTS = ("stalls", "startup", "switches")
FUSIONS = typing.get_args(SessionFusion)  # ("hybrid", "multiplicative", "logit"), named in deepqoe.config
STALL_PENALTIES = typing.get_args(SessionStallPenalty)  # ("share", "both"), named in deepqoe.config


def logit_penalties(fusion: str, stall_penalty: str) -> tuple[str, ...]:
    """The impairments with a penalty inside the sigmoid (L_i): the hybrid fusion's three, less the stalls
    with ``stall_penalty="share"``; none for the other fusions."""
    return tuple(p for p in IMPAIRMENTS if fusion == "hybrid" and not (p == "stalls" and stall_penalty == "share"))


# ============================================================================ phase 1: quality mapping
#: codec family -> the starts of the codec strings that name it: plain names, encoder names and the RFC 6381
#: strings players log ("avc1.64001f", "hvc1.1.6.L93.B0", "vp09.00.10.08", "av01.0.04M.08"). Each family
#: uses its learned offset; a family the fitting data lacks takes the offset of the next one in
#: FAMILY_FALLBACK (AV1 -> VP9 -> HEVC -> H.264: each at least as efficient as the next).
CODEC_FAMILIES = {
    "av1": ("av01", "av1", "libaom", "libsvtav1", "svt-av1", "svtav1", "rav1e", "libdav1d"),
    "vp9": ("vp09", "vp9", "libvpx-vp9"),
    "hevc": ("hvc1", "hev1", "hevc", "h265", "h.265", "x265", "libx265"),
    "h264": ("avc1", "avc3", "avc", "h264", "h.264", "x264", "libx264", "openh264"),
}
FAMILY_FALLBACK = {"av1": "vp9", "vp9": "hevc", "hevc": "h264"}
#: bits per pixel are counted per frame at this frame rate or more: a lower rate's extra bits per frame are not
#: credited (no objective measure here sizes what the judder costs viewers; VMAF of repeated frames
#: overstates it), so a lower frame rate never raises the mapped quality
FPS_FULL = 24.0
#: the frame rate at which ``QualityMapping.fps_exponent`` leaves the bits per frame as they are
FPS_REFERENCE = 30.0
#: what a frame rate below 24 fps costs (``QualityMapping.frame_rate_term``): "p1203" is the degradation due
#: to frame-rate reduction of ITU-T P.1203.1 (``D_t = (100 - D_q - D_u) (t1 - t2 fps) / (t3 + fps)`` for
#: fps < 24: a share of the quality left after compression and upscaling, the share below), the one published
#: measure of it: no dataset here goes below 24 fps; "none": no cost (mappings written before it)
FRAME_RATE_TERMS = ("none", "p1203")
P1203_FRAME_RATE = (30.98, 1.29, 64.65)   # t1, t2, t3 of ITU-T P.1203.1
#: 24000/1001 (NTSC film) is 24p: below this a frame rate is reduced
FPS_REDUCED_BELOW = 24000.0 / 1001.0 - 1e-3


def _frame_rate(fps) -> np.ndarray:
    """Segments' frame rates, 30 fps where missing or not positive (the mapping's one reading of them)."""
    f = np.asarray(fps, float)
    return np.where(np.isfinite(f) & (f > 0), f, 30.0)


def frame_rate_kept(fps, term: str = "p1203") -> np.ndarray:
    """The share of a segment's quality that its frame rate keeps (1 at 24 fps or more; with "p1203" it
    falls to 0.85 at 15 fps and 0.53 at 0.5 fps; missing or non-positive rates count as 30 fps)."""
    if term not in FRAME_RATE_TERMS:
        raise ValueError(f"frame_rate_term must be one of {', '.join(FRAME_RATE_TERMS)}, not {term!r}")
    f = _frame_rate(fps)
    if term == "none":
        return np.ones_like(f)
    t1, t2, t3 = P1203_FRAME_RATE
    lost = np.where(f < FPS_REDUCED_BELOW, np.clip((t1 - t2 * f) / (t3 + f), 0.0, 1.0), 0.0)
    return 1.0 - lost


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def codec_family(codec) -> str:
    """The codec family of a segment's codec string (see CODEC_FAMILIES; unknown or missing: H.264)."""
    text = str(codec).strip().lower() if codec else ""
    for family, starts in CODEC_FAMILIES.items():
        if text.startswith(starts):
            return family
    return "h264"


@dataclass
class QualityMapping:
    """Quality (0-100, VMAF-like) of a segment from what a player log has:

        q = 100 * sigmoid(z) * sigmoid(r0 + c_res * log2(min(h, display) / display)) / sigmoid(r0)
        z = bias + codec offset + w_bpp * log2(bitrate / (width * height * F)) + w_h * log2(h / 1080)
        F = 30 * (max(fps, 24) / 30) ** fps_exponent

    sigmoid(z) is the compression fidelity at the coded resolution; the second factor (1 at the display's
    resolution) is the ceiling that upscaling to the display puts on it; below 24 fps the product is
    multiplied by :func:`frame_rate_kept` (``frame_rate_term``: P.1203.1's frame-rate degradation, not
    fitted). Every weight is >= 0 and
    w_h <= 2 w_bpp, so quality never falls with more bitrate (at a fixed
    resolution, frame rate and codec) and, at a fixed bitrate, more pixels never raise the compression
    fidelity: a higher resolution wins only where the fidelity saturates (high bitrates), the crossover
    of a bitrate ladder. F is the frame rate the bits are shared over: with ``fps_exponent`` 1 (mappings
    written before it) bits per pixel per frame; below 1, twice the frame rate needs only 2 ** fps_exponent
    times the bitrate for the same fidelity (consecutive frames are more alike; measured on the encode grid,
    ``deepqoe reproduce quality_mapping``). ``w_res`` and ``w_fps`` are logit terms of the older additive
    form (zero in mappings fitted now; read from older model files, whose c_res is zero).
    """

    bias: float = -1.0
    w_bpp: float = 1.0
    w_res: float = 0.0
    w_fps: float = 0.0
    w_h: float = 0.0
    c_res: float = 0.0
    r0: float = 4.0
    codec_offset: dict | None = None
    median_log_bpp: float = -4.0
    frame_rate_term: str = "none"
    fps_exponent: float = 1.0

    def __post_init__(self):
        frame_rate_kept(30.0, self.frame_rate_term)  # a bad name fails here, not at the first prediction
        if not 0.0 <= float(self.fps_exponent) <= 1.0:  # more frames never need fewer bits, nor more than pro rata
            raise ValueError(f"fps_exponent must be in [0, 1], not {self.fps_exponent!r}")

    def _inputs(self, bitrate_kbps, width, height, fps, display_height):
        h = np.asarray(height, float)
        w = np.where(np.isfinite(width), width, h * 16.0 / 9.0)
        f = _frame_rate(fps)
        disp = np.broadcast_to(np.asarray(display_height, float), h.shape)
        h = np.where(np.isfinite(h), h, 720.0)
        w = np.where(np.isfinite(w), w, 1280.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            shared = FPS_REFERENCE * (np.maximum(f, FPS_FULL) / FPS_REFERENCE) ** float(self.fps_exponent)
            # a sum of logs, not the log of a quotient: no overflow or underflow to +-inf for extreme sizes
            lbpp = (np.log2(np.asarray(bitrate_kbps, float)) + math.log2(1000.0) - np.log2(w) - np.log2(h)
                    - np.log2(shared))
        # unknown (NaN) bitrate: the typical bits per pixel; any number, however extreme, stays monotone
        lbpp = np.clip(np.where(np.isnan(lbpp), self.median_log_bpp, lbpp), -20.0, 10.0)
        res = np.log2(np.clip(np.minimum(h, disp) / disp, 1e-3, 1.0))
        return lbpp, res, np.clip(np.log2(f / 30.0), -5, 5), np.clip(np.log2(h / 1080.0), -6, 4)

    def codec_offsets(self, codec, shape) -> np.ndarray:
        off = self.codec_offset or {}

        def lookup(c):
            fam = codec_family(c)
            while fam not in off and fam in FAMILY_FALLBACK:
                fam = FAMILY_FALLBACK[fam]
            return off.get(fam, 0.0)

        flat = np.broadcast_to(np.asarray(codec, dtype=object), shape).ravel()
        names = {c: lookup(c) for c in set(flat.tolist())}  # a session has one or two codec strings
        return np.array([names[c] for c in flat.tolist()], float).reshape(shape)

    def __call__(self, bitrate_kbps, width, height, fps, codec, display_height=DEFAULT_DISPLAY_HEIGHT):
        lbpp, res, lf, lh = self._inputs(bitrate_kbps, width, height, fps, display_height)
        z = (self.bias + self.codec_offsets(codec, lbpp.shape) + self.w_bpp * lbpp + self.w_res * res
             + self.w_fps * lf + self.w_h * lh)
        ceiling = _sigmoid(self.r0 + self.c_res * res) / _sigmoid(self.r0)
        return 100.0 * _sigmoid(z) * ceiling * frame_rate_kept(np.broadcast_to(fps, z.shape), self.frame_rate_term)

    def state(self) -> dict:
        return {k: getattr(self, k) for k in ("bias", "w_bpp", "w_res", "w_fps", "w_h", "c_res", "r0",
                                              "codec_offset", "median_log_bpp", "frame_rate_term",
                                              "fps_exponent")}


@dataclass
class MappingRows:
    """Segments with a measured quality (VMAF, 0-100) and what the mapping reads: the fitting data of
    :func:`fit_quality_mapping`. ``source`` names where each row comes from (each source weighs the same)."""

    bitrate_kbps: np.ndarray
    width: np.ndarray
    height: np.ndarray
    fps: np.ndarray
    codec: np.ndarray
    display_height: np.ndarray
    quality: np.ndarray
    source: np.ndarray

    FIELDS = ("bitrate_kbps", "width", "height", "fps", "codec", "display_height", "quality", "source")

    @classmethod
    def from_sessions(cls, sessions: Sequence, source: str | Sequence[str] = "sessions") -> "MappingRows":
        """Every segment of ``sessions`` that has a measured quality, a bitrate and a height; ``source``: one
        name, or one per session."""
        cols: dict[str, list] = {k: [] for k in cls.FIELDS}
        labels = [source] * len(sessions) if isinstance(source, str) else list(source)
        for s, label in zip(sessions, labels, strict=True):
            disp = float(s.context.get("display_height") or DEFAULT_DISPLAY_HEIGHT)
            ok = np.flatnonzero(np.isfinite(s.quality) & np.isfinite(s.bitrate_kbps) & np.isfinite(s.height))
            for k, v in (("bitrate_kbps", s.bitrate_kbps), ("width", s.width), ("height", s.height),
                         ("fps", s.fps), ("codec", s.codec), ("quality", s.quality)):
                cols[k].extend(np.asarray(v)[ok].tolist())
            cols["display_height"].extend([disp] * len(ok))
            cols["source"].extend([label] * len(ok))
        return cls.from_columns(cols)

    @classmethod
    def from_columns(cls, cols: dict) -> "MappingRows":
        return cls(**{k: np.asarray(cols[k], dtype=object if k in ("codec", "source") else float)
                      for k in cls.FIELDS})

    def subset(self, mask) -> "MappingRows":
        return MappingRows.from_columns({k: getattr(self, k)[mask] for k in self.FIELDS})

    def __add__(self, other: "MappingRows") -> "MappingRows":
        return MappingRows.from_columns({k: np.concatenate([getattr(self, k), getattr(other, k)])
                                         for k in self.FIELDS})

    def __len__(self) -> int:
        return len(self.quality)


def fit_quality_mapping(data, seed: int = 0, form: str = "ceiling", reference: str | None = None,
                        fps_exponent: float = 1.0, hold: QualityMapping | None = None) -> QualityMapping:
    """Fit :class:`QualityMapping` by least squares on ``data`` (:class:`MappingRows`, or sessions: their
    segments with a measured quality), the mean squared error of each source weighing the same. Each source
    has its own bias (its contents' difficulty: a clip of grass needs more bits than a talk show); the
    mapping keeps the bias of the largest source (``reference``: by name), so a source of a few clips
    teaches the shape (how quality moves with bitrate, resolution, codec) without moving the level.
    ``form``: "ceiling" (the mapping's form) or "additive" (the older form: the resolution and frame-rate
    terms inside the logit, no w_h bound; kept for the comparison of ``deepqoe reproduce quality_mapping``).
    ``fps_exponent`` is given, not fitted (:attr:`QualityMapping.fps_exponent`; measured apart from this fit,
    on encodes of the same clips at two frame rates).

    ``hold`` (a ceiling mapping): keep its shape (bias, weights, ceiling) and its codec offsets, and fit only
    the offsets of the codec families it lacks (and the sources' biases): a codec measured on a few clips
    then gets its own offset without moving what every codec shares."""
    rows = data if isinstance(data, MappingRows) else MappingRows.from_sessions(data)
    if len(rows) < 20:
        raise DeepQoEError("fitting the quality mapping needs at least 20 segments with both a quality metric "
                           "and a bitrate")
    if form not in ("ceiling", "additive"):
        raise ValueError(f"unknown mapping form {form!r}")
    if hold is not None and (form != "ceiling" or hold.frame_rate_term != "p1203" or hold.c_res <= 0):
        raise ValueError("hold takes a ceiling mapping (with the P.1203 frame-rate term) and form='ceiling'")
    lbpp, res, lf, lh = QualityMapping(fps_exponent=fps_exponent)._inputs(
        rows.bitrate_kbps, rows.width, rows.height, rows.fps, rows.display_height)
    fam = np.array([codec_family(c) for c in rows.codec])
    families = sorted(set(fam), key=lambda c: (c != "h264", c))  # H.264 is the reference when present
    t = lambda a: torch.tensor(np.asarray(a, float), dtype=torch.float64)  # noqa: E731
    C = t(np.stack([fam == c for c in families[1:]], 1) if len(families) > 1 else np.zeros((len(fam), 0)))
    y = t(np.clip(rows.quality.astype(float), 0, 100) / 100.0)
    counts = {s: int(np.sum(rows.source == s)) for s in sorted(set(rows.source.tolist()))}
    ref = reference if reference in counts else max(counts, key=lambda s: (counts[s], s))
    others = [s for s in counts if s != ref]
    weight = t(np.array([1.0 / counts[s] for s in rows.source.tolist()]) / len(counts))
    S = t(np.stack([rows.source == s for s in others], 1) if others else np.zeros((len(rows), 0)))
    lbpp_, res_, lf_, lh_ = map(t, (lbpp, res, lf, lh))
    term = "p1203" if form == "ceiling" else "none"
    kept = t(frame_rate_kept(rows.fps, term))  # known, not fitted (1 at 24 fps or more)
    C = torch.cat([C, S], 1)  # codec offsets, then source biases (the reference source's is the bias)

    # parameters: bias, w_bpp, w_h, c_res (additive: w_res), r0 (additive: w_fps), one offset per codec family
    def weights(v):
        w_bpp = F.softplus(v[1])
        if form == "ceiling":   # w_h in [0, 2 w_bpp]; c_res >= 0; r0 free
            return w_bpp, 2 * w_bpp * torch.sigmoid(v[2]), F.softplus(v[3]), v[4]
        return w_bpp, F.softplus(v[2]), F.softplus(v[3]), F.softplus(v[4])

    def predict(v):
        w_bpp, w_h, a, b = weights(v)
        z = v[0] + w_bpp * lbpp_ + w_h * lh_ + (C @ v[5:] if C.shape[1] else 0.0)
        if form == "ceiling":
            return torch.sigmoid(z) * torch.sigmoid(b + a * res_) / torch.sigmoid(b) * kept
        return torch.sigmoid(z + a * res_ + b * lf_)

    def fit(start, free=None):
        """Least squares from ``start``; ``free``: 1 for the parameters that move, 0 for the held ones."""
        p = start.clone().requires_grad_(True)
        if free is not None:
            p.register_hook(lambda g: g * free)
        opt = torch.optim.LBFGS([p], max_iter=1000, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = (weight * (predict(p) - y) ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            return float((weight * (predict(p) - y) ** 2).sum()), p.detach()

    if hold is not None:  # one start at the held mapping; only the new codecs' offsets and source biases move
        if str(families[0]) not in hold.codec_offset:
            raise ValueError(f"hold has no offset for {families[0]!r}, the reference codec of these rows")
        start = torch.zeros(5 + C.shape[1], dtype=torch.float64)
        start[0], start[1] = hold.bias, math.log(math.expm1(hold.w_bpp))
        share = min(max(hold.w_h / (2 * hold.w_bpp), 1e-9), 1 - 1e-9)
        start[2], start[3], start[4] = math.log(share / (1 - share)), math.log(math.expm1(hold.c_res)), hold.r0
        held = [str(c) in hold.codec_offset for c in families[1:]]
        for k, c in enumerate(families[1:]):
            if held[k]:
                start[5 + k] = float(hold.codec_offset[str(c)]) - float(hold.codec_offset[str(families[0])])
        free = torch.tensor([0.0] * 5 + [0.0 if h else 1.0 for h in held] + [1.0] * (C.shape[1] - len(held)),
                            dtype=torch.float64)
        _, v = fit(start, free)
        new = {str(c): float(v[5 + k]) + float(hold.codec_offset[str(families[0])])
               for k, c in enumerate(families[1:]) if not held[k]}
        return replace(hold, codec_offset={**hold.codec_offset, **new})

    # a few starts (the product form has flat regions): the best fit wins
    gen = torch.Generator().manual_seed(seed)
    starts = [0.3 * torch.randn(5 + C.shape[1], generator=gen, dtype=torch.float64) * (k > 0) for k in range(4)]
    if form == "ceiling":  # r0 near 3: a ceiling near 1 at the display's resolution
        for st in starts:
            st[4] += 3.0
    _, v = min((fit(st) for st in starts), key=lambda r: r[0])
    w_bpp, w_h, a, b = (float(x) for x in weights(v))
    offsets = {str(families[0]): 0.0} | {str(c): float(v[5 + k]) for k, c in enumerate(families[1:])}
    common = dict(bias=float(v[0]), w_bpp=w_bpp, w_h=w_h, codec_offset=offsets, median_log_bpp=float(np.median(lbpp)),
                  fps_exponent=float(fps_exponent))
    if form == "ceiling":
        return QualityMapping(**common, c_res=a, r0=b, frame_rate_term=term)
    return QualityMapping(**common, w_res=a, w_fps=b)


#: the mapping that ships with deepqoe: ``deepqoe reproduce quality_mapping`` writes it (Waterloo SQoE-IV's
#: chunks + an encode grid of real clips, objective VMAF only; ``docs/results.md#quality-mapping``)
BUILTIN_MAPPING = Path(__file__).resolve().parent / "quality_mapping.json"


def builtin_quality_mapping() -> QualityMapping:
    """The shipped :class:`QualityMapping` (``sessions/quality_mapping.json``)."""
    import json

    try:
        return QualityMapping(**json.loads(BUILTIN_MAPPING.read_text(encoding="utf-8"))["mapping"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DeepQoEError(f"the built-in quality mapping cannot be read ({type(e).__name__}: {e}); reinstall "
                           "deepqoe", file=str(BUILTIN_MAPPING)) from None


# ============================================================================ phase 1: session -> parts
def _step_means(bounds: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The time-weighted mean of a piecewise-constant series (``values[k]`` on ``[bounds[k], bounds[k + 1])``)
    over each step ``[edges[j], edges[j + 1])``: a boundary anywhere inside a step counts by the share of the
    step on each side, so the track moves continuously with segment boundaries (a boundary at 2.5 s and at
    2.5 + 1e-10 s give the same track). NaN values are left out; a step with none is NaN."""
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    d = np.diff(bounds)
    area = np.interp(edges, bounds, np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0) * d)]))
    known = np.interp(edges, bounds, np.concatenate([[0.0], np.cumsum(ok * d)]))
    num, den = np.diff(area), np.diff(known)
    some = den > 1e-12
    return np.where(some, num / np.where(some, den, 1.0), np.nan)


def sampled_steps(s) -> tuple[np.ndarray, float, tuple]:
    """Stage 1 of a session's quality track: (its metric over each media step, NaN where it gives none; the
    step length in s; the segment grid, for :func:`quality_track`). A segment's value counts in a step by
    the share of the step it covers (:func:`_step_means`). A session whose steps are all NaN has no metric:
    its track comes from the quality mapping (stage 2, :func:`quality_track`)."""
    M = float(s.media_duration)
    dt = max(1.0, math.ceil(M / MAX_STEPS)) if np.isfinite(M) else float(MAX_STEPS)
    n = max(1, int(math.ceil(min(M, MAX_STEPS * dt) / dt - 1e-9)))
    bounds = np.append(np.asarray(s.seg_start, float), M)
    bounds = np.maximum.accumulate(bounds)  # contiguous segments (the session's check); ordered for interp
    edges = np.clip(np.arange(n + 1) * dt, 0.0, bounds[-1])
    if edges[-1] < bounds[-1]:
        edges[-1] = bounds[-1]
    if s.quality_per_second is not None and len(s.quality_per_second):
        qps = np.asarray(s.quality_per_second, float)
        t = (np.arange(n) + 0.5) * dt
        q = qps[np.minimum((t).astype(np.int64), len(qps) - 1)]
    else:
        q = _step_means(bounds, s.quality, edges)
    return q, dt, (bounds, edges)


def has_metric(sampled: tuple) -> bool:
    """True when :func:`sampled_steps` found a metric (else the track needs the mapping)."""
    return bool(np.isfinite(sampled[0]).any())


def quality_track(sampled: tuple, mapped: np.ndarray | None) -> tuple[np.ndarray, float, bool]:
    """Stage 2: (q per media step in 0-1, step length in s, from a metric?) of :func:`sampled_steps`' output;
    a metric's gaps are filled with its own mean, a session without one takes ``mapped`` (the mapping's
    quality of each segment, :func:`mapped_segments`), over each step as the metric is."""
    q, dt, (bounds, edges) = sampled
    metric = has_metric(sampled)
    if metric and not np.isfinite(q).all():  # fill gaps of a metric with the metric's own mean
        q = np.where(np.isfinite(q), q, np.nanmean(q))
    elif not metric:
        q = _step_means(bounds, mapped, edges)
    return np.clip(np.nan_to_num(q, nan=50.0), 0, 100) / 100.0, dt, metric


def quality_steps(s, mapping: QualityMapping) -> tuple[np.ndarray, float, bool]:
    """The quality track of one session: (q per media step in 0-1, step length in s, from a metric?) (a batch
    maps its sessions without a metric together: :func:`make_batch`)."""
    sampled = sampled_steps(s)
    return quality_track(sampled, None if has_metric(sampled) else mapped_segments([s], mapping)[0])


def mapped_segments(sessions: Sequence, mapping: QualityMapping) -> list[np.ndarray]:
    """The mapping's quality (0-100) of every segment of each session, in one vectorised call for all of them
    (each session on its own display height)."""
    if not len(sessions):
        return []
    cat = lambda f: np.concatenate([np.asarray(f(s), float) for s in sessions])  # noqa: E731
    disp = cat(lambda s: np.full(s.n_segments, float(s.context.get("display_height") or DEFAULT_DISPLAY_HEIGHT)))
    codec = [c for s in sessions for c in s.codec]
    q = mapping(cat(lambda s: s.bitrate_kbps), cat(lambda s: s.width), cat(lambda s: s.height),
                cat(lambda s: s.fps), codec, disp)
    return np.split(q, np.cumsum([s.n_segments for s in sessions])[:-1])


@dataclass
class Batch:
    """Sessions prepared for the network: quality tracks (B, J) and evaluation points (P)."""

    q: torch.Tensor            # (B, J) quality 0-1, padded with the last value
    decay_steps: torch.Tensor  # (B,) step length in seconds
    device: torch.Tensor       # (B,) device index
    mapped: torch.Tensor       # (B,) 1.0 when the quality comes from the mapping
    p_sess: torch.Tensor       # (P,) session of each evaluation point
    p_step: torch.Tensor       # (P,) last media step played at that point
    fixed: torch.Tensor        # (P, 7) q_running_mean, stall_rate_log, stall_share, stall_longest_log,
    #                            startup_log, switch_rate_log, media_played (s)
    st_age: torch.Tensor       # (P, S) media age of each started stall (s)
    st_mag: torch.Tensor       # (P, S) log(1 + elapsed duration) of each stall (0 = not started)
    sw_recent: torch.Tensor    # (B, J) switches in each step (for the running recency sum)
    t_wall: np.ndarray         # (P,) wall time of each point


def _session_points(s, eval_wall: np.ndarray, q: np.ndarray, dt: float, switches: np.ndarray):
    """Prefix features of one session at wall times ``eval_wall`` (ascending)."""
    M = float(s.media_duration)
    ss, sd = np.asarray(s.stall_start, float), np.asarray(s.stall_duration, float)
    order = np.argsort(ss, kind="stable")
    ss, sd = np.minimum(ss[order], M), np.clip(sd[order], 0, 1e12)
    init = ss <= 1e-6
    startup = float(sd[init].sum())
    rs, rd = ss[~init], sd[~init]
    # wall time at which each rebuffering stall starts: its media position + startup + earlier stalls
    wstart = rs + startup + np.concatenate([[0.0], np.cumsum(rd)[:-1]])
    t = np.asarray(eval_wall, float)
    # elapsed time of each stall at each point, and the media played by then
    el = np.clip(t[:, None] - wstart[None, :], 0.0, rd[None, :])           # (P, R)
    stall_time = el.sum(1)
    media = np.clip(t - np.minimum(t, startup) - stall_time, 0.0, M)
    started = (t[:, None] >= wstart[None, :]) & (rd[None, :] > 0)
    n_st = (started * -np.expm1(-(el / STALL_EVENT_TAU) ** 2)).sum(1)   # stall events so far (STALL_EVENT_TAU)
    m_eff = np.maximum(media, 1.0)
    step = np.clip(np.ceil(media / dt - 1e-9).astype(np.int64) - 1, 0, len(q) - 1)
    csum = np.cumsum(q)
    q_run = csum[step] / (step + 1)
    longest = el.max(1) if el.shape[1] else np.zeros(len(t))
    # switches up to each point (Session.switches: a change of representation, never VBR jitter)
    sw_pos = s.seg_start[1:][switches]
    n_sw = np.searchsorted(sw_pos, media, side="right")
    fixed = np.stack([q_run, np.log1p(60.0 * n_st / m_eff), stall_time / np.maximum(stall_time + media, 1e-9),
                      np.log1p(longest), np.log1p(np.minimum(t, startup)), np.log1p(60.0 * n_sw / m_eff),
                      media], 1)
    age = np.where(started, media[:, None] - rs[None, :], 0.0)
    mag = np.where(started, np.log1p(el), 0.0)
    if age.shape[1] > MAX_STALLS:
        age, mag = age[:, -MAX_STALLS:], mag[:, -MAX_STALLS:]
    sw_steps = np.bincount(np.clip((sw_pos / dt).astype(np.int64), 0, len(q) - 1), minlength=len(q))[:len(q)]
    return step, fixed, age, mag, sw_steps


def wall_points(s, every_second: bool) -> np.ndarray:
    """Evaluation times: the end of playback, or every wall second (at most MAX_CURVE_POINTS, equal bins)."""
    W = float(s.media_duration + s.stall_total)
    if not np.isfinite(W):
        W = 1e15
    if not every_second:
        return np.array([W])
    k = int(math.ceil(W - 1e-9))
    if k <= MAX_CURVE_POINTS:
        t = np.minimum(np.arange(1, max(k, 1) + 1, dtype=float), W)
        t[-1] = W  # the last point is the end of playback: the session score
        return t
    return W * np.arange(1, MAX_CURVE_POINTS + 1) / MAX_CURVE_POINTS


def make_batch(sessions: Sequence, mapping: QualityMapping, curves: bool | Sequence[bool] = False) -> Batch:
    """Prepare sessions; ``curves`` (per session or for all) adds a point per wall second."""
    n = len(sessions)
    want = [bool(curves)] * n if isinstance(curves, bool) else [bool(c) for c in curves]
    qs, dts, maps, pts = [], [], [], []
    sampled = [sampled_steps(s) for s in sessions]
    need = [k for k, x in enumerate(sampled) if not has_metric(x)]  # mapped together, in one call
    mapped = dict(zip(need, mapped_segments([sessions[k] for k in need], mapping)))
    for k, (s, c) in enumerate(zip(sessions, want)):
        q, dt, metric = quality_track(sampled[k], mapped.get(k))
        qs.append(q)
        dts.append(dt)
        maps.append(0.0 if metric else 1.0)
        pts.append(_session_points(s, wall_points(s, c), q, dt, s.switches()) + (wall_points(s, c),))
    J = max(len(q) for q in qs)
    S = max(1, max(p[2].shape[1] for p in pts))
    Q = np.zeros((n, J))
    SW = np.zeros((n, J))
    for b, q in enumerate(qs):
        Q[b, :len(q)] = q
        Q[b, len(q):] = q[-1]
        SW[b, :len(q)] = pts[b][4]

    def pad(a):
        return np.pad(a, ((0, 0), (0, S - a.shape[1])))

    tt = lambda a, dt=torch.float32: torch.as_tensor(np.asarray(a), dtype=dt)  # noqa: E731
    return Batch(
        q=tt(Q), decay_steps=tt(dts), mapped=tt(maps),
        device=tt([DEVICES.index(s.device) if s.device in DEVICES else DEVICES.index("unknown") for s in sessions],
                  torch.long),
        p_sess=tt(np.concatenate([np.full(len(p[0]), b) for b, p in enumerate(pts)]), torch.long),
        p_step=tt(np.concatenate([p[0] for p in pts]), torch.long),
        fixed=tt(np.concatenate([p[1] for p in pts])),
        st_age=tt(np.concatenate([pad(p[2]) for p in pts])), st_mag=tt(np.concatenate([pad(p[3]) for p in pts])),
        sw_recent=tt(SW), t_wall=np.concatenate([p[5] for p in pts]))


# ============================================================================ phases 2 and 3: the network
class PositiveLinear(nn.Module):
    """A linear layer whose weights are softplus(raw) >= 0: monotone non-decreasing in every input."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.raw = nn.Parameter(torch.randn(n_out, n_in) * 0.3 - 1.0)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return F.linear(x, F.softplus(self.raw), self.bias)


def memory_track(b: Batch, up: torch.Tensor, down: torch.Tensor, switch_tau: torch.Tensor) -> torch.Tensor:
    """The causal per-step tracks of K networks at once (rates ``up``, ``down``, ``switch_tau``: shape (K,)):
    (K, B, J, 3) = quality memory m (follows drops at rate ``down`` >= gains at ``up``, per second), its
    running mean, and the switch recency (switches per step, exponentially forgotten)."""
    up_b = 1 - (1 - up[:, None]) ** b.decay_steps[None]      # (K, B): rates per step of decay_steps s
    down_b = 1 - (1 - down[:, None]) ** b.decay_steps[None]
    sw_dec = torch.exp(-b.decay_steps[None] / torch.exp(switch_tau)[:, None])
    m = b.q[:, 0].expand_as(up_b)
    swr = torch.zeros_like(up_b)
    ms, sws = [], []
    for j in range(b.q.shape[1]):
        qj = b.q[:, j]
        m = m + torch.where(qj < m, down_b, up_b) * (qj - m)
        swr = swr * sw_dec + b.sw_recent[:, j]
        ms.append(m)
        sws.append(swr)
    m_all = torch.stack(ms, 2)                                 # (K, B, J)
    steps = torch.arange(1, m_all.shape[2] + 1, dtype=m_all.dtype)
    return torch.stack([m_all, m_all.cumsum(2) / steps, torch.stack(sws, 2)], 3)


def calibration_points(k: int | None, b) -> torch.Tensor | None:
    """The calibration index ``k`` at every evaluation point of ``b`` (None: the average calibration)."""
    return None if k is None else torch.full_like(b.p_sess, k)


class SessionQoENet(nn.Module):
    """Parts -> g_i (monotone) -> fusion -> representation -> a score inside 1-5.

    The quality part alone goes through the FC layer and the head to z. Each impairment part (stalls,
    startup, switches) gives ``d_i = tanh(g_i(0)) - tanh(g_i(x_i)) >= 0`` (0 without the impairment, growing
    with it), and non-negative weights turn it into penalties:

    * ``fusion="hybrid"`` (the default): ``1 + 4 sigmoid(a (z - sum L_i) + c) exp(-sum M_i)``, with
      ``L_i = l_i . d_i`` inside the sigmoid (a penalty that shrinks near the ends of the scale) and
      ``M_i = m_i . d_i`` a share of what lies above the floor (a penalty that grows with the quality it
      interrupts, as viewers' stall costs do, and as SQI models them); the data set the mix for startup
      and switches; stalls take ``M`` alone with ``stall_penalty="share"`` (the recipe's; ``"both"``, the
      form of hybrid files written before the choice, gives them an ``L`` too).
    * ``fusion="multiplicative"``: the share only (``L_i = 0``).
    * ``fusion="logit"``: every part's g_i concatenated into one FC layer and the head gives
      ``1 + 4 sigmoid(z)`` (the form of model files written before the other two; its startup part has no
      recency).

    With ``stall_dip`` (the recipe's), the score above the floor B is then ``B exp(-D / B)``, D the stalls'
    momentary dip (module docstring, 6.).

    The representation is the quality FC output beside the penalties (M_i, then the L_i there are, then D)."""

    def __init__(self, width: int = 4, hidden: int = 8, n_calibrations: int = 1, fusion: str = "hybrid",
                 stall_guard: float | None = None, startup_weight: float | None = None,
                 stall_penalty: str = "share", stall_dip: bool = False):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
        if stall_penalty not in STALL_PENALTIES:
            raise ValueError(f"stall_penalty must be one of {', '.join(STALL_PENALTIES)}, not {stall_penalty!r}")
        if stall_guard is not None and (fusion == "logit" or not session_term_ok("stall_guard", float(stall_guard))):
            raise ValueError(f"stall_guard must be a stall share in {session_term_range('stall_guard')}, with the "
                             f"hybrid or multiplicative fusion, or None; not {stall_guard!r} with {fusion!r}")
        if startup_weight is not None and (fusion == "logit"
                                           or not session_term_ok("startup_weight", float(startup_weight))):
            raise ValueError(f"startup_weight must be in {session_term_range('startup_weight')} (the startup's weight "
                             f"against stalling), with the hybrid or multiplicative fusion, or None; not "
                             f"{startup_weight!r} with {fusion!r}")
        self.fusion = fusion
        self.logit_penalties = logit_penalties(fusion, stall_penalty)
        self.startup_weight = None if startup_weight is None else float(startup_weight)
        # the guard's stretch at the guard share: r0 = log(1 + s / m) where s / (s + m) = stall_guard
        self.guard_r0 = None if stall_guard is None else -math.log1p(-float(stall_guard))
        # memory track: gain rate a_up, drop rate a_down >= a_up (drops are followed faster)
        self.mem_up = nn.Parameter(torch.tensor(-2.0))
        self.mem_down = nn.Parameter(torch.tensor(0.0))
        if not isinstance(stall_dip, bool) or (stall_dip and fusion == "logit"):
            raise ValueError(f"stall_dip must be true or false (true only with the hybrid or multiplicative fusion), "
                             f"not {stall_dip!r} with {fusion!r}")
        self.stall_dip = stall_dip
        if stall_dip:  # the momentary dip of a stall (module docstring, 6.): its memory and its weight
            self.dip_tau = nn.Parameter(torch.tensor(math.log(DIP_TAU_INIT)))
            self.dip_weight = nn.Parameter(torch.tensor(-1.0))
        self.stall_tau = nn.Parameter(torch.tensor(math.log(30.0)))
        self.switch_tau = nn.Parameter(torch.tensor(math.log(30.0)))
        features = LOGIT_PART_FEATURES if fusion == "logit" else PART_FEATURES
        self.g = nn.ModuleDict({p: PositiveLinear(len(f), width) for p, f in features.items()})
        if fusion == "logit":
            self.fc = PositiveLinear(width * len(PART_FEATURES), hidden)
        else:
            self.fc = PositiveLinear(width, hidden)
            # the weight of each impairment's g_i outputs in its penalty (softplus(raw) >= 0)
            self.penalty = nn.ParameterDict({p: nn.Parameter(torch.randn(width) * 0.3 - 1.0) for p in IMPAIRMENTS})
        if fusion == "hybrid":  # the same g_i outputs also lower z (inside the sigmoid), with their own weights
            self.penalty_logit = nn.ParameterDict({p: nn.Parameter(torch.randn(width) * 0.3 - 1.0)
                                                   for p in self.logit_penalties})
        self.head = PositiveLinear(hidden, 1)
        self.device_offset = nn.Embedding(len(DEVICES), 1)
        nn.init.zeros_(self.device_offset.weight)
        self.mapped_offset = nn.Parameter(torch.tensor(0.0))
        self.cal_scale = nn.Parameter(torch.zeros(n_calibrations))
        self.cal_shift = nn.Parameter(torch.zeros(n_calibrations))
        # the calibrations averaged for prediction (:meth:`SessionQoEModel.fit` keeps those of the datasets
        # with session scores); not part of the weights
        self.register_buffer("default_calibrations", torch.arange(n_calibrations), persistent=False)

    def positive_weights(self) -> list[torch.Tensor]:
        """Every effective (non-negative) weight, for the weight decay of training."""
        ws = [F.softplus(m.raw) for m in self.modules() if isinstance(m, PositiveLinear)]
        if self.fusion != "logit":
            ws += [F.softplus(r) for r in self.penalty.values()]
        if self.fusion == "hybrid":
            ws += [F.softplus(r) for r in self.penalty_logit.values()]
        if self.stall_dip:
            ws.append(F.softplus(self.dip_weight)[None])
        return ws

    def rates(self):
        up = torch.sigmoid(self.mem_up)
        return up, up + (1 - up) * torch.sigmoid(self.mem_down)

    def parts(self, b: Batch, track: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The features of each part at every evaluation point, oriented so that higher = better
        (``track``: this network's :func:`memory_track`, when already computed)."""
        if track is None:
            up, down = self.rates()
            track = memory_track(b, up[None], down[None], self.switch_tau[None])[0]
        at = track[b.p_sess, b.p_step]             # (P, 3)
        fx = b.fixed
        tau = torch.exp(self.stall_tau)
        rec = (b.st_mag * torch.exp(-b.st_age / tau)).sum(1)
        out = {
            "quality": torch.stack([fx[:, 0], at[:, 1], at[:, 0]], 1),
            "stalls": -torch.stack([fx[:, 1], fx[:, 2], fx[:, 3], rec], 1),
            "startup": -(fx[:, 4:5] if self.fusion == "logit" else (fx[:, 4] * torch.exp(-fx[:, 6] / tau))[:, None]),
            "switches": -torch.stack([fx[:, 5], torch.log1p(at[:, 2])], 1),
        }
        if self.stall_dip:  # each stall's log(1 + length) forgotten with the dip's own (short) memory
            out["stall_dip"] = (b.st_mag * torch.exp(-b.st_age / torch.exp(self.dip_tau))).sum(1, keepdim=True)
        if self.startup_weight is not None:  # the wait before playback (module docstring, 5.); not learned
            waited = torch.exp(fx[:, 4:5]) - 1.0                 # the startup so far (s)
            out["startup_wait"] = torch.log1p(self.startup_weight * waited / torch.clamp(fx[:, 6:7], min=1.0))
        return out

    def representation(self, parts: dict) -> torch.Tensor:
        """g_i per part -> fusion: the learned representation at every evaluation point (logit: the FC
        output; otherwise the quality FC output, then M_i of stalls, startup and switches, then (hybrid)
        their L_i)."""
        if self.fusion == "logit":
            h = torch.cat([torch.tanh(self.g[p](parts[p])) for p in PART_FEATURES], 1)
            return torch.tanh(self.fc(h))
        rep = torch.tanh(self.fc(torch.tanh(self.g["quality"](parts["quality"]))))
        pens, pens_logit = [], []
        for p in IMPAIRMENTS:
            # parts are oriented higher = better (impairments negated, 0 without one), g_i is increasing:
            # tanh(g_i(0)) - tanh(g_i(x)) is 0 without the impairment and grows with it
            x = parts[p]
            drop = torch.tanh(self.g[p](torch.zeros_like(x[:1]))) - torch.tanh(self.g[p](x))
            pens.append(F.linear(drop, F.softplus(self.penalty[p])[None]))
            if p == "stalls" and self.guard_r0 is not None:  # the rebuffering guard (module docstring, 4.)
                share = torch.clamp(-x[:, _STALL_SHARE_COLUMN:_STALL_SHARE_COLUMN + 1], 0.0, 1.0 - 1e-6)
                pens[-1] = pens[-1] + torch.relu(-torch.log1p(-share) - self.guard_r0)
            if p == "startup" and "startup_wait" in parts:
                pens[-1] = pens[-1] + parts["startup_wait"]
            if p in self.logit_penalties:
                pens_logit.append(F.linear(drop, F.softplus(self.penalty_logit[p])[None]))
        dip = [F.softplus(self.dip_weight) * parts["stall_dip"]] if self.stall_dip else []
        return torch.cat([rep] + pens + pens_logit + dip, 1)

    def score_from_parts(self, parts: dict, b: Batch, calibration: torch.Tensor | None = None) -> torch.Tensor:
        """The representation -> head -> ``1 + 4 sigmoid(a (z - sum L_i) + c) exp(-sum M_i)`` (logit:
        ``1 + 4 sigmoid(a z + c)``), with the calibration (a, c) of ``calibration`` or the average one."""
        return self.score_from_representation(self.representation(parts), b, calibration)

    def score_from_representation(self, rep: torch.Tensor, b: Batch, calibration: torch.Tensor | None = None
                                  ) -> torch.Tensor:
        """:meth:`score_from_parts` from the representation at every point (:meth:`representation`)."""
        hidden = self.head.raw.shape[1]
        z = self.head(rep[:, :hidden]).squeeze(1)
        z = z + self.device_offset(b.device).squeeze(1)[b.p_sess] + self.mapped_offset * b.mapped[b.p_sess]
        end = rep.shape[1] - int(self.stall_dip)   # the L_i end where the dip D (last column) begins
        if self.fusion == "hybrid":
            z = z - rep[:, hidden + len(IMPAIRMENTS):end].sum(1)
        if calibration is None:  # prediction: the average calibration of the datasets with session scores
            idx = self.default_calibrations
            a, c = F.softplus(self.cal_scale[idx] + 0.5413).mean(), self.cal_shift[idx].mean()
        else:
            a, c = F.softplus(self.cal_scale[calibration] + 0.5413), self.cal_shift[calibration]
        base = torch.sigmoid(a * z + c)
        if self.fusion != "logit":
            base = base * torch.exp(-rep[:, hidden:hidden + len(IMPAIRMENTS)].sum(1))
        if self.stall_dip:  # B exp(-D / B): at most D off the score, less where little is left above the floor
            above = 4.0 * base
            return 1.0 + above * torch.exp(-rep[:, -1] / torch.clamp(above, min=1e-12))
        return 1.0 + 4.0 * base

    def forward(self, b: Batch, calibration: torch.Tensor | None = None) -> torch.Tensor:
        """Scores on the 1-5 scale at every evaluation point."""
        return self.score_from_parts(self.parts(b), b, calibration)


# ============================================================================ the estimator
@dataclass
class TrainingData:
    """Session scores (common 1-5 scale) and, optionally, per-second ratings for some sessions."""

    sessions: list
    y: np.ndarray                   # session score, NaN when the session only has a curve
    dataset: np.ndarray             # calibration group of each session (dataset name)
    curves: list | None = None      # per session: per-wall-second ratings (np.ndarray) or None


class SessionQoEModel:
    """Fit on sessions, predict session scores and per-second curves on the 1-5 scale."""

    scale = "1-5"

    def __init__(self, width: int = 4, hidden: int = 8, epochs: int = 400, learning_rate: float = 0.03,
                 curve_weight: float = 1.0, weight_decay: float = 1e-2, device_offsets: bool = False,
                 mapped_offset: bool = True, n_members: int = 1, fusion: str = "hybrid",
                 stall_guard: float | None = STALL_GUARD,
                 startup_weight: float | None = STARTUP_WEIGHT, stall_penalty: str = "share",
                 stall_dip: bool = True, random_state: int = 0):
        self.width, self.hidden, self.epochs, self.n_members = width, hidden, epochs, n_members
        self.device_offsets, self.mapped_offset = device_offsets, mapped_offset
        self.learning_rate, self.curve_weight = learning_rate, curve_weight
        self.weight_decay, self.random_state, self.fusion = weight_decay, random_state, fusion
        # the logit form has no share penalty: neither guard nor startup wait
        self.stall_guard = None if fusion == "logit" else stall_guard
        self.startup_weight = None if fusion == "logit" else startup_weight
        self.stall_penalty = stall_penalty
        self.stall_dip = False if fusion == "logit" else stall_dip

    @property
    def representation_width(self) -> int:
        """Columns of one member's representation: the FC layer (logit), or it and the penalties (M_i of the
        three impairments, then the hybrid's L_i)."""
        if self.fusion == "logit":
            return int(self.hidden)
        return (int(self.hidden) + len(IMPAIRMENTS) + len(logit_penalties(self.fusion, self.stall_penalty))
                + int(bool(self.stall_dip)))

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("width", "hidden", "epochs", "learning_rate", "curve_weight",
                                              "weight_decay", "device_offsets", "mapped_offset", "n_members",
                                              "fusion", "stall_guard", "startup_weight", "stall_penalty",
                                              "stall_dip", "random_state")}

    # ------------------------------------------------------------------ fit
    def fit(self, data: TrainingData, mapping: QualityMapping, progress=None) -> "SessionQoEModel":
        self.mapping_ = mapping
        names = list(dict.fromkeys(data.dataset.tolist()))
        self.calibrations_ = names
        # prediction averages the calibrations of the datasets with session scores: a dataset with only
        # per-second ratings has its own use of a continuous slider, not of a session score
        self.score_calibrations_ = [d for d in names if np.isfinite(data.y[data.dataset == d]).any()] or names
        curves = data.curves or [None] * len(data.sessions)
        batch = make_batch(data.sessions, mapping, [c is not None for c in curves])
        sess_cal = torch.as_tensor([names.index(d) for d in data.dataset], dtype=torch.long)
        pcal = sess_cal[batch.p_sess]
        # targets: the last point of each session = its score; curve points = per-second ratings
        P = len(batch.p_sess)
        target = np.full(P, np.nan)
        weight = np.zeros(P)
        last = np.r_[np.flatnonzero(np.diff(batch.p_sess.numpy())), P - 1]
        n_per = {d: max(1, int(((data.dataset == d) & np.isfinite(data.y)).sum())) for d in names}
        for b, i in enumerate(last):
            if np.isfinite(data.y[b]):
                target[i], weight[i] = data.y[b], 1.0 / n_per[data.dataset[b]]
        starts = np.r_[0, last[:-1] + 1]
        n_curve = {d: max(1, sum(1 for k, c in enumerate(curves) if c is not None and data.dataset[k] == d))
                   for d in names}
        for b, c in enumerate(curves):
            if c is None:
                continue
            idx = np.arange(starts[b], last[b] + 1)
            k = min(len(idx), len(c))
            idx_c = idx[:k]
            ok = np.isfinite(np.asarray(c[:k], float))
            target[idx_c[ok]] = np.asarray(c[:k], float)[ok]
            weight[idx_c[ok]] = self.curve_weight / n_curve[data.dataset[b]] / max(1, ok.sum())
        keep = weight > 0
        tgt = torch.as_tensor(np.nan_to_num(target), dtype=torch.float32)
        w = torch.as_tensor(weight / weight[keep].sum(), dtype=torch.float32)
        members, self.loss_ = [], []
        for k in range(int(self.n_members)):
            torch.manual_seed(self.random_state + 1000 * k)
            net = self._new_net()
            net.device_offset.weight.requires_grad_(bool(self.device_offsets))
            net.mapped_offset.requires_grad_(bool(self.mapped_offset))  # else 0 (module docstring, 3.)
            opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=self.learning_rate)
            for epoch in range(self.epochs):
                opt.zero_grad()
                loss = (w * (net(batch, pcal) - tgt) ** 2).sum()
                # shrink the effective weights (not the raw ones): a part the data does not vary keeps
                # (close to) no effect instead of its initial one
                penalty = sum((w ** 2).sum() for w in net.positive_weights())
                (loss + self.weight_decay * penalty).backward()
                opt.step()
                if progress is not None:
                    progress(k * self.epochs + epoch, float(loss.detach()))
            if not (torch.isfinite(loss) and all(torch.isfinite(q).all() for q in net.parameters())):
                raise DeepQoEError(f"training diverged (a loss or weight that is not finite) at learning rate "
                                   f"{self.learning_rate:g}: lower training.learning_rate",
                                   field="training.learning_rate")
            self.loss_.append(float(loss.detach()))
            members.append(net.eval())
        self.net_ = nn.ModuleList(members)
        return self

    def _new_net(self) -> SessionQoENet:
        """An untrained member network for ``calibrations_``, predicting through ``score_calibrations_``."""
        net = SessionQoENet(self.width, self.hidden, len(self.calibrations_), self.fusion, self.stall_guard,
                            self.startup_weight, self.stall_penalty, self.stall_dip)
        net.default_calibrations = torch.as_tensor([self.calibrations_.index(d) for d in self.score_calibrations_])
        return net

    # ------------------------------------------------------------------ predict
    def _check(self):
        if not hasattr(self, "net_"):
            raise DeepQoEError("this session model is not fitted")

    def _member_parts(self, b: Batch):
        """(network, its part features) for every member, the memory tracks of all members computed at once."""
        rates = [net.rates() for net in self.net_]
        tracks = memory_track(b, torch.stack([r[0] for r in rates]), torch.stack([r[1] for r in rates]),
                              torch.stack([net.switch_tau for net in self.net_]))
        return [(net, net.parts(b, tracks[k])) for k, net in enumerate(self.net_)]

    def calibration_index(self, calibration: str | None) -> int | None:
        """The index of the training dataset ``calibration`` in ``calibrations_`` (None: the average
        calibration); an unknown name is a DeepQoEError naming the model's calibrations (the one check of a
        calibration's name: the predictor, the service and the ONNX export ask it)."""
        if calibration is None:
            return None
        if calibration not in self.calibrations_:
            import difflib

            close = difflib.get_close_matches(str(calibration), self.calibrations_, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DeepQoEError(f"unknown calibration {calibration!r}{hint}: the model was trained on "
                               f"{', '.join(self.calibrations_)}", field="calibration")
        return self.calibrations_.index(calibration)

    def _run(self, sessions: Sequence, curves: bool, calibration: str | None = None, chunk: int = 512,
             representation: bool = False) -> list[tuple]:
        """Predict in chunks of sessions of similar length (a 10-h session does not slow the others): per
        session (scores at its evaluation points, their wall times, its representation at the end or None).
        The last point is always the end of playback, so the session score is the curve's last value."""
        self._check()
        k_cal = self.calibration_index(calibration)  # an unknown name fails before any work
        order = np.argsort([float(s.media_duration) for s in sessions], kind="stable")
        out: list = [None] * len(sessions)
        with torch.no_grad():
            for lo in range(0, len(order), chunk):
                ids = order[lo:lo + chunk]
                b = make_batch([sessions[i] for i in ids], self.mapping_, curves)
                cal = calibration_points(k_cal, b)
                member_reps = [(net, net.representation(parts)) for net, parts in self._member_parts(b)]
                pred = torch.stack([net.score_from_representation(rep, b, cal) for net, rep in member_reps]
                                   ).mean(0).numpy().astype(float)
                ps = b.p_sess.numpy()
                bounds = np.searchsorted(ps, np.arange(len(ids) + 1))  # points are grouped by session, in order
                reps = None
                if representation:
                    last = torch.as_tensor(bounds[1:] - 1)
                    reps = torch.cat([rep[last] for _, rep in member_reps], 1).numpy().astype(float)
                for k, i in enumerate(ids):
                    sl = slice(bounds[k], bounds[k + 1])
                    out[i] = (pred[sl], b.t_wall[sl], None if reps is None else reps[k])
        return out

    def predict_scores_curves(self, sessions: Sequence, curves: bool = True, representation: bool = False,
                              calibration: str | None = None) -> tuple[np.ndarray, list | None, np.ndarray | None]:
        """Scores, per-second curves (``curves``) and representations (``representation``) in one pass over
        the sessions: what :meth:`predict_sessions`, :meth:`predict_curves` and :meth:`transform_sessions`
        give one at a time (the predictor asks for them together)."""
        if not len(sessions):
            return np.zeros(0), [] if curves else None, (np.zeros((0, int(self.n_members) * self.representation_width))
                                                         if representation else None)
        res = self._run(list(sessions), curves, calibration, representation=representation)
        return (np.array([r[0][-1] for r in res]), [r[0] for r in res] if curves else None,
                np.stack([r[2] for r in res]) if representation else None)

    def predict_sessions(self, sessions: Sequence, calibration: str | None = None) -> np.ndarray:
        """The session scores (1-5). ``calibration``: the name of a training dataset whose use of the
        scale to predict on (default: the average of the training datasets with session scores)."""
        return self.predict_scores_curves(sessions, curves=False, calibration=calibration)[0]

    def predict_curves(self, sessions: Sequence, calibration: str | None = None) -> list[np.ndarray]:
        """The per-second curve of each session: the score of the first t wall seconds, t = 1, 2, ...
        (sessions longer than MAX_CURVE_POINTS seconds: that many equal bins)."""
        return self.predict_scores_curves(sessions, calibration=calibration)[1]

    def transform_sessions(self, sessions: Sequence) -> np.ndarray:
        """The learned representation of each session (the FC layer's output, the members side by side):
        (n_sessions, n_members * representation_width), for shallow learners or clustering, as ``deepqoe
        embed`` writes."""
        self._check()
        return self.predict_scores_curves(sessions, curves=False, representation=True)[2]

    def curve_times(self, sessions: Sequence) -> list[np.ndarray]:
        return [wall_points(s, True) for s in sessions]

    def explain_sessions(self, sessions: Sequence, calibration: str | None = None) -> list[dict]:
        """How much each part moves the score (1-5 scale): the score minus the score of the same session
        without that part's impairments (for quality: with a typical quality of 80); ``calibration`` as in
        :meth:`predict_sessions`."""
        self._check()
        with torch.no_grad():
            b = make_batch(list(sessions), self.mapping_, False)
            cal = calibration_points(self.calibration_index(calibration), b)
            contrib = {p: np.zeros(len(sessions)) for p in PART_FEATURES}
            for net, parts in self._member_parts(b):
                full = net.score_from_parts(parts, b, cal).numpy()
                for p in PART_FEATURES:
                    neutral = {p: torch.full_like(parts[p], 0.8) if p == "quality" else torch.zeros_like(parts[p])}
                    if p == "startup" and "startup_wait" in parts:
                        neutral["startup_wait"] = torch.zeros_like(parts["startup_wait"])
                    if p == "stalls" and "stall_dip" in parts:
                        neutral["stall_dip"] = torch.zeros_like(parts["stall_dip"])
                    contrib[p] += (full - net.score_from_parts(parts | neutral, b, cal).numpy()) / len(self.net_)
        return [{p: round(float(contrib[p][k]), 4) for p in PART_FEATURES} for k in range(len(sessions))]

    # ------------------------------------------------------------------ persistence
    def save(self, out_dir: str | Path, extra: dict | None = None, metrics: dict | None = None,
             files: dict[str, dict] | None = None) -> Path:
        """Write the model directory atomically (``metrics``: also ``metrics.json``; ``files``: more JSON
        files by name, e.g. ``intervals.json``; in the same step)."""
        from deepqoe.io import atomic_directory
        from deepqoe.persistence import FORMAT_VERSION, _versions, write_model_files

        self._check()
        meta = {"format_version": FORMAT_VERSION, "estimator": "SessionQoEModel", "task": "regression",
                "params": self.get_params(), "quality_mapping": self.mapping_.state(),
                "calibrations": self.calibrations_, "score_calibrations": self.score_calibrations_,
                "session_model": {"scale": "1-5"},
                "versions": _versions(), **(extra or {})}
        out_dir = Path(out_dir)
        with atomic_directory(out_dir) as tmp:
            tensors = {k: v.detach().contiguous().clone() for k, v in self.net_.state_dict().items()}
            write_model_files(tmp, meta, tensors, {**({"metrics.json": metrics} if metrics is not None else {}),
                                                   **(files or {})})
        return out_dir

    @classmethod
    def load(cls, model_dir: Path, meta: dict) -> "SessionQoEModel":
        """The model of a directory written by :meth:`save` (``meta``: its model.json)."""
        from deepqoe.persistence import read_weights

        file = str(Path(model_dir) / "model.json")
        try:
            # files written before the hybrid and multiplicative fusions name none: theirs is the logit one;
            # files written before the rebuffering guard (the startup wait) name no stall_guard (startup_weight):
            # they have none; files written before stall_penalty price stalls inside the sigmoid too ("both");
            # files written before stall_dip have no momentary dip; files written before mapped_offset learned it
            # (as the recipe does)
            est = cls(**{"fusion": "logit", "stall_guard": None, "startup_weight": None, "stall_penalty": "both",
                         "stall_dip": False, "mapped_offset": True, **dict(meta["params"])})
            if est.fusion not in FUSIONS:
                raise ValueError(f"unknown fusion {est.fusion!r}")
            if est.stall_penalty not in STALL_PENALTIES:
                raise ValueError(f"unknown stall_penalty {est.stall_penalty!r}")
            est.mapping_ = QualityMapping(**meta["quality_mapping"])
            est.calibrations_ = [str(c) for c in meta["calibrations"]]
            # files written before score_calibrations average every calibration
            est.score_calibrations_ = [str(c) for c in meta.get("score_calibrations", est.calibrations_)]
            if not est.score_calibrations_ or not set(est.score_calibrations_) <= set(est.calibrations_):
                raise ValueError("score_calibrations must name some of the calibrations")
            if not 1 <= int(est.n_members) <= 100 or not 1 <= int(est.width) <= 64 or not 1 <= int(est.hidden) <= 256:
                raise ValueError("member count or layer width out of range")
        except (KeyError, TypeError, ValueError) as e:
            raise DeepQoEError(f"not a valid session-model description ({type(e).__name__}: {e})",
                               file=file) from None
        try:  # the member networks check the rest of the description (e.g. the stall guard)
            est.net_ = nn.ModuleList(est._new_net() for _ in range(int(est.n_members)))
        except (TypeError, ValueError) as e:
            raise DeepQoEError(f"not a valid session-model description ({type(e).__name__}: {e})", file=file) from None
        state = read_weights(Path(model_dir))
        weights = str(Path(model_dir) / "model.safetensors")
        try:
            est.net_.load_state_dict(state, strict=True)
        except (RuntimeError, ValueError) as e:
            raise DeepQoEError(f"the weights do not match the model description: {str(e).splitlines()[0][:200]}",
                               file=weights) from None
        if any(v.dtype != torch.float32 or not torch.isfinite(v).all() for v in state.values()):
            raise DeepQoEError("the weights must be finite float32 values", file=weights)
        est.net_.eval()
        return est
