"""Batched array path over a magent2 PettingZoo environment, shared by Battle and Pursuit.

:class:`MagentBatchedEnv` drives the native ``magent2.gridworld.GridWorld`` behind a magent2
``ParallelEnv`` (``env.unwrapped.env``, team handles ``env.unwrapped.handles``) and reads whole
teams as arrays: no per-agent dict is built in ``reset`` or ``step``.

===================  =============================================================================
Slots                magent2 numbers agents ``0..N-1`` over all teams at each reset; slot
                     ``s`` of team ``t`` is the agent named ``f"{team}_{s}"`` in the dict API.
                     Slots are fixed for the whole episode.
``view``             the engine's views ``[N, H, W, C]`` (as ``GridWorld.get_observation``, but
                     written straight into fresh arrays: no copy); zeros in dead slots.
``feature``          the native feature vector ``[N, F]``: binary agent id (10), one-hot last
                     action, last reward (+ 2 position features with ``minimap_mode``); zeros in
                     dead slots. The id bits are the agent's slot within its team (the engine's
                     ids run on across teams, so every blue agent would carry a bit no red agent
                     has): a policy sees the same kind of input whichever team it plays. The
                     dict API shows the features only with ``extra_features=True``, as constant
                     channels appended to the view, with the engine's own ids.
``pos``              ``GridWorld.get_pos`` (x, y) of the agent's top-left cell, float32; a dead
                     slot keeps the cell where its agent died.
``alive``            ``GridWorld.get_alive`` read after the step, before ``clear_dead``.
``reward``           ``GridWorld.get_reward`` of the step, so an agent killed in the step still
                     gets that step's reward (its dead penalty included); 0 in earlier-dead slots.
terminated           magent2's own done flag, or some team has no alive agent left.
truncated            ``max_steps`` steps taken (enforced here, not by magent2's ``max_cycles``).
``info["kills"]``    one int per team: agents of the other teams that died in this step.
===================  =============================================================================

Reading order matches magent2's dict API exactly (actions, ``step``, then alive / observation /
reward before ``clear_dead``), so the same seed and actions give identical arrays on both paths.
The wrapped ``ParallelEnv`` must not be stepped through its dict API at the same time.
"""
from __future__ import annotations

import ctypes
from typing import Any, Sequence

import numpy as np
from magent2.c_lib import _LIB, as_float_c_array

from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep

__all__ = ["MagentBatchedEnv", "ParallelEnvMixin", "render_gridworld"]

ID_BITS = 10
"""Leading feature columns holding an agent's id in binary (magent2's ``embedding_size``)."""

BACKGROUND_RGB = (250, 250, 250)
WALL_RGB = (90, 90, 90)


class MagentBatchedEnv(BatchedEnv):
    """A :class:`~bmf_graph.envs.base.BatchedEnv` over a magent2 ``ParallelEnv``.

    Args:
        parallel: a magent2 ``ParallelEnv`` (e.g. ``battle_v4.parallel_env()``), owned by this
            object from now on.
        team_names: one name per team handle, in handle order (``("red", "blue")``).
        max_steps: episode length; ``step`` reports ``truncated`` when it is reached.
        colors: one RGB triple per team for :meth:`render`.
        body_sizes: side length in cells of each team's agents (magent2's ``width``), for
            :meth:`render`; ``None``: 1 for every team.
        cell_px: pixels per grid cell in :meth:`render`; ``None``: ``max(2, 320 // map_size)``.
    """

    def __init__(self, parallel: Any, team_names: Sequence[str], max_steps: int,
                 colors: Sequence[tuple[int, int, int]],
                 body_sizes: Sequence[int] | None = None, cell_px: int | None = None) -> None:
        if int(max_steps) < 1:
            raise ValueError(f"MagentBatchedEnv: max_steps={max_steps!r} must be >= 1")
        self.parallel = parallel
        self.gridworld = parallel.unwrapped.env
        self.handles = list(parallel.unwrapped.handles)
        self.map_size = int(parallel.unwrapped.map_size)
        if len(team_names) != len(self.handles) or len(colors) != len(self.handles):
            raise ValueError(f"MagentBatchedEnv: got {len(team_names)} team names and {len(colors)} "
                             f"colors, expected {len(self.handles)} (one per team handle)")
        self.max_steps = int(max_steps)
        self.colors = [tuple(c) for c in colors]
        self.body_sizes = list(body_sizes) if body_sizes is not None else [1] * len(self.handles)
        self.cell_px = int(cell_px) if cell_px is not None else default_cell_px(self.map_size)
        gw = self.gridworld
        self.teams = tuple(
            TeamSpec(name=str(name), num_agents=int(gw.get_num(h)),
                     view_shape=tuple(int(d) for d in gw.get_view_space(h)),
                     feature_dim=int(gw.get_feature_space(h)[0]),
                     num_actions=int(gw.get_action_space(h)[0]))
            for name, h in zip(team_names, self.handles))
        self._lut: list[np.ndarray] = []
        self._slots: list[np.ndarray] = []  # slot of each engine agent, in engine order
        self._pos: list[np.ndarray] = []
        self._alive: list[np.ndarray] = []
        self._t = 0
        self._needs_reset = True

    # --- episode ------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> list[TeamStep]:
        gw = self.gridworld
        if seed is not None:
            gw.set_seed(int(seed))
        gw.reset()
        self.parallel.unwrapped.new_layout(seed)
        self.parallel.unwrapped.generate_map()
        self._t = 0
        self._needs_reset = False
        self._lut, self._slots, self._pos, self._alive = [], [], [], []
        steps = []
        for spec, h in zip(self.teams, self.handles):
            ids = gw.get_agent_id(h).astype(np.int64)
            if len(ids) != spec.num_agents:
                raise RuntimeError(f"MagentBatchedEnv: team {spec.name!r} got {len(ids)} agents at "
                                   f"reset, expected {spec.num_agents}")
            lut = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
            lut[ids] = np.arange(len(ids))
            slots = lut[ids]
            view_e, feature_e = _observe(gw, h, len(ids), spec)
            view, feature = np.empty_like(view_e), np.empty_like(feature_e)
            pos = np.empty((spec.num_agents, 2), dtype=np.float32)
            view[slots], feature[slots], pos[slots] = view_e, feature_e, gw.get_pos(h)
            alive = np.ones(spec.num_agents, dtype=bool)
            team_relative_ids(feature, alive)
            self._lut.append(lut)
            self._slots.append(slots)
            self._pos.append(pos)
            self._alive.append(alive)
            steps.append(TeamStep(view=view, feature=feature, pos=pos.copy(), alive=alive.copy(),
                                  reward=np.zeros(spec.num_agents, dtype=np.float32)))
        return steps

    def step(self, actions: Sequence[np.ndarray]) -> tuple[list[TeamStep], bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("MagentBatchedEnv: step() called before reset() or after the episode "
                               "ended; call reset()")
        if len(actions) != len(self.teams):
            raise ValueError(f"MagentBatchedEnv: got {len(actions)} action arrays, expected "
                             f"{len(self.teams)} (one per team)")
        gw = self.gridworld
        for spec, h, slots, act in zip(self.teams, self.handles, self._slots, actions):
            act = np.asarray(act)
            if act.shape != (spec.num_agents,):
                raise ValueError(f"MagentBatchedEnv: actions of team {spec.name!r} have shape "
                                 f"{act.shape}, expected ({spec.num_agents},)")
            live = act[slots].astype(np.int32)
            if live.size and (live.min() < 0 or live.max() >= spec.num_actions):
                raise ValueError(f"MagentBatchedEnv: actions of team {spec.name!r} must lie in "
                                 f"0..{spec.num_actions - 1}, got {live.min()}..{live.max()}")
            gw.set_action(h, live)
        done = gw.step()
        self._t += 1

        steps, deaths = [], []
        for i, (spec, h, slots) in enumerate(zip(self.teams, self.handles, self._slots)):
            alive_e = gw.get_alive(h)
            view, feature = _observe(gw, h, len(slots), spec)
            n_dead = len(slots) - int(np.count_nonzero(alive_e))
            if n_dead or len(slots) != spec.num_agents:  # scatter live agents into their slots
                keep = slots[alive_e]
                view_e, feature_e = view, feature
                view = np.zeros((spec.num_agents, *spec.view_shape), dtype=np.float32)
                feature = np.zeros((spec.num_agents, spec.feature_dim), dtype=np.float32)
                view[keep], feature[keep] = view_e[alive_e], feature_e[alive_e]
            reward = np.zeros(spec.num_agents, dtype=np.float32)
            reward[slots] = gw.get_reward(h)
            self._pos[i][slots] = gw.get_pos(h)
            self._alive[i][slots] = alive_e
            team_relative_ids(feature, self._alive[i])
            deaths.append(n_dead)
            steps.append(TeamStep(view=view, feature=feature, pos=self._pos[i].copy(),
                                  alive=self._alive[i].copy(), reward=reward))
        gw.clear_dead()
        if any(deaths):
            self._slots = [lut[gw.get_agent_id(h)] for lut, h in zip(self._lut, self.handles)]

        terminated = bool(done) or any(not s.alive.any() for s in steps)
        truncated = self._t >= self.max_steps
        self._needs_reset = terminated or truncated
        total = sum(deaths)
        info: dict[str, Any] = {"kills": [total - d for d in deaths]}
        info.update(self._extra_info(steps))
        return steps, terminated, truncated, info

    def _extra_info(self, steps: list[TeamStep]) -> dict[str, Any]:
        """Task-specific per-step counters merged into ``info`` (none here)."""
        return {}

    @property
    def num_steps(self) -> int:
        """Steps taken in the current episode."""
        return self._t

    # --- rendering ----------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """RGB frame of the current state; see :func:`render_gridworld`."""
        return render_gridworld(self.gridworld, self.handles, self.map_size, self.colors,
                                self.body_sizes, self.cell_px)

    def close(self) -> None:
        self.parallel.close()


def team_relative_ids(feature: np.ndarray, alive: np.ndarray) -> None:
    """Write each alive slot's index within its team, in binary, over the first :data:`ID_BITS`
    feature columns (in place; dead slots keep zeros)."""
    slots = np.flatnonzero(alive)
    feature[slots, :ID_BITS] = (slots[:, None] >> np.arange(ID_BITS)) & 1


def _observe(gridworld: Any, handle: Any, n: int, spec: TeamSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(view, feature)`` of the ``n`` agents of ``handle``, in engine order, as fresh arrays.

    The same engine call as ``GridWorld.get_observation``, which fills one buffer per group
    that it reuses on every call (so its arrays must be copied before the next step); here the
    engine writes straight into new arrays that the caller may keep.
    """
    view = np.empty((n, *spec.view_shape), dtype=np.float32)
    feature = np.empty((n, spec.feature_dim), dtype=np.float32)
    bufs = (ctypes.POINTER(ctypes.c_float) * 2)(as_float_c_array(view), as_float_c_array(feature))
    _LIB.env_get_observation(gridworld.game, handle, bufs)
    return view, feature


def default_cell_px(map_size: int) -> int:
    """Pixels per cell so that a frame is about 320 pixels wide (at least 2 per cell)."""
    return max(2, 320 // int(map_size))


def render_gridworld(gridworld: Any, handles: Sequence[Any], map_size: int,
                     colors: Sequence[Sequence[int]], body_sizes: Sequence[int],
                     cell_px: int) -> np.ndarray:
    """Draw a magent2 ``GridWorld`` with numpy (headless, no pygame).

    Returns an RGB frame ``[S, S, 3]`` uint8 with ``S = map_size * cell_px``: background light,
    walls grey, the live agents of team ``t`` in ``colors[t]``, each a square of
    ``body_sizes[t]`` cells from its ``get_pos`` cell (row = y, column = x, as in the views).
    """
    m = int(map_size)
    grid = np.empty((m, m, 3), dtype=np.uint8)
    grid[:] = BACKGROUND_RGB
    walls = np.asarray(gridworld._get_walls_info(), dtype=np.int64).reshape(-1, 2)
    grid[walls[:, 1], walls[:, 0]] = WALL_RGB
    for h, color, size in zip(handles, colors, body_sizes):
        cells = gridworld.get_pos(h)[gridworld.get_alive(h)].astype(np.int64)
        for dx in range(int(size)):
            for dy in range(int(size)):
                grid[np.clip(cells[:, 1] + dy, 0, m - 1), np.clip(cells[:, 0] + dx, 0, m - 1)] = color
    return np.repeat(np.repeat(grid, cell_px, axis=0), cell_px, axis=1)


class ParallelEnvMixin:
    """Mixed into a magent2 ``ParallelEnv`` subclass (before it in the bases).

    * ``step``: when a team has no agent left, every remaining agent is terminated (magent2
      alone would let the winners walk on until ``max_cycles``), as in the batched path.
    * ``reset``: recounts ``team_sizes`` after the map is generated. magent2 0.3.4 counts them
      before ``generate_map`` (zeros), so its first ``step`` after ``reset`` hands every team
      the first actions of the whole action list (blue acts with red's actions).
    * ``render`` with ``render_mode="rgb_array"``: the numpy frame of :func:`render_gridworld`
      (``"human"`` keeps magent2's pygame window).
    * ``new_layout(seed)``: called with the reset seed before every ``generate_map``, on this
      path and on :class:`MagentBatchedEnv`'s, so a task can draw its layout (Battle: which
      team spawns on the left) from the seed identically on both. No-op here.

    The subclass sets ``team_colors`` and ``body_sizes`` (one entry per team).
    """

    team_colors: tuple[tuple[int, int, int], ...]
    body_sizes: tuple[int, ...]

    def new_layout(self, seed: int | None) -> None:
        """Draw what the next ``generate_map`` places where (nothing by default)."""

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.new_layout(seed)
        out = super().reset(seed=seed, options=options)  # type: ignore[misc]
        self.team_sizes = [self.env.get_num(h) for h in self.handles]
        return out

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terminations, truncations, infos = super().step(actions)  # type: ignore[misc]
        if self.agents and min(self.team_sizes) == 0:
            terminations = dict.fromkeys(terminations, True)
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return render_gridworld(self.env, self.handles, self.map_size, self.team_colors,
                                    self.body_sizes, default_cell_px(self.map_size))
        return super().render()  # type: ignore[misc]
