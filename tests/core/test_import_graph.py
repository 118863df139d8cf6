"""The import graph of saetui, read from the source with `ast`: no cycles, and the layers point one way.

Every `import` counts, the ones inside functions too (a lazy import still ties two modules together); only those
under `if TYPE_CHECKING:` are left out, since they never run. The layers, bottom up:

    ground floor   errors, files, paths, inputs, settings, hub*     (what everything may use)
    core           models -> activations -> sae -> steering          (each imports only those before it)
    shells         session*, generation, downloads, labels, state, demo, tui, cli

so the core never imports a shell (a Session, the app, the CLI or the demo), and a module never imports one
that imports it back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import saetui

ROOT = Path(saetui.__file__).parent
CORE = ("models", "activations", "sae", "steering")
GROUND = {"saetui", "saetui.errors", "saetui.files", "saetui.paths", "saetui.inputs", "saetui.settings", "saetui.hub",
          "saetui.hub_cache", "saetui.hub_progress"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _target(name: str) -> str | None:
    """The saetui module an imported name lives in (a submodule if there is one, else its package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """The saetui modules `module` imports, anywhere but under `if TYPE_CHECKING:`."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(filter(None, (_target(a.name) for a in node.names if a.name.startswith("saetui"))))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("saetui") and not node.level:
            for alias in node.names:  # `from saetui import hub` imports the module saetui.hub
                found.add(_target(f"{node.module}.{alias.name}") or node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return CORE.index(parts[1]) if len(parts) > 1 and parts[1] in CORE else None


def test_the_graph_sees_every_module_and_real_imports():
    assert {"saetui.session", "saetui.cli", "saetui.tui.app", "saetui.sae.index", "saetui.inputs"} <= set(GRAPH)
    assert "saetui.session" in GRAPH["saetui.cli.common"] or "saetui.session" in GRAPH["saetui.cli.app"]
    assert "saetui.inputs" in GRAPH["saetui.activations.cache"]  # a module-level import
    assert "saetui.steering.static" in GRAPH["saetui.session"]  # a lazy one, inside a method


def test_no_import_cycles():
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                walk(dep, path + [dep])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_core_imports_only_the_ground_floor_and_the_layers_below():
    wrong = []
    for module, deps in GRAPH.items():
        layer = _layer(module)
        if layer is None:
            continue
        for dep in deps:
            dep_layer = _layer(dep)
            if dep in GROUND or (dep_layer is not None and dep_layer <= layer):
                continue
            wrong.append(f"{module} imports {dep}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_ground_floor_imports_no_shell():
    shells = ("saetui.session", "saetui.generation", "saetui.downloads", "saetui.labels", "saetui.state",
              "saetui.demo", "saetui.tui", "saetui.cli")
    wrong = [f"{m} imports {d}" for m in GROUND - {"saetui"} for d in GRAPH[m] if d.startswith(shells)]
    assert not wrong, "\n".join(sorted(wrong))
