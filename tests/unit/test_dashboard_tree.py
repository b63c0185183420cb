"""The dashboard's timeline order (infra/local/dashboard_views.py): spans come from any
process that can reach the trace receiver, so their parent links are untrusted."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from infra.local.dashboard_views import _timeline, _tree_order


def span(span_id: str, parent: str | None, start: int) -> dict[str, Any]:
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "start_ns": start,
        "end_ns": start + 10,
        "name": f"span {span_id}",
        "service": "test",
        "attributes": {},
        "status": "unset",
    }


def order(spans: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(s["span_id"], depth) for s, depth in _tree_order(spans)]


def test_children_follow_their_parent_by_start_time() -> None:
    spans = [span("c2", "r", 3), span("r", None, 0), span("c1", "r", 1), span("g", "c1", 2)]
    assert order(spans) == [("r", 0), ("c1", 1), ("g", 2), ("c2", 1)]


def test_a_span_that_is_its_own_parent_is_a_root() -> None:
    spans = [span("a", "a", 0), span("b", "b", 1)]
    assert order(spans) == [("a", 0), ("b", 0)]


def test_a_repeated_span_id_under_itself_is_shown_once_each() -> None:
    # Two spans with one id, one naming the other as parent: the old walk went round forever.
    spans = [span("a", None, 0), span("a", "a", 1)]
    assert sorted(s["start_ns"] for s, _ in _tree_order(spans)) == [0, 1]


def test_a_parent_cycle_becomes_a_root() -> None:
    spans = [span("x", "z", 0), span("y", "x", 1), span("z", "y", 2), span("r", None, 3)]
    assert order(spans) == [("r", 0), ("x", 0), ("y", 1), ("z", 2)]


ids = st.sampled_from("abcdef")


@given(
    st.lists(st.tuples(ids, st.none() | ids | st.just("missing"), st.integers(0, 100)), max_size=30)
)
def test_every_span_appears_once_whatever_its_links(links: list[tuple[str, Any, int]]) -> None:
    spans = [span(span_id, parent, start) for span_id, parent, start in links]
    ordered = _tree_order(spans)
    assert sorted(map(id, (s for s, _ in ordered))) == sorted(map(id, spans))
    # Each span sits right under its parent's subtree: depth grows by one at most.
    depths = [depth for _, depth in ordered]
    assert all(b <= a + 1 for a, b in zip([-1, *depths], depths, strict=False))
    if spans:
        assert "span-row" in _timeline(spans)
