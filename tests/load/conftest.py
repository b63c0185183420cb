from __future__ import annotations

from tests.integration.conftest import model_dir  # noqa: F401 (a shared fixture)
