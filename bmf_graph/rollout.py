"""Playing episodes: env arrays -> team views -> policies -> env actions.

:func:`play_episode` is the one episode loop; the trainer runs it with learners (which
record and update), evaluation and plotting without. A *policy* is anything with
``begin_episode()``, ``observe(view)``, ``policy(view, rec, explore)`` (the ``[N, A]`` action
distribution) and ``act(view, rec, explore)`` (a draw from it): an
:class:`~bmf_graph.algos.Algorithm` or a :class:`~bmf_graph.algos.random_policy.RandomPolicy`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from bmf_graph.algos.base import TeamView, mean_entropy, sample_rows
from bmf_graph.envs.base import BatchedEnv, TeamStep

StepHook = Callable[[int, list[TeamView], list[dict], list[torch.Tensor]], None]


@dataclass
class EpisodeResult:
    """What one episode produced, per team in ``env.teams`` order."""

    returns: np.ndarray
    """Sum over steps and agents of the rewards."""
    kills: np.ndarray
    """Opponents killed (zeros where the task has no kills)."""
    alive: np.ndarray
    """Agents alive at the end."""
    steps: int
    terminated: bool
    logs: dict[str, list[float]] = field(default_factory=dict)
    """Learner losses and statistics, one value per update or step."""


def team_view(step: TeamStep, a_prev: torch.Tensor, prev_obs: torch.Tensor | None,
              device: torch.device, t: int = 0) -> TeamView:
    """Tensors of one team's arrays at env step ``t``; ``prev_obs=None`` at the first step."""
    return arrays_view(step.obs(), step.pos, step.alive, a_prev, prev_obs, device, t=t)


def arrays_view(obs: np.ndarray, pos: np.ndarray, alive: np.ndarray, a_prev: torch.Tensor,
                prev_obs: torch.Tensor | None, device: torch.device, batch: torch.Tensor | None = None,
                num_envs: int = 1, t: int = 0) -> TeamView:
    """A :class:`TeamView` of a team's arrays at env step ``t`` (``obs`` is used in place, ``pos``
    and ``alive`` are copied); ``prev_obs=None`` at the first step: the current observations."""
    obs = torch.from_numpy(obs).to(device, torch.float32)
    return TeamView(obs=obs, pos=torch.tensor(pos, dtype=torch.float32, device=device),
                    alive=torch.tensor(alive, device=device), a_prev=a_prev,
                    prev_obs=obs if prev_obs is None else prev_obs, batch=batch, num_envs=num_envs, step=t)


def previous_actions(action: torch.Tensor, num_actions: int, view: TeamView) -> torch.Tensor:
    """The next step's ``a_prev``: one-hot ``action`` of the agents alive in ``view``, zeros for
    the dead."""
    return torch.nn.functional.one_hot(action, num_actions).float() * view.alive[:, None]


def play_episode(env: BatchedEnv, policies: Sequence[Any], device: torch.device | str, seed: int | None,
                 max_steps: int | None = None, explore: float | None = None,
                 learners: Mapping[int, Any] | None = None, on_step: StepHook | None = None) -> EpisodeResult:
    """Play one episode.

    Args:
        policies: one per team.
        explore: training progress in ``[0, 1]`` for the exploration schedules of every team
            (self-play opponents explore as the learner, MFRL); ``None`` plays greedily.
        learners: ``{team: algorithm}`` that record, receive rewards and update; their acting
            distribution's mean entropy over alive agents is logged as ``charts/entropy_{team}``.
        on_step: called as ``on_step(t, views, recs, actions)`` before each env step.
    """
    device, learners = torch.device(device), learners or {}
    teams = env.teams
    steps = env.reset(seed=seed)
    a_prev = [torch.zeros(t.num_agents, t.num_actions, device=device) for t in teams]
    prev_obs: list[torch.Tensor | None] = [None] * len(teams)
    returns, kills = np.zeros(len(teams)), np.zeros(len(teams))
    logs: dict[str, list[float]] = {}
    for policy in policies:
        policy.begin_episode()
    terminated, t = False, 0
    for t in range(max_steps or env.max_steps):
        views = [team_view(s, a_prev[i], prev_obs[i], device, t) for i, s in enumerate(steps)]
        recs, actions = [], []
        for i, (policy, view) in enumerate(zip(policies, views)):
            rec = policy.observe(view)
            if i in learners:
                probs = policy.policy(view, rec, explore)
                action = sample_rows(probs)
                entropy = mean_entropy(probs, view.alive)
                if entropy is not None:
                    logs.setdefault(f"charts/entropy_{teams[i].name}", []).append(entropy)
                policy.record(view, rec, action, first=t == 0)
                for k, v in policy.interaction.stats(rec).items():
                    logs.setdefault(k, []).append(v)
            else:
                action = policy.act(view, rec, explore)
            recs.append(rec)
            actions.append(action)
        if on_step is not None:
            on_step(t, views, recs, actions)
        steps, terminated, truncated, info = env.step([a.cpu().numpy() for a in actions])
        for i, (s, view, action) in enumerate(zip(steps, views, actions)):
            returns[i] += float(s.reward.sum())
            a_prev[i] = previous_actions(action, teams[i].num_actions, view)
            prev_obs[i] = view.obs
            if i in learners:
                learners[i].reward(torch.tensor(s.reward, dtype=torch.float32, device=device))
                for k, v in learners[i].after_step(explore).items():
                    logs.setdefault(k, []).append(v)
        kills += np.asarray(info.get("kills", np.zeros(len(teams))), dtype=float)
        if terminated or truncated:
            break
    for i, policy in learners.items():
        view = team_view(steps[i], a_prev[i], prev_obs[i], device, t + 1)
        for k, v in policy.end_episode(view, policy.observe(view), terminated, explore).items():
            logs.setdefault(k, []).append(v)
    alive = np.array([int(s.alive.sum()) for s in steps])
    return EpisodeResult(returns, kills, alive, t + 1, terminated, logs)
