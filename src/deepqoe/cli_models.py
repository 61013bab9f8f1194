"""Sub-commands on models: ``train``, ``evaluate``, ``finetune``, ``predict``, ``embed``, ``models``,
``export``. Each handler parses nothing and computes nothing itself: it calls :mod:`deepqoe.workflow`,
:mod:`deepqoe.persistence` or :mod:`deepqoe.export` and prints the result."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError
from deepqoe.workflow import PROTOCOL_CHOICES


def _print_trained(metrics: dict, out: str, prefix: str) -> None:
    part = metrics.get("test") or metrics["train"]
    key = "accuracy" if metrics["task"] == "classification" else "rmse"
    where = "test" if "test" in metrics else "train"
    print(f"{prefix} on {metrics['n_train']} rows in {metrics['fit_seconds']:.1f} s; {where} {key} = {part[key]:.4f}")
    print(f"model saved to {out} (metrics in {Path(out) / 'metrics.json'})")


def _print_trained_sessions(metrics: dict, out: str) -> None:
    """The summary of a session model's training, on standard error (metrics.json holds every number)."""
    ev = metrics["evaluation"]
    score = ""
    if ev:
        key = "all" if "all" in ev["scores"] else next(iter(ev["scores"]))
        score = f"; {ev['n_splits']}-fold content-disjoint SROCC = {ev['scores'][key]['srocc']:.3f}"
    print(f"trained a session model on {metrics['n_train']} sessions ({', '.join(metrics['datasets'])}) "
          f"in {metrics['fit_seconds']:.1f} s{score}", file=sys.stderr)
    print(f"model saved to {out} (metrics in {Path(out) / 'metrics.json'})", file=sys.stderr)


def _cmd_train(args) -> int:
    from deepqoe.config import SessionsExperimentConfig, load_train_config
    from deepqoe.workflow import train_config, train_sessions_config

    cfg = load_train_config(args.config)
    if isinstance(cfg, SessionsExperimentConfig):
        if args.epochs is not None:
            if args.epochs < 1:
                raise DeepQoEError(f"--epochs must be at least 1, got {args.epochs}")
            cfg.training.epochs = args.epochs
        _print_trained_sessions(train_sessions_config(cfg, args.out, full=args.full, progress=not args.quiet),
                                args.out)
        return 0
    if args.epochs:
        cfg.training.max_epochs = args.epochs
    _print_trained(train_config(cfg, args.out, full=args.full, progress=not args.quiet), args.out, "trained")
    return 0


def _cmd_finetune(args) -> int:
    from deepqoe.config import load_config
    from deepqoe.workflow import finetune

    cfg = load_config(args.config)
    m = finetune(args.pretrained, cfg, args.out, freeze=args.freeze, full=args.full, epochs=args.epochs,
                 keep_architecture=not args.config_architecture, progress=not args.quiet)
    how = "frozen representation" if m["frozen"] else "all layers"
    _print_trained(m, args.out, f"fine-tuned from {args.pretrained} ({how}; {len(m['warm_started'])} tensors copied)")
    return 0


def _cmd_evaluate(args) -> int:
    from deepqoe.config import load_config
    from deepqoe.io import atomic_write_json
    from deepqoe.workflow import evaluate_config, format_summary, write_evaluation_plots

    cfg = load_config(args.config)
    baselines = args.baselines.split(",") if args.baselines else None
    results = evaluate_config(cfg, protocol=args.protocol, n_splits=args.n_splits, test_size=args.test_size,
                              baselines=baselines, progress=not args.quiet, max_epochs=args.epochs)
    print(format_summary(results))
    if args.plots:
        for p in write_evaluation_plots(results, args.plots):
            print(f"plot: {p}")
    results.pop("_pooled")
    if args.json:
        atomic_write_json(args.json, results)
        print(f"results written to {args.json}")
    return 0


def _write_output(df: pd.DataFrame, out: str | None) -> None:
    from deepqoe.io import write_table

    if out:
        write_table(df, out)
        print(f"{len(df)} rows written to {out}")
    else:
        df.to_csv(sys.stdout, index=False)


def _cmd_predict(args) -> int:
    from deepqoe.persistence import load_model
    from deepqoe.workflow import read_prediction_input

    data = Path(args.data)
    est = load_model(args.model_dir)
    if est.meta_.get("session_model") or data.suffix.lower() == ".json" or data.is_dir():
        try:
            from deepqoe.sessions.predict import predict_sessions
        except ModuleNotFoundError:
            raise DeepQoEError("session input (JSON) needs the streaming-session support, which this build "
                               "lacks") from None
        return predict_sessions(est, args)
    from deepqoe.predictor import Predictor

    X, ids = read_prediction_input(dict(est.meta_), data)
    rows = Predictor(est).predict_rows(X)  # the one path from rows to scores (as the service)
    out = pd.DataFrame({"row": np.arange(1, len(X) + 1)})
    if ids is not None:
        out["id"] = ids
    out["score"] = [r["score"] for r in rows]
    if est.task == "classification":
        if "expected_rating" in rows[0]:
            out["expected_rating"] = [r["expected_rating"] for r in rows]
        for c in rows[0]["probabilities"]:
            out[f"prob_{c}"] = [r["probabilities"][c] for r in rows]
    _write_output(out, args.out)
    return 0


def _cmd_embed(args) -> int:
    from deepqoe.persistence import load_model
    from deepqoe.workflow import read_prediction_input

    est = load_model(args.model_dir)
    X, ids = read_prediction_input(dict(est.meta_), args.data)
    rep = est.transform(X)
    out = pd.DataFrame(rep, columns=[f"r{j}" for j in range(rep.shape[1])])
    out.insert(0, "row", np.arange(1, len(X) + 1))
    if ids is not None:
        out.insert(1, "id", ids)
    _write_output(out, args.out)
    return 0


def _cmd_models(args) -> int:
    from deepqoe.persistence import PRETRAINED_DIR

    found = sorted(d for d in PRETRAINED_DIR.iterdir() if (d / "model.json").is_file()) if PRETRAINED_DIR.is_dir() else []
    if not found:
        print("no shipped models in this build")
    for d in found:
        print(d.name)
    return 0


def _cmd_export(args) -> int:
    from deepqoe.export import export_onnx, parity

    export_onnx(args.model_dir, args.onnx, opset=args.opset)
    msg = f"ONNX model written to {args.onnx}"
    try:
        d = parity(args.model_dir, args.onnx)
        msg += f" (max |ONNX - PyTorch| = {d:.2e} on example inputs)"
    except DeepQoEError:
        pass  # onnxruntime missing: the export itself is fine
    print(msg)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a DeepQoE model from a dataset config or a sessions config")
    p.add_argument("config", help="dataset/experiment config (YAML), or a sessions config (top-level 'sessions:'): "
                                  "the streaming session model on rated sessions (docs/sessions.md)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--full", action="store_true", help="train on all rows (no held-out test part; for a "
                                                       "sessions config: no cross-validated score)")
    p.add_argument("--epochs", type=int, help="override training.max_epochs (sessions config: training.epochs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="DeepQoE and baselines under an evaluation protocol")
    p.add_argument("config")
    p.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="repeated")
    p.add_argument("--n-splits", type=int, help="number of splits / folds (default from the config)")
    p.add_argument("--test-size", type=float, help="test fraction for repeated splits (default from the config)")
    p.add_argument("--baselines", help="comma-separated baselines (default from the config), e.g. majority,random_forest")
    p.add_argument("--epochs", type=int, help="override training.max_epochs")
    p.add_argument("--json", help="write every metric (mean, std, per split) to this JSON file")
    p.add_argument("--plots", help="folder for plots: confusion matrices or predicted-vs-MOS scatter per method")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="predict QoE with a trained or shipped model")
    p.add_argument("model_dir", help="model directory, or the name of a shipped model")
    p.add_argument("data", help="CSV or Parquet table (or session JSON / folder for session models)")
    p.add_argument("--out", help="output CSV or Parquet (default: standard output)")
    p.add_argument("--scale", help="for session models: report scores on this MOS scale (e.g. 1-5, 0-100)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("embed", help="write the learned representation of each row")
    p.add_argument("model_dir")
    p.add_argument("data")
    p.add_argument("--out", help="output CSV or Parquet (default: standard output)")
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser("models", help="list the models shipped with deepqoe")
    p.set_defaults(func=_cmd_models)

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
