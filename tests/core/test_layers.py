"""The layout's rules, checked on the package's own source: arrows point down only.

Layers, bottom up: leaf modules (``_version``, ``constants``, ``units``), ``core`` (knows no physics),
``solvers`` (network-agnostic), the wings ``primordial`` and ``nuclear`` (each imports core and solvers,
never the other), and the top (``accessor``, ``cli``, the package ``__init__``). Every import counts,
function-local ones included; module-level imports must also form no circle.
"""

import ast
from pathlib import Path

import pytest

import thermoemu

PACKAGE = Path(thermoemu.__file__).resolve().parent
LEAF, CORE, SOLVERS, WING, TOP = range(5)
WINGS = ("primordial", "nuclear")


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module):
    parts = module.split(".")
    if len(parts) == 1:
        return TOP  # the package itself
    head = parts[1]
    if head in ("_version", "constants", "units"):
        return LEAF
    if head == "core":
        return CORE
    if head == "solvers":
        return SOLVERS
    if head in WINGS:
        return WING
    return TOP


def _imports(module):
    """(imported module, line, module_level) for every import of a thermoemu module in ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top_level = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "thermoemu"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "thermoemu":
                continue
            # "from pkg import mod" imports the submodule mod
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]
        else:
            continue
        for name in names:
            while name not in MODULES and "." in name:
                name = name.rsplit(".", 1)[0]
            found.append((name, node.lineno, id(node) in top_level))
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_the_walker_sees_the_package():
    assert {"thermoemu.core.protocols", "thermoemu.primordial.emulator", "thermoemu.nuclear.emulator",
            "thermoemu.solvers.rosenbrock", "thermoemu.accessor"} <= set(MODULES)
    assert any(t == "thermoemu.core.grid" for t, _, _ in GRAPH["thermoemu.primordial.chemistry"])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_only(module):
    own = _layer(module)
    wing = module.split(".")[1] if own == WING else None
    bad = []
    for target, line, _ in GRAPH[module]:
        layer = _layer(target)
        if layer > own:
            bad.append(f"line {line}: {target} (a higher layer)")
        elif layer == WING and own == WING and target.split(".")[1] != wing:
            bad.append(f"line {line}: {target} (the other wing)")
    assert not bad, f"{module} imports upward or across: " + "; ".join(bad)


def test_core_imports_no_wing_and_nuclear_nothing_primordial():
    for module, edges in GRAPH.items():
        targets = {t for t, _, _ in edges}
        if _layer(module) in (CORE, SOLVERS):
            assert not {t for t in targets if _layer(t) >= WING}, module
        if module.startswith("thermoemu.nuclear"):
            assert not {t for t in targets if t.startswith("thermoemu.primordial")}, module
        if module.startswith("thermoemu.primordial"):
            assert not {t for t in targets if t.startswith("thermoemu.nuclear")}, module


def test_no_import_circle_among_module_level_imports():
    graph = {m: {t for t, _, top in edges if top and t != m and t != "thermoemu"} for m, edges in GRAPH.items()}
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"
