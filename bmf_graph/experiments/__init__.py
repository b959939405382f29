"""Experiments on trained runs: evaluation (returns, head-to-head, zero-shot, the context-shuffle
test, the Battle league and the Pursuit pools), sweeps over methods and seeds, figures and the
tables of RESULTS.md. Each command is a console script (:mod:`bmf_graph.cli`).
"""
