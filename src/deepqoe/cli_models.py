"""Sub-commands on models: ``train``, ``evaluate``, ``finetune``, ``predict``, ``embed``, ``models``,
``export``. Each handler parses nothing and computes nothing itself: it calls :mod:`deepqoe.workflow`,
:mod:`deepqoe.persistence` or :mod:`deepqoe.export` and prints the result (data on standard output,
status on standard error; see :mod:`deepqoe.cli`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from deepqoe.cli import ExitCode, UsageError, print_json, show_progress, status
from deepqoe.devices import add_device_argument
from deepqoe.errors import DeepQoEError
from deepqoe.io import check_output_dir
from deepqoe.workflow import PROTOCOL_CHOICES


# ---- outputs, checked before the work -----------------------------------------------------------------
def check_output_path(path, option: str, folder: bool = False, model_dir: bool = False) -> Path:
    """``path`` can be written by this command: a file (``folder`` False) that is not a folder, or a folder
    that is not a file, whose nearest existing parent is a folder we may write in. ``model_dir``: a model
    directory the command writes (and replaces): new, empty, or an old model directory, never a file or a
    folder of someone's other files (:func:`deepqoe.io.check_output_dir`, which the save checks again).
    A DeepQoEError naming the option otherwise; called before any work, so that nothing is computed for an
    output that cannot be written."""
    from deepqoe.io import write_blocker

    p = Path(path)
    if model_dir:
        check_output_dir(p)
    elif p.exists() or p.is_symlink():
        if folder and not p.is_dir():
            raise DeepQoEError(f"{option}: exists and is not a folder; give a folder (a new name)", file=str(p))
        if not folder and p.is_dir():
            raise DeepQoEError(f"{option}: is a folder; give a file name", file=str(p))
    why = write_blocker(p)
    if why:
        raise DeepQoEError(f"{option}: cannot write here: {why}", file=str(p))
    return p


# ---- train / finetune ----------------------------------------------------------------------------------
def duration(seconds: float) -> str:
    """A duration for people: ``52.8 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 100:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _report_trained(args, metrics: dict, prefix: str) -> None:
    """The training summary on standard error (``--json``: metrics.json's content on standard output)."""
    if metrics.get("kind") == "sessions":
        ev = metrics["evaluation"]
        score = ""
        if ev:
            key = "all" if "all" in ev["scores"] else next(iter(ev["scores"]))
            value = ev["scores"][key]["srocc"]
            value = "undefined (the scores or the predictions are all the same)" if value is None else f"= {value:.3f}"
            score = f"; {ev['n_splits']}-fold content-disjoint SROCC {value}"
        total = metrics.get("total_seconds") or metrics["fit_seconds"]
        took = duration(total)
        if metrics.get("kfold_seconds") is not None:  # the k-fold's fits, then the final one
            took += f" (k-fold {duration(metrics['kfold_seconds'])}, final fit {duration(metrics['fit_seconds'])})"
        status(args, f"{prefix} a session model on {metrics['n_train']} sessions ({', '.join(metrics['datasets'])}) "
                     f"in {took}{score}")
    else:
        part = metrics.get("test") or metrics["train"]
        key = "accuracy" if metrics["task"] == "classification" else "rmse"
        where = "test" if "test" in metrics else "train"
        if where == "test" and metrics.get("holdout") == "group-disjoint":
            where = f"test (groups by '{metrics['group']}', none trained on)"
        elif where == "test" and metrics.get("holdout"):
            where = "test (random rows)"
        status(args, f"{prefix} on {metrics['n_train']} rows in {metrics['fit_seconds']:.1f} s; "
                     f"{where} {key} = {part[key]:.4f}")
    status(args, f"model saved to {args.out} (metrics in {Path(args.out) / 'metrics.json'})")
    if args.json:
        print_json(metrics)


def _cmd_train(args) -> int:
    from deepqoe.config import SessionsExperimentConfig, load_train_config
    from deepqoe.workflow import train_config, train_sessions_config

    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    check_output_path(args.out, "--out", model_dir=True)  # before any training: never a file or someone's folder
    cfg = load_train_config(args.config)
    if isinstance(cfg, SessionsExperimentConfig):
        if args.device not in (None, "cpu", "auto"):
            status(args, "deepqoe train: the session model trains on the CPU (it is tiny); --device is ignored")
        if args.epochs is not None:
            cfg.training.epochs = args.epochs
        metrics = train_sessions_config(cfg, args.out, full=args.full, progress=show_progress(args))
    else:
        if args.epochs is not None:
            cfg.training.max_epochs = args.epochs
        if args.device is not None:
            cfg.training.device = args.device
        metrics = train_config(cfg, args.out, full=args.full, progress=show_progress(args))
    _report_trained(args, metrics, "trained")
    return ExitCode.OK


def _cmd_finetune(args) -> int:
    from deepqoe.config import load_config
    from deepqoe.workflow import finetune

    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    check_output_path(args.out, "--out", model_dir=True)  # before any training
    cfg = load_config(args.config)
    m = finetune(args.pretrained, cfg, args.out, freeze=args.freeze, full=args.full, epochs=args.epochs,
                 keep_architecture=not args.config_architecture, progress=show_progress(args))
    how = "frozen representation" if m["frozen"] else "all layers"
    _report_trained(args, m, f"fine-tuned from {args.pretrained} ({how}; {len(m['warm_started'])} tensors copied)")
    for line in warm_start_lines(m.get("warm_start") or {}):
        status(args, line)
    return ExitCode.OK


def warm_start_lines(report: dict) -> list[str]:
    """What a fine-tuning copied from the pretrained model, and what not (and why), as status lines."""
    lines = []
    for e in report.get("inputs", []):
        if e.get("tensors"):
            known = f", {e['categories_known']} categories known" if "categories_known" in e else ""
            src = f" (from '{e['from']}')" if e.get("from") != e["input"] else ""
            more = f"; {e['reason']}" if e.get("reason") else ""
            lines.append(f"  input '{e['input']}'{src}: copied{known}{more}")
        else:
            lines.append(f"  input '{e['input']}': not copied ({e.get('reason')})")
    layers = report.get("layers") or []
    lines.append(f"  fully connected layers: {', '.join(layers) if layers else 'none copied'}; head: "
                 f"{'copied' if report.get('head') else 'not copied'}")
    if report.get("reason"):
        lines.append(f"  not transferred: {report['reason']}")
    return ["weights copied from the pretrained model:"] + lines if lines else []


# ---- evaluate ------------------------------------------------------------------------------------------
def _cmd_evaluate(args) -> int:
    from deepqoe.config import load_config
    from deepqoe.io import atomic_write_json
    from deepqoe.workflow import evaluate_config, format_summary, write_evaluation_plots

    baselines = _evaluate_options(args, None)
    out = args.out or (args.json if args.json not in (None, "-") else None)
    if out:
        check_output_path(out, "--out" if args.out else "--json")
    if args.plots:
        check_output_path(args.plots, "--plots", folder=True)
    cfg = load_config(args.config)
    _evaluate_options(args, cfg.dataset.task)
    if args.device is not None:
        cfg.training.device = args.device
    results = evaluate_config(cfg, protocol=args.protocol, n_splits=args.n_splits, test_size=args.test_size,
                              baselines=baselines, progress=show_progress(args), max_epochs=args.epochs)
    if args.plots:
        for p in write_evaluation_plots(results, args.plots):
            status(args, f"plot written to {p}")
    results.pop("_pooled")
    if out:
        atomic_write_json(out, results)
        status(args, f"results written to {out}")
    if args.json == "-":
        print_json(results)
    else:
        print(format_summary(results))
    return ExitCode.OK


_EVALUATE_OPTIONS = {"n_splits": "--n-splits", "test_size": "--test-size", "max_epochs": "--epochs",
                     "baselines": "--baselines", "protocol": "--protocol"}


def _evaluate_options(args, task: str | None) -> list[str] | None:
    """``evaluate``'s option values checked (a UsageError naming the option, before any work; with ``task``
    also the baselines against the config's task); the ``--baselines`` list (None: the config's)."""
    from deepqoe.workflow import check_evaluation_options

    baselines = None
    if args.baselines is not None:
        baselines = [b.strip() for b in args.baselines.split(",")]
        if baselines == ["none"]:
            baselines = []
        elif any(not b for b in baselines):
            raise UsageError(f"--baselines: an empty name in {args.baselines!r}; give comma-separated names, "
                             "e.g. majority,random_forest, or 'none'")
    try:
        check_evaluation_options(task, protocol=args.protocol, n_splits=args.n_splits, test_size=args.test_size,
                                 baselines=baselines, max_epochs=args.epochs)
    except DeepQoEError as e:
        raise UsageError(f"{_EVALUATE_OPTIONS.get(e.field, e.field)}: {e.message}") from None
    if task is None:
        if args.test_size is not None and args.protocol not in ("repeated", "holdout"):
            status(args, f"deepqoe: note: --test-size is not used by the '{args.protocol}' protocol")
        if args.n_splits is not None and args.protocol in ("holdout", "group"):
            status(args, f"deepqoe: note: --n-splits is not used by the '{args.protocol}' protocol "
                         f"({'one split' if args.protocol == 'holdout' else 'one split per group'})")
    return baselines


# ---- predict / embed -----------------------------------------------------------------------------------
def _write_output(df: pd.DataFrame, args) -> None:
    """A result table: to ``--out`` (CSV / Parquet; ``.json``: JSON records), as JSON records with ``--json``,
    else CSV, on stdout."""
    from deepqoe.io import atomic_write_json, write_table

    if args.out:
        if Path(args.out).suffix.lower() not in (".csv", ".parquet", ".pq", ".json"):
            raise UsageError(f"--out must end in .csv, .parquet or .json, not {args.out!r}")
        if Path(args.out).suffix.lower() == ".json":
            atomic_write_json(Path(args.out), df.to_dict(orient="records"))
        else:
            write_table(df, args.out)
        status(args, f"{len(df)} rows written to {args.out}")
    elif args.json:
        print_json(df.to_dict(orient="records"))
    else:
        df.to_csv(sys.stdout, index=False)


def _table_input(predictor, data: Path) -> None:
    """Say clearly when a table model is given something other than a table."""
    if data.is_dir():
        raise DeepQoEError("is a folder; this model predicts from a table: give a CSV or Parquet file (folders "
                           "of sessions are for session models such as 'streaming')", file=str(data))
    if data.suffix.lower() == ".json":
        predictor.require_sessions()  # "this model was not trained on streaming sessions; give it a table"


def interval_level(args, predictor) -> float | None:
    """``--interval``: absent -> 0.9 when the model has prediction intervals (else none); ``none`` -> none;
    a level in (0, 1), checked against the model (no intervals.json, or too few calibration scores: a
    DeepQoEError). A value that is not a level is a usage error. With ``--calibration DATASET``: the
    intervals of that dataset (none by default where the model stores none for it)."""
    from deepqoe.conformal import parse_level

    calibration = predictor.check_calibration(getattr(args, "calibration", None))
    raw = getattr(args, "interval", None)
    if raw is None:
        reason = predictor.no_interval_reason(calibration)
        if reason:  # a note like every other (deepqoe: note: ..., hidden by -q)
            import warnings

            from deepqoe.errors import DeepQoENote

            warnings.warn(f"no interval: {reason}", DeepQoENote, stacklevel=2)
        return predictor.interval_default(calibration)
    try:
        level = parse_level(raw)
    except DeepQoEError as e:
        raise UsageError(e.message) from None
    if level is not None and predictor.task == "classification" and not predictor.is_session:
        raise UsageError("--interval is for regression and session models (prediction intervals are for scores); "
                         "this model is a classifier: drop --interval")
    return predictor.check_interval(level, calibration)


def check_model_options(args, predictor) -> None:
    """An option that does not apply to this kind of model is a usage error (exit 2, one line), said before any
    data is read: --scale, --plots and --calibration are for session models, --rating-head and --interval
    (a level) not for a classifier. (An option this kind of model takes, but this model was trained without,
    e.g. --interval of a regression model trained without intervals.json, is the model's: exit 1, saying why.)"""
    if predictor.is_session:
        return
    if args.scale:
        raise UsageError("--scale is for session models; this model predicts from table rows")
    if getattr(args, "plots", None):
        raise UsageError("--plots is for session models (per-second QoE charts); this model predicts from table rows")
    if getattr(args, "metrics", None) is not None or getattr(args, "mos_scale", None) is not None:
        option = "--metrics" if getattr(args, "metrics", None) is not None else "--mos-scale"
        raise UsageError(f"{option} is for session models (scored against the sessions' own mos); this model "
                         "predicts from table rows")
    if args.calibration:
        raise UsageError("--calibration is for session models trained on several datasets; this model predicts "
                         "from table rows")
    if args.rating_head is not None and predictor.task == "classification":
        raise UsageError("--rating-head is for session models and regression models trained with "
                         "dataset.individual (a rating-distribution head); this model is a classifier: drop "
                         "--rating-head")


def _features_option(p, extra: str = "") -> None:
    """``--features [INPUT=]FILE``, the same for predict and embed (:func:`feature_files` reads it)."""
    p.add_argument("--features", action="append", metavar="[INPUT=]FILE",
                   help="table models with a vector input read from a feature file (deepqoe extract): read the "
                        "rows' features from FILE (CSV / Parquet, the same id column and feature columns) instead "
                        "of the file the model was trained with, e.g. the features of new videos extracted to a "
                        "file of their own; INPUT=FILE for a model with several such inputs (INPUT: the input's "
                        "name, else its column, as in model.json), once per input" + extra)


def feature_files(args, predictor) -> dict[str, str] | None:
    """``--features [INPUT=]FILE`` (repeatable) checked against the model before any data is read: ``{input:
    absolute path}`` (:func:`deepqoe.predictor.resolve_feature_files`), None when not given. FILE alone is
    the model's one vector input read from a feature file; INPUT is the input's name (else its column) in
    model.json. A session model, a model with no such input, an unknown INPUT (the message names the model's
    inputs), a file without its input where the model has several, an input given twice: usage errors (exit
    2); a file that is not there: exit 1, naming it."""
    from deepqoe.predictor import feature_file_inputs, resolve_feature_files

    specs = getattr(args, "features", None)
    if not specs:
        return None
    if predictor.is_session:
        raise UsageError("--features is for table models with a vector input read from a feature file (deepqoe "
                         "extract); this is a session model")
    known = feature_file_inputs(predictor.meta)
    names = set(known) | {str(i.get("column")) for i in known.values()}
    parsed: dict[str | None, str] = {}
    for spec in specs:
        key, file = None, spec
        if "=" in spec:
            head, tail = spec.split("=", 1)
            # INPUT=FILE, unless the whole is the name of a file (or a path: INPUT has no '/') and its head no input's
            if head in names or ("/" not in head and os.sep not in head and not Path(spec).expanduser().exists()):
                key, file = head, tail
        if not file:
            raise UsageError(f"--features {spec}: no file after '='; give INPUT=FILE")
        if key in parsed:
            what = "a FILE without INPUT" if key is None else f"input '{key}'"
            raise UsageError(f"--features: {what} is given twice; give one file per input")
        parsed[key] = file
    try:
        return resolve_feature_files(predictor.meta, parsed)
    except DeepQoEError as e:
        if e.field == "features":
            raise UsageError(f"--features: {e.message}") from None
        raise DeepQoEError(f"--features: {e.message}", file=e.file) from None


def _cmd_predict(args) -> int:
    from deepqoe.persistence import load_model
    from deepqoe.predictor import Predictor, place_model, prediction_table, with_feature_files

    predictor = Predictor(place_model(load_model(args.model_dir), args.device))
    check_model_options(args, predictor)  # an option for another kind of model: exit 2, before any data is read
    features = feature_files(args, predictor)  # --features: checked before any data is read
    predictor.select_rating_head(args.rating_head)
    if predictor.is_session:
        predictor.check_calibration(args.calibration)  # before any data is read
    data = Path(args.data)
    if args.scheduler and getattr(args, "plots", None):
        raise UsageError("--plots is not available with --scheduler (a chart per session of a table larger than "
                         "memory); plot a sample with plain predict")
    if args.scheduler and (getattr(args, "metrics", None) is not None or getattr(args, "mos_scale", None) is not None):
        raise UsageError("--metrics and --mos-scale are not available with --scheduler; score a sample against its "
                         "mos with plain predict")
    if args.scheduler and args.explain:
        raise UsageError("--explain is not available with --scheduler; explain a sample with plain predict")
    if args.scheduler and args.rating_head:
        raise UsageError("--rating-head is not available with --scheduler (the workers serve the default head)")
    if args.scheduler:  # a Dask cluster, partitioned Parquet out (deepqoe.batch_scoring)
        from deepqoe.batch_scoring import predict_batch

        return predict_batch(predictor, args, features=features)
    if args.workers is not None:
        raise UsageError("--workers is for --scheduler local")
    if predictor.is_session:
        from deepqoe.sessions.predict import predict_sessions

        return predict_sessions(predictor, args)
    _table_input(predictor, data)
    from deepqoe.workflow import read_prediction_input

    level = interval_level(args, predictor)
    meta = predictor.meta if features is None else with_feature_files(predictor.meta, features)
    X, ids = read_prediction_input(meta, data)  # (meta: the model's, reading the --features files if given)
    rows = predictor.predict_rows(X, interval=level, explain=args.explain)  # the one path (as the service)
    out = prediction_table(predictor, rows, ids)
    if rows and "viewer" in rows[0]:  # a viewer-aware model
        n = sum(r["viewer"] == "unknown" for r in rows)
        if n:
            status(args, f"{n} of {len(rows)} row(s) have no viewer the model knows (no viewer column, a missing "
                         "or an unseen id): population prediction, viewer 'unknown'")
    _write_output(out, args)
    return ExitCode.OK


def _embed_sessions(predictor, args) -> tuple[pd.DataFrame, int]:
    """The representation of sessions, for a session model that has one; (table, exit code)."""
    from deepqoe.cli import finish_batch
    from deepqoe.sessions.frame import frame_builder
    from deepqoe.sessions.readers import load_sessions

    model = predictor.model
    if not hasattr(model, "transform") and not hasattr(model, "transform_sessions"):
        raise DeepQoEError(f"this session model ({type(model).__name__}) has no learned representation to "
                           "embed", file=str(predictor.model_dir))
    sessions, failures = load_sessions(args.data, for_prediction=True)  # the mos plays no part
    code = finish_batch(failures, len(sessions), verb="read", file=args.data)
    if hasattr(model, "transform_sessions"):  # the structured session model
        rep = np.asarray(model.transform_sessions(sessions))
    else:  # an older session model: a DeepQoE network on the session frame
        X = frame_builder(predictor.meta, file=str(predictor.model_dir / "model.json"))(sessions)
        rep = np.asarray(model.transform(X.reset_index(drop=True)))
    out = pd.DataFrame(rep, columns=[f"r{j}" for j in range(rep.shape[1])])
    out.insert(0, "id", [s.id for s in sessions])
    return out, code


def _cmd_embed(args) -> int:
    from deepqoe.persistence import load_model
    from deepqoe.predictor import Predictor, place_model, with_feature_files
    from deepqoe.workflow import read_prediction_input

    predictor = Predictor(place_model(load_model(args.model_dir), args.device))
    features = feature_files(args, predictor)  # --features: checked before any data is read
    if predictor.is_session:
        out, code = _embed_sessions(predictor, args)
        _write_output(out, args)
        return code
    data = Path(args.data)
    _table_input(predictor, data)
    meta = predictor.meta if features is None else with_feature_files(predictor.meta, features)
    X, ids = read_prediction_input(meta, data)  # the rows as predict reads them
    rep = predictor.model.transform(X)
    out = pd.DataFrame(rep, columns=[f"r{j}" for j in range(rep.shape[1])])
    out.insert(0, "row", np.arange(1, len(X) + 1))
    if ids is not None:
        out.insert(1, "id", ids)
    _write_output(out, args)
    return ExitCode.OK


# ---- models --------------------------------------------------------------------------------------------
def _headline(meta: dict) -> dict | None:
    """The model's headline metric: from its recorded evaluation, else from its training metrics."""
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    ev = meta.get("evaluation") if isinstance(meta.get("evaluation"), dict) else metrics.get("evaluation")
    if isinstance(ev, dict) and isinstance(ev.get("scores"), dict):
        key = ev.get("key_metric") or "srocc"
        scores = ev["scores"].get("deepqoe", ev["scores"])  # shipped: per method; trained: per dataset
        protocol = ev.get("protocol") if isinstance(ev.get("protocol"), str) else None
        if ev.get("description"):
            protocol = ev["description"]
        if isinstance(scores.get(key), dict) and "mean" in scores[key]:
            return {"metric": key, "mean": scores[key]["mean"], "std": scores[key].get("std"), "protocol": protocol}
        per = {d: s[key] for d, s in scores.items() if isinstance(s, dict) and key in s}
        if per:
            return {"metric": key, "per_dataset": per, "protocol": protocol}
    task = meta.get("task") or metrics.get("task")
    key = "accuracy" if task == "classification" else "rmse"
    for where in ("test", "train"):
        part = metrics.get(where)
        if isinstance(part, dict) and key in part:
            return {"metric": key, "value": part[key], "protocol": f"on the {where} rows"}
    return None


def model_summary(name: str, meta: dict) -> dict:
    """What ``deepqoe models`` shows of a model: task, inputs, scale, training data, headline metric."""
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    session = meta.get("session_model")
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else {}
    classes = meta.get("classes") if isinstance(meta.get("classes"), list) else None
    if session is not None:
        inputs: str | list = "sessions"
        scale = (session.get("scale") if isinstance(session, dict) else None) or "1-5"
    else:
        inputs = [str(i.get("name") or i.get("column")) for i in meta.get("inputs") or [] if isinstance(i, dict)]
        scale = None
        if classes and all(isinstance(c, (int, float)) for c in classes):
            scale = f"{min(classes):g}-{max(classes):g}"
    if isinstance(metrics.get("datasets"), dict):
        data = {str(k): v for k, v in metrics["datasets"].items()}
    elif dataset.get("name"):
        data = {str(dataset["name"]): metrics.get("n_train")}
    else:
        data = {}
    return {"name": name, "task": meta.get("task"), "inputs": inputs, "scale": scale, "classes": classes,
            "trained_on": data, "headline": _headline(meta)}


def _format_summary(s: dict) -> str:
    kind = s["task"] or "?"
    if s["scale"]:
        kind += f", scale {s['scale']}"
    if s["classes"]:
        kind += f" (classes {', '.join(map(str, s['classes']))})"
    inputs = s["inputs"] if isinstance(s["inputs"], str) else ", ".join(s["inputs"]) or "-"
    data = ", ".join(f"{k} (n={v})" if v is not None else k for k, v in s["trained_on"].items()) or "-"
    h = s["headline"]
    if h is None:
        metric = "-"
    elif "per_dataset" in h:
        metric = h["metric"] + " " + ", ".join(f"{d} {v:.3f}" for d, v in h["per_dataset"].items()
                                               if isinstance(v, (int, float)))
    elif "mean" in h:
        metric = f"{h['metric']} {h['mean']:.3f}" + (f" ± {h['std']:.3f}" if h.get("std") is not None else "")
    else:
        metric = f"{h['metric']} {h['value']:.3f}"
    if h and h.get("protocol"):
        metric += f" ({h['protocol'].split(':')[0].split(',')[0]})"
    return "\n".join([f"{s['name']}: {kind}", f"  inputs:     {inputs}", f"  trained on: {data}",
                      f"  metric:     {metric}"])


def _cmd_models(args) -> int:
    from deepqoe.persistence import PRETRAINED_DIR, read_model_meta, resolve_model_dir

    if args.model:
        found = [resolve_model_dir(m) for m in args.model]
    elif PRETRAINED_DIR.is_dir():
        found = sorted(d for d in PRETRAINED_DIR.iterdir() if (d / "model.json").is_file())
    else:
        found = []
    summaries = [model_summary(d.name, read_model_meta(d)) for d in found]
    if args.json:
        print_json(summaries)
        return ExitCode.OK
    if not summaries:
        status(args, "no shipped models in this build")
    for s in summaries:
        print(_format_summary(s))
    return ExitCode.OK


# ---- export --------------------------------------------------------------------------------------------
def _cmd_export(args) -> int:
    from deepqoe.export import MIN_OPSET, export_onnx, max_opset, parity

    if not MIN_OPSET <= args.opset <= max_opset():
        raise UsageError(f"--opset must be {MIN_OPSET} to {max_opset()} (deepqoe's networks need {MIN_OPSET}; "
                         f"this torch writes up to {max_opset()}), got {args.opset}")
    export_onnx(args.model_dir, args.onnx, opset=args.opset, calibration=args.calibration)
    msg = f"ONNX model written to {args.onnx}"
    try:
        d = parity(args.model_dir, args.onnx)
        msg += f" (max |ONNX - PyTorch| = {d:.2e} on example inputs)"
    except DeepQoEError:
        pass  # onnxruntime missing: the export itself is fine
    status(args, msg)
    return ExitCode.OK


# ---- parsers -------------------------------------------------------------------------------------------
def _output_options(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--out", help=f"write {what} to this CSV or Parquet file (default: CSV on standard output)")
    g.add_argument("--json", action="store_true", help=f"{what} as JSON records on standard output")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a DeepQoE model from a dataset config or a sessions config")
    p.add_argument("config", help="dataset/experiment config (YAML), or a sessions config (top-level 'sessions:'): "
                                  "the streaming session model on rated sessions (docs/sessions.md)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--full", action="store_true", help="train on all rows (no held-out test part; for a "
                                                       "sessions config: no cross-validated score)")
    p.add_argument("--epochs", type=int, help="override training.max_epochs (sessions config: training.epochs; "
                                              "default: the config's)")
    p.add_argument("--json", action="store_true", help="the training metrics (metrics.json) on standard output")
    add_device_argument(p, "training", "the config's training.device, else cpu")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="DeepQoE and baselines under an evaluation protocol",
                       description="Train and score DeepQoE and the config's baselines on the same splits; "
                                   "prints a table of mean ± std per method and metric.")
    p.add_argument("config", help="dataset/experiment config (YAML)")
    p.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="repeated",
                   help="how to split the rows into training and test parts (group protocols keep the "
                        "config's 'group' column apart)")
    p.add_argument("--n-splits", type=int, help="number of splits / folds (default from the config)")
    p.add_argument("--test-size", type=float, help="test fraction for repeated splits (default from the config)")
    p.add_argument("--baselines", help="comma-separated baselines (default from the config), e.g. "
                                       "majority,random_forest (classification) or mean,lightgbm (regression); "
                                       "'none' for DeepQoE alone")
    p.add_argument("--epochs", type=int, help="override training.max_epochs (default: the config's)")
    p.add_argument("--out", metavar="RESULTS.json", help="also write every metric (mean, std, per split) to this "
                                                         "JSON file")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="every metric as JSON: on standard output instead of the table, or, with FILE, written "
                        "to FILE (like --out; kept for scripts that call --json results.json)")
    p.add_argument("--plots", help="folder for plots: confusion matrices or predicted-vs-MOS scatter per method")
    add_device_argument(p, "DeepQoE's training and prediction", "the config's training.device, else cpu")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="predict QoE with a trained or shipped model")
    p.add_argument("model_dir", help="model directory, or the name of a shipped model")
    p.add_argument("data", help="CSV or Parquet table (or session JSON / CSV / folder for session models)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--out", help="output file: CSV or Parquet (session models: also .json with per-second "
                                 "curves; default: a table on standard output)")
    g.add_argument("--json", action="store_true", help="the predictions as JSON on standard output")
    p.add_argument("--scale", help="for session models: report scores on this MOS scale (e.g. 0-100, z; "
                                   "default: 1-5)")
    p.add_argument("--plots", metavar="DIR",
                   help="for session models: a folder of per-second QoE charts, one PNG per session (its curve, "
                        "stalls shaded; the first 200 sessions)")
    p.add_argument("--metrics", metavar="FILE.json",
                   help="for session models: score the predictions against the sessions' own mos (each converted "
                        "from its mos_scale to the output scale): PLCC (also after a logistic fit), SROCC, KROCC "
                        "and RMSE, with every session's mos and score, written to FILE.json; 3 or more sessions "
                        "with a mos are needed. The one-line summary is on standard error whenever 3 or more "
                        "predicted sessions carry a mos, and --plots adds predicted-vs-mos.png")
    p.add_argument("--mos-scale", metavar="SCALE",
                   help="for session models: the scale of every session's mos, in place of its own mos_scale (as "
                        "sessions validate --mos-scale; '1-5', '0-100', any 'lo-hi', 'z'), e.g. a Waterloo-layout "
                        "folder rated 1-5; only for comparing the scores with the mos")
    p.add_argument("--rating-head", metavar="DATASET",
                   help="the rating-distribution head to serve (sos, p_gob, p_pow), by the dataset it was fitted "
                        "on; default: the model's own default (streaming: waterloo-sqoe-iv; also p1203-open, ACR)")
    p.add_argument("--interval", metavar="LEVEL", help="prediction interval level, 0.5 <= LEVEL < 1, or 'none' "
                                                       "(default: 0.9 when the model has intervals.json calibrated "
                                                       "on at least 9 scores; columns interval_low, interval_high, "
                                                       "interval_level)")
    p.add_argument("--calibration", metavar="DATASET",
                   help="session models trained on several datasets: score as that dataset's viewers used the "
                        "scale, with that dataset's own prediction interval and rating head (streaming: "
                        "p1203-open, waterloo-sqoe-iv, live-nflx; also the per-second sets live-nflx-continuous "
                        "and lfovia-qoe, a continuous slider's use of the scale, with no interval of their own; "
                        "default: the average of the three, with the pooled interval)")
    _features_option(p, "; also with --scheduler")
    p.add_argument("--explain", action="store_true",
                   help="explain every prediction: each input's contribution (table models: Shapley values of the "
                        "expected rating or score) or each part's (session models: stalls, quality, startup, "
                        "switches); columns explanation_method, explanation_output, contrib_<name>, or the JSON's "
                        "'explanation'")
    add_device_argument(p, "the model (a DeepQoE network; a session model always runs on the CPU)")
    p.add_argument("--scheduler", metavar="local|tcp://HOST:PORT",
                   help="score on Dask (a local cluster or a scheduler's address) for inputs larger than memory: "
                        "DATA is a Parquet / CSV file or a folder of partitions, --out a new folder of Parquet "
                        "partitions (needs pip install 'deepqoe[video]')")
    p.add_argument("--workers", type=int, help="with --scheduler local: number of worker processes (default: "
                                               "one per core)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("embed", help="write the learned representation of each row (or session)")
    p.add_argument("model_dir", help="model directory, or the name of a shipped model (a DeepQoE network)")
    p.add_argument("data", help="CSV or Parquet table (or session JSON / CSV / folder for a session model "
                                "built on a DeepQoE network)")
    _output_options(p, "the representation")
    _features_option(p)
    add_device_argument(p, "the network")
    p.set_defaults(func=_cmd_embed)

    p = sub.add_parser("models", help="list the shipped models (task, inputs, scale, training data, metric)")
    p.add_argument("model", nargs="*", metavar="MODEL",
                   help="model directories or shipped names to describe (default: every shipped model)")
    p.add_argument("--json", action="store_true", help="the list as JSON on standard output")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("export", help="export a model's network to ONNX")
    p.add_argument("model_dir", help="model directory or shipped model name")
    p.add_argument("--onnx", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version to write")
    p.add_argument("--calibration", metavar="DATASET",
                   help="session models: score with this training dataset's use of the scale (as predict "
                        "--calibration; default: the average calibration)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("finetune", help="transfer learning: start from a shipped/saved model, train on CONFIG")
    p.add_argument("pretrained", help="shipped model name or model directory to start from")
    p.add_argument("config", help="dataset/experiment config (YAML) of the new dataset")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--freeze", action="store_true", help="keep the pretrained representation fixed; train the head")
    p.add_argument("--full", action="store_true", help="train on all rows (no held-out test part)")
    p.add_argument("--epochs", type=int, help="override training.max_epochs (default: the config's)")
    p.add_argument("--config-architecture", action="store_true",
                   help="use the config's hidden layers instead of the pretrained model's")
    p.add_argument("--json", action="store_true", help="the training metrics (metrics.json) on standard output")
    p.set_defaults(func=_cmd_finetune)
