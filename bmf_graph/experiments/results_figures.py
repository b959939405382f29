"""The figures of RESULTS.md: learning curves per task, the head-to-head heat map, the
zero-shot bars, dot-and-interval plots of final evaluation returns and the league ratings.

Every label keeps one colour in every figure (:func:`label_color`). Written with fixed
metadata, so the same artifacts give the same files.
"""
from __future__ import annotations

import textwrap
import zlib
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bmf_graph.training.run_files import read_csv as read_metrics  # noqa: E402
from bmf_graph.experiments.plot import aggregate, smooth_series  # noqa: E402
from bmf_graph.experiments.results_stats import cluster_bootstrap, method_order  # noqa: E402

METADATA = {"Software": None}
"""PNG metadata: no matplotlib version string, so the bytes depend on the data only."""

LABEL_COLORS = {
    # the paper's methods
    "q": "#8c564b", "mfq": "#ff7f0e", "ac": "#bcbd22", "mfac": "#e377c2", "gat_mf": "#9467bd",
    "bmf_q": "#1f77b4", "bmf_ac": "#d62728",
    # variants: the ablations of BMF-Q and the released code's BMF-AC
    "bmf_q-ae": "#2ca02c", "bmf_q-rc": "#17becf", "bmf_q-gat": "#393b79", "bmf_q-cosine": "#ad494a",
    "bmf_q-k2": "#c5b0d5", "bmf_q-k4": "#7b4173", "bmf_q-k16": "#8c6d31", "bmf_ac-released": "#e7ba52",
    # yardsticks
    "random": "#7f7f7f", "scripted": "#000000",
}
"""The colour of each label in every figure (a label names a method or a variant)."""

OTHER_COLORS = tuple(plt.get_cmap("tab20b").colors) + tuple(plt.get_cmap("tab20c").colors)
"""Colours of labels :data:`LABEL_COLORS` does not name, picked by a hash of the label."""


def label_color(label: str) -> str | tuple[float, ...]:
    """The label's colour, the same in every figure: :data:`LABEL_COLORS`, else a colour of
    :data:`OTHER_COLORS` chosen by the label's CRC-32 (stable across runs and machines)."""
    if label in LABEL_COLORS:
        return LABEL_COLORS[label]
    return OTHER_COLORS[zlib.crc32(label.encode()) % len(OTHER_COLORS)]


def spread(counts: Sequence[int]) -> str:
    """What a band or error bar over ``counts`` runs per label shows: ``"mean ± std over seeds"``,
    or ``"one run each"`` when every label has a single run (no spread to show)."""
    return "one run each" if max(counts, default=0) <= 1 else "mean ± std over seeds"


def curves_figure(task: str, groups: dict, assets: Path, points: int = 50) -> Path:
    """Mean ± std over seeds of ``charts/return`` per label against the episode, each run
    smoothed by a trailing window of ``episodes / points`` episodes; ``assets/results_{task}.png``.
    Labels in the paper's order, each in its colour (:func:`label_color`), the legend beside the
    axes; a label of one run is a line without a band."""
    path = assets / f"results_{task}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    for label in method_order(groups):
        color = label_color(label)
        series = []
        for run in groups[label]:
            rows = [r for r in read_metrics(run.path) if "charts/return" in r]
            x = np.array([r["episode"] for r in rows])
            y = np.array([r["charts/return"] for r in rows])
            series.append((x, smooth_series(y, max(1, len(y) // points))))
        grid, mean, std = aggregate(series, "episode")
        ax.plot(grid, mean, label=f"{label} (n={len(series)})", linewidth=1.4, color=color)
        if len(series) > 1:
            ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.18, linewidth=0)
    ax.set_xlabel("training episode")
    ax.set_ylabel("return of the learning team")
    ax.set_title(f"{task}: {spread([len(runs) for runs in groups.values()])}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=METADATA)
    plt.close(fig)
    return path


def head_to_head_figure(names: Sequence[str], win_rate: Sequence[Sequence[float | None]], assets: Path) -> Path:
    """Heat map of the row player's win rate against each column; ``assets/results_head_to_head.png``."""
    path = assets / "results_head_to_head.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = np.array([[np.nan if v is None else v for v in row] for row in win_rate], dtype=float)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.7 * n))
    image = ax.imshow(rate, vmin=0, vmax=1, cmap="RdBu")
    for i in range(n):
        for j in range(n):
            if not np.isnan(rate[i, j]):
                ax.text(j, i, f"{rate[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("opponent (column)")
    ax.set_ylabel("player (row)")
    fig.colorbar(image, ax=ax, label="win rate of row")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=METADATA)
    plt.close(fig)
    return path


def zero_shot_figure(opponent: str, table: dict[int, dict[str, list[float]]], assets: Path) -> Path:
    """Bars of the mean return per agent of the model's team (± std over seeds) per team size,
    one bar per label in its colour, against ``opponent``; ``assets/results_zero_shot_{opponent}.png``.
    ``table[n][label]`` holds team returns of games of ``n`` agents, two teams of ``n / 2``: a team's
    return sums over its agents and so grows with the team, its per-agent value compares across sizes."""
    path = assets / f"results_zero_shot_{opponent}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    sizes = sorted(table)
    labels = method_order(label for cells in table.values() for label in cells)
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(sizes), 3.8))
    for k, label in enumerate(labels):
        values = [np.asarray(table[n].get(label, []), dtype=float) / (n / 2) for n in sizes]
        mean = [float(np.mean(v)) if len(v) else np.nan for v in values]
        std = [float(np.std(v)) if len(v) else 0.0 for v in values]
        ax.bar(np.arange(len(sizes)) + (k - (len(labels) - 1) / 2) * width, mean, width, yerr=std,
               capsize=2, label=label, color=label_color(label))
    ax.set_xticks(range(len(sizes)), [f"{n:,}" for n in sizes])
    ax.set_xlabel("agents per game (trained at 128)")
    ax.set_ylabel("return per agent of the model's team")
    counts = [len(values) for cells in table.values() for values in cells.values()]
    ax.set_title(f"zero-shot against {opponent}: {spread(counts)}", fontsize=10)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=METADATA)
    plt.close(fig)
    return path


def dot_interval_figure(name: str, title: str, values: dict[str, list[float]], xlabel: str, assets: Path,
                        draws: int = 1000) -> Path:
    """One row per method, ranked by its mean: a dot per seed, the mean over seeds and its 95 %
    cluster-bootstrap interval (seeds resampled); ``assets/results_{name}.png``. Shows a ranking
    where overlapping learning curves hide it."""
    path = assets / f"results_{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = sorted((k for k, v in values.items() if v), key=lambda k: float(np.mean(values[k])))
    title = textwrap.fill(title, 90)  # long titles wrap rather than run off the figure
    fig, ax = plt.subplots(figsize=(6.4, 0.75 + 0.15 * title.count("\n") + 0.45 * len(labels)))
    for row, label in enumerate(labels):
        mean, low, high = cluster_bootstrap(values[label], draws)
        ax.plot([low, high], [row, row], color="black", linewidth=1.6)
        ax.plot([mean], [row], "o", color="black", markersize=6)
        ax.plot(values[label], [row] * len(values[label]), "o", color="tab:blue", alpha=0.5, markersize=4)
    ax.set_yticks(range(len(labels)), [f"{k} (n={len(values[k])})" for k in labels], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=METADATA)
    plt.close(fig)
    return path


def league_figure(summary: dict, assets: Path) -> Path:
    """League ratings: each method's mean rating with its 95 % interval over seeds, a dot per
    model, the yardsticks as vertical lines; ``assets/results_league.png``."""
    path = assets / "results_league.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    methods = sorted(summary["methods"], key=lambda m: summary["methods"][m]["rating"])
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.45 * len(methods)))
    for row, method in enumerate(methods):
        r = summary["methods"][method]
        ax.plot([r["low"], r["high"]], [row, row], color="black", linewidth=1.6)
        ax.plot([r["rating"]], [row], "o", color="black", markersize=6)
        models = [v for k, v in summary["models"].items() if k.split("/")[0] == method]
        ax.plot(models, [row] * len(models), "o", color="tab:blue", alpha=0.5, markersize=4)
    for name, value in summary["yardsticks"].items():
        ax.axvline(value, color="tab:red" if name == "scripted" else "gray", linestyle="--", linewidth=1)
        ax.text(value, -0.75, f" {name}", fontsize=7, va="center")
    ax.set_ylim(-1.0, len(methods) - 0.5)
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    ax.set_xlabel("Bradley–Terry rating (Elo scale, random team = 0)")
    ax.set_title(f"Battle league, {summary['games']:,} games: 95 % intervals over seeds", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=METADATA)
    plt.close(fig)
    return path
