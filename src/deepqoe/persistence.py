"""Model directories: weights in safetensors, everything else in JSON. No pickle anywhere.

    MODEL_DIR/
      model.safetensors   the network's tensors
      model.json          format version, estimator class and parameters, input configs, encoder
                          states (vocabularies, normaliser statistics, word-embedding name), classes or
                          target scaling, the dataset config, package versions, training summary

A directory is written to a temporary sibling and renamed into place, so a crash leaves no half-written
model. Loading rebuilds the estimator and gives exactly the outputs of the model that was saved.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from deepqoe import __version__
from deepqoe.config import InputConfig
from deepqoe.errors import DeepQoEError
from deepqoe.features.tabular import build_encoder
from deepqoe.io import atomic_directory, to_json

FORMAT_VERSION = 1
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def _versions() -> dict:
    out = {"deepqoe": __version__, "python": platform.python_version()}
    for pkg in ("torch", "numpy", "pandas", "scikit-learn", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def save_model(est, out_dir: str | Path, dataset_config: dict | None = None, extra: dict | None = None) -> Path:
    """Save a fitted DeepQoE estimator to ``out_dir`` (replacing it atomically)."""
    est._check_fitted()
    params = {k: v for k, v in est.get_params().items() if k not in ("init_from",)}
    params["hidden_layers"] = list(params["hidden_layers"])
    if params.get("classes") is not None:
        params["classes"] = list(np.asarray(params["classes"]).tolist())
    meta = {
        "format_version": FORMAT_VERSION,
        "estimator": type(est).__name__,
        "task": est._task,
        "params": params,
        "inputs": [c.model_dump() for c in est.input_configs_],
        "encoders": [e.state() for e in est.encoders_],
        "classes": est.classes_.tolist() if est._task == "classification" else None,
        "target": None if est._task == "classification" else {"mean": est.y_mean_, "std": est.y_std_},
        "representation_dim": est.network_.representation_dim,
        "training": {"best_epoch": est.fit_result_.best_epoch, "epochs_run": est.fit_result_.epochs_run}
        if hasattr(est, "fit_result_") else None,
        "dataset": dataset_config,
        "versions": _versions(),
        **(extra or {}),
    }
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        tensors = {k: v.detach().contiguous().clone() for k, v in est.network_.state_dict().items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "deepqoe", "version": str(FORMAT_VERSION)})
        (tmp / "model.json").write_text(to_json(meta) + "\n", encoding="utf-8")
    return out_dir


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """A model directory path, or the name of a model shipped with the package (``deepqoe models``)."""
    p = Path(name_or_path)
    if (p / "model.json").is_file():
        return p
    shipped = PRETRAINED_DIR / str(name_or_path)
    if (shipped / "model.json").is_file():
        return shipped
    names = sorted(d.name for d in PRETRAINED_DIR.iterdir() if (d / "model.json").is_file()) if PRETRAINED_DIR.is_dir() else []
    if p.exists():
        raise DeepQoEError("not a deepqoe model directory (no model.json)", file=str(p))
    raise DeepQoEError(f"no such model directory, and no shipped model of that name"
                       f"{' (shipped: ' + ', '.join(names) + ')' if names else ''}", file=str(p))


def read_model_meta(model_dir: str | Path) -> dict:
    d = resolve_model_dir(model_dir)
    try:
        return json.loads((d / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DeepQoEError(f"cannot read model.json: {e}", file=str(d / "model.json")) from None


def load_model(model_dir: str | Path):
    """Load a model directory (or a shipped model's name) into a fitted estimator."""
    from deepqoe import estimators

    d = resolve_model_dir(model_dir)
    meta = read_model_meta(d)
    if meta.get("format_version") != FORMAT_VERSION:
        raise DeepQoEError(f"model format {meta.get('format_version')} is not supported "
                           f"(this deepqoe reads format {FORMAT_VERSION})", file=str(d / "model.json"))
    cls = {"DeepQoEClassifier": estimators.DeepQoEClassifier,
           "DeepQoERegressor": estimators.DeepQoERegressor}.get(meta["estimator"])
    if cls is None:
        raise DeepQoEError(f"unknown estimator {meta['estimator']!r}", file=str(d / "model.json"))
    params = dict(meta["params"])
    if cls is estimators.DeepQoERegressor:
        params.pop("classes", None)
    est = cls(**params)
    est.input_configs_ = [InputConfig.model_validate(c) for c in meta["inputs"]]
    est.encoders_ = [build_encoder(c).load_state(s) for c, s in zip(est.input_configs_, meta["encoders"])]
    est.feature_names_in_ = np.asarray(sorted({col for e in est.encoders_ for col in e.columns}), dtype=object)
    est.n_features_in_ = len(est.feature_names_in_)
    if meta["task"] == "classification":
        est.classes_ = np.asarray(meta["classes"])
    else:
        est.y_mean_, est.y_std_ = float(meta["target"]["mean"]), float(meta["target"]["std"])
    from deepqoe.model import DeepQoENet  # noqa: F401  (built through the estimator)
    from deepqoe.config import ModelConfig

    est.network_ = est._build_network(est.input_configs_, ModelConfig(hidden_layers=list(params["hidden_layers"]),
                                                                      dropout=params["dropout"]))
    try:
        state = load_file(str(d / "model.safetensors"))
    except Exception as e:  # noqa: BLE001 - safetensors raises several kinds
        raise DeepQoEError(f"cannot read the weights: {e}", file=str(d / "model.safetensors")) from None
    missing = est.network_.load_state_dict(state, strict=False)
    if missing.missing_keys or missing.unexpected_keys:
        raise DeepQoEError(f"weights do not match the model description (missing {missing.missing_keys[:3]}, "
                           f"unexpected {missing.unexpected_keys[:3]})", file=str(d / "model.safetensors"))
    est.network_.eval()
    est.model_dir_ = str(d)
    est.meta_ = meta
    torch.set_grad_enabled(True)
    return est
