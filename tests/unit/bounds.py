"""Running a parser of uploaded bytes under a memory bound, for the property tests.

Time is bounded by hypothesis's deadline (the ``ci`` and ``fuzz`` profiles in
tests/conftest.py): an example that hangs or crawls fails the test.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import TypeVar

from shared.errors import ByomError

T = TypeVar("T")
MIB = 1024 * 1024


def within_memory(parse: Callable[[], T], limit: int) -> T | ByomError:
    """What ``parse`` returns, or the byom error it raises; fails past ``limit`` bytes.

    Anything but a ``ByomError`` propagates, so the test fails on it.
    """
    tracemalloc.start()
    try:
        result: T | ByomError = parse()
    except ByomError as exc:
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= limit, f"the parser allocated {peak} bytes, over its {limit}-byte bound"
    return result
