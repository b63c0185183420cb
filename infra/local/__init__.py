"""The local AWS: moto server, byom's model server, an SQS poller and a Batch runner."""
