"""Frozen-policy evaluation of the committed Firefighter models beside the fixed policies, and
why greedy play can collapse.

Every final model ``RESULTS/firefighter/METHOD/seedS`` is played, without training, on episodes
with seeds ``seed .. seed + episodes - 1`` (those of ``benchmarks/firefighter_policies.py``) in
three ways: ``greedy`` (the Q family's best action, ties at random; the actor-critic family's
most probable action), ``T=0.5`` (``softmax(scores / 0.5)`` over the Q-values, or the actor's
logits) and ``sampled`` (the policy as at the end of training: the Q family's Boltzmann policy at
its final temperature, the actor-critic family's own softmax): the training return measures this
one. For the Q family's greedy play it also counts, per observation (the two flame flags
``(left, right)``), the share of agent-steps that see it, the share that fight the right house
and the mean ``Q(right) - Q(left)`` of its critic (the actor-critic family acts by its actor's
logits, not by this gap). Prints JSON (``--out`` also writes it) and, on stderr, the
Markdown table of docs/results.md.

    python benchmarks/firefighter_frozen.py results --episodes 20 --out results/firefighter/frozen_eval.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bmf_graph.training.checkpoint import seed_everything
from bmf_graph.config.checks import ALGORITHMS
from bmf_graph.envs import make_env
from bmf_graph.training.players import AtTemperature, checkpoint_config, team_policies
from bmf_graph.experiments.results_stats import frozen_eval_lines
from bmf_graph.training.rollout import play_episodes
from bmf_graph.experiments.sweep_grid import SEED_FOLDER
from bmf_graph.training.evaluation import ACTOR_CRITIC

from report import emit

MODES = {"greedy": None, "T=0.5": 0.5, "sampled": 1.0}
FLAGS = ("00", "01", "10", "11")


def play(run: Path, mode: str, episodes: int, seed: int, copies: int) -> dict:
    cfg = checkpoint_config(run)
    envs = [make_env("firefighter", cfg.env.kwargs) for _ in range(min(copies, episodes))]
    policy = team_policies(envs[0], [run], "cpu", own=run)[0]
    explore = None
    if mode == "T=0.5":
        policy = AtTemperature(policy, MODES[mode])
    elif mode == "sampled":
        explore = 1.0
    seen, right, gap = np.zeros(4), np.zeros(4), np.zeros(4)

    def count(t, views, recs, actions):
        view, flags = views[0], views[0].obs[:, -2:].round().long()
        cls = (flags[:, 0] * 2 + flags[:, 1])[view.alive]
        act = actions[0][view.alive].float()
        seen[:] += torch.bincount(cls, minlength=4).numpy()
        right[:] += torch.bincount(cls, weights=act, minlength=4).numpy()
        if mode == "greedy" and hasattr(policy, "q"):
            q = policy.q(view.obs, recs[0]["mean_action"])[view.alive]
            gap[:] += torch.bincount(cls, weights=(q[:, 1] - q[:, 0]).double(), minlength=4).numpy()

    returns = []
    try:
        for start in range(seed, seed + episodes, len(envs)):
            seeds = list(range(start, min(start + len(envs), seed + episodes)))
            seed_everything(seeds[0])
            with torch.no_grad():
                returns += [float(r.returns[0]) for r in play_episodes(envs[:len(seeds)], [policy], "cpu", seeds,
                                                                       explore=explore, on_step=count)]
    finally:
        for env in envs:
            env.close()
    out = {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns}
    if mode == "greedy":
        share = seen / max(seen.sum(), 1)
        out["by_flags"] = {f: {"share": float(share[k]), "right": float(right[k] / max(seen[k], 1))}
                           | ({"q_gap": float(gap[k] / max(seen[k], 1))} if hasattr(policy, "q") else {})
                           for k, f in enumerate(FLAGS)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results_dir")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = Path(args.results_dir) / "firefighter"
    models: dict = {}
    for method in [m for m in ALGORITHMS if (root / m).is_dir()]:
        for run in sorted(p for p in (root / method).iterdir() if SEED_FOLDER.fullmatch(p.name)):
            models.setdefault(method, {})[run.name] = {mode: play(run, mode, args.episodes, args.seed, args.copies)
                                                       for mode in MODES}
            print(f"{method}/{run.name}: " + ", ".join(f"{m} {v['mean']:.0f}" for m, v in
                                                      models[method][run.name].items()), file=sys.stderr, flush=True)
    fixed = json.loads((root / "policies.json").read_text())["policies"]
    fixed = {k: fixed[k] for k in ("random", "flagged_house", "hotter_house", "all_one_side") if k in fixed}
    report = {"benchmark": "firefighter_frozen", "episodes": args.episodes, "seed": args.seed,
              "modes": {"greedy": "Q family: argmax Q (ties at random); actor-critic: argmax of the logits",
                        "T=0.5": "softmax(Q-values or actor logits / 0.5)",
                        "sampled": "the policy at the end of training (Q family: its exploration policy at "
                                   "the final temperature; actor-critic: softmax of its logits)"},
              "actor_critic": list(ACTOR_CRITIC), "fixed_policies": fixed, "models": models}
    print("\n".join(frozen_eval_lines(report)), file=sys.stderr)
    return emit(report, args.out)


if __name__ == "__main__":
    main()
