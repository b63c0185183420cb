"""The local stack's AWS: moto's server, patched so that an S3 GET costs the bytes it
returns, and DynamoDB's item writes are atomic as on AWS.

python -m infra.local.moto_server -H 127.0.0.1 -p 4566   (the flags of ``python -m moto.server``)

What this module changes, before it hands over to ``moto.server.main``:

1. A ranged or whole GET reads only the bytes it sends (``moto_s3_reads.py``).
2. A multipart completion and UploadPartCopy copy piece by piece into a new spooled file
   instead of concatenating whole parts and sources (``moto_s3_assembly.py``).
3. DynamoDB's item operations run one at a time, atomic as on AWS
   (``moto_dynamodb_atomic.py``).
4. Only this machine's clients are answered, and SageMaker's model and transform-job
   operations are byom's own (``moto_loopback.py``).

Measured (``python -m bench.local_s3``, medians of 3): on a 269 MB object a 64 KiB range
takes 3.7 ms instead of 123 ms, a whole GET 0.10 s instead of 0.35 s; a 2 GB multipart
upload peaks at 0.64 GB of server RSS instead of 4.3 GB. Still whole in memory, as in moto:
a single PUT's request body and CopyObject's source.

Written against moto 5.2.5 (pinned); tests/integration/test_local_s3.py checks the
semantics against plain moto and the bytes read per request, so an upgrade that changes
the patched functions fails there.

For measurements and tests only: ``BYOM_MOTO_S3_PATCH=0`` runs moto unpatched, and
``BYOM_MOTO_READ_COUNTER=1`` counts the bytes read out of object buffers (whole values
and ranges) and serves the total at ``GET /byom-debug/s3-read-bytes``.
"""

from __future__ import annotations

import os
import sys

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.models import FakeKey, FakeMultipart, S3Backend
from moto.s3.responses import S3Response

from infra.local.moto_dynamodb_atomic import serialise_dynamodb
from infra.local.moto_loopback import loopback_only
from infra.local.moto_s3_assembly import complete_multipart, upload_part_copy, value_property
from infra.local.moto_s3_reads import READS, serve_counter, streaming_get_object


def apply(*, patch: bool = True, count_reads: bool = False) -> None:
    """Patch moto's S3 in this process (``patch``) and/or count buffer reads; DynamoDB's
    item operations are made atomic either way."""
    serialise_dynamodb()
    READS.enabled = count_reads
    if patch or count_reads:
        FakeKey.value = value_property(setter_patch=patch)  # type: ignore[method-assign,assignment]
    if count_reads:
        serve_counter(DomainDispatcherApplication)
    if patch:
        S3Response.get_object = streaming_get_object(S3Response.get_object)  # type: ignore[method-assign,assignment]
        FakeMultipart.complete = complete_multipart  # type: ignore[method-assign,assignment]
        S3Backend.upload_part_copy = upload_part_copy  # type: ignore[method-assign]


def main() -> None:
    loopback_only()
    apply(
        patch=os.environ.get("BYOM_MOTO_S3_PATCH", "1") != "0",
        count_reads=os.environ.get("BYOM_MOTO_READ_COUNTER") == "1",
    )
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
