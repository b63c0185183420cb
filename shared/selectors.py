"""Column selectors: the JSONPath subset byom reads in input and output filters.

SageMaker Batch Transform filters a CSV row as a JSON array (``$[1:]``,
``$[0,5:]``, ``$[-1]``) and a JSON record by key (``$.features``,
``$['id','score']``). byom takes the same shapes, for every format:

    selector := "$" | "$[" item ("," item)* "]" | "$." name
    item     := index | [index] ":" [index] | 'name' | "name"
    index    := [-]digits

Indexes count from 0, negatives from the end, slices as in Python (the end is
not included, out-of-range ends are clamped). Names pick columns by header name
(CSV), key (JSON Lines objects) or column name (Parquet). The result is the
columns in the order written; a column may be picked twice.

Pure Python: ingest (in Lambda) validates and resolves, workers only resolve.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shared.errors import ByomError

# An index, a slice with optional ends, or a quoted name (no quotes inside).
_ITEM = re.compile(r"\s*(?:(-?\d+)|(-?\d+)?\s*:\s*(-?\d+)?|'([^']+)'|\"([^\"]+)\")\s*")
_DOTTED = re.compile(r"\$\.([A-Za-z_][A-Za-z0-9_]*)")
_MAX_SELECTOR = 4096
ALLOWED = "'$' (all), '$[...]' of indexes ($[1:], $[0,5:], $[-1]) or names ($['id','V1']), '$.name'"


class SelectorError(ByomError, ValueError):
    """A selector that cannot be read or does not fit the row; the message says why."""


@dataclass(frozen=True)
class Index:
    value: int


@dataclass(frozen=True)
class Span:
    start: int | None
    stop: int | None


@dataclass(frozen=True)
class Name:
    value: str


Item = Index | Span | Name


@dataclass(frozen=True)
class Selector:
    text: str
    items: tuple[Item, ...] | None  # None: "$", every column

    def resolve(self, width: int, names: Sequence[str] | None = None) -> tuple[int, ...]:
        """The positions this selects in a row of ``width`` columns named ``names``."""
        if self.items is None:
            return tuple(range(width))
        chosen: list[int] = []
        for item in self.items:
            if isinstance(item, Index):
                position = item.value + width if item.value < 0 else item.value
                if not 0 <= position < width:
                    raise SelectorError(
                        f"index {item.value} is outside a row of {width} columns "
                        f"(0..{width - 1}, or -{width}..-1)"
                    )
                chosen.append(position)
            elif isinstance(item, Span):
                chosen.extend(range(*slice(item.start, item.stop).indices(width)))
            else:
                if names is None:
                    raise SelectorError(
                        f"'{item.value}' is a name, but the rows have no names (no header)"
                    )
                if item.value not in names:
                    raise SelectorError(f"no column named '{item.value}'")
                chosen.append(list(names).index(item.value))
        if not chosen:
            raise SelectorError(f"selects no column of a row of {width} columns")
        return tuple(chosen)


def parse_selector(text: str) -> Selector:
    """``text`` as a selector; ``SelectorError`` saying what is wrong and what is allowed."""
    source = text.strip()
    if len(source) > _MAX_SELECTOR:
        raise SelectorError(f"longer than {_MAX_SELECTOR} characters")
    if source == "$":
        return Selector(source, None)
    dotted = _DOTTED.fullmatch(source)
    if dotted:
        return Selector(source, (Name(dotted.group(1)),))
    if not (source.startswith("$[") and source.endswith("]")):
        raise SelectorError(f"not a selector; use {ALLOWED}")
    body = source[2:-1]
    items: list[Item] = []
    for position, piece in enumerate(_split_items(body), start=1):
        match = _ITEM.fullmatch(piece)
        if match is None or not piece.strip():
            raise SelectorError(
                f"item {position} ({piece.strip()!r}) is not an index, a slice "
                f"or a quoted name; use {ALLOWED}"
            )
        index, start, stop, single, double = match.groups()
        if index is not None:
            items.append(Index(int(index)))
        elif single is not None or double is not None:
            items.append(Name(single if single is not None else double))
        else:
            items.append(Span(_int(start), _int(stop)))
    return Selector(source, tuple(items))


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)


def _split_items(body: str) -> list[str]:
    """Split on commas outside quotes (a name may hold a comma)."""
    pieces, current, quote = [], [], ""
    for char in body:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == ",":
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces
