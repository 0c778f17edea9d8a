"""Imports only point down the layers of docs/architecture.md: no module imports a higher one."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vlmsae"

# Lowest first; a module may import its own layer and the ones below (docs/architecture.md).
LAYERS = [
    {"errors", "registry", "devices", "faults"},
    {"store", "manifest"},
    {"datasets", "models", "sae"},
    {"embedding", "training", "decode"},
    {"stores", "metrics", "interventions", "sweeps", "calibration", "health"},
    {
        "tables",
        "intervention_tables",
        "paper_tables",
        "synthetic_recovery",
        "figures",
        "explorer",
        "export",
        "fixtures",
    },
    {"config", "workflow", "failed_jobs"},
    {"cli"},
]


def _unit(module: str) -> str:
    """The layer unit of a dotted module name inside vlmsae (its first component)."""
    return module.split(".")[1] if "." in module else module


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


def test_no_import_points_up():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = relative.parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) == 1:
            continue  # vlmsae/__init__.py
        own = _layer(parts[1])
        for imported in _imports(path):
            if _layer(_unit(imported)) > own:
                upward.append(f"{'/'.join(relative.parts)}.py imports {imported}")
    assert upward == []
