"""Out-of-the-box commands: ``demo``, ``serve``, ``export``, ``finetune``.

* ``deepqoe demo [--out DIR]``: predictions of the shipped models on built-in viewer rows and streaming
  sessions, with explanations and per-second QoE curves, in ``DIR/report.html`` (plus a quick real-data
  run when ``DEEPQOE_DATA`` is set). Needs no dataset and no network.
* ``deepqoe serve [MODEL] [--host H] [--port P]``: the HTTP prediction service (:mod:`deepqoe.serve`).
* ``deepqoe export MODEL --onnx FILE``: the network as ONNX (:mod:`deepqoe.export`).
* ``deepqoe finetune PRETRAINED CONFIG --out DIR [--freeze]``: transfer learning from a shipped or saved
  model to the dataset of CONFIG.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from deepqoe.errors import DeepQoEError


# ------------------------------------------------------------------------------------ finetune
def finetune(pretrained: str | Path, cfg, out_dir: str | Path, *, freeze: bool = False, full: bool = False,
             epochs: int | None = None, keep_architecture: bool = True, progress: bool = False) -> dict:
    """Train on ``cfg``'s dataset starting from ``pretrained``'s weights (every tensor whose name and shape
    match: the fully connected layers, the head, and input branches of the same kind and size).

    ``freeze``: keep the pretrained representation (input branches and fully connected layers) fixed and
    train only the head; it needs the fully connected layers to transfer (same total projected width). ``keep_architecture``: use the pretrained model's hidden layers and dropout
    (else the config's; then little but the input branches transfers). Returns the metrics written to
    ``out_dir/metrics.json``.
    """
    from deepqoe.datasets import load_dataset
    from deepqoe.estimators import estimator_from_config
    from deepqoe.evaluation.metrics import classification_metrics, regression_metrics
    from deepqoe.evaluation.protocols import make_splits
    from deepqoe.explain import fit_baseline
    from deepqoe.io import atomic_write_json
    from deepqoe.persistence import read_model_meta, resolve_model_dir, save_model

    src = resolve_model_dir(pretrained)
    pmeta = read_model_meta(src)
    if pmeta.get("session_model"):
        raise DeepQoEError("fine-tuning a session model from a table config is not supported: the session "
                           "model reads session features, not table columns")
    data = load_dataset(cfg.dataset)
    task = cfg.dataset.task
    if pmeta.get("task") != task:
        raise DeepQoEError(f"the pretrained model is a {pmeta.get('task')} model but the config's task is {task}; "
                           "only the representation would transfer - use a model of the same task")
    over: dict = {"init_from": str(src), "freeze_representation": bool(freeze), "progress": progress}
    if keep_architecture:
        over.update(hidden_layers=tuple(pmeta["params"]["hidden_layers"]), dropout=pmeta["params"]["dropout"])
    if epochs:
        over["max_epochs"] = int(epochs)
    if full:
        train_idx, test_idx = np.arange(len(data)), np.arange(0)
    else:
        split = make_splits("holdout", len(data), test_size=cfg.evaluation.test_size, seed=cfg.evaluation.seed)[0]
        train_idx, test_idx = split.train, split.test
    est = estimator_from_config(cfg, data.inputs, **over)
    t0 = time.perf_counter()
    groups = data.groups[train_idx] if data.groups is not None else None
    est.fit(data.X.iloc[train_idx], data.y[train_idx], groups=groups)
    seconds = time.perf_counter() - t0
    copied = list(getattr(est, "warm_started_", []))
    if not copied:
        raise DeepQoEError("no weight of the pretrained model fits this dataset's network (different inputs and "
                           "layers); train from scratch with 'deepqoe train' instead")
    fc_copied = any(k.startswith(("fc.", "head.")) for k in copied)
    if freeze and not fc_copied:
        raise DeepQoEError("--freeze keeps the pretrained representation, but its layers do not fit this "
                           "network (the inputs' total projected width differs); drop --freeze")

    def score(idx):
        pred = est.predict(data.X.iloc[idx])
        if task == "classification":
            return classification_metrics(data.y[idx], pred, list(cfg.dataset.classes))
        return regression_metrics(data.y[idx], pred)

    metrics = {"dataset": cfg.dataset.name, "task": task, "pretrained": str(pretrained), "frozen": bool(freeze),
               "warm_started": copied, "n_train": int(len(train_idx)), "n_test": int(len(test_idx)),
               "fit_seconds": seconds, "best_epoch": est.fit_result_.best_epoch,
               "epochs_run": est.fit_result_.epochs_run, "train": score(train_idx)}
    if len(test_idx):
        metrics["test"] = score(test_idx)
    dataset = cfg.dataset.model_dump()
    dataset["base_dir"] = cfg.dataset.base_dir
    save_model(est, out_dir, dataset_config=dataset, extra={
        "metrics": metrics, "finetuned_from": {"model": str(pretrained), "name": pmeta.get("name") or src.name,
                                               "frozen": bool(freeze), "tensors_copied": len(copied)},
        "explain_baseline": fit_baseline(est, data.X.iloc[train_idx])})
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics


def _cmd_finetune(args) -> int:
    from deepqoe.config import load_config

    cfg = load_config(args.config)
    m = finetune(args.pretrained, cfg, args.out, freeze=args.freeze, full=args.full, epochs=args.epochs,
                 keep_architecture=not args.config_architecture, progress=not args.quiet)
    part = m.get("test") or m["train"]
    key = "accuracy" if m["task"] == "classification" else "rmse"
    where = "test" if "test" in m else "train"
    print(f"fine-tuned from {args.pretrained} ({'frozen representation' if m['frozen'] else 'all layers'}; "
          f"{len(m['warm_started'])} tensors copied) on {m['n_train']} rows in {m['fit_seconds']:.1f} s; "
          f"{where} {key} = {part[key]:.4f}")
    print(f"model saved to {args.out} (metrics in {Path(args.out) / 'metrics.json'})")
    return 0


# ------------------------------------------------------------------------------------ export
def _cmd_export(args) -> int:
    from deepqoe.export import export_onnx, parity

    export_onnx(args.model_dir, args.onnx, opset=args.opset)
    msg = f"ONNX model written to {args.onnx}"
    try:
        d = parity(args.model_dir, args.onnx)
        msg += f" (max |ONNX - PyTorch| = {d:.2e} on random inputs)"
    except DeepQoEError:
        pass  # onnxruntime missing: the export itself is fine
    print(msg)
    return 0


# ------------------------------------------------------------------------------------ serve
def _cmd_serve(args) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError:
        raise DeepQoEError("the service needs FastAPI and uvicorn: pip install 'deepqoe[serve]'") from None
    from deepqoe.serve import run_server

    run_server(args.model_dir, host=args.host, port=args.port, max_body_bytes=args.max_body,
               max_items=args.max_items, explain_default=args.explain, access_log=args.access_log,
               log_level=args.log_level)
    return 0


# ------------------------------------------------------------------------------------ demo
def _cmd_demo(args) -> int:
    from deepqoe.demo import run_demo

    run_demo(args.out, with_data=not args.no_data, quiet=args.quiet)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="predict with the shipped models on built-in examples; write an HTML report")
    p.add_argument("--out", default="deepqoe-demo", help="report folder (default: deepqoe-demo)")
    p.add_argument("--no-data", action="store_true", help="skip the real-data part even when DEEPQOE_DATA is set")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("serve", help="serve a model over HTTP (FastAPI): POST /predict, GET /health, GET /model")
    p.add_argument("model_dir", nargs="?", default=None,
                   help="model directory or shipped model name (default: the shipped streaming model, "
                        "else upec-qoe-lab)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--explain", action="store_true", help="explain every prediction unless ?explain=false")
    p.add_argument("--max-body", type=int, default=2_000_000, help="largest request body in bytes (else 413)")
    p.add_argument("--max-items", type=int, default=1000, help="most rows / sessions per request (else 413)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("export", help="export a model's network to ONNX")
    p.add_argument("model_dir", help="model directory or shipped model name")
    p.add_argument("--onnx", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=17)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("finetune", help="transfer learning: start from a shipped/saved model, train on CONFIG")
    p.add_argument("pretrained", help="shipped model name or model directory to start from")
    p.add_argument("config", help="dataset/experiment config (YAML) of the new dataset")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--freeze", action="store_true", help="keep the pretrained representation fixed; train the head")
    p.add_argument("--full", action="store_true", help="train on all rows (no held-out test part)")
    p.add_argument("--epochs", type=int, help="override training.max_epochs")
    p.add_argument("--config-architecture", action="store_true",
                   help="use the config's hidden layers instead of the pretrained model's")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_finetune)
