"""Battle: two equal teams fight on a walled square grid (magent2 ``battle_v4``).

=====================  ==========================================================================
Teams                  ``red`` and ``blue``, ``agents_per_team`` each; slot ``s`` is ``red_s`` /
                       ``blue_s`` in the dict API. Both teams act; one usually learns.
Default sizes          what magent2 places on ``map_size`` (``default_agents_per_team``,
                       ``floor(0.2 * map_size)**2`` per team from map 36 up): map 40 → 64 v 64
                       (128 agents), 60 → 288, 80 → 512, 160 → 2,048.
Placement              two blocks of agents on every other cell, front columns at
                       ``x = map_size // 2 - 5`` (left) and ``map_size // 2 + 3`` (right), as
                       magent2 places them (identical cells for the default sizes); other
                       counts fill front columns first, and blocks grow taller (up to
                       ``(map_size - 2) // 2`` rows) before deeper. Too many → ``ValueError``.
Sides                  ``random_sides=True`` (default, MFRL's ``leftID``): which team spawns on
                       the left is drawn at every reset from the reset seed (a generator of its
                       own, reseeded by ``reset(seed=)``; ``reset()`` draws the next side), the
                       same on the dict and the batched path. ``random_sides=False``: team
                       ``left_team`` (default 0, red) always spawns on the left. Teams keep
                       their names, slots and engine ids (red ``0..N-1``) either way; only the
                       cells swap. The batched env's ``left_team`` says which side it drew.
Agents                 10 HP, lose 2 HP per hit taken, regain 0.1 HP per step, speed 2.
View                   ``(13, 13, 7)``: obstacle, own presence, own HP, own minimap, enemy
                       presence, enemy HP, enemy minimap (the minimaps: team densities over the
                       whole map, binned to the view); ``(13, 13, 5)`` without the minimap
                       channels with ``minimap_mode=False``; row = y, column = x.
Feature                34: binary agent id (10), one-hot last action (21), last reward, the
                       normalised x, y (32 without the minimap). The minimap is on by default,
                       as in MAgent's battle config and the paper's released code: without it
                       the two fronts start out of each other's sight.
Actions                ``Discrete(21)``: 13 moves within radius 2 (6 = stay), 8 attacks on the
                       neighbouring cells.
Rewards                per agent and step, summed: step ``step_reward`` (−0.005), any attack
                       ``attack_penalty`` (−0.1), hitting an enemy ``attack_opponent_reward``,
                       the killing blow +5 instead of the hit reward (``KILL_REWARD``, fixed in
                       magent2); an agent killed in the step gets ``dead_penalty`` plus its own
                       hit reward, if any, only. Preset ``mfrl``: hit +0.2, killed −0.1;
                       ``bmf``: hit +0.5, killed −0.5. Any term can be overridden by keyword.
Episode end            terminated when a team has no agent left; truncated after ``max_steps``
                       (400) steps, enforced by us on both paths.
``info["kills"]``      per team, enemies that died in the step (every death is a kill in Battle).
=====================  ==========================================================================

``parallel_env(...)`` is magent2's ``ParallelEnv`` configured as above (the compatibility face);
``batched_env(...)`` is the :class:`~bmf_graph.envs.magent.MagentBatchedEnv` the trainer uses.
"""
from __future__ import annotations

import math

import numpy as np
from gymnasium.utils import EzPickle
from magent2.environments.battle import battle as _magent_battle

from bmf_graph.envs.magent import MagentBatchedEnv, ParallelEnvMixin, default_cell_px

__all__ = ["PRESETS", "KILL_REWARD", "MAX_STEPS", "BattleParallelEnv", "BattleBatchedEnv",
           "parallel_env", "batched_env", "default_agents_per_team", "max_agents_per_team", "formation"]

PRESETS: dict[str, dict[str, float]] = {
    "mfrl": {"step_reward": -0.005, "dead_penalty": -0.1, "attack_penalty": -0.1,
             "attack_opponent_reward": 0.2},
    "bmf": {"step_reward": -0.005, "dead_penalty": -0.5, "attack_penalty": -0.1,
            "attack_opponent_reward": 0.5},
}
KILL_REWARD: float = float(_magent_battle.KILL_REWARD)
MAX_STEPS = 400
MIN_MAP_SIZE = 12
GAP = 3  # cells between the centre line and each team's front column, as in magent2
TEAM_NAMES = ("red", "blue")
TEAM_COLORS = ((214, 39, 40), (31, 119, 180))


def _check_map_size(map_size: int) -> int:
    if int(map_size) != map_size or map_size < MIN_MAP_SIZE:
        raise ValueError(f"battle: map_size={map_size!r} must be an integer >= {MIN_MAP_SIZE}")
    return int(map_size)


def _max_columns_rows(map_size: int) -> tuple[int, int]:
    m = map_size
    columns = min((m // 2 - GAP - 1) // 2, (m - m // 2 - GAP) // 2)
    return columns, (m - 2) // 2


def default_agents_per_team(map_size: int) -> int:
    """Agents per team that magent2's ``battle_v4`` places on ``map_size`` (its own formula)."""
    m = _check_map_size(map_size)
    side = int(math.sqrt(m * m * 0.04)) * 2
    inside = lambda v: 0 < v < m - 1  # noqa: E731
    rows = sum(inside(y) for y in range((m - side) // 2, (m - side) // 2 + side, 2))
    red = sum(inside(x) for x in range(m // 2 - GAP - side, m // 2 - GAP, 2))
    blue = sum(inside(x) for x in range(m // 2 + GAP, m // 2 + GAP + side, 2))
    return min(red, blue) * rows


def max_agents_per_team(map_size: int) -> int:
    """Largest ``agents_per_team`` that :func:`formation` fits on ``map_size``."""
    columns, rows = _max_columns_rows(_check_map_size(map_size))
    return columns * rows


def formation(map_size: int, agents_per_team: int) -> tuple[list[list[int]], list[list[int]]]:
    """Starting cells ``[x, y, 0]`` of the team on the left and the team on the right (in
    slot order).

    Each team is a block on every other cell, ``GAP`` cells from the centre line; the block
    is as square as possible (``ceil(sqrt(n))`` rows), grows taller when it would be too deep,
    and fills its front columns first. Raises ``ValueError`` when the teams do not fit.
    """
    m = _check_map_size(map_size)
    n = agents_per_team
    limit = max_agents_per_team(m)
    if int(n) != n or not 1 <= n <= limit:
        raise ValueError(f"battle: agents_per_team={n!r} does not fit on map_size={m}; valid range "
                         f"1..{limit} for this map (a larger map_size holds more)")
    max_columns, _ = _max_columns_rows(m)
    rows = math.isqrt(n - 1) + 1
    if math.ceil(n / rows) > max_columns:
        rows = math.ceil(n / max_columns)
    columns = math.ceil(n / rows)
    y0 = (m - 2 * rows) // 2
    ys = range(y0, y0 + 2 * rows, 2)
    left_xs = range(m // 2 - GAP - 2 * columns, m // 2 - GAP, 2)
    right_xs = range(m // 2 + GAP, m // 2 + GAP + 2 * columns, 2)
    left = [[x, y, 0] for x in left_xs for y in ys][columns * rows - n:]
    right = [[x, y, 0] for x in right_xs for y in ys][:n]
    return left, right


def _check_sides(random_sides: bool, left_team: int | None) -> int | None:
    if left_team is not None and (random_sides or left_team not in (0, 1)):
        raise ValueError(f"battle: left_team={left_team!r} is not valid with random_sides={random_sides}; "
                         f"expected 0 (red) or 1 (blue) with random_sides=False, or None")
    return left_team


def _reward_args(preset: str, overrides: dict[str, float | None]) -> dict[str, float]:
    if preset not in PRESETS:
        raise ValueError(f"battle: preset={preset!r} is unknown; valid presets: {sorted(PRESETS)}")
    args = dict(PRESETS[preset])
    args.update({k: float(v) for k, v in overrides.items() if v is not None})
    return args


class BattleParallelEnv(ParallelEnvMixin, _magent_battle._parallel_env):
    """magent2's Battle ``ParallelEnv`` with our placement, sides, step limit and team-wipe
    ending. ``left_team`` is the team on the left in the current episode."""

    team_colors = TEAM_COLORS
    body_sizes = (1, 1)

    def __init__(self, map_size: int, agents_per_team: int, reward_args: dict[str, float],
                 max_steps: int, minimap_mode: bool = True, extra_features: bool = False,
                 render_mode: str | None = None, seed: int | None = None,
                 random_sides: bool = True, left_team: int | None = None) -> None:
        self.agents_per_team = agents_per_team
        self._cells = formation(map_size, agents_per_team)
        self.random_sides, self.fixed_left = bool(random_sides), _check_sides(random_sides, left_team)
        self._sides = np.random.default_rng(seed)
        self.left_team = 0
        self.new_layout(seed)
        super().__init__(map_size, minimap_mode, reward_args, max_steps, extra_features,
                         render_mode, seed)
        EzPickle.__init__(self, map_size, agents_per_team, reward_args, max_steps, minimap_mode,
                          extra_features, render_mode, seed, random_sides, left_team)

    def new_layout(self, seed: int | None) -> None:
        """Draw the side of each team for the next map: from ``seed`` when given, else the next
        draw of the sides generator."""
        if seed is not None:
            self._sides = np.random.default_rng(seed)
        if self.random_sides:
            self.left_team = int(self._sides.integers(2))
        else:
            self.left_team = self.fixed_left or 0

    def generate_map(self) -> None:
        left, right = self._cells
        # Red is always added first, so its agents keep engine ids 0..N-1 (the dict API's names).
        for handle, cells in zip(self.handles, (left, right) if self.left_team == 0 else (right, left)):
            self.env.add_agents(handle, method="custom", pos=cells)


class BattleBatchedEnv(MagentBatchedEnv):
    """Batched Battle; ``left_team`` is the index of the team on the left this episode."""

    @property
    def left_team(self) -> int:
        return int(self.parallel.unwrapped.left_team)


def _make(map_size: int, agents_per_team: int | None, preset: str, max_steps: int,
          minimap_mode: bool, extra_features: bool, render_mode: str | None, seed: int | None,
          overrides: dict[str, float | None], random_sides: bool,
          left_team: int | None) -> BattleParallelEnv:
    map_size = _check_map_size(map_size)
    reward_args = _reward_args(preset, overrides)
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"battle: max_steps={max_steps!r} must be an integer >= 1")
    if agents_per_team is None:
        agents_per_team = default_agents_per_team(map_size)
    return BattleParallelEnv(map_size, agents_per_team, reward_args, int(max_steps),
                             minimap_mode, extra_features, render_mode, seed, random_sides,
                             left_team)


def parallel_env(map_size: int = 40, agents_per_team: int | None = None, preset: str = "mfrl",
                 max_steps: int = MAX_STEPS, minimap_mode: bool = True,
                 extra_features: bool = False, render_mode: str | None = None,
                 seed: int | None = None, step_reward: float | None = None,
                 dead_penalty: float | None = None, attack_penalty: float | None = None,
                 attack_opponent_reward: float | None = None, random_sides: bool = True,
                 left_team: int | None = None) -> BattleParallelEnv:
    """Battle as a PettingZoo ``ParallelEnv`` (dict API).

    Args:
        map_size: side of the square map (>= 12), walls included.
        agents_per_team: agents per team; ``None``: :func:`default_agents_per_team`.
        preset: reward preset, ``"mfrl"`` or ``"bmf"`` (see :data:`PRESETS`).
        max_steps: episode length (truncation).
        minimap_mode: magent2's minimap channels and position features (on by default;
            ``False`` gives the 5-channel view of models trained without it).
        extra_features: append the feature vector to the view as constant channels
            (magent2's ``extra_features``); the batched path always returns it separately.
        render_mode: ``None``, ``"rgb_array"`` (numpy frame) or ``"human"`` (pygame).
        seed: seed of magent2's engine and of the sides at construction (``reset(seed=)``
            reseeds both).
        step_reward, dead_penalty, attack_penalty, attack_opponent_reward: override the
            preset's value when given.
        random_sides: draw which team spawns on the left at every reset.
        left_team: with ``random_sides=False``, the team on the left (``None``: 0, red).
    """
    overrides = dict(step_reward=step_reward, dead_penalty=dead_penalty,
                     attack_penalty=attack_penalty, attack_opponent_reward=attack_opponent_reward)
    return _make(map_size, agents_per_team, preset, max_steps, minimap_mode, extra_features,
                 render_mode, seed, overrides, random_sides, left_team)


def batched_env(map_size: int = 40, agents_per_team: int | None = None, preset: str = "mfrl",
                max_steps: int = MAX_STEPS, minimap_mode: bool = True, seed: int | None = None,
                step_reward: float | None = None, dead_penalty: float | None = None,
                attack_penalty: float | None = None,
                attack_opponent_reward: float | None = None,
                cell_px: int | None = None, random_sides: bool = True,
                left_team: int | None = None) -> BattleBatchedEnv:
    """Battle as a :class:`BattleBatchedEnv` (teams ``red``, ``blue``).

    Arguments as :func:`parallel_env`; ``cell_px``: pixels per cell in ``render()``
    (``None``: about 320 pixels per frame side).
    """
    overrides = dict(step_reward=step_reward, dead_penalty=dead_penalty,
                     attack_penalty=attack_penalty, attack_opponent_reward=attack_opponent_reward)
    env = _make(map_size, agents_per_team, preset, max_steps, minimap_mode, False, None, seed,
                overrides, random_sides, left_team)
    return BattleBatchedEnv(env, TEAM_NAMES, env.max_cycles, TEAM_COLORS, (1, 1),
                            cell_px if cell_px is not None else default_cell_px(map_size))
