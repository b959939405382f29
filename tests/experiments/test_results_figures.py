"""The figures of RESULTS.md: one colour per label everywhere, zero-shot bars per agent, and
titles that say when a curve is a single run."""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgba

from bmf_graph.experiments import results_figures
from bmf_graph.experiments.results_figures import LABEL_COLORS, label_color, zero_shot_figure

ROOT = Path(__file__).resolve().parents[2]


def test_every_committed_label_has_its_own_colour():
    """Labels are the method folders of results/; within a task (one figure) no two share a colour,
    and a label's colour does not depend on the figure (it is a function of the label)."""
    tasks = [p for p in (ROOT / "results").iterdir() if p.is_dir()]
    for task in tasks:
        labels = [p.name for p in task.iterdir() if p.is_dir() and any(p.glob("seed*"))]
        colours = [to_rgba(label_color(label)) for label in labels]
        assert len(set(colours)) == len(labels), task.name
    assert len({to_rgba(c) for c in LABEL_COLORS.values()}) == len(LABEL_COLORS)
    assert label_color("something_new") == label_color("something_new")


def test_zero_shot_bars_are_per_agent_and_keep_label_colours(tmp_path, monkeypatch):
    """Team returns of games of n agents (two teams of n / 2) become bars of the return per agent,
    mean and std over seeds, each label in its colour; one value per cell is titled as one run."""
    bars = {}
    original = plt.Axes.bar

    def record(ax, x, height, *args, label=None, color=None, yerr=None, **kwargs):
        bars[label] = (list(height), list(yerr), color)
        return original(ax, x, height, *args, label=label, color=color, yerr=yerr, **kwargs)

    monkeypatch.setattr(plt.Axes, "bar", record)
    table = {128: {"bmf_q": [64.0, 128.0], "mfq": [32.0, 32.0]}, 512: {"bmf_q": [256.0, 512.0]}}
    titles = []
    monkeypatch.setattr(plt.Axes, "set_title", lambda ax, text, **kw: titles.append(text))
    assert zero_shot_figure("random", table, tmp_path).stat().st_size > 0
    heights, errors, colour = bars["bmf_q"]
    assert heights == pytest.approx([1.5, 1.5]) and errors == pytest.approx([0.5, 0.5])  # 64/64, 128/64 ...
    assert colour == LABEL_COLORS["bmf_q"] and bars["mfq"][2] == LABEL_COLORS["mfq"]
    assert np.isnan(bars["mfq"][0][1]) and titles == ["zero-shot against random: mean ± std over seeds"]
    zero_shot_figure("random", {128: {"bmf_q": [64.0]}}, tmp_path)
    assert titles[-1] == "zero-shot against random: one run each"
    assert results_figures.spread([1, 1]) == "one run each" and results_figures.spread([1, 3]) == "mean ± std over seeds"
