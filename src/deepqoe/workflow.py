"""The workflows behind ``deepqoe train``, ``evaluate`` and ``finetune``, as library functions.

* :func:`train_config`: fit on a dataset config (a held-out test part unless ``full``), score, save the
  model directory and its ``metrics.json``.
* :func:`finetune`: the same, starting from a shipped or saved model's weights.
* :func:`evaluate_config`: DeepQoE and baselines on the same splits, every metric per split and summarised.
* :func:`read_prediction_input`: a table to predict on, read the way the model's dataset was read.

The command line (:mod:`deepqoe.cli`), the demo and ``scripts/build_pretrained.py`` call these; nothing
here imports the command line.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError

PROTOCOL_CHOICES = ("repeated", "kfold", "group", "group-kfold", "holdout", "videval")


# ---- train / finetune: fit, score, save, metrics.json -----------------------------------------------
def _holdout(cfg, n: int, full: bool) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows: all rows and none when ``full``, else the config's holdout split."""
    from deepqoe.evaluation.protocols import make_splits

    if full:
        return np.arange(n), np.arange(0)
    split = make_splits("holdout", n, test_size=cfg.evaluation.test_size, seed=cfg.evaluation.seed)[0]
    return split.train, split.test


def _score(est, cfg, data, idx: np.ndarray) -> dict:
    from deepqoe.evaluation.metrics import classification_metrics, regression_metrics

    pred = est.predict(data.X.iloc[idx])
    if cfg.dataset.task == "classification":
        return classification_metrics(data.y[idx], pred, list(cfg.dataset.classes))
    return regression_metrics(data.y[idx], pred)


def _fit_and_save(est, cfg, data, out_dir, *, full: bool, use_groups: bool, metrics: dict | None = None,
                  after_fit=None, extra_meta=None) -> dict:
    """Fit ``est`` on the training rows, score it, save the model directory and ``metrics.json``.

    ``use_groups``: the early-stopping validation split keeps the dataset's groups apart.
    ``after_fit(est)`` runs after the fit, before anything is written, and returns more metrics.
    ``extra_meta(est, train_idx)`` returns more entries for model.json."""
    from deepqoe.io import atomic_write_json
    from deepqoe.persistence import save_model

    train_idx, test_idx = _holdout(cfg, len(data), full)
    groups = data.groups[train_idx] if use_groups and data.groups is not None else None
    t0 = time.perf_counter()
    est.fit(data.X.iloc[train_idx], data.y[train_idx], groups=groups)
    seconds = time.perf_counter() - t0
    more = after_fit(est) if after_fit is not None else {}
    metrics = {"dataset": cfg.dataset.name, "task": cfg.dataset.task, **(metrics or {}), **more,
               "n_train": int(len(train_idx)), "n_test": int(len(test_idx)), "fit_seconds": seconds,
               "best_epoch": est.fit_result_.best_epoch, "epochs_run": est.fit_result_.epochs_run}
    metrics["train"] = _score(est, cfg, data, train_idx)
    if len(test_idx):
        metrics["test"] = _score(est, cfg, data, test_idx)
    dataset = cfg.dataset.model_dump()
    dataset["base_dir"] = cfg.dataset.base_dir
    save_model(est, out_dir, dataset_config=dataset,
               extra={"metrics": metrics, **(extra_meta(est, train_idx) if extra_meta else {})})
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics


def train_config(cfg, out_dir: str | Path, full: bool = False, progress: bool = True) -> dict:
    """Train on the dataset (a held-out test part unless ``full``), save the model dir and metrics.json."""
    from deepqoe.datasets import load_dataset
    from deepqoe.estimators import estimator_from_config

    data = load_dataset(cfg.dataset)
    est = estimator_from_config(cfg, data.inputs, progress=progress)
    return _fit_and_save(est, cfg, data, out_dir, full=full, use_groups=False)


def finetune(pretrained: str | Path, cfg, out_dir: str | Path, *, freeze: bool = False, full: bool = False,
             epochs: int | None = None, keep_architecture: bool = True, progress: bool = False) -> dict:
    """Train on ``cfg``'s dataset starting from ``pretrained``'s weights (every tensor whose name and shape
    match: the fully connected layers, the head, and input branches of the same kind and size).

    ``freeze``: keep the pretrained representation (input branches and fully connected layers) fixed and
    train only the head; it needs the fully connected layers to transfer (same total projected width).
    ``keep_architecture``: use the pretrained model's hidden layers and dropout (else the config's; then
    little but the input branches transfers). Returns the metrics written to ``out_dir/metrics.json``.
    """
    from deepqoe.datasets import load_dataset
    from deepqoe.estimators import estimator_from_config
    from deepqoe.explain import fit_baseline
    from deepqoe.persistence import load_model, read_model_meta, resolve_model_dir

    src = resolve_model_dir(pretrained)
    pmeta = read_model_meta(src)
    if pmeta.get("session_model"):
        raise DeepQoEError("fine-tuning a session model from a table config is not supported: the session "
                           "model reads session features, not table columns")
    task = cfg.dataset.task
    if pmeta.get("task") != task:
        raise DeepQoEError(f"the pretrained model is a {pmeta.get('task')} model but the config's task is {task}; "
                           "only the representation would transfer - use a model of the same task")
    source = load_model(src)
    data = load_dataset(cfg.dataset)
    over: dict = {"init_from": source, "freeze_representation": bool(freeze), "progress": progress}
    if keep_architecture:
        over.update(hidden_layers=tuple(source.hidden_layers), dropout=source.dropout)
    if epochs:
        over["max_epochs"] = int(epochs)
    est = estimator_from_config(cfg, data.inputs, **over)

    def after_fit(est) -> dict:
        copied = list(getattr(est, "warm_started_", []))
        if not copied:
            raise DeepQoEError("no weight of the pretrained model fits this dataset's network (different inputs "
                               "and layers); train from scratch with 'deepqoe train' instead")
        if freeze and not any(k.startswith(("fc.", "head.")) for k in copied):
            raise DeepQoEError("--freeze keeps the pretrained representation, but its layers do not fit this "
                               "network (the inputs' total projected width differs); drop --freeze")
        return {"warm_started": copied}

    def extra_meta(est, train_idx):
        return {"finetuned_from": {"model": str(pretrained), "name": pmeta.get("name") or src.name,
                                   "frozen": bool(freeze), "tensors_copied": len(est.warm_started_)},
                "explain_baseline": fit_baseline(est, data.X.iloc[train_idx])}

    return _fit_and_save(est, cfg, data, out_dir, full=full, use_groups=True,
                         metrics={"pretrained": str(pretrained), "frozen": bool(freeze)},
                         after_fit=after_fit, extra_meta=extra_meta)


# ---- evaluate ------------------------------------------------------------------------------------------
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


# ---- predict -------------------------------------------------------------------------------------------
def read_prediction_input(model_meta: dict, data_path: str | Path) -> tuple[pd.DataFrame, list | None]:
    """Read a table to predict on, with the reader options and vector joins of the model's dataset."""
    from deepqoe.config import DatasetConfig
    from deepqoe.datasets import prepare_inputs
    from deepqoe.io import read_table

    ds = dict(model_meta.get("dataset") or {})
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
