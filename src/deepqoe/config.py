"""Typed, validated configs: a dataset (what the columns are), a model and a training recipe.

A YAML file holds up to four sections::

    dataset:   {name, source, reader, task, target, classes, group, id, inputs: [...]}
    model:     {hidden_layers, dropout}
    training:  {optimizer, learning_rate, batch_size, max_epochs, patience, seed, ...}
    evaluation:{n_splits, test_size, baselines}

A sessions config (``deepqoe train`` of the streaming session model, :class:`SessionsExperimentConfig`)
has ``sessions: {name, datasets, continuous, quality_mapping}`` instead of ``dataset``, and ``model``,
``training`` and ``evaluation`` sections that override the session recipe.

Every field is validated here, in one place; a typo or a wrong value becomes one
:class:`~deepqoe.errors.DeepQoEError` naming the file and the field (with a "did you mean" hint).
Paths in ``source`` and ``inputs[].file`` may start with ``$DEEPQOE_DATA`` (or use any other environment
variable, ``$NAME`` / ``${NAME}``); other relative paths are resolved against the config file's folder.

Sizes have upper bounds, so a typo is an error here rather than an attempt to allocate terabytes: a layer
width (``hidden_layers``, ``projection``) at most :data:`MAX_WIDTH`, at most :data:`MAX_LAYERS` hidden
layers, ``embedding_dim`` at most :data:`MAX_EMBEDDING_DIM`, ``sequence_length`` at most
:data:`MAX_SEQUENCE_LENGTH`; ``learning_rate`` is a finite number in (0, 10].
"""

from __future__ import annotations

import codecs
import difflib
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from deepqoe.errors import DeepQoEError

Modality = Literal["text", "categorical", "continuous", "vector", "sequence"]
MODALITIES = ("text", "categorical", "continuous", "vector", "sequence")

MAX_WIDTH = 8192              # a hidden layer or an input projection (8192 x 8192 weights = 256 MiB)
MAX_LAYERS = 16               # hidden layers
MAX_EMBEDDING_DIM = 1024      # a categorical input's embedding
MAX_SEQUENCE_LENGTH = 100_000  # steps of a sequence input (more than a day of seconds)
BUILTIN = "builtin"           # sessions.quality_mapping: the mapping that ships with deepqoe
MAX_SEED = 2**32 - 1          # the largest seed every random generator used accepts (numpy, scikit-learn)


def _show(v: Any, limit: int = 40) -> str:
    """A config value as a message prints it: plainly and at most about ``limit`` characters."""
    if isinstance(v, str):
        s = f"'{v}'" if v.isprintable() and "'" not in v else repr(v)
    else:
        s = "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
    return s if len(s) <= limit else s[:limit] + "..."


def _show_list(values: list, n: int = 8) -> str:
    return "[" + ", ".join(_show(v, 20) for v in values[:n]) + (", ...]" if len(values) > n else "]")


def _seed(v: Any) -> Any:
    """A seed: a whole number from 0 to :data:`MAX_SEED` (not a boolean, which YAML's ``true`` would be)."""
    if isinstance(v, bool) or (isinstance(v, int) and not 0 <= v <= MAX_SEED):
        raise ValueError(f"a seed must be a whole number from 0 to {MAX_SEED}, got {_show(v, 24)}")
    return v


Seed = Annotated[int, BeforeValidator(_seed)]


class ConfigFieldError(ValueError):
    """A validator's error about ``field``, a path below the validated model (e.g. ``inputs.2``), so the
    message names that field rather than the model."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_ENV_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def resolve_path(path: str, base_dir: str | None) -> Path:
    """A path from a config: ``$DEEPQOE_DATA/...``, absolute, or relative to the config file's folder; any
    other ``$NAME`` / ``${NAME}`` is the environment variable's value (one that is not set is an error naming
    it, unless a file of that very name exists)."""
    unset = [a or b for a, b in _ENV_VAR.findall(path) if (a or b) != "DEEPQOE_DATA" and (a or b) not in os.environ]
    if unset:
        literal = Path(path).expanduser()
        literal = literal if literal.is_absolute() or not base_dir else Path(base_dir) / literal
        if not literal.exists():
            raise DeepQoEError(f"the path '{path}' uses the environment variable {unset[0]}, which is not set "
                               "(set it, or write the path out)")
    if "$DEEPQOE_DATA" not in path and "${DEEPQOE_DATA}" not in path:
        path = os.path.expandvars(path)
    if "$DEEPQOE_DATA" in path or "${DEEPQOE_DATA}" in path:
        from deepqoe.datasets.catalog import default_data_dir

        if not os.environ.get("DEEPQOE_DATA") and not default_data_dir().is_dir():
            raise DeepQoEError(f"the path '{path}' needs the DEEPQOE_DATA environment variable "
                               "(the folder holding the datasets); it is not set (or run `deepqoe datasets "
                               "fetch --all`)")
        # a relative DEEPQOE_DATA means relative to where the command runs, not to the config file
        data = str(Path(os.environ.get("DEEPQOE_DATA") or default_data_dir()).expanduser().absolute())
        path = path.replace("${DEEPQOE_DATA}", data).replace("$DEEPQOE_DATA", data)
        path = os.path.expandvars(path)
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir:
        p = Path(base_dir) / p
    return p


class ReaderOptions(_Strict):
    """How to read the source table (CSV / TSV / Parquet)."""

    sep: str = ","
    decimal: str = "."
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v):
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown text encoding {_show(v)} (for example utf-8, latin-1, cp1252)") from None
        try:  # rot13, base64, zlib, ... are codecs but not text encodings: a table cannot be read with them
            "".encode(v)
            b"".decode(v)
        except (LookupError, UnicodeError):
            raise ValueError(f"{_show(v)} is not a text encoding (for example utf-8, latin-1, cp1252)") from None
        return v

    @field_validator("sep", "decimal")
    @classmethod
    def _one_character(cls, v, info):
        sep = info.field_name == "sep"
        what = "separator between columns" if sep else "decimal mark"
        if len(v) != 1:
            examples = "',', ';' or '\\t'" if sep else "'.' or ','"
            raise ValueError(f"the {what} must be one character (e.g. {examples}), got "
                             + (repr(v) + " (empty)" if not v else _show(v)))
        if v in ('"', "\n", "\r") or (info.field_name == "decimal" and (v.isalnum() or v.isspace())):
            raise ValueError(f"{_show(v)} cannot be the {what}")
        return v

    @model_validator(mode="after")
    def _distinct(self):
        if self.sep == self.decimal:
            raise ValueError(f"'sep' and 'decimal' are both {self.sep!r}; they must differ")
        return self


class InputConfig(_Strict):
    """One input column and its modality.

    * ``text``: word-embedding lookup (``embedding``: ``glove-6b-50d`` or ``minilm``), words averaged.
    * ``categorical``: vocabulary learned on the training split, learned embedding of
      ``embedding_dim``, plus an unknown bucket. ``role: viewer`` marks who gave the rating: its embedding
      becomes a per-viewer offset of the output, a missing column or value is the unknown viewer (the
      population model), and ``unknown_dropout`` trains that bucket (see :mod:`deepqoe.viewers`).
    * ``continuous``: ``normalisation`` (``minmax`` or ``standard``) fitted on the training split.
      ``columns`` may list several numeric columns that enter together as one vector input.
    * ``vector``: pre-computed feature vectors, either ``columns`` of the table, or read from ``file``
      (CSV/Parquet with ``file_id_column`` + feature columns, or a ``.mat`` with ``mat_key``) and
      joined on the table's ``column`` (the id; both sides are compared as text, as written, in Unicode
      NFC). An empty feature cell (NaN, inf) is an error unless ``nan_to`` gives the number to read it as.
    * ``sequence``: a per-second series (list of floats / per-step vectors) through a temporal encoder.

    ``projection`` is the width of the input's projection g_i; ``0`` removes the input from the model
    (to see which factors matter) and ``null`` feeds the encoder output f_i directly.
    """

    column: str
    modality: Modality
    name: str | None = None
    projection: int | None = Field(default=8, ge=0, le=MAX_WIDTH)
    # text
    embedding: Literal["glove-6b-50d", "minilm"] = "glove-6b-50d"
    # categorical
    embedding_dim: int = Field(default=8, ge=1, le=MAX_EMBEDDING_DIM)
    # categorical: role "viewer" = who gave the rating (a per-viewer offset of the output, deepqoe.viewers);
    # unknown_dropout: while training, each code becomes the unknown code 0 with this probability
    role: Literal["feature", "viewer"] = "feature"
    unknown_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    # continuous
    normalisation: Literal["minmax", "standard", "none"] = "minmax"
    log: bool = False
    # continuous / vector: several columns of the table as one input
    columns: list[str] | None = None
    # vector from a side file
    file: str | None = None
    file_id_column: str | None = None
    mat_key: str | None = None
    # a vector's empty cells (NaN, inf): null (the default) is an error naming the file, column and row; a
    # number fills them with it (one note per input saying how many, at training and at prediction)
    nan_to: float | None = Field(default=None, allow_inf_nan=False)
    # sequence
    sequence_length: int = Field(default=64, ge=1, le=MAX_SEQUENCE_LENGTH)
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
        if self.modality != "categorical" and (self.role != "feature" or self.unknown_dropout):
            raise ValueError(f"'role' and 'unknown_dropout' are for categorical inputs, not {self.modality}")
        return self


def _require_unique(names: list[str], what: str) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{what} names must be unique; repeated: {dup} (set 'name' to tell them apart)")


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
    # regression: a column holding each row's individual ratings ("[4 5 3]", "4;5;3") on ``rating_scale``
    # (required with it, e.g. "1-5", "0-100"): ``deepqoe train`` fits a rating-distribution head (SOS, %GoB,
    # %PoW with each prediction; deepqoe.distribution)
    individual: str | None = None
    rating_scale: str | None = None
    inputs: list[InputConfig]
    base_dir: str | None = Field(default=None, exclude=True)

    @field_validator("source")
    @classmethod
    def _some_source(cls, v):
        srcs = [v] if isinstance(v, str) else v
        if not srcs:
            raise ValueError("'source' needs at least one table file")
        if any(not s.strip() for s in srcs):
            raise ValueError("a source is an empty path")
        return v

    @field_validator("classes")
    @classmethod
    def _class_labels(cls, v):
        """Numbers or text labels, not both (a label must mean one thing), each once; ints and floats
        together become floats (one type, as the labels of predictions)."""
        if v is None:
            return v
        for c in v:
            if isinstance(c, bool) or c is None or not isinstance(c, (str, int, float)):
                raise ValueError(f"a class must be a number or a text label, found {_show(c)} "
                                 "(quote it to make it a label, e.g. 'yes')")
            if isinstance(c, float) and not math.isfinite(c):
                raise ValueError(f"a class must be a finite number or a text label, found {c}")
        if len({isinstance(c, str) for c in v}) > 1:
            raise ValueError(f"the classes mix numbers and text labels: {_show_list(v)}; write them all as "
                             "numbers or all as text")
        if len({type(c) for c in v}) > 1:  # ints and floats
            v = [float(c) for c in v]
        return v

    @field_validator("target_bins", mode="before")
    @classmethod
    def _bins_are_numbers(cls, v):
        if isinstance(v, list) and any(isinstance(b, bool) for b in v):
            raise ValueError("'target_bins' are numbers (the thresholds between classes), found a boolean")
        return v

    @field_validator("aggregate_by")
    @classmethod
    def _aggregate_keys(cls, v):
        if v is not None:
            if any(not c for c in v):
                raise ValueError("an empty column name")
            dup = next((c for i, c in enumerate(v) if c in v[:i]), None)
            if dup is not None:
                raise ValueError(f"the column '{dup}' is listed twice; list each column once")
        return v

    @field_validator("inputs")
    @classmethod
    def _unique_inputs(cls, inputs):
        if not inputs:
            raise ValueError("at least one input is needed")
        _require_unique([i.key for i in inputs], "input")
        if sum(i.role == "viewer" for i in inputs) > 1:
            raise ValueError("at most one input can have role 'viewer'")
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
        self._check_individual()
        return self

    def check_trainable(self) -> None:
        """What training from this dataset needs beyond a readable description (checked for a config file,
        not for the dataset section of a model file, which only says how to read inputs): at least 2 distinct
        classes, finite increasing ``target_bins``, the target not among the inputs, ``aggregate_by`` without
        the target and, with classification, with ``target_bins`` (a mean of ratings is not a class). A problem
        raises :class:`ConfigFieldError` naming the field below ``dataset``."""
        if self.classes is not None:
            if len(self.classes) < 2:
                raise ConfigFieldError("classes", f"a classification needs at least 2 classes, got "
                                                  f"{len(self.classes)}")
            seen: list = []
            for c in self.classes:
                if c in seen:  # 1 and 1.0 alike
                    raise ConfigFieldError("classes", f"the class {_show(c)} is listed twice; list each class once")
                seen.append(c)
        if self.target_bins is not None:
            v = self.target_bins
            if not all(math.isfinite(b) for b in v):
                raise ConfigFieldError("target_bins", f"'target_bins' must be finite numbers, got {_show_list(v)}")
            if any(b >= a for b, a in zip(v, v[1:])):
                raise ConfigFieldError("target_bins", f"'target_bins' must be strictly increasing (the thresholds "
                                                      f"between classes, lowest first), got {_show_list(v)}")
        for k, inp in enumerate(self.inputs):
            used = [inp.column] if inp.file is not None else (inp.columns or [inp.column])
            if self.target in used:
                raise ConfigFieldError(f"inputs.{k}", f"the target column '{self.target}' is also an input: the "
                                                      "model would be given the answer; remove it from 'inputs'")
        if self.aggregate_by and self.target in self.aggregate_by:
            raise ConfigFieldError("aggregate_by", f"lists the target column '{self.target}': the ratings are "
                                                   "averaged per condition, so list the columns that define a "
                                                   "condition, not the target")
        if self.aggregate_by and self.task == "classification" and self.target_bins is None:
            raise ConfigFieldError("aggregate_by", "averaging the ratings of each condition gives mean scores, "
                                                   "not classes: use task 'regression', or 'target_bins' to cut "
                                                   "the mean score into the classes")

    def leakage_notes(self) -> list[tuple[str, str]]:
        """``(field below dataset, message)`` for each input that reads the ``group`` or the ``id`` column
        (beside :meth:`check_trainable`'s refusal of the target as an input: these are allowed, but rarely
        meant): a group as an input lets the model learn each group's own level, which a group-disjoint test
        (or a new group) does not have, and flatters a random-rows test; an id names a row and says nothing
        about quality. A vector input joined on the column (``file``) only reads it as the join key, and an
        input with projection 0 is not used: neither is named."""
        notes = []
        for k, inp in enumerate(self.inputs):
            if inp.file is not None or inp.projection == 0:
                continue
            used = inp.columns or [inp.column]
            if self.group is not None and self.group in used:
                notes.append((f"inputs.{k}", f"the group column '{self.group}' is also an input: the model can "
                                             f"learn each {self.group}'s own score, which a new {self.group} does "
                                             f"not have (a test on {self.group} values trained on flatters it); "
                                             "remove it from 'inputs' unless every row to predict comes from a "
                                             f"{self.group} trained on"))
            if self.id is not None and self.id in used and self.id != self.group:
                notes.append((f"inputs.{k}", f"the id column '{self.id}' is also an input: an id names a row and "
                                             "says nothing about its quality, so the model can only memorise the "
                                             "training rows by it; remove it from 'inputs'"))
        return notes

    def _check_individual(self) -> None:
        if self.individual is None:
            if self.rating_scale is not None:
                raise ValueError("'rating_scale' is the scale of the 'individual' ratings column; set 'individual'")
            return
        if self.task != "regression":
            raise ValueError("'individual' (a column of individual ratings) is only for task 'regression'")
        if self.rating_scale is None:
            raise ValueError("'individual' needs 'rating_scale', the scale of those ratings (e.g. '1-5', '0-100')")
        if self.aggregate_by:
            raise ValueError("'individual' cannot be combined with 'aggregate_by' (give one row per condition)")

    @field_validator("rating_scale")
    @classmethod
    def _rating_scale(cls, v):
        from deepqoe.distribution import RatingScale

        try:
            return v if v is None else RatingScale(v).name
        except DeepQoEError as e:
            raise ValueError(e.message) from None

    def resolve(self, path: str) -> Path:
        """Resolve a path from the config: ``$DEEPQOE_DATA/...`` or relative to the config file."""
        return resolve_path(path, self.base_dir)

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
        if len(v) > MAX_LAYERS or any(h > MAX_WIDTH for h in v):
            raise ValueError(f"hidden_layers allows at most {MAX_LAYERS} layers of at most {MAX_WIDTH} units "
                             f"each, got {v if len(v) <= 4 else str(v[:4])[:-1] + ', ...]'}")
        return v


class TrainingConfig(_Strict):
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(default=1e-3, gt=0, le=10, allow_inf_nan=False)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0, allow_inf_nan=False)
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
    n_threads: int = Field(default=1, ge=1, le=1024)
    seed: Seed = 0
    progress: bool = False
    # where training and prediction run: cpu (default), cuda / cuda:N (a GPU), auto (cuda when present);
    # the name is checked here, the GPU when the network is moved (deepqoe.devices.resolve_device)
    device: str = "cpu"

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, v):
        from deepqoe.devices import check_device_name

        try:
            return check_device_name(v)
        except DeepQoEError as e:
            raise ValueError(e.message) from None



#: the baselines ``evaluate`` can run beside DeepQoE (built by :func:`deepqoe.shallow.baseline_pipeline`; which
#: fit a task: :func:`deepqoe.workflow.baselines_for_task`): one list for the config, the CLI and the messages
Baseline = Literal["majority", "mean", "random_forest", "lightgbm", "svm", "linear", "decision_tree", "adaboost",
                   "naive_bayes"]

class EvaluationConfig(_Strict):
    n_splits: int = Field(default=10, ge=2)
    test_size: float = Field(default=0.1, gt=0, lt=1)
    seed: Seed = 0
    # regression, ``deepqoe train``: this share of the training rows (group-disjoint when the dataset has a
    # group) is held out to calibrate prediction intervals (deepqoe.conformal); 0: no intervals. Here, not in
    # ``training``, because every training field is an estimator parameter.
    calibration_fraction: float = Field(default=0.2, ge=0.0, le=0.5)
    baselines: list[Baseline] = Field(default_factory=lambda: ["majority", "random_forest"])


class ExperimentConfig(_Strict):
    """The whole YAML file."""

    dataset: DatasetConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    path: str | None = Field(default=None, exclude=True)

    @field_validator("dataset")
    @classmethod
    def _trainable(cls, v):
        v.check_trainable()
        return v


# ---- sessions configs: ``deepqoe train`` of the streaming session model ----------------------------------
def _registered(name: str, kind: str) -> str:
    from deepqoe.datasets.registry import dataset_names, get_dataset

    if get_dataset(name).kind != kind:  # an unknown name raises, listing the known ones
        raise ValueError(f"'{name}' is a {get_dataset(name).kind} dataset, not a {kind} one; {kind} datasets: "
                         f"{', '.join(dataset_names(kind))}")
    return name


class SessionSource(_Strict):
    """Rated sessions: a registered ``dataset`` (by name), or a ``path`` to a session JSON / CSV / P.1203
    JSON file, a folder of those or a folder in the Waterloo SQoE layout, whose sessions carry ``mos`` (on their ``mos_scale``, or on ``scale``,
    which overrides it). In YAML a bare string is a registered dataset's name."""

    dataset: str | None = None
    path: str | None = None
    name: str | None = None      # label in metrics.json (a path's default: its file or folder name)
    scale: str | None = None     # e.g. "1-5", "0-100", "z" (z: through these scores' own mean and SD)

    @field_validator("dataset")
    @classmethod
    def _known(cls, v):
        return v if v is None else _registered(v, "sessions")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v):
        from deepqoe.sessions.scales import parse_scale

        return v if v is None else parse_scale(v).name

    @model_validator(mode="after")
    def _one_source(self):
        if (self.dataset is None) == (self.path is None):
            raise ValueError("give either 'dataset' (a registered name) or 'path' (a file or folder of sessions)")
        if self.dataset is not None and (self.scale is not None or self.name is not None):
            raise ValueError("'scale' and 'name' are for 'path' entries; a registered dataset has both")
        return self

    @property
    def label(self) -> str:
        return self.dataset or self.name or Path(self.path).name


def _as_entry(e: Any) -> Any:
    """A ``sessions.datasets`` entry as YAML may write it: a bare string is a registered dataset's name."""
    return {"dataset": e} if isinstance(e, str) else e


class SessionsDataConfig(_Strict):
    """What the session model learns from (see :mod:`deepqoe.sessions.training`)."""

    name: str | None = None                  # the model's name (default: the output folder's name)
    datasets: list[SessionSource]            # session scores
    continuous: list[str] = Field(default_factory=list)   # registered per-second (continuous-time) ratings
    # "builtin" (the shipped mapping), a registered sessions dataset or a path: chunks with VMAF + bitrate
    quality_mapping: str = BUILTIN

    @field_validator("datasets", mode="before")
    @classmethod
    def _names_to_entries(cls, v):
        if isinstance(v, list):
            return [_as_entry(e) for e in v]
        return v

    @field_validator("datasets")
    @classmethod
    def _some(cls, v):
        if not v:
            raise ValueError("at least one dataset with session scores is needed")
        _require_unique([e.label for e in v], "dataset")
        return v

    @field_validator("continuous")
    @classmethod
    def _continuous(cls, v):
        return [_registered(n, "continuous") for n in v]

    @field_validator("quality_mapping")
    @classmethod
    def _mapping(cls, v):
        from deepqoe.datasets.registry import dataset_names

        return _registered(v, "sessions") if v in dataset_names() else v

    @property
    def quality_mapping_path(self) -> str | None:
        """``quality_mapping`` when it is a path (not "builtin", not a registered dataset's name)."""
        from deepqoe.datasets.registry import dataset_names

        return None if self.quality_mapping in (BUILTIN, *dataset_names()) else self.quality_mapping


#: how the streaming model's impairments lower the score (deepqoe.sessions.qoe_model.SessionQoENet; its
#: ``FUSIONS`` are these names): hybrid (inside the sigmoid and as a share above the floor), multiplicative
#: (the share only) or logit (all parts in one FC layer, the form of model files written before the other two)
SessionFusion = Literal["hybrid", "multiplicative", "logit"]
#: how the hybrid fusion prices stalls: ``share`` (a share of the score above the floor only, so a stall costs
#: more in a better session; the recipe's) or ``both`` (also inside the sigmoid, the form of hybrid model files
#: written before the choice)
SessionStallPenalty = Literal["share", "both"]


#: the streaming model's fixed terms and whether 1 is allowed: each lies in (0, 1) or (0, 1]; checked here for
#: configs and by deepqoe.sessions.qoe_model.SessionQoENet for model files
SESSION_TERM_CLOSE = {"stall_guard": ")", "startup_weight": "]"}


def session_term_range(name: str) -> str:
    """The allowed range of the fixed term ``name``, as written in messages: "(0, 1)" or "(0, 1]"."""
    return f"(0, 1{SESSION_TERM_CLOSE[name]}"


def session_term_ok(name: str, value: float) -> bool:
    """Is ``value`` inside :func:`session_term_range` of ``name``?"""
    return 0.0 < value < 1.0 or (value == 1.0 and SESSION_TERM_CLOSE[name] == "]")


class SessionModelOverrides(_Strict):
    """Overrides of the recipe's network (``deepqoe.sessions.training.RECIPE``); unset = the recipe's."""

    width: int | None = Field(default=None, ge=1, le=64)
    hidden: int | None = Field(default=None, ge=1, le=256)
    n_members: int | None = Field(default=None, ge=1, le=100)
    device_offsets: bool | None = None
    #: learn an offset of z for sessions whose quality comes from the mapping, not a metric (recipe: true; it is
    #: identified only where one training dataset has sessions both with and without a quality metric)
    mapped_offset: bool | None = None
    fusion: SessionFusion | None = None   # SessionFusion above
    stall_penalty: SessionStallPenalty | None = None   # SessionStallPenalty above
    #: the rebuffering guard: the stall share of the wall time beyond which rebuffering takes at least its
    #: share of the score (recipe: deepqoe.sessions.qoe_model.STALL_GUARD, 0.3); false turns it off
    stall_guard: float | Literal[False] | None = None
    #: what the wait before playback costs against stalling (recipe: STARTUP_WEIGHT, 1/3, ITU-T P.1203.3's
    #: weight of initial loading); false turns it off
    startup_weight: float | Literal[False] | None = None
    #: a stall's momentary dip on the per-second curve and the score (recipe: true; deepqoe.sessions.qoe_model's
    #: module docstring, 6.); false is the form of model files written before it
    stall_dip: bool | None = Field(default=None, strict=True)

    @field_validator("stall_guard", "startup_weight", mode="before")
    @classmethod
    def _share(cls, v, info):
        if v is None or v is False:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("must be a number or false")
        if not session_term_ok(info.field_name, float(v)):
            raise ValueError(f"must be in {session_term_range(info.field_name)}")
        return float(v)

    @model_validator(mode="after")
    def _stall_penalty_needs_hybrid(self):
        if self.stall_penalty == "both" and self.fusion not in (None, "hybrid"):
            raise ValueError(f"stall_penalty 'both' is a choice of the hybrid fusion, not of {self.fusion!r}")
        if self.stall_dip and self.fusion == "logit":
            raise ValueError("stall_dip is a choice of the hybrid and multiplicative fusions, not of 'logit'")
        return self


class SessionTrainingOverrides(_Strict):
    """Overrides of the recipe's training (``RECIPE``); unset = the recipe's."""

    epochs: int | None = Field(default=None, ge=1, le=100_000)
    learning_rate: float | None = Field(default=None, gt=0, le=10, allow_inf_nan=False)
    curve_weight: float | None = Field(default=None, ge=0, le=1e6, allow_inf_nan=False)
    weight_decay: float | None = Field(default=None, ge=0, le=1e6, allow_inf_nan=False)
    seed: Seed = 0


class SessionEvaluationConfig(_Strict):
    """The score written to metrics.json: content-disjoint k-fold over all datasets together (sessions of
    the same content, in any dataset, share a fold), out-of-fold scores per dataset; ``none`` skips it."""

    protocol: Literal["group-kfold", "none"] = "group-kfold"
    n_splits: int = Field(default=5, ge=2, le=100)
    seed: Seed = 0


class SessionDistributionConfig(_Strict):
    """Rating-distribution heads (:mod:`deepqoe.distribution`): fitted on the individual ratings of these
    session datasets (each must have them, e.g. waterloo-sqoe-iv, p1203-open); ``default`` is the one the
    model serves (SOS, %GoB, %PoW, quantiles with each score; default: the first)."""

    datasets: list[str] = Field(min_length=1)
    default: str | None = None


class SessionsExperimentConfig(_Strict):
    """A sessions config (top-level ``sessions:``), for ``deepqoe train``."""

    sessions: SessionsDataConfig
    model: SessionModelOverrides = SessionModelOverrides()
    training: SessionTrainingOverrides = SessionTrainingOverrides()
    evaluation: SessionEvaluationConfig = SessionEvaluationConfig()
    distribution: SessionDistributionConfig | None = None
    path: str | None = Field(default=None, exclude=True)
    base_dir: str | None = Field(default=None, exclude=True)

    def model_params(self) -> dict:
        """The estimator parameters that differ from the recipe (``random_state`` from training.seed)."""
        over = {**self.model.model_dump(exclude_none=True),
                **self.training.model_dump(exclude_none=True, exclude={"seed"})}
        over = {k: None if v is False and k in SESSION_TERM_CLOSE else v for k, v in over.items()}  # false: off
        return {**over, "random_state": self.training.seed}


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
    elif isinstance((e.get("ctx") or {}).get("error"), ConfigFieldError):
        sub = e["ctx"]["error"]
        field, msg = f"{field}.{sub.field}" if loc else sub.field, str(sub)
    else:
        msg = msg.removeprefix("Value error, ")
    extra = f" ({len(err.errors()) - 1} more problem(s) after this one)" if len(err.errors()) > 1 else ""
    return DeepQoEError(msg + extra, file=file, field=field)


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read and validate a YAML config file."""
    p, raw = _read_yaml(path)
    if _is_sessions(raw):
        raise DeepQoEError("a sessions config (top-level 'sessions:') is read by 'deepqoe train' only",
                           file=str(p))
    return _experiment_config(p, raw)


def load_train_config(path: str | os.PathLike) -> "ExperimentConfig | SessionsExperimentConfig":
    """A config for ``deepqoe train``: a sessions config (top-level ``sessions:``) or a dataset config."""
    p, raw = _read_yaml(path)
    return _sessions_config(p, raw) if _is_sessions(raw) else _experiment_config(p, raw)


def load_sessions_config(path: str | os.PathLike) -> SessionsExperimentConfig:
    """Read and validate a sessions config; every path in it must exist (relative to the config's folder).
    Several bad entries are one error naming each (:func:`entries_error`)."""
    return _sessions_config(*_read_yaml(path))


def _sessions_config(p: Path, raw: dict) -> SessionsExperimentConfig:
    """A validated sessions config whose paths exist. Several bad entries (:func:`_bad_entries`) are one error
    naming each (:func:`entries_error`); a single problem is said as the schema or path check says it."""
    base_dir = str(p.resolve().parent)
    bad = _bad_entries(raw, base_dir)
    if len(bad) > 1:
        raise entries_error(bad, str(p))
    try:
        cfg = SessionsExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise format_validation_error(e, SessionsExperimentConfig, str(p)) from None
    cfg.path, cfg.base_dir = str(p), base_dir
    paths = {f"sessions.datasets.{i}.path": src.path for i, src in enumerate(cfg.sessions.datasets) if src.path}
    if cfg.sessions.quality_mapping_path is not None:
        paths["sessions.quality_mapping"] = cfg.sessions.quality_mapping_path
    for field, path in paths.items():
        hint = " (neither a registered sessions dataset nor a path)" if field.endswith("mapping") else ""
        missing = _no_such_path(path, cfg.base_dir, hint)
        if missing is not None:
            raise DeepQoEError(missing, file=str(p), field=field)
    return cfg


def _no_such_path(path: str, base_dir: str | None, hint: str = "") -> str | None:
    """The message for a config's ``path`` (relative to ``base_dir``) that does not exist; None where it does."""
    return None if resolve_path(path, base_dir).exists() else f"no such file or folder: {path}{hint}"


def entries_error(bad: list[tuple[str, DeepQoEError]], file: str | None) -> DeepQoEError:
    """One error for the entries of a sessions config that cannot be read, ``(where, error)`` in the config's
    order (``where``: ``sessions.datasets.N 'label'``): one entry's error as it is; several, each numbered with
    its place and its own error, as the config's (``file``) field ``sessions``."""
    if len(bad) == 1:
        return bad[0][1]
    each = "; ".join(f"({i}) {where}: {e}" for i, (where, e) in enumerate(bad, 1))
    return DeepQoEError(f"{len(bad)} entries cannot be read: {each}", file=file, field="sessions")


def _bad_entries(raw: dict, base_dir: str) -> list[tuple[str, DeepQoEError]]:
    """Each entry of a sessions config (``raw``, as read) that the config check refuses, in the config's order
    (``sessions.datasets``, then ``sessions.continuous``), as ``(where, error)`` for :func:`entries_error`; the
    error names the entry's field (``dataset``, ``path``, ``scale``): a name that is not registered (with its
    "did you mean") or of another kind, a path that does not exist (relative to ``base_dir``), a bad scale,
    an unknown field. The sections themselves (not a mapping, not a list) are left to the schema check."""
    from pydantic import TypeAdapter

    sc = raw.get("sessions") if isinstance(raw, dict) else None
    if not isinstance(sc, dict):
        return []
    datasets, continuous = sc.get("datasets"), sc.get("continuous")
    bad = []
    for k, entry in enumerate(datasets if isinstance(datasets, list) else []):
        entry = _as_entry(entry)
        label = _entry_label(entry)
        where = f"sessions.datasets.{k}" + ("" if label is None else f" '{label}'")
        try:
            src = SessionSource.model_validate(entry)
            missing = None if src.path is None else _no_such_path(src.path, base_dir)
        except ValidationError as e:
            bad.append((where, _entry_error(e, SessionSource)))
            continue
        except DeepQoEError as e:  # the path's environment variable is not set
            missing = e.message
        if missing is not None:
            bad.append((where, DeepQoEError(missing, field="path")))
    for k, name in enumerate(continuous if isinstance(continuous, list) else []):
        try:
            _registered(TypeAdapter(str).validate_python(name), "continuous")
        except ValidationError as e:
            bad.append((f"sessions.continuous.{k}", _entry_error(e, SessionsDataConfig)))
        except ValueError as e:  # not registered (a DeepQoEError, with its "did you mean"), or not continuous
            bad.append((f"sessions.continuous.{k} '{name}'", DeepQoEError(getattr(e, "message", str(e)))))
    return bad


def _entry_error(err: ValidationError, cls) -> DeepQoEError:
    """An entry's schema error (:func:`format_validation_error`, ``cls`` the entry's model) naming the field
    within the entry, or none where the problem is the entry as a whole."""
    first = format_validation_error(err, cls, None)
    return DeepQoEError(first.message, field=first.field if err.errors()[0].get("loc") else None)


def _entry_label(entry: Any) -> str | None:
    """The label of a ``sessions.datasets`` entry as read (:attr:`SessionSource.label`), None where it has none."""
    if not isinstance(entry, dict):
        return None
    known = {k: v for k, v in entry.items() if k in SessionSource.model_fields and isinstance(v, str)}
    try:
        return SessionSource.model_construct(**known).label
    except TypeError:  # neither a dataset, a name nor a path
        return None


def _is_sessions(raw) -> bool:
    return isinstance(raw, dict) and "sessions" in raw and "dataset" not in raw


def _read_yaml(path: str | os.PathLike) -> tuple[Path, Any]:
    p = Path(path)
    if not p.is_file():
        raise DeepQoEError("config file not found", file=str(p))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except RecursionError:
        raise DeepQoEError("not a usable config: the YAML is nested too deeply", file=str(p)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DeepQoEError(f"not valid YAML{where}: {getattr(e, 'problem', e)}", file=str(p)) from None
    except UnicodeDecodeError:
        raise DeepQoEError("not a text (UTF-8) file", file=str(p)) from None
    if not isinstance(raw, dict):
        raise DeepQoEError("the config must be a mapping with a 'dataset' (or 'sessions') section", file=str(p))
    return p, raw


def _experiment_config(p: Path, raw: dict) -> ExperimentConfig:
    if "dataset" not in raw and "inputs" in raw:  # a bare dataset config
        raw = {"dataset": raw}
    return config_from_dict(raw, base_dir=str(p.resolve().parent), file=str(p))


def config_from_dict(raw: dict, base_dir: str | None = None, file: str | None = None) -> ExperimentConfig:
    """A validated config; an input that reads the dataset's group or id column gets a
    :class:`~deepqoe.errors.DeepQoENote` (:meth:`DatasetConfig.leakage_notes`)."""
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise format_validation_error(e, ExperimentConfig, file) from None
    cfg.dataset.base_dir = base_dir
    cfg.path = file
    notes = config_notes(cfg)
    if notes:
        import warnings

        from deepqoe.errors import DeepQoENote

        for note in notes:
            warnings.warn(note, DeepQoENote, stacklevel=2)
    return cfg


def config_notes(cfg) -> list[str]:
    """The notes a config gives when it is loaded, as the user reads them (an input that reads the dataset's
    group or id column: :meth:`DatasetConfig.leakage_notes`); training puts them in ``metrics.json`` too. A
    sessions config gives none."""
    dataset = getattr(cfg, "dataset", None)
    if not isinstance(dataset, DatasetConfig):
        return []
    where = f"file '{cfg.path}', " if cfg.path else ""
    return [f"{where}field 'dataset.{field}': {message}" for field, message in dataset.leakage_notes()]
