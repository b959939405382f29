"""Limits checked before a run folder exists and before any env of full size is built: the
task's sizes, the groups against the agents, the replay against the minibatch, and an estimate
of the memory a run needs against what this process may use.

The estimate, in bytes, with ``F`` the floats of one agent's observation, ``N`` the agents of
all teams of one env copy, ``n`` those of the learning team, ``E`` the env copies, ``P`` the
parameters of one learner (counted on PyTorch's ``meta`` device, so nothing is allocated) and
``H`` = ``algo.hidden``::

    replay  = records * n * (F + 8) * 4,   records = max(2, buffer_size // n)   (buffer.py)
    play    = E * N * F * 4 * 8            (views, features, stacked batches, activations)
    network = P * 4 * 5 + E * N * H * 4 * 4   per learning team (weights, gradients, two Adam
              moments and a target copy; hidden activations)

``F`` is read from a one-agent instance of the task, so nothing large is built to check it.
It is an estimate (the factor 8 covers what a step holds at once on measured runs, e.g. 2.8 GB
peak for Battle at 2,048 agents, 16 copies). What this process may use is the least of the
machine's RAM, the cgroup's memory limit and the address space left under ``RLIMIT_AS``
(``ulimit -v``); a run above it is refused, naming the setting that weighs most.
"""
from __future__ import annotations

import inspect
import os
import resource
from pathlib import Path
from typing import Any

import torch

from bmf_graph.algos.replay import replay_records
from bmf_graph.config import Config
from bmf_graph.config.checks import ConfigError
from bmf_graph.envs import TASKS, battle, make_env, pursuit

MAX_AGENTS = 100_000
"""Agents per team a run may place (the largest shipped setting places 2,048)."""

WORKING_SET = 8
"""Bytes of play memory per observation byte of every agent of every copy (see the module)."""

ONE_AGENT = {"battle": {"map_size": battle.MIN_MAP_SIZE, "agents_per_team": 1},
             "pursuit": {"map_size": 20, "num_predators": 1, "num_prey": 1},
             "firefighter": {"num_firefighters": 2, "num_houses": None}}
"""Task arguments that shrink a grid task to one agent per team (others are built as they are)."""


def _defaults(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(TASKS[name].batched_env).parameters
    return {**{k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}, **kwargs}


def team_sizes(name: str, kwargs: dict[str, Any]) -> list[int]:
    """Agents per team the task will place, computed without building it (a task of unknown
    sizes, e.g. VMAS, is built), each at most :data:`MAX_AGENTS`, naming the key that sets it."""
    args = _defaults(name, kwargs)
    if name == "battle":
        n = args["agents_per_team"] or battle.default_agents_per_team(args["map_size"])
        key = "agents_per_team" if args["agents_per_team"] else "map_size"
        _cap(key, args[key], [n])
        if n > battle.max_agents_per_team(args["map_size"]):
            raise ConfigError(f"env.kwargs.agents_per_team={n} does not fit on env.kwargs.map_size="
                              f"{args['map_size']}; expected 1..{battle.max_agents_per_team(args['map_size'])}")
        return [n, n]
    if name == "pursuit":
        predators, prey = pursuit.default_counts(args["map_size"])
        sizes = [args["num_predators"] or predators, args["num_prey"] or prey]
        for key, size in zip(("num_predators", "num_prey"), sizes):
            _cap(key if args[key] else "map_size", args[key] or args["map_size"], [size])
        return sizes
    if name == "firefighter":
        _cap("num_firefighters", args["num_firefighters"], [args["num_firefighters"]])
        return [int(args["num_firefighters"])]
    env = make_env(name, kwargs)  # tasks of unknown sizes (VMAS)
    try:
        return [t.num_agents for t in env.teams]
    finally:
        env.close()


def _cap(key: str, value: Any, sizes: list[int]) -> None:
    if isinstance(value, (int, float)) and max(sizes) > MAX_AGENTS:
        raise ConfigError(f"env.kwargs.{key}={value!r} places {max(sizes):,} agents in a team; expected at most "
                          f"{MAX_AGENTS:,}")


def memory_estimate(cfg: Config) -> dict[str, int]:
    """``{"replay", "play", "network"}`` bytes of ``cfg`` and ``"floats"``, the observation
    floats ``F`` (see the module docstring)."""
    name, kwargs = cfg.env.name, dict(cfg.env.kwargs)
    sizes = team_sizes(name, kwargs)
    small = make_env(name, {**kwargs, **ONE_AGENT[name]} if name in ONE_AGENT else kwargs)
    try:
        floats = max(t.obs_dim for t in small.teams)
        params = sum(_parameters(small.teams[t], cfg) for t in cfg.env.learn_teams if t < len(small.teams))
    finally:
        small.close()
    learner = sizes[cfg.env.learn_teams[0]]
    records = replay_records(cfg.algo.buffer_size, learner)
    copies = min(cfg.train.envs, cfg.train.episodes)
    return {"replay": records * learner * (floats + 8) * 4 * len(cfg.env.learn_teams),
            "play": copies * sum(sizes) * floats * 4 * WORKING_SET,
            "network": params * 4 * 5 + copies * sum(sizes) * cfg.algo.hidden * 4 * 4 * len(cfg.env.learn_teams),
            "floats": floats}


def _parameters(spec: Any, cfg: Config) -> int:
    """Parameters of one learner of ``cfg`` for ``spec``, built on the ``meta`` device (no memory)."""
    from bmf_graph.algos import make_algorithm

    try:
        with torch.device("meta"):
            algo = make_algorithm(spec, cfg.algo, cfg.env.radius)
    except (ValueError, TypeError, RuntimeError, NotImplementedError):
        return 0  # an algorithm that cannot be built on meta: its own checks speak later
    return sum(p.numel() for p in algo.parameters())


def physical_memory() -> int:
    """Bytes of RAM of this machine (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
"""Memory limits of this process's cgroup (v2, v1); "max" or a huge number mean none."""


def _cgroup_limit() -> int:
    for name in CGROUP_LIMITS:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return 0


def _address_space_left() -> int:
    """Bytes of address space left under ``RLIMIT_AS`` (0: no limit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return 0
    used = 0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                used = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return max(soft - used, 1)


def available_memory() -> tuple[int, str]:
    """``(bytes, what sets them)``: the least of RAM, the cgroup limit and the address space left
    under ``RLIMIT_AS``; ``(0, "")`` if none is known."""
    found = [(v, what) for v, what in ((physical_memory(), "this machine has"),
                                       (_cgroup_limit(), "this process's cgroup allows"),
                                       (_address_space_left(), "the address-space limit (ulimit -v) leaves"))
             if v > 0]
    return min(found) if found else (0, "")


def check_limits(cfg: Config) -> None:
    """Refuse, naming the keys, a task that does not fit its map or places too many agents, more
    groups than agents, a minibatch larger than the replay and a run whose memory estimate
    exceeds what this process may use."""
    try:
        sizes = team_sizes(cfg.env.name, dict(cfg.env.kwargs))
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        raise ConfigError(f"env.kwargs={dict(cfg.env.kwargs)} is not valid for {cfg.env.name}: {error}") from None
    if max(cfg.env.learn_teams) >= len(sizes):
        raise ConfigError(f"env.learn_teams={cfg.env.learn_teams} is not valid; expected indices in "
                          f"0..{len(sizes) - 1} ({cfg.env.name} has {len(sizes)} team(s))")
    grouped = min(sizes[t] for t in cfg.env.learn_teams)
    if cfg.algo.name.startswith("bmf") and cfg.algo.num_groups > grouped:
        raise ConfigError(f"algo.num_groups={cfg.algo.num_groups} exceeds the {grouped} agents of a learning team; "
                          f"expected 1..{grouped}")
    learner = sizes[cfg.env.learn_teams[0]]
    records = replay_records(cfg.algo.buffer_size, learner)
    if cfg.algo.batch_steps > records:
        raise ConfigError(f"algo.batch_steps={cfg.algo.batch_steps} exceeds the {records} team records that "
                          f"algo.buffer_size={cfg.algo.buffer_size} holds at {learner} agents; expected "
                          f"algo.batch_steps <= algo.buffer_size // agents")
    try:
        need = memory_estimate(cfg)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"env.kwargs={dict(cfg.env.kwargs)} is not valid for {cfg.env.name}: {error}") from None
    total, source = available_memory()
    parts = {"replay": need["replay"], "play": need["play"], "network": need["network"]}
    if total and sum(parts.values()) > total:
        keys = {"replay": "algo.buffer_size", "play": "env.kwargs (agents) or train.envs", "network": "algo.hidden"}
        heaviest = max(parts, key=parts.get)
        gb = {k: f"{v / 2**30:.1f} GB" for k, v in parts.items()}
        raise ConfigError(f"the run needs about {sum(parts.values()) / 2**30:.1f} GB (replay {gb['replay']}: "
                          f"algo.buffer_size={cfg.algo.buffer_size}; play {gb['play']}: {sum(sizes)} agents x "
                          f"train.envs={min(cfg.train.envs, cfg.train.episodes)}; network {gb['network']}: "
                          f"algo.hidden={cfg.algo.hidden}) but {source} {total / 2**30:.1f} GB; expected a smaller "
                          f"{keys[heaviest]}")
