"""Layers only import downwards: a module imports from its own layer or the ones below it, never above.

Read from the source (every `import`, at the top or inside a function), so a lazy import cannot hide an
upward dependency. The layers, lowest first, are the order to read the code in: plain helpers, the
config, data and networks, losses and pseudo-anomaly sources, the run folder, training, then the
commands built on a trained run. `pseudovad/__init__.py` is the package's facade (`load`), above all.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pseudovad"
LAYERS = [
    {"errors", "files", "registry", "interrupts", "alerts"},
    {"config"},
    {"data", "models", "metrics"},
    {"losses", "pseudo_anomalies"},
    {"checkpoint", "runs"},
    {"training"},
    {"evaluation", "calibration", "experiment"},
    {"detector"},
    {"reporting", "export"},
    {"scoring"},
    {"cli", "__main__", "__init__"},
]
LAYER = {unit: height for height, units in enumerate(LAYERS) for unit in units}


def unit(module: str) -> str:
    """The layer unit of a dotted module name: its top-level module or package under pseudovad."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported(path: Path) -> set[str]:
    """Every pseudovad module `path` imports, by absolute dotted name."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            source = ".".join([*base, node.module] if node.module else base)
            # `from pseudovad import x` imports the module pseudovad.x (or the facade's name x)
            names.update(f"{source}.{alias.name}" for alias in node.names) if source == "pseudovad" else names.add(source)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "pseudovad" or name.startswith("pseudovad.")}


def test_every_module_has_a_layer():
    units = {unit(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    assert units - set(LAYER) == set(), "add the new module to LAYERS"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = unit(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for name in sorted(imported(path)):
            if name == "pseudovad.__version__":
                continue  # the version string, which the facade holds; not its `load`
            if LAYER[unit(name)] > LAYER[own]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert upward == []
