"""The workflows behind ``deepqoe train``, ``evaluate`` and ``finetune``, as library functions.

* :func:`train_config`: fit on a dataset config (a held-out test part unless ``full``), score, save the
  model directory and its ``metrics.json``.
* :func:`train_sessions_config`: the streaming session model on a sessions config (content-disjoint
  k-fold score, then fit on everything, save the model directory and its ``metrics.json``).
* :func:`finetune`: the same, starting from a shipped or saved model's weights.
* :func:`evaluate_config`: DeepQoE and baselines on the same splits, every metric per split and summarised.
* :func:`read_prediction_input`: a table to predict on, read the way the model's dataset was read.

The command line (:mod:`deepqoe.cli`), the demo and ``scripts/build_pretrained.py`` call these; nothing
here imports the command line.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from deepqoe.errors import DeepQoEError

PROTOCOL_CHOICES = ("repeated", "kfold", "group", "group-kfold", "holdout", "videval")


# ---- train / finetune: fit, score, save, metrics.json -----------------------------------------------
@contextlib.contextmanager
def _config_errors(cfg):
    """A training setting's error (training that diverged: ``training.learning_rate``) names the config file."""
    try:
        yield
    except DeepQoEError as e:
        if e.file is None and (e.field or "").startswith("training."):
            raise DeepQoEError(e.message, file=cfg.path, field=e.field) from None
        raise


@contextlib.contextmanager
def _each_note_once():
    """Notes (:class:`~deepqoe.errors.DeepQoENote`) raised inside, each distinct one shown once, when the block
    ends (a note of every split's fit, e.g. early stopping's validation rows, is one line, not one per
    split); other warnings as they were."""
    import warnings

    from deepqoe.errors import DeepQoENote

    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    finally:
        seen = set()
        for w in caught:
            if issubclass(w.category, DeepQoENote):
                if str(w.message) in seen:
                    continue
                seen.add(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


#: the distinct notes given so far by the training running in this context (:func:`_keeps_notes`), for
#: metrics.json's ``notes``; None outside one
_TRAINING_NOTES: contextvars.ContextVar[list | None] = contextvars.ContextVar("deepqoe_training_notes",
                                                                              default=None)


def _keeps_notes(train):
    """``train`` (:func:`train_config`, :func:`finetune`, :func:`train_sessions_config`: each saves a model
    directory with its ``metrics.json``) keeping every distinct note (:class:`~deepqoe.errors.DeepQoENote`)
    given while it runs, reading the data included, in order, each once, as the user saw it (the text after
    ``deepqoe: note:``); :func:`_with_notes` puts them in ``metrics.json`` (``notes``), in the same atomic
    write. The notes are shown as before: each is handed on to the ``warnings.showwarning`` in place (the
    CLI's, which prints it once); a note that the warnings filters silence is not given, nor kept."""
    @functools.wraps(train)
    def run(*args, **kwargs):
        import warnings

        from deepqoe.errors import DeepQoENote

        notes: list[str] = []
        with warnings.catch_warnings():  # puts showwarning back; a fresh registry: each note of this run is given
            shown = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if issubclass(category, DeepQoENote) and str(message) not in notes:
                    notes.append(str(message))
                shown(message, category, filename, lineno, file, line)

            warnings.showwarning = show
            token = _TRAINING_NOTES.set(notes)
            try:
                return train(*args, **kwargs)
            finally:
                _TRAINING_NOTES.reset(token)
    return run


def _with_notes(metrics: dict, cfg) -> None:
    """Put in ``metrics``, just before they are saved as ``metrics.json``, its ``notes``: the notes ``cfg`` gave
    when it was loaded (:func:`deepqoe.config.config_notes`: before training ran), then the distinct notes
    given so far by the training that runs (:func:`_keeps_notes`; none outside one)."""
    from deepqoe.config import config_notes

    metrics["notes"] = list(dict.fromkeys(config_notes(cfg) + list(_TRAINING_NOTES.get() or [])))


def check_classes(cfg, data, idx: np.ndarray | None = None) -> None:
    """A classification config's target holds at least 2 classes (in the rows ``idx``, default all): with one
    there is nothing to learn, and every score would be perfect. A DeepQoEError naming the config otherwise.
    For all rows (``idx`` None), a class of a single row gets a :class:`~deepqoe.errors.DeepQoENote` naming
    it: one rating cannot be both learned from and tested on, and teaches next to nothing."""
    if cfg.dataset.task != "classification":
        return
    y = data.y if idx is None else data.y[idx]
    values = np.asarray(y).tolist()
    found = list(dict.fromkeys(values))
    if len(found) < 2:
        where = "the training rows hold" if idx is not None and len(idx) < len(data) else "the data holds"
        what = f"one class only ({found[0]!r})" if found else "no class"
        raise DeepQoEError(f"classification needs at least 2 classes to learn from, but {where} {what} in "
                           f"target column '{cfg.dataset.target}'", file=cfg.path, field="dataset.target")
    if idx is None:
        from collections import Counter

        single = [c for c, k in Counter(values).items() if k == 1]
        if single:
            import warnings

            from deepqoe.errors import DeepQoENote

            src = _data_file(cfg, data)
            which = ", ".join(repr(c) for c in single)
            what = f"class {which} has" if len(single) == 1 else f"classes {which} each have"
            warnings.warn(f"{f'file {src!r}, ' if src else ''}column '{cfg.dataset.target}': {what} "
                          "a single row: the model can hardly learn a "
                          "class from one rating, and a test part holds it or training does, not both; give more "
                          "rows of it, or merge it into a neighbouring class", DeepQoENote, stacklevel=2)


def _holdout(cfg, data, full: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Training rows, test rows and how the test rows were chosen (``metrics.json``'s ``holdout``): all rows
    and none when ``full``; else the config's holdout (:func:`deepqoe.evaluation.protocols.holdout_split_how`):
    ``evaluation.test_size`` of the groups when the dataset has a ``group`` (group-disjoint: the test rows'
    groups are never trained on), of the rows otherwise; a group that cannot be honoured (fewer than 2 groups)
    falls back to random rows with a :class:`~deepqoe.errors.DeepQoENote`."""
    from deepqoe.evaluation.protocols import holdout_split_how

    n = len(data)
    if full:
        return np.arange(n), np.arange(0), "none: every row trains"
    split, how = holdout_split_how(n, cfg.evaluation.test_size, cfg.evaluation.seed, data.groups)
    if data.groups is not None and how.startswith("random rows"):
        import warnings

        from deepqoe.errors import DeepQoENote

        where = f"file '{cfg.path}', " if cfg.path else ""
        warnings.warn(f"{where}field 'dataset.group': the {len(split.test)} test row(s) are {how}, so the test "
                      f"scores are for rows of the {cfg.dataset.group} values trained on, not for new ones",
                      DeepQoENote, stacklevel=3)
    return split.train, split.test, how


def _data_file(cfg, data) -> str | None:
    """The table file(s) a dataset was read from (else the config), for an error about the data as a whole."""
    return getattr(data, "source", None) or cfg.path


def _too_few_to_train(cfg, data, n_train: int, why: str, hint: str) -> DeepQoEError:
    """The one error for a split that leaves fewer than 2 rows to train on, naming the data file."""
    agg = " (after aggregate_by: one per condition)" if cfg.dataset.aggregate_by else ""
    return DeepQoEError(f"the table has {len(data)} row(s){agg}: {why}, which leaves {n_train} to train on, and "
                        f"training needs at least 2; {hint}", file=_data_file(cfg, data))


def _calibration_split(cfg, data, train_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(fit rows, calibration rows, how they were chosen) of a regression config's training rows:
    ``evaluation.calibration_fraction`` held out for the prediction intervals (:mod:`deepqoe.conformal`),
    group-disjoint when the dataset has a group with at least 3 groups among the training rows (random rows
    otherwise, and ``how`` says why); none for classification, a fraction of 0, or fewer than 10 rows."""
    from deepqoe.evaluation.protocols import validation_split_how

    frac = cfg.evaluation.calibration_fraction
    if cfg.dataset.task != "regression" or frac <= 0:
        return train_idx, train_idx[:0], "none"
    groups = data.groups[train_idx] if data.groups is not None else None
    fit_pos, cal_pos, how = validation_split_how(len(train_idx), frac, cfg.evaluation.seed + 104729, groups)
    if groups is not None and how.startswith("random rows"):  # a group was asked for and cannot be honoured
        import warnings

        from deepqoe.errors import DeepQoENote

        warnings.warn(f"prediction intervals: the {len(cal_pos)} calibration row(s) (evaluation.calibration_fraction "
                      f"{frac:g}) are {how}, so their coverage promise holds for rows like the training ones, not "
                      f"for new {cfg.dataset.group} values", DeepQoENote, stacklevel=2)
    return train_idx[fit_pos], train_idx[cal_pos], how


def _table_intervals(est, cfg, data, cal_idx: np.ndarray, test_idx: np.ndarray, how: str = "random rows"
                     ) -> tuple[dict | None, dict]:
    """(intervals.json object or None, metrics): split-conformal calibration on the held-out rows, and the
    test part's coverage at 0.8 and 0.9 when there is one."""
    from deepqoe.conformal import calibrate, coverage, interval_bounds, min_calibration

    if not len(cal_idx):
        return None, {}
    frac = cfg.evaluation.calibration_fraction
    rating_scale = cfg.dataset.rating_scale  # a target on a rating scale: intervals clipped to it
    bounds = None
    if rating_scale is not None:
        from deepqoe.sessions.scales import parse_scale

        sc = parse_scale(rating_scale)
        bounds = (float(sc.lo), float(sc.hi))
    # the residuals of the scores served (clipped as deepqoe predict clips them), which the intervals surround
    cal = calibrate(data.y[cal_idx], served_predictions(est, cfg, data.X.iloc[cal_idx]), scale=rating_scale,
                    bounds=bounds,
                    source=f"{len(cal_idx)} training rows held out (evaluation.calibration_fraction {frac:g}, "
                           f"{how}), not trained on")
    out: dict = {"n_calibration": cal["n_calibration"], "calibration_rows": how}
    if len(test_idx):
        pred = served_predictions(est, cfg, data.X.iloc[test_idx])
        clip = score_clip(est, cfg)
        out["test"] = {}
        for lv in (0.8, 0.9):
            if cal["n_calibration"] >= min_calibration(lv):
                low, high = interval_bounds(cal, pred, lv)
                if clip is not None:  # the interval ends deepqoe predict serves
                    low, high = np.clip(low, *clip), np.clip(high, *clip)
                out["test"][f"{lv:g}"] = coverage(data.y[test_idx], low, high)
    return cal, out


def score_clip(est, cfg) -> tuple[float, float] | None:
    """Where ``deepqoe predict`` clips the scores of the fitted regression ``est`` trained on ``cfg`` once it
    is saved: :meth:`deepqoe.predictor.Predictor.score_clip` (the dataset's ``rating_scale``, else the range of
    the training targets that ``est`` stored at fit), None for a classifier. The one rule, not a copy of it."""
    if cfg.dataset.task != "regression":
        return None
    from deepqoe.predictor import Predictor

    p = Predictor(est)
    p.meta = {**p.meta, "task": "regression",  # what model.json will say
              "dataset": {**(p.meta.get("dataset") or {}), "rating_scale": cfg.dataset.rating_scale}}
    clip = p.score_clip()
    return None if clip is None else (float(clip[0][0]), float(clip[0][1]))


def served_predictions(est, cfg, X) -> np.ndarray:
    """The predictions ``deepqoe predict``, the Python predictor, the service and batch scoring give for the
    rows ``X`` from the fitted ``est`` trained on ``cfg``: a classifier's classes; a regression's scores
    clipped to :func:`score_clip` (without the predictor's note). Every metric of train, finetune and
    evaluate, the prediction intervals' calibration and the rating-distribution head are computed on these,
    so they describe the predictor that is served (``est.predict`` alone is the network's own output, which
    explanations and the ONNX file's ``prediction`` describe)."""
    pred = est.predict(X)
    clip = score_clip(est, cfg)
    return pred if clip is None else np.clip(np.asarray(pred, float), *clip)


def _score(est, cfg, data, idx: np.ndarray, pred: np.ndarray | None = None) -> dict:
    """The metrics of the rows ``idx``, on the served predictions (``pred``, else computed); a correlation
    that is undefined (constant predictions or scores) is None: null in metrics.json."""
    from deepqoe.evaluation.metrics import classification_metrics, regression_metrics

    pred = served_predictions(est, cfg, data.X.iloc[idx]) if pred is None else pred
    if cfg.dataset.task == "classification":
        return classification_metrics(data.y[idx], pred, list(cfg.dataset.classes))
    return regression_metrics(data.y[idx], pred, undefined=None)


#: A model whose predictions on its training rows spread by less than this share of the training targets'
#: spread (a classifier: whose class probabilities move by less than this across the rows) predicts a constant.
COLLAPSE_TOLERANCE = 1e-3


def _note_collapsed(est, cfg, data, idx: np.ndarray, pred: np.ndarray) -> bool:
    """A :class:`~deepqoe.errors.DeepQoENote` when the fitted model predicts the same (or nearly the same)
    score or class probabilities for every training row ``idx`` (``pred``: its served predictions of them)
    although their targets differ: it did not learn (typically a learning rate so high that the network's
    units died). Returns whether it did."""
    import warnings

    from deepqoe.errors import DeepQoENote
    from deepqoe.evaluation.metrics import constant

    y = data.y[idx]
    n = len(idx)
    if n < 2:
        return False
    if cfg.dataset.task == "regression":
        yy, p = np.asarray(y, float), np.asarray(pred, float)
        if constant(yy) or np.std(p) > COLLAPSE_TOLERANCE * np.std(yy):
            return False
        what = (f"the same score ({float(np.median(p)):.4g}) for every one of its {n} training rows"
                + (" (its PLCC / SROCC / KROCC are undefined: null in metrics.json)" if constant(p) else ""))
    else:
        if len(set(np.asarray(y).tolist())) < 2:
            return False
        proba = np.asarray(est.predict_proba(data.X.iloc[idx]), float)
        if np.std(proba, axis=0).max() > COLLAPSE_TOLERANCE:
            return False
        label = np.asarray(pred).tolist()[0]  # a plain value (3, not np.int64(3))
        what = f"class {label!r} with the same probabilities for every one of its {n} training rows"
    lr = cfg.training.learning_rate
    where = f"file '{cfg.path}', " if cfg.path else ""
    warnings.warn(f"{where}field 'training.learning_rate': the trained model predicts {what}: it did not learn "
                  f"from the inputs; a learning rate too high ({lr:g} here) is the usual cause: try a lower one "
                  f"({'e.g. the default 0.001' if lr > 1e-3 else f'e.g. {lr / 10:g}'})", DeepQoENote, stacklevel=3)
    return True


def _note_undefined(cfg, part: str, y, pred) -> None:
    """A :class:`~deepqoe.errors.DeepQoENote` when the correlations of a scored part are undefined (null in
    metrics.json) because its scores or its predictions are all the same."""
    import warnings

    from deepqoe.errors import DeepQoENote
    from deepqoe.evaluation.metrics import constant

    if not constant(y) and not constant(pred):
        return
    why = ("it has fewer than 2 rows" if len(y) < 2 else
           "its scores are all the same" if constant(y) else "the model predicts the same score for all of them")
    where = f"file '{cfg.path}', " if cfg.path else ""
    warnings.warn(f"{where}the {part} part's PLCC / SROCC / KROCC are undefined (null in metrics.json): {why}",
                  DeepQoENote, stacklevel=3)


def _fit_and_save(est, cfg, data, out_dir, *, full: bool, metrics: dict | None = None,
                  after_fit=None, extra_meta=None) -> dict:
    """Fit ``est`` on the training rows, score it, save the model directory and ``metrics.json``.

    With a dataset ``group``, the test part (:func:`_holdout`), the calibration rows and early stopping's
    validation rows each keep the groups apart where there are enough of them (a note where not);
    ``metrics.json`` says how the test rows were chosen (``holdout``) and by which column (``group``). The
    metrics are those of the served predictions (:func:`served_predictions`); a model that predicts one
    score for every training row gets a note (:func:`_note_collapsed`).
    ``after_fit(est)`` runs after the fit, before anything is written, and returns more metrics.
    ``extra_meta(est, train_idx)`` returns more entries for model.json.
    ``metrics.json``'s ``notes``: the config's own (:func:`deepqoe.config.config_notes`), then those given while
    training (:func:`_keeps_notes`).
    The model directory, metrics.json included, appears whole or not at all; training that diverges is a
    DeepQoEError naming the config file and ``training.learning_rate``, and writes nothing."""
    from deepqoe.conformal import interval_files
    from deepqoe.persistence import save_model

    train_idx, test_idx, holdout = _holdout(cfg, data, full)
    if len(train_idx) < 2:  # before any work
        raise _too_few_to_train(cfg, data, len(train_idx), f"holding out {len(test_idx)} to test (evaluation."
                                f"test_size {cfg.evaluation.test_size:g})",
                                "give at least 3 rows, or train on all of them with --full")
    train_idx, cal_idx, how = _calibration_split(cfg, data, train_idx)
    check_classes(cfg, data)
    check_classes(cfg, data, train_idx)
    groups = data.groups[train_idx] if data.groups is not None else None  # early stopping: group-disjoint too
    t0 = time.perf_counter()
    with _config_errors(cfg):
        est.fit(data.X.iloc[train_idx], data.y[train_idx], groups=groups)
    seconds = time.perf_counter() - t0
    more = after_fit(est) if after_fit is not None else {}
    intervals, cal_metrics = _table_intervals(est, cfg, data, cal_idx, test_idx, how)
    if cal_metrics:
        more["intervals"] = cal_metrics
    heads = _table_distribution(est, cfg, data, cal_idx if len(cal_idx) else train_idx, bool(len(cal_idx)))
    if heads:
        more["distribution"] = heads["distribution.json"]["info"]
    metrics = {"dataset": cfg.dataset.name, "task": cfg.dataset.task, **(metrics or {}), **more,
               "n_train": int(len(train_idx)), "n_test": int(len(test_idx)), "holdout": holdout,
               "group": cfg.dataset.group, "fit_seconds": seconds,
               "best_epoch": est.fit_result_.best_epoch, "epochs_run": est.fit_result_.epochs_run}
    train_pred = served_predictions(est, cfg, data.X.iloc[train_idx])
    metrics["train"] = _score(est, cfg, data, train_idx, train_pred)
    collapsed = _note_collapsed(est, cfg, data, train_idx, train_pred)
    if len(test_idx):
        test_pred = served_predictions(est, cfg, data.X.iloc[test_idx])
        metrics["test"] = _score(est, cfg, data, test_idx, test_pred)
    if cfg.dataset.task == "regression" and not collapsed:
        _note_undefined(cfg, "training", data.y[train_idx], train_pred)
        if len(test_idx):
            _note_undefined(cfg, "test", data.y[test_idx], test_pred)
    dataset = cfg.dataset.model_dump()
    dataset["base_dir"] = cfg.dataset.base_dir
    # how each feature file was made (deepqoe extract's metadata), checked again at prediction
    features = {"feature_files": data.feature_files} if getattr(data, "feature_files", None) else {}
    meta = extra_meta(est, train_idx) if extra_meta else {}
    _with_notes(metrics, cfg)  # the config's notes, then those given so far (reading, fit, scoring)
    save_model(est, out_dir, dataset_config=dataset, extra={"metrics": metrics, **features, **meta}, metrics=metrics,
               files={**interval_files(intervals), **heads})
    return metrics


def _table_distribution(est, cfg, data, idx: np.ndarray, held_out: bool) -> dict:
    """``{"distribution.json": ...}`` for a table config with ``dataset.individual`` (else ``{}``): a
    rating-distribution head (:mod:`deepqoe.distribution`, no features: the spread follows the MOS) fitted on
    the rows ``idx`` (the calibration rows when ``held_out``, else the training rows; said in ``info``), with
    the fitted model's predictions mapped from ``rating_scale`` to the common 1-5 scale."""
    from deepqoe.distribution import RatingDistribution, head_files
    from deepqoe.sessions.scales import parse_scale, to_common

    d = cfg.dataset
    if not d.individual or data.ratings is None or not len(idx):
        return {}
    mos = to_common(np.asarray(served_predictions(est, cfg, data.X.iloc[idx]), float), parse_scale(d.rating_scale))
    ratings = [data.ratings[i] for i in idx]
    head = RatingDistribution(d.rating_scale, use_features=False).fit(mos, ratings)
    info = {d.name: {"scale": d.rating_scale, "n_rows": int(len(idx)),
                     "n_ratings": int(sum(len(r) for r in ratings)),
                     "mos": "predictions on the calibration rows (not trained on)" if held_out else
                            "in-sample predictions on the training rows (evaluation.calibration_fraction is 0)",
                     "mos_sd": head.mos_sd_}}
    return head_files({d.name: head}, d.name, {"default": d.name, "heads": info})


@_keeps_notes
def train_config(cfg, out_dir: str | Path, full: bool = False, progress: bool = True) -> dict:
    """Train on the dataset (a held-out test part unless ``full``), save the model dir and metrics.json."""
    from deepqoe.datasets import load_dataset
    from deepqoe.estimators import estimator_from_config

    data = load_dataset(cfg.dataset)
    est = estimator_from_config(cfg, data.inputs, progress=progress)
    return _fit_and_save(est, cfg, data, out_dir, full=full)


@_keeps_notes
def finetune(pretrained: str | Path, cfg, out_dir: str | Path, *, freeze: bool = False, full: bool = False,
             epochs: int | None = None, keep_architecture: bool = True, progress: bool = False) -> dict:
    """Train on ``cfg``'s dataset starting from ``pretrained``'s weights, those that mean the same here
    (:func:`deepqoe.estimators.transfer_weights`): the input branches of the same column and modality, the
    fully connected layers when the fused inputs are the same, the head when the classes are.

    ``freeze``: keep the pretrained representation (input branches and fully connected layers) fixed and
    train only the head; refused (before training) unless the whole representation transfers.
    ``keep_architecture``: use the pretrained model's hidden layers and dropout (else the config's; then
    little but the input branches transfers). Returns the metrics written to ``out_dir/metrics.json``
    (``warm_started``: the tensors copied; ``warm_start``: per input what was copied, and why the rest
    was not).
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
    if epochs is not None:
        over["max_epochs"] = int(epochs)
    est = estimator_from_config(cfg, data.inputs, **over)

    def after_fit(est) -> dict:
        return {"warm_started": list(est.warm_started_), "warm_start": est.warm_start_report_}

    def extra_meta(est, train_idx):
        return {"finetuned_from": {"model": str(pretrained), "name": pmeta.get("name") or src.name,
                                   "frozen": bool(freeze), "tensors_copied": len(est.warm_started_)},
                "explain_baseline": fit_baseline(est, data.X.iloc[train_idx])}

    try:
        return _fit_and_save(est, cfg, data, out_dir, full=full,
                             metrics={"pretrained": str(pretrained), "frozen": bool(freeze)},
                             after_fit=after_fit, extra_meta=extra_meta)
    except DeepQoEError as e:  # raised by the warm start, before any training
        if e.field == "init_from":
            raise DeepQoEError(f"{e.message}; train from scratch with 'deepqoe train' instead (or name the "
                               "columns as the pretrained model does)", file=cfg.path) from None
        if e.field == "freeze_representation":
            reason = e.message.split(": ", 1)[-1]
            raise DeepQoEError(f"--freeze keeps the pretrained representation, but it does not transfer to this "
                               f"network: {reason}; drop --freeze to train all layers", file=cfg.path) from None
        raise


# ---- train a session model on a sessions config ------------------------------------------------------------
def read_session_source(src, base_dir: str | None = None, ratings: bool = False):
    """One ``sessions.datasets`` entry (:class:`deepqoe.config.SessionSource`) -> a
    :class:`~deepqoe.datasets.scored.SessionSet` on the common 1-5 scale, grouped by content.

    A registered dataset is read by :func:`~deepqoe.datasets.scored.load_session_set`. Files are read
    with :func:`~deepqoe.sessions.readers.load_sessions` (a folder in the Waterloo SQoE layout is read as
    one source); every session must be valid and carry a ``mos``,
    on its ``mos_scale`` or the entry's ``scale``; a z scale goes through these
    scores' own mean and SD, as for registered datasets (:mod:`deepqoe.sessions.scales`). With ``ratings``
    (a ``distribution:`` head asks for this source), a Waterloo-layout folder's ``individual_scores`` are
    read too (parsed strictly; otherwise that column is not read).

    The entry's ``scale`` is the scale of every ``mos``; a session that writes another ``mos_scale`` with its
    ``mos`` inside it is one of the reader's problems (:func:`deepqoe.sessions.readers.load_sessions`), and a
    0-100 entry scale whose scores all lie within 0-5 gets a note (1-5 ratings?).

    Bad sessions are one error: the first problem as the reader names it (file, field, column, row), with
    how many more there are and in how many other files (every file of the entry is read first), and the
    sessions without a ``mos`` (how many, the first few by id and file)."""
    from deepqoe.config import resolve_path
    from deepqoe.sessions.readers import duplicate_id_error, load_sessions, session_files
    from deepqoe.sessions.scales import fit_z_reference, parse_scale, to_common
    from deepqoe.datasets.scored import SessionSet, load_session_set

    if src.dataset is not None:
        return load_session_set(src.dataset)
    path = resolve_path(src.path, base_dir)
    files = session_files(path)
    sessions, seen, problems, no_mos = [], {}, [], []
    for f in files:  # every file, so that the error can say how many problems there are and where
        got, failures = load_sessions(f, mos_scale=src.scale)  # the entry's scale: each mos is checked on it
        problems += failures
        for s in got:
            if s.id in seen:
                problems.append(duplicate_id_error(s.id, seen[s.id], str(f)))
                continue
            if s.mos is None:
                no_mos.append((s.id, str(f)))
            seen[s.id] = str(f)
            sessions.append(s)
    if problems or no_mos:
        raise _entry_problems(problems, no_mos, path, src.scale)
    mos = np.array([s.mos for s in sessions], float)
    import warnings

    from deepqoe.errors import DeepQoENote

    entry = parse_scale(src.scale) if src.scale is not None else None
    if entry is not None and entry.kind == "range" and entry.hi >= 100 and len(mos) >= 2 and 0 <= mos.min() \
            and mos.max() <= 5:
        warnings.warn(f"{path}: every mos is within 0-5 ({mos.min():g}-{mos.max():g}), but is read on the training "
                      f"entry's scale: {entry.name}; if these are 1-5 ratings, give the entry scale: 1-5",
                      DeepQoENote, stacklevel=3)
    scales = np.array([src.scale or s.mos_scale or "1-5" for s in sessions])
    y = np.empty(len(sessions))
    for name in dict.fromkeys(scales.tolist()):
        sel = scales == name
        scale = parse_scale(name)
        if scale.kind == "z":
            scale = fit_z_reference(mos[sel])
        elif not ((mos[sel] >= scale.lo - 1e-9) & (mos[sel] <= scale.hi + 1e-9)).all():
            k = int(np.flatnonzero(sel & ((mos < scale.lo - 1e-9) | (mos > scale.hi + 1e-9)))[0])
            raise DeepQoEError(f"session '{sessions[k].id}': mos {mos[k]:g} is outside the scale {scale.name}",
                               file=seen[sessions[k].id], field="mos")
        y[sel] = to_common(mos[sel], scale)
    groups = np.array([f"{src.label}:{s.content or s.id}" for s in sessions])
    ratings, rating_scale = _layout_ratings(path, scales) if ratings else (None, None)
    return SessionSet(src.label, sessions, y, groups, ratings=ratings, rating_scale=rating_scale)


#: The sessions an error about a training entry names by id (the others are counted).
MAX_NAMED_SESSIONS = 5


def _entry_problems(problems: list, no_mos: list, path, scale: str | None) -> DeepQoEError:
    """One error for the sessions of a training entry (``path``, its ``scale``) that cannot be trained on: the
    reader's problems (:func:`_first_of_problems`) and the sessions without a ``mos`` (``(id, file)``): how many,
    the first few by id and file."""
    def named(places: list, first: str | None) -> str:
        out = [f"'{sid}'" + (f" ({Path(f).name})" if f != first else "") for sid, f in places[:MAX_NAMED_SESSIONS]]
        return ", ".join(out + ([f"and {len(places) - MAX_NAMED_SESSIONS} more"]
                                if len(places) > MAX_NAMED_SESSIONS else []))

    if problems:
        e = _first_of_problems(problems, path, scale)
        if not no_mos:
            return e
        also = (f"; also {len(no_mos)} session(s) without a 'mos' (sessions to train on need their score): "
                f"{named(no_mos, e.file)}")
        return DeepQoEError(e.message + also, file=e.file, field=e.field, column=e.column, row=e.row)
    (sid, f), rest = no_mos[0], no_mos[1:]
    more = (f"; and {len(rest)} more session(s) without one{_in_files([g for _, g in rest], f)}: {named(rest, f)}"
            if rest else "")
    return DeepQoEError(f"session '{sid}' has no 'mos': sessions to train on need their score{more}", file=f,
                        field="mos")


def _in_files(files: list, first: str | None) -> str:
    """Where ``files`` (the file of each further problem) lie beside the first problem's file ``first``:
    `` in this file``, `` in 3 other file(s)`` or `` (2 in this file, 3 in 2 other file(s))``."""
    same = sum(1 for f in files if f == first)
    others = len(dict.fromkeys(f for f in files if f != first))
    if not others:
        return " in this file" if first is not None else ""
    if not same:
        return f" in {others} other file(s)"
    return f" ({same} in this file, {len(files) - same} in {others} other file(s))"


def _first_of_problems(problems: list, path, scale: str | None = None) -> DeepQoEError:
    """One error for the failures of reading a training entry (``path``, its ``scale``): the first problem as
    it is (file, field, column, row), with the count of the others and the files they are in, and where to see
    them all (``deepqoe sessions validate``, with ``--mos-scale`` for an entry with a scale: each mos is checked
    on it, as training does). One line."""
    import shlex

    e = problems[0]
    if len(problems) == 1:
        return DeepQoEError(e.message, file=e.file, field=e.field, column=e.column, row=e.row)
    rest = problems[1:]
    where = _in_files([x.file for x in rest], e.file)
    command = f"deepqoe sessions validate {shlex.quote(str(path))}"
    if scale is not None:
        command += f" --mos-scale {shlex.quote(scale)}"
    more = f"; and {len(rest)} more problem(s){where}; `{command}` lists them all"
    return DeepQoEError(e.message + more, file=e.file, field=e.field, column=e.column, row=e.row)


def _layout_ratings(path: Path, scales: np.ndarray) -> tuple[list | None, str | None]:
    """A Waterloo-layout folder's individual ratings (``data.csv``'s ``individual_scores``), on the sessions'
    one rating scale (a range such as 0-100), for a ``distribution:`` head; (None, None) otherwise."""
    from deepqoe.datasets.waterloo_sqoe import layout_ratings, waterloo_layout
    from deepqoe.sessions.scales import parse_scale

    layout = waterloo_layout(path)
    names = set(scales.tolist())
    if layout is None or len(names) != 1 or parse_scale(next(iter(names))).kind != "range":
        return None, None
    scale = parse_scale(next(iter(names))).name
    ratings = layout_ratings(layout, scale)
    return (ratings, scale) if ratings is not None else (None, None)


def _session_scores(y: np.ndarray, pred: np.ndarray) -> dict:
    """regression_metrics of sessions, with the correlations None (null in metrics.json) where the scores
    or the predictions are all the same (or fewer than 2): a correlation with a constant is undefined
    (:func:`deepqoe.evaluation.metrics.correlation_undefined`), not a measured "no correlation"."""
    from deepqoe.evaluation.metrics import regression_metrics, scalar_metrics

    return {"n": int(len(y)), **scalar_metrics(regression_metrics(y, pred, undefined=None))}


def _scores_by_dataset(y: np.ndarray, pred: np.ndarray, names: np.ndarray) -> dict:
    """SROCC, PLCC, RMSE (and the rest of regression_metrics) per dataset and over all, on the 1-5 scale
    (the correlations None where a dataset's scores are all the same: :func:`_session_scores`)."""
    out = {d: _session_scores(y[names == d], pred[names == d]) for d in dict.fromkeys(names.tolist())}
    if len(out) > 1:
        out["all"] = _session_scores(y, pred)
    return out


def predict_common(model, sessions: list, calibration: str | None = None) -> np.ndarray:
    """Session scores on the common 1-5 scale, through the one predictor (``calibration``: a training
    dataset's use of the scale, :meth:`deepqoe.predictor.Predictor.predict_sessions`)."""
    from deepqoe.predictor import Predictor

    rows, failures = Predictor(model).predict_sessions(sessions, curve=False, calibration=calibration)
    if failures:
        raise failures[0]
    return np.array([r["score"] for r in rows], float)


def _session_quality_mapping(cfg):
    """``sessions.quality_mapping``: the built-in mapping, or one fitted on a registered dataset's chunks or
    on the sessions of a path (objective measurements only, quality and bitrate per segment: no score is
    needed or used)."""
    from deepqoe.config import BUILTIN, resolve_path
    from deepqoe.sessions.qoe_model import builtin_quality_mapping, fit_quality_mapping
    from deepqoe.sessions.readers import load_sessions
    from deepqoe.datasets.scored import load_session_set

    sc = cfg.sessions
    builtin = builtin_quality_mapping()
    if sc.quality_mapping == BUILTIN:
        return builtin
    # a lab's chunks rarely vary the frame rate of one content: the bits a frame rate needs are the built-in
    # mapping's measurement (its fps_exponent), not refitted
    if sc.quality_mapping_path is None:
        return fit_quality_mapping(load_session_set(sc.quality_mapping).sessions, fps_exponent=builtin.fps_exponent)
    sessions, failures = load_sessions(resolve_path(sc.quality_mapping_path, cfg.base_dir))
    if failures:
        raise failures[0]
    try:
        mapping = fit_quality_mapping(sessions, fps_exponent=builtin.fps_exponent)
    except DeepQoEError as e:
        raise DeepQoEError(e.message, file=cfg.path, field="sessions.quality_mapping") from None
    _note_small_mapping_fit(cfg, sessions)
    return mapping


#: Below these, a ``quality_mapping:`` fitted on a path gets a note (:func:`_note_small_mapping_fit`).
MAPPING_MIN_SESSIONS = 20
MAPPING_MIN_CHUNKS = 200


def _note_small_mapping_fit(cfg, sessions: list) -> None:
    """A note when the quality mapping was fitted on few sessions or chunks: its bias and its shape (how quality
    moves with bitrate, resolution, codec) then follow those few clips' difficulty; the built-in mapping was
    fitted on thousands of chunks of many contents."""
    import warnings

    from deepqoe.errors import DeepQoENote
    from deepqoe.sessions.qoe_model import MappingRows

    rows = MappingRows.from_sessions(sessions, source=[str(k) for k in range(len(sessions))])  # what the fit used
    n_chunks = len(rows)
    used = [sessions[int(k)] for k in dict.fromkeys(rows.source.tolist())]
    if len(used) >= MAPPING_MIN_SESSIONS and n_chunks >= MAPPING_MIN_CHUNKS:
        return
    contents = len({s.content or s.id for s in used})
    where = f"file '{cfg.path}', " if cfg.path else ""
    warnings.warn(f"{where}field 'sessions.quality_mapping': the bitrate -> quality mapping is fitted on {n_chunks} "
                  f"chunk(s) of {len(used)} session(s) ({contents} content(s)), fewer than {MAPPING_MIN_CHUNKS} chunks "
                  f"of {MAPPING_MIN_SESSIONS} sessions: the quality a bitrate buys depends on the clip (grass needs "
                  "more bits than a talk show), so a fit on so few clips takes their difficulty for the mapping's "
                  "level and shape, and every session without a quality metric is scored through it; give more "
                  "sessions, or keep quality_mapping: builtin (fitted on Waterloo SQoE-IV's chunks and an encode "
                  "grid)", DeepQoENote, stacklevel=2)


class OutOfFold(NamedTuple):
    """Out-of-fold predictions of the sessions of a k-fold (common 1-5 scale), NaN where none was made."""
    common: np.ndarray  # with the average calibration (what a prediction without ``calibration`` gives)
    own: np.ndarray     # each session with its own dataset's calibration (NaN where a fold model lacks it)


def out_of_fold_sessions(fit, session_sets: list, curve_sets: list, splits) -> OutOfFold:
    """Out-of-fold predictions of the sessions of ``session_sets``, concatenated in order:
    ``fit(session_sets, curve_sets)`` on each split's training part, predicting its test part (``splits``
    index the sessions of ``session_sets + curve_sets``, concatenated); NaN where no split tests a session.
    Reused for the scores (:func:`_cross_validate_sessions`) and the prediction intervals
    (:func:`session_intervals`, pooled and per dataset)."""
    sets = session_sets + curve_sets
    offsets = np.cumsum([0] + [len(x.sessions) for x in sets])

    def part(idx: np.ndarray, k: int) -> np.ndarray:  # positions of set k's sessions in idx
        return idx[(idx >= offsets[k]) & (idx < offsets[k + 1])] - offsets[k]

    oof = OutOfFold(np.full(offsets[len(session_sets)], np.nan), np.full(offsets[len(session_sets)], np.nan))
    for split in splits:
        train = [x.subset(part(split.train, k)) for k, x in enumerate(sets)]
        model = fit([x for x in train[:len(session_sets)] if len(x.sessions)],
                    [x for x in train[len(session_sets):] if len(x.sessions)])
        for k, x in enumerate(session_sets):
            te = part(split.test, k)
            if len(te):
                test = [x.sessions[i] for i in te]
                oof.common[offsets[k] + te] = predict_common(model, test)
                if x.name in (getattr(model, "calibrations_", None) or []):
                    oof.own[offsets[k] + te] = predict_common(model, test, calibration=x.name)
    return oof


def _cross_validate_sessions(fit, session_sets: list, curve_sets: list, splits, oof: np.ndarray | None = None
                             ) -> dict:
    """Out-of-fold scores per session dataset (``oof``: the :func:`out_of_fold_sessions` predictions, when
    already computed)."""
    if oof is None:
        oof = out_of_fold_sessions(fit, session_sets, curve_sets, splits).common
    return _scores_by_dataset(np.concatenate([x.y for x in session_sets]), oof,
                              np.concatenate([[x.name] * len(x.sessions) for x in session_sets]))


def session_folds(session_sets: list, curve_sets: list, n_splits: int = 5, seed: int = 0) -> list:
    """Content-disjoint k folds over the sessions of ``session_sets + curve_sets`` (concatenated): the fold
    key of a session is its content where it has one (shared by datasets of the same source)."""
    from deepqoe.evaluation.protocols import make_splits

    keys = np.array([s.content or g for x in session_sets + curve_sets for s, g in zip(x.sessions, x.groups)])
    n_keys = len(set(keys.tolist()))
    if n_keys < max(2, n_splits):
        raise DeepQoEError(f"a content-disjoint {n_splits}-fold evaluation needs at least {max(2, n_splits)} "
                           f"contents (a session without one counts as its own), and these sessions have {n_keys}: "
                           "lower evaluation.n_splits, or set evaluation.protocol: none", field="evaluation.n_splits")
    return make_splits("group-kfold", len(keys), groups=keys, n_splits=n_splits, seed=seed)


def session_intervals(y: np.ndarray, oof: OutOfFold, n_splits: int, names: np.ndarray | None = None) -> dict:
    """A session model's ``intervals.json`` (:mod:`deepqoe.conformal`) from the out-of-fold predictions of
    its content-disjoint k-fold (common 1-5 scale): each fold model never saw the sessions it predicted,
    the final model trained on all of them (it is usually a little better than the fold models, so the
    intervals are, if anything, a little wide). Pooled over every session (``oof.common``); with ``names``
    (each session's dataset) also ``by_calibration``: each dataset with at least 9 scored sessions (what a
    0.9 interval needs) on its own residuals of its own calibration's predictions (``oof.own``)."""
    from deepqoe.conformal import calibrate, min_calibration

    source = (f"out-of-fold predictions of {n_splits}-fold content-disjoint cross-validation "
              "(fold models; the final model trains on every session)")
    out = calibrate(y, oof.common, scale="1-5", bounds=(1.0, 5.0), source=source)
    if names is not None:
        by = {}
        for d in dict.fromkeys(np.asarray(names).tolist()):
            k = (np.asarray(names) == d) & np.isfinite(y) & np.isfinite(oof.own)
            if k.sum() >= min_calibration(0.9):
                by[d] = calibrate(y[k], oof.own[k], scale="1-5", bounds=(1.0, 5.0),
                                  source=f"{d}'s sessions only, predicted with {d}'s calibration; " + source)
        if by:
            out["by_calibration"] = by
    return out


@_keeps_notes
def train_sessions_config(cfg, out_dir: str | Path, *, full: bool = False, progress: bool = True) -> dict:
    """Train the streaming session model (:mod:`deepqoe.sessions.training`) on a sessions config
    (:class:`deepqoe.config.SessionsExperimentConfig`) and save it to ``out_dir`` with ``metrics.json``.

    Unless ``full`` or ``evaluation.protocol: none``, the recipe is first scored by content-disjoint k-fold
    over all datasets together (a content, in any dataset, falls in one fold; curve datasets are split the
    same way), out-of-fold scores per dataset; the out-of-fold predictions also calibrate the prediction
    intervals (``intervals.json``, :func:`session_intervals`; none without the k-fold). Then the model is
    trained on everything and the directory (model.json, model.safetensors, metrics.json, intervals.json)
    appears whole or not at all. A progress bar goes to
    standard error when ``progress`` and standard error is a terminal. Returns the metrics: ``fit_seconds``
    (the final fit), ``kfold_seconds`` (None without it), ``total_seconds`` (everything but the save),
    ``evaluation_skipped`` (``--full`` or ``evaluation.protocol: none``, where no k-fold ran); a correlation
    of constant scores is None (null in metrics.json). Degenerate trainings get a
    :class:`~deepqoe.errors.DeepQoENote`: a dataset whose scores are all the same, a k-fold score over fewer
    than :data:`KFOLD_MIN_SESSIONS` sessions, a quality mapping fitted on a handful of sessions; every
    distinct note given while training is also in ``metrics.json``'s ``notes`` (:func:`_keeps_notes`)."""
    import sys

    from tqdm.auto import tqdm

    from deepqoe.conformal import calibration_sizes, interval_files
    from deepqoe.sessions.training import RECIPE, fit_streaming_model

    t_start = time.perf_counter()
    sc = cfg.sessions
    wanted = set(cfg.distribution.datasets) if cfg.distribution is not None else set()
    session_sets, curve_sets = _read_entries(cfg, wanted)
    if cfg.distribution is not None:  # before any training
        check_distribution_datasets(cfg.distribution.datasets, cfg.distribution.default, session_sets, cfg.path)
    _note_constant_scores(cfg, session_sets)
    mapping = _session_quality_mapping(cfg)
    params = {**RECIPE, **cfg.model_params()}
    splits = []
    skipped = "--full" if full else ("evaluation.protocol: none" if cfg.evaluation.protocol == "none" else None)
    if skipped is None:
        try:
            splits = session_folds(session_sets, curve_sets, cfg.evaluation.n_splits, cfg.evaluation.seed)
        except DeepQoEError as e:
            raise DeepQoEError(e.message, file=cfg.path, field=e.field) from None
        _note_few_kfold_sessions(cfg, session_sets, splits)
    bar = tqdm(total=(len(splits) + 1) * params["n_members"] * params["epochs"], desc="training", unit="epoch",
               file=sys.stderr, disable=not (progress and sys.stderr.isatty()), leave=False)

    def fit(ss: list, cs: list):
        return fit_streaming_model(ss, cs, mapping=mapping, progress=lambda step, loss: bar.update(1), **params)

    kfold_seconds = None
    try:
        evaluation = oof = None
        if splits:
            t0 = time.perf_counter()
            oof = out_of_fold_sessions(fit, session_sets, curve_sets, splits)
            kfold_seconds = time.perf_counter() - t0
            evaluation = {"protocol": "group-kfold",
                          "description": f"{len(splits)}-fold content-disjoint cross-validation over the datasets "
                                         "together (a content falls in one fold in every dataset), out-of-fold "
                                         "predictions scored per dataset on the common 1-5 scale",
                          "n_splits": len(splits), "seed": cfg.evaluation.seed,
                          "scores": _cross_validate_sessions(fit, session_sets, curve_sets, splits, oof.common)}
        t0 = time.perf_counter()
        model = fit(session_sets, curve_sets)
        seconds = time.perf_counter() - t0
    except DeepQoEError as e:
        if e.file is None and (e.field or "").startswith("training."):  # a training setting: name the config
            raise DeepQoEError(e.message, file=cfg.path, field=e.field) from None
        raise
    finally:
        bar.close()
    y = np.concatenate([s.y for s in session_sets])
    names = np.concatenate([[s.name] * len(s.sessions) for s in session_sets])
    pred = predict_common(model, [x for s in session_sets for x in s.sessions])
    name = sc.name or Path(out_dir).name
    sizes = {s.name: len(s.sessions) for s in session_sets}
    metrics = {"name": name, "kind": "sessions", "task": "regression", "scale": "1-5",
               "datasets": sizes, "continuous": {c.name: len(c.sessions) for c in curve_sets},
               "quality_mapping": sc.quality_mapping, "params": model.get_params(),
               "n_train": int(sum(sizes.values())), "fit_seconds": seconds, "kfold_seconds": kfold_seconds,
               "evaluation": evaluation, "train": _scores_by_dataset(y, pred, names)}
    if skipped is not None:  # why there is no k-fold score, and so no prediction intervals (predict --interval)
        metrics["evaluation_skipped"] = skipped
    intervals = None if oof is None else session_intervals(y, oof, len(splits), names)
    if intervals is not None:
        metrics["intervals"] = {"n_calibration": intervals["n_calibration"], "source": intervals["source"],
                                "by_calibration": calibration_sizes(intervals)}
    dc = cfg.distribution
    heads = {} if dc is None else distribution_heads(dc.datasets, dc.default, model, session_sets,
                                                      None if oof is None else oof.common, pred,
                                                      file=cfg.path)
    if heads:
        metrics["distribution"] = heads["distribution.json"]["info"]
    metrics["total_seconds"] = time.perf_counter() - t_start  # reading, k-fold, final fit, scoring (not the save)
    _with_notes(metrics, cfg)  # the notes given so far (reading, k-fold, final fit, scoring)
    model.save(out_dir, extra={"name": name, "metrics": metrics}, metrics=metrics,  # atomic, metrics.json inside
               files={**interval_files(intervals), **heads})
    return metrics


def _read_entries(cfg, wanted: set) -> tuple[list, list]:
    """The session sets of a sessions config's ``sessions.datasets`` (:func:`read_session_source`; ``wanted``:
    the labels a ``distribution:`` head reads the ratings of) and the curve sets of its ``sessions.continuous``,
    each entry read once. Entries that cannot be read are one error (:func:`deepqoe.config.entries_error`): one
    entry's as it is, several named each by its field and label with its own error, in the config's order (the
    config check, :func:`deepqoe.config.load_sessions_config`, says its bad entries the same way)."""
    from deepqoe.config import entries_error
    from deepqoe.datasets.scored import load_curve_set

    sc = cfg.sessions
    session_sets, curve_sets, bad = [], [], []
    for k, src in enumerate(sc.datasets):
        try:
            session_sets.append(read_session_source(src, cfg.base_dir, ratings=src.label in wanted))
        except DeepQoEError as e:
            bad.append((f"sessions.datasets.{k} '{src.label}'", e))
    for k, name in enumerate(sc.continuous):
        try:
            curve_sets.append(load_curve_set(name))
        except DeepQoEError as e:
            bad.append((f"sessions.continuous.{k} '{name}'", e))
    if bad:
        raise entries_error(bad, cfg.path)
    return session_sets, curve_sets


#: A k-fold score over fewer scored sessions than this (all datasets, or one dataset's own) gets a note.
KFOLD_MIN_SESSIONS = 20


def _note_constant_scores(cfg, session_sets: list) -> None:
    """A note for each session dataset whose scores are all the same (and one more when every score is):
    its SROCC / PLCC / KROCC are undefined (null in metrics.json), and it teaches no ranking."""
    import warnings

    from deepqoe.errors import DeepQoENote
    from deepqoe.evaluation.metrics import constant

    where = f"file '{cfg.path}', " if cfg.path else ""
    flat = [k for k, x in enumerate(session_sets) if len(x.y) and constant(x.y)]
    every = constant(np.concatenate([x.y for x in session_sets])) if session_sets else False
    for k in flat:
        x = session_sets[k]
        what = (f"every one of its {len(x.y)} sessions has the same score ({x.y[0]:.3g} on the common 1-5 scale)"
                if len(x.y) > 1 else "it has one session")
        why = ("the model can learn nothing of what raises or lowers a score (it will predict about that score "
               "for every session)" if every else "it teaches the model only its level (its calibration), "
               "nothing of what raises or lowers a score")
        warnings.warn(f"{where}field 'sessions.datasets.{k}': dataset '{x.name}': {what}, so its SROCC, PLCC and "
                      f"KROCC are undefined (null in metrics.json), and {why}", DeepQoENote, stacklevel=3)


def _note_few_kfold_sessions(cfg, session_sets: list, splits) -> None:
    """A note when the k-fold score rests on few sessions (fewer than :data:`KFOLD_MIN_SESSIONS` over all, or
    in a dataset that is scored on its own): how many each fold tests."""
    import warnings

    from deepqoe.errors import DeepQoENote

    sizes = [len(x.sessions) for x in session_sets]
    offsets = np.cumsum([0] + sizes)
    parts = [("", 0, int(offsets[-1]))] if offsets[-1] < KFOLD_MIN_SESSIONS else []
    if not parts and len(session_sets) > 1:  # the whole is enough, a dataset's own score may not be
        parts = [(f" of '{x.name}'", int(offsets[k]), int(offsets[k + 1])) for k, x in enumerate(session_sets)
                 if 0 < sizes[k] < KFOLD_MIN_SESSIONS]
    if not parts:
        return
    texts = []
    for label, lo, hi in parts:
        per = [int(((sp.test >= lo) & (sp.test < hi)).sum()) for sp in splits]
        fold = f"{min(per)}" if min(per) == max(per) else f"{min(per)}-{max(per)}"
        texts.append(f"the {len(splits)}-fold score{label} rests on {hi - lo} session(s), {fold} test session(s) "
                     "per fold")
    where = f"file '{cfg.path}', " if cfg.path else ""
    warnings.warn(f"{where}field 'evaluation.n_splits': {'; '.join(texts)}: a correlation over fewer than "
                  f"{KFOLD_MIN_SESSIONS} sessions moves a lot when one session is ranked differently, so read it as "
                  "a check that training runs, not as a measure of the model", DeepQoENote, stacklevel=3)


def check_distribution_datasets(datasets: list[str], default: str | None, session_sets: list,
                                file: str | None = None) -> None:
    """Each of ``datasets`` is one of ``session_sets`` and has individual ratings; ``default`` one of them."""
    by_name = {s.name: s for s in session_sets}
    for name in datasets:
        if name not in by_name:
            raise DeepQoEError(f"'{name}' is not one of the config's session datasets ({', '.join(by_name)})",
                               file=file, field="distribution.datasets")
        if getattr(by_name[name], "ratings", None) is None:
            raise DeepQoEError(f"dataset '{name}' has no individual ratings", file=file,
                               field="distribution.datasets")
    if default is not None and default not in datasets:
        raise DeepQoEError(f"default '{default}' is not among distribution.datasets", file=file,
                           field="distribution.default")


def distribution_heads(datasets: list[str], default: str | None, model, session_sets: list,
                       oof: np.ndarray | None, pred: np.ndarray | None = None, file: str | None = None) -> dict:
    """``{"distribution.json": ...}`` (:mod:`deepqoe.distribution`; a sessions config's ``distribution:``):
    one head per dataset of ``datasets``, fitted on its individual ratings, its out-of-fold predicted MOS
    ``oof`` where the k-fold ran (else ``pred``, the final model's in-sample predictions, said in ``info``;
    both over ``session_sets`` concatenated, common scale; ``pred`` None: predicted here where needed) and
    the final model's representation."""
    from deepqoe.distribution import RatingDistribution, head_files

    check_distribution_datasets(datasets, default, session_sets, file)
    offsets = np.cumsum([0] + [len(s.sessions) for s in session_sets])
    by_name = {s.name: k for k, s in enumerate(session_sets)}
    heads, info = {}, {}
    for name in datasets:
        k = by_name[name]
        S = session_sets[k]
        sl = slice(offsets[k], offsets[k + 1])
        use_oof = oof is not None and np.isfinite(oof[sl]).all()
        mos = oof[sl] if use_oof else (pred[sl] if pred is not None else model.predict_sessions(S.sessions))
        heads[name] = RatingDistribution(S.rating_scale).fit(mos, S.ratings, model.transform_sessions(S.sessions))
        info[name] = {"scale": S.rating_scale, "n_sessions": len(S.sessions),
                      "n_ratings": int(sum(len(r) for r in S.ratings)),
                      "mos": "out-of-fold predictions" if use_oof else "in-sample predictions of the final model",
                      "mos_sd": heads[name].mos_sd_}
    default = default or datasets[0]
    return head_files(heads, default, {"default": default, "heads": info})


# ---- evaluate ------------------------------------------------------------------------------------------
def baselines_for_task(task: str) -> tuple[str, ...]:
    """The baselines ``evaluate`` can run for a task (:data:`deepqoe.shallow.BASELINES`): ``majority`` and
    ``naive_bayes`` are classifiers, ``mean`` is the trivial regressor."""
    from deepqoe.shallow import BASELINES

    drop = {"classification": ("mean",), "regression": ("majority", "naive_bayes")}.get(task, ())
    return tuple(b for b in BASELINES if b not in drop)


def check_evaluation_options(task: str, *, protocol: str = "repeated", n_splits: int | None = None,
                             test_size: float | None = None, baselines: list[str] | None = None,
                             max_epochs: int | None = None) -> None:
    """The values ``evaluate`` is asked to use instead of the config's, checked before any work: a
    DeepQoEError naming the parameter (``n_splits`` at least 2, ``test_size`` a fraction strictly between
    0 and 1, ``max_epochs`` at least 1, ``baselines`` known, each once, and fitting the task)."""
    import math

    from deepqoe.evaluation.protocols import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise DeepQoEError(f"unknown protocol '{protocol}'; use one of {', '.join(PROTOCOLS)}", field="protocol")
    if n_splits is not None and (isinstance(n_splits, bool) or int(n_splits) != n_splits or n_splits < 2):
        raise DeepQoEError(f"the number of splits must be a whole number of at least 2, got {n_splits}",
                           field="n_splits")
    if test_size is not None and not (isinstance(test_size, (int, float)) and math.isfinite(test_size)
                                      and 0 < test_size < 1):
        raise DeepQoEError(f"the test size must be a fraction strictly between 0 and 1 (e.g. 0.2), got {test_size}",
                           field="test_size")
    if max_epochs is not None and (isinstance(max_epochs, bool) or int(max_epochs) != max_epochs or max_epochs < 1):
        raise DeepQoEError(f"the number of epochs must be at least 1, got {max_epochs}", field="max_epochs")
    if baselines is not None:
        allowed = baselines_for_task(task)
        seen = set()
        for b in baselines:
            if b in seen:
                raise DeepQoEError(f"baseline '{b}' is listed twice", field="baselines")
            seen.add(b)
            if b not in allowed:
                from deepqoe.shallow import BASELINES

                why = f"it is not a {task} baseline" if b in BASELINES else "unknown baseline"
                hint = {"mean": " (the trivial classifier is 'majority')",
                        "majority": " (the trivial regressor is 'mean')"}.get(b, "")
                raise DeepQoEError(f"'{b}': {why}{hint}; {(task + ' ') if task else ''}baselines: "
                                   f"{', '.join(allowed)}", field="baselines")


def evaluate_config(cfg, protocol: str = "repeated", n_splits: int | None = None, test_size: float | None = None,
                    baselines: list[str] | None = None, progress: bool = True, max_epochs: int | None = None) -> dict:
    """DeepQoE and baselines on the same splits of a dataset: every metric as mean, std and per split.

    ``n_splits``, ``test_size``, ``baselines`` and ``max_epochs`` replace the config's values when given
    (checked first by :func:`check_evaluation_options`); the config's own baselines that do not fit the task
    (``majority`` for a regression, ``mean`` for a classification) are skipped, with a
    :class:`~deepqoe.errors.DeepQoENote` naming them when the config lists them (not for the default list)."""
    from deepqoe.datasets import load_dataset
    from deepqoe.estimators import estimator_from_config
    from deepqoe.evaluation.metrics import classification_metrics, regression_metrics, scalar_metrics
    from deepqoe.evaluation.protocols import make_splits
    from deepqoe.evaluation.statistics import paired_test, summarise
    from deepqoe.shallow import baseline_pipeline

    where = f"file '{cfg.path}', " if cfg.path else ""
    ds_cfg, ev = cfg.dataset, cfg.evaluation
    task = ds_cfg.task
    check_evaluation_options(task, protocol=protocol, n_splits=n_splits, test_size=test_size, baselines=baselines,
                             max_epochs=max_epochs)
    n_splits_from = "evaluation.n_splits" if n_splits is None else None
    n_splits = ev.n_splits if n_splits is None else int(n_splits)
    test_size = ev.test_size if test_size is None else float(test_size)
    if baselines is None:
        allowed = baselines_for_task(task)
        baselines = [b for b in ev.baselines if b in allowed]
        skipped = [b for b in ev.baselines if b not in allowed]
        if skipped and "baselines" in ev.model_fields_set:  # the config's own list (the default is no choice)
            import warnings

            from deepqoe.errors import DeepQoENote

            where = f"file '{cfg.path}', " if cfg.path else ""
            what = f"not a {task} baseline" if len(skipped) == 1 else f"not {task} baselines"
            warnings.warn(f"{where}field 'evaluation.baselines': {', '.join(skipped)} skipped, {what} "
                          f"({task} baselines: {', '.join(allowed)})", DeepQoENote, stacklevel=2)
    data = load_dataset(ds_cfg)
    check_classes(cfg, data)
    if protocol == "group-kfold" and data.groups is not None:
        n_groups = len(set(np.asarray(data.groups).tolist()))
        if n_groups < n_splits:
            raise DeepQoEError(f"group-kfold with {n_splits} folds needs at least {n_splits} groups, and group "
                               f"column '{ds_cfg.group}' has {n_groups}: ask for at most {n_groups} folds "
                               f"({'evaluation.n_splits' if n_splits_from else '--n-splits'})",
                               file=cfg.path, field=n_splits_from)
    try:
        splits = make_splits(protocol, len(data), groups=data.groups, n_splits=n_splits, test_size=test_size,
                             seed=ev.seed)
    except DeepQoEError as e:  # too few rows or groups for the protocol: name the data (a missing group: the config)
        if e.file is not None:
            raise
        file = cfg.path if data.groups is None and protocol.startswith("group") else _data_file(cfg, data)
        raise DeepQoEError(e.message, file=file, field=e.field) from None
    for split in splits:  # before any work: every split must leave something to train on
        if len(split.train) < 2:
            raise _too_few_to_train(cfg, data, len(split.train), f"{split.name} of the '{protocol}' protocol "
                                    f"tests on {len(split.test)}",
                                    "give more groups" if protocol.startswith("group") else "give more rows")
    group_disjoint = protocol.startswith("group")  # the test rows' groups are never trained on
    if data.groups is not None and not group_disjoint:
        import warnings

        from deepqoe.errors import DeepQoENote

        warnings.warn(f"{where}field 'dataset.group': the '{protocol}' protocol draws its test rows at random and "
                      f"ignores the group column '{ds_cfg.group}': test rows share {ds_cfg.group} values with the "
                      f"training rows, so the scores are for rows like the training ones, not for new "
                      f"{ds_cfg.group} values; --protocol group-kfold keeps the groups apart", DeepQoENote,
                      stacklevel=2)
    tiny = [sp for sp in splits if len(sp.test) < 3]
    if task == "regression" and tiny:  # a correlation of 1 or 2 rows says nothing (undefined, or +-1)
        import warnings

        from deepqoe.errors import DeepQoENote

        src = _data_file(cfg, data)
        warnings.warn(f"{f'file {src!r}: ' if src else ''}{len(tiny)} of {len(splits)} splits test on fewer than 3 "
                      f"rows ({tiny[0].name}: {len(tiny[0].test)}): their PLCC / SROCC / KROCC say nothing (undefined "
                      "with 1 row, +-1 with 2); ask for fewer splits or a larger test part", DeepQoENote, stacklevel=2)
    names = ["deepqoe"] + list(baselines)
    labels = list(ds_cfg.classes) if task == "classification" else None
    per_split: dict[str, list[dict]] = {n: [] for n in names}
    fit_seconds: dict[str, list[float]] = {n: [] for n in names}
    cm_total = {n: None for n in names}
    pooled = {n: ([], []) for n in names}  # out-of-split (true, predicted), for plots
    iterator = splits
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(splits, desc=f"evaluate ({protocol})", unit="split")
    overrides = {"max_epochs": int(max_epochs)} if max_epochs is not None else {}
    with _each_note_once():  # one line per distinct note, not one per split
        for k, split in enumerate(iterator):
            Xtr, Xte = data.X.iloc[split.train], data.X.iloc[split.test]
            ytr, yte = data.y[split.train], data.y[split.test]
            # the validation split for early stopping mirrors the test protocol: group-disjoint only when
            # the test split is (otherwise it is a harder, noisier task than the one being measured)
            gtr = data.groups[split.train] if data.groups is not None and group_disjoint else None
            for name in names:
                t0 = time.perf_counter()
                if name == "deepqoe":
                    est = estimator_from_config(cfg, data.inputs, random_state=cfg.training.seed + k, **overrides)
                    with _config_errors(cfg):
                        est.fit(Xtr, ytr, groups=gtr)
                else:
                    est = baseline_pipeline(name, task, data.inputs, seed=k)
                    try:
                        est.fit(Xtr, ytr)
                    except ValueError as e:  # scikit-learn's refusal (e.g. one class in a training part)
                        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                        raise DeepQoEError(f"baseline '{name}' cannot be trained on {split.name} "
                                           f"({len(split.train)} training rows): {first}", file=cfg.path) from None
                fit_seconds[name].append(time.perf_counter() - t0)
                # DeepQoE: the scores deepqoe predict would serve (clipped as it clips them)
                pred = served_predictions(est, cfg, Xte) if name == "deepqoe" else est.predict(Xte)
                pooled[name][0].extend(np.asarray(yte).tolist())
                pooled[name][1].extend(np.asarray(pred).tolist())
                if task == "classification":
                    m = classification_metrics(yte, pred, labels)
                    cm = np.asarray(m["confusion_matrix"])
                    cm_total[name] = cm if cm_total[name] is None else cm_total[name] + cm
                else:
                    m = regression_metrics(yte, pred, undefined=None)  # a constant's correlation: None
                per_split[name].append({"split": split.name, "n_train": len(split.train), "n_test": len(split.test),
                                        **scalar_metrics(m)})
    key = "accuracy" if task == "classification" else "srocc"
    _note_undefined_splits(cfg, per_split)
    methods = {}
    for name in names:
        entry = {"metrics": _summarise_splits([{k: v for k, v in s.items() if k not in ("n_train", "n_test")}
                                               for s in per_split[name]]),
                 "per_split": per_split[name], "fit_seconds": summarise([{"s": s} for s in fit_seconds[name]])["s"]}
        if cm_total[name] is not None:
            entry["confusion_matrix_total"] = cm_total[name].tolist()
        if name != "deepqoe":  # a split where either is undefined (None -> NaN) is left out of the pairs
            entry["paired_test_vs_deepqoe"] = paired_test(
                [np.nan if s[key] is None else s[key] for s in per_split["deepqoe"]],
                [np.nan if s[key] is None else s[key] for s in per_split[name]])
        methods[name] = entry
    return {"dataset": ds_cfg.name, "task": task, "protocol": protocol, "n_splits": len(splits),
            "test_size": test_size if protocol in ("repeated", "holdout") else None,
            "test_rows": "group-disjoint" if group_disjoint else "random rows", "group": ds_cfg.group,
            "labels": labels, "key_metric": key, "methods": methods, "_pooled": pooled}


def _summarise_splits(per_split: list[dict]) -> dict[str, dict]:
    """:func:`deepqoe.evaluation.statistics.summarise` of each scalar metric over splits, an undefined value
    (None: a correlation of constant predictions or scores) kept in ``values`` and left out of the summary
    (``n``: the splits where it is defined, ``n_undefined``: the others; mean, std, ... None when no split
    has it)."""
    from deepqoe.evaluation.statistics import describe

    keys = [k for k, v in per_split[0].items() if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
            ] if per_split else []
    out = {}
    for k in keys:
        values = [s[k] for s in per_split]
        defined = [float(v) for v in values if v is not None]
        d = describe(defined)
        if not defined:
            d.update({m: None for m in ("mean", "std", "median", "min", "max")})
        d["values"] = values
        if len(defined) < len(values):
            d["n_undefined"] = len(values) - len(defined)
        out[k] = d
    return out


def _note_undefined_splits(cfg, per_split: dict[str, list[dict]]) -> None:
    """One :class:`~deepqoe.errors.DeepQoENote` naming the methods whose correlations are undefined in some
    splits (their predictions or the test scores all the same, e.g. the ``mean`` baseline): null in the
    results, left out of the mean."""
    from deepqoe.evaluation.metrics import CORRELATIONS

    counts = {name: sum(any(s.get(c, 0.0) is None for c in CORRELATIONS) for s in rows)
              for name, rows in per_split.items()}
    bad = {name: k for name, k in counts.items() if k}
    if not bad:
        return
    import warnings

    from deepqoe.errors import DeepQoENote

    n = len(next(iter(per_split.values())))
    which = ", ".join(f"{name} in {k} of {n} split(s)" for name, k in bad.items())
    where = f"file '{cfg.path}': " if cfg.path else ""
    warnings.warn(f"{where}PLCC / SROCC / KROCC are undefined where the predictions or the test scores are all "
                  f"the same ({which}): null in the results, shown as 'undefined' and left out of the mean +- std",
                  DeepQoENote, stacklevel=3)


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

    def cell(s: dict) -> str:
        if s["mean"] is None:  # undefined in every split (e.g. the correlations of the mean baseline)
            return "undefined"
        more = f" ({s['n_undefined']} undefined)" if s.get("n_undefined") else ""
        return f"{s['mean']:.4f} ± {s['std']:.4f}{more}"

    for name, e in methods.items():
        rows.append([name] + [cell(e["metrics"][m]) for m in metrics if m in e["metrics"]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


# ---- predict -------------------------------------------------------------------------------------------
def read_prediction_input(model_meta: dict, data_path: str | Path) -> tuple[pd.DataFrame, list | None]:
    """Read a table to predict on, with the reader options and vector joins of the model's dataset."""
    from deepqoe.datasets import read_rated_table
    from deepqoe.io import read_table

    cfg = prediction_dataset(model_meta)
    path = Path(data_path)
    if cfg is not None:
        # as training read it: the id and the vector join columns as text ('001' stays '001'), and a CSV
        # written with another separator (e.g. our own output) read again with a comma
        df = read_rated_table(cfg, path, any_sep=True)
        return prediction_frame(model_meta, df, str(path), cfg)
    return read_table(path), None


def prediction_dataset(model_meta: dict):
    """The DatasetConfig a table model was trained with (reader options, inputs, id), or None."""
    from pydantic import ValidationError

    from deepqoe.config import DatasetConfig, format_validation_error

    ds = dict(model_meta.get("dataset") or {})
    if not ds:
        return None
    base_dir = ds.pop("base_dir", None)
    try:
        cfg = DatasetConfig.model_validate(ds)
    except ValidationError as e:  # a model file written under older, looser rules (or edited by hand)
        err = format_validation_error(e, DatasetConfig, "model.json")
        raise DeepQoEError(err.message, file="model.json", field=f"dataset.{err.field}") from None
    cfg.base_dir = base_dir
    return cfg


def prediction_frame(model_meta: dict, df: pd.DataFrame, source: str, cfg=None) -> tuple[pd.DataFrame, list | None]:
    """``(X, ids)`` of a table already read (a whole file, or one partition of a batch): the model's input
    columns checked and its vector files joined; errors name ``source``."""
    from deepqoe.datasets import prepare_inputs

    cfg = cfg if cfg is not None else prediction_dataset(model_meta)
    if cfg is None:
        return df, None
    X, _ = prepare_inputs(cfg, df, source, model_meta=model_meta)  # the model's feature columns, checked
    ids = df[cfg.id].tolist() if cfg.id and cfg.id in df.columns else None
    return X, ids
