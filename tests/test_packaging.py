"""The wheel: every package listed, the task files of the top-level ``conf/`` carried inside it,
and ``bmf-train conf=NAME`` working from a folder outside the repository."""
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from bmf_graph.config import CONF_DIR
from bmf_graph.training.logging import read_metrics
from tiny_runs import FAST, TINY

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_task_files_live_at_the_top_and_every_package_is_listed():
    assert CONF_DIR == ROOT / "conf"
    assert {"battle", "firefighter", "pursuit"} <= {p.stem for p in CONF_DIR.glob("*.yaml")}
    assert not (ROOT / "bmf_graph" / "conf").exists()
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "bmf_graph").rglob("__init__.py")}
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == found | {"bmf_graph.conf"}
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"bmf_graph.conf": "conf"}


def test_wheel_carries_conf_and_trains_from_any_folder(tmp_path):
    """Build the wheel from a copy of the sources, install it into a folder of its own and run
    its ``bmf-train conf=firefighter`` from an empty folder: the run reads the task file the
    wheel carries (``bmf_graph/conf/``) and writes its metrics. Built without isolation, by the
    installed setuptools (torch 2.13 itself requires >= 77.0.3, as the build does)."""
    if int(version("setuptools").split(".")[0]) < 77:
        pytest.skip(f"setuptools {version('setuptools')} is older than the build's setuptools>=77")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source)
    for name in ("bmf_graph", "conf"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("bmf_graph-*.whl"))
    shipped = sorted(n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("bmf_graph/conf/"))
    assert shipped == sorted(f"bmf_graph/conf/{p.name}" for p in CONF_DIR.glob("*.yaml"))

    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the wheel's package before any other install
    run = subprocess.run([sys.executable, str(site / "bin" / "bmf-train"), "conf=firefighter", "algo=q",
                          "runs_dir=runs", "run_name=wheel", "train.episodes=2", *TINY["firefighter"], *FAST],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert [r["episode"] for r in read_metrics(elsewhere / "runs" / "wheel")] == [1, 2]
    where = subprocess.run([sys.executable, "-c", "import bmf_graph.config as c; print(c.CONF_DIR)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=300)
    assert Path(where.stdout.strip()) == site / "bmf_graph" / "conf"
