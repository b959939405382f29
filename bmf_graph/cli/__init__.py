"""The console commands a ``pip install`` puts on the path (``[project.scripts]`` in
pyproject.toml), each also a ``python -m`` module:

| command | module |
|---|---|
| ``bmf-train`` | :mod:`bmf_graph.cli.train` (``python train.py`` in a checkout) |
| ``bmf-evaluate`` | :mod:`bmf_graph.cli.evaluation` |
| ``bmf-plot`` | :mod:`bmf_graph.cli.plot` |
| ``bmf-sweep`` | :mod:`bmf_graph.cli.sweep` |
| ``bmf-results`` | :mod:`bmf_graph.cli.results` |

Each module's ``command()`` is the console script: it reads ``sys.argv`` and returns the exit
status. Its ``main(argv)`` is the same command for tests and reuse; ``bmf-evaluate`` and
``bmf-plot`` return what they computed or drew.
"""
