"""Figures from runs and checkpoints: learning curves, the learned group graph, replay GIFs.

    bmf-plot curves runs/ --out assets/ --smooth 5
    bmf-plot groups RUN --step -1 --out plots/     # the episode's last step
    bmf-plot strip RUN/checkpoints/model_final.safetensors --steps 0,10,20,30 --out plots/
    bmf-plot gif RUN --opponent random --out plots/

A model is a model file or a run folder (its ``checkpoints/model_final.safetensors``); play is greedy
unless ``--sampled`` and uses the run's ``threads`` unless ``--threads``. Negative steps count
from the end of the episode (``-1``: its last step). Runs of several tasks get one panel per
task. ``--out`` is a file (``.png`` / ``.gif``) or a folder (a default file name is used); an existing
file is kept unless ``--overwrite``. Every function returns what it drew, for tests and reuse.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bmf_graph.training.checkpoint import seed_everything  # noqa: E402
from bmf_graph.config import Config  # noqa: E402
from bmf_graph.envs.gif import save_episode_gif  # noqa: E402
from bmf_graph.files import atomic_write  # noqa: E402
from bmf_graph.experiments.group_graph import (GroupSnapshot, capture_groups, draw_snapshot, legend_handles,  # noqa: E402
                                   snapshot_title)
from bmf_graph.training.run_files import read_csv as read_metrics  # noqa: E402
from bmf_graph.training.evaluation import read_eval  # noqa: E402
from bmf_graph.training.players import Driver, read_run_config, setup_play  # noqa: E402

__all__ = ["Curve", "CurvePlot", "GroupFigure", "learning_curves", "run_labels", "smooth_series", "group_graph",
           "group_strip", "replay_gif", "output_path"]
X_AXES = ("episode", "env_steps")
ALGO_NAMES = {"q": "Q", "mfq": "MFQ", "ac": "AC", "mfac": "MFAC", "gat_mf": "GAT-MF", "bmf_q": "BMF-Q",
              "bmf_ac": "BMF-AC"}
"""How figures name the algorithms (the paper's names)."""
METRIC_NAMES = {"charts/return": "episode return of the learning team", "charts/entropy": "policy entropy (nats)",
                "charts/epsilon": "exploration epsilon", "charts/temperature": "Boltzmann temperature",
                "charts/groups": "non-empty groups", "perf/sps": "env steps per second",
                "eval/return_greedy": "evaluation return (frozen policy, greedy)",
                "eval/return_mode": "evaluation return (frozen policy, its mode)",
                "eval/return_sampled": "evaluation return (frozen policy, sampled)"}
"""Axis labels of the usual ``metrics.csv`` columns (others are shown by their column name)."""
TASK_NAMES = {"firefighter": "Firefighter", "battle": "Battle", "pursuit": "Adversarial Pursuit", "vmas": "VMAS"}


def output_path(out: Path | str, default_name: str, suffix: str, overwrite: bool) -> Path:
    """``out`` itself when it ends in ``suffix``, else ``out/default_name``; refuses an
    existing file unless ``overwrite``."""
    out = Path(out)
    if out.suffix and out.suffix.lower() != suffix and not out.is_dir():
        raise ValueError(f"out={str(out)!r} ends in {out.suffix!r}; expected a {suffix} file or a folder")
    if out.suffix.lower() != suffix and out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out={str(out)!r} is a file; expected a {suffix} file name or a folder")
    path = out if out.suffix.lower() == suffix else out / default_name
    if path.is_dir():
        raise IsADirectoryError(f"out={str(path)!r} is a folder; expected a {suffix} file name")
    if path.exists() and not overwrite:
        raise FileExistsError(f"out={str(path)!r} exists; pass overwrite=True (--overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig: Any, path: Path, overwrite: bool, **savefig: Any) -> None:
    """Write ``fig`` as PNG through a temporary file; without ``overwrite`` a file that appeared
    at ``path`` in the meantime is kept. Closes the figure."""
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, **savefig), overwrite)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------ learning curves
@dataclass
class Curve:
    """One line: mean and std over ``runs`` seeds at each ``x``."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    runs: list[str]


@dataclass
class CurvePlot:
    """The written PNG, the curves drawn by label and the (closed) figure; usable as a path
    (``os.fspath``)."""

    path: Path
    curves: dict[str, Curve] = field(default_factory=dict)
    figure: Any = None

    def __fspath__(self) -> str:
        return str(self.path)


def find_runs(paths: Sequence[Path | str]) -> list[Path]:
    """Run folders (holding ``metrics.csv``) among ``paths`` and their direct children."""
    runs = []
    for p in map(Path, paths):
        found = [p] if (p / "metrics.csv").is_file() else sorted(c for c in p.glob("*") if (c / "metrics.csv").is_file())
        if not found:
            raise FileNotFoundError(f"learning_curves: {str(p)!r} is not a run folder (no metrics.csv) and holds none")
        runs += found
    return runs


def _settings(cfg: Config) -> dict[str, Any]:
    """The settings that tell runs of one algorithm apart (all but seeds and names)."""
    out = {k: v for k, v in dataclasses.asdict(cfg.algo).items() if k != "name"}
    out.update({k: v for k, v in cfg.env.kwargs.items()})
    out["radius"] = cfg.env.radius
    return out


def _setting_label(key: str, value: Any) -> str:
    if key == "grouping":
        return f" ({value})"
    return f" k={value}" if key == "num_groups" else f" {key}={value}"


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Label per run: the algorithm, plus the settings that differ across the runs of that
    algorithm (``bmf_q (random)`` for the grouping, ``bmf_q k=2``, ``mfq lr=0.01``), prefixed
    by ``conf:`` when confs differ. Seeds of otherwise equal runs share a label."""
    cfgs = [read_run_config(d / "config.yaml") for d in run_dirs]
    settings = [_settings(c) for c in cfgs]
    confs = {c.conf for c in cfgs}
    labels = []
    for c, mine in zip(cfgs, settings):
        same = [s for o, s in zip(cfgs, settings) if o.algo.name == c.algo.name and o.conf == c.conf]
        differ = [k for k in mine if len({repr(s.get(k)) for s in same}) > 1]
        label = c.algo.name
        for key in sorted(differ, key=lambda k: (k != "grouping", k != "num_groups", k)):
            label += _setting_label(key, mine.get(key))
        labels.append(f"{c.conf}: {label}" if len(confs) > 1 else label)
    return labels


def smooth_series(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    if window < 1:
        raise ValueError(f"smooth={window!r}; expected a window of >= 1 points")
    c = np.cumsum(np.insert(y, 0, 0.0))
    i = np.arange(1, len(y) + 1)
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)


def _series(run: Path, metric: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, metric)`` of a run: from ``metrics.csv``, or from ``eval.csv`` for an ``eval/``
    metric (the frozen policy's evaluations, against the episode)."""
    if metric.startswith("eval/"):
        if x != "episode":
            raise ValueError(f"learning_curves: metric={metric!r} is logged per evaluation episode; expected x='episode'")
        rows = [r for r in read_eval(run) if metric in r] if (run / "eval.csv").is_file() else []
    else:
        rows = [r for r in read_metrics(run) if metric in r]
    if not rows:
        raise ValueError(f"learning_curves: run {run} has no values of metric={metric!r}")
    return np.array([r[x] for r in rows]), np.array([r[metric] for r in rows])


def aggregate(series: Sequence[tuple[np.ndarray, np.ndarray]], x: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std (``ddof=0``) over runs: on the episodes all runs share (``x="episode"``),
    or interpolated on the first run's steps within the range all runs cover (``env_steps``)."""
    if x == "episode":
        common = sorted(set.intersection(*(set(xs.tolist()) for xs, _ in series)))
        grid = np.array(common, dtype=float)
        ys = np.stack([ys[np.searchsorted(xs, grid)] for xs, ys in series]) if len(grid) else np.zeros((len(series), 0))
    else:
        end = min(xs[-1] for xs, _ in series)
        grid = series[0][0][series[0][0] <= end]
        ys = np.stack([np.interp(grid, xs, y) for xs, y in series])
    return grid, ys.mean(0), ys.std(0)


def learning_curves(run_dirs: Sequence[Path | str], out: Path | str, metric: str = "charts/return",
                    smooth: int = 1, x: str = "episode", title: str | None = None,
                    overwrite: bool = False) -> CurvePlot:
    """One line per algorithm (mean over seeds) with a ±std band, from run folders; one panel
    per task (``conf``) when the runs come from several.

    Args:
        run_dirs: run folders, or folders of run folders.
        out: PNG file or folder (``learning_curves.png``).
        metric: a ``metrics.csv`` column, or an ``eval.csv`` one (``eval/return_greedy``, the
            frozen policy's evaluation return: the learning curve RESULTS.md reports).
        smooth: trailing moving-average window applied to each run before averaging.
        x: ``"episode"`` or ``"env_steps"``.
    """
    if x not in X_AXES:
        raise ValueError(f"learning_curves: x={x!r}; expected one of {', '.join(X_AXES)}")
    path = output_path(out, "learning_curves.png", ".png", overwrite)
    runs = find_runs(run_dirs)
    tasks: dict[str, dict[str, list[Path]]] = {}  # conf -> label -> runs
    for run, label in zip(runs, run_labels(runs)):
        conf = read_run_config(run / "config.yaml").conf
        tasks.setdefault(conf, {}).setdefault(label, []).append(run)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.4 * len(tasks), 4.2), squeeze=False)
    result = CurvePlot(path, figure=fig)
    for ax, conf in zip(axes[0], sorted(tasks)):
        for label in sorted(tasks[conf]):
            series = [_series(r, metric, x) for r in tasks[conf][label]]
            series = [(xs, smooth_series(ys, smooth)) for xs, ys in series]
            grid, mean, std = aggregate(series, x)
            line, = ax.plot(grid, mean, label=f"{display_label(label)} (n={len(series)})", linewidth=1.5)
            ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
            result.curves[label] = Curve(grid, mean, std, [str(r) for r in tasks[conf][label]])
        ax.set_xlabel("episode" if x == "episode" else "environment steps")
        ax.set_ylabel(METRIC_NAMES.get(metric, metric))
        task = TASK_NAMES.get(conf, conf)
        ax.set_title(title or f"{task}: mean ± std over seeds" + (f", smoothed over {smooth}" if smooth > 1 else ""),
                     fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, overwrite)
    return result


def display_label(label: str) -> str:
    """A run label as figures show it: the paper's algorithm name, without a ``conf:`` prefix
    (each task has its own panel): ``"battle: bmf_q k=2"`` -> ``"BMF-Q k=2"``."""
    label = label.split(": ", 1)[-1]
    algo, _, rest = label.partition(" ")
    return " ".join(filter(None, [ALGO_NAMES.get(algo, algo), rest]))


# ------------------------------------------------------------------------ group graph
@dataclass
class GroupFigure:
    """The written PNG, the snapshots drawn, the artists of each panel and the (closed) figure."""

    path: Path
    snapshots: list[GroupSnapshot]
    drawn: list[Any]
    figure: Any = None

    def __fspath__(self) -> str:
        return str(self.path)


PANEL_INCHES = 4.0
"""Side of one group-graph panel's longer axis; with the legend column a one-panel figure is
about 780 x 560 px at the 120 dpi of :func:`save_figure`, legible at 100 %."""


def _draw_panels(snaps: list[GroupSnapshot], out: Path, min_weight: float, title: str,
                 overwrite: bool) -> tuple[list[Any], Any]:
    n = len(snaps)
    fig, axes = plt.subplots(1, n, figsize=(PANEL_INCHES * n + 2.4, PANEL_INCHES + 0.9), squeeze=False)
    drawn = [draw_snapshot(ax, s, min_weight) for ax, s in zip(axes[0], snaps)]
    for get, set_ in (("get_xlim", "set_xlim"), ("get_ylim", "set_ylim")):  # one frame for all panels
        limits = np.array([getattr(ax, get)() for ax in axes[0]])
        low, high = limits.min(), limits.max()
        for ax in axes[0]:
            getattr(ax, set_)((high, low) if limits[0, 0] > limits[0, 1] else (low, high))
    (x0, x1), (y0, y1) = axes[0][0].get_xlim(), axes[0][0].get_ylim()
    ratio = min(max(abs(y1 - y0) / max(abs(x1 - x0), 1e-9), 0.4), 1.5)
    fig.set_size_inches(PANEL_INCHES * n / max(ratio, 1.0) + 2.4, PANEL_INCHES * min(ratio, 1.0) + 0.9)
    if n == 1:  # one title line: the run and the step
        axes[0][0].set_title(f"{title}, {snapshot_title(snaps[0])}", fontsize=9)
    else:
        heading = fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if n > 1:  # centred over the panels, not over the legend
        heading.set_x((axes[0][0].get_position().x0 + axes[0][-1].get_position().x1) / 2)
    right = axes[0][-1].get_position().x1 + 0.02
    houses = next((d.houses for d in drawn if d.houses is not None), None)
    if houses is not None:  # Firefighter: one fire-level scale for every panel; levels above it look alike
        above = any(s.houses is not None and (s.houses[1] > s.houses[2]).any() for s in snaps)
        bar = fig.colorbar(houses, ax=list(axes[0]), label="fire level", fraction=0.04, pad=0.02,
                           extend="max" if above else "neither")
        right = bar.ax.get_position().x1 + 0.09  # past the bar's tick labels and label
    fig.legend(handles=legend_handles(snaps), loc="center left", bbox_to_anchor=(right, 0.5), fontsize=7,
               frameon=False, labelspacing=0.9, borderaxespad=0)
    save_figure(fig, out, overwrite, bbox_inches="tight")  # keeps the legend and colour bar inside
    return drawn, fig


def group_strip(checkpoint: Any, out: Path | str, steps: Sequence[int] | None = None, panels: int = 4,
                env_name: str | None = None, env_kwargs: Mapping[str, Any] | None = None, seed: int = 0,
                team: int = 0, opponent: Any = None, deterministic: bool = True, min_weight: float = 0.0,
                device: torch.device | str = "cpu", overwrite: bool = False) -> GroupFigure:
    """Snapshots of the group graph side by side over one episode (regrouping over time).

    Args:
        checkpoint: a BMF model file (env defaults to its run's) or model object.
        out: PNG file or folder (``group_strip.png``).
        steps: steps to draw, negative ones from the end (``-1``: the last step); ``None``:
            ``panels`` steps evenly spaced over the episode.
        team: the team whose groups are drawn; others play ``opponent`` (``None``: the model
            itself where the spaces match, else ``"random"``) and are drawn grey.
        min_weight: draw the arrow ``n -> m`` only when ``w_mn > min_weight``.
    """
    if steps is None and panels < 1:
        raise ValueError(f"group_strip: panels={panels!r}; expected >= 1")
    path = output_path(out, "group_strip.png", ".png", overwrite)
    from_end = steps is not None and any(s < 0 for s in steps)
    env, task, _, policies = setup_play(checkpoint, env_name, env_kwargs, team, opponent, device)
    try:
        snaps = capture_groups(policies[team], env, policies, None if from_end else steps, seed, team,
                               deterministic, device)
    finally:
        env.close()
    if steps is None:
        pick = np.unique(np.linspace(0, len(snaps) - 1, min(panels, len(snaps))).round().astype(int))
        snaps = [snaps[i] for i in pick]
    elif from_end:
        if any(not -len(snaps) <= s < len(snaps) for s in steps):
            raise ValueError(f"group_strip: steps={list(steps)!r} but the episode (seed {seed}) has {len(snaps)} "
                             f"steps; choose steps in -{len(snaps)}..{len(snaps) - 1}")
        snaps = [snaps[i] for i in sorted({s % len(snaps) for s in steps})]
    name = getattr(getattr(policies[team], "cfg", None), "name", "model")
    name = ALGO_NAMES.get(name, name)
    drawn, fig = _draw_panels(snaps, path, min_weight, f"{name} on {TASK_NAMES.get(task, task)}, seed {seed}",
                              overwrite)
    return GroupFigure(path, snaps, drawn, fig)


def group_graph(checkpoint: Any, out: Path | str, step: int = 0, **kwargs: Any) -> GroupFigure:
    """The group graph at one ``step`` (default file ``group_graph.png``); other arguments as
    :func:`group_strip`."""
    out = Path(out)
    return group_strip(checkpoint, out if out.suffix.lower() == ".png" else out / "group_graph.png", steps=[step], **kwargs)


# ------------------------------------------------------------------------ replay GIF
def replay_gif(checkpoint: Any, out: Path | str, opponent: Any = None, env_name: str | None = None,
               env_kwargs: Mapping[str, Any] | None = None, seed: int = 0, team: int = 0,
               deterministic: bool = True, max_steps: int | None = None, fps: float = 10,
               device: torch.device | str = "cpu", overwrite: bool = False) -> Path:
    """A GIF of one episode: ``checkpoint`` plays ``team``, ``opponent`` the others (``None``:
    the model itself where the spaces match, else ``"random"``). ``out``: GIF file or folder
    (``replay.gif``)."""
    path = output_path(out, "replay.gif", ".gif", overwrite)
    env, _, _, policies = setup_play(checkpoint, env_name, env_kwargs, team, opponent, device)
    try:
        seed_everything(seed)
        driver = Driver(policies, [t.num_actions for t in env.teams], device, None if deterministic else 1.0)
        return save_episode_gif(env, path, driver, seed=seed, max_steps=max_steps, fps=fps, overwrite=overwrite)
    finally:
        env.close()
