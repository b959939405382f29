"""Adversarial Pursuit: slow, large predators tag fast prey among random walls
(magent2 ``adversarial_pursuit_v4``).

=====================  ==========================================================================
Teams                  ``predator`` (``num_predators``, default 25) and ``prey`` (``num_prey``,
                       default 50) on map 45; defaults follow magent2's densities,
                       ``int(0.0125 * map_size**2)`` and ``int(0.025 * map_size**2)``. Slot
                       ``s`` is ``predator_s`` / ``prey_s`` in the dict API.
Map                    border walls plus ``int(0.03 * map_size**2)`` random walls; agents are
                       placed at random free cells (reseeded by ``reset(seed=)``).
Predator               2 x 2 cells, speed 1. View ``(10, 10, 5)``, feature 24 (binary id 10,
                       one-hot last action 13, last reward 1). ``Discrete(13)``: 5 moves
                       (0 up, 1 left, 2 stay, 3 right, 4 down), 8 tags around its body.
Prey                   1 cell, speed 1.5. View ``(9, 9, 5)``, feature 20 (10 + 9 + 1).
                       ``Discrete(9)``: 9 moves.
View channels          obstacle, own presence, own HP, other team presence, other team HP
                       (+2 minimap channels and 2 position features with ``minimap_mode``).
Rewards                predator: +1 per prey tagged, ``tag_penalty`` (−0.2) per tag action;
                       prey: −1 per tag received. No other terms.
Episode end            tags do no damage, so nobody dies and the episode never terminates; it is
                       truncated after ``max_steps`` (500, magent2's default ``max_cycles``).
``info``               ``"kills"``: ``[0, 0]``; ``"tags"``: ``[prey tagged by predators in the
                       step, 0]`` (one count per team, prey cannot tag).
=====================  ==========================================================================

Positions are the top-left cell of each body (a predator covers ``pos .. pos + 1``).
``parallel_env(...)`` is magent2's ``ParallelEnv`` configured as above (the compatibility face);
``batched_env(...)`` is the :class:`~bmf_graph.envs.magent.MagentBatchedEnv` the trainer uses.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import EzPickle
from magent2.environments.adversarial_pursuit import adversarial_pursuit as _magent_pursuit

from bmf_graph.envs.base import TeamStep
from bmf_graph.envs.magent import MagentBatchedEnv, ParallelEnvMixin, default_cell_px

__all__ = ["MAX_STEPS", "PursuitParallelEnv", "PursuitBatchedEnv", "parallel_env",
           "batched_env", "default_counts"]

MAX_STEPS = 500
MIN_MAP_SIZE = 7
TAG_PENALTY = -0.2
WALL_DENSITY = 0.03
PREDATOR_DENSITY = 0.0125
PREY_DENSITY = 0.025
PREDATOR_CELLS = 4
TEAM_NAMES = ("predator", "prey")
TEAM_COLORS = ((214, 39, 40), (44, 160, 44))
BODY_SIZES = (2, 1)


def _check_map_size(map_size: int) -> int:
    if int(map_size) != map_size or map_size < MIN_MAP_SIZE:
        raise ValueError(f"pursuit: map_size={map_size!r} must be an integer >= {MIN_MAP_SIZE}")
    return int(map_size)


def default_counts(map_size: int) -> tuple[int, int]:
    """``(num_predators, num_prey)`` that magent2 places on ``map_size`` (25, 50 on map 45)."""
    m = _check_map_size(map_size)
    return int(m * m * PREDATOR_DENSITY), int(m * m * PREY_DENSITY)


def _num_walls(map_size: int) -> int:
    return int(map_size * map_size * WALL_DENSITY)


def _check_counts(map_size: int, num_predators: int, num_prey: int) -> None:
    free = (map_size - 2) ** 2 - _num_walls(map_size)
    budget = free // 2  # random placement stays fast below half occupancy
    for name, value in (("num_predators", num_predators), ("num_prey", num_prey)):
        if int(value) != value or value < 1:
            raise ValueError(f"pursuit: {name}={value!r} must be an integer >= 1")
    used = PREDATOR_CELLS * num_predators + num_prey
    if used > budget:
        raise ValueError(f"pursuit: num_predators={num_predators}, num_prey={num_prey} do not fit on "
                         f"map_size={map_size}; valid range: 4 * num_predators + num_prey <= "
                         f"{budget} (half the free cells), got {used}")


class PursuitParallelEnv(ParallelEnvMixin, _magent_pursuit._parallel_env):
    """magent2's Adversarial Pursuit ``ParallelEnv`` with configurable team sizes."""

    team_colors = TEAM_COLORS
    body_sizes = BODY_SIZES

    def __init__(self, map_size: int, num_predators: int, num_prey: int, tag_penalty: float,
                 max_steps: int, minimap_mode: bool = False, extra_features: bool = False,
                 render_mode: str | None = None, seed: int | None = None) -> None:
        self.num_predators, self.num_prey = int(num_predators), int(num_prey)
        super().__init__(map_size, minimap_mode, {"tag_penalty": float(tag_penalty)}, max_steps,
                         extra_features, render_mode, seed)
        EzPickle.__init__(self, map_size, num_predators, num_prey, tag_penalty, max_steps,
                          minimap_mode, extra_features, render_mode, seed)

    def generate_map(self) -> None:
        # The same calls, in the same order, as magent2's own generate_map.
        predators, prey = self.env.get_handles()
        self.env.add_walls(method="random", n=_num_walls(self.map_size))
        self.env.add_agents(predators, method="random", n=self.num_predators)
        self.env.add_agents(prey, method="random", n=self.num_prey)


class PursuitBatchedEnv(MagentBatchedEnv):
    """Batched Pursuit; adds ``info["tags"]`` (prey tagged by predators in the step)."""

    def _extra_info(self, steps: list[TeamStep]) -> dict[str, Any]:
        tags = int(round(-float(np.sum(steps[1].reward, dtype=np.float64))))
        return {"tags": [tags, 0]}


def _make(map_size: int, num_predators: int | None, num_prey: int | None, tag_penalty: float,
          max_steps: int, minimap_mode: bool, extra_features: bool, render_mode: str | None,
          seed: int | None) -> PursuitParallelEnv:
    map_size = _check_map_size(map_size)
    default_predators, default_prey = default_counts(map_size)
    num_predators = default_predators if num_predators is None else num_predators
    num_prey = default_prey if num_prey is None else num_prey
    _check_counts(map_size, num_predators, num_prey)
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"pursuit: max_steps={max_steps!r} must be an integer >= 1")
    return PursuitParallelEnv(map_size, num_predators, num_prey, tag_penalty, int(max_steps),
                              minimap_mode, extra_features, render_mode, seed)


def parallel_env(map_size: int = 45, num_predators: int | None = None, num_prey: int | None = None,
                 tag_penalty: float = TAG_PENALTY, max_steps: int = MAX_STEPS,
                 minimap_mode: bool = False, extra_features: bool = False,
                 render_mode: str | None = None, seed: int | None = None) -> PursuitParallelEnv:
    """Adversarial Pursuit as a PettingZoo ``ParallelEnv`` (dict API).

    Args:
        map_size: side of the square map (>= 7), walls included.
        num_predators, num_prey: team sizes; ``None``: :func:`default_counts` (25, 50 on 45).
        tag_penalty: predator reward per tag action (hit or miss).
        max_steps: episode length (truncation).
        minimap_mode: magent2's minimap channels and position features.
        extra_features: append the feature vector to the view as constant channels.
        render_mode: ``None``, ``"rgb_array"`` (numpy frame) or ``"human"`` (pygame).
        seed: seed of magent2's engine at construction (``reset(seed=)`` reseeds).
    """
    return _make(map_size, num_predators, num_prey, tag_penalty, max_steps, minimap_mode,
                 extra_features, render_mode, seed)


def batched_env(map_size: int = 45, num_predators: int | None = None, num_prey: int | None = None,
                tag_penalty: float = TAG_PENALTY, max_steps: int = MAX_STEPS,
                minimap_mode: bool = False, seed: int | None = None,
                cell_px: int | None = None) -> PursuitBatchedEnv:
    """Adversarial Pursuit as a batched env (teams ``predator``, ``prey``).

    Arguments as :func:`parallel_env`; ``cell_px``: pixels per cell in ``render()``.
    """
    env = _make(map_size, num_predators, num_prey, tag_penalty, max_steps, minimap_mode, False,
                None, seed)
    return PursuitBatchedEnv(env, TEAM_NAMES, env.max_cycles, TEAM_COLORS, BODY_SIZES,
                             cell_px if cell_px is not None else default_cell_px(map_size))
