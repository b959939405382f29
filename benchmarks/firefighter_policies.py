"""Returns of fixed Firefighter policies under both rule sets, mean ± std over episodes.

The return of an episode is the sum over steps of the team reward ``-sum(levels)`` (what
training logs as ``charts/return``). Policies:

* ``all_one_side``: every firefighter always fights its left house (action 0);
* ``random``: uniformly random actions;
* ``hotter_house``: each firefighter goes to the hotter of its two houses, reading the true
  levels (a state-based heuristic no agent can run from its observations), ties at random;
* ``flagged_house`` (an observation-only yardstick): the house whose flame flag is on, at
  random when both or neither are.

Episode ``e`` of every policy and rule set is played from ``reset(seed=seed + e)`` with its
own action generator seeded the same way. Prints JSON; ``--out PATH`` also writes it.

    python benchmarks/firefighter_policies.py --episodes 100 --out benchmarks/results/firefighter_policies.json \
        --policies-out results/firefighter/policies.json
"""
from __future__ import annotations

import argparse
from typing import Callable

import numpy as np

from bmf_graph.envs import firefighter
from bmf_graph.envs.base import TeamStep

from report import emit

Policy = Callable[[firefighter.FirefighterBatchedEnv, TeamStep, np.random.Generator], np.ndarray]


def all_one_side(env: firefighter.FirefighterBatchedEnv, team: TeamStep, rng: np.random.Generator) -> np.ndarray:
    return np.zeros(env.num_firefighters, np.int64)


def random_actions(env: firefighter.FirefighterBatchedEnv, team: TeamStep, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2, env.num_firefighters)


def _prefer(score: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Action 1 where ``score[:, 1] > score[:, 0]``, 0 where lower, random on ties."""
    tie = rng.integers(0, 2, len(score))
    return np.where(score[:, 1] == score[:, 0], tie, score[:, 1] > score[:, 0]).astype(np.int64)


def hotter_house(env: firefighter.FirefighterBatchedEnv, team: TeamStep, rng: np.random.Generator) -> np.ndarray:
    return _prefer(env.levels[env.houses], rng)


def flagged_house(env: firefighter.FirefighterBatchedEnv, team: TeamStep, rng: np.random.Generator) -> np.ndarray:
    return _prefer(team.feature[:, -2:], rng)  # the flags are the last two features under both rules


POLICIES: dict[str, Policy] = {"all_one_side": all_one_side, "random": random_actions,
                               "hotter_house": hotter_house, "flagged_house": flagged_house}


def play(env: firefighter.FirefighterBatchedEnv, policy: Policy, seed: int) -> tuple[float, int]:
    """Return (sum over steps of the team reward) and length of one episode."""
    rng = np.random.default_rng(seed)
    (team,) = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        (team,), terminated, truncated, _ = env.step([policy(env, team, rng)])
        total += team.team_reward()
        steps += 1
        if terminated or truncated:
            return total, steps


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--agents", type=int, default=50, help="firefighters (ring: as many houses)")
    p.add_argument("--max-steps", type=int, default=100, help="horizon of every episode")
    p.add_argument("--layout", choices=firefighter.LAYOUTS, default="ring")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--policies-out", default=None,
                   help="also write the paper rules' returns as results/firefighter/policies.json (RESULTS.md)")
    args = p.parse_args(argv)
    results: dict[str, dict] = {}
    for rules in firefighter.RULES:
        env = firefighter.batched_env(num_firefighters=args.agents, layout=args.layout, rules=rules,
                                      max_steps=args.max_steps)
        results[rules] = {}
        for name, policy in POLICIES.items():
            returns, lengths = np.array([play(env, policy, args.seed + e) for e in range(args.episodes)]).T
            results[rules][name] = {"mean": round(float(returns.mean()), 1), "std": round(float(returns.std()), 1),
                                    "mean_steps": round(float(lengths.mean()), 1)}
    report = {"benchmark": "firefighter_policies", "episodes": args.episodes, "agents": args.agents,
              "layout": args.layout, "max_steps": args.max_steps, "seed": args.seed,
              "return": "sum over steps of -sum(levels) (charts/return)", "results": results}
    emit(report, args.out)
    if args.policies_out:
        command = (f"python benchmarks/firefighter_policies.py --episodes {args.episodes} --agents {args.agents} "
                   f"--max-steps {args.max_steps} --seed {args.seed}")
        emit({"benchmark": "firefighter_policies", "command": command, "rules": "paper",
              "policies": results["paper"]}, args.policies_out)
    return report


if __name__ == "__main__":
    main()
