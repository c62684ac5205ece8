"""The import rules of docs/architecture.md, checked on every module's imports."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ALLOWED = {
    "core": {"core"},
    "edges": {"core", "edges"},
    "execution": {"core", "edges", "execution"},
    "commands": {"core", "edges", "execution", "commands"},
    "cli": {"core", "edges", "commands", "cli"},
}
FORBIDDEN_IN_CLI = ("reprise.execution", "reprise.edges.docker")
MAX_MODULE_LINES = 420


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(imported module, whether at module level) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield f"{node.module}.{alias.name}", id(node) in top
                yield node.module, id(node) in top


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "reprise" and len(parts) > 1 and parts[1] in ALLOWED else None


def test_every_import_goes_down_the_layers() -> None:
    wrong = []
    for module, path in _modules():
        layer = _layer(module)
        for imported, _ in _imports(path):
            if module.startswith("reprise_runtime") and imported.startswith("reprise."):
                wrong.append(f"{module} -> {imported}")
            target = _layer(imported)
            if layer is None or target is None:
                continue
            if target not in ALLOWED[layer]:
                wrong.append(f"{module} -> {imported}")
            if layer == "cli" and imported.startswith(FORBIDDEN_IN_CLI):
                wrong.append(f"{module} -> {imported}")
    assert wrong == []


def test_module_level_imports_have_no_cycle() -> None:
    known = dict(_modules())
    graph = {
        module: {i for i, top in _imports(path) if top and i in known and i != module}
        for module, path in known.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_no_module_is_over_the_size_the_architecture_promises() -> None:
    sizes = {m: len(p.read_text().splitlines()) for m, p in _modules()}
    assert {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_the_architecture_page_names_every_package() -> None:
    text = (SRC.parent / "docs" / "architecture.md").read_text()
    packages = {p.parent.name for p in (SRC / "reprise").glob("*/__init__.py")}
    assert packages == set(ALLOWED)
    for package in packages:
        assert f"reprise.{package}" in text
