"""What a job does beyond scoring a plain feature matrix: formats, filters, joins.

Ingest validates every setting once (the upload's S3 metadata, else the model
card's defaults) and writes the result into the chunk plan as ``Processing``;
workers only follow it. A plain header-less CSV with no settings has no
``Processing`` at all, so its output stays one prediction line per row.

Pure pydantic: it travels in the plan through the Lambda functions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.formats import CONTENT_TYPES, EXTENSIONS, MEDIA_TYPE, OUTPUT_EXTENSION, Format
from shared.options import ProcessingOptions

# The formats and their tables live in shared/formats.py (one table of job kinds);
# they are named here too, where the plan's processing has always found them.
__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "MEDIA_TYPE",
    "OUTPUT_EXTENSION",
    "Format",
]

# The metadata columns an upload may ask for, and their names in the output.
METADATA_COLUMNS: dict[str, str] = {
    "job_id": "byom_job_id",
    "model_name": "byom_model_name",
    "model_version": "byom_model_version",
    "scored_at": "byom_scored_at",
}
LABEL_COLUMN = "predicted_label"  # from byom-threshold; "label" is often an input column
# SageMaker's key for the prediction in a joined JSON record.
DEFAULT_JSON_KEY = "SageMakerOutput"
JSON_INPUT_KEY = "SageMakerInput"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProcessingDefaults(_Frozen):
    """A model's defaults, as its manifest's ``[processing]`` table gives them.

    The values are written as an upload's metadata would be, and checked by the
    same code, so a default and an upload setting mean exactly the same.
    """

    input_filter: str | None = Field(default=None, max_length=4096)
    output_filter: str | None = Field(default=None, max_length=4096)
    join_source: Literal["Input", "None"] | None = None
    accept: str | None = Field(default=None, max_length=64)
    metadata: list[Literal["job_id", "model_name", "model_version", "scored_at"]] | None = None
    output_key: str | None = Field(default=None, min_length=1, max_length=128)

    def as_options(self) -> ProcessingOptions:
        """These defaults as the options an upload's metadata would give."""
        return ProcessingOptions.model_validate(self.as_metadata())

    def as_metadata(self) -> dict[str, str]:
        """These defaults spelt as upload metadata (``byom-input-filter`` ...)."""
        values = {
            "input-filter": self.input_filter,
            "output-filter": self.output_filter,
            "join-source": self.join_source,
            "accept": self.accept,
            "metadata": None if self.metadata is None else ",".join(self.metadata),
            "output-key": self.output_key,
        }
        return {f"byom-{key}": value for key, value in values.items() if value is not None}


class RowGroupSpan(_Frozen):
    """Consecutive Parquet row groups scored as one chunk."""

    first: int = Field(ge=0)  # index of the first row group
    count: int = Field(ge=1)
    first_row: int = Field(ge=0)  # the file's row number (0-based) of its first row
    rows: int = Field(ge=0)


class ParquetLayout(_Frozen):
    footer_start: int = Field(ge=0)  # the footer (metadata, its length, "PAR1") to the end
    spans: tuple[RowGroupSpan, ...]  # one per chunk, in chunk order


class Processing(_Frozen):
    content: Format
    accept: Format
    # Input records: CSV rows, JSON Lines objects or arrays, Parquet rows.
    records: Literal["rows", "objects", "arrays"] = "rows"
    width: int = Field(ge=1)  # columns of an input record (keys of the first object)
    names: tuple[str, ...] | None = None  # the header, the first object's keys, Parquet columns
    features: tuple[int, ...] = Field(min_length=1)  # positions sent to the model, in order
    feature_names: tuple[str, ...] | None = None  # objects are selected by key
    # Per key of feature_names: an array value ($.features) gives this many features.
    feature_widths: tuple[int, ...] | None = None
    join: bool = False
    output_filter: str | None = None  # a selector on the joined record, resolved per chunk
    json_key: str = DEFAULT_JSON_KEY
    metadata: tuple[str, ...] = ()
    threshold: float | None = None  # adds a label column from the probability
    classes: tuple[str, ...] | None = None  # label names (negative, positive)
    prediction_names: tuple[str, ...] = ("prediction",)
    header: bool = False  # CSV output starts with the joined names
    parquet: ParquetLayout | None = None

    def input_names(self) -> list[str]:
        if self.names is not None:
            return list(self.names)
        return [f"_{i}" for i in range(self.width)]  # header-less: positions only

    def output_names(self, predictions: int) -> list[str]:
        """The joined record's names, before the output filter."""
        names = self.input_names() if self.join else []
        names += prediction_column_names(self.prediction_names, predictions)
        if self.threshold is not None:
            names.append(LABEL_COLUMN)
        names += [METADATA_COLUMNS[m] for m in self.metadata]
        return names


def prediction_column_names(names: tuple[str, ...], count: int) -> list[str]:
    """Names for ``count`` prediction columns: the model's own when they fit."""
    if len(names) == count:
        return list(names)
    base = names[0] if len(names) == 1 else "prediction"
    return [f"{base}_{i}" for i in range(count)] if count > 1 else [base]


def label_position(names: tuple[str, ...], count: int) -> int | None:
    """Where the class-name column sits among ``count`` prediction columns, by position.

    A model card's ``output_columns`` name kinds of columns: ``probability`` spans
    one column per class (all the columns the other names leave), ``label`` one.
    The generated column names do not say which is which, so it is counted here.
    """
    if "label" not in names:
        return None
    probabilities = count - (len(names) - 1)
    position = 0
    for name in names:
        if name == "label":
            return position if position < count else None
        position += probabilities if name == "probability" else 1
    return None
