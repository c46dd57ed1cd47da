"""Every import points down: no featpipe module imports a package of a higher layer.

The layers, top to bottom (docs/ARCHITECTURE.md): the command line; the service; pipelines
(spec, stages, runs, extract jobs); feature stores; data sets, features, heads and reports,
side by side; and the shared modules at the package's root (cache, model files, chunked
execution, errors). Imports are read with ``ast``, including those inside functions, so a
lazy import cannot hide an upward dependency.
"""

import ast
from pathlib import Path

import pytest

import featpipe

PACKAGE_ROOT = Path(featpipe.__file__).parent

LAYERS = {
    "featpipe.cli": 5,
    "featpipe.serve": 4,
    "featpipe.pipeline": 3,
    "featpipe.store": 2,
    "featpipe.datasets": 1,
    "featpipe.features": 1,
    "featpipe.heads": 1,
    "featpipe.report": 1,
}
"""Package (or top-level module) -> layer; any other featpipe module is layer 0."""

OLD_PATHS = {"featpipe.spec"}
"""Modules kept only so that an old import path keeps working; they re-export from above."""


def _module_name(path):
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module):
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return 0


def _imported_modules(path, module):
    """Absolute names of the featpipe modules a source file imports, anywhere in it."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            names.append(target)
    return [name for name in names if name == "featpipe" or name.startswith("featpipe.")]


SOURCES = sorted(PACKAGE_ROOT.rglob("*.py"))


def test_the_layer_table_names_real_packages():
    for prefix in LAYERS:
        if prefix == "featpipe.serve" and not (PACKAGE_ROOT / "serve").exists():
            continue
        relative = Path(*prefix.split(".")[1:])
        assert (PACKAGE_ROOT / relative).is_dir() or (PACKAGE_ROOT / relative).with_suffix(".py").is_file()


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PACKAGE_ROOT)))
def test_imports_point_down(path):
    module = _module_name(path)
    if module in OLD_PATHS:
        return
    upward = [name for name in _imported_modules(path, module) if _layer(name) > _layer(module)]
    assert upward == [], f"{module} (layer {_layer(module)}) imports a higher layer: {upward}"


def test_the_checker_sees_upward_imports_inside_functions_and_relative_ones(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from ..pipeline import run\n    import featpipe.cli\n    from . import core\n")
    found = _imported_modules(planted, "featpipe.datasets.planted")
    assert found == ["featpipe.pipeline", "featpipe.cli", "featpipe.datasets"]
    assert [_layer(name) > _layer("featpipe.datasets.planted") for name in found] == [True, True, False]
