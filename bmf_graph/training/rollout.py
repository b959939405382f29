"""The one episode loop: env arrays -> team views -> policies -> env actions, in ``E`` env copies.

:func:`play_episodes` plays one episode in each of ``E`` copies of a task at once; training
runs it with learners (which record and update), evaluation and plotting without, and
:func:`play_episode` is the same loop over one copy. A *policy* is anything with
``begin_episode()``, ``observe(view)``, ``policy(view, rec, explore)`` (the ``[N, A]`` action
distribution) and ``act(view, rec, explore)`` (a draw from it): an
:class:`~bmf_graph.algos.Algorithm` or a :class:`~bmf_graph.algos.random_policy.RandomPolicy`.

Per step, each team's agents of the copies are stacked into one :class:`TeamView` of
``E * N`` rows with ``batch`` = copy index and ``step`` = ``t``, so every policy runs one
forward pass per team and step for all copies. Copies never interact: neighbour graphs, BMF
groups and inter-group attention stay within a copy. A copy whose episode ended stops: its
agents stay stacked as dead slots, and learners stop recording it.

With ``parts=2`` the copies play in two halves, the second through :func:`acting_copy` copies
of the policies (same weights, own episode state): while the policies run on one half, the
other is being stepped — in parallel when the copies live in a worker process
(:class:`~bmf_graph.envs.copies.WorkerCopies`).

Learners record each copy as its own stream of records (:class:`~bmf_graph.algos.replay.StepBuffer`):
``record`` gets the copies still playing, ``end_episode`` the copies that ended at this step
(split by ``terminated``). With deterministic policies (greedy Q, MF and GAT-MF methods),
copy ``e`` plays exactly the episode :func:`play_episode` plays with seed ``seeds[e]`` and
records the same transitions; sampled actions and k-means draws use one random stream for all
copies, so they differ from single-copy play.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from bmf_graph.algos.base import NonFiniteLoss, TeamView, mean_entropy, sample_rows
from bmf_graph.algos.replay import StepBuffer
from bmf_graph.envs.base import BatchedEnv, TeamStep
from bmf_graph.envs.copies import EnvCopies, LocalCopies, Part, PartStep

StepHook = Callable[[int, list[TeamView], list[dict], list[Tensor]], None]


@dataclass
class EpisodeResult:
    """What one copy's episode produced, per team in ``env.teams`` order."""

    returns: np.ndarray
    """Sum over steps of each team's reward (:meth:`~bmf_graph.envs.base.TeamStep.team_reward`)."""
    kills: np.ndarray
    """Opponents killed (zeros where the task has no kills)."""
    alive: np.ndarray
    """Agents alive at the end."""
    steps: int
    terminated: bool
    logs: dict[str, list[float]] = field(default_factory=dict)
    """Learner losses and statistics of the whole call, one value per update or step (the same
    dict for every copy of one :func:`play_episodes` call)."""


def arrays_view(obs: np.ndarray, pos: np.ndarray, alive: np.ndarray, a_prev: Tensor, prev_obs: Tensor | None,
                device: torch.device, batch: Tensor | None = None, num_envs: int = 1, step: int = 0,
                reward: np.ndarray | None = None, copy_ids: tuple[int, ...] | None = None) -> TeamView:
    """A :class:`TeamView` of a team's arrays; ``prev_obs=None`` at the first step: the current
    observations. On the CPU ``obs`` is used in place; on a GPU every array goes to the device
    without waiting for it (``obs`` from page-locked memory when the copies pinned it)."""
    def move(array: np.ndarray, dtype: torch.dtype | None = None) -> Tensor:
        return torch.as_tensor(array).to(device, dtype, non_blocking=True)

    obs_t = move(obs, torch.float32)
    return TeamView(obs=obs_t, pos=move(np.array(pos, np.float32)), alive=move(np.array(alive, bool)),
                    a_prev=a_prev, prev_obs=obs_t if prev_obs is None else prev_obs, batch=batch,
                    num_envs=num_envs, step=step, reward=None if reward is None else move(reward, torch.float32),
                    copy_ids=copy_ids)


def team_view(step: TeamStep, a_prev: Tensor, prev_obs: Tensor | None, device: torch.device, t: int = 0) -> TeamView:
    """One team's :class:`TeamView` of one env's arrays at step ``t``."""
    return arrays_view(step.obs(), step.pos, step.alive, a_prev, prev_obs, device, step=t, reward=step.reward)


def previous_actions(action: Tensor, num_actions: int, view: TeamView) -> Tensor:
    """The next step's ``a_prev``: one-hot ``action`` (or, for a continuous team, the action
    vectors ``[N, A]`` themselves) of the agents alive in ``view``, zeros for the dead."""
    if action.is_floating_point():
        return action * view.alive[:, None]
    return torch.nn.functional.one_hot(action, num_actions).float() * view.alive[:, None]


def acting_copy(policy: Any) -> Any:
    """A copy of ``policy`` that acts on its own copies: it shares the parameters (so it acts
    with the current weights while learning goes on), the optimizers and replay buffers, and
    copies everything else (the episode state, e.g. BMF's groups)."""
    shared: dict[int, Any] = {}
    if isinstance(policy, torch.nn.Module):
        shared = {id(p): p for p in policy.parameters()}
        shared.update({id(value): value for module in policy.modules() for value in vars(module).values()
                       if isinstance(value, (torch.optim.Optimizer, StepBuffer))})
    return copy.deepcopy(policy, memo=shared)


def select_copies(view: TeamView, rec: dict[str, Tensor], action: Tensor | None,
                  keep: np.ndarray) -> tuple[TeamView, dict[str, Tensor], Tensor | None]:
    """The copies where ``keep`` (``[num_envs]`` bool) of a stacked view, of its observation
    record (every field stacks the copies along dim 0) and of its actions; the same objects when
    ``keep`` is all true."""
    if keep.all():
        return view, rec, action
    num, copies = view.num_envs, np.flatnonzero(keep)
    n = view.obs.shape[0] // num
    device = view.obs.device
    rows = torch.from_numpy((copies[:, None] * n + np.arange(n)).ravel()).to(device, non_blocking=True)
    which = torch.from_numpy(copies).to(device, non_blocking=True)
    pick = lambda t: t.index_select(0, rows)  # noqa: E731
    sub = TeamView(obs=pick(view.obs), pos=pick(view.pos), alive=pick(view.alive), a_prev=pick(view.a_prev),
                   prev_obs=pick(view.prev_obs), num_envs=len(copies), step=view.step,
                   batch=None if len(copies) == 1 else torch.arange(len(copies), device=device).repeat_interleave(n),
                   reward=None if view.reward is None else pick(view.reward),
                   copy_ids=tuple(view.copies[c] for c in copies))
    rec = {k: v.reshape(num, v.shape[0] // num, *v.shape[1:]).index_select(0, which).flatten(0, 1) for k, v in rec.items()}
    return sub, rec, None if action is None else pick(action)


class Logs(dict):
    """``name -> values`` of the learners' logs; values may be 0-dim tensors, read only at the end."""

    def add(self, values: Mapping[str, float | Tensor], suffix: str = "") -> None:
        """Append each value under its name, with ``suffix`` appended to the name."""
        for k, v in values.items():
            self.setdefault(k + suffix, []).append(v)

    def floats(self) -> dict[str, list[float]]:
        """Each name's values as floats, without NaN (e.g. an entropy when no agent was alive)."""
        out = {k: [x for x in map(float, values) if not math.isnan(x)] for k, values in self.items()}
        return {k: values for k, values in out.items() if values}


class PartPlayer:
    """The policies and per-step state of the copies ``part`` of an :class:`EnvCopies`."""

    def __init__(self, copies: EnvCopies, part: Part, policies: Sequence[Any], device: torch.device,
                 learners: Mapping[int, Any], logs: Logs):
        self.copies, self.part, self.policies, self.device = copies, part, policies, device
        self.learners, self.logs = learners, logs
        num, teams = part[1] - part[0], copies.teams
        # The first learner's logs keep their names; a further learner's get "_{team name}".
        self.log_suffix = {t: "" if k == 0 else f"_{teams[t].name}" for k, t in enumerate(learners)}
        self.copy_ids = tuple(range(*part))
        self.batches = [None if num == 1 else torch.arange(num, device=device).repeat_interleave(t.num_agents)
                        for t in teams]
        self.a_prev = [torch.zeros(num * t.num_agents, t.num_actions, device=device) for t in teams]
        self.prev_obs: list[Tensor | None] = [None] * len(teams)
        self.returns, self.kills = np.zeros((num, len(teams))), np.zeros((num, len(teams)))
        self.length = np.zeros(num, dtype=int)
        self.ended = np.zeros(num, dtype=bool)
        self.terminated = np.zeros(num, dtype=bool)
        self.survivors = np.zeros((num, len(teams)), dtype=int)
        for policy in policies:
            policy.begin_episode()

    @property
    def done(self) -> bool:
        return bool(self.ended.all())

    def views(self, arrays: PartStep, t: int, showing: np.ndarray) -> list[TeamView]:
        """One :class:`TeamView` per team over this part's copies; agents of copies not
        ``showing`` read as dead."""
        views = []
        for i, team in enumerate(self.copies.teams):
            alive = arrays.alive[i] & np.repeat(showing, team.num_agents)
            views.append(arrays_view(self.copies.obs(i, self.part, arrays.parity), arrays.pos[i], alive,
                                     self.a_prev[i], self.prev_obs[i], self.device, self.batches[i],
                                     len(self.copy_ids), t, arrays.rewards[i], self.copy_ids))
        return views

    def play_step(self, t: int, limit: int, explore: float | None, on_step: StepHook | None) -> None:
        """Take in the arrays after step ``t - 1`` (or the reset), let the learners record them
        and start step ``t`` of the copies still playing."""
        arrays = self.copies.result(self.part)
        before = ~self.ended
        if not np.isfinite(arrays.reward[before]).all():  # e.g. env.kwargs.step_reward=nan
            team = self.copies.teams[int(np.argwhere(~np.isfinite(arrays.reward[before]))[0, 1])].name
            raise NonFiniteLoss(f"the reward of team {team!r} is not finite at step {t}; stopping before it is "
                                f"learned from (check env.kwargs)")
        self.returns += arrays.reward
        self.kills += arrays.kills
        self.length[before] = t
        self.survivors[before] = arrays.survivors[before]
        self.ended = arrays.ended | (t >= limit)
        self.terminated = arrays.terminated
        playing, ending = ~self.ended, self.ended & before
        views = self.views(arrays, t, before)
        with torch.no_grad():  # once every copy ended, only the learners look (at their final views)
            recs = [policy.observe(view) if playing.any() or i in self.learners else {}
                    for i, (policy, view) in enumerate(zip(self.policies, views))]
            actions = [self.act(i, view, rec, explore) for i, (view, rec) in enumerate(zip(views, recs))] \
                if playing.any() else []
        # The one wait for the device per step: the env needs the actions. Learning goes after
        # it, so that the device updates while this process steps the envs.
        env_actions = [a.cpu().numpy() for a in actions]
        for i in self.learners:
            self.learn(i, views[i], recs[i], actions[i] if actions else None, playing, ending, explore)
        if not actions:
            return
        if on_step is not None:
            on_step(t, views, recs, actions)
        for i, (view, action) in enumerate(zip(views, actions)):
            self.a_prev[i] = previous_actions(action, self.copies.teams[i].num_actions, view)
            self.prev_obs[i] = view.obs
        self.copies.step(self.part, env_actions, t)

    def act(self, team: int, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """Team ``team``'s actions; a learner's acting distribution's mean entropy over its alive
        agents goes to the logs as ``charts/entropy_{team name}`` (not for continuous actions,
        whose deterministic policy explores by added noise)."""
        policy = self.policies[team]
        if team not in self.learners or self.copies.teams[team].continuous:
            return policy.act(view, rec, explore)
        probs = policy.policy(view, rec, explore)
        self.logs.add({f"charts/entropy_{self.copies.teams[team].name}": mean_entropy(probs, view.alive)})
        return sample_rows(probs)

    def learn(self, team: int, view: TeamView, rec: dict[str, Tensor], action: Tensor | None,
              playing: np.ndarray, ending: np.ndarray, explore: float | None) -> None:
        """Close the episodes of the copies ``ending``, record the ``playing`` ones, let team
        ``team``'s learner update. The first learner's logs keep their names; a further
        learner's get ``_{team name}`` appended (two learning teams are never averaged)."""
        learner, suffix = self.learners[team], self.log_suffix[team]
        for terminated in (True, False):
            closing = ending & (self.terminated == terminated)
            if closing.any():
                final, final_rec, _ = select_copies(view, rec, None, closing)
                self.logs.add(learner.end_episode(final, final_rec, terminated, explore), suffix)
        if playing.any():
            view, rec, action = select_copies(view, rec, action, playing)
            learner.record(view, rec, action, first=view.step == 0)
            self.logs.add(learner.interaction.stats(rec), suffix)
            self.logs.add(learner.after_step(explore), suffix)

    def results(self, logs: dict[str, list[float]]) -> list[EpisodeResult]:
        return [EpisodeResult(self.returns[e], self.kills[e], self.survivors[e], int(self.length[e]),
                              bool(self.terminated[e]), logs) for e in range(len(self.copy_ids))]


def play_episodes(envs: Sequence[BatchedEnv] | EnvCopies, policies: Sequence[Any], device: torch.device | str,
                  seeds: Sequence[int | None], max_steps: int | None = None, explore: float | None = None,
                  learners: Mapping[int, Any] | None = None, parts: int = 1,
                  on_step: StepHook | None = None) -> list[EpisodeResult]:
    """Play one episode in each of the first ``len(seeds)`` copies of ``envs``.

    Args:
        envs: environments with the same teams, or an :class:`EnvCopies` holding at least
            ``len(seeds)`` copies.
        policies: one per team, shared by all copies.
        seeds: one reset seed per copy played.
        max_steps: episode length limit (default: the task's).
        explore: training progress in ``[0, 1]`` for every policy's exploration schedule (as
            the learners'); ``None`` plays greedily.
        learners: ``{team: algorithm}`` (among ``policies``) that record and update; the
            first one's logs keep their names, the others' are suffixed ``_{team name}``.
        parts: number of contiguous groups of copies played in turn (``1 .. len(seeds)``).
        on_step: called as ``on_step(t, views, recs, actions)`` before each step of each part.

    Returns:
        One :class:`EpisodeResult` per copy, in copy order.
    """
    copies = envs if isinstance(envs, EnvCopies) else LocalCopies(envs)
    count = len(seeds)
    if not 1 <= count <= copies.num_envs:
        raise ValueError(f"play_episodes: got {copies.num_envs} envs and {count} seeds; expected one seed per env "
                         f"(at most {copies.num_envs})")
    if not 1 <= parts <= count:
        raise ValueError(f"play_episodes: parts={parts!r}; expected an integer in 1..{count} (the number of envs)")
    device, learners, logs = torch.device(device), dict(learners or {}), Logs()
    bounds = [(count * k // parts, count * (k + 1) // parts) for k in range(parts)]
    players = [PartPlayer(copies, part, policies if k == 0 else [acting_copy(p) for p in policies], device,
                          learners, logs) for k, part in enumerate(bounds)]
    copies.reset(list(seeds), bounds)
    limit = max_steps or copies.max_steps
    for t in range(limit + 1):
        for player in players:
            if not player.done:
                player.play_step(t, limit, explore, on_step)
        if all(p.done for p in players):
            break
    floats = logs.floats()
    return [result for player in players for result in player.results(floats)]


def play_episode(env: BatchedEnv, policies: Sequence[Any], device: torch.device | str, seed: int | None,
                 max_steps: int | None = None, explore: float | None = None,
                 learners: Mapping[int, Any] | None = None, on_step: StepHook | None = None) -> EpisodeResult:
    """:func:`play_episodes` over the one copy ``env``."""
    return play_episodes([env], policies, device, [seed], max_steps, explore, learners, on_step=on_step)[0]
