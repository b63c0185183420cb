"""Selectors from upload metadata, on any text: a selector or a SelectorError, quickly.

tests/unit/test_selectors.py holds the grammar's examples and its agreement with
Python's indexing; these hold that no string (metadata is the user's to write)
raises anything but byom's own ``SelectorError`` or takes more than the
deadline, and that a resolved selector only ever points inside the row.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import ByomError
from shared.selectors import Selector, SelectorError, parse_selector
from tests.unit.bounds import MIB, within_memory

pieces = st.sampled_from(["$", "[", "]", ",", ":", "-", "1", "0", "'", '"', " ", "a", ".", "\t"])
selector_like = st.lists(pieces, max_size=40).map("".join)
texts = st.one_of(st.text(max_size=80), selector_like, selector_like.map(lambda t: f"$[{t}]"))


def test_selector_errors_are_byom_errors() -> None:
    assert issubclass(SelectorError, ByomError)


@given(texts, st.integers(1, 12), st.lists(st.sampled_from(["a", "b", "1", ""]), max_size=12))
def test_any_text_is_a_selector_or_a_selector_error(
    text: str, width: int, names: list[str]
) -> None:
    parsed = within_memory(lambda: parse_selector(text), 1 * MIB)
    if isinstance(parsed, ByomError):
        assert isinstance(parsed, SelectorError) and str(parsed)
        return
    assert isinstance(parsed, Selector)
    row_names = (names + [""] * width)[:width]
    for given_names in (None, row_names):
        try:
            positions = parsed.resolve(width, given_names)
        except SelectorError:
            continue
        assert positions and all(0 <= p < width for p in positions)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "text",
    [
        "$[" + " " * 4000 + "x]",
        "$[" + " " * 2000 + "1" + " " * 2000 + ":x]",
        "$[" + "1" * 4090 + "]",
        "$[" + "\u0663" * 4090 + "]",  # Unicode digits: int() takes them
        "$['" + "a" * 4090 + "]",
        "$[" + "," * 4090 + "]",
        "$[" + "1:" * 2045 + "]",
        "$" + "[" * 5000,
    ],
)
def test_the_longest_selectors_are_judged_at_once(text: str) -> None:
    result = within_memory(lambda: parse_selector(text), 1 * MIB)
    if isinstance(result, Selector):
        for item_width in (1, 5000):
            with contextlib.suppress(SelectorError):
                result.resolve(item_width)
    else:
        assert isinstance(result, SelectorError)
