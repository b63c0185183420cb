"""An upload's options: every ``byom-*`` S3 metadata key, read in one place.

S3 metadata is text; ``UploadOptions`` holds each key's text (trimmed) under a
field of its own, so no service looks a key up by its spelling again. The typed
values, with messages that name the key and say what is allowed, come from the
methods here (the bad-row policy, drawing, the frame rate) and from ingest's
processing checks (``services/ingest/processing_plan.py``), which take the
processing part, ``ProcessingOptions``: the same eight settings a model card's
defaults give (``shared.processing.ProcessingDefaults.as_options``).

Pure pydantic: ingest reads it in Lambda, the CLI writes uploads with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from shared.bad_rows import BadRows, RowPolicy
from shared.errors import InputError

PREFIX = "byom-"


def key_of(field: str) -> str:
    """The metadata key of an option field: ``input_filter`` -> ``byom-input-filter``."""
    return PREFIX + field.replace("_", "-")


def _text(field: str) -> Any:
    # Read from the metadata key (byom-input-filter) or the field's own name; S3
    # holds at most 2 KB of metadata, so no value is long.
    return Field(
        default=None,
        validation_alias=AliasChoices(key_of(field), field),
        serialization_alias=key_of(field),
    )


class ProcessingOptions(BaseModel):
    """Formats, filters, joins and added columns, as text (metadata or a card's defaults)."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)

    input_filter: str | None = _text("input_filter")
    output_filter: str | None = _text("output_filter")
    join_source: str | None = _text("join_source")
    accept: str | None = _text("accept")
    content_type: str | None = _text("content_type")
    metadata: str | None = _text("metadata")
    threshold: str | None = _text("threshold")
    output_key: str | None = _text("output_key")

    def given(self) -> dict[str, str]:
        """The settings given, by metadata key (``byom-input-filter`` ...)."""
        return {
            key_of(name): value
            for name, value in self.model_dump(exclude_none=True).items()
            if name in ProcessingOptions.model_fields
        }


PROCESSING_KEYS = tuple(key_of(name) for name in ProcessingOptions.model_fields)


class UploadOptions(ProcessingOptions):
    """Every ``byom-*`` option of one upload."""

    model: str | None = _text("model")
    on_bad_rows: str | None = _text("on_bad_rows")
    max_bad_rows: str | None = _text("max_bad_rows")
    draw: str | None = _text("draw")
    frame_rate: str | None = _text("frame_rate")

    @classmethod
    def of(cls, metadata: Mapping[str, str]) -> UploadOptions:
        """The options of an upload's S3 metadata (keys arrive lower-case from S3)."""
        return cls.model_validate({k.lower(): v for k, v in metadata.items()})

    def processing(self) -> ProcessingOptions:
        return ProcessingOptions.model_validate(self.given())

    def row_policy(self, uri: str, *, default: str, default_limit: int) -> RowPolicy:
        """The bad-row policy: ``byom-on-bad-rows`` and ``byom-max-bad-rows``, else
        the settings' defaults."""
        chosen = (self.on_bad_rows or default).strip().lower()
        limit = (self.max_bad_rows or str(default_limit)).strip()
        if chosen not in {p.value for p in BadRows}:
            raise InputError(
                uri, f"metadata {key_of('on_bad_rows')}={chosen!r}: use 'fail' or 'skip'"
            )
        try:
            max_bad_rows = int(limit)
            if max_bad_rows < -1:
                raise ValueError(limit)
        except ValueError:
            raise InputError(
                uri,
                f"metadata {key_of('max_bad_rows')}={limit!r}: use a whole number, -1 for no limit",
            ) from None
        return RowPolicy(on_bad_rows=BadRows(chosen), max_bad_rows=max_bad_rows)

    def draw_mode(self, uri: str, *, default: str) -> Literal["none", "jpeg", "png"]:
        """``byom-draw``: how detected images are drawn (none, jpeg, png)."""
        value = (self.draw if self.draw is not None else default).strip().lower()
        value = {"jpg": "jpeg", "true": "jpeg", "false": "none", "": "none"}.get(value, value)
        if value == "none":
            return "none"
        if value == "jpeg":
            return "jpeg"
        if value == "png":
            return "png"
        raise InputError(uri, f"metadata {key_of('draw')}={value!r}: use jpeg, png or none")

    def frames_per_second(self, uri: str, *, default: float) -> float:
        """``byom-frame-rate``: video frames a second to detect, 0 for every frame."""
        text = (self.frame_rate if self.frame_rate is not None else str(default)).strip()
        try:
            rate = float(text)
            if not 0 <= rate <= 1000:
                raise ValueError(text)
        except ValueError:
            raise InputError(
                uri,
                f"metadata {key_of('frame_rate')}={text!r}: frames a second to detect, 0-1000 "
                "(0: every frame)",
            ) from None
        return rate


OPTION_KEYS = tuple(key_of(name) for name in UploadOptions.model_fields)
MODEL = key_of("model")
ON_BAD_ROWS = key_of("on_bad_rows")
MAX_BAD_ROWS = key_of("max_bad_rows")
