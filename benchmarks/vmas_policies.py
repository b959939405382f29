"""Returns of fixed policies on VMAS crowd navigation: the yardsticks beside the learned ones.

    python benchmarks/vmas_policies.py [--conf vmas_crowd_navigation] [--envs 16] [--rounds 4]
        [--out results/vmas_crowd_navigation/policies.json]

Policies (a 2-D force per agent, clamped to ``[-1, 1]`` by VMAS), each computed from the agent's
own observation ``[p, v, p - g, ...]`` (``docs/continuous.md``):

* ``still``: zero force;
* ``random``: uniform in ``[-1, 1]^2``;
* ``same_way``: every agent pushes ``(1, 0)``;
* ``steer_to_goal``: ``clip(-3 (p - g) - 1.5 v)``, a PD controller to the agent's goal that
  ignores the crowd.

The task is the conf's (agents, horizon, scenario arguments). Round ``r`` resets all ``--envs``
copies with seed ``r`` (as training seeds a round); an episode's return is ``charts/return``'s:
the sum over agents and steps of the rewards until VMAS's ``done`` or the horizon. Mean ± std over
the ``envs x rounds`` episodes. Prints JSON; ``--out`` also writes it (RESULTS.md shows the file
``results/{task}/policies.json`` under the task's table).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import emit  # noqa: E402

from bmf_graph.config import load_config  # noqa: E402
from bmf_graph.envs.vmas import MAX_STEPS, VmasSimulator  # noqa: E402

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""Observations ``[E, N, O]`` and a generator -> forces ``[E, N, 2]``."""

POLICIES: dict[str, Policy] = {
    "still": lambda obs, rng: np.zeros((*obs.shape[:2], 2), np.float32),
    "random": lambda obs, rng: rng.uniform(-1.0, 1.0, (*obs.shape[:2], 2)).astype(np.float32),
    "same_way": lambda obs, rng: np.broadcast_to(np.float32([1.0, 0.0]), (*obs.shape[:2], 2)).copy(),
    "steer_to_goal": lambda obs, rng: np.clip(-3.0 * obs[..., 4:6] - 1.5 * obs[..., 2:4], -1.0, 1.0),
}


def play_round(sim: VmasSimulator, policy: Policy, seed: int, max_steps: int) -> np.ndarray:
    """The return of each copy's episode from ``reset(seed)``."""
    rng = np.random.default_rng(seed)
    obs, _ = sim.reset(seed)
    returns, playing = np.zeros(sim.num_envs), np.ones(sim.num_envs, dtype=bool)
    for _ in range(max_steps):
        obs, _, reward, done = sim.step(policy(obs, rng))
        returns += np.where(playing, reward.sum(axis=1), 0.0)
        playing &= ~done
        if not playing.any():
            break
    return returns


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default="vmas_crowd_navigation")
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    kwargs = dict(load_config([f"conf={args.conf}"]).env.kwargs)
    max_steps = int(kwargs.pop("max_steps", MAX_STEPS))
    sim = VmasSimulator(num_envs=args.envs, **kwargs)
    policies = {}
    for name, policy in POLICIES.items():
        returns = np.concatenate([play_round(sim, policy, r, max_steps) for r in range(args.rounds)])
        policies[name] = {"mean": round(float(returns.mean()), 1), "std": round(float(returns.std()), 1),
                          "episodes": int(returns.size)}
    command = f"python benchmarks/vmas_policies.py --conf {args.conf} --envs {args.envs} --rounds {args.rounds}"
    report = {"benchmark": "vmas_policies", "command": command, "agents": sim.spec.num_agents,
              "max_steps": max_steps, "policies": policies}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
