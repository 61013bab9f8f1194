"""Where the networks run: ``device: auto | cpu | cuda`` (``cuda:N`` for the N-th GPU).

    from deepqoe.devices import resolve_device
    resolve_device("auto")   # torch.device("cuda") when a CUDA GPU is visible, else torch.device("cpu")

One name is accepted everywhere: ``training.device`` in a config (validated by
:class:`~deepqoe.config.TrainingConfig` with :func:`check_device_name`), the estimators' ``device``
parameter (derived from that field), ``--device`` of ``train``, ``evaluate``, ``predict``, ``embed``,
``extract`` and ``serve``, ``load_predictor(model, device=...)`` and the ``device`` option of the ``c3d``
and ``cnn-frames`` extractors.

* ``cpu`` (the default everywhere): results repeat exactly for a seed.
* ``cuda`` / ``cuda:N``: the GPU. Without one (a CPU-only torch build, or no visible GPU) this is a
  :class:`~deepqoe.errors.DeepQoEError` -- on the command line one line and exit status 1 (a problem of
  the machine, like a missing file, not of the command line); a name that is no device at all
  (``--device gpu``) is a usage error, status 2.
* ``auto``: ``cuda`` when available, else ``cpu``.

Predictions on the GPU equal the CPU's within float tolerance (about 1e-5 relative: other kernels sum in
another order). Training on the GPU is not bit-identical to the CPU's: the mini-batch order is drawn on the
CPU from the seed (the same order on both), but dropout draws from the GPU's own random stream.
Saved weights are always written from CPU tensors and loaded to the CPU, so a model trained on a GPU loads
on a machine without one.
"""

from __future__ import annotations

import argparse
import re

from deepqoe.errors import DeepQoEError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "cpu"
NO_CUDA = "no CUDA device: install a CUDA build of torch (see README) or use --device cpu"
_NAME = re.compile(r"^(auto|cpu|cuda(:\d{1,3})?)$")


def check_device_name(name: object) -> str:
    """``name`` normalised (stripped, lower case) when it names a device (``auto``, ``cpu``, ``cuda``,
    ``cuda:N``), else a :class:`DeepQoEError` naming the value. Needs no GPU and does not import torch:
    a config written for a GPU machine validates anywhere."""
    if not isinstance(name, str) or not _NAME.match(name.strip().lower()):
        raise DeepQoEError(f"unknown device {name!r}: use one of auto, cpu, cuda (or cuda:N for the N-th GPU)",
                           field="device")
    return name.strip().lower()


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(name: object = DEFAULT_DEVICE):
    """The ``torch.device`` that ``name`` means on this machine (see the module's documentation).
    ``None`` is ``cpu``; a ``torch.device`` is checked like its name."""
    import torch

    if name is None:
        name = DEFAULT_DEVICE
    if isinstance(name, torch.device):
        name = str(name)
    n = check_device_name(name)
    if n == "cpu":
        return torch.device("cpu")
    if n == "auto":
        return torch.device("cuda") if cuda_available() else torch.device("cpu")
    if not cuda_available():
        raise DeepQoEError(NO_CUDA, field="device")
    dev = torch.device(n)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeepQoEError(f"no CUDA device {dev.index}: this machine has {torch.cuda.device_count()} "
                           f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})", field="device")
    return dev


def device_label(device) -> str:
    """A name for people: ``cpu``, or ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    import torch

    d = resolve_device(device) if not isinstance(device, torch.device) else device
    if d.type != "cuda":
        return str(d)
    index = d.index if d.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def _argparse_device(text: str) -> str:
    try:
        return check_device_name(text)
    except DeepQoEError as e:
        raise argparse.ArgumentTypeError(e.message) from None


def add_device_argument(parser: argparse.ArgumentParser, what: str = "the network",
                        default_help: str = "cpu") -> None:
    """``--device auto|cpu|cuda[:N]`` on a command (a bad name: a usage error, status 2). Its value is
    ``None`` when not given, so that a config's ``training.device`` is kept."""
    parser.add_argument("--device", type=_argparse_device, default=None, metavar="auto|cpu|cuda[:N]",
                        help=f"device for {what}: cpu, cuda (a GPU; needs a CUDA build of torch, see README) "
                             f"or auto (cuda when present; default: {default_help})")
