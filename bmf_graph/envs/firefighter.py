"""Firefighter: the cooperative task of the BMF paper (after Jiang & Amato 2021), at any size.

``H`` houses stand on a ring (``layout="ring"``, ``H = N``) or a line (``layout="line"``,
``H = N + 1``, as the public source). Firefighter ``i`` stands between houses ``i`` and
``i + 1`` (mod ``H`` on a ring) and each step fights the fire in one of them. Two rule sets
(``rules=``); docs/firefighter.md gives the full account and the reference code.

=================  ==========================================================================
Agents             ``firefighter_0`` ... ``firefighter_{N-1}``, one team ``"firefighter"``
Action space       ``Discrete(2)``: 0 = house ``i``, 1 = house ``i + 1``
Positions          ring: houses evenly spaced on a circle with adjacent houses exactly 1
                   apart, firefighters on the same circle halfway between their two houses;
                   line: house ``h`` at ``(h, 0)``, firefighter ``i`` at ``(i + 0.5, 0)``
Start              every house at level 3
Flame flag         per agent and house, drawn independently: 1 with probability
                   ``1 - exp(-level)`` (never at level 0)
Truncation         after ``max_steps`` steps (default 100)
=================  ==========================================================================

``rules="paper"`` (default), the paper's task: the rules of its cited source
(:mod:`bmf_graph.envs.firefighter_rules`), every house at once from the levels before the
step, levels clipped at 0 and no cap. Observation ``Box(0, 1, (2,))``: the two flame flags
only. Reward: one team reward ``-sum(levels)`` after the step, the same for every agent
(``TeamStep.shared_reward``: the team's return counts it once per step). No termination:
the horizon ``max_steps`` is fixed.

``rules="ffg"``, the easier variant this project used first: a cap ``max_fire`` (default
5); observation ``Box(0, 1, (4,))``: the two levels divided by ``max_fire``, then the two
flags; reward of agent ``i``: minus the mean level of its two houses; terminates when every
fire is out.

:class:`FirefighterBatchedEnv` holds the state as arrays and is what the trainer uses;
:class:`FirefighterParallelEnv` is the PettingZoo face over the same core, so both give
identical observations and rewards for the same seed and actions. The state is settable
for scenarios and tests: ``env.levels = [...]``.
"""
from __future__ import annotations

import operator
from typing import Any, Sequence

import numpy as np
from gymnasium import logger, spaces
from pettingzoo import ParallelEnv

from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep
from bmf_graph.envs.firefighter_rules import (RULES, START_LEVEL, ffg_transition, flame_flags, neighbour_burns,
                                              paper_transition)

__all__ = ["FirefighterBatchedEnv", "FirefighterParallelEnv", "batched_env", "parallel_env"]

LAYOUTS = ("ring", "line")
RENDER_MODES = ("rgb_array",)
PAPER_FIRE_SCALE = 10  # rules="paper" has no cap: renders draw levels >= 10 darkest

_METADATA = {"name": "firefighter_v1", "render_modes": list(RENDER_MODES), "render_fps": 10}


def _check_int(name: str, value: Any, low: int, valid: str) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"Firefighter: {name}={value!r} is not an integer; valid: {valid}") from None
    if value < low:
        raise ValueError(f"Firefighter: {name}={value} is out of range; valid: {valid}")
    return value


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"Firefighter: {name}={value!r} is unknown; valid: {', '.join(choices)}")
    return value


class FirefighterBatchedEnv(BatchedEnv):
    """Array core of the Firefighter task (one team, ``N`` slots, nobody dies).

    Args:
        num_firefighters: number of agents ``N`` (>= 2). Default 50.
        num_houses: ``None`` (derived) or exactly the derived value: ``N`` on a ring,
            ``N + 1`` on a line.
        layout: ``"ring"`` (default) or ``"line"``.
        rules: ``"paper"`` (default) or ``"ffg"`` (see the module docstring).
        max_fire: ``rules="ffg"`` only: highest fire level (>= 3, default 5); ``None``.
        max_steps: episode length (>= 1). Default 100.
        render_mode: ``None`` or ``"rgb_array"``; :meth:`render` returns a frame either way.

    The ``view``, ``pos`` and ``alive`` arrays of every :class:`TeamStep` are shared and
    read-only (nothing moves or dies); ``feature`` and ``reward`` are fresh each step.
    """

    metadata = _METADATA

    def __init__(self, num_firefighters: int = 50, num_houses: int | None = None,
                 layout: str = "ring", rules: str = "paper", max_fire: int | None = None,
                 max_steps: int = 100, render_mode: str | None = None) -> None:
        self.layout = _choice("layout", layout, LAYOUTS)
        self.rules = _choice("rules", rules, RULES)
        n = _check_int("num_firefighters", num_firefighters, 2, "an integer >= 2")
        h = n if layout == "ring" else n + 1
        if num_houses is not None and num_houses != h:
            need = "num_firefighters" if layout == "ring" else "num_firefighters + 1"
            raise ValueError(f"Firefighter: num_houses={num_houses!r} does not fit layout={layout!r} "
                             f"with num_firefighters={n}; valid: None or {h} ({need})")
        if rules == "paper" and max_fire is not None:
            raise ValueError(f"Firefighter: max_fire={max_fire!r} does not apply to rules='paper' "
                             "(no cap); valid: None, or rules='ffg'")
        self.max_fire = None if rules == "paper" else \
            _check_int("max_fire", 5 if max_fire is None else max_fire, START_LEVEL, f"an integer >= {START_LEVEL}")
        self.max_steps = _check_int("max_steps", max_steps, 1, "an integer >= 1")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"Firefighter: render_mode={render_mode!r} is unknown; valid: None, 'rgb_array'")
        self.render_mode = render_mode
        self.num_firefighters, self.num_houses = n, h
        self.teams = (TeamSpec("firefighter", n, (), 2 if rules == "paper" else 4, 2),)

        left = np.arange(n)
        self._pair = np.stack([left, (left + 1) % h], axis=1)  # [N, 2] house of each action
        self._flat_pair = self._pair.ravel()
        self._two_i = 2 * left
        self._pos = _circle(np.arange(n) + 0.5, h) if layout == "ring" else _row(np.arange(n) + 0.5)
        self._view = np.zeros((n, 0), np.float32)
        self._alive = np.ones(n, bool)
        for a in (self._pair, self._pos, self._view, self._alive):
            a.setflags(write=False)

        self._levels = np.full(h, START_LEVEL, np.int64)
        self._last_action: np.ndarray | None = None
        self._rng: np.random.Generator | None = None
        self._done = False
        self.elapsed_steps = 0

    # --- state -------------------------------------------------------------------------
    @property
    def houses(self) -> np.ndarray:
        """``[N, 2]`` house index reached by action 0 and action 1 of each firefighter."""
        return self._pair

    @property
    def positions(self) -> np.ndarray:
        """``[N, 2]`` float32 firefighter positions (fixed)."""
        return self._pos

    @property
    def fire_scale(self) -> int:
        """The level drawn darkest by :meth:`render` and the plots: ``max_fire`` under
        ``rules="ffg"``, 10 under ``rules="paper"`` (higher levels look the same)."""
        return PAPER_FIRE_SCALE if self.max_fire is None else self.max_fire

    @property
    def levels(self) -> np.ndarray:
        """``[H]`` fire level of every house (a copy); assign to set the state."""
        return self._levels.copy()

    @levels.setter
    def levels(self, value: Any) -> None:
        arr = np.asarray(value)
        if arr.shape != (self.num_houses,) or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"Firefighter: levels must be {self.num_houses} integers, "
                             f"got shape {arr.shape} dtype {arr.dtype}")
        top = np.inf if self.max_fire is None else self.max_fire
        if arr.min() < 0 or arr.max() > top:
            valid = ">= 0 (no cap)" if self.max_fire is None else f"in [0, {self.max_fire}] (max_fire)"
            raise ValueError(f"Firefighter: levels must be {valid}, got [{arr.min()}, {arr.max()}]")
        self._levels = arr.astype(np.int64)

    @property
    def last_action(self) -> np.ndarray | None:
        """``[N]`` actions of the last step (``None`` right after ``reset``)."""
        return None if self._last_action is None else self._last_action.copy()

    def house_positions(self) -> np.ndarray:
        """``[H, 2]`` float32 house positions in the same frame as :attr:`positions`."""
        h = self.num_houses
        return _circle(np.arange(h), h) if self.layout == "ring" else _row(np.arange(h))

    # --- dynamics ----------------------------------------------------------------------
    def _team_step(self, reward: np.ndarray) -> TeamStep:
        lv = self._levels[self._pair]
        flags = flame_flags(lv, self._rng)
        if self.rules == "paper":
            return TeamStep(self._view, flags.astype(np.float32), self._pos, self._alive, reward,
                            shared_reward=True)
        feature = np.concatenate([lv / self.max_fire, flags], axis=1).astype(np.float32)
        return TeamStep(self._view, feature, self._pos, self._alive, reward)

    def reset(self, seed: int | None = None) -> list[TeamStep]:
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self._levels = np.full(self.num_houses, START_LEVEL, np.int64)
        self._last_action = None
        self._done = False
        self.elapsed_steps = 0
        return [self._team_step(np.zeros(self.num_firefighters, np.float32))]

    def _check_actions(self, actions: Sequence[np.ndarray]) -> np.ndarray:
        if self._rng is None or self._done:
            raise RuntimeError("Firefighter: call reset() before step() "
                               + ("(the episode is over)" if self._done else "(no episode started)"))
        if len(actions) != 1:
            raise ValueError(f"Firefighter: actions must hold 1 array (one team), got {len(actions)}")
        a = np.asarray(actions[0])
        if a.shape != (self.num_firefighters,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"Firefighter: actions[0] must be {self.num_firefighters} integers, "
                             f"got shape {a.shape} dtype {a.dtype}")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(f"Firefighter: actions must be 0 or 1, got [{a.min()}, {a.max()}]")
        return a

    def step(self, actions: Sequence[np.ndarray]) -> tuple[list[TeamStep], bool, bool, dict[str, Any]]:
        a = self._check_actions(actions)
        lv, h = self._levels, self.num_houses
        n = np.bincount(self._flat_pair[self._two_i + a], minlength=h)
        b = neighbour_burns(lv, self.layout == "ring")  # before the step
        if self.rules == "paper":
            new = paper_transition(lv, n, b, self._rng.random(h), self._rng.random(h))
        else:
            new = ffg_transition(lv, n, b, self._rng.random(h), self.max_fire)
        self._levels = new
        self._last_action = a.astype(np.int64)
        self.elapsed_steps += 1

        team_reward = -float(new.sum())
        if self.rules == "paper":
            reward = np.full(self.num_firefighters, team_reward, np.float32)
            terminated = False
        else:
            reward = (-new[self._pair].sum(axis=1) * 0.5).astype(np.float32)
            terminated = not new.any()
        truncated = self.elapsed_steps >= self.max_steps
        self._done = terminated or truncated
        info = {"team_reward": [team_reward], "burning_houses": [int(np.count_nonzero(new))]}
        return [self._team_step(reward)], terminated, truncated, info

    # --- rendering ---------------------------------------------------------------------
    def _palette(self) -> np.ndarray:
        t = np.linspace(0.0, 1.0, self.fire_scale)[:, None]
        fire = (1 - t) * np.array([255, 215, 0]) + t * np.array([140, 0, 0])
        return np.concatenate([[[190, 225, 190]], fire]).astype(np.uint8)

    def render(self) -> np.ndarray:
        """RGB frame: houses in reading order wrapped into rows, coloured by level (green =
        no fire, yellow -> dark red = level 1 -> :attr:`fire_scale`). Below each row every
        firefighter is a dark square on the border of its two houses and, after a step, a
        blue bar leaning into the house it chose. On a ring the last firefighter's right
        house is house 0 (the first row)."""
        h, n = self.num_houses, self.num_firefighters
        per_row = min(h, int(np.ceil(np.sqrt(2 * h))))
        c = int(np.clip(960 // per_row, 6, 32))  # house size in pixels
        band, gap, margin = c // 2, max(2, c // 4), c // 2 + 1
        row_h = c + band + gap
        rows = -(-h // per_row)
        img = np.full((gap + rows * row_h, 2 * margin + per_row * c, 3), 255, np.uint8)

        house = np.arange(h)
        y = gap + (house // per_row) * row_h
        x = margin + (house % per_row) * c
        _fill(img, y, x, c - 1, c - 1, self._palette()[np.minimum(self._levels, self.fire_scale)])

        ff = np.arange(n)
        yb = gap + (ff // per_row) * row_h + c
        xb = margin + (ff % per_row + 1) * c  # border between house i and house i + 1
        if self._last_action is not None:
            width = max(1, band - 1)
            x0 = np.where(self._last_action == 0, xb - width - 1, xb)
            _fill(img, yb + 1, x0, band - 1, width, np.array([80, 140, 240], np.uint8))
        s = max(2, c // 4)
        _fill(img, yb + (band - s) // 2 + 1, xb - s // 2, s, s, np.array([20, 40, 110], np.uint8))
        return img


def _circle(index: np.ndarray, h: int) -> np.ndarray:
    """Points ``index`` (fractional allowed) of ``h`` evenly spaced on a circle whose adjacent
    points are exactly 1 apart, shifted into the positive quadrant; ``[len, 2]`` float32."""
    radius = 0.5 / np.sin(np.pi / h)
    angle = 2.0 * np.pi * index / h
    return (radius * np.stack([1.0 + np.cos(angle), 1.0 + np.sin(angle)], axis=1)).astype(np.float32)


def _row(x: np.ndarray) -> np.ndarray:
    """Points ``(x, 0)``, ``[len, 2]`` float32."""
    return np.stack([x, np.zeros_like(x)], axis=1).astype(np.float32)


def _fill(img: np.ndarray, y0: np.ndarray, x0: np.ndarray, height: int, width: int,
          color: np.ndarray) -> None:
    """Paint ``len(y0)`` rectangles of one size at once (``color`` [3] or [M, 3])."""
    if height <= 0 or width <= 0:
        return
    yy = y0[:, None, None] + np.arange(height)[None, :, None]
    xx = x0[:, None, None] + np.arange(width)[None, None, :]
    img[yy, xx] = color[:, None, None, :] if color.ndim == 2 else color


class FirefighterParallelEnv(ParallelEnv[str, np.ndarray, int]):
    """PettingZoo ``ParallelEnv`` over a :class:`FirefighterBatchedEnv` core (``self.core``).

    Takes the same arguments as :class:`FirefighterBatchedEnv`. ``infos[agent]`` holds
    ``"team_reward"`` (minus the sum of all levels after the step); :meth:`state` is the
    levels of all houses.
    """

    metadata = _METADATA

    def __init__(self, **kwargs: Any) -> None:
        self.core = FirefighterBatchedEnv(**kwargs)
        self.render_mode = self.core.render_mode
        self.possible_agents = [f"firefighter_{i}" for i in range(self.core.num_firefighters)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._obs_space = spaces.Box(0.0, 1.0, (self.core.teams[0].feature_dim,), np.float32)
        self._act_space = spaces.Discrete(2)
        top = np.inf if self.core.max_fire is None else self.core.max_fire
        self.state_space = spaces.Box(0.0, top, (self.core.num_houses,), np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        self._index[agent]  # KeyError for unknown agents
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        self._index[agent]
        return self._act_space

    def _obs(self, team: TeamStep) -> dict[str, np.ndarray]:
        return dict(zip(self.possible_agents, team.feature))

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        (team,) = self.core.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._obs(team), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[str, float],
                                                     dict[str, bool], dict[str, bool], dict[str, dict]]:
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"Firefighter: no action for {len(missing)} agents, e.g. {missing[:3]}")
        a = np.fromiter((actions[agent] for agent in self.possible_agents), np.int64,
                        count=len(self.possible_agents))
        (team,), terminated, truncated, info = self.core.step([a])
        agents = self.agents
        self.agents = [] if terminated or truncated else agents
        team_reward = info["team_reward"][0]
        return (self._obs(team),
                dict(zip(agents, team.reward.tolist())),
                dict.fromkeys(agents, terminated),
                dict.fromkeys(agents, truncated),
                {agent: {"team_reward": team_reward} for agent in agents})

    def state(self) -> np.ndarray:
        """The level of every house, ``[H]`` float32."""
        return self.core.levels.astype(np.float32)

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            logger.warn("Firefighter: render() called with render_mode=None; "
                        "pass render_mode='rgb_array'")
            return None
        return self.core.render()

    def close(self) -> None:
        self.core.close()


batched_env = FirefighterBatchedEnv
"""The batched array environment (see :class:`FirefighterBatchedEnv` for arguments)."""


def parallel_env(**kwargs: Any) -> FirefighterParallelEnv:
    """The PettingZoo ``ParallelEnv`` (see :class:`FirefighterBatchedEnv` for arguments)."""
    return FirefighterParallelEnv(**kwargs)
