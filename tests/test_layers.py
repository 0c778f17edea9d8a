"""Imports only point down the layers of docs/architecture.md: no module imports a higher one,
and no two units (top-level modules or packages of vlmsae) import each other, directly or
through others."""

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vlmsae"

# Lowest first; a module may import its own layer and the ones below (docs/architecture.md).
# A unit is a top-level module or package of vlmsae, or a module of a package named here by its
# dotted path (`stores.build` sits above the rest of `stores`).
LAYERS = [
    {"errors", "registry_base", "devices", "faults", "run_path"},
    {"stores"},
    {"datasets", "models", "sae"},
    {"embedding", "training", "decode"},
    {"stores.build", "metrics", "interventions", "sweeps", "calibration", "health"},
    {"tables", "figures", "explorer", "export", "fixtures"},
    {"config", "config_cache", "runs", "workflow"},
    {"cli"},
]
DOTTED_UNITS = {unit for units in LAYERS for unit in units if "." in unit}


def _unit(module: str) -> str:
    """The layer unit of a dotted module name inside vlmsae: a dotted unit of LAYERS it is or lies
    in, else its first component."""
    inside = module.removeprefix("vlmsae.")
    for dotted in DOTTED_UNITS:
        if inside == dotted or inside.startswith(dotted + "."):
            return dotted
    return inside.split(".")[0]


def _layer(unit: str) -> int:
    for index, units in enumerate(LAYERS):
        if unit in units:
            return index
    raise AssertionError(f"vlmsae.{unit} is in no layer of LAYERS: add it there and to the docs")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vlmsae"):
            found.add(node.module)
            if node.module == "vlmsae":
                found.update(f"vlmsae.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vlmsae"))
    return {name for name in found if name != "vlmsae"}


def _module_imports() -> list[tuple[str, str, str]]:
    """(file, its unit, a vlmsae module it imports) for every import of every module of a unit
    (vlmsae/__init__.py belongs to none), function-level imports included."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = relative.parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) == 1:
            continue  # vlmsae/__init__.py
        own = _unit(".".join(parts))
        file = f"{'/'.join(relative.parts)}.py"
        found.extend((file, own, imported) for imported in _imports(path))
    return found


def _unit_graph() -> dict[str, dict[str, list[str]]]:
    """unit → {another unit it imports: the imports that do, as `file imports module`}."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for file, own, imported in _module_imports():
        if _unit(imported) != own:
            graph[own][_unit(imported)].append(f"{file} imports {imported}")
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(unit: str) -> None:
        index[unit] = low[unit] = len(index)
        stack.append(unit)
        on_stack.add(unit)
        for imported in graph.get(unit, {}):
            if imported not in index:
                visit(imported)
                low[unit] = min(low[unit], low[imported])
            elif imported in on_stack:
                low[unit] = min(low[unit], index[imported])
        if low[unit] == index[unit]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == unit:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for unit in sorted(graph):
        if unit not in index:
            visit(unit)
    return sorted(components)


def test_no_import_points_up():
    upward = [
        f"{file} imports {imported}"
        for file, own, imported in _module_imports()
        if _layer(_unit(imported)) > _layer(own)
    ]
    assert upward == []


def test_no_import_cycle_between_units():
    graph = _unit_graph()
    cycles = {
        " ⇄ ".join(component): [
            line
            for unit in component
            for imported, lines in sorted(graph[unit].items())
            if imported in component
            for line in lines
        ]
        for component in _cycles(graph)
    }
    assert cycles == {}


def test_no_two_units_of_one_layer_import_each_other():
    graph = _unit_graph()
    mutual = {
        f"{unit} ⇄ {sibling}": graph[unit][sibling] + graph[sibling][unit]
        for unit in sorted(graph)
        for sibling in sorted(graph[unit])
        if unit < sibling and _layer(unit) == _layer(sibling) and unit in graph.get(sibling, {})
    }
    assert mutual == {}


def test_cycles_finds_a_cycle_through_three_units_and_only_it():
    graph = {"a": {"b": []}, "b": {"c": []}, "c": {"a": [], "d": []}, "d": {"e": []}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_a_module_named_in_layers_is_its_own_unit_and_the_rest_of_its_package_another():
    assert _unit("vlmsae.stores.build") == "stores.build"
    assert _unit("vlmsae.stores.embedding_store") == "stores"
    assert _unit("vlmsae.stores") == "stores"
    assert _unit("vlmsae.metrics.gap") == "metrics"
    assert _layer("stores.build") > _layer("datasets") > _layer("stores")
