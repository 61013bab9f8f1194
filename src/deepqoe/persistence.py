"""Model directories: weights in safetensors, everything else in JSON. No pickle anywhere.

    MODEL_DIR/
      model.safetensors   the network's tensors
      model.json          format version, estimator class and parameters, input configs, encoder
                          states (vocabularies, normaliser statistics, word-embedding name), classes or
                          target scaling and range (``target``: mean, std, min, max), the dataset config,
                          package versions, training summary, and
                          ``weights_sha256``: the SHA-256 digest of model.safetensors
      metrics.json        (written by ``deepqoe train``) the training summary

A directory is written to a temporary sibling and renamed into place, so a crash leaves no half-written
model. Loading rebuilds the estimator and gives exactly the outputs of the model that was saved.

Loading checks, for every model type: the description (each field, one DeepQoEError naming it), the
tensors (names, shapes, dtypes, finite values), and the digest of model.safetensors against
``weights_sha256`` (:func:`verify_weights`; a directory written before digests existed has none and is
loaded without this check).

``model.json``'s ``estimator`` field is a key of a fixed registry of model types
(:func:`register_model_type`), never a name that is imported; a missing or damaged field, or weights
that do not fit the description, is one DeepQoEError naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from functools import partial
from importlib import metadata
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from deepqoe import __version__
from deepqoe.errors import DeepQoEError
from deepqoe.estimators import DeepQoEClassifier, DeepQoERegressor
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


# ---- the weights file and its digest ---------------------------------------------------------------------
WEIGHTS_FILE = "model.safetensors"
DIGEST_FIELD = "weights_sha256"


def weights_digest(path: str | Path) -> str:
    """The SHA-256 digest (hex) of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_weights(model_dir: str | Path, meta: dict) -> None:
    """Check ``model_dir/model.safetensors`` against the digest that ``meta`` (its model.json) stores; a
    directory written before digests existed (no ``weights_sha256``) passes unchecked."""
    want = meta.get(DIGEST_FIELD)
    if want is None:
        return
    model_dir = Path(model_dir)
    if not isinstance(want, str) or len(want) != 64:
        raise DeepQoEError("must be the 64-hex-digit SHA-256 digest of model.safetensors",
                           file=str(model_dir / "model.json"), field=DIGEST_FIELD)
    path = model_dir / WEIGHTS_FILE
    try:
        got = weights_digest(path)
    except OSError as e:
        raise DeepQoEError(f"cannot read the weights: {e.strerror or e}", file=str(path)) from None
    if got != want.lower():
        raise DeepQoEError(f"the file's SHA-256 digest does not match model.json's {DIGEST_FIELD} (the weights "
                           "were changed or damaged after saving)", file=str(path))


def write_model_files(folder: str | Path, meta: dict, tensors: dict[str, torch.Tensor],
                      files: dict[str, dict] | None = None) -> None:
    """Write ``tensors`` to ``folder/model.safetensors`` and ``meta`` plus the weights' digest to
    ``folder/model.json`` (and each of ``files``, name -> JSON object, next to them). ``folder`` is the
    temporary folder of an :func:`~deepqoe.io.atomic_directory`: every model type saves through this."""
    folder = Path(folder)
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "deepqoe", "version": str(FORMAT_VERSION)})
    meta = {**meta, DIGEST_FIELD: weights_digest(folder / WEIGHTS_FILE)}
    (folder / "model.json").write_text(to_json(meta) + "\n", encoding="utf-8")
    for name, obj in (files or {}).items():
        (folder / name).write_text(to_json(obj) + "\n", encoding="utf-8")


def save_model(est, out_dir: str | Path, dataset_config: dict | None = None, extra: dict | None = None,
               metrics: dict | None = None, files: dict[str, dict] | None = None) -> Path:
    """Save a fitted DeepQoE estimator to ``out_dir`` (replacing it atomically); ``metrics`` (if given) is
    written to ``out_dir/metrics.json`` and each of ``files`` (name -> JSON object, e.g. ``intervals.json``)
    beside it, in the same atomic step."""
    state, weights = est.get_state()
    meta = {"format_version": FORMAT_VERSION, **state, "dataset": dataset_config, "versions": _versions(),
            **(extra or {})}
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        write_model_files(tmp, meta, weights, {**({"metrics.json": metrics} if metrics is not None else {}),
                                               **(files or {})})
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
    """The JSON object in ``model.json`` (not yet checked beyond being an object with a format version)."""
    d = resolve_model_dir(model_dir)
    path = d / "model.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise DeepQoEError(f"cannot read model.json: {reason}", file=str(path)) from None
    if not isinstance(meta, dict):
        raise DeepQoEError(f"model.json must hold a JSON object, not a {type(meta).__name__}", file=str(path))
    if meta.get("format_version") != FORMAT_VERSION:
        raise DeepQoEError(f"model format {meta.get('format_version')!r} is not supported "
                           f"(this deepqoe reads format {FORMAT_VERSION})", file=str(path), field="format_version")
    return meta


# ---- model types: model.json's "estimator" field selects a loader from this registry, never an import path
ModelLoader = Callable[[Path, dict], object]
_MODEL_TYPES: dict[str, ModelLoader] = {}


def register_model_type(key: str, loader: ModelLoader) -> None:
    """Let ``load_model`` read model directories whose model.json says ``"estimator": key``.

    ``loader(model_dir, meta)`` returns the model; it raises DeepQoEError for a bad directory."""
    _MODEL_TYPES[key] = loader


def read_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``model_dir/model.safetensors``."""
    path = model_dir / WEIGHTS_FILE
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several kinds
        raise DeepQoEError(f"cannot read the weights: {e}", file=str(path)) from None


def _load_network_estimator(cls, model_dir: Path, meta: dict):
    try:
        return cls.from_state(meta, read_weights(model_dir))
    except DeepQoEError as e:
        if e.file is not None:
            raise
        if e.field == "weights":
            raise DeepQoEError(e.message, file=str(model_dir / WEIGHTS_FILE)) from None
        raise DeepQoEError(e.message, file=str(model_dir / "model.json"), field=e.field) from None


register_model_type("DeepQoEClassifier", partial(_load_network_estimator, DeepQoEClassifier))
register_model_type("DeepQoERegressor", partial(_load_network_estimator, DeepQoERegressor))


def _load_session_qoe_model(model_dir: Path, meta: dict):
    from deepqoe.sessions.qoe_model import SessionQoEModel

    return SessionQoEModel.load(model_dir, meta)


register_model_type("SessionQoEModel", _load_session_qoe_model)


def load_model(model_dir: str | Path):
    """Load a model directory (or a shipped model's name); the model gets ``meta_`` (model.json) and
    ``model_dir_``. The weights' digest is verified for every model type (:func:`verify_weights`), after
    the loader's own checks, so that a damaged tensor is named when it can be."""
    d = resolve_model_dir(model_dir)
    meta = read_model_meta(d)
    key = meta.get("estimator")
    loader = _MODEL_TYPES.get(key) if isinstance(key, str) else None
    if loader is None:
        what = "no model type given" if key is None else f"unknown model type {key!r}"
        raise DeepQoEError(f"{what} (known: {', '.join(sorted(_MODEL_TYPES))})", file=str(d / "model.json"),
                           field="estimator")
    model = loader(d, meta)
    verify_weights(d, meta)
    model.meta_ = meta
    model.model_dir_ = str(d)
    return model
