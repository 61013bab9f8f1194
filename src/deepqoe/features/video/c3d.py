"""``c3d``: the C3D network of the DeepQoE paper (Tran et al. 2015), in plain torch.

The video is cut into clips of 16 consecutive frames (at most ``max_clips``, spread evenly over the
video, not overlapping when the video is long enough); frames are turned upright as they are shown (a
phone clip with a display rotation is seen in portrait); each clip is scaled to 112 x 200, centre-cropped
to 112 x 112 (RGB, values 0-255, as in the common PyTorch port) and passed through the network; the
4096 activations of ``fc6`` (after its ReLU) are averaged over the clips: columns ``c3d_0000`` ...
``c3d_4095``.

No C3D weights ship with deepqoe (none are licensed for it): give a weight file with ``--c3d-weights``.

Weight file layout
------------------
A safetensors file with float tensors named as in the PyTorch port of the Sports-1M model::

    conv1.weight  [64, 3, 3, 3, 3]     conv1.bias  [64]
    conv2.weight  [128, 64, 3, 3, 3]   conv2.bias  [128]
    conv3a.weight [256, 128, 3, 3, 3]  conv3a.bias [256]
    conv3b.weight [256, 256, 3, 3, 3]  conv3b.bias [256]
    conv4a.weight [512, 256, 3, 3, 3]  conv4a.bias [512]
    conv4b.weight [512, 512, 3, 3, 3]  conv4b.bias [512]
    conv5a.weight [512, 512, 3, 3, 3]  conv5a.bias [512]
    conv5b.weight [512, 512, 3, 3, 3]  conv5b.bias [512]
    fc6.weight    [4096, 8192]         fc6.bias    [4096]
    (fc7.weight [4096, 4096], fc7.bias, fc8.weight [487, 4096], fc8.bias: optional, not used)

The published checkpoint ``c3d.pickle`` (a torch pickle with exactly these names) is converted with::

    deepqoe convert-c3d-weights c3d.pickle c3d.safetensors

which reads it with ``torch.load(weights_only=True)`` (tensors only: no code in the file is run), checks
every name and shape and writes safetensors. The extractor itself only ever reads safetensors.

``device`` (``cpu`` by default, ``cuda``, ``auto``; ``deepqoe extract --device``) runs the network on a
GPU, ``batch_size`` clips at a time; the features equal the CPU's within float tolerance, so the device is
not part of the cache key.
"""

from __future__ import annotations

import hashlib
import math
import threading
from pathlib import Path

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.features.video.base import Extractor, Features
from deepqoe.features.video.decode import FrameSampler, VideoError, probe

CLIP_LENGTH = 16
CROP = 112
FEATURE_DIM = 4096

CONVS = (("conv1", 3, 64), ("conv2", 64, 128), ("conv3a", 128, 256), ("conv3b", 256, 256),
         ("conv4a", 256, 512), ("conv4b", 512, 512), ("conv5a", 512, 512), ("conv5b", 512, 512))
EXPECTED_SHAPES: dict[str, tuple[int, ...]] = {}
for _n, _i, _o in CONVS:
    EXPECTED_SHAPES[f"{_n}.weight"] = (_o, _i, 3, 3, 3)
    EXPECTED_SHAPES[f"{_n}.bias"] = (_o,)
EXPECTED_SHAPES["fc6.weight"] = (4096, 8192)
EXPECTED_SHAPES["fc6.bias"] = (4096,)
OPTIONAL_SHAPES = {"fc7.weight": (4096, 4096), "fc7.bias": (4096,), "fc8.weight": (487, 4096),
                   "fc8.bias": (487,)}


def build_c3d():
    """The C3D network up to fc6 (``forward`` returns ReLU(fc6), 4096-d)."""
    import torch
    from torch import nn

    class C3D(nn.Module):
        def __init__(self):
            super().__init__()
            for name, cin, cout in CONVS:
                setattr(self, name, nn.Conv3d(cin, cout, kernel_size=3, padding=1))
            self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
            self.pool2 = nn.MaxPool3d(kernel_size=2, stride=2)
            self.pool3 = nn.MaxPool3d(kernel_size=2, stride=2)
            self.pool4 = nn.MaxPool3d(kernel_size=2, stride=2)
            self.pool5 = nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))
            self.fc6 = nn.Linear(8192, 4096)
            self.relu = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 3, 16, 112, 112)
            r = self.relu
            h = self.pool1(r(self.conv1(x)))
            h = self.pool2(r(self.conv2(h)))
            h = self.pool3(r(self.conv3b(r(self.conv3a(h)))))
            h = self.pool4(r(self.conv4b(r(self.conv4a(h)))))
            h = self.pool5(r(self.conv5b(r(self.conv5a(h)))))
            return r(self.fc6(h.reshape(h.shape[0], 8192)))

    return C3D()


def check_state_dict(state: dict, file: str) -> dict:
    """Keep the C3D tensors (strip a 'module.' prefix), check names and shapes."""
    import torch

    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DeepQoEError(f"expected a dict of tensors (a state_dict), found {type(state).__name__}",
                           file=file)
    clean = {}
    for k, v in state.items():
        k = str(k).removeprefix("module.")
        if k in EXPECTED_SHAPES or k in OPTIONAL_SHAPES:
            if not isinstance(v, torch.Tensor):
                try:
                    v = torch.as_tensor(np.asarray(v))
                except (TypeError, ValueError, RuntimeError):
                    raise DeepQoEError(f"'{k}' is not a tensor of numbers (found {type(v).__name__})",
                                       file=file) from None
            if v.dtype == torch.bool or v.is_complex():
                raise DeepQoEError(f"tensor '{k}' holds {str(v.dtype).removeprefix('torch.')} values, not real "
                                   "numbers: not C3D weights", file=file)
            clean[k] = v.detach().to(torch.float32).contiguous()
    missing = [k for k in EXPECTED_SHAPES if k not in clean]
    if missing:
        raise DeepQoEError(f"not C3D weights: missing {', '.join(missing[:5])}"
                           + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                           + f" (found keys: {', '.join(list(map(str, state))[:6])}...)", file=file)
    for k, v in clean.items():
        want = EXPECTED_SHAPES.get(k) or OPTIONAL_SHAPES.get(k)
        if tuple(v.shape) != want and not (k.startswith("fc8") and v.shape[-1:] == want[-1:]):
            raise DeepQoEError(f"tensor '{k}' has shape {list(v.shape)}, expected {list(want)}", file=file)
    for k, v in clean.items():  # NaN weights would give a table of NaN features without a word
        if not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise DeepQoEError(f"tensor '{k}' has {bad} value(s) that are NaN or infinite (or too large for "
                               "float32): damaged weights", file=file)
    return clean


def _source_problem(p: Path, what: str) -> str | None:
    """Why ``p`` cannot be read as a weight file, or None."""
    if not p.exists():
        return f"{what} not found"
    if p.is_dir():
        return f"is a folder, not a {what}"
    if not p.is_file():
        return f"not a regular file (a pipe, socket or device), not a {what}"
    if p.stat().st_size == 0:
        return f"the file is empty (0 bytes), not a {what}"
    return None


def check_destination(src: str, dst: str) -> None:
    """The safetensors file ``convert-c3d-weights`` writes: it must end in ``.safetensors`` (the only
    format ``--c3d-weights`` reads) and must not be the source."""
    d, s = Path(dst), Path(src)
    try:
        same = s.resolve() == d.resolve() or (d.exists() and s.exists() and s.samefile(d))
    except OSError:
        same = False
    if same:
        raise DeepQoEError("is the source checkpoint itself: give another file name for the converted weights",
                           file=str(d))
    if d.suffix.lower() != ".safetensors":
        raise DeepQoEError("the converted weights are a safetensors file: give a name ending in .safetensors",
                           file=str(d))


def convert_c3d_checkpoint(src: str, dst: str) -> dict:
    """Convert a torch checkpoint of C3D (e.g. the published ``c3d.pickle``) to safetensors.

    The source is read with ``torch.load(weights_only=True)``: only tensors and plain containers are
    accepted, no code is run. Returns the names and shapes written.
    """
    import pickle

    import torch
    from safetensors.torch import save_file

    from deepqoe.io import atomic_path

    import warnings
    import zipfile

    p = Path(src)
    problem = _source_problem(p, "weight file")
    if problem is not None:
        raise DeepQoEError(problem, file=str(p))
    check_destination(src, dst)
    with open(p, "rb") as f:
        head = f.read(2)
    # a torch checkpoint is a zip archive (torch.save since 1.6) or a pickle (protocol 2 or more: b"\x80")
    if not zipfile.is_zipfile(p) and head[:1] != b"\x80":
        raise DeepQoEError("not a torch checkpoint (neither the zip archive nor the pickle torch.save writes)",
                           file=str(p))
    try:
        with warnings.catch_warnings():  # torch's own warnings about the file: the refusal says it all
            warnings.simplefilter("ignore")
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        import re

        why = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(e))  # e.g. Unsupported global: ...
        raise DeepQoEError("refused: the file holds more than tensors (code or other objects), so it is not "
                           "loaded (torch.load weights_only=True" + (f": {why.group(1).strip()[:200]}" if why else "")
                           + ")", file=str(p)) from None
    except Exception as e:  # noqa: BLE001 - any failure of an untrusted file is the user's problem
        first = (str(e).strip().splitlines() or [""])[0][:200]
        detail = f" ({first})" if len(first) > 8 else ""  # not a bare key or number
        raise DeepQoEError(f"damaged or not a torch checkpoint: torch cannot read it{detail}", file=str(p)) from None
    clean = check_state_dict(state, str(p))
    with atomic_path(dst) as tmp:
        save_file(clean, str(tmp), metadata={"format": "deepqoe-c3d", "source": p.name})
    return {k: list(v.shape) for k, v in clean.items()}


def load_c3d_weights(path: str):
    """Read and check a C3D safetensors file."""
    p = Path(path)
    problem = _source_problem(p, "C3D weight file")
    if problem is not None:
        raise DeepQoEError(problem, file=str(p))
    if p.suffix.lower() in (".pth", ".pt", ".pickle", ".pkl", ".tar", ".ckpt"):
        raise DeepQoEError("C3D weights must be a safetensors file; convert a torch checkpoint first "
                           f"with: deepqoe convert-c3d-weights {p} {p.with_suffix('.safetensors')}",
                           file=str(p))
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise DeepQoEError(f"not a readable safetensors file ({e})", file=str(p)) from None
    return check_state_dict(state, str(p))


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


_models: dict[str, object] = {}
_lock = threading.Lock()


def clip_starts(n_frames: int, max_clips: int) -> list[int]:
    """Start indices of up to ``max_clips`` clips of 16 frames spread evenly over ``n_frames``."""
    if n_frames < CLIP_LENGTH:
        return []
    k = max(1, min(max_clips, n_frames // CLIP_LENGTH))
    if k == 1:
        return [(n_frames - CLIP_LENGTH) // 2]
    span = n_frames - CLIP_LENGTH
    return [int(round(i * span / (k - 1))) for i in range(k)]


def preprocess_clip(frames: list[np.ndarray]) -> np.ndarray:
    """16 RGB frames of 112 x 200 -> (3, 16, 112, 112) float32 (centre crop)."""
    a = np.stack(frames).astype(np.float32)  # (16, 112, 200, 3)
    x0 = (a.shape[2] - CROP) // 2
    a = a[:, :, x0:x0 + CROP, :]
    return np.ascontiguousarray(a.transpose(3, 0, 1, 2))


class C3DExtractor(Extractor):
    name = "c3d"
    # 2: frames turned upright as shown (videos with a display rotation were fed to the network sideways,
    # and their centre crop was another part of the picture); videos without a rotation: the same values as 1
    version = "3"  # 3: a mirrored display matrix undone too (flipped frames were fed to it mirrored)
    defaults = {"weights": None, "max_clips": 8, "batch_size": 2, "device": "cpu"}

    def __init__(self, **options):
        from deepqoe.devices import resolve_device

        super().__init__(**options)
        self.device = resolve_device(self.opts["device"])  # no GPU for "cuda": one error for the run
        w = self.opts.get("weights")
        if not w:
            raise DeepQoEError("the c3d extractor needs C3D weights: no weights ship with deepqoe. Give a "
                               "safetensors file with --c3d-weights FILE (convert the published "
                               "c3d.pickle with: deepqoe convert-c3d-weights c3d.pickle c3d.safetensors)",
                               field="c3d-weights")
        problem = _source_problem(Path(w), "C3D weight file")
        if problem is not None:
            raise DeepQoEError(problem, file=str(w))
        if int(self.opts["max_clips"]) < 1:
            raise DeepQoEError("max_clips must be at least 1", field="c3d-max-clips")
        self.weights_path = str(Path(w).resolve())
        self.weights_sha256 = file_sha256(self.weights_path)
        self.model  # load and check now: a bad file is one error for the whole run

    def options(self) -> dict:
        return {"weights_sha256": self.weights_sha256, "max_clips": int(self.opts["max_clips"])}

    @property
    def model(self):
        with _lock:
            key = f"{self.weights_sha256}@{self.device}"
            m = _models.get(key)
            if m is None:
                m = build_c3d()
                m.load_state_dict(load_c3d_weights(self.weights_path), strict=False)
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
                m = _models[key] = m.to(self.device)
            return m

    def _clips(self, video_path, n_frames: int):
        starts = clip_starts(n_frames, int(self.opts["max_clips"]))
        wanted = sorted({s + i for s in starts for i in range(CLIP_LENGTH)})
        wanted_set = set(wanted)
        sampler = FrameSampler(video_path, select=lambda idx: idx in wanted_set, size=(200, CROP),
                               fmt="rgb24", max_frames=len(wanted) or None)
        frames = {}
        it = iter(wanted)
        for _t, img in sampler:
            idx = next(it, None)
            if idx is None:
                break
            frames[idx] = img
        clips = [[frames[s + i] for i in range(CLIP_LENGTH)] for s in starts
                 if all((s + i) in frames for i in range(CLIP_LENGTH))]
        return clips, sampler.stats

    def extract(self, video_path, reference=None) -> Features:
        import torch

        info = probe(video_path)
        n = info.frames or (int(round(info.duration * info.fps))
                            if math.isfinite(info.duration) and math.isfinite(info.fps) else 0)
        clips, stats = self._clips(video_path, n) if n >= CLIP_LENGTH else ([], None)
        decoded = stats.decoded if stats else 0
        if not clips:
            # the container's frame count was missing or wrong: count by decoding
            from deepqoe.features.video.decode import count_frames

            real = count_frames(video_path).decoded
            decoded += real
            if real < CLIP_LENGTH:
                raise VideoError(f"the video has {real} frame(s), fewer than one C3D clip ({CLIP_LENGTH})",
                                 file=str(video_path))
            clips, stats = self._clips(video_path, real)
            decoded += stats.decoded
        model = self.model
        bs = int(self.opts["batch_size"])
        out = []
        with torch.inference_mode():
            for i in range(0, len(clips), bs):
                x = torch.from_numpy(np.stack([preprocess_clip(c) for c in clips[i:i + bs]])).to(self.device)
                out.append(model(x).cpu().numpy().astype(np.float64))
        f = np.concatenate(out).mean(axis=0)
        return Features(values={f"c3d_{i:04d}": float(v) for i, v in enumerate(f)}, frames=decoded)


def save_random_weights(path: str, seed: int = 0) -> str:
    """Write C3D weights with random values (for tests and demos; not meaningful features)."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    m = build_c3d()
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    save_file(state, str(path))
    return str(path)
