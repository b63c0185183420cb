"""`byom.toml`: what a model package says about itself (all of it optional).

At the package root, beside the artifact files::

    flavor = "xgboost"            # else picked from the files, as without a manifest

    [input]                       # the columns of a request row, in order ...
    columns = ["id", "Time", "V1", "V2", "Amount", "Class"]
    drop = ["id", "Class"]        # ... and those the model does not take (ids, labels)
    # or, without names: feature_count = 30

    [output]
    columns = ["probability", "label"]   # each of "probability", "label"; default probability
    threshold = 0.5               # binary models: label = probability >= threshold
    classes = ["legit", "fraud"]  # label names: 2 for a binary model, else one per class

    [batch]
    max_rows = 10000              # rows per request; more are refused with 413
    max_bytes = 2097152           # request bytes a caller should send, at most 6 MiB

    [processing]                  # defaults for jobs on this model (docs/real-files.md)
    input_filter = "$[1:-1]"      # as the upload metadata byom-input-filter ...
    join_source = "Input"         # ... byom-join-source, byom-output-filter, byom-accept,
    output_filter = "$[0,-1]"     # byom-metadata, byom-output-key
    [image]                       # a vision model (detector, classifier): model/image_spec.py

Keys: `version` (1), `flavor`, and the tables `input` (`columns`, `feature_count`,
`drop`), `output` (`columns`, `threshold`, `classes`), `batch` (`max_rows`,
`max_bytes`) and `processing` (`input_filter`, `output_filter`, `join_source`,
`accept`, `metadata`, `output_key`). Anything else is refused, naming the key and what is allowed: a
misspelt key must not be silently ignored. With `drop`, a request row has every
column of `input.columns` and the model sees the others; `feature_count`, when
given with `columns`, must be the number the model takes.

A binary model's prediction is one probability per row; a multi-class model's one
per class, its label the most probable class. With class names the label is text:
ask for CSV or JSON answers (`.npy` carries numbers only).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from model.flavors.base import BadRequest, Model, ModelLoadError, check_rows
from model.image_spec import ImageSpec

# A model's [processing] table is the card's defaults, checked by the one model of
# upload options (shared/options.py), so a default and an upload setting mean the same.
from shared.processing import ProcessingDefaults

MANIFEST_FILE = "byom.toml"
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_PAYLOAD = 6 * 1024 * 1024  # SageMaker's request limit

# Column names as CSV headers carry them; class names go into CSV answers unquoted.
ColumnName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^,\"\r\n\x00]+$")]
ClassName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:+\- ]+$")]


class ManifestError(ModelLoadError):
    """The manifest cannot be used; the reason names the key and what is allowed."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSchema(_Table):
    columns: list[ColumnName] | None = Field(default=None, min_length=1)
    feature_count: int | None = Field(default=None, ge=1, le=1_000_000)
    drop: list[ColumnName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> InputSchema:
        if self.columns is not None:
            repeated = sorted({name for name in self.columns if self.columns.count(name) > 1})
            if repeated:
                raise ValueError(f"columns: names appear more than once: {', '.join(repeated)}")
        if self.drop:
            if self.columns is None:
                raise ValueError("drop: needs input.columns, the names it drops from")
            unknown = [name for name in self.drop if name not in self.columns]
            if unknown:
                raise ValueError(f"drop: not among input.columns: {', '.join(unknown)}")
            if len(set(self.drop)) == len(self.columns):
                raise ValueError("drop: drops every column; the model needs at least one")
        kept = self.model_features
        if self.feature_count is not None and kept is not None and kept != self.feature_count:
            raise ValueError(
                f"feature_count: {self.feature_count}, but input.columns less input.drop "
                f"leaves {kept}"
            )
        return self

    @property
    def width(self) -> int | None:
        """Columns of a request row."""
        return len(self.columns) if self.columns is not None else self.feature_count

    @property
    def model_features(self) -> int | None:
        """Columns the model takes."""
        if self.columns is None:
            return self.feature_count
        return len(self.columns) - len(set(self.drop))

    @property
    def kept(self) -> list[int] | None:
        """Positions of the columns the model takes, or None when it takes them all."""
        if self.columns is None or not self.drop:
            return None
        return [i for i, name in enumerate(self.columns) if name not in self.drop]


class OutputSchema(_Table):
    columns: list[Literal["probability", "label"]] = Field(default=["probability"], min_length=1)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    classes: list[ClassName] | None = Field(default=None, min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> OutputSchema:
        if len(set(self.columns)) != len(self.columns):
            raise ValueError("columns: each of 'probability' and 'label' at most once")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError("classes: names appear more than once")
        return self

    @property
    def plain(self) -> bool:
        """The model's predictions go out as they are."""
        return self.columns == ["probability"]


class BatchLimits(_Table):
    max_rows: int | None = Field(default=None, ge=1)
    max_bytes: int | None = Field(default=None, ge=1024, le=MAX_PAYLOAD)


Processing = ProcessingDefaults  # the name manifests' readers have always used


class Manifest(_Table):
    version: Literal[1] = 1
    flavor: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    input: InputSchema = Field(default_factory=InputSchema)
    output: OutputSchema = Field(default_factory=OutputSchema)
    batch: BatchLimits = Field(default_factory=BatchLimits)
    processing: Processing = Field(default_factory=Processing)
    image: ImageSpec | None = None  # a vision model: model/image_spec.py


def read_manifest(model_dir: Path) -> Manifest | None:
    """The manifest at the root of `model_dir`, or None when there is none.

    Raises `ManifestError` naming the key and what is allowed.
    """
    path = Path(model_dir) / MANIFEST_FILE
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_file():
        raise ManifestError(path, "the manifest must be a plain file, not a link or a directory")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(path, f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ManifestError(path, "the manifest is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(path, f"not valid TOML: {exc}") from exc
    return parse_manifest(document, path)


def parse_manifest(document: dict[str, Any], path: Path = Path(MANIFEST_FILE)) -> Manifest:
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        raise ManifestError(path, "; ".join(_problem(error) for error in exc.errors())) from exc


def _problem(error: Any) -> str:
    """One validation error as `key: what is wrong, and what is allowed`."""
    loc = [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        owner: type[BaseModel] = Manifest
        for part in loc[:-1]:
            annotation = owner.model_fields[part].annotation
            # An optional table (`ImageSpec | None`) names its class among its args.
            for candidate in (annotation, *get_args(annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    owner = candidate
        allowed = ", ".join(owner.model_fields)
        return f"{'.'.join(loc)}: unknown key; allowed here: {allowed}"
    key = ".".join(loc)
    if error["type"] in ("model_type", "model_attributes_type") and loc:
        return f"{key}: must be a table ([{key}])"
    if error["type"] == "value_error":
        # A table-wide check names its key in the message ("drop: ..."); prefix the table.
        return f"{key}.{message}" if key else message
    return f"{key}: {message}"


# --- the model, held to its manifest ------------------------------------------------


class TooManyRows(BadRequest):
    status = 413


class ManifestModel:
    """A flavor's model with the manifest's input columns, outputs and row limit."""

    def __init__(self, model: Model, manifest: Manifest, where: Path) -> None:
        self.model = model
        self.manifest = manifest
        wanted = manifest.input.model_features
        takes = model.feature_count
        if wanted is not None and takes is not None and wanted != takes:
            raise ManifestError(
                where,
                f"input: the manifest gives the model {wanted} features, "
                f"but the model takes {takes}",
            )
        self._width = manifest.input.width if manifest.input.width is not None else takes
        self._kept = manifest.input.kept

    @property
    def feature_count(self) -> int | None:
        return self._width

    @property
    def description(self) -> str:
        parts = [f"{self._width} input columns" if self._width is not None else "any width"]
        if self.manifest.input.drop:
            parts.append(f"dropping {', '.join(self.manifest.input.drop)}")
        parts.append(f"out: {', '.join(self.manifest.output.columns)}")
        if self.manifest.batch.max_rows is not None:
            parts.append(f"at most {self.manifest.batch.max_rows} rows a request")
        return f"{self.model.description}; {MANIFEST_FILE}: {', '.join(parts)}"

    def predict(self, features: np.ndarray) -> np.ndarray:
        limit = self.manifest.batch.max_rows
        if limit is not None and len(features) > limit:
            raise TooManyRows(
                f"{len(features)} rows in one request; this model takes at most {limit} "
                f"({MANIFEST_FILE} batch.max_rows). Send fewer rows per request"
            )
        rows = check_rows(features, self._width)
        if self._kept is not None:
            rows = np.ascontiguousarray(rows[:, self._kept])
        return shape_output(self.model.predict(rows), self.manifest.output)


def shape_output(predictions: np.ndarray, output: OutputSchema) -> np.ndarray:
    """The columns `output` asks for, from one probability per row (binary) or per class."""
    if output.plain and output.classes is None and output.threshold is None:
        return predictions
    scores = np.asarray(predictions)
    binary = scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1)
    if binary:
        probability = scores.reshape(-1)
        threshold = 0.5 if output.threshold is None else output.threshold
        labels = (probability >= threshold).astype(np.int64)
        probabilities = probability.reshape(-1, 1)
        classes = 2
    else:
        if output.threshold is not None:
            raise ValueError(
                f"{MANIFEST_FILE} output.threshold is for binary models; this one gives "
                f"{scores.shape[1]} class probabilities per row (the label is the most probable)"
            )
        labels = np.argmax(scores, axis=1)
        probabilities = scores
        classes = scores.shape[1]
    if output.classes is not None and len(output.classes) != classes:
        raise ValueError(
            f"{MANIFEST_FILE} output.classes names {len(output.classes)} classes, "
            f"but the model predicts {classes}"
        )
    parts: list[np.ndarray] = []
    for column in output.columns:
        if column == "probability":
            parts.append(probabilities)
        elif output.classes is not None:
            parts.append(np.asarray(output.classes, dtype=object)[labels].reshape(-1, 1))
        elif len(output.columns) == 1:
            parts.append(labels.reshape(-1, 1))
        else:
            parts.append(labels.astype(probabilities.dtype).reshape(-1, 1))
    if any(part.dtype == object for part in parts):
        # Text beside numbers: an object array, the numbers as the shortest decimal
        # that reads back as the same float32 (what the CSV answer shows anyway).
        parts = [
            part
            if part.dtype == object
            else part.astype(str).astype(np.float64).astype(object)
            if part.dtype == np.float32
            else part.astype(object)
            for part in parts
        ]
    result = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    return result.reshape(-1) if result.shape[1] == 1 else result
