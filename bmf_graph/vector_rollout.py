"""Playing one episode in each of several copies of an environment at once, for acting only.

Per step, each team's agents of the ``E`` copies are stacked into one :class:`TeamView` of
``E * N`` rows with ``batch`` = copy index, so every policy runs one forward pass per team and
step instead of ``E``: the per-call overhead of small networks is shared by ``E`` copies. The
copies never interact: neighbour graphs, BMF groups and inter-group attention stay within a
copy (the layers' ``batch`` vectors). A copy whose episode ended stops stepping; its agents stay
stacked as dead slots until every copy has ended.

With ``parts=2`` the copies play in two halves, each with its own copy of the policies
(:func:`acting_copy`): while the policies of one half run, the copies of the other are being
stepped — in parallel when the copies live in a worker process
(:class:`~bmf_graph.envs.copies.WorkerCopies`).

With deterministic policies (``explore=None`` for Q, MF and GAT-MF methods), copy ``e`` plays
exactly the episode :func:`bmf_graph.rollout.play_episode` plays with seed ``seeds[e]``; with
sampled actions or k-means draws, the random streams differ from single-copy play.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import torch

from bmf_graph.algos.base import TeamView
from bmf_graph.buffer import StepBuffer
from bmf_graph.envs.base import BatchedEnv
from bmf_graph.envs.copies import EnvCopies, LocalCopies, Part, PartStep
from bmf_graph.rollout import EpisodeResult, arrays_view, previous_actions


def acting_copy(policy: Any) -> Any:
    """A copy of ``policy`` that acts on its own: modules, weights and tensors (the episode
    state, e.g. BMF's groups) are copied; replay buffers and optimizers, which acting never
    touches, are shared with ``policy`` instead of copied."""
    shared = {id(value): value for module in (policy.modules() if isinstance(policy, torch.nn.Module) else ())
              for value in vars(module).values() if isinstance(value, (torch.optim.Optimizer, StepBuffer))}
    return copy.deepcopy(policy, memo=shared)


class PartPlayer:
    """The policies and per-step state of the copies ``part`` of :class:`EnvCopies`."""

    def __init__(self, copies: EnvCopies, part: Part, policies: Sequence[Any], device: torch.device):
        self.copies, self.part, self.policies, self.device = copies, part, policies, device
        num, teams = part[1] - part[0], copies.teams
        self.batches = [torch.arange(num, device=device).repeat_interleave(t.num_agents) for t in teams]
        self.a_prev = [torch.zeros(num * t.num_agents, t.num_actions, device=device) for t in teams]
        self.prev_obs: list[torch.Tensor | None] = [None] * len(teams)
        self.returns, self.kills = np.zeros((num, len(teams))), np.zeros((num, len(teams)))
        self.length = np.zeros(num, dtype=int)
        self.last: PartStep | None = None
        self.t = 0
        for policy in policies:
            policy.begin_episode()

    @property
    def done(self) -> bool:
        return self.last is not None and bool(self.last.ended.all())

    def receive(self, arrays: PartStep, t: int) -> None:
        """Account the step that led to ``arrays`` (the ``t``-th of the episode)."""
        playing = ~self.last.ended if self.last is not None else np.ones(len(arrays.ended), bool)
        self.returns += arrays.reward
        self.kills += arrays.kills
        self.length[playing] = t
        self.last, self.t = arrays, t

    def views(self, arrays: PartStep) -> list[TeamView]:
        """One :class:`TeamView` per team over this part's copies (``batch`` = copy in the part),
        at the env step of the last :meth:`receive`."""
        return [arrays_view(self.copies.obs(i, self.part, arrays.parity), arrays.pos[i], arrays.alive[i],
                            self.a_prev[i], self.prev_obs[i], self.device, self.batches[i],
                            self.part[1] - self.part[0], self.t)
                for i in range(len(self.copies.teams))]

    def act(self, explore: float | None) -> list[np.ndarray]:
        """Actions of every team for the copies' current step (flat ``[P * N]`` each)."""
        views = self.views(self.last)
        actions = [policy.act(view, policy.observe(view), explore) for policy, view in zip(self.policies, views)]
        for i, (view, action) in enumerate(zip(views, actions)):
            self.a_prev[i] = previous_actions(action, self.copies.teams[i].num_actions, view)
            self.prev_obs[i] = view.obs
        return [a.cpu().numpy() for a in actions]

    def results(self) -> list[EpisodeResult]:
        last = self.last
        return [EpisodeResult(self.returns[e], self.kills[e], last.survivors[e], int(self.length[e]),
                              bool(last.terminated[e])) for e in range(len(self.length))]


@torch.no_grad()
def play_episodes(envs: Sequence[BatchedEnv] | EnvCopies, policies: Sequence[Any], device: torch.device | str,
                  seeds: Sequence[int | None], max_steps: int | None = None,
                  explore: float | None = None, parts: int = 1) -> list[EpisodeResult]:
    """Play one episode in each of ``envs`` (copies of one task), acting only.

    Args:
        envs: ``E`` environments with the same teams, or an :class:`EnvCopies` of ``E``.
        policies: one per team, shared by all copies (no learning); parts after the first
            play :func:`acting_copy` copies.
        seeds: one reset seed per copy.
        explore: as in :func:`~bmf_graph.rollout.play_episode` for every team (``1.0``: the
            end of the exploration schedules, ``None``: greedy).
        parts: number of contiguous groups of copies played in turn (``1 .. E``).

    Returns:
        One :class:`~bmf_graph.rollout.EpisodeResult` per copy (no logs).
    """
    copies = envs if isinstance(envs, EnvCopies) else LocalCopies(envs)
    num_envs = copies.num_envs
    if len(seeds) != num_envs:
        raise ValueError(f"play_episodes: got {num_envs} envs and {len(seeds)} seeds; expected one seed per env")
    if not 1 <= parts <= num_envs:
        raise ValueError(f"play_episodes: parts={parts!r}; expected an integer in 1..{num_envs} (the number of envs)")
    bounds = [(num_envs * k // parts, num_envs * (k + 1) // parts) for k in range(parts)]
    device = torch.device(device)
    players = [PartPlayer(copies, part, policies if k == 0 else [acting_copy(p) for p in policies], device)
               for k, part in enumerate(bounds)]
    copies.reset(seeds, bounds)
    limit = max_steps or copies.max_steps
    for t in range(limit + 1):
        for player in players:
            if player.done:
                continue
            player.receive(copies.result(player.part), t)
            if t < limit and not player.done:
                copies.step(player.part, player.act(explore), t)
        if all(p.done for p in players):
            break
    return [result for player in players for result in player.results()]
