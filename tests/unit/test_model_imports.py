"""`model/` imports form no cycle, and the server speaks through one codec module.

Every import counts, also those inside functions: a deferred import only hides a
cycle from the interpreter, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def model_imports() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in (REPO / "model").rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            graph[name] |= {target for target in targets if target in modules} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(graph[node]):
            visit(target, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_model_has_no_import_cycle() -> None:
    assert cycles(model_imports()) == []


def test_the_server_and_inference_scripts_share_one_codec_module() -> None:
    graph = model_imports()
    assert "model.codecs" in graph["model.inference_script"]
    assert "model.codecs" in graph["model.server.invoke"]
    # nobody else defines the media types or parses bodies
    for name, path in ((n, REPO / (n.replace(".", "/") + ".py")) for n in graph):
        if name == "model.codecs" or not path.exists():
            continue
        source = path.read_text()
        assert 'NPY = "application/x-npy"' not in source, name
        assert "def parse_csv(" not in source, name
