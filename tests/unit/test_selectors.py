"""The filter grammar: SageMaker's JSONPath subset on rows, by index or by name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.selectors import Index, Name, SelectorError, Span, parse_selector


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("$", 4, (0, 1, 2, 3)),
        ("$[1:]", 4, (1, 2, 3)),
        ("$[0,5:]", 7, (0, 5, 6)),
        ("$[-1]", 4, (3,)),
        ("$[1:-1]", 5, (1, 2, 3)),
        ("$[0,-1]", 5, (0, 4)),
        ("$[:2, -2:]", 5, (0, 1, 3, 4)),
        ("$[2,0]", 3, (2, 0)),  # in the order written
        ("$[0,0]", 3, (0, 0)),
        ("$[1:100]", 3, (1, 2)),  # slice ends are clamped, as in Python
    ],
)
def test_indexes_and_slices(text: str, width: int, expected: tuple[int, ...]) -> None:
    assert parse_selector(text).resolve(width) == expected


def test_names_pick_columns_by_header() -> None:
    names = ["id", "a", "b", "label"]
    assert parse_selector("$['b','a']").resolve(4, names) == (2, 1)
    assert parse_selector('$["id", -1]').resolve(4, names) == (0, 3)
    assert parse_selector("$.label").resolve(4, names) == (3,)
    assert parse_selector("$['a,b']").items == (Name("a,b"),)  # a comma inside quotes


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1:", "not a selector"),
        ("$[1:x]", "item 1 ('1:x') is not an index"),
        ("$[]", "item 1"),
        ("$[1,,2]", "item 2"),
        ("$[1.5]", "is not an index"),
        ("$[1:2:3]", "is not an index"),
        ("[1]", "not a selector; use"),
    ],
)
def test_bad_selectors_say_why(text: str, why: str) -> None:
    with pytest.raises(SelectorError, match=None) as error:
        parse_selector(text)
    assert why in str(error.value)


@pytest.mark.parametrize(
    ("text", "width", "names", "why"),
    [
        ("$[5]", 5, None, "index 5 is outside a row of 5 columns"),
        ("$[-6]", 5, None, "index -6 is outside"),
        ("$[3:1]", 5, None, "selects no column"),
        ("$['a']", 5, None, "rows have no names"),
        ("$['zz']", 2, ["a", "b"], "no column named 'zz'"),
    ],
)
def test_selectors_that_do_not_fit_the_row(
    text: str, width: int, names: list[str] | None, why: str
) -> None:
    with pytest.raises(SelectorError) as error:
        parse_selector(text).resolve(width, names)
    assert why in str(error.value)


items = st.one_of(
    st.integers(-20, 20).map(Index),
    st.tuples(st.none() | st.integers(-20, 20), st.none() | st.integers(-20, 20)).map(
        lambda pair: Span(*pair)
    ),
)


def _text(item: Index | Span) -> str:
    if isinstance(item, Index):
        return str(item.value)
    start = "" if item.start is None else str(item.start)
    stop = "" if item.stop is None else str(item.stop)
    return f"{start}:{stop}"


@given(st.lists(items, min_size=1, max_size=6), st.integers(1, 12))
def test_resolution_is_pythons_list_indexing(chosen: list[Index | Span], width: int) -> None:
    """Any index list resolves to what Python's own indexing of the row picks."""
    text = "$[" + ",".join(_text(item) for item in chosen) + "]"
    selector = parse_selector(text)
    assert selector.items == tuple(chosen)
    row = list(range(width))
    expected: list[int] = []
    in_range = True
    for item in chosen:
        if isinstance(item, Index):
            if not -width <= item.value < width:
                in_range = False
                break
            expected.append(row[item.value])
        else:
            expected.extend(row[item.start : item.stop])
    if not in_range or not expected:
        with pytest.raises(SelectorError):
            selector.resolve(width)
    else:
        assert selector.resolve(width) == tuple(expected)
