"""Battle: two equal teams fight on a walled square grid (magent2 ``battle_v4``).

=====================  ==========================================================================
Teams                  ``red`` and ``blue``, ``agents_per_team`` each; slot ``s`` is ``red_s`` /
                       ``blue_s`` in the dict API. Both teams act; one usually learns.
Default sizes          what magent2 places on ``map_size`` (``default_agents_per_team``,
                       ``floor(0.2 * map_size)**2`` per team from map 36 up): map 40 → 64 v 64
                       (128 agents), 60 → 288, 80 → 512, 160 → 2,048.
Placement              two blocks of agents on every other cell, front columns at
                       ``x = map_size // 2 - 5`` (red) and ``map_size // 2 + 3`` (blue), as
                       magent2 places them (identical cells for the default sizes); other
                       counts fill front columns first, and blocks grow taller (up to
                       ``(map_size - 2) // 2`` rows) before deeper. Too many → ``ValueError``.
Agents                 10 HP, lose 2 HP per hit taken, regain 0.1 HP per step, speed 2.
View                   ``(13, 13, 5)``: obstacle, own presence, own HP, enemy presence, enemy HP
                       (``(13, 13, 7)`` with ``minimap_mode``); row = y, column = x.
Feature                32: binary agent id (10), one-hot last action (21), last reward
                       (+2 normalised x, y with ``minimap_mode``).
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

from gymnasium.utils import EzPickle
from magent2.environments.battle import battle as _magent_battle

from bmf_graph.envs.magent import MagentBatchedEnv, ParallelEnvMixin, default_cell_px

__all__ = ["PRESETS", "KILL_REWARD", "MAX_STEPS", "BattleParallelEnv", "parallel_env",
           "batched_env", "default_agents_per_team", "max_agents_per_team", "formation"]

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
    """Starting cells ``[x, y, 0]`` of the red and the blue team (in slot order).

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
    red_xs = range(m // 2 - GAP - 2 * columns, m // 2 - GAP, 2)
    blue_xs = range(m // 2 + GAP, m // 2 + GAP + 2 * columns, 2)
    red = [[x, y, 0] for x in red_xs for y in ys][columns * rows - n:]
    blue = [[x, y, 0] for x in blue_xs for y in ys][:n]
    return red, blue


def _reward_args(preset: str, overrides: dict[str, float | None]) -> dict[str, float]:
    if preset not in PRESETS:
        raise ValueError(f"battle: preset={preset!r} is unknown; valid presets: {sorted(PRESETS)}")
    args = dict(PRESETS[preset])
    args.update({k: float(v) for k, v in overrides.items() if v is not None})
    return args


class BattleParallelEnv(ParallelEnvMixin, _magent_battle._parallel_env):
    """magent2's Battle ``ParallelEnv`` with our placement, step limit and team-wipe ending."""

    team_colors = TEAM_COLORS
    body_sizes = (1, 1)

    def __init__(self, map_size: int, agents_per_team: int, reward_args: dict[str, float],
                 max_steps: int, minimap_mode: bool = False, extra_features: bool = False,
                 render_mode: str | None = None, seed: int | None = None) -> None:
        self.agents_per_team = agents_per_team
        self._cells = formation(map_size, agents_per_team)
        super().__init__(map_size, minimap_mode, reward_args, max_steps, extra_features,
                         render_mode, seed)
        EzPickle.__init__(self, map_size, agents_per_team, reward_args, max_steps, minimap_mode,
                          extra_features, render_mode, seed)

    def generate_map(self) -> None:
        for handle, cells in zip(self.handles, self._cells):
            self.env.add_agents(handle, method="custom", pos=cells)


def _make(map_size: int, agents_per_team: int | None, preset: str, max_steps: int,
          minimap_mode: bool, extra_features: bool, render_mode: str | None, seed: int | None,
          overrides: dict[str, float | None]) -> BattleParallelEnv:
    map_size = _check_map_size(map_size)
    reward_args = _reward_args(preset, overrides)
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"battle: max_steps={max_steps!r} must be an integer >= 1")
    if agents_per_team is None:
        agents_per_team = default_agents_per_team(map_size)
    return BattleParallelEnv(map_size, agents_per_team, reward_args, int(max_steps),
                             minimap_mode, extra_features, render_mode, seed)


def parallel_env(map_size: int = 40, agents_per_team: int | None = None, preset: str = "mfrl",
                 max_steps: int = MAX_STEPS, minimap_mode: bool = False,
                 extra_features: bool = False, render_mode: str | None = None,
                 seed: int | None = None, step_reward: float | None = None,
                 dead_penalty: float | None = None, attack_penalty: float | None = None,
                 attack_opponent_reward: float | None = None) -> BattleParallelEnv:
    """Battle as a PettingZoo ``ParallelEnv`` (dict API).

    Args:
        map_size: side of the square map (>= 12), walls included.
        agents_per_team: agents per team; ``None``: :func:`default_agents_per_team`.
        preset: reward preset, ``"mfrl"`` or ``"bmf"`` (see :data:`PRESETS`).
        max_steps: episode length (truncation).
        minimap_mode: magent2's minimap channels and position features.
        extra_features: append the feature vector to the view as constant channels
            (magent2's ``extra_features``); the batched path always returns it separately.
        render_mode: ``None``, ``"rgb_array"`` (numpy frame) or ``"human"`` (pygame).
        seed: seed of magent2's engine at construction (``reset(seed=)`` reseeds).
        step_reward, dead_penalty, attack_penalty, attack_opponent_reward: override the
            preset's value when given.
    """
    overrides = dict(step_reward=step_reward, dead_penalty=dead_penalty,
                     attack_penalty=attack_penalty, attack_opponent_reward=attack_opponent_reward)
    return _make(map_size, agents_per_team, preset, max_steps, minimap_mode, extra_features,
                 render_mode, seed, overrides)


def batched_env(map_size: int = 40, agents_per_team: int | None = None, preset: str = "mfrl",
                max_steps: int = MAX_STEPS, minimap_mode: bool = False, seed: int | None = None,
                step_reward: float | None = None, dead_penalty: float | None = None,
                attack_penalty: float | None = None,
                attack_opponent_reward: float | None = None,
                cell_px: int | None = None) -> MagentBatchedEnv:
    """Battle as a :class:`~bmf_graph.envs.magent.MagentBatchedEnv` (teams ``red``, ``blue``).

    Arguments as :func:`parallel_env`; ``cell_px``: pixels per cell in ``render()``
    (``None``: about 320 pixels per frame side).
    """
    overrides = dict(step_reward=step_reward, dead_penalty=dead_penalty,
                     attack_penalty=attack_penalty, attack_opponent_reward=attack_opponent_reward)
    env = _make(map_size, agents_per_team, preset, max_steps, minimap_mode, False, None, seed,
                overrides)
    return MagentBatchedEnv(env, TEAM_NAMES, env.max_cycles, TEAM_COLORS, (1, 1),
                            cell_px if cell_px is not None else default_cell_px(map_size))
