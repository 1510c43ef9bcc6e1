"""The packages stack in layers, so no import circle can form between them: tasks (the pipeline's
stages) imports none of the others; flows (Prefect flows, deployments, the Prefect server) imports
tasks only; service (the HTTP service) imports tasks and flows; cli may import any of them. Every
import counts, also those inside functions."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("tasks", "flows", "service", "cli")  # each may import only those before it


def imported_packages(path: Path) -> list[tuple[str, int]]:
    """(top-level package, line) of every import in `path` that names one of LAYERS."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [(name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in LAYERS]
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    offenders = [f"{path.relative_to(ROOT)}:{line}: imports {name}"
                 for path in files for name, line in imported_packages(path) if name not in allowed]
    assert offenders == [], f"{package}/ may import only {sorted(allowed)}:\n" + "\n".join(offenders)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from service.app import create_app\n    import cli.main\n")
    assert imported_packages(module) == [("service", 4), ("cli", 5)]


def test_the_data_flow_map_names_functions_that_exist() -> None:
    """tasks/__init__.py's map of the stages: every `module.function` it names is there."""
    import tasks

    modules = {m.name for m in pkgutil.iter_modules(tasks.__path__)}
    named = [(mod, fn) for mod, fn in re.findall(r"\b([a-z_]+)\.([a-z_]+)\b", tasks.__doc__ or "") if mod in modules]
    assert len(named) >= 12
    missing = [f"{mod}.{fn}" for mod, fn in named if not hasattr(importlib.import_module(f"tasks.{mod}"), fn)]
    assert missing == []
