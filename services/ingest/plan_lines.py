"""Ingest's planner of line files: CSV rows and JSON Lines records.

Reads the head only: the first line says whether there is a header (CSV) and
what a record holds; chunks are byte ranges cut by arithmetic, which the workers
align to lines themselves.
"""

from __future__ import annotations

from services.ingest import processing_plan
from services.ingest.planning import Planning
from shared.csvchunks import BOM, find_line_end, plan_ranges
from shared.errors import InputError
from shared.formats import Format
from shared.processing import Processing
from shared.rows import check_rows, header_names
from shared.schemas import BadRows, Chunk, ChunkPlan, RecordsSource, RowsSource
from shared.settings import get_settings


def plan_lines(planning: Planning) -> ChunkPlan:
    settings = get_settings()
    request, card, columns = planning.request, planning.card, planning.columns
    read, head, size, uri = planning.read, planning.head, planning.size, planning.upload.uri
    data_start = len(BOM) if head.startswith(BOM) else 0
    first_end = find_line_end(
        read, data_start, size, max_line_bytes=settings.max_line_bytes, uri=uri, line=1
    )
    # A first line longer than the head (a wide header) is read whole.
    wide = first_end > len(head)
    line_one = read(data_start, first_end) if wide else head[data_start:first_end]
    names = header_names(line_one) if request.content is not Format.JSONL else None
    processing: Processing | None = None
    if processing_plan.needs_processing(request, card, names):
        if names is not None:
            data_start = first_end
        if data_start >= size:
            raise InputError(uri, "the file has a header but no rows")
        # A header names the columns; without one, line 1 is the first record.
        record = processing_plan.first_record(
            request, names, line_one, uri, line_number=2 if names else 1
        )
        processing = processing_plan.processing(
            request, card, record, model_columns=columns, uri=uri
        )
    elif names is not None:
        if len(names) != columns:
            raise InputError(
                uri,
                f"the first line looks like a header but has {len(names)} columns; "
                f"the model takes {columns} features",
                line=1,
            )
        data_start = first_end
    if data_start >= size:
        raise InputError(uri, "the file has a header but no rows")

    if planning.policy.on_bad_rows is BadRows.FAIL and processing is None:
        # Check the complete lines of the head now, so a file with the wrong shape
        # fails in seconds with a precise position instead of inside a worker.
        head_rows = head[data_start:]
        if len(head) < size:
            head_rows = head_rows[: head_rows.rfind(b"\n") + 1]
        check_rows(head_rows, first_line=2 if names else 1, columns=columns, uri=uri)
    ranges = plan_ranges(data_start, size, settings.chunk_bytes)
    source: RowsSource | RecordsSource
    if processing is not None and processing.content is Format.JSONL:
        source = RecordsSource(data_start=data_start, processing=processing)
    else:
        # A header carried to the output; the processing path builds its own.
        output_header = None
        if names is not None and processing is None:
            output_header = processing_plan.prediction_names(card)
        source = RowsSource(
            header=names is not None, data_start=data_start, processing=processing,
            output_header=output_header,
        )  # fmt: skip
    upload = planning.upload
    return ChunkPlan(
        job_id=planning.job_id, bucket=upload.bucket, key=planning.key, etag=planning.etag,
        size=size, columns=columns, policy=planning.policy,
        chunks=tuple(Chunk(index=i, start=s, end=e) for i, (s, e) in enumerate(ranges)),
        source=source,
    )  # fmt: skip
