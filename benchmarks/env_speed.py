"""Agent-steps per second of the batched array path vs the PettingZoo dict API.

Battle at 128, 512 and 2,048 agents (maps 40, 80, 160): ``bmf_graph.envs.battle.batched_env``
against magent2's own ``battle_v4.parallel_env`` (its dict API, unmodified). Firefighter at
50 and 5,000 agents: ``firefighter.batched_env`` against ``firefighter.parallel_env``.

Both paths play the same pre-drawn uniformly random actions from the same seed; only the
``step`` call is timed (environment stepping plus reading observations, rewards and masks),
in wall-clock seconds and in process CPU seconds (steadier on a shared machine). Building
the action dict and resets after an episode end are outside the timer. An agent-step is one
live agent acting in one step. Each figure is the best of ``--repeats`` runs, the two paths
alternating. Prints JSON; ``--out PATH`` also writes it.

    python benchmarks/env_speed.py --steps 100 --repeats 3 --out env_speed.json
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import magent2.environments.battle_v4 as battle_v4

from bmf_graph.envs import battle, firefighter

from report import emit

BATTLE_MAPS = {128: 40, 512: 80, 2048: 160}
FIREFIGHTER_SIZES = (50, 5000)


def _draw_actions(rng: np.random.Generator, teams: Any, steps: int) -> list[list[np.ndarray]]:
    return [[rng.integers(0, t.num_actions, size=t.num_agents) for t in teams] for _ in range(steps)]


class Clock:
    """Accumulates wall-clock and process CPU seconds over the timed calls."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> "Clock":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def time_batched(make: Callable[[], Any], steps: int, seed: int) -> tuple[Clock, int]:
    """Time spent in ``step`` and agent-steps taken over ``steps`` steps."""
    env = make()
    actions = _draw_actions(np.random.default_rng(seed), env.teams, steps)
    team_steps = env.reset(seed=seed)
    clock, agent_steps = Clock(), 0
    for acts in actions:
        agent_steps += sum(int(s.alive.sum()) for s in team_steps)
        with clock:
            team_steps, terminated, truncated, _ = env.step(acts)
        if terminated or truncated:
            team_steps = env.reset()
    env.close()
    return clock, agent_steps


def time_dict(make: Callable[[], Any], teams: Any, steps: int, seed: int) -> tuple[Clock, int]:
    """Same as :func:`time_batched` through the dict API (agent ``f"{team}_{slot}"``)."""
    env = make()
    actions = _draw_actions(np.random.default_rng(seed), teams, steps)
    team_of = {t.name: i for i, t in enumerate(teams)}
    env.reset(seed=seed)
    clock, agent_steps = Clock(), 0
    for acts in actions:
        todo = {}
        for agent in env.agents:
            name, slot = agent.rsplit("_", 1)
            todo[agent] = int(acts[team_of[name]][int(slot)])
        agent_steps += len(todo)
        with clock:
            env.step(todo)
        if not env.agents:
            env.reset()
    env.close()
    return clock, agent_steps


def measure(name: str, agents: int, make_batched: Callable[[], Any],
            make_dict: Callable[[], Any], steps: int, repeats: int, seed: int,
            **extra: Any) -> dict[str, Any]:
    teams = make_batched().teams
    best = {"batched": [0.0, 0.0], "dict": [0.0, 0.0]}  # [wall, cpu] agent-steps/s
    for r in range(repeats):  # alternate the two paths so both see the same machine load
        for path, (clock, n) in (("batched", time_batched(make_batched, steps, seed + r)),
                                 ("dict", time_dict(make_dict, teams, steps, seed + r))):
            best[path] = [max(best[path][0], n / clock.wall), max(best[path][1], n / clock.cpu)]
    (bw, bc), (dw, dc) = best["batched"], best["dict"]
    return {"env": name, "agents": agents, **extra, "steps": steps,
            "batched_agent_steps_per_s": round(bw), "dict_agent_steps_per_s": round(dw),
            "speedup": round(bw / dw, 2),
            "batched_agent_steps_per_cpu_s": round(bc), "dict_agent_steps_per_cpu_s": round(dc),
            "speedup_cpu": round(bc / dc, 2)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    limit = args.steps + 1  # no truncation inside the timed window

    results = []
    for agents, map_size in BATTLE_MAPS.items():
        results.append(measure(
            "battle", agents,
            lambda m=map_size: battle.batched_env(map_size=m, max_steps=limit),
            lambda m=map_size: battle_v4.parallel_env(map_size=m, max_cycles=limit),
            args.steps, args.repeats, args.seed, map_size=map_size))
    for agents in FIREFIGHTER_SIZES:
        results.append(measure(
            "firefighter", agents,
            lambda n=agents: firefighter.batched_env(num_firefighters=n, max_steps=limit),
            lambda n=agents: firefighter.parallel_env(num_firefighters=n, max_steps=limit),
            args.steps, args.repeats, args.seed))
    report = {"benchmark": "env_speed", "unit": "agent-steps per second (best of repeats)",
              "python": platform.python_version(), "machine": platform.machine(),
              "results": results}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
