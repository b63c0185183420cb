"""The sample model: synthetic training data, training, flavors and the endpoint server."""

from __future__ import annotations
