"""byom's services: ingest, scheduler, inference worker and status."""
