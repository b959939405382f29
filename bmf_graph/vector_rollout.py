"""Playing one episode in each of several copies of an environment at once, for acting only.

Per step, each team's agents of all ``E`` copies are stacked into one :class:`TeamView` of
``E * N`` rows with ``batch`` = copy index, so every policy runs one forward pass per team and
step instead of ``E``: the per-call overhead of small networks is shared by ``E`` copies. The
copies never interact: neighbour graphs, BMF groups and inter-group attention stay within a
copy (the layers' ``batch`` vectors). A copy whose episode ended stops stepping; its agents stay
stacked as dead slots until every copy has ended.

With deterministic policies (``explore=None`` for Q, MF and GAT-MF methods), copy ``e`` plays
exactly the episode :func:`bmf_graph.rollout.play_episode` plays with seed ``seeds[e]``; with
sampled actions or k-means draws, the random streams differ from single-copy play.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from bmf_graph.algos.base import TeamView
from bmf_graph.envs.base import BatchedEnv, TeamStep
from bmf_graph.rollout import EpisodeResult, previous_actions


def stacked_view(steps: Sequence[TeamStep], ended: np.ndarray, a_prev: torch.Tensor,
                 prev_obs: torch.Tensor | None, batch: torch.Tensor, device: torch.device) -> TeamView:
    """One team of every copy as a single view; the agents of ended copies are dead."""
    rows = np.cumsum([0] + [len(s.alive) for s in steps])
    width = int(np.prod(steps[0].view.shape[1:])) + steps[0].feature.shape[1]  # obs_dim
    flat = np.empty((rows[-1], width), dtype=np.float32)
    for s, start, stop in zip(steps, rows[:-1], rows[1:]):
        s.obs(out=flat[start:stop])
    obs = torch.from_numpy(flat).to(device)
    alive = np.concatenate([s.alive & ~done for s, done in zip(steps, ended)])
    return TeamView(obs=obs, pos=torch.from_numpy(np.concatenate([s.pos for s in steps])).to(device, torch.float32),
                    alive=torch.from_numpy(alive).to(device), a_prev=a_prev,
                    prev_obs=obs if prev_obs is None else prev_obs, batch=batch, num_envs=len(steps))


@torch.no_grad()
def play_episodes(envs: Sequence[BatchedEnv], policies: Sequence[Any], device: torch.device | str,
                  seeds: Sequence[int | None], max_steps: int | None = None,
                  explore: float | None = None) -> list[EpisodeResult]:
    """Play one episode in each of ``envs`` (copies of one task), acting only.

    Args:
        envs: ``E`` environments with the same teams.
        policies: one per team, shared by all copies (no learning).
        seeds: one reset seed per copy.
        explore: as in :func:`~bmf_graph.rollout.play_episode` for every team (``1.0``: the
            end of the exploration schedules, ``None``: greedy).

    Returns:
        One :class:`~bmf_graph.rollout.EpisodeResult` per copy (no logs).
    """
    if len(envs) < 1 or len(seeds) != len(envs):
        raise ValueError(f"play_episodes: got {len(envs)} envs and {len(seeds)} seeds; expected at least one "
                         f"env and one seed per env")
    teams = envs[0].teams
    if any(env.teams != teams for env in envs):
        raise ValueError("play_episodes: every env must have the same teams (copies of one task)")
    device, num_envs = torch.device(device), len(envs)
    steps = [env.reset(seed=seed) for env, seed in zip(envs, seeds)]      # [copy][team]
    batches = [torch.arange(num_envs, device=device).repeat_interleave(t.num_agents) for t in teams]
    a_prev = [torch.zeros(num_envs * t.num_agents, t.num_actions, device=device) for t in teams]
    prev_obs: list[torch.Tensor | None] = [None] * len(teams)
    returns, kills = np.zeros((num_envs, len(teams))), np.zeros((num_envs, len(teams)))
    ended, terminated = np.zeros(num_envs, dtype=bool), np.zeros(num_envs, dtype=bool)
    length = np.zeros(num_envs, dtype=int)
    for policy in policies:
        policy.begin_episode()
    for t in range(max_steps or envs[0].max_steps):
        views = [stacked_view([s[i] for s in steps], ended, a_prev[i], prev_obs[i], batches[i], device)
                 for i in range(len(teams))]
        actions = [policy.act(view, policy.observe(view), explore) for policy, view in zip(policies, views)]
        per_copy = [a.view(num_envs, -1).cpu().numpy() for a in actions]
        for e in np.flatnonzero(~ended):
            steps[e], term, trunc, info = envs[e].step([a[e] for a in per_copy])
            returns[e] += [float(s.reward.sum()) for s in steps[e]]
            kills[e] += np.asarray(info.get("kills", np.zeros(len(teams))), dtype=float)
            length[e], terminated[e], ended[e] = t + 1, term, term or trunc
        if ended.all():
            break
        for i, (view, action) in enumerate(zip(views, actions)):
            a_prev[i] = previous_actions(action, teams[i].num_actions, view)
            prev_obs[i] = view.obs
    return [EpisodeResult(returns[e], kills[e], np.array([int(s.alive.sum()) for s in steps[e]]), int(length[e]),
                          bool(terminated[e])) for e in range(num_envs)]
