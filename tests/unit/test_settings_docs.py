"""docs/settings.md lists every setting byom reads: both settings trees, field by field.

A field's variable is what pydantic-settings reads: its validation alias (each of an
AliasChoices), else the tree's env prefix and the field's name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from infra.local.stack_settings import WIRING
from model.server.settings import ServerSettings
from shared.settings import BatchChild, Settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
TREES: tuple[type[BaseSettings], ...] = (Settings, BatchChild, ServerSettings)
# A table row's first cell: | `NAME` | or | `NAME`, `OTHER` |.
_FIRST_CELL = re.compile(r"^\|([^|]+)\|", re.MULTILINE)
_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")


def environment_names(tree: type[BaseSettings]) -> set[str]:
    prefix = tree.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in tree.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        found = [str(choice) for choice in choices] if choices else [str(alias or prefix + name)]
        names |= {env_name.upper() for env_name in found}
    return names


def listed_rows() -> dict[str, str]:
    """Each name in a table row's first cell, with its whole row."""
    text = PAGE.read_text()
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if cell := _FIRST_CELL.match(line):
            rows |= {name: line for name in _NAME.findall(cell.group(1))}
    return rows


def test_the_names_come_from_aliases_and_prefixes() -> None:
    assert "BYOM_CHUNK_BYTES" in environment_names(Settings)
    assert {"BYOM_MULTI_MODEL", "SAGEMAKER_MULTI_MODEL", "SM_MODEL_DIR"} <= environment_names(
        ServerSettings
    )
    assert "AWS_BATCH_JOB_ARRAY_INDEX" in environment_names(BatchChild)


@pytest.mark.parametrize("tree", TREES, ids=lambda tree: tree.__name__)
def test_every_setting_has_a_row_in_the_settings_page(tree: type[BaseSettings]) -> None:
    missing = environment_names(tree) - listed_rows().keys()
    assert not missing, f"add to docs/settings.md: {sorted(missing)}"


def test_the_page_marks_the_local_stacks_wiring() -> None:
    """A user reading the page knows which settings make up keeps as the stack's own."""
    rows = listed_rows()
    documented = set().union(*map(environment_names, TREES)) & WIRING
    unmarked = {name for name in documented if "*wiring*" not in rows.get(name, "")}
    assert not unmarked, unmarked
