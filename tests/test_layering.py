"""The layering of docs/architecture.md, read from the source: lower layers never import higher
ones, modules import no cycle, and no module imports another module's ``_private`` name."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("memcube", "langchain_memos", "llama_index_memos")
#: Layer of each core module, by longest matching name prefix (docs/architecture.md).
LAYERS = {
    **dict.fromkeys(
        ["memcube.items", "memcube.errors", "memcube.config", "memcube.atomic", "memcube.checks",
         "memcube.ports", "memcube.messages", "memcube.dates", "memcube.provenance"], 1),
    **dict.fromkeys(["memcube.plaintext", "memcube.audit", "memcube.outbox"], 2),
    **dict.fromkeys(
        ["memcube.lifecycle", "memcube.scheduler", "memcube.access", "memcube.governance",
         "memcube.reader", "memcube.extractors", "memcube.prompting", "memcube.redaction"], 3),
    **dict.fromkeys(
        ["memcube.services", "memcube.interchange", "memcube.parametric", "memcube.activation",
         "memcube.runtime", "memcube.marketplace"], 4),
    **dict.fromkeys(
        ["memcube.cube", "memcube.cube_base", "memcube.cube_governance", "memcube.async_twins"], 5
    ),
    **dict.fromkeys(["memcube", "memcube.cli", "memcube.demo", "memcube.testing",
                     "langchain_memos", "llama_index_memos"], 6),
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def imports() -> dict[str, list[tuple[str, list[str]]]]:
    """Per module of ours: the modules of ours it imports, with the names taken from each."""
    paths = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    known = {module_name(p) for p in paths}
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for path in paths:
        mod = module_name(path)
        rows = found.setdefault(mod, [])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] in PACKAGES:
                    rows.append((node.module, [a.name for a in node.names]))
                    # "from package import module" depends on that module too.
                    rows += [(f"{node.module}.{a.name}", []) for a in node.names
                             if f"{node.module}.{a.name}" in known]  # fmt: skip
            elif isinstance(node, ast.Import):
                rows += [(a.name, []) for a in node.names if a.name.split(".")[0] in PACKAGES]
    return found


def test_lower_layers_never_import_higher_ones() -> None:
    wrong = [
        f"{mod} (layer {layer(mod)}) imports {dep} (layer {layer(dep)})"
        for mod, rows in imports().items()
        for dep, _ in rows
        if layer(dep) > layer(mod)
    ]
    assert wrong == []


def test_the_core_imports_no_framework_adapter() -> None:
    wrong = [(m, d) for m, rows in imports().items() for d, _ in rows
             if m.startswith("memcube") and not d.startswith("memcube")]  # fmt: skip
    assert wrong == []


def test_no_private_name_crosses_modules() -> None:
    wrong = [f"{mod}: {dep}.{name}" for mod, rows in imports().items() for dep, names in rows
             for name in names if name.startswith("_") and dep != mod]  # fmt: skip
    assert wrong == []


def test_modules_import_no_cycle() -> None:
    graph = {m: {d for d, _ in rows if d != m} for m, rows in imports().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(graph.get(mod, ())):
            # A package's __init__ importing its own modules is how it re-exports them.
            if dep.startswith(mod + ".") or state.get(dep) == 2:
                continue
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep in graph:
                visit(dep, [*path, dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert cycles == []
