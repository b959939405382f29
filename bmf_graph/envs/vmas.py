"""VMAS tasks (the Vectorized Multi-Agent Simulator, github.com/proroklab/VectorizedMultiAgentSimulator)
on the batched array path, with continuous actions.

=====================  ==========================================================================
Scenario               ``scenario="crowd_navigation"`` (default, :mod:`bmf_graph.envs.vmas_crowd`:
                       goals of their own, a penalty per agent closer than ``crowd_radius``,
                       observation size 9 at any size) or the name of any VMAS scenario whose
                       agents share one observation and one action space (``navigation``,
                       ``flocking``, ...); other keyword arguments go to the scenario
                       (``n_agents=...``).
Team                   one, ``"agents"``, every VMAS agent whose action VMAS takes (scripted
                       agents are not slots); nobody dies (``alive`` is all true).
Action space           ``Box(low, high, (A,))`` of the scenario (``A = 2`` forces for
                       holonomic agents): :attr:`TeamSpec.action_range`; out-of-range actions
                       are clamped by VMAS.
Observation            the scenario's vector, as the team's ``feature`` (no spatial view).
Positions              ``agent.state.pos`` (the radius graph's input).
Rewards                the scenario's reward of each agent and step; the team reward is their sum.
Episode end            terminated when VMAS's ``done()`` says so for the env; truncated after
                       ``max_steps`` steps (default 100), enforced by us.
Copies                 VMAS simulates ``num_envs`` environments at once as one batch of
                       tensors: :func:`env_copies` gives them to the episode loop as its env
                       copies (one reset seeds them all; one VMAS step steps them all).
Device                 ``device="cpu"`` (default) or ``"cuda"``: where VMAS simulates; the
                       arrays come back as numpy either way.
=====================  ==========================================================================

VMAS offers no PettingZoo face (its wrappers are Gym, Gymnasium and RLlib); ``batched_env`` is
one environment of the batched path and ``env_copies`` the same core over ``num_envs`` copies.
``vmas`` is an optional dependency (``pip install bmf_graph[vmas]``); it is imported when a VMAS
task is made.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep
from bmf_graph.envs.copies import EnvCopies, Part, PartStep

__all__ = ["VmasSimulator", "VmasBatchedEnv", "VmasCopies", "batched_env", "env_copies", "MAX_STEPS"]

MAX_STEPS = 100
DEFAULT_SCENARIO = "crowd_navigation"


def _import_vmas() -> Any:
    try:
        import vmas
    except ImportError:
        raise ImportError("VMAS tasks need the vmas package: pip install 'bmf_graph[vmas]'") from None
    return vmas


def _scenario(name: str) -> Any:
    """Our scenario object for ``crowd_navigation``, else the VMAS scenario name itself."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"VMAS: scenario={name!r} is not valid; expected a scenario name such as "
                         f"{DEFAULT_SCENARIO!r} or 'navigation'")
    if name == DEFAULT_SCENARIO:
        from bmf_graph.envs.vmas_crowd import CrowdNavigation

        return CrowdNavigation()
    return name


class VmasSimulator:
    """One VMAS environment of ``num_envs`` vectorised envs, as arrays ``[E, N, ...]``.

    Args:
        scenario: see the module table.
        num_envs: environments simulated at once (``E``).
        device: where VMAS simulates (``cpu`` or ``cuda``).
        **scenario_kwargs: the scenario's arguments (e.g. ``n_agents``).
    """

    def __init__(self, scenario: str = DEFAULT_SCENARIO, num_envs: int = 1, device: str = "cpu",
                 **scenario_kwargs: Any):
        vmas = _import_vmas()
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"VMAS: num_envs={num_envs!r} is not valid; expected an integer >= 1")
        self.env = vmas.make_env(_scenario(scenario), num_envs=num_envs, device=device, continuous_actions=True,
                                 clamp_actions=True, dict_spaces=False, **scenario_kwargs)
        self.num_envs = num_envs
        self.agents = list(self.env.agents)
        self.spec = self._spec(scenario)

    def _spec(self, scenario: str) -> TeamSpec:
        obs_spaces, act_spaces = self.env.observation_space, self.env.action_space
        obs_shapes = {tuple(space.shape) for space in obs_spaces}
        bounds = {(float(np.min(s.low)), float(np.max(s.high)), tuple(s.shape)) for s in act_spaces}
        if len(obs_shapes) != 1 or len(bounds) != 1 or len(next(iter(obs_shapes))) != 1:
            raise ValueError(f"VMAS: scenario={scenario!r} has agents with different or non-flat spaces "
                             f"(observations {sorted(obs_shapes)}, actions {sorted(bounds)}); expected one "
                             "flat observation space and one action space for every agent")
        for space in act_spaces:
            if not (np.all(space.low == space.low.flat[0]) and np.all(space.high == space.high.flat[0])):
                raise ValueError(f"VMAS: scenario={scenario!r} has an action space {space} whose components "
                                 "have different ranges; expected one range for all components")
        low, high, shape = next(iter(bounds))
        return TeamSpec(name="agents", num_agents=len(self.agents), view_shape=(),
                        feature_dim=next(iter(obs_shapes))[0], num_actions=shape[0], action_range=(low, high))

    def _arrays(self, obs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        stack = torch.stack
        observations = stack(list(obs), dim=1).float().cpu().numpy()
        positions = stack([a.state.pos for a in self.agents], dim=1).float().cpu().numpy()
        return observations, positions

    def reset(self, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Reset every env (``seed`` seeds VMAS's random stream first): observations
        ``[E, N, O]`` and positions ``[E, N, 2]``."""
        return self._arrays(self.env.reset(seed=seed))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One step of every env with ``actions`` ``[E, N, A]``: observations, positions,
        rewards ``[E, N]`` and VMAS's ``done`` ``[E]``."""
        n, a = self.spec.num_agents, self.spec.num_actions
        actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, n, a)
        tensor = torch.as_tensor(actions, device=self.env.device)
        obs, rewards, dones, _ = self.env.step([tensor[:, i] for i in range(n)])
        observations, positions = self._arrays(obs)
        reward = torch.stack(list(rewards), dim=1).float().cpu().numpy()
        return observations, positions, reward, dones.cpu().numpy().astype(bool)

    def render(self, env: int = 0, size: int = 256) -> np.ndarray:
        """An RGB frame ``[size, size, 3]`` of env ``env``: agents as dark dots on white, the
        frame spanning the agents' positions."""
        pos = torch.stack([a.state.pos[env] for a in self.agents]).float().cpu().numpy()
        frame = np.full((size, size, 3), 255, np.uint8)
        low, span = pos.min(0), max(float(np.ptp(pos, axis=0).max()), 1e-6)
        pixel = ((pos - low) / span * (size - 5) + 2).astype(int)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                frame[size - 1 - pixel[:, 1] + dy, pixel[:, 0] + dx] = (40, 60, 160)
        return frame


def _check_steps(max_steps: Any) -> int:
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"VMAS: max_steps={max_steps!r} is not valid; expected an integer >= 1")
    return max_steps


class VmasBatchedEnv(BatchedEnv):
    """One VMAS environment as a :class:`BatchedEnv` (arguments of :func:`batched_env`)."""

    def __init__(self, scenario: str = DEFAULT_SCENARIO, max_steps: int = MAX_STEPS, device: str = "cpu",
                 **scenario_kwargs: Any):
        self.max_steps = _check_steps(max_steps)
        self.sim = VmasSimulator(scenario, 1, device, **scenario_kwargs)
        self.teams = (self.sim.spec,)
        self.t = 0

    def _team(self, obs: np.ndarray, pos: np.ndarray, reward: np.ndarray) -> list[TeamStep]:
        n = self.sim.spec.num_agents
        return [TeamStep(view=np.zeros((n, 0), np.float32), feature=obs[0], pos=pos[0],
                         alive=np.ones(n, bool), reward=reward[0])]

    def reset(self, seed: int | None = None) -> list[TeamStep]:
        self.t = 0
        obs, pos = self.sim.reset(seed)
        return self._team(obs, pos, np.zeros((1, self.sim.spec.num_agents), np.float32))

    def step(self, actions: Sequence[np.ndarray]) -> tuple[list[TeamStep], bool, bool, dict[str, Any]]:
        obs, pos, reward, done = self.sim.step(np.asarray(actions[0])[None])
        self.t += 1
        return self._team(obs, pos, reward), bool(done[0]), self.t >= self.max_steps, {}

    def render(self) -> np.ndarray:
        return self.sim.render()


class VmasCopies(EnvCopies):
    """``num_envs`` VMAS environments as the episode loop's env copies, stepped together by one
    VMAS step. Copies are played as one part (VMAS cannot step some envs of its batch alone);
    copies beyond those reset, and copies whose episode ended, are stepped with zero actions and
    keep their final arrays. One seed (the first of :meth:`reset`'s) seeds VMAS's stream, from
    which every copy's start is drawn."""

    def __init__(self, num_envs: int, scenario: str = DEFAULT_SCENARIO, max_steps: int = MAX_STEPS,
                 device: str = "cpu", **scenario_kwargs: Any):
        self.max_steps = _check_steps(max_steps)
        self.sim = VmasSimulator(scenario, num_envs, device, **scenario_kwargs)
        self.teams, self.num_envs = (self.sim.spec,), num_envs
        n, o = self.sim.spec.num_agents, self.sim.spec.obs_dim
        self.buffers = [np.zeros((2, num_envs * n, o), np.float32)]
        self._pos = np.zeros((num_envs * n, 2), np.float32)
        self._ended = np.ones(num_envs, bool)
        self._terminated = np.zeros(num_envs, bool)
        self._result: PartStep | None = None

    def _part(self, parts: Sequence[Part]) -> Part:
        if len(parts) != 1 or parts[0][0] != 0:
            raise ValueError(f"VmasCopies: parts {list(parts)} are not valid; VMAS steps its envs together, "
                             "expected one part starting at copy 0 (play_episodes(..., parts=1))")
        return tuple(parts[0])

    def reset(self, seeds: Sequence[int | None], parts: Sequence[Part]) -> None:
        if not 1 <= len(seeds) <= self.num_envs:
            raise ValueError(f"EnvCopies.reset: got {len(seeds)} seeds for {self.num_envs} copies; "
                             f"expected 1..{self.num_envs}")
        self._play = self._part(parts)
        obs, pos = self.sim.reset(seeds[0])
        self.buffers[0][0] = obs.reshape(self.buffers[0].shape[1:])
        self._pos[:] = pos.reshape(-1, 2)
        self._ended[:] = np.arange(self.num_envs) >= len(seeds)
        self._terminated[:] = False
        self._t = 0
        self._result = self._collect(0, np.zeros((self.num_envs, self.sim.spec.num_agents), np.float32))

    def step(self, part: Part, actions: Sequence[np.ndarray], t: int) -> None:
        if tuple(part) != self._play:
            raise ValueError(f"VmasCopies.step: part {part} is not the part {self._play} reset")
        n, a = self.sim.spec.num_agents, self.sim.spec.num_actions
        stepping = ~self._ended
        full = np.zeros((self.num_envs, n, a), np.float32)
        played = np.asarray(actions[0], np.float32).reshape(-1, n, a)
        full[:len(played)] = played
        full[~stepping] = 0.0
        obs, pos, reward, done = self.sim.step(full)
        parity = (t + 1) % 2
        rows = np.repeat(stepping, n)
        buffer = self.buffers[0]
        buffer[parity] = np.where(rows[:, None], obs.reshape(buffer.shape[1:]), buffer[1 - parity])
        self._pos[rows] = pos.reshape(-1, 2)[rows]
        reward[~stepping] = 0.0
        self._terminated |= stepping & done
        self._ended |= stepping & (done | (t + 1 >= self.max_steps))
        self._result = self._collect(parity, reward)

    def _collect(self, parity: int, reward: np.ndarray) -> PartStep:
        lo, hi = self._play
        n = self.sim.spec.num_agents
        rows = slice(lo * n, hi * n)
        return PartStep(parity=parity, pos=[self._pos[rows].copy()], alive=[np.ones((hi - lo) * n, bool)],
                        rewards=[reward[lo:hi].reshape(-1).astype(np.float32)],
                        survivors=np.full((hi - lo, 1), n), reward=reward[lo:hi].sum(1, keepdims=True).astype(float),
                        kills=np.zeros((hi - lo, 1)), terminated=self._terminated[lo:hi].copy(),
                        ended=self._ended[lo:hi].copy())

    def result(self, part: Part) -> PartStep:
        if self._result is None:
            raise RuntimeError("VmasCopies.result: reset first")
        result, self._result = self._result, None
        return result


def batched_env(scenario: str = DEFAULT_SCENARIO, max_steps: int = MAX_STEPS, device: str = "cpu",
                **scenario_kwargs: Any) -> VmasBatchedEnv:
    """One VMAS environment of ``scenario`` (module table); ``scenario_kwargs`` go to the scenario."""
    return VmasBatchedEnv(scenario, max_steps, device, **scenario_kwargs)


def env_copies(num_envs: int, scenario: str = DEFAULT_SCENARIO, max_steps: int = MAX_STEPS, device: str = "cpu",
               **scenario_kwargs: Any) -> VmasCopies:
    """``num_envs`` copies of :func:`batched_env`'s task simulated as one VMAS batch."""
    return VmasCopies(num_envs, scenario, max_steps, device, **scenario_kwargs)
