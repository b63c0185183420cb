"""The model card: what ingest needs to know about a published model, in one small object.

``python -m model.publish`` writes ``models/<name>/<version>/card.json`` from the
package's resolved manifest before it writes the package, so a visible package
always has its card. A package published before cards existed has none; ingest
then falls back to the feature count on the package's metadata.

boto3 and pydantic only: ingest reads it in Lambda.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.processing import ProcessingDefaults

CARD_FILE = "card.json"
MAX_CARD_BYTES = 1024 * 1024


class ModelCard(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    description: str = Field(default="", max_length=2048)
    # A request row: its width and, when the manifest names them, its columns in order.
    feature_count: int | None = Field(default=None, ge=1)
    feature_names: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()  # request columns the model server drops itself
    output_columns: tuple[str, ...] = ("probability",)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    classes: tuple[str, ...] | None = None
    max_rows: int | None = Field(default=None, ge=1)  # rows per request
    max_bytes: int | None = Field(default=None, ge=1)  # bytes per request
    processing: ProcessingDefaults = ProcessingDefaults()
