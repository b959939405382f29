"""The console commands a ``pip install`` puts on the path (``[project.scripts]`` in
pyproject.toml), each also a ``python -m`` module:

| command | module |
|---|---|
| ``bmf-train`` | :mod:`bmf_graph.cli.train` (``python train.py`` in a checkout) |
| ``bmf-evaluate`` | :mod:`bmf_graph.cli.evaluation` (``python -m bmf_graph.evaluate``) |
| ``bmf-plot`` | :mod:`bmf_graph.plot` |
| ``bmf-sweep`` | :mod:`bmf_graph.sweep` |
| ``bmf-results`` | :mod:`bmf_graph.results` |

A console script exits with what its function returns, so these return the exit status
(the modules' ``main`` functions return their results for tests and reuse).
"""
from __future__ import annotations

import sys


def evaluate() -> int:
    from bmf_graph.cli.evaluation import main
    main(sys.argv[1:])
    return 0


def plot() -> int:
    from bmf_graph.plot import main
    main(sys.argv[1:])
    return 0


def sweep() -> int:
    from bmf_graph.sweep import main
    return main(sys.argv[1:])
