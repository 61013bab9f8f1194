"""``deepqoe check-model MODEL``: does a session model behave like QoE?

    deepqoe check-model streaming                      # a table on standard output
    deepqoe check-model my-model/ --n-sessions 5000 --seed 1 --json

The check generates ``n_sessions`` random, realistic streaming sessions (8 s to 10 min of media in 1-6 s
segments; a ladder of 2-6 (height, bitrate) rungs between 240p and 2160p; 24-60 fps; h264 / hevc / vp9 /
av1; every device; half of them with a per-segment ``quality`` (0-100), half with bitrates only; 0-4
stalls; a startup delay of 0-10 s in most) and perturbs each one. Every original and every perturbation
is predicted through the model's one predictor (:func:`deepqoe.predictor.load_predictor`), in a few
large batches, and each relation below is checked on every pair (tolerance ``TOL`` = 1e-6 on the score):

========================  =============================================================================
relation                  what must hold
========================  =============================================================================
``stall_added``           a stall added at a random media time (0.5-20 s) does not raise the score
``stall_longer``          a mid-session stall made 0.5-20 s longer does not raise the score
``stall_vanishing``       a stall of 1 microsecond (rounded timestamps), at the media time of
                          ``stall_added``'s, changes the score by less than ``VANISH_TOL`` = 0.001 on the
                          1-5 scale: a stall's cost goes to nothing with its length (a model that charges
                          every stall event in full jumps at zero length)
``startup_longer``        a startup delay 0.5-10 s longer (or one added) does not raise the score
``more_switches``         (sessions with ``quality``) 1-3 segments inside steady runs moved to another
                          rung (height, width and bitrate), their ``quality`` unchanged: more switches,
                          the same quality, so the score does not rise
``quality_higher``        a higher ``quality`` on some segments does not lower the score
``stall_cost_quality``    (the same sessions) the stall of ``stall_added`` costs at least as much in the
                          session with the higher ``quality`` (viewers' stall costs rise with the quality
                          they interrupt; a model that shrinks a stall near the top of its scale fails)
``bitrate_higher``        (sessions without ``quality``) the segments of one rung get a 10-100 % higher
                          bitrate, at the same resolution, frame rate and codec: the score does not drop;
                          and for a fifth of them a ladder of bitrates far outside any real one
                          (near the smallest float, x 1e-20, x 1, x 1e20, about 1e307 kbps)
``frame_rate_lower``      (the same sessions) rated at 24 fps and at 8-20 fps, at the same bitrate,
                          resolution and codec: the lower rate does not score higher (above 24 fps fewer
                          frames carry more bits each, which may well look better, so not checked there)
``curve_stall_dip``       steady session (one rung, no stall) with one mid-session stall of 3-10 s: every
                          curve value during the stall is below the value just before it
``curve_stall_recovery``  in the same sessions, the curve 10 s after the stall's end is above its minimum
                          during the stall
``repeat_steady``         a steady 10-s session repeated 2x, 6x and 60x (20 s to 10 min) changes the
                          score by less than ``REPEAT_TOL`` = 0.1 on the 1-5 scale
``bounds``                every score and curve value above, and of extreme sessions (10 h; 10^5
                          segments; a stall of 1e9 s; 50 stalls; 0.1 s of media), is finite and inside
                          the model's scale. An extreme session may instead be refused with a one-line
                          DeepQoEError; an ordinary session must be predicted
``python_vs_service``     the same score (to 1e-6) from ``predict_sessions`` and from ``POST /predict`` of
                          the :mod:`deepqoe.serve` app (FastAPI TestClient), for a few ordinary and
                          extreme sessions; skipped with a note when the ``serve`` extra is missing
``python_vs_cli``         the same score (to 1e-6) from ``deepqoe predict MODEL sessions.json --json`` (run
                          in this process) for the same sessions
``python_vs_onnx``        the same score (to ``ONNX_TOL`` = 1e-4) from the model exported to ONNX
                          (``deepqoe export``, the default calibration) run by ONNX Runtime, for the same
                          sessions; skipped with a note without ``onnx`` / ``onnxruntime`` (the ``serve``
                          extra) or for a session model that exports as a table model
========================  =============================================================================

Each relation reports how many cases were checked, how many held and were violated, and the worst case
(``worst``: the size of the largest move in the wrong direction, on the model's scale; for
``repeat_steady`` the largest change on the 1-5 scale; for ``bounds`` the largest distance outside the
scale, ``inf`` for a non-finite value; a case holds while ``worst`` is at most the tolerance).

Output: the table on standard output (``--json``: the same as one JSON object on standard output);
progress and notes on standard error. Exit status: **0** when no relation is violated, **1** when at least
one is; a model that cannot be loaded is a one-line DeepQoEError (``deepqoe``'s error status).

Extreme sessions are predicted one at a time under a memory cap (on Linux, the address space may grow by
at most ``MEMORY_HEADROOM`` bytes while they run), so a model that tries to allocate a per-second series
for a 1e9-s stall fails with a ``MemoryError`` (reported as a violation) instead of exhausting the machine.

From Python::

    from deepqoe.evaluation.behaviour import check_model
    from deepqoe.predictor import load_predictor
    report = check_model(load_predictor("streaming"), n_sessions=1000, seed=0, model="streaming")
    print(report.table()); report.ok
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from deepqoe.errors import DeepQoEError, DeepQoENote
from deepqoe.predictor import load_predictor
from deepqoe.sessions.qoe_model import FPS_FULL
from deepqoe.sessions.scales import parse_scale, to_common
from deepqoe.sessions.session import Session

#: Tolerance on the score for the monotone relations and the Python / service comparison.
TOL = 1e-6
#: float32 ONNX Runtime against float32 PyTorch (the same graph, other kernels): agreement on the 1-5 scale
ONNX_TOL = 1e-4
#: Largest change (1-5 scale) allowed when a steady session is repeated.
REPEAT_TOL = 0.1
#: ``stall_vanishing``: the largest change a 1-microsecond stall may make, on the 1-5 scale
VANISH_TOL = 1e-3
#: Repetitions of the steady 10-s session.
REPEATS = (2, 6, 60)
#: Seconds after a stall's end at which the curve must have recovered above its minimum in the stall.
RECOVERY_S = 10
#: Address-space growth (bytes) allowed while an extreme session is predicted.
MEMORY_HEADROOM = 4 << 30
#: Sessions (per batch) handed to the predictor at once.
BATCH = 4000

#: (height, width, typical H.264 bitrate in kbps at 30 fps) of the rungs a ladder is drawn from.
LADDER = ((240, 426, 400), (360, 640, 800), (480, 854, 1400), (720, 1280, 2800), (1080, 1920, 5000),
          (1440, 2560, 9000), (2160, 3840, 16000))
#: Bitrate needed for the same quality, relative to H.264.
CODECS = {"h264": 1.0, "hevc": 0.6, "vp9": 0.65, "av1": 0.5}
FRAME_RATES = (24, 25, 30, 48, 50, 60)
#: reduced frame rates for ``frame_rate_lower`` (sessions without a quality metric: the mapping's rate)
LOW_FRAME_RATES = (8, 10, 12, 12.5, 15, 20)
DEVICES = ("pc", "mobile", "tablet", "tv", "unknown")

RELATIONS = (
    ("stall_added", "adding a stall does not raise the score"),
    ("stall_longer", "a longer stall does not raise the score"),
    ("stall_vanishing", "a 1-microsecond stall changes the score < 0.001 (1-5)"),
    ("startup_longer", "a longer startup delay does not raise the score"),
    ("more_switches", "more switches at the same quality do not raise the score"),
    ("quality_higher", "higher segment quality does not lower the score"),
    ("stall_cost_quality", "a stall costs no less in a better session"),
    ("bitrate_higher", "higher bitrate (same resolution, fps, codec) does not lower the score"),
    ("frame_rate_lower", "a frame rate below 24 fps (same bitrate, resolution, codec) does not beat 24 fps"),
    ("curve_stall_dip", "the curve dips during a stall"),
    ("curve_stall_recovery", "the curve recovers after a stall"),
    ("repeat_steady", "repeating a steady session changes the score < 0.1 (1-5)"),
    ("bounds", "every score and curve value is finite and inside the scale"),
    ("python_vs_service", "Python and POST /predict give the same score"),
    ("python_vs_cli", "Python and deepqoe predict give the same score"),
    ("python_vs_onnx", "Python and the exported ONNX graph give the same score"),
)


# ---------------------------------------------------------------------------------------- report

@dataclass
class RelationResult:
    """One relation: cases checked and violated, the worst case (see the module docstring)."""

    name: str
    description: str
    checked: int = 0
    violated: int = 0
    worst: float | None = None
    example: str | None = None
    note: str | None = None
    skipped: bool = False

    @property
    def held(self) -> int:
        return self.checked - self.violated

    def add(self, amount: float, case: str, tol: float) -> None:
        """One case; ``amount`` is its move in the wrong direction (> tol, or non-finite: violated)."""
        amount = float(amount)
        if math.isnan(amount):
            amount = math.inf
        amount = round(amount, 9)   # scores come rounded to 6 decimals: no float noise at the tolerance
        bad = amount > tol
        self.checked += 1
        self.violated += int(bad)
        if self.worst is None or amount > self.worst:
            self.worst = amount
            if bad:
                self.example = case

    def to_dict(self) -> dict:
        w = self.worst
        return {"relation": self.name, "description": self.description, "checked": self.checked,
                "held": self.held, "violated": self.violated,
                "worst": None if w is None else (w if math.isfinite(w) else str(w)),
                "example": self.example, "note": self.note, "skipped": self.skipped}


@dataclass
class BehaviourReport:
    """The result of :func:`check_model`: one :class:`RelationResult` per relation, in table order."""

    relations: list[RelationResult]
    n_sessions: int
    seed: int
    scale: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(r.violated for r in self.relations)

    def __getitem__(self, name: str) -> RelationResult:
        for r in self.relations:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "n_sessions": self.n_sessions, "seed": self.seed, "scale": self.scale,
                "seconds": round(self.seconds, 2), "relations": [r.to_dict() for r in self.relations],
                "notes": list(self.notes)}

    def table(self) -> str:
        w = max(len(r.name) for r in self.relations)
        lines = [f"{'relation':<{w}}  {'checked':>7}  {'held':>7}  {'violated':>8}  {'worst':>10}  expected"]
        for r in self.relations:
            worst = "-" if r.worst is None else f"{r.worst:+.4g}"
            if r.skipped:
                lines.append(f"{r.name:<{w}}  {'skipped':>7}  {'':>7}  {'':>8}  {'':>10}  {r.description}")
                continue
            lines.append(f"{r.name:<{w}}  {r.checked:>7}  {r.held:>7}  {r.violated:>8}  {worst:>10}  "
                         f"{r.description}")
        lines.append(f"{'all relations hold' if self.ok else 'VIOLATED'} ({self.n_sessions} random sessions, "
                     f"seed {self.seed}, scale {self.scale}, {self.seconds:.1f} s)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------- predictor

def _predict(predictor, sessions: list[Session]) -> tuple[dict[str, dict], list]:
    """Rows by session id, and the failures, predicting in batches of ``BATCH``."""
    rows: dict[str, dict] = {}
    failures: list = []
    for i in range(0, len(sessions), BATCH):
        r, f = predictor.predict_sessions(sessions[i:i + BATCH], scale=None, curve=True)
        rows.update({str(x["id"]): x for x in r})
        failures.extend(f)
    return rows, failures


@contextlib.contextmanager
def _memory_cap(headroom: int = MEMORY_HEADROOM):
    """Let the address space grow by at most ``headroom`` bytes inside the block (Linux; else no cap)."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        yield
        return
    cap = used + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ---------------------------------------------------------------------------------------- sessions

@dataclass
class _Ladder:
    """A session's encoding ladder: one row per rung (ascending)."""

    height: np.ndarray
    width: np.ndarray
    bitrate: np.ndarray
    fps: float
    codec: str


def _random_ladder(rng: np.random.Generator, n_rungs: int | None = None) -> _Ladder:
    k = int(n_rungs or rng.integers(2, 7))
    idx = np.sort(rng.choice(len(LADDER), size=k, replace=False))
    h, w, br = (np.array([LADDER[i][j] for i in idx], float) for j in range(3))
    codec = str(rng.choice(list(CODECS)))
    fps = float(rng.choice(FRAME_RATES))
    br = br * CODECS[codec] * (fps / 30.0) ** 0.4 * np.exp(rng.normal(0.0, 0.15, k))
    return _Ladder(h, w, np.round(np.maximum.accumulate(br), 1), fps, codec)


def _rung_quality(rng: np.random.Generator, lad: _Ladder) -> np.ndarray:
    """A plausible per-rung quality (VMAF-like) rising with resolution."""
    q = 25 + 70 * np.log(lad.height / 200) / np.log(2160 / 200) + rng.normal(0, 4, len(lad.height))
    return np.clip(np.maximum.accumulate(q), 0, 100)


def _device(rng: np.random.Generator) -> tuple[str, dict]:
    dev = str(rng.choice(DEVICES))
    ctx = {"display_height": 2160} if dev == "tv" and rng.random() < 0.5 else {}
    return dev, ctx


def _build(sid: str, seg_duration, lad: _Ladder, rung, quality, stall_start=(), stall_duration=(),
           device="unknown", context=None, jitter=None) -> Session:
    seg_duration = np.asarray(seg_duration, float)
    rung = np.asarray(rung, int)
    start = np.concatenate([[0.0], np.cumsum(seg_duration)[:-1]])
    br = lad.bitrate[rung] * (1.0 if jitter is None else jitter)
    return Session.from_arrays(sid, start, seg_duration, bitrate_kbps=np.round(br, 1), width=lad.width[rung],
                               height=lad.height[rung], fps=lad.fps, codec=[lad.codec] * len(rung),
                               quality=quality, stall_start=stall_start, stall_duration=stall_duration,
                               device=device, context=context)


def _variant(s: Session, tag: str, **columns) -> Session:
    """A copy of ``s`` with some columns replaced, id ``<s.id>~<tag>`` (validated)."""
    kw: dict[str, Any] = dict(bitrate_kbps=s.bitrate_kbps, width=s.width, height=s.height, fps=s.fps,
                              quality=s.quality, codec=list(s.codec), stall_start=s.stall_start,
                              stall_duration=s.stall_duration, device=s.device, context=s.context)
    kw.update(columns)
    return Session.from_arrays(f"{s.id}~{tag}", s.seg_start, s.seg_duration, **kw)


@dataclass
class _Case:
    """A random session with what the perturbations need to know about it."""

    session: Session
    ladder: _Ladder
    rung: np.ndarray
    jitter: np.ndarray


def _random_case(rng: np.random.Generator, sid: str) -> _Case:
    media = math.exp(rng.uniform(math.log(8), math.log(600)))
    seg = round(float(rng.uniform(1, 6)), 1)
    n = max(1, int(round(media / seg)))
    dur = np.full(n, seg)
    lad = _random_ladder(rng)
    k = len(lad.height)
    p_switch = rng.uniform(0, 0.3)
    steps = np.where(rng.random(n) < p_switch, rng.choice([-1, 1], n), 0)
    steps[0] = rng.integers(0, k)
    rung = np.clip(np.cumsum(steps), 0, k - 1)
    jitter = 1.0 + (rng.uniform(-0.15, 0.15, n) if rng.random() < 0.5 else np.zeros(n))
    quality = None
    if rng.random() < 0.5:
        quality = np.round(np.clip(_rung_quality(rng, lad)[rung] + rng.normal(0, 2, n), 0, 100), 2)
    total = float(dur.sum())
    starts, durs = [], []
    if rng.random() < 0.7:
        starts.append(0.0)
        durs.append(round(float(rng.uniform(0.1, 10)), 3))
    mids = np.unique(np.round(rng.uniform(0.5, total, int(rng.integers(0, 5))), 3))
    starts += list(mids)
    durs += list(np.round(np.exp(rng.uniform(math.log(0.3), math.log(15), len(mids))), 3))
    dev, ctx = _device(rng)
    s = _build(sid, dur, lad, rung, quality, starts, durs, dev, ctx, jitter)
    return _Case(s, lad, rung, jitter)


def _steady(rng: np.random.Generator, sid: str, media: float, seg_choices) -> tuple[Session, _Ladder]:
    """One rung, constant bitrate (and quality when it has one), no stall."""
    seg = float(rng.choice(seg_choices))
    n = int(round(media / seg))
    lad = _random_ladder(rng)
    r = np.full(n, int(rng.integers(0, len(lad.height))))
    quality = float(np.round(_rung_quality(rng, lad)[r[0]], 2)) if rng.random() < 0.5 else None
    dev, ctx = _device(rng)
    return _build(sid, np.full(n, seg), lad, r, quality, device=dev, context=ctx), lad


# ---------------------------------------------------------------------------------------- perturbations

def _with_stall(s: Session, tag: str, start: float, duration: float) -> Session:
    ss = np.append(s.stall_start, start)
    sd = np.append(s.stall_duration, duration)
    o = np.argsort(ss, kind="stable")
    return _variant(s, tag, stall_start=ss[o], stall_duration=sd[o])


def _perturb(rng: np.random.Generator, c: _Case) -> tuple[list[tuple[str, Session, Session]], list[tuple]]:
    """(relation, session, perturbed session) for one random session (the session is the random one, or a
    variant of it that the relation compares against); and the ``stall_cost_quality`` quadruple (session,
    with the added stall, with higher quality, with both), when the session has both perturbations."""
    s, out, quads = c.session, [], []
    media = s.media_duration
    pos = round(float(rng.uniform(min(0.5, media / 2), media)), 3)
    added = stalled = None
    if not np.any(np.abs(s.stall_start - pos) < 1e-3):
        added = (pos, round(float(rng.uniform(0.5, 20)), 3))
        stalled = _with_stall(s, "stall", *added)
        out.append(("stall_added", s, stalled))
        out.append(("stall_vanishing", s, _with_stall(s, "blip", pos, 1e-6)))
    mid = np.flatnonzero(s.stall_start > 0)
    if len(mid):
        sd = s.stall_duration.copy()
        sd[rng.choice(mid)] += round(float(rng.uniform(0.5, 20)), 3)
        out.append(("stall_longer", s, _variant(s, "longer", stall_duration=sd)))
    extra = round(float(rng.uniform(0.5, 10)), 3)
    if len(s.stall_start) and s.stall_start[0] == 0:
        sd = s.stall_duration.copy()
        sd[0] += extra
        out.append(("startup_longer", s, _variant(s, "startup", stall_duration=sd)))
    else:
        out.append(("startup_longer", s, _with_stall(s, "startup", 0.0, extra)))
    has_q = bool(np.isfinite(s.quality).any())
    if has_q:
        sw = _more_switches(rng, c)
        if sw is not None:
            out.append(("more_switches", s, sw))
        q = s.quality.copy()
        pick = (rng.random(len(q)) < rng.uniform(0.1, 1)) & (q < 100)
        if not pick.any() and (q < 100).any():
            pick[rng.choice(np.flatnonzero(q < 100))] = True
        if pick.any():
            q[pick] = np.minimum(100.0, np.round(q[pick] + rng.uniform(1, 25, int(pick.sum())), 2))
            better = _variant(s, "quality", quality=q)
            out.append(("quality_higher", s, better))
            if added is not None:
                quads.append((s, stalled, better, _with_stall(better, "stall", *added)))
    else:
        r = rng.choice(np.unique(c.rung))
        br = s.bitrate_kbps.copy()
        br[c.rung == r] = np.round(br[c.rung == r] * rng.uniform(1.1, 2.0), 1)
        out.append(("bitrate_higher", s, _variant(s, "bitrate", bitrate_kbps=br)))
        # and far outside any ladder (bits per pixel that would overflow or underflow a quotient): its own
        # generator, so the other relations' random sessions stay as they were
        ext = np.random.default_rng(zlib.crc32(s.id.encode()))
        if ext.random() < 0.2:  # a ladder: ~1e-321 kbps (near the smallest float) < x 1e-20 < x 1 < x 1e20 < ~1e307
            ladder = [np.full_like(s.bitrate_kbps, 10.0 ** -ext.uniform(318, 323)),
                      s.bitrate_kbps * 10.0 ** -ext.uniform(10, 30), None, s.bitrate_kbps * 10.0 ** ext.uniform(10, 30),
                      np.full_like(s.bitrate_kbps, 10.0 ** ext.uniform(306, 308))]
            steps = [s if b is None else _variant(s, f"bitrate-{k}", bitrate_kbps=b) for k, b in enumerate(ladder)]
            out += [("bitrate_higher", a, b) for a, b in zip(steps, steps[1:])]
        out.append(("frame_rate_lower", _variant(s, "fps24", fps=FPS_FULL),
                    _variant(s, "fps", fps=float(rng.choice(LOW_FRAME_RATES)))))
    return out, quads


def _more_switches(rng: np.random.Generator, c: _Case) -> Session | None:
    """1-3 segments inside steady runs (same rung as both neighbours), at least 2 apart, moved to another
    rung; their quality is kept. Each such move adds one or two switches and removes none."""
    r, n = c.rung, len(c.rung)
    if n < 2:
        return None
    same_prev = np.r_[True, r[1:] == r[:-1]]
    same_next = np.r_[r[:-1] == r[1:], True]
    cand = list(rng.permutation(np.flatnonzero(same_prev & same_next)))
    chosen: list[int] = []
    want = int(rng.integers(1, 4))
    for i in cand:
        if all(abs(int(i) - j) >= 2 for j in chosen):
            chosen.append(int(i))
        if len(chosen) == want:
            break
    if not chosen:
        return None
    new = r.copy()
    k = len(c.ladder.height)
    for i in chosen:
        new[i] = int(rng.choice([j for j in range(k) if j != r[i]]))
    lad = c.ladder
    return _variant(c.session, "switch", height=lad.height[new], width=lad.width[new],
                    bitrate_kbps=np.round(lad.bitrate[new] * c.jitter, 1))


def _steady_cases(rng: np.random.Generator, n: int) -> tuple[list, list]:
    """``n`` steady sessions of 30-120 s with one mid-session stall, as ``(session, stall start, stall
    duration)``; ``n`` steady 10-s sessions, each with its repetitions, as ``(base, repeated, times)``."""
    dips = []
    for i in range(n):
        s, _ = _steady(rng, f"dip{i:04d}", float(rng.integers(30, 121)), (1, 2, 3, 4, 5, 6))
        p = float(rng.integers(10, int(s.media_duration) - 14))
        d = float(rng.integers(3, 11))
        dips.append((_with_stall(s, "stall", p, d), p, d))
    repeats = []
    for i in range(n):
        s, _ = _steady(rng, f"steady{i:04d}", 10.0, (1, 2, 2.5, 5))
        for k in REPEATS:
            rep = Session.from_arrays(f"{s.id}~x{k}", np.concatenate([s.seg_start + j * 10.0 for j in range(k)]),
                                      np.tile(s.seg_duration, k), bitrate_kbps=np.tile(s.bitrate_kbps, k),
                                      width=np.tile(s.width, k), height=np.tile(s.height, k),
                                      fps=np.tile(s.fps, k), quality=np.tile(s.quality, k), codec=s.codec * k,
                                      device=s.device, context=s.context)
            repeats.append((s, rep, k))
    return dips, repeats


def _extremes(rng: np.random.Generator) -> tuple[list[Session], list[DeepQoEError]]:
    """Sessions far outside any training data, each with and without per-segment quality; and the
    refusals of those the session format itself rejects (a one-line error is an allowed answer)."""
    out, refused = [], []
    for with_q in (False, True):
        tag = "q" if with_q else "br"

        def make(name, dur, stalls=((), ())):
            lad = _random_ladder(rng)
            n = len(dur)
            rung = rng.integers(0, len(lad.height), n) if n > 1 else np.zeros(1, int)
            q = _rung_quality(rng, lad)[rung] if with_q else None
            try:
                out.append(_build(f"extreme-{name}-{tag}", dur, lad, rung, q, *stalls, device="tv"))
            except DeepQoEError as e:
                refused.append(e)

        make("10h", np.full(9000, 4.0), ([0.0, 7200.0, 30000.0], [3.0, 12.0, 60.0]))
        make("1e5-segments", np.full(100_000, 1.0), ([0.0, 50_000.0], [2.0, 5.0]))
        make("stall-1e9s", np.full(15, 4.0), ([30.0], [1e9]))
        make("50-stalls", np.full(150, 4.0), (np.sort(rng.choice(np.arange(1, 600), 50, replace=False)).astype(float),
                                              np.round(rng.uniform(1, 20, 50), 2)))
        make("0.1s", np.full(1, 0.1))
    return out, refused


# ---------------------------------------------------------------------------------------- checks

def _curve_value_index(t: float, step: float) -> int:
    """Index of the last curve bin that ends at or before wall time ``t``."""
    return int(math.floor(t / step + 1e-9)) - 1


def _check_curve(dip: RelationResult, rec: RelationResult, row: dict | None, p: float, d: float) -> None:
    curve = (row or {}).get("curve")
    if not curve:
        return
    c = np.asarray(curve, float)
    step = float(row.get("curve_step_s") or 1.0)
    before = _curve_value_index(p, step)
    first, last = int(math.ceil(p / step - 1e-9)), _curve_value_index(p + d, step)
    if before < 0 or last < first or last >= len(c):
        return
    during = c[first:last + 1]
    dip.add(float(during.max() - c[before]), f"{row['id']}: curve {c[before]:.4f} before the stall, up to "
                                             f"{during.max():.4f} during it", TOL)
    after = min(_curve_value_index(p + d + RECOVERY_S, step), len(c) - 1)
    rec.add(float(during.min() - c[after]), f"{row['id']}: curve {during.min():.4f} at its lowest in the stall, "
                                           f"{c[after]:.4f} {RECOVERY_S} s after it", TOL)


def _out_of_scale(values: np.ndarray, lo: float, hi: float) -> float:
    """Largest distance outside [lo, hi] (inf when a value is not finite; <= 0 when all inside)."""
    if values.size == 0:
        return 0.0
    if not np.isfinite(values).all():
        return math.inf
    return float(max(values.max() - hi, lo - values.min()))


def _check_bounds(res: RelationResult, row: dict, lo: float, hi: float, what: str = "") -> None:
    vals = np.asarray([row.get("score", np.nan)] + list(row.get("curve") or []), float)
    res.add(_out_of_scale(vals, lo, hi), f"{row['id']}{what}: score {row.get('score')}, curve "
                                         f"{np.nanmin(vals) if vals.size else '-'}..{np.nanmax(vals)}", TOL)


def _predict_extremes(predictor, extremes: list[Session], bounds: RelationResult, notes: list[str],
                      lo: float, hi: float) -> dict[str, dict]:
    """Predict each extreme session alone under the memory cap; check its bounds; rows by id."""
    ext_rows: dict[str, dict] = {}
    for s in extremes:
        try:
            with _memory_cap():
                r, f = predictor.predict_sessions([s], scale=None, curve=True)
        except DeepQoEError as e:
            bounds.add(0.0, s.id, TOL)
            notes.append(f"{s.id} refused with an error (allowed): {e}")
            continue
        except MemoryError:
            bounds.add(math.inf, f"{s.id}: MemoryError (more than {MEMORY_HEADROOM >> 30} GiB)", TOL)
            continue
        except Exception as e:  # noqa: BLE001 - any crash of the predictor is the finding
            bounds.add(math.inf, f"{s.id}: crashed with {type(e).__name__}: {e}"[:300], TOL)
            continue
        for row in r:
            ext_rows[s.id] = row
            _check_bounds(bounds, row, lo, hi)
        for e in f:
            bounds.add(0.0, s.id, TOL)
            notes.append(f"{s.id} refused with an error (allowed): {e}")
    return ext_rows


def _service_scores(model: str, sessions: list[Session]) -> tuple[list[tuple[str, float | None, str]], str | None]:
    """(id, service score or None, detail) per session, or a note when the service cannot be built."""
    try:
        from fastapi.testclient import TestClient

        from deepqoe.serve import create_app
    except ImportError as e:
        return [], f"python_vs_service skipped: the serve extra is not installed ({e.name})"
    client = TestClient(create_app(model, warm_up=False), raise_server_exceptions=False)
    out = []
    for s in sessions:
        r = client.post("/predict", json={"sessions": [s.to_dict()]})
        if r.status_code != 200:
            detail = r.text[:200].replace("\n", " ")
            out.append((s.id, None, f"HTTP {r.status_code}: {detail}"))
            continue
        pred = r.json()["predictions"][0]
        score = pred.get("score", pred.get("prediction"))
        out.append((s.id, None if score is None else float(score), ""))
    return out, None


def _cli_scores(model: str, sessions: list[Session]) -> tuple[list[tuple[str, float | None, str]], str | None]:
    """(id, ``deepqoe predict --json`` score or None, detail) per session: the command run in this process on
    the sessions written to a temporary JSON file."""
    import io
    import tempfile
    from pathlib import Path

    from deepqoe.cli import main

    with tempfile.TemporaryDirectory(prefix="deepqoe-check-") as tmp:
        path = Path(tmp) / "sessions.json"
        path.write_text(json.dumps({"sessions": [s.to_dict() for s in sessions]}), encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["predict", str(model), str(path), "--json", "-q"])
    try:
        got = {str(r["id"]): float(r["score"]) for r in json.loads(out.getvalue() or "[]")}
    except (ValueError, KeyError, TypeError) as e:
        got, code = {}, f"{code}, unreadable output ({type(e).__name__})"
    why = err.getvalue().strip().splitlines()[-1][:200] if err.getvalue().strip() else f"exit status {code}"
    return [(s.id, got.get(s.id), "" if s.id in got else why) for s in sessions], None


def _onnx_scores(model: str, sessions: list[Session]) -> tuple[list[tuple[str, float | None, str]], str | None]:
    """(id, score of the exported ONNX graph or None, detail) per session, or a note when it cannot be run."""
    import tempfile
    from pathlib import Path

    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return [], f"python_vs_onnx skipped: the serve extra is not installed ({missing[0]})"
    from deepqoe.export import SESSION_OUTPUT, _is_session_qoe_model, export_onnx, onnx_session, session_feeds
    from deepqoe.persistence import load_model
    from deepqoe.sessions.qoe_model import make_batch

    with tempfile.TemporaryDirectory(prefix="deepqoe-check-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            est = load_model(model)
            if not _is_session_qoe_model(est):
                return [], ("python_vs_onnx skipped: this model exports as a table model (its ONNX graph takes "
                            "table rows)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's tracer warnings
                export_onnx(model, path)
            runner = onnx_session(path)
        except DeepQoEError as e:  # the model cannot be exported: every session fails this path
            return [(s.id, None, f"no ONNX graph: {e}") for s in sessions], None
        out = []
        for s in sessions:  # one at a time: a 1e5-segment session alone
            try:
                score = runner.run([SESSION_OUTPUT], session_feeds(make_batch([s], est.mapping_, False)))[0]
                out.append((s.id, float(score[-1]), ""))
            except Exception as e:  # noqa: BLE001 - reported as a violation of the relation, never a crash
                out.append((s.id, None, f"{type(e).__name__}: {str(e)[:200]}"))
    return out, None


def _compare_path(res: RelationResult, bounds: RelationResult, answers, note, py: dict, notes: list[str],
                  lo: float, hi: float, what: str, tol: float) -> None:
    """Add each (id, score, detail) of another path to ``res`` (its distance to Python's score) and to the
    bounds; a note skips the relation."""
    if note:
        res.skipped, res.note = True, note
        notes.append(note)
    for sid, score, detail in answers:
        want = py[sid]["score"]
        if score is None:
            res.add(math.inf, f"{sid}: {detail}", tol)
            continue
        res.add(abs(score - want), f"{sid}: Python {want} vs {what} {score}", tol)
        _check_bounds(bounds, {"id": sid, "score": score}, lo, hi, f" ({what})")


def _common_change(a: dict, b: dict, scale) -> float:
    """How far the score moved from answer ``a`` to answer ``b``, on the common 1-5 scale."""
    return abs(float(to_common(b["score"], scale) - to_common(a["score"], scale)))


def check_model(predictor, n_sessions: int = 1000, seed: int = 0, *, model: str | None = None,
                progress: Callable[[str], None] | None = None) -> BehaviourReport:
    """Check the behaviour relations (module docstring) on ``n_sessions`` random sessions.

    ``predictor`` has ``predict_sessions(sessions, scale=None, curve=True) -> (rows, failures)``;
    ``model`` (a model directory or shipped name) is the same model for the service comparison
    (``python_vs_service`` is skipped without it); ``progress`` receives status lines (default: none).
    """
    if n_sessions < 1:
        raise DeepQoEError(f"n_sessions must be at least 1 (got {n_sessions})", field="n_sessions")
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    res = {name: RelationResult(name, desc) for name, desc in RELATIONS}
    notes: list[str] = []

    say(f"generating {n_sessions} random sessions and their perturbations")
    with warnings.catch_warnings():  # a generated stall moved to the end is the generator's business, no note
        warnings.simplefilter("ignore", DeepQoENote)
        cases = [_random_case(rng, f"r{i:05d}") for i in range(n_sessions)]
        pairs, quads = [], []
        for c in cases:
            p, q = _perturb(rng, c)
            pairs += p
            quads += q
        dips, repeats = _steady_cases(rng, max(10, n_sessions // 10))

    random_ids = {c.session.id for c in cases}
    bases = [o for _, o, _ in pairs if o.id not in random_ids]  # variants that a relation compares against
    ordinary = ([c.session for c in cases] + bases + [p for _, _, p in pairs] + [q[3] for q in quads]
                + [d[0] for d in dips]
                + [s for s, _, k in repeats if k == REPEATS[0]] + [r for _, r, _ in repeats])
    say(f"predicting {len(ordinary)} sessions")
    rows, failures = _predict(predictor, ordinary)
    scale = parse_scale(next(iter(rows.values()))["scale"]) if rows else parse_scale("1-5")
    lo, hi = (scale.lo, scale.hi) if scale.kind == "range" else (-math.inf, math.inf)

    for rel, orig, pert in pairs:
        a, b = rows.get(orig.id), rows.get(pert.id)
        if a is None or b is None:
            continue
        if rel == "stall_vanishing":
            change = _common_change(a, b, scale)
            res[rel].add(change, f"{pert.id}: {a['score']:.4f} -> {b['score']:.4f}", VANISH_TOL)
            continue
        up = rel in ("quality_higher", "bitrate_higher")
        wrong = (a["score"] - b["score"]) if up else (b["score"] - a["score"])
        res[rel].add(wrong, f"{pert.id}: {a['score']:.4f} -> {b['score']:.4f}", TOL)
    for quad in quads:
        sc = [rows.get(x.id) for x in quad]
        if any(r is None for r in sc):
            continue
        lo_cost, hi_cost = sc[0]["score"] - sc[1]["score"], sc[2]["score"] - sc[3]["score"]
        res["stall_cost_quality"].add(lo_cost - hi_cost, f"{quad[3].id}: the stall costs {lo_cost:.4f}, "
                                      f"{hi_cost:.4f} at the higher quality", TOL)
    for s, p, d in dips:
        _check_curve(res["curve_stall_dip"], res["curve_stall_recovery"], rows.get(s.id), p, d)
    for base, rep, k in repeats:
        a, b = rows.get(base.id), rows.get(rep.id)
        if a is None or b is None:
            continue
        change = _common_change(a, b, scale)
        res["repeat_steady"].add(change, f"{rep.id}: {a['score']:.4f} (10 s) -> {b['score']:.4f} ({10 * k} s)",
                                 REPEAT_TOL)

    bounds = res["bounds"]
    for row in rows.values():
        _check_bounds(bounds, row, lo, hi)
    for e in failures:
        bounds.add(math.inf, f"an ordinary session could not be predicted: {e}", TOL)
    if failures:
        notes.append(f"{len(failures)} ordinary session(s) could not be predicted, e.g. {failures[0]}")

    say("predicting extreme sessions (10 h, 1e5 segments, a 1e9-s stall, 50 stalls, 0.1 s)")
    extremes, refused = _extremes(rng)
    for e in refused:
        bounds.add(0.0, str(e), TOL)
        notes.append(f"extreme session refused by the session format (allowed): {e}")
    ext_rows = _predict_extremes(predictor, extremes, bounds, notes, lo, hi)

    paths = (("python_vs_service", "service", _service_scores, TOL), ("python_vs_cli", "CLI", _cli_scores, TOL),
             ("python_vs_onnx", "ONNX", _onnx_scores, ONNX_TOL))
    if model is None:
        for name, *_ in paths:
            res[name].skipped, res[name].note = True, "no model name given (check_model(..., model=...))"
    else:
        picks = [c.session for c in cases[:6]] + [r for _, r, k in repeats[:3]] + \
                [s for s in extremes if s.id in ext_rows and "1e5" not in s.id]
        py = {**rows, **ext_rows}
        picks = [s for s in picks if s.id in py]
        for name, what, scores_of, tol in paths:
            say(f"comparing Python and the {what}")
            with _memory_cap(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeepQoENote)
                try:
                    answers, note = scores_of(model, picks)
                except MemoryError:
                    answers, note = [], None
                    res[name].add(math.inf, f"the {what} ran out of memory (capped)", tol)
            _compare_path(res[name], bounds, answers, note, py, notes, lo, hi, what, tol)
    for r in res.values():
        if not r.checked and not r.skipped:
            r.note = r.note or "no case could be checked"
    return BehaviourReport(list(res.values()), n_sessions, seed, scale.name, time.perf_counter() - t0, notes)


# ---------------------------------------------------------------------------------------- command

#: the most random sessions ``check-model`` generates (each is perturbed several times: minutes at this size)
MAX_SESSIONS = 100_000


def main_check_model(args: argparse.Namespace) -> int:
    """``deepqoe check-model MODEL``: the table (or ``--json``) on stdout; exit 0 if nothing is violated, 1
    otherwise."""
    from deepqoe.cli import UsageError

    def say(msg: str) -> None:
        if not getattr(args, "quiet", False):
            print(f"check-model: {msg}", file=sys.stderr)

    n = int(getattr(args, "n_sessions", 1000))
    seed = int(getattr(args, "seed", 0))
    if not 1 <= n <= MAX_SESSIONS:
        raise UsageError(f"--n-sessions must be 1 to {MAX_SESSIONS}, got {n}")
    if seed < 0:
        raise UsageError(f"--seed must be 0 or more, got {seed}")
    say(f"loading {args.model}")
    predictor = load_predictor(args.model)
    if hasattr(predictor, "require_sessions"):  # a Predictor: a table model is refused before any work
        predictor.require_sessions()
    report = check_model(predictor, n_sessions=n, seed=seed, model=args.model, progress=say)
    for note in report.notes:
        say(f"note: {note}")
    for r in report.relations:
        if r.violated and r.example:
            say(f"{r.name}: worst case {r.example}")
    if getattr(args, "json", False):
        print(json.dumps({"model": str(args.model), **report.to_dict()}, indent=2))
    else:
        print(report.table())
    return 0 if report.ok else 1

