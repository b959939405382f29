"""What every algorithm shares: the per-step team view, the interaction interface and the
acting / learning protocol the trainer drives.

An algorithm is a learning rule (:mod:`bmf_graph.algos.q` or :mod:`bmf_graph.algos.ac`) over
an :class:`Interaction` — how an agent's critic sees the previous actions of the others:
not at all (``q``, ``ac``), as a neighbour mean (``mfq``, ``mfac``), as an attention-weighted
neighbour mean (``gat_mf``) or as intra-group mean plus inter-group attention (``bmf_q``, ``bmf_ac``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec
from bmf_graph.graph import dense_adjacency, neighbour_graph
from bmf_graph.nn import MeanField


@dataclass
class TeamView:
    """One team at one step, as tensors on the algorithm's device.

    Attributes:
        obs: ``[N, O]`` flat observations.
        pos: ``[N, 2]`` positions.
        alive: ``[N]`` bool.
        a_prev: ``[N, A]`` one-hot previous actions (zeros for dead agents and at ``t = 0``).
        prev_obs: ``[N, O]`` previous observations (the current ones at ``t = 0``).
        batch: ``[N]`` environment copy of each agent when the team's agents of
            ``num_envs`` copies are stacked (:func:`bmf_graph.training.rollout.play_episodes`);
            ``None`` for one environment. Copies never interact: no edges, groups or
            attention cross them.
        num_envs: number of stacked environment copies.
        step: the env step index ``t`` of the episode (0 at reset); BMF's grouping regroups
            on its schedule of steps.
        reward: ``[N]`` rewards of the step that led to this view (zeros at ``t = 0``).
        copy_ids: which copy of the round each stacked entry is (``num_envs`` ints);
            learners keep per-copy state (replay successor links) under these ids.
            ``None``: copies ``0 .. num_envs - 1``.
    """

    obs: Tensor
    pos: Tensor
    alive: Tensor
    a_prev: Tensor
    prev_obs: Tensor
    batch: Tensor | None = None
    num_envs: int = 1
    step: int = 0
    reward: Tensor | None = None
    copy_ids: tuple[int, ...] | None = None

    @property
    def copies(self) -> tuple[int, ...]:
        """``copy_ids``, or ``0 .. num_envs - 1`` when unset."""
        return self.copy_ids if self.copy_ids is not None else tuple(range(self.num_envs))


class Interaction(nn.Module):
    """How a critic sees the other agents' previous actions.

    ``dim`` is the size of the extra critic input. ``observe`` runs at acting time (no
    gradients) and returns the fields stored in the replay record plus ``"mean_action"``;
    ``mean_action`` recomputes the critic input from stored records at update time, with
    gradients into any learned part (attention parameters learn through the critic loss).
    A learned part registered with :meth:`add_target` has a frozen target copy, used by
    ``mean_action(rec, target=True)`` for target values and moved toward the online part by
    :meth:`soft_update` together with the critic's target network.
    """

    dim: int = 0

    @property
    def parts(self) -> tuple[int, ...]:
        """Sizes of the context's parts, in order (``algo.context_branches=split`` gives each
        its own network branch): one part of ``dim`` unless an interaction says otherwise."""
        return (self.dim,) if self.dim else ()

    agent_fields: tuple[str, ...] = ()
    """Stored fields with one row per agent that the critic input of an agent reads only at
    that agent's row (a minibatch of agent transitions keeps just that row)."""
    whole_fields: tuple[str, ...] = ()
    """Per-agent fields the critic input of one agent reads at every agent of its record
    (GAT-MF's attention over the team): a minibatch of agent transitions also carries them whole."""

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float):
        super().__init__()
        self.num_actions = spec.num_actions
        self.continuous = spec.continuous
        self.radius = radius
        self.targets: list[str] = []

    def add_target(self, name: str) -> None:
        """Keep a frozen copy ``target_{name}`` of the learned submodule ``name``."""
        setattr(self, f"target_{name}", copy.deepcopy(getattr(self, name)).requires_grad_(False))
        self.targets.append(name)

    def part(self, name: str, target: bool) -> nn.Module:
        """The submodule ``name``, or its target copy when ``target``."""
        return getattr(self, f"target_{name}" if target else name)

    def soft_update(self, tau: float) -> None:
        """``target <- tau * online + (1 - tau) * target`` for every learned part."""
        for name in self.targets:
            soft_update(getattr(self, f"target_{name}"), getattr(self, name), tau)

    def schema(self, num_agents: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {}

    def begin_episode(self) -> None:
        """Called at every episode start (BMF regroups)."""

    def graph(self, view: TeamView) -> Tensor:
        """Neighbour edges among alive agents, slot indices, ``[2, E]`` (every pair of alive
        agents of a copy at ``radius = inf``)."""
        return scope_graph(view.pos, self.radius, view.alive, view.batch)

    def neighbour_mean(self, layer: MeanField, view: TeamView, group: Tensor | None = None) -> Tensor:
        """``layer`` (:class:`MeanField` or, with ``group``, :class:`IntraGroupMeanField`) on
        the previous actions, ``[N, A]``. ``radius = inf`` is the whole team (or, with ``group``,
        the whole group) of each copy, as MFRL's and the released BMF code's mean actions:
        :func:`scope_mean`, no graph. Otherwise through the dense adjacency of the stacked copies
        when :func:`dense_adjacency` gives one (the same values, no edge list), else on the edges."""
        if math.isinf(self.radius):
            return scope_mean(view.a_prev, view.alive, view.batch, group)
        adj = dense_adjacency(view.pos, self.radius, alive=view.alive, batch=view.batch)
        if adj is None:
            return layer(view.a_prev, self.graph(view), *(() if group is None else (group,)))
        b, n = adj.shape[:2]
        blocks = (view.a_prev.view(b, n, -1), adj) + (() if group is None else (group.view(b, n),))
        return layer.dense(*blocks).view(b * n, -1)

    def action_vectors(self, action: Tensor) -> Tensor:
        """Recorded actions as the vectors mean actions average: one-hot ``[..., A]`` of
        discrete actions, continuous action vectors as they are."""
        return action if self.continuous else nn.functional.one_hot(action, self.num_actions).float()

    def observe(self, view: TeamView) -> dict[str, Tensor]:
        return {"mean_action": view.obs.new_zeros(view.obs.shape[0], 0)}

    def mean_action(self, rec: dict[str, Tensor], target: bool = False) -> Tensor:
        """``[B, N, dim]`` critic input from ``B`` stored records; ``target`` uses the target
        copies of the learned parts (for target values)."""
        return rec["obs"].new_zeros(*rec["obs"].shape[:2], 0)

    def aux_loss(self, rec: dict[str, Tensor], target: Tensor) -> tuple[Tensor, dict[str, float]] | None:
        """An auxiliary loss with its own optimizer (the BMF agent VAE); ``None`` if none."""
        return None

    def step_aux(self, loss: Tensor) -> None:
        """Apply the auxiliary loss returned by :meth:`aux_loss`."""

    def stats(self, rec: dict[str, Tensor]) -> dict[str, float]:
        """Per-step statistics for the logs (e.g. the number of non-empty groups)."""
        return {}

    def training_state(self) -> dict[str, Any]:
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        pass


def context_parts(cfg: AlgoConfig, interaction: Interaction) -> tuple[int, ...]:
    """The part sizes a network gives their own branches: the interaction's parts under
    ``algo.context_branches=split``, none (one branch) under ``shared``."""
    return interaction.parts if cfg.context_branches == "split" else ()


def scope_mean(x: Tensor, alive: Tensor, batch: Tensor | None = None, group: Tensor | None = None) -> Tensor:
    r"""The mean of ``x`` ``[N, F]`` over the other alive agents of each agent's scope, ``[N, F]``:

    .. math::
        \bar x_i = \frac{\sum_{j \in S(i), j \ne i} x_j}{|S(i)| - 1}

    with :math:`S(i)` the alive agents of ``i``'s env copy (``batch``), or of its group when
    ``group`` (ids global over the copies) is given: the neighbour mean at an infinite radius,
    computed from per-scope sums in :math:`O(N)`, never from pairs. Zeros where ``i`` has no
    other alive agent in its scope, and for dead agents."""
    if group is not None:
        scope = group
    elif batch is not None:
        scope = batch
    else:
        scope = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    live = alive.to(x.dtype).unsqueeze(-1)
    size = int(scope.max()) + 1 if scope.numel() else 0
    total = x.new_zeros(size, x.shape[-1]).index_add_(0, scope, x * live)
    count = x.new_zeros(size).index_add_(0, scope, live.squeeze(-1))
    others = (count[scope] - 1).unsqueeze(-1)
    return torch.where(others > 0, (total[scope] - x * live) / others.clamp(min=1), 0.0) * live


def scope_graph(pos: Tensor, radius: float, alive: Tensor, batch: Tensor | None = None) -> Tensor:
    """:func:`~bmf_graph.graph.neighbour_graph` of the alive agents, or at ``radius = inf`` every
    ordered pair ``j -> i``, ``i != j``, of alive agents of the same copy (GAT-MF's full attention)."""
    if not math.isinf(radius):
        return neighbour_graph(pos, radius, alive=alive, batch=batch)
    same = alive.unsqueeze(0) & alive.unsqueeze(1)
    if batch is not None:
        same &= batch.unsqueeze(0) == batch.unsqueeze(1)
    same.fill_diagonal_(False)
    target, source = same.nonzero().t()
    return torch.stack([source, target])


def piecewise_linear(progress: float, knots: Sequence[tuple[float, float]]) -> float:
    """The value at training ``progress`` of the line through ``knots`` ``[(progress, value),
    ...]`` (increasing progress), constant before the first knot and after the last: MFRL's
    ``linear_decay``, e.g. epsilon through ``(0, 1), (0.8, 0.2), (1, 0.1)``."""
    x0, y0 = knots[0]
    if progress <= x0:
        return float(y0)
    for x1, y1 in knots[1:]:
        if progress <= x1:
            return float(y1 if x1 <= x0 else y0 + (y1 - y0) * (progress - x0) / (x1 - x0))
        x0, y0 = x1, y1
    return float(y0)


def check_finite(losses: dict[str, Tensor]) -> None:
    """Raise :class:`NonFiniteLoss` naming the first loss that is NaN or infinite."""
    for name, value in losses.items():
        if not torch.isfinite(value).all():
            raise NonFiniteLoss(f"loss {name!r} is {value.item()}; stopping before the update")


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or infinite."""


class Algorithm(nn.Module):
    """The protocol the episode loop (:func:`bmf_graph.training.rollout.play_episodes`) drives, for one team.

    Per step: ``observe`` (interaction inputs) -> ``act`` -> env step started -> ``record``
    -> ``after_step`` (may update). Per episode: ``begin_episode`` ...
    ``end_episode(final_view, terminated)`` (may update). A view may stack several env
    copies (``view.copy_ids``); ``record`` and ``end_episode`` get only the copies that
    are playing, respectively that ended at this step, and the reward of each copy's
    previous step arrives with its next view (``view.reward``). ``explore`` in ``[0, 1]``
    is the training progress used by exploration schedules; ``None`` means greedy evaluation.
    """

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float, interaction: Interaction):
        super().__init__()
        self.spec, self.cfg, self.radius = spec, cfg, radius
        self.interaction = interaction

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def begin_episode(self) -> None:
        self.interaction.begin_episode()

    @torch.no_grad()
    def observe(self, view: TeamView) -> dict[str, Tensor]:
        return self.interaction.observe(view)

    def policy(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """``[N, A]`` action distribution of the acting policy (rows sum to 1); the greedy
        one-hot when ``explore`` is ``None``."""
        raise NotImplementedError

    @torch.no_grad()
    def act(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """One action per agent drawn from :meth:`policy`."""
        return sample_rows(self.policy(view, rec, explore))

    def exploration_stats(self, explore: float) -> dict[str, float]:
        """The exploration level at training progress ``explore``, for the logs (e.g.
        ``charts/epsilon``); none by default."""
        return {}

    # Learning hooks; a frozen policy (opponent, evaluation) never calls them.
    def record(self, view: TeamView, rec: dict[str, Tensor], action: Tensor, first: bool) -> None:
        """Store step ``view.step`` of the copies in ``view`` (``first``: ``t = 0``); ``view.reward``
        is the reward of each copy's previous step."""
        raise NotImplementedError

    def after_step(self, explore: float) -> dict[str, float]:
        return {}

    def end_episode(self, view: TeamView, rec: dict[str, Tensor], terminated: bool, explore: float) -> dict[str, float]:
        return {}

    def training_state(self) -> dict[str, Any]:
        """Optimizers and replay contents, for exact resume (weights are in ``state_dict``)."""
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        pass


def entropy(probs: Tensor) -> Tensor:
    """Entropy of each row of a distribution ``[..., A]`` (``0 log 0 = 0``)."""
    return -torch.special.xlogy(probs, probs).sum(-1)


def mean_entropy(probs: Tensor, alive: Tensor) -> Tensor:
    """Mean entropy of the rows of ``probs`` ``[N, A]`` of the alive agents, a 0-dim tensor (NaN
    if none is alive), computed without waiting for the device. The training loop logs it as
    ``charts/entropy``."""
    weight = alive.to(probs.dtype)
    return (entropy(probs) * weight).sum() / weight.sum()


def on_alive_rows(net: nn.Module, alive: Tensor, *inputs: Tensor | None) -> Tensor:
    """``net(*inputs)`` computed on the rows ``alive`` (``[N]`` bool) only, zeros on the others.

    Acting runs the network on every stacked slot, and on Battle about half of them are dead
    agents or copies whose episode already ended. The networks treat rows independently, so the
    alive rows are those of the full pass (bitwise on CPU: tested); the dead rows' actions are
    never stepped, learned from or averaged into a mean field (:func:`dead_rows_idle` fixes them).
    On an accelerator the full pass runs, since selecting rows waits for the device."""
    if alive.device.type != "cpu" or bool(alive.all()):
        return net(*inputs)
    rows = alive.nonzero().squeeze(1)
    out = net(*(x if x is None else x.index_select(0, rows) for x in inputs))
    return out.new_zeros(alive.shape[0], *out.shape[1:]).index_copy_(0, rows, out)


def dead_rows_idle(probs: Tensor, alive: Tensor) -> Tensor:
    """``probs`` ``[N, A]`` with the rows of dead agents set to action 0 (one-hot). Their actions
    are never stepped or learned from; a fixed one keeps them out of the random stream's reach,
    so a greedy policy records the same transitions however the copies are stacked."""
    idle = probs.new_zeros(probs.shape[-1])
    idle[0] = 1
    return torch.where(alive.unsqueeze(-1), probs, idle)


def entropy_of_logits(logits: Tensor) -> Tensor:
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- tau * source + (1 - tau) * target``."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)


def sample_rows(probs: Tensor) -> Tensor:
    r"""One draw per row of ``probs`` ``[N, A]`` by the inverse CDF: the first action whose
    cumulative probability exceeds :math:`u \sim U[0, \sum_a p_a)`. Actions of probability 0
    are never drawn. Several times faster than ``torch.multinomial`` for many short rows."""
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, dtype=cdf.dtype, device=cdf.device) * cdf[:, -1:]
    return (cdf <= u).sum(-1)


def greedy(q: Tensor) -> Tensor:
    """One-hot of a maximising action of each row of ``q`` ``[..., A]``, drawn uniformly among
    the tied maxima: a first-index argmax would turn ties (common where an observation carries
    little, as Firefighter's flags) into a fixed preference for action 0."""
    best = q == q.amax(-1, keepdim=True)
    if q.numel() == 0:
        return best.to(q.dtype)
    pick = sample_rows(best.reshape(-1, q.shape[-1]).to(q.dtype)).reshape(q.shape[:-1])
    return nn.functional.one_hot(pick, q.shape[-1]).to(q.dtype)


def epsilon_greedy(q: Tensor, epsilon: float, copy: Tensor | None = None, copies: int = 1) -> Tensor:
    r"""ε-greedy distribution over Q-values ``[N, A]``.

    Without ``copy`` every agent draws on its own: :math:`(1 - \varepsilon)\,\mathrm{onehot}(\arg\max_a Q)
    + \varepsilon / A`. With ``copy`` (``[N]``, the env copy of each agent, ``copies`` of them) one
    switch is drawn per copy, as MFRL's ``act``: with probability ε all agents of the copy act
    uniformly at random, otherwise all greedily."""
    if copy is None:
        return greedy(q) * (1.0 - epsilon) + epsilon / q.shape[-1]
    explore = (torch.rand(copies, device=q.device) < epsilon)[copy].unsqueeze(-1)
    return torch.where(explore, torch.full_like(q, 1.0 / q.shape[-1]), greedy(q))


def boltzmann(q: Tensor, temperature: float) -> Tensor:
    """Softmax policy over Q-values; the greedy one-hot when ``temperature == 0``."""
    if temperature <= 0 or math.isclose(temperature, 0.0):
        return greedy(q)
    return torch.softmax(q / temperature, dim=-1)
