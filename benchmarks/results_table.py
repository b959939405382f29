"""Markdown table of trained runs: final training return and evaluated return per label.

    python benchmarks/results_table.py runs/results/firefighter [--episodes 30] [--random]

Runs are grouped by :func:`bmf_graph.experiments.plot.run_labels` (algorithm plus any differing setting);
each cell is mean ± std over seeds of, per run, the final training return (mean
``charts/return`` over the last 10 % of episodes, as the sweep summary) and the mean return of
``--episodes`` evaluation episodes of ``model_final.pt`` with sampled actions (each policy at
the end of its exploration schedule: the final epsilon or temperature of a Q method, the softmax
policy of an actor-critic). ``--random`` adds a uniformly random policy row.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.config import from_yaml
from bmf_graph.experiments.evaluate import evaluate_returns
from bmf_graph.experiments.plot import find_runs, run_labels
from bmf_graph.experiments.sweep import final_return
from bmf_graph.envs import make_env


def cell(values: list[float]) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}" if values else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--random", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = find_runs(args.paths)
    train, evaluated = defaultdict(list), defaultdict(list)
    for run, label in zip(runs, run_labels(runs)):
        train[label].append(final_return(run))
        result = evaluate_returns(run, episodes=args.episodes,
                                  seed=args.seed, deterministic=False)
        evaluated[label].append(result["return"]["mean"])
    print(f"| method | seeds | final training return | evaluation return ({args.episodes} episodes) |")
    print("|---|---|---|---|")
    for label in sorted(train, key=lambda k: -np.mean(evaluated[k])):
        print(f"| {label} | {len(train[label])} | {cell(train[label])} | {cell(evaluated[label])} |")
    if args.random:
        cfg = from_yaml(runs[0] / "config.yaml")
        spec = make_env(cfg.env.name, cfg.env.kwargs).teams[cfg.env.learn_teams[0]]
        result = evaluate_returns(RandomPolicy(spec), env_name=cfg.env.name, env_kwargs=cfg.env.kwargs,
                                  episodes=args.episodes, seed=args.seed, deterministic=False)
        print(f"| random policy | — | — | {result['return']['mean']:.1f} ± {result['return']['std']:.1f} (over episodes) |")


if __name__ == "__main__":
    main()
