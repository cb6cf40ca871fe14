"""The import graph of gankit: no circle at all (function-local imports included) and the layers of DESIGN.md.

A module's imports are every ``import`` / ``from ... import`` statement anywhere in its file (inside functions
too, but not under ``if TYPE_CHECKING:``, which never runs). ``from package import name`` points at the
submodule ``package.name`` when there is one, else at the package.
"""
from __future__ import annotations

import ast
from pathlib import Path

import gankit

ROOT = Path(gankit.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "gankit":
                    out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "gankit":
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    out.add(sub if sub in modules else target)
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(tree)
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_circle():
    cycles = _cycles(import_graph())
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


# Layers, bottom up (DESIGN.md sec. 2): a module may import its own layer and the ones below, never above.
LAYERS = [
    {"gankit.version", "gankit.errors", "gankit.registry", "gankit.images", "gankit.io", "gankit.audio"},
    {"gankit.config", "gankit.presets"},
    {"gankit.losses", "gankit.nets", "gankit.data", "gankit.optim", "gankit.sample", "gankit.metrics",
     "gankit.samplers", "gankit.artefacts", "gankit.runlog", "gankit.checkpoint", "gankit.report",
     "gankit.augment", "gankit.projector"},
    {"gankit.recipes", "gankit.loading", "gankit.export"},
    {"gankit.engine"},
    {"gankit.cli", "gankit.cli_metrics", "gankit.cli_translate", "gankit.cli_report", "gankit.cli_export", "gankit.cli_audio",
     "gankit.cli_restore", "gankit.cli_stylegan",
     "gankit.__main__", "gankit"},
]


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        for top in layer:
            if module == top or module.startswith(top + ".") and top != "gankit":
                return i
    raise AssertionError(f"{module} belongs to no layer of test_layering.LAYERS: add it to one")


def test_layers_only_import_downwards():
    wrong = [f"{a} ({_layer(a)}) imports {b} ({_layer(b)})"
             for a, deps in sorted(import_graph().items()) for b in sorted(deps) if _layer(b) > _layer(a)]
    assert not wrong, "\n".join(wrong)


def test_config_and_metrics_know_nothing_of_training():
    graph = import_graph()
    for name, deps in graph.items():
        if name == "gankit.config" or name.startswith("gankit.metrics"):
            bad = {d for d in deps if d.startswith(("gankit.engine", "gankit.recipes", "gankit.loading",
                                                    "gankit.checkpoint", "gankit.cli"))}
            assert not bad, f"{name} imports {sorted(bad)}"


def test_engine_config_and_cli_never_branch_on_a_family_a_data_kind_or_a_sampler_kind():
    """No ``x == "cyclegan"`` / ``kind in ("vector", ...)`` in the core: such a choice belongs to a registration."""
    from gankit.data import registered_kinds
    from gankit.recipes import recipes
    from gankit.samplers import sampler_kinds
    names = set(recipes.names()) | set(registered_kinds()) | set(sampler_kinds.names())
    files = [*sorted((ROOT / "engine").glob("*.py")), ROOT / "config.py", *sorted(ROOT.glob("cli*.py"))]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            for side in [node.left, *node.comparators]:
                values = [side] if isinstance(side, ast.Constant) else \
                    list(side.elts) if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else []
                hits = [v.value for v in values if isinstance(v, ast.Constant) and v.value in names]
                if hits:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} compares with {hits}")
    assert not found, "\n".join(found)
