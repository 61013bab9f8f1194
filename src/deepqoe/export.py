"""ONNX export of a DeepQoE network: ``deepqoe export MODEL_DIR --onnx FILE``.

The ONNX graph is the network (phases 2 and 3): its inputs are the **encoded tensors**, one per input
branch, exactly what phase 1 (:mod:`deepqoe.features.tabular`) produces; encoding (vocabularies, scaling,
word vectors) stays outside the graph and is described in the ONNX metadata so another runtime can
reproduce it:

* ``index`` inputs: int64 ``[batch]``, code = 1 + position in ``vocabulary`` (0 = unknown value);
* ``dense`` inputs: float32 ``[batch, dim]``, ``(x - shift) / scale`` for numbers (``log1p`` first when
  ``log``), the 50-d GloVe mean of the words for text;
* ``sequence`` inputs: float32 ``[batch, channels + 1, length]``: per-step values standardised with the
  channel ``mean`` / ``std``, zero-padded, the last channel = 1 on valid steps.

Outputs: ``output`` (the raw network output: logits for a classifier, the standardised score for a
regressor) and ``probabilities`` (classifier: softmax over ``classes``) or ``prediction`` (regressor:
``output * target.std + target.mean``). Metadata keys: ``deepqoe.inputs`` (JSON list: name, kind,
dtype, shape, modality, columns, encoder state), ``deepqoe.outputs``, ``deepqoe.model`` (estimator,
task, classes, target scaling), ``deepqoe.version``. The batch dimension is dynamic.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepqoe.errors import DeepQoEError


class _Exportable(nn.Module):
    def __init__(self, net: nn.Module, task: str, y_mean: float = 0.0, y_std: float = 1.0):
        super().__init__()
        self.net, self.task = net, task
        self.y_mean, self.y_std = float(y_mean), float(y_std)

    def forward(self, *inputs):
        out = self.net(list(inputs))
        if self.task == "classification":
            return out, torch.softmax(out, 1)
        return out, out[:, 0] * self.y_std + self.y_mean


def _safe(name: str, used: set) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name) or "input"
    base, k = s, 1
    while s in used:
        k += 1
        s = f"{base}_{k}"
    used.add(s)
    return s


def input_descriptions(est) -> list[dict]:
    """One entry per ONNX input: name, kind, dtype, shape, and how to encode it."""
    used: set = set()
    out = []
    for cfg, enc in zip(est.input_configs_, est.encoders_):
        d = enc.describe()
        kind = d["kind"]
        if kind == "index":
            shape, dtype = ["batch"], "int64"
        elif kind == "sequence":
            shape, dtype = ["batch", d["channels"], d["length"]], "float32"
        else:
            shape, dtype = ["batch", d["dim"]], "float32"
        state = enc.state()
        state = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in state.items()
                 if k not in ("oov",)}
        out.append({"name": _safe(cfg.key, used), "input": cfg.key, "kind": kind, "dtype": dtype, "shape": shape,
                    "modality": cfg.modality, "columns": enc.columns, "log": bool(getattr(cfg, "log", False)),
                    "encoder": state})
    return out


def example_tensors(est, n: int = 3, seed: int = 0) -> list[torch.Tensor]:
    """Random but valid encoded inputs (for tracing and parity checks)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for enc in est.encoders_:
        d = enc.describe()
        if d["kind"] == "index":
            out.append(torch.randint(0, max(d["cardinality"], 1), (n,), generator=g))
        elif d["kind"] == "sequence":
            L = d["length"]
            x = torch.randn(n, d["channels"], L, generator=g)
            lengths = torch.randint(1, L + 1, (n,), generator=g)
            mask = (torch.arange(L)[None, :] < lengths[:, None]).float()
            x[:, :-1] *= mask[:, None]
            x[:, -1] = mask
            out.append(x)
        else:
            out.append(torch.randn(n, d["dim"], generator=g))
    return out


def export_onnx(model: str | Path, path: str | Path, opset: int = 17) -> dict:
    """Export a model directory (or shipped model name) to an ONNX file; returns the metadata written."""
    from deepqoe import __version__
    from deepqoe.io import atomic_path
    from deepqoe.persistence import load_model

    est = load_model(model)
    est.network_.eval()
    task = est.task
    wrapper = _Exportable(est.network_, task, getattr(est, "y_mean_", 0.0), getattr(est, "y_std_", 1.0)).eval()
    inputs = input_descriptions(est)
    names = [d["name"] for d in inputs]
    second = "probabilities" if task == "classification" else "prediction"
    dynamic = {nm: {0: "batch"} for nm in names + ["output", second]}
    meta = {
        "deepqoe.version": __version__,
        "deepqoe.model": json.dumps({"name": est.meta_.get("name") or Path(est.model_dir_).name,
                                     "estimator": type(est).__name__, "task": task,
                                     "classes": est.classes_.tolist() if task == "classification" else None,
                                     "target": None if task == "classification" else
                                     {"mean": est.y_mean_, "std": est.y_std_},
                                     "session_model": est.meta_.get("session_model")}),
        "deepqoe.inputs": json.dumps(inputs),
        "deepqoe.outputs": json.dumps([
            {"name": "output", "meaning": "logits, one per class" if task == "classification"
             else "standardised score (prediction = output * target.std + target.mean)"},
            {"name": second, "meaning": "softmax probabilities, one per class in deepqoe.model.classes"
             if task == "classification" else "predicted score on the model's scale"}]),
        "deepqoe.encoding": "inputs are the encoded tensors of deepqoe.features.tabular (see deepqoe.inputs)",
    }
    try:
        import onnx
    except ModuleNotFoundError:
        raise DeepQoEError("ONNX export needs the 'onnx' package: pip install 'deepqoe[serve]'") from None
    example = tuple(example_tensors(est))
    path = Path(path)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = dict(input_names=names, output_names=["output", second], dynamic_axes=dynamic,
                          opset_version=opset)
            try:
                torch.onnx.export(wrapper, example, str(tmp), dynamo=False, **kwargs)
            except TypeError:  # an older torch without the dynamo switch
                torch.onnx.export(wrapper, example, str(tmp), **kwargs)
        m = onnx.load(str(tmp))
        for k, v in meta.items():
            p = m.metadata_props.add()
            p.key, p.value = k, v
        m.doc_string = ("DeepQoE network; inputs are encoded tensors per branch, see metadata deepqoe.inputs")
        onnx.checker.check_model(m)
        onnx.save(m, str(tmp))
    return meta


def onnx_session(path: str | Path):
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise DeepQoEError("running ONNX models needs 'onnxruntime': pip install 'deepqoe[serve]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def parity(model: str | Path, onnx_path: str | Path, X=None, n: int = 16) -> float:
    """Max |ONNX - PyTorch| over both outputs, on the encoded rows of ``X`` (or random valid tensors)."""
    from deepqoe.persistence import load_model

    est = load_model(model)
    tensors = est.encode(X) if X is not None else example_tensors(est, n=n, seed=1)
    wrapper = _Exportable(est.network_, est.task, getattr(est, "y_mean_", 0.0), getattr(est, "y_std_", 1.0)).eval()
    with torch.no_grad():
        ref = [t.numpy() for t in wrapper(*tensors)]
    sess = onnx_session(onnx_path)
    feeds = {d["name"]: t.numpy() for d, t in zip(input_descriptions(est), tensors)}
    got = sess.run(None, feeds)
    return float(max(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) for a, b in zip(ref, got)))
