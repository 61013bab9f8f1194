"""The core commands: ``train``, ``evaluate``, ``predict``, ``embed`` (and ``models``).

Each is a function of parsed arguments that calls the library; ``register`` adds them to the CLI.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError

PROTOCOL_CHOICES = ("repeated", "kfold", "group", "group-kfold", "holdout", "videval")


# ---- library functions (used by the CLI, the experiments, the service and the demo) ----------------
def evaluate_config(cfg, protocol: str = "repeated", n_splits: int | None = None, test_size: float | None = None,
                    baselines: list[str] | None = None, progress: bool = True, max_epochs: int | None = None) -> dict:
    """DeepQoE and baselines on the same splits of a dataset: every metric as mean, std and per split."""
    from deepqoe.datasets import load_dataset
    from deepqoe.estimators import estimator_from_config
    from deepqoe.evaluation.metrics import classification_metrics, regression_metrics, scalar_metrics
    from deepqoe.evaluation.protocols import make_splits
    from deepqoe.evaluation.statistics import paired_test, summarise
    from deepqoe.shallow import baseline_pipeline

    ds_cfg, ev = cfg.dataset, cfg.evaluation
    data = load_dataset(ds_cfg)
    task = ds_cfg.task
    n_splits = n_splits or ev.n_splits
    test_size = test_size or ev.test_size
    splits = make_splits(protocol, len(data), groups=data.groups, n_splits=n_splits, test_size=test_size,
                         seed=ev.seed)
    names = ["deepqoe"] + [b for b in (baselines if baselines is not None else ev.baselines)
                           if not (task == "regression" and b == "majority") and not (task == "classification" and b == "mean")]
    labels = list(ds_cfg.classes) if task == "classification" else None
    per_split: dict[str, list[dict]] = {n: [] for n in names}
    fit_seconds: dict[str, list[float]] = {n: [] for n in names}
    cm_total = {n: None for n in names}
    pooled = {n: ([], []) for n in names}  # out-of-split (true, predicted), for plots
    iterator = splits
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(splits, desc=f"evaluate ({protocol})", unit="split")
    overrides = {"max_epochs": max_epochs} if max_epochs else {}
    for k, split in enumerate(iterator):
        Xtr, Xte = data.X.iloc[split.train], data.X.iloc[split.test]
        ytr, yte = data.y[split.train], data.y[split.test]
        # the validation split for early stopping mirrors the test protocol: group-disjoint only when
        # the test split is (otherwise it is a harder, noisier task than the one being measured)
        gtr = data.groups[split.train] if data.groups is not None and protocol.startswith("group") else None
        for name in names:
            t0 = time.perf_counter()
            if name == "deepqoe":
                est = estimator_from_config(cfg, data.inputs, random_state=cfg.training.seed + k, **overrides)
                est.fit(Xtr, ytr, groups=gtr)
            else:
                est = baseline_pipeline(name, task, data.inputs, seed=k)
                est.fit(Xtr, ytr)
            fit_seconds[name].append(time.perf_counter() - t0)
            pred = est.predict(Xte)
            pooled[name][0].extend(np.asarray(yte).tolist())
            pooled[name][1].extend(np.asarray(pred).tolist())
            if task == "classification":
                m = classification_metrics(yte, pred, labels)
                cm = np.asarray(m["confusion_matrix"])
                cm_total[name] = cm if cm_total[name] is None else cm_total[name] + cm
            else:
                m = regression_metrics(yte, pred)
            per_split[name].append({"split": split.name, "n_train": len(split.train), "n_test": len(split.test),
                                    **scalar_metrics(m)})
    key = "accuracy" if task == "classification" else "srocc"
    methods = {}
    for name in names:
        entry = {"metrics": summarise([{k: v for k, v in s.items() if k not in ("n_train", "n_test")}
                                       for s in per_split[name]]),
                 "per_split": per_split[name], "fit_seconds": summarise([{"s": s} for s in fit_seconds[name]])["s"]}
        if cm_total[name] is not None:
            entry["confusion_matrix_total"] = cm_total[name].tolist()
        if name != "deepqoe":
            entry["paired_test_vs_deepqoe"] = paired_test([s[key] for s in per_split["deepqoe"]],
                                                          [s[key] for s in per_split[name]])
        methods[name] = entry
    return {"dataset": ds_cfg.name, "task": task, "protocol": protocol, "n_splits": len(splits),
            "test_size": test_size if protocol in ("repeated", "holdout") else None,
            "labels": labels, "key_metric": key, "methods": methods, "_pooled": pooled}


def write_evaluation_plots(results: dict, out_dir: str | Path) -> list[Path]:
    """Confusion matrices (classification) or predicted-vs-MOS scatter plots (regression), per method,
    pooled over the test parts of all splits."""
    from deepqoe.report import confusion_plot, scatter_plot

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in results["methods"].items():
        path = out_dir / f"{results['dataset']}_{results['protocol']}_{name}.png"
        title = f"{name} on {results['dataset']} ({results['protocol']}, {results['n_splits']} splits)"
        if results["task"] == "classification":
            confusion_plot(path, entry["confusion_matrix_total"], results["labels"], title)
        else:
            y_true, y_pred = results["_pooled"][name]
            scatter_plot(path, y_true, y_pred, title)
        written.append(path)
    return written


def format_summary(results: dict) -> str:
    """A plain-text table of mean +- std per method and metric."""
    methods = results["methods"]
    metrics = [m for m in next(iter(methods.values()))["metrics"] if m not in ("confusion_matrix",)]
    rows = [["method"] + metrics]
    for name, e in methods.items():
        rows.append([name] + [f"{e['metrics'][m]['mean']:.4f} ± {e['metrics'][m]['std']:.4f}" for m in metrics])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def train_config(cfg, out_dir: str | Path, full: bool = False, progress: bool = True) -> dict:
    """Train on the dataset (a held-out test part unless ``full``), save the model dir and metrics.json."""
    from deepqoe.datasets import load_dataset
    from deepqoe.estimators import estimator_from_config
    from deepqoe.evaluation.metrics import classification_metrics, regression_metrics
    from deepqoe.evaluation.protocols import make_splits
    from deepqoe.io import atomic_write_json
    from deepqoe.persistence import save_model

    data = load_dataset(cfg.dataset)
    task = cfg.dataset.task
    if full:
        train_idx, test_idx = np.arange(len(data)), np.arange(0)
    else:
        split = make_splits("holdout", len(data), test_size=cfg.evaluation.test_size, seed=cfg.evaluation.seed)[0]
        train_idx, test_idx = split.train, split.test
    est = estimator_from_config(cfg, data.inputs, progress=progress)
    t0 = time.perf_counter()
    est.fit(data.X.iloc[train_idx], data.y[train_idx])
    seconds = time.perf_counter() - t0
    metrics = {"dataset": cfg.dataset.name, "task": task, "n_train": int(len(train_idx)),
               "n_test": int(len(test_idx)), "fit_seconds": seconds,
               "best_epoch": est.fit_result_.best_epoch, "epochs_run": est.fit_result_.epochs_run}

    def score(idx):
        pred = est.predict(data.X.iloc[idx])
        if task == "classification":
            return classification_metrics(data.y[idx], pred, list(cfg.dataset.classes))
        return regression_metrics(data.y[idx], pred)

    metrics["train"] = score(train_idx)
    if len(test_idx):
        metrics["test"] = score(test_idx)
    dataset = cfg.dataset.model_dump()
    dataset["base_dir"] = cfg.dataset.base_dir
    save_model(est, out_dir, dataset_config=dataset, extra={"metrics": metrics})
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics


def read_prediction_input(model_meta: dict, data_path: str | Path) -> tuple[pd.DataFrame, list | None]:
    """Read a table to predict on, with the reader options and vector joins of the model's dataset."""
    from deepqoe.config import DatasetConfig
    from deepqoe.datasets import prepare_inputs
    from deepqoe.io import read_table

    ds = model_meta.get("dataset")
    path = Path(data_path)
    if ds:
        base_dir = ds.pop("base_dir", None)
        cfg = DatasetConfig.model_validate(ds)
        cfg.base_dir = base_dir
        df = read_table(path, sep=cfg.reader.sep, decimal=cfg.reader.decimal, encoding=cfg.reader.encoding)
        if len(df.columns) == 1 and path.suffix.lower() not in (".parquet", ".pq"):
            df = read_table(path)  # written with a different separator (e.g. our own CSV output)
        X, _ = prepare_inputs(cfg, df, str(path))
        ids = df[cfg.id].tolist() if cfg.id and cfg.id in df.columns else None
        return X, ids
    return read_table(path), None


# ---- CLI handlers ---------------------------------------------------------------------------------
def _cmd_train(args) -> int:
    from deepqoe.config import load_config

    cfg = load_config(args.config)
    if args.epochs:
        cfg.training.max_epochs = args.epochs
    metrics = train_config(cfg, args.out, full=args.full, progress=not args.quiet)
    part = metrics.get("test") or metrics["train"]
    key = "accuracy" if metrics["task"] == "classification" else "rmse"
    where = "test" if "test" in metrics else "train"
    print(f"trained on {metrics['n_train']} rows in {metrics['fit_seconds']:.1f} s; {where} {key} = {part[key]:.4f}")
    print(f"model saved to {args.out} (metrics in {Path(args.out) / 'metrics.json'})")
    return 0


def _cmd_evaluate(args) -> int:
    from deepqoe.config import load_config
    from deepqoe.io import atomic_write_json

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

    data = Path(args.data)
    est = load_model(args.model_dir)
    if est.meta_.get("session_model") or data.suffix.lower() == ".json" or data.is_dir():
        return _predict_sessions(est, args)
    X, ids = read_prediction_input(dict(est.meta_), data)
    out = pd.DataFrame({"row": np.arange(1, len(X) + 1)})
    if ids is not None:
        out["id"] = ids
    pred = est.predict(X)
    out["prediction"] = pred
    if est._task == "classification":
        proba = est.predict_proba(X)
        for j, c in enumerate(est.classes_.tolist()):
            out[f"prob_{c}"] = proba[:, j]
    _write_output(out, args.out)
    return 0


def _predict_sessions(est, args) -> int:
    try:
        from deepqoe.sessions.predict import predict_sessions
    except ModuleNotFoundError:
        raise DeepQoEError("session input (JSON) needs the streaming-session support, which this build lacks") from None
    return predict_sessions(est, args)


def _cmd_embed(args) -> int:
    from deepqoe.persistence import load_model

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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a DeepQoE model from a dataset config")
    p.add_argument("config", help="dataset/experiment config (YAML)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--full", action="store_true", help="train on all rows (no held-out test part)")
    p.add_argument("--epochs", type=int, help="override training.max_epochs")
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
