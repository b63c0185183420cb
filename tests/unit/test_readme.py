"""The README stays the front door: short, and every link in it leads somewhere.

The documentation site itself is checked by ``mkdocs build --strict`` (make docs,
run by make test); the README is outside the site, so its links are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown.extensions.toc import slugify

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MAX_LINES = 300
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {slugify(title.strip(), "-") for title in _HEADING.findall(text)}


def test_the_readme_is_short() -> None:
    assert len(README.read_text().splitlines()) <= MAX_LINES


def test_every_readme_link_leads_to_a_file_and_anchor() -> None:
    broken = []
    for target in _LINK.findall(README.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s) and mailto: not fetched here
        path, _, anchor = target.partition("#")
        page = REPO / path if path else README
        if not page.exists() or (anchor and anchor not in _anchors(page)):
            broken.append(target)
    assert not broken, broken


def test_the_anchor_check_sees_headings() -> None:
    assert "nothing-lost-nothing-doubled" in _anchors(REPO / "docs" / "guarantees.md")
