"""Environments: Firefighter, Battle and Adversarial Pursuit.

Each module offers ``parallel_env(**kwargs)`` (a PettingZoo ``ParallelEnv``) and
``batched_env(**kwargs)`` (the array path of :mod:`bmf_graph.envs.base` that training uses).
"""
from bmf_graph.envs import battle, firefighter, pursuit
from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep

__all__ = ["firefighter", "battle", "pursuit", "BatchedEnv", "TeamSpec", "TeamStep"]
