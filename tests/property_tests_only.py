"""A pytest plugin for make fuzz: keep only the property tests (those hypothesis drives).

    pytest -p tests.property_tests_only tests

Every other test is deselected, so the long fuzz budget goes to the parsers alone.
"""

from __future__ import annotations

import pytest
from hypothesis import is_hypothesis_test


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        test = getattr(item, "obj", None)
        (kept if test is not None and is_hypothesis_test(test) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
