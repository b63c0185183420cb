"""byom's model server: the SageMaker inference-container contract over aiohttp."""

from __future__ import annotations
