"""``python -m cli``: the ``byom`` command, from a checkout."""

from __future__ import annotations

from cli.main import app

app(prog_name="byom")
