r"""Crowd navigation: a VMAS scenario whose cost per step grows linearly with the agents.

``N`` holonomic point agents (VMAS's default dynamics: force actions in ``Box(-1, 1, (2,))``,
drag, no collisions) start at uniform positions in a square and each has a goal of its own,
drawn uniformly in the same square, whose side grows with ``sqrt(N)`` so that the density stays
``density`` agents per unit area at any size; the world itself is unbounded (as VMAS's
``navigation``). Agents interact locally: an agent pays for every other agent closer than
``crowd_radius``,

.. math::
    r_i = s\,(d_i^{t-1} - d_i^t) - c\,\big|\{j \ne i : \|p_i - p_j\| < \rho\}\big|,

with :math:`d_i` the distance to its goal, :math:`s` = ``pos_shaping_factor``, :math:`c` =
``crowd_penalty`` and :math:`\rho` = ``crowd_radius``: heading straight for the goal pays,
crossing a crowd costs. The observation has 9 entries whatever ``N``: position, velocity,
position minus goal, the number of agents within ``crowd_radius`` and their mean position
relative to the agent (zeros when none). The episode terminates when every agent is on its
goal (within ``goal_radius``).

VMAS's built-in scenarios with local interaction (``navigation`` with collisions,
``flocking``) compute collisions, lidar rays and rewards in Python loops over pairs of
agents: 0.67 s per step at 100 agents for ``navigation`` on one CPU core (docs/continuous.md).
Here rewards and observations are computed once per step for all agents from one distance
matrix per env, and VMAS's pairwise collision loop is skipped (no agent collides), so the step
cost is VMAS's per-agent physics loop.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from vmas.simulator.core import Agent, Sphere, World
from vmas.simulator.scenario import BaseScenario
from vmas.simulator.utils import ScenarioUtils

NAME = "crowd_navigation"
OBS_DIM = 9


class FreeWorld(World):
    """A VMAS world whose entities never collide and have no joints: VMAS's environment-force
    step, a Python loop over all pairs of entities that finds nothing to do here, is skipped
    (at 1,000 agents it took most of the step)."""

    def _apply_vectorized_enviornment_force(self) -> None:  # VMAS 1.5's name (sic)
        if any(entity.collide for entity in self.entities) or self._joints:
            super()._apply_vectorized_enviornment_force()


class CrowdNavigation(BaseScenario):
    """The scenario (``vmas.make_env(CrowdNavigation(), num_envs, n_agents=..., ...)``)."""

    def make_world(self, batch_dim: int, device: torch.device, **kwargs) -> World:
        n = kwargs.pop("n_agents", 100)
        self.density = kwargs.pop("density", 25.0)
        self.crowd_radius = kwargs.pop("crowd_radius", 0.15)
        self.crowd_penalty = kwargs.pop("crowd_penalty", 0.05)
        self.goal_radius = kwargs.pop("goal_radius", 0.05)
        self.shaping = kwargs.pop("pos_shaping_factor", 1.0)
        ScenarioUtils.check_kwargs_consumed(kwargs, warn=False)  # a misspelt argument is an error
        if n < 1 or self.density <= 0 or self.crowd_radius <= 0:
            raise ValueError(f"CrowdNavigation: n_agents={n}, density={self.density}, crowd_radius="
                             f"{self.crowd_radius}; expected n_agents >= 1 and positive density and radius")
        self.half = 0.5 * math.sqrt(n / self.density)
        world = FreeWorld(batch_dim, device)  # unbounded: no wall for agents to pile up at
        for i in range(n):
            world.add_agent(Agent(name=f"agent_{i}", collide=False, shape=Sphere(radius=0.03)))
        self.goal = torch.zeros(batch_dim, n, 2, device=device)
        self.distance = torch.zeros(batch_dim, n, device=device)
        self._reward = torch.zeros(batch_dim, n, device=device)
        self._obs = torch.zeros(batch_dim, n, OBS_DIM, device=device)
        self.index = {agent.name: i for i, agent in enumerate(world.agents)}
        return world

    def positions(self) -> Tensor:
        """``[B, N, 2]`` agent positions."""
        return torch.stack([a.state.pos for a in self.world.agents], dim=1)

    def reset_world_at(self, env_index: int | None = None) -> None:
        n, batch = len(self.world.agents), self.world.batch_dim if env_index is None else 1
        pos = torch.empty(batch, n, 2, device=self.world.device).uniform_(-self.half, self.half)
        goal = torch.empty(batch, n, 2, device=self.world.device).uniform_(-self.half, self.half)
        for i, agent in enumerate(self.world.agents):
            agent.set_pos(pos[:, i], batch_index=env_index)
            agent.set_vel(torch.zeros_like(pos[:, i]), batch_index=env_index)
        distance = torch.linalg.vector_norm(pos - goal, dim=-1)
        if env_index is None:
            self.goal, self.distance = goal, distance
        else:
            self.goal[env_index], self.distance[env_index] = goal[0], distance[0]

    def crowd(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        """``(count, offset)``: per agent the number of others within ``crowd_radius`` ``[B, N]``
        and their mean position relative to it ``[B, N, 2]`` (zeros when none)."""
        near = torch.cdist(pos, pos) < self.crowd_radius
        near &= ~torch.eye(pos.shape[1], dtype=torch.bool, device=pos.device)
        weight = near.to(pos.dtype)
        count = weight.sum(-1)
        offset = (weight @ pos) / count.clamp(min=1).unsqueeze(-1) - pos * (count > 0).unsqueeze(-1)
        return count, offset

    def reward(self, agent: Agent) -> Tensor:
        i = self.index[agent.name]
        if i == 0:  # once per step for every agent
            pos = self.positions()
            distance = torch.linalg.vector_norm(pos - self.goal, dim=-1)
            count, _ = self.crowd(pos)
            self._reward = self.shaping * (self.distance - distance) - self.crowd_penalty * count
            self.distance = distance
        return self._reward[:, i]

    def observation(self, agent: Agent) -> Tensor:
        i = self.index[agent.name]
        if i == 0:
            pos = self.positions()
            vel = torch.stack([a.state.vel for a in self.world.agents], dim=1)
            count, offset = self.crowd(pos)
            self._obs = torch.cat([pos, vel, pos - self.goal, count.unsqueeze(-1), offset], dim=-1)
        return self._obs[:, i]

    def done(self) -> Tensor:
        return (self.distance < self.goal_radius).all(-1)
