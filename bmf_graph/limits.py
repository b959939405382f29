"""Limits checked before a run folder exists: the task's sizes, the replay against the
minibatch, and an estimate of the memory a run needs against the machine's.

The estimate, in bytes, with ``F`` the floats of one agent's observation, ``N`` the agents of
all teams of one env copy, ``n`` those of the learning team and ``E`` the env copies::

    replay = records * n * (F + 8) * 4,   records = max(2, buffer_size // n)   (buffer.py)
    play   = E * N * F * 4 * 8            (views, features, stacked batches, activations)

``F`` is read from a one-agent instance of the task, so nothing large is built to check it.
It is an estimate (the factor 8 covers what a step holds at once on measured runs, e.g. 2.8 GB
peak for Battle at 2,048 agents, 16 copies); a run above the machine's memory is refused.
"""
from __future__ import annotations

import inspect
import os
from typing import Any

from bmf_graph.buffer import replay_records
from bmf_graph.config import Config
from bmf_graph.config_checks import ConfigError
from bmf_graph.envs import TASKS, battle, make_env, pursuit

WORKING_SET = 8
"""Bytes of play memory per observation byte of every agent of every copy (see the module)."""

ONE_AGENT = {"battle": {"map_size": battle.MIN_MAP_SIZE, "agents_per_team": 1},
             "pursuit": {"map_size": 20, "num_predators": 1, "num_prey": 1}}
"""Task arguments that shrink a grid task to one agent per team (others are built as they are)."""


def _defaults(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(TASKS[name].batched_env).parameters
    return {**{k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}, **kwargs}


def team_sizes(name: str, kwargs: dict[str, Any]) -> list[int]:
    """Agents per team the task will place, computed without building it."""
    args = _defaults(name, kwargs)
    if name == "battle":
        n = args["agents_per_team"] or battle.default_agents_per_team(args["map_size"])
        if n > battle.max_agents_per_team(args["map_size"]):
            raise ConfigError(f"env.kwargs.agents_per_team={n} does not fit on env.kwargs.map_size="
                              f"{args['map_size']}; expected 1..{battle.max_agents_per_team(args['map_size'])}")
        return [n, n]
    if name == "pursuit":
        predators, prey = pursuit.default_counts(args["map_size"])
        return [args["num_predators"] or predators, args["num_prey"] or prey]
    env = make_env(name, kwargs)  # tasks whose size costs nothing to build (Firefighter, ...)
    try:
        return [t.num_agents for t in env.teams]
    finally:
        env.close()


def memory_estimate(cfg: Config) -> tuple[int, int, int]:
    """``(replay bytes, play bytes, obs floats F)`` of ``cfg`` (see the module docstring)."""
    name, kwargs = cfg.env.name, dict(cfg.env.kwargs)
    sizes = team_sizes(name, kwargs)
    small = make_env(name, {**kwargs, **ONE_AGENT[name]} if name in ONE_AGENT else kwargs)
    try:
        floats = max(t.obs_dim for t in small.teams)
    finally:
        small.close()
    learner = sizes[cfg.env.learn_teams[0]]
    records = replay_records(cfg.algo.buffer_size, learner)
    replay = records * learner * (floats + 8) * 4 * len(cfg.env.learn_teams)
    copies = min(cfg.train.envs, cfg.train.episodes)
    return replay, copies * sum(sizes) * floats * 4 * WORKING_SET, floats


def physical_memory() -> int:
    """Bytes of RAM of this machine (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_limits(cfg: Config) -> None:
    """Refuse, naming the keys, a task that does not fit its map, a minibatch larger than the
    replay and a run whose memory estimate exceeds the machine's memory."""
    try:
        sizes = team_sizes(cfg.env.name, dict(cfg.env.kwargs))
        replay, play, _ = memory_estimate(cfg) if max(cfg.env.learn_teams) < len(sizes) else (0, 0, 0)
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(f"env.kwargs={dict(cfg.env.kwargs)} is not valid for {cfg.env.name}: {error}") from None
    if max(cfg.env.learn_teams) >= len(sizes):
        raise ConfigError(f"env.learn_teams={cfg.env.learn_teams} is not valid; expected indices in "
                          f"0..{len(sizes) - 1} ({cfg.env.name} has {len(sizes)} team(s))")
    learner = sizes[cfg.env.learn_teams[0]]
    records = replay_records(cfg.algo.buffer_size, learner)
    if cfg.algo.batch_steps > records:
        raise ConfigError(f"algo.batch_steps={cfg.algo.batch_steps} exceeds the {records} team records that "
                          f"algo.buffer_size={cfg.algo.buffer_size} holds at {learner} agents; expected "
                          f"algo.batch_steps <= algo.buffer_size // agents")
    total = physical_memory()
    if total and replay + play > total:
        raise ConfigError(f"the run needs about {(replay + play) / 2**30:.1f} GB (replay {replay / 2**30:.1f} GB: "
                          f"algo.buffer_size={cfg.algo.buffer_size}; play {play / 2**30:.1f} GB: {sum(sizes)} agents "
                          f"x train.envs={min(cfg.train.envs, cfg.train.episodes)}) but this machine has "
                          f"{total / 2**30:.1f} GB; expected a smaller env.kwargs map or team, algo.buffer_size "
                          f"or train.envs")
