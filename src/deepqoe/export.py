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

**Session models** (``"estimator": "SessionQoEModel"``, :mod:`deepqoe.sessions.qoe_model`). The graph is
the ensemble's forward (phases 2 and 3: memory track, parts, monotone fusion, ``1 + 4 sigmoid(z - L) exp(-M)``, mean of
the members) on the tensors of a :class:`~deepqoe.sessions.qoe_model.Batch`; the preprocessing (phase
1: quality track, prefix features of every evaluation point) stays in Python. An ONNX consumer builds
the inputs with ``deepqoe.sessions.qoe_model.make_batch(sessions, model.mapping_, curves)`` and feeds
them by name (:func:`session_feeds`):

==============  =======  ===============  ==========================================================
input           dtype    shape            meaning
==============  =======  ===============  ==========================================================
q               float32  [batch, steps]   quality track 0-1 per media step, padded with its last value
decay_steps     float32  [batch]          step length (s)
device          int64    [batch]          index in ``deepqoe.sessions.qoe_model.DEVICES``
mapped          float32  [batch]          1 when the quality comes from the bitrate mapping
p_sess          int64    [points]         session (row of ``q``) of each evaluation point
p_step          int64    [points]         last media step played at that point
fixed           float32  [points, 7]      prefix features (see ``Batch.fixed``)
st_age          float32  [points, stalls] media age of each started stall (s)
st_mag          float32  [points, stalls] log(1 + elapsed duration) of each stall, 0 = not started
sw_recent       float32  [batch, steps]   switches in each media step
==============  =======  ===============  ==========================================================

Every dimension (batch, steps, points, stalls) is dynamic. The output ``score`` ([points], float32) is
the score on the 1-5 scale at every evaluation point: the last point of a session is its score, and
with ``curves=True`` the points are its per-second curve. The per-step memory loop over the quality
track runs as an ONNX ``Loop`` over ``steps`` (no fixed maximum; ``make_batch`` caps a track at
``MAX_STEPS`` steps by lengthening the steps of long sessions). The loop is causal, so the padding of
shorter tracks in a batch never changes their points. Metadata: ``deepqoe.inputs`` (the table above as
JSON), ``deepqoe.outputs``, ``deepqoe.model`` (estimator, scale, calibrations, the calibration the file
scores with (``deepqoe export --calibration DATASET``; null: the average one), members, quality
mapping), ``deepqoe.preprocessing``, ``deepqoe.version``.
"""

from __future__ import annotations

import json
import functools
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from deepqoe.errors import DeepQoEError
from deepqoe.sessions.qoe_model import calibration_points


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


def _is_session_qoe_model(est) -> bool:
    from deepqoe.sessions.qoe_model import SessionQoEModel

    return isinstance(est, SessionQoEModel)


#: the lowest ONNX opset every deepqoe network exports to (the session model's tracks need opset 11's ops)
MIN_OPSET = 11


def max_opset() -> int:
    """The highest ONNX opset this torch's exporter writes."""
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET
    except ImportError:  # pragma: no cover - a torch that moved it
        return 20
    return int(ONNX_MAX_OPSET)


def _write_onnx(wrapper: nn.Module, example: tuple, path: Path, input_names: list[str], output_names: list[str],
                dynamic: dict, meta: dict, doc: str, opset: int) -> None:
    """Trace ``wrapper`` on ``example``, add the metadata, check the graph and write it atomically."""
    from deepqoe.io import atomic_path

    try:
        import onnx
    except ModuleNotFoundError:
        raise DeepQoEError("ONNX export needs the 'onnx' package: pip install 'deepqoe[serve]'") from None
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = dict(input_names=input_names, output_names=output_names, dynamic_axes=dynamic,
                          opset_version=opset)
            try:
                try:
                    torch.onnx.export(wrapper, example, str(tmp), dynamo=False, **kwargs)
                except TypeError:  # an older torch without the dynamo switch
                    torch.onnx.export(wrapper, example, str(tmp), **kwargs)
            except (RuntimeError, ValueError) as e:  # an operator the asked opset lacks, and the like
                first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
                raise DeepQoEError(f"the ONNX export failed at opset {opset}: {first[:300]} (the default opset 17 "
                                   "works for every deepqoe model)", field="opset") from None
        m = onnx.load(str(tmp))
        for k, v in meta.items():
            p = m.metadata_props.add()
            p.key, p.value = k, v
        m.doc_string = doc
        onnx.checker.check_model(m)
        onnx.save(m, str(tmp))


def export_onnx(model: str | Path, path: str | Path, opset: int = 17, calibration: str | None = None) -> dict:
    """Export a model directory (or shipped model name) to an ONNX file; returns the metadata written.
    ``calibration``: a session model's training dataset whose use of the scale the file scores with
    (``deepqoe predict --calibration``; default: the average calibration)."""
    from deepqoe import __version__
    from deepqoe.persistence import load_model

    est = load_model(model)
    if _is_session_qoe_model(est):
        return _export_session_model(est, Path(path), opset, calibration)
    if calibration is not None:
        raise DeepQoEError("--calibration is for session models trained on several datasets", field="calibration")
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
    _write_onnx(wrapper, tuple(example_tensors(est)), Path(path), names, ["output", second], dynamic, meta,
                "DeepQoE network; inputs are encoded tensors per branch, see metadata deepqoe.inputs", opset)
    return meta


# ---------------------------------------------------------------------------------------- session models
#: The inputs of an exported session model: (name, dtype, shape, meaning), in the graph's order.
SESSION_INPUTS = [
    ("q", "float32", ["batch", "steps"], "quality track 0-1 per media step, padded with its last value"),
    ("decay_steps", "float32", ["batch"], "step length of the quality track (s)"),
    ("device", "int64", ["batch"], "index in deepqoe.sessions.qoe_model.DEVICES"),
    ("mapped", "float32", ["batch"], "1.0 when the quality comes from the bitrate mapping, not a metric"),
    ("p_sess", "int64", ["points"], "session (row of q) of each evaluation point"),
    ("p_step", "int64", ["points"], "last media step played at each evaluation point"),
    ("fixed", "float32", ["points", 7], "q_running_mean, stall_rate_log, stall_share, stall_longest_log, "
                                        "startup_log, switch_rate_log, media_played (s) at each point"),
    ("st_age", "float32", ["points", "stalls"], "media age of each started stall (s)"),
    ("st_mag", "float32", ["points", "stalls"], "log(1 + elapsed duration) of each stall (0 = not started)"),
    ("sw_recent", "float32", ["batch", "steps"], "switches in each media step"),
]
SESSION_OUTPUT = "score"


def _memory_tracks(q: torch.Tensor, sw: torch.Tensor, up: torch.Tensor, down: torch.Tensor,
                   sw_dec: torch.Tensor) -> torch.Tensor:
    """The loop of ``SessionQoENet.parts`` for K members at once: q, sw (B, J); up, down, sw_dec (K, B)
    per-step rates -> (K, B, J, 3): memory m, running mean of m, switch recency after each step."""
    m = q[:, 0].unsqueeze(0).expand(up.shape[0], q.shape[0])
    msum = torch.zeros_like(up)
    swr = torch.zeros_like(up)
    out = []
    for j in range(q.shape[1]):
        qj = q[:, j].unsqueeze(0)
        a = torch.where(qj < m, down, up)
        m = m + a * (qj - m)
        msum = msum + m
        swr = swr * sw_dec + sw[:, j].unsqueeze(0)
        out.append(torch.stack([m, msum / (j + 1), swr], 2))
    return torch.stack(out, 2)


@functools.cache
def _scripted_memory_tracks():
    """:func:`_memory_tracks` compiled by TorchScript, so the export keeps the loop as an ONNX Loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(_memory_tracks)


class SessionExportable(nn.Module):
    """The forward of a SessionQoEModel's ensemble (``model.net_``) on plain Batch tensors.

    Same computation as ``torch.stack([net(batch) for net in model.net_]).mean(0)``: the memory loop of
    :meth:`SessionQoENet.parts` runs once for every member as an ONNX Loop (:func:`_memory_tracks`); each
    member's ``parts`` (given that track) and ``score_from_parts`` are used as they are."""

    def __init__(self, nets: nn.ModuleList, calibration: int | None = None):
        super().__init__()
        self.nets = nets
        self.calibration = calibration  # the index of a training dataset's calibration (None: the average)

    def forward(self, q, decay_steps, device, mapped, p_sess, p_step, fixed, st_age, st_mag, sw_recent):
        rates = [net.rates() for net in self.nets]
        up = torch.stack([1 - (1 - u) ** decay_steps for u, _ in rates])        # (K, B) per-step rates
        down = torch.stack([1 - (1 - d) ** decay_steps for _, d in rates])
        sw_dec = torch.stack([torch.exp(-decay_steps / torch.exp(net.switch_tau)) for net in self.nets])
        track = _scripted_memory_tracks()(q, sw_recent, up, down, sw_dec)       # (K, B, J, 3)
        b = SimpleNamespace(device=device, mapped=mapped, p_sess=p_sess, p_step=p_step, fixed=fixed,
                            st_age=st_age, st_mag=st_mag)
        cal = calibration_points(self.calibration, b)
        scores = [net.score_from_parts(net.parts(b, track[k]), b, cal) for k, net in enumerate(self.nets)]
        return torch.stack(scores).mean(0)


def session_feeds(batch) -> dict[str, np.ndarray]:
    """The ONNX inputs of an exported session model, by name, from ``make_batch(sessions, mapping, curves)``."""
    return {name: getattr(batch, name).numpy().astype(np.int64 if dtype == "int64" else np.float32)
            for name, dtype, _, _ in SESSION_INPUTS}


def _example_sessions() -> list:
    from deepqoe.sessions.frame import example_sessions, parse_sessions

    return parse_sessions(example_sessions())


def _export_session_model(est, path: Path, opset: int, calibration: str | None = None) -> dict:
    from deepqoe import __version__
    from deepqoe.sessions.qoe_model import make_batch

    est.net_.eval()
    wrapper = SessionExportable(est.net_, est.calibration_index(calibration)).eval()  # an unknown name: an error
    # trace on real sessions with curves: several sessions, points, steps and stalls
    feeds = session_feeds(make_batch(_example_sessions(), est.mapping_, True))
    names = [name for name, _, _, _ in SESSION_INPUTS]
    dynamic = {name: {i: d for i, d in enumerate(shape) if isinstance(d, str)}
               for name, _, shape, _ in SESSION_INPUTS}
    dynamic[SESSION_OUTPUT] = {0: "points"}
    meta = {
        "deepqoe.version": __version__,
        "deepqoe.model": json.dumps({"name": est.meta_.get("name") or Path(est.model_dir_).name,
                                     "estimator": type(est).__name__, "task": "regression", "scale": est.scale,
                                     "members": len(est.net_), "calibrations": est.calibrations_,
                                     "calibration": calibration,
                                     "quality_mapping": est.mapping_.state(),
                                     "session_model": est.meta_.get("session_model")}),
        "deepqoe.inputs": json.dumps([{"name": n, "dtype": t, "shape": sh, "meaning": m}
                                      for n, t, sh, m in SESSION_INPUTS]),
        "deepqoe.outputs": json.dumps([{"name": SESSION_OUTPUT, "dtype": "float32", "shape": ["points"],
                                        "meaning": f"score on the {est.scale} scale at every evaluation point "
                                                   "(a session's last point = its score)"}]),
        "deepqoe.preprocessing": "build the inputs in Python: deepqoe.sessions.qoe_model.make_batch(sessions, "
                                 "model.mapping_, curves) -> deepqoe.export.session_feeds(batch); the memory "
                                 "loop over 'steps' is an ONNX Loop (any track length)",
    }
    example = tuple(torch.from_numpy(feeds[n]) for n in names)
    _write_onnx(wrapper, example, path, names, [SESSION_OUTPUT], dynamic, meta,
                "DeepQoE session model (SessionQoEModel); inputs are the tensors of "
                "deepqoe.sessions.qoe_model.make_batch, see metadata deepqoe.inputs", opset)
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
    """Max |ONNX - PyTorch| over the outputs, on the encoded rows of ``X`` (or random valid tensors).
    For a session model: on the sessions ``X`` (or the example sessions), every point of their curves, with
    the calibration the file was exported with (its metadata)."""
    from deepqoe.persistence import load_model

    est = load_model(model)
    if _is_session_qoe_model(est):
        from deepqoe.sessions.qoe_model import make_batch

        sessions = list(X) if X is not None else _example_sessions()
        if not all(hasattr(s, "media_duration") for s in sessions):
            raise DeepQoEError("the parity check of a session model takes a list of sessions "
                               "(deepqoe.sessions.Session), not a table")
        batch = make_batch(sessions, est.mapping_, True)
        sess = onnx_session(onnx_path)
        calibration = json.loads(sess.get_modelmeta().custom_metadata_map["deepqoe.model"]).get("calibration")
        cal = calibration_points(est.calibration_index(calibration), batch)
        with torch.no_grad():
            ref = torch.stack([net(batch, cal) for net in est.net_]).mean(0).numpy()
        got = sess.run([SESSION_OUTPUT], session_feeds(batch))[0]
        return float(np.max(np.abs(ref.astype(np.float64) - got.astype(np.float64))))
    tensors = est.encode(X) if X is not None else example_tensors(est, n=n, seed=1)
    wrapper = _Exportable(est.network_, est.task, getattr(est, "y_mean_", 0.0), getattr(est, "y_std_", 1.0)).eval()
    with torch.no_grad():
        ref = [t.numpy() for t in wrapper(*tensors)]
    sess = onnx_session(onnx_path)
    feeds = {d["name"]: t.numpy() for d, t in zip(input_descriptions(est), tensors)}
    got = sess.run(None, feeds)
    return float(max(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) for a, b in zip(ref, got)))
