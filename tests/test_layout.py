"""The package layout: layers that import only downwards, and the public API of DESIGN §5
importable from a fresh interpreter."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bmf_graph"
LAYERS = [{"checks", "files"}, {"graph"}, {"nn", "envs"}, {"config"}, {"algos", "integrations"}, {"training"},
          {"experiments"}, {"cli"}]
"""Bottom to top: a module may import its own package and those of lower layers only."""
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str:
    """``bmf_graph.training.trainer`` -> ``training``; ``bmf_graph.checks`` -> ``checks``."""
    return module.split(".")[1]


def imports(path: Path) -> set[str]:
    """Every ``bmf_graph.*`` module a file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bmf_graph."):
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "bmf_graph":
            found.update(f"bmf_graph.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("bmf_graph."))
    return found


def upward_imports(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        if len(relative.parts) < 2 or relative.parts[1] == "__init__":
            continue
        own = relative.parts[1]
        for module in imports(path):
            if LAYER[unit(module)] > LAYER[own]:
                bad.append(f"{'/'.join(relative.parts)} imports {module}")
    return bad


def test_every_package_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert units - {"conf"} == set(LAYER)


def test_test_folders_mirror_the_packages():
    """``tests/{package}/`` for a subpackage's tests (STYLE: tests mirror ``bmf_graph/``): no test
    folder without its package; the base modules' tests and the checks of the repo sit at the top."""
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders <= packages, f"test folders without a package: {sorted(folders - packages)}"


def test_no_package_imports_a_higher_layer():
    assert upward_imports() == []


def test_an_upward_import_is_caught(tmp_path):
    """The check itself: an algorithm importing the trainer is reported."""
    (tmp_path / "bmf_graph" / "algos").mkdir(parents=True)
    (tmp_path / "bmf_graph" / "algos" / "bad.py").write_text("def f():\n    from bmf_graph.training.trainer import Trainer\n")
    assert upward_imports(tmp_path / "bmf_graph") == ["bmf_graph/algos/bad imports bmf_graph.training.trainer"]


@pytest.mark.parametrize("statement", [
    "from bmf_graph.graph import radius_graph",
    "from bmf_graph.nn import (MeanField, IntraGroupMeanField, InterGroupAttention, GATMeanField, AgentVAE, KMeans, "
    "DynamicGrouping)",
    "from bmf_graph.envs import firefighter, battle, pursuit",
])
def test_design_public_api_imports_in_a_fresh_interpreter(statement, tmp_path):
    result = subprocess.run([sys.executable, "-c", statement], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
