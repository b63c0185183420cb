"""Ingest's half of real files: read and check the processing settings, once.

An upload's S3 metadata (``byom-input-filter``, ``byom-join-source``,
``byom-output-filter``, ``byom-accept``, ``byom-content-type``,
``byom-metadata``, ``byom-threshold``, ``byom-output-key``) wins over the
chosen model's card defaults (its manifest's ``[processing]`` table). Every
value is checked here; a bad one fails the job at once with the setting's name
and what is allowed. The file's names (CSV header, first JSON record, Parquet
schema) resolve the filters into positions, which go into the plan
(``shared.processing.Processing``), so workers never read metadata again.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from botocore.exceptions import ClientError

from shared import aws, model_registry
from shared.errors import InputError
from shared.formats import CONTENT_TYPES, detect_format, format_of_media_type
from shared.model_card import ModelCard
from shared.options import PROCESSING_KEYS, ProcessingOptions, UploadOptions, key_of
from shared.processing import (
    DEFAULT_JSON_KEY,
    METADATA_COLUMNS,
    OUTPUT_EXTENSION,
    Format,
    Processing,
)
from shared.rows import split_cells
from shared.selectors import Selector, SelectorError, parse_selector
from shared.settings import get_settings

log = logging.getLogger(__name__)

INPUT_FILTER = key_of("input_filter")
OUTPUT_FILTER = key_of("output_filter")
JOIN_SOURCE = key_of("join_source")
ACCEPT = key_of("accept")
CONTENT_TYPE = key_of("content_type")
METADATA = key_of("metadata")
THRESHOLD = key_of("threshold")
OUTPUT_KEY = key_of("output_key")
SETTINGS = PROCESSING_KEYS


@dataclass(frozen=True)
class Request:
    """The settings a job asked for, checked, before the file is looked at."""

    content: Format
    accept: Format
    input_filter: Selector | None = None
    output_filter: Selector | None = None
    join: bool = False
    metadata: tuple[str, ...] = ()
    threshold: float | None = None
    json_key: str = DEFAULT_JSON_KEY
    asked: bool = False  # any setting was given (by the upload or the card)
    from_card: frozenset[str] = frozenset()  # settings that are the model card's defaults

    def source(self, setting: str) -> str:
        return setting_source(setting, self.from_card)

    @property
    def plain(self) -> bool:
        """Today's job: a CSV in, one prediction line per row out."""
        return not self.asked and self.content is Format.CSV and self.accept is Format.CSV


def setting_source(setting: str, from_card: frozenset[str]) -> str:
    """How an error names a setting: the upload's metadata or the model card's default."""
    if setting in from_card:
        return f"the model card's processing.{setting.removeprefix('byom-').replace('-', '_')}"
    return f"metadata {setting}"


def read_card(uri: str, bucket: str, chosen: model_registry.ModelRef | None) -> ModelCard | None:
    """The chosen model's card; None for the default model or a package without one."""
    if chosen is None:
        return None
    try:
        return model_registry.card(aws.s3(), bucket, get_settings().models_prefix, chosen)
    except ClientError as exc:
        log.warning("cannot read the model card", extra={"error": str(exc)})
        return None
    except ValueError as exc:
        raise InputError(uri, f"model {chosen.name}:{chosen.version}: {exc}") from None


def _format_of(value: str, setting: str, uri: str) -> Format:
    found = format_of_media_type(value)
    if found is None:
        raise InputError(uri, f"{setting}={value!r}: use one of {', '.join(CONTENT_TYPES)}")
    return found


def detect_content(key: str, content_type: str, metadata: Mapping[str, str], uri: str) -> Format:
    """The upload's format: byom-content-type, else its extension, else its Content-Type
    (``shared/formats.py``)."""
    declared = metadata.get(CONTENT_TYPE)
    found = detect_format(key, content_type, declared)
    if found is None:
        assert declared is not None
        return _format_of(declared, f"metadata {CONTENT_TYPE}", uri)
    return found


def requested(
    uri: str,
    key: str,
    content_type: str,
    options: ProcessingOptions | Mapping[str, str],
    card: ModelCard | None,
) -> Request:
    """Every processing setting, checked; ``InputError`` names the first bad one.

    ``options``: the upload's (``UploadOptions.processing()``, or its raw metadata).
    """
    if not isinstance(options, ProcessingOptions):
        options = UploadOptions.of(options).processing()
    defaults = card.processing.as_options().given() if card is not None else {}
    given = options.given()
    values = {**defaults, **given}

    from_card = frozenset(defaults.keys() - given.keys())

    def where(name: str) -> str:
        return setting_source(name, from_card)

    content = detect_content(key, content_type, values, uri)
    accept = content if ACCEPT not in values else _format_of(values[ACCEPT], where(ACCEPT), uri)
    filters: dict[str, Selector | None] = {}
    for name in (INPUT_FILTER, OUTPUT_FILTER):
        text = values.get(name)
        try:
            filters[name] = parse_selector(text) if text is not None else None
        except SelectorError as exc:
            raise InputError(uri, f"{where(name)}={text!r}: {exc}") from None
    join_text = values.get(JOIN_SOURCE, "None").strip()
    if join_text.lower() not in ("input", "none"):
        raise InputError(uri, f"{where(JOIN_SOURCE)}={join_text!r}: use 'Input' or 'None'")
    chosen_metadata: list[str] = []
    for part in filter(None, (p.strip() for p in values.get(METADATA, "").split(","))):
        if part not in METADATA_COLUMNS:
            raise InputError(
                uri, f"{where(METADATA)}: {part!r}; use any of {', '.join(METADATA_COLUMNS)}"
            )
        chosen_metadata.append(part)
    join = join_text.lower() == "input"
    if accept is Format.JSONL and filters[OUTPUT_FILTER] is not None:
        raise InputError(
            uri,
            f"{where(OUTPUT_FILTER)}: output filters apply to CSV output; JSON Lines output "
            f"keeps whole records (drop {OUTPUT_FILTER}, or ask for {ACCEPT}=text/csv)",
        )
    if accept is Format.JSONL and content is not Format.JSONL and join:
        raise InputError(
            uri,
            f"{where(JOIN_SOURCE)}=Input with a {content.value} upload and JSON Lines output: "
            f"joins keep the input's format; use {ACCEPT}=text/csv",
        )
    threshold = _threshold(values.get(THRESHOLD), where(THRESHOLD), card, uri)
    json_key = values.get(OUTPUT_KEY, DEFAULT_JSON_KEY).strip()
    if (
        not json_key
        or len(json_key) > 128
        or any(c in json_key for c in '"\\')
        or any(not c.isprintable() for c in json_key)
    ):
        raise InputError(
            uri, f"{where(OUTPUT_KEY)}={json_key!r}: use 1-128 printable characters, no quotes"
        )
    return Request(
        content=content,
        accept=accept,
        input_filter=filters[INPUT_FILTER],
        output_filter=filters[OUTPUT_FILTER],
        join=join,
        metadata=tuple(chosen_metadata),
        threshold=threshold,
        json_key=json_key,
        asked=bool(values),
        from_card=from_card,
    )


def _threshold(text: str | None, where: str, card: ModelCard | None, uri: str) -> float | None:
    if text is None:
        return None
    if card is not None and len(card.output_columns) != 1:
        # Known now, from the card: failing here beats every worker attempt failing.
        raise InputError(
            uri,
            f"{where}={text!r}: a threshold needs one probability per row, and the model "
            f"answers {len(card.output_columns)} columns ({', '.join(card.output_columns)})",
        )
    if text.strip().lower() == "model":
        if card is None or card.threshold is None:
            raise InputError(
                uri, f"{where}='model': the model's manifest has no output.threshold; give a number"
            )
        return card.threshold
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise InputError(uri, f"{where}={text!r}: use a number from 0 to 1, or 'model'")
    return value


def output_name_key(key: str, request: Request) -> str:
    """The key the output's name is made from: the input's, with the output's extension."""
    if request.accept is Format.CSV and request.content is Format.CSV:
        return key
    path = PurePosixPath(key.removesuffix(".gz"))
    return (
        str(path.with_suffix(OUTPUT_EXTENSION[request.accept]))
        if path.suffix
        else (key + OUTPUT_EXTENSION[request.accept])
    )


@dataclass(frozen=True)
class FirstRecord:
    """What the file's start says about its records."""

    records: Literal["rows", "objects", "arrays"]
    width: int
    names: tuple[str, ...] | None
    # Objects: how many features each key gives (an array value gives one per element).
    widths: tuple[int, ...] | None = None


def first_record(
    request: Request, header: list[str] | None, line: bytes, uri: str, line_number: int
) -> FirstRecord:
    """The shape of the file's records from its header (CSV) or first record."""
    if request.content is Format.CSV:
        if header is not None:
            return FirstRecord("rows", len(header), tuple(header))
        try:
            cells = split_cells(line.decode("utf-8").removesuffix("\n").removesuffix("\r"))
        except UnicodeDecodeError:
            raise InputError(uri, "is not UTF-8 text", line=line_number) from None
        if isinstance(cells, str):
            raise InputError(uri, cells, line=line_number)
        return FirstRecord("rows", len(cells), None)
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            uri, f"is not a JSON record: {exc}; JSON Lines holds one object or array a line",
            line=line_number,
        ) from None  # fmt: skip
    if isinstance(record, dict) and record:
        widths = tuple(len(v) if isinstance(v, list) and v else 1 for v in record.values())
        return FirstRecord("objects", len(record), tuple(str(k) for k in record), widths)
    if isinstance(record, list) and record:
        return FirstRecord("arrays", len(record), None)
    raise InputError(
        uri, "JSON Lines records must be non-empty objects or arrays", line=line_number
    )


def processing(
    request: Request,
    card: ModelCard | None,
    record: FirstRecord,
    *,
    model_columns: int,
    uri: str,
) -> Processing:
    """The plan's processing: the filters resolved against the file's own names."""
    names = record.names
    card_names = card.feature_names if card is not None else None
    if request.input_filter is not None:
        try:
            features = request.input_filter.resolve(record.width, names)
        except SelectorError as exc:
            raise InputError(
                uri, f"{request.source(INPUT_FILTER)}={request.input_filter.text!r}: {exc}"
            ) from None
    elif names is not None and card_names is not None:
        missing = [name for name in card_names if name not in names]
        if missing:
            raise InputError(
                uri,
                f"the file has no column {missing[0]!r}, a feature the model takes "
                f"(it takes {', '.join(card_names)}); the file has {', '.join(names)}",
                line=1 if request.content is Format.CSV else None,
            )
        features = tuple(names.index(name) for name in card_names)
    else:
        features = tuple(range(record.width))
    taken = len(features)
    if record.widths is not None:
        taken = sum(record.widths[i] for i in features)
    if taken != model_columns:
        chosen = (
            f"{request.source(INPUT_FILTER)}={request.input_filter.text!r} selects"
            if request.input_filter is not None
            else "the records have"
        )
        raise InputError(
            uri,
            f"{chosen} {taken} columns; the model takes {model_columns}. "
            f"Choose its features with {INPUT_FILTER}",
        )
    result = Processing(
        content=request.content,
        accept=request.accept,
        records=record.records,
        width=record.width,
        names=names,
        features=features,
        feature_names=(
            tuple(names[i] for i in features)
            if names is not None and record.records == "objects"
            else None
        ),
        feature_widths=(
            tuple(record.widths[i] for i in features) if record.widths is not None else None
        ),
        join=request.join,
        output_filter=request.output_filter.text if request.output_filter else None,
        json_key=request.json_key,
        metadata=request.metadata,
        threshold=request.threshold,
        classes=card.classes if card is not None and card.classes else None,
        prediction_names=prediction_names(card),
        header=names is not None and request.accept is Format.CSV,
    )
    if request.output_filter is not None:
        joined = result.output_names(len(result.prediction_names))
        try:
            request.output_filter.resolve(len(joined), joined)
        except SelectorError as exc:
            raise InputError(
                uri,
                f"{request.source(OUTPUT_FILTER)}={request.output_filter.text!r}: {exc} "
                f"(the joined record: {', '.join(joined)})",
            ) from None
    return result


def prediction_names(card: ModelCard | None) -> tuple[str, ...]:
    """The prediction columns' names: the model card's, else one generic name."""
    return card.output_columns if card is not None else ("prediction",)


def needs_processing(request: Request, card: ModelCard | None, header: list[str] | None) -> bool:
    """Whether the job goes beyond today's plain path: any setting, another format,
    or a header that differs from the model's feature names."""
    if not request.plain:
        return True
    card_names = card.feature_names if card is not None else None
    return header is not None and card_names is not None and tuple(header) != card_names
