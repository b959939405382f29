"""Environments: Firefighter, Battle, Adversarial Pursuit and VMAS tasks (continuous actions).

Each module offers ``parallel_env(**kwargs)`` (a PettingZoo ``ParallelEnv``) and
``batched_env(**kwargs)`` (the array path of :mod:`bmf_graph.envs.base` that training uses);
:mod:`~bmf_graph.envs.vmas` offers no dict face and ``env_copies(num_envs, **kwargs)``, its
vectorised envs as the episode loop's env copies.
"""
from typing import Any, Mapping

from bmf_graph.envs import battle, firefighter, pursuit, vmas
from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep

TASKS = {"firefighter": firefighter, "battle": battle, "pursuit": pursuit, "vmas": vmas}


def make_env(env_name: str, env_kwargs: Mapping[str, Any] | None = None) -> BatchedEnv:
    """``bmf_graph.envs.{env_name}.batched_env(**env_kwargs)``, with errors naming the task."""
    if env_name not in TASKS:
        raise ValueError(f"env_name={env_name!r} is not valid; expected one of {', '.join(TASKS)}")
    try:
        return TASKS[env_name].batched_env(**dict(env_kwargs or {}))
    except TypeError as error:
        raise ValueError(f"env_kwargs={dict(env_kwargs or {})!r} do not fit the {env_name} task: {error}") from None


__all__ = ["firefighter", "battle", "pursuit", "vmas", "BatchedEnv", "TeamSpec", "TeamStep", "TASKS", "make_env"]
