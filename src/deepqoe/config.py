"""Typed, validated configs: a dataset (what the columns are), a model and a training recipe.

A YAML file holds up to four sections::

    dataset:   {name, source, reader, task, target, classes, group, id, inputs: [...]}
    model:     {hidden_layers, dropout}
    training:  {optimizer, learning_rate, batch_size, max_epochs, patience, seed, ...}
    evaluation:{n_splits, test_size, baselines}

Every field is validated here, in one place; a typo or a wrong value becomes one
:class:`~deepqoe.errors.DeepQoEError` naming the file and the field (with a "did you mean" hint).
Paths in ``source`` and ``inputs[].file`` may start with ``$DEEPQOE_DATA``; other relative paths are
resolved against the config file's folder.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deepqoe.errors import DeepQoEError

Modality = Literal["text", "categorical", "continuous", "vector", "sequence"]
MODALITIES = ("text", "categorical", "continuous", "vector", "sequence")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ReaderOptions(_Strict):
    """How to read the source table (CSV / TSV / Parquet)."""

    sep: str = ","
    decimal: str = "."
    encoding: str = "utf-8"


class InputConfig(_Strict):
    """One input column and its modality.

    * ``text``: word-embedding lookup (``embedding``: ``glove-6b-50d`` or ``minilm``), words averaged.
    * ``categorical``: vocabulary learned on the training split, learned embedding of
      ``embedding_dim``, plus an unknown bucket.
    * ``continuous``: ``normalisation`` (``minmax`` or ``standard``) fitted on the training split.
      ``columns`` may list several numeric columns that enter together as one vector input.
    * ``vector``: pre-computed feature vectors, either ``columns`` of the table, or read from ``file``
      (CSV/Parquet with ``file_id_column`` + feature columns, or a ``.mat`` with ``mat_key``) and
      joined on the table's ``column`` (the id).
    * ``sequence``: a per-second series (list of floats / per-step vectors) through a temporal encoder.

    ``projection`` is the width of the input's projection g_i; ``0`` removes the input from the model
    (to see which factors matter) and ``null`` feeds the encoder output f_i directly.
    """

    column: str
    modality: Modality
    name: str | None = None
    projection: int | None = Field(default=8, ge=0)
    # text
    embedding: Literal["glove-6b-50d", "minilm"] = "glove-6b-50d"
    # categorical
    embedding_dim: int = Field(default=8, ge=1)
    # continuous
    normalisation: Literal["minmax", "standard", "none"] = "minmax"
    log: bool = False
    # continuous / vector: several columns of the table as one input
    columns: list[str] | None = None
    # vector from a side file
    file: str | None = None
    file_id_column: str | None = None
    mat_key: str | None = None
    nan_to: float | None = 0.0
    # sequence
    sequence_length: int = Field(default=64, ge=1)
    sequence_encoder: Literal["conv", "gru"] = "conv"

    @property
    def key(self) -> str:
        return self.name or self.column

    @model_validator(mode="after")
    def _check_modality_fields(self):
        if self.file is not None and self.modality != "vector":
            raise ValueError(f"'file' is only for vector inputs, not {self.modality}")
        if self.modality == "vector" and self.file is None and not self.columns:
            raise ValueError("a vector input needs 'file' (feature file joined on the id column) "
                             "or 'columns' (feature columns of the table)")
        if self.modality in ("text", "categorical", "sequence") and self.columns:
            raise ValueError(f"'columns' is not used by {self.modality} inputs")
        return self


class DatasetConfig(_Strict):
    """A QoE dataset: where it is, what to predict and what each input column is."""

    name: str
    source: str | list[str]
    reader: ReaderOptions = ReaderOptions()
    task: Literal["classification", "regression"]
    target: str
    classes: list[Any] | None = None
    target_bins: list[float] | None = None
    group: str | None = None
    id: str | None = None
    aggregate_by: list[str] | None = None
    inputs: list[InputConfig]
    base_dir: str | None = Field(default=None, exclude=True)

    @field_validator("inputs")
    @classmethod
    def _unique_inputs(cls, inputs):
        if not inputs:
            raise ValueError("at least one input is needed")
        keys = [i.key for i in inputs]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"input names must be unique; repeated: {dup} (set 'name' to tell them apart)")
        return inputs

    @model_validator(mode="after")
    def _check_task(self):
        if self.task == "classification":
            if not self.classes:
                raise ValueError("a classification dataset needs 'classes' (the list of class labels)")
            if self.target_bins is not None and len(self.target_bins) != len(self.classes) - 1:
                raise ValueError(f"'target_bins' needs {len(self.classes) - 1} thresholds for "
                                 f"{len(self.classes)} classes, got {len(self.target_bins)}")
        else:
            if self.classes is not None or self.target_bins is not None:
                raise ValueError("'classes' and 'target_bins' are only for classification")
        if all(i.projection == 0 for i in self.inputs):
            raise ValueError("every input has projection 0: nothing is left for the model")
        return self

    def resolve(self, path: str) -> Path:
        """Resolve a path from the config: ``$DEEPQOE_DATA/...`` or relative to the config file."""
        if "$DEEPQOE_DATA" in path or "${DEEPQOE_DATA}" in path:
            if not os.environ.get("DEEPQOE_DATA"):
                raise DeepQoEError(f"the path '{path}' needs the DEEPQOE_DATA environment variable "
                                   "(the folder holding the datasets); it is not set")
            # a relative DEEPQOE_DATA means relative to where the command runs, not to the config file
            data = str(Path(os.environ["DEEPQOE_DATA"]).expanduser().absolute())
            path = path.replace("${DEEPQOE_DATA}", data).replace("$DEEPQOE_DATA", data)
            path = os.path.expandvars(path)
        p = Path(path).expanduser()
        if not p.is_absolute() and self.base_dir:
            p = Path(self.base_dir) / p
        return p

    @property
    def sources(self) -> list[Path]:
        srcs = [self.source] if isinstance(self.source, str) else self.source
        return [self.resolve(s) for s in srcs]

    @property
    def active_inputs(self) -> list[InputConfig]:
        return [i for i in self.inputs if i.projection != 0]


class ModelConfig(_Strict):
    """Phase 2 and 3: the fusion network. Defaults reproduce the paper's small-dataset network."""

    hidden_layers: list[int] = Field(default_factory=lambda: [512, 256])
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)

    @field_validator("hidden_layers")
    @classmethod
    def _positive(cls, v):
        if not v or any(h <= 0 for h in v):
            raise ValueError("hidden_layers must be a non-empty list of positive widths")
        return v


class TrainingConfig(_Strict):
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(default=1e-3, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=64, ge=1)
    max_epochs: int = Field(default=200, ge=1)
    patience: int = Field(default=20, ge=1)
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=0.9)
    early_stopping: Literal["loss", "score"] = "loss"
    # "bf16": mixed precision while training (weights, loss and optimiser stay fp32; the layers run in
    # bfloat16). About 2x faster on CPUs with AMX / AVX512-BF16 (bench/bench_train.py); prediction is fp32.
    precision: Literal["fp32", "bf16"] = "fp32"
    # torch intra-op threads while training. 1 by default: on these small networks a busy second core makes
    # multi-threaded kernels stall; on an idle machine with big batches 2+ threads are faster (bench/).
    n_threads: int = Field(default=1, ge=1)
    seed: int = 0
    progress: bool = False


class EvaluationConfig(_Strict):
    n_splits: int = Field(default=10, ge=2)
    test_size: float = Field(default=0.1, gt=0, lt=1)
    seed: int = 0
    baselines: list[Literal["majority", "mean", "random_forest", "lightgbm", "svm", "linear"]] = Field(
        default_factory=lambda: ["majority", "random_forest"])


class ExperimentConfig(_Strict):
    """The whole YAML file."""

    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    path: str | None = Field(default=None, exclude=True)


def _known_fields(model_cls, loc: tuple) -> list[str]:
    """Field names valid at a location (for 'did you mean' hints)."""
    cls = model_cls
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        f = cls.model_fields.get(part)
        if f is None:
            return []
        ann = f.annotation
        args = getattr(ann, "__args__", ()) or ()
        nxt = None
        for cand in (ann, *args):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                nxt = cand
            for sub in getattr(cand, "__args__", ()) or ():
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    nxt = sub
        if nxt is None:
            return []
        cls = nxt
    return list(cls.model_fields)


def format_validation_error(err: ValidationError, root_cls, file: str | None) -> DeepQoEError:
    e = err.errors()[0]
    loc = tuple(e.get("loc", ()))
    field = ".".join(str(p) for p in loc) or "(top level)"
    msg = e.get("msg", "invalid value")
    if e.get("type") == "extra_forbidden" and loc:
        known = _known_fields(root_cls, loc)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        msg = f"unknown field '{loc[-1]}'" + (f" (did you mean '{close[0]}'?)" if close else
                                               f" (known fields: {', '.join(known)})" if known else "")
    elif e.get("type") == "literal_error":
        ctx = e.get("ctx", {})
        msg = f"{e.get('input')!r} is not one of {ctx.get('expected', '')}"
        if loc and loc[-1] == "modality":
            close = difflib.get_close_matches(str(e.get("input")), MODALITIES, n=1)
            msg = f"unknown modality {e.get('input')!r}; use one of {', '.join(MODALITIES)}" + (
                f" (did you mean '{close[0]}'?)" if close else "")
    else:
        msg = msg.removeprefix("Value error, ")
    extra = f" ({len(err.errors()) - 1} more problem(s) after this one)" if len(err.errors()) > 1 else ""
    return DeepQoEError(msg + extra, file=file, field=field)


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read and validate a YAML config file."""
    p = Path(path)
    if not p.is_file():
        raise DeepQoEError("config file not found", file=str(p))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DeepQoEError(f"not valid YAML{where}: {getattr(e, 'problem', e)}", file=str(p)) from None
    except UnicodeDecodeError:
        raise DeepQoEError("not a text (UTF-8) file", file=str(p)) from None
    if not isinstance(raw, dict):
        raise DeepQoEError("the config must be a mapping with a 'dataset' section", file=str(p))
    if "dataset" not in raw and "inputs" in raw:  # a bare dataset config
        raw = {"dataset": raw}
    return config_from_dict(raw, base_dir=str(p.resolve().parent), file=str(p))


def config_from_dict(raw: dict, base_dir: str | None = None, file: str | None = None) -> ExperimentConfig:
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise format_validation_error(e, ExperimentConfig, file) from None
    cfg.dataset.base_dir = base_dir
    cfg.path = file
    return cfg
