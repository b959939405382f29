"""Train a team: ``bmf-train conf=firefighter [key=value ...]`` (``python train.py`` in a checkout).

Examples::

    bmf-train conf=firefighter
    bmf-train conf=battle algo=mfq seed=3 device=cuda train.episodes=200 algo.num_groups=6
    bmf-train conf=my_task.yaml                  # a task file of your own
    bmf-train resume=runs/firefighter__bmf_q__0__20260101-120000
    bmf-train conf=battle --help                 # every setting, with conf=battle's values

``conf=NAME`` picks a shipped task file (``conf/NAME.yaml``) or a YAML file by path;
every other ``key=value`` overrides one setting. A finished run ends with a summary: the final
training return (exploring), the last evaluation of the frozen policy (``eval.csv``), the best
episode, the wall time, the run folder and the commands to evaluate, plot and resume it (and,
for BMF, to draw its group graph). ``resume=`` on a run that had already finished trains nothing
and says so above the summary.
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from bmf_graph.algos import NonFiniteLoss
from bmf_graph.training.checkpoint import UnreadableFile
from bmf_graph.cli.settings import settings_help
from bmf_graph.config import conf_names, load_config
from bmf_graph.config.checks import ConfigError
from bmf_graph.files import DiskFull
from bmf_graph.training.logging import FINAL_FRACTION, final_mean
from bmf_graph.training.run_files import read_csv as read_metrics
from bmf_graph.training.evaluation import MODES, read_eval
from bmf_graph.training.runlock import RunLocked
from bmf_graph.training.trackers import check_trackers
from bmf_graph.training.trainer import train

HELP_FLAGS = ("-h", "--help")


def usage(argv: Sequence[str] = ()) -> str:
    """``--help``: this module's doc, the shipped task files and every setting with its doc and
    the value the other arguments of ``argv`` give it (``conf=firefighter`` when none is named)."""
    cfg = load_config([a for a in argv if a not in HELP_FLAGS])
    return (f"{__doc__.strip()}\n\nShipped task files (conf=NAME): {', '.join(conf_names())}\n\n"
            f"Settings, with their values under conf={cfg.conf} and the arguments given "
            f"([default X]: the value without a task file):\n\n{settings_help(cfg)}\n")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{seconds:.1f} s" if seconds < 60 else f"{minutes} min {rest:02d} s"


def _algo_name(run_dir: Path) -> str:
    """The run's ``algo.name`` from its ``config.yaml`` (empty when unreadable)."""
    try:
        return str(OmegaConf.select(OmegaConf.load(run_dir / "config.yaml"), "algo.name", default=""))
    except (OSError, ValueError):
        return ""


def _metrics_stamp(run_dir: Path) -> tuple[int, int] | None:
    """Size and modification time of ``metrics.csv``: unchanged by a resume that trained nothing."""
    try:
        stat = (run_dir / "metrics.csv").stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def run_summary(run_dir: Path | str, seconds: float) -> str:
    """What a finished run reached and what to run next, from its ``metrics.csv``: the final
    training return (mean ``charts/return`` over the last 10 % of episodes, under exploration),
    the last evaluation of the frozen policy from ``eval.csv`` (:func:`evaluation_lines`), the best
    episode, the wall time and the evaluate / plot / resume commands, plus ``bmf-plot groups`` for
    the BMF methods (``bmf_q``, ``bmf_ac``), whose groups it draws."""
    run_dir = Path(run_dir)
    rows = [r for r in read_metrics(run_dir) if "charts/return" in r]
    returns = [r["charts/return"] for r in rows]
    last = max(1, math.ceil(FINAL_FRACTION * len(returns)))
    best = max(range(len(returns)), key=returns.__getitem__) if returns else None
    lines = [f"run folder:   {run_dir}",
             f"episodes:     {len(rows)} ({int(rows[-1]['env_steps']) if rows else 0} env steps) in {_duration(seconds)}",
             f"final return: {final_mean(returns):.2f} (training return, exploring: mean of the last {last} of "
             f"{len(returns)} episodes)"]
    lines += evaluation_lines(run_dir)
    if best is not None:
        lines.append(f"best return:  {returns[best]:.2f} (episode {int(rows[best]['episode'])})")
    lines += ["next:",
              f"  bmf-evaluate returns {run_dir} --episodes 20      # greedy play; --sampled samples actions",
              f"  bmf-plot curves {run_dir} --out {run_dir / 'plots'}/"]
    if _algo_name(run_dir).startswith("bmf"):
        lines.append(f"  bmf-plot groups {run_dir} --step -1 --out {run_dir / 'plots'}/      # its learned groups")
    lines.append(f"  bmf-train resume={run_dir}      # continues the run if it was stopped")
    return "\n".join(lines)


def evaluation_lines(run_dir: Path) -> list[str]:
    """The last evaluation of ``eval.csv`` (the frozen policy, exploration off), one line per mode."""
    rows = read_eval(run_dir) if (run_dir / "eval.csv").is_file() else []
    if not rows:
        return []
    last = rows[-1]
    return [f"eval return:  {last[f'eval/return_{mode}']:.2f} ± {last[f'eval/return_std_{mode}']:.2f} (frozen policy, "
            f"{mode}, {int(last['episodes'])} evaluation episodes after episode {int(last['episode'])})"
            for mode in MODES if f"eval/return_{mode}" in last]


def main(argv: Sequence[str] | None = None) -> int:
    """The ``bmf-train`` command; returns the exit status (2: bad settings, 1: a failed run)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if any(a in HELP_FLAGS for a in argv):
            try:
                print(usage(argv), flush=True)
            except BrokenPipeError:  # ``--help | head``: the reader left; say nothing more
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        start = time.perf_counter()
        cfg = load_config(argv)
        check_trackers(cfg.logging)  # before the run folder is made
        before = _metrics_stamp(Path(cfg.resume)) if cfg.resume else None
        run_dir = train(cfg)
    except (ConfigError, NonFiniteLoss, FileExistsError, FileNotFoundError, RunLocked, DiskFull,
            UnreadableFile) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    if before is not None and _metrics_stamp(run_dir) == before:
        print(f"{run_dir} had already finished its {len(read_metrics(run_dir))} episodes; nothing was trained "
              f"(resume=RUN train.episodes=N with a larger N extends it)")
    print(run_summary(run_dir, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
