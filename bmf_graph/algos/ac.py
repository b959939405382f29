r"""Actor-critic over an interaction: ``ac`` (none), ``mfac`` and ``bmf_ac``.

The actor is a softmax policy :math:`\pi_\phi(a \mid o_i)` (with ``algo.actor_context=true``,
:math:`\pi_\phi(a \mid o_i, \bar a_i)`, as the paper's released code); :math:`\bar a_i` is the
interaction's critic input (empty for ``ac``, the neighbour mean for ``mfac``, Eq. 6 for
``bmf_ac``). Two critics (``algo.critic``):

``q`` (default; Yang et al.'s MF-AC, the paper's Eq. 9) -- :class:`QActorCritic`. The critic
:math:`Q_\theta(o_i, \cdot, \bar a_i)` is the Q family's (same network, replay, soft target
network) with a target that evaluates the actor,

.. math::
    y_i = r_i + \gamma (1 - d_i) \sum_a \pi_\phi(a \mid o'_i)\, Q_{\bar\theta}(o'_i, a, \bar a'_i),

and the actor follows Eq. 9 in its all-actions form on the same replayed records,

.. math::
    \mathcal L_\pi = -\sum_b \pi_\phi(b \mid o_i)\, A(o_i, b) - c_H\, \mathcal H[\pi_\phi(\cdot \mid o_i)],
    \qquad A(o_i, b) = Q_\theta(o_i, b, \bar a_i) - \sum_c \pi_\phi(c \mid o_i) Q_\theta(o_i, c, \bar a_i)

with :math:`A` held constant, whose gradient is
:math:`\mathbb E_{a \sim \pi}[\nabla_\phi \log \pi_\phi(a \mid o_i)\, A(o_i, a)]`, the expectation
of Eq. 9 taken exactly over the actions (the baseline adds nothing to it in expectation).

``value`` -- :class:`ActorCritic`, A2C on whole-episode batches with
:math:`V_\theta(o_i, \bar a_i)` (MFRL's MFAC): GAE advantages per agent,

.. math::
    \delta_t = r_t + \gamma (1 - d_t) V(o_{t+1}, \bar a_{t+1}) - V(o_t, \bar a_t),\qquad
    \hat A_t = \sum_l (\gamma\lambda)^l \delta_{t+l},

and the loss :math:`-\log\pi(a_t|o_t)\hat A_t + c_v (V - \hat R_t)^2 - c_H\,\mathcal{H}[\pi]`.
With several env copies, each copy's steps are kept apart and the copies whose episodes end
at the same step form one batch ``[T + 1, C, N]`` (A2C over parallel environments).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from bmf_graph.algos.base import (Algorithm, Interaction, TeamView, check_finite, context_parts, dead_rows_idle, entropy_of_logits,
                                  greedy, on_alive_rows, piecewise_linear)
from bmf_graph.algos.diagnostics import HELD_RECORDS, Diagnostics
from bmf_graph.algos.networks import make_network, mlp
from bmf_graph.algos.q import QLearner
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec


class Actor(nn.Module):
    """Policy logits from the observation, and from the critic input when ``context_dim > 0``:
    the ``algo.network`` network (v2's ``network=mlp`` actor: a two-layer MLP on
    ``[o ‖ context]``)."""

    def __init__(self, spec: TeamSpec, network: str, context_dim: int, out_dim: int, hidden: int,
                 context_parts: tuple[int, ...] = ()):
        super().__init__()
        self.context_dim = context_dim
        if network == "mlp":
            self.net = mlp(spec.obs_dim + context_dim, hidden, out_dim)
        else:
            self.net = make_network(spec, network, context_dim, out_dim, hidden, context_parts)
        self.flat = network == "mlp"

    def forward(self, obs: Tensor, context: Tensor | None) -> Tensor:
        """``context`` (the critic input) is read only when the actor was built with it."""
        if self.flat:
            return self.net(torch.cat([obs, context], dim=-1) if self.context_dim else obs)
        return self.net(obs, context if self.context_dim else None)


def make_actor(spec: TeamSpec, cfg: AlgoConfig, interaction: Interaction) -> Actor:
    if not cfg.actor_context:
        return Actor(spec, cfg.network, 0, spec.num_actions, cfg.hidden)
    return Actor(spec, cfg.network, interaction.dim, spec.num_actions, cfg.hidden, context_parts(cfg, interaction))


class SoftmaxActing:
    r"""Acting of the AC family: its ``actor`` reads the observation (and the critic input) and
    explores by sampling its own policy, kept soft by the entropy weight ``c_H``, the policy's
    temperature, which it logs as ``charts/temperature``.

    With ``algo.actor_temperature`` (v3) the actor's outputs :math:`f_\phi` are advantages and the
    temperature divides them, :math:`\pi = \mathrm{softmax}(f_\phi / c_H)`: the entropy-regularised
    optimum :math:`\pi \propto \exp(A / c_H)` is then reached at :math:`f_\phi = A`, whatever
    :math:`c_H`. Without it (v2) the outputs are the logits and must shrink to :math:`A / c_H`
    (0.06 at Firefighter's start, :math:`c_H = 50`); the network gets there by silencing its
    hidden ReLUs, which stay dead once :math:`c_H` decays (docs/networks.md)."""

    actor: Actor
    cfg: AlgoConfig

    def logits(self, obs: Tensor, context: Tensor | None, explore: float | None,
               alive: Tensor | None = None) -> Tensor:
        """Policy logits ``[..., A]`` at training progress ``explore`` (the actor's outputs over
        the temperature ``c_H`` with ``actor_temperature``; ``None``: the outputs themselves, whose
        argmax is the greedy action either way); with ``alive``, only its rows are computed."""
        out = self.actor(obs, context) if alive is None else on_alive_rows(self.actor, alive, obs, context)
        if explore is None or not self.cfg.actor_temperature:
            return out
        temperature = self.entropy_weight(explore)
        return out / temperature if temperature > 0 else out

    @torch.no_grad()
    def policy(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """The softmax policy ``[N, A]``; its greedy one-hot when ``explore`` is ``None``."""
        logits = self.logits(view.obs, rec["mean_action"], explore, view.alive)
        return dead_rows_idle(greedy(logits) if explore is None else torch.softmax(logits, dim=-1), view.alive)

    def entropy_weight(self, explore: float) -> float:
        """``c_H`` at training progress ``explore``: ``entropy_coef``, or linear from
        ``entropy_coef_start`` to it over the first ``explore_fraction`` of the episodes."""
        c = self.cfg
        if c.entropy_coef_start is None:
            return c.entropy_coef
        return piecewise_linear(explore, [(0.0, c.entropy_coef_start), (c.explore_fraction, c.entropy_coef)])

    def exploration_stats(self, explore: float) -> dict[str, float]:
        return {"charts/temperature": self.entropy_weight(explore)}


class QActorCritic(SoftmaxActing, QLearner):
    """Eq. 9: the Q family's critic evaluating a softmax actor, which learns from its advantages."""

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float, interaction: Interaction):
        super().__init__(spec, cfg, radius, interaction)
        self.actor = make_actor(spec, cfg, interaction)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)

    def target_value(self, nxt: dict[str, Tensor], explore: float) -> Tensor:
        """``sum_a pi(a | o') Q_target(o', a, context')`` per agent, ``[B, N]``; the actor as it
        acts (online context), the target network with the target copies of learned parts."""
        with torch.no_grad():
            q_next = self.q_target(nxt["obs"], self.interaction.mean_action(nxt, target=True))
            context = self.interaction.mean_action(nxt) if self.actor.context_dim else None
            probs = torch.softmax(self.logits(nxt["obs"], context, explore), dim=-1)
            return (probs * q_next).sum(-1)

    def actor_loss(self, rec: dict[str, Tensor], context: Tensor, explore: float) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, policy_loss, entropy)`` of the all-actions Eq. 9 on records ``[B, N, ...]``."""
        logits = self.logits(rec["obs"], context, explore)
        probs = torch.softmax(logits, dim=-1)
        with torch.no_grad():
            q = self.q(rec["obs"], context)
            advantage = q - (probs * q).sum(-1, keepdim=True)
        mask = rec["alive"]
        policy_loss = -(probs * advantage).sum(-1)[mask].mean()
        entropy = entropy_of_logits(logits)[mask].mean()
        return policy_loss - self.entropy_weight(explore) * entropy, policy_loss, entropy

    def after_critic_update(self, rec: dict[str, Tensor], explore: float) -> dict[str, float]:
        with torch.no_grad():
            context = self.interaction.mean_action(rec)
        loss, policy_loss, entropy = self.actor_loss(rec, context, explore)
        check_finite({"actor": loss})
        self.actor_optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), self.cfg.max_grad_norm)
        self.actor_optimizer.step()
        return {"losses/policy": policy_loss.item(), "losses/entropy": entropy.item()}

    def diagnosed_networks(self) -> dict[str, tuple[nn.Module, bool]]:
        return {**super().diagnosed_networks(), "actor": (self.actor, self.actor.context_dim > 0)}

    def training_state(self) -> dict:
        return {**super().training_state(), "actor_optimizer": self.actor_optimizer.state_dict()}

    def load_training_state(self, state: dict) -> None:
        super().load_training_state(state)
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])


def gae(reward: Tensor, value: Tensor, next_value: Tensor, not_done: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates over time (dim 0): all inputs ``[T, N]``."""
    delta = reward + gamma * not_done * next_value - value
    advantage = torch.zeros_like(delta)
    running = torch.zeros_like(delta[0])
    for t in range(delta.shape[0] - 1, -1, -1):
        running = delta[t] + gamma * lam * not_done[t] * running
        advantage[t] = running
    return advantage


class ActorCritic(SoftmaxActing, Algorithm):
    """A2C on whole-episode batches with a pluggable :class:`Interaction` in the critic
    (``algo.critic=value``)."""

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float, interaction: Interaction):
        super().__init__(spec, cfg, radius, interaction)
        self.actor = make_actor(spec, cfg, interaction)
        self.critic = make_network(spec, cfg.network, interaction.dim, 1, cfg.hidden, context_parts(cfg, interaction))
        self.optimizer: torch.optim.Optimizer | None = None
        self.episodes: dict[int, list[dict[str, Tensor]]] = {}  # env copy -> its records so far
        self.updates = 0
        self.diagnostics = Diagnostics(self)

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            params = [p for name, p in self.named_parameters()
                      if p.requires_grad and not name.startswith("interaction.vae")]
            self.optimizer = torch.optim.Adam(params, lr=self.cfg.lr)
        return self.optimizer

    def _store(self, view: TeamView, rec: dict[str, Tensor], action: Tensor, alive: Tensor, first: bool) -> None:
        """Append each copy's record to its episode; the previous one gets its reward."""
        num = view.num_envs
        fields = {k: v for k, v in rec.items() if k != "mean_action"}
        # The view's observations are the env copies' buffers, rewritten by the next steps: keep a copy.
        fields.update(obs=view.obs.clone(), alive=alive, action=action, reward=torch.zeros_like(alive, dtype=torch.float32))
        split = {k: v.reshape(num, v.shape[0] // num, *v.shape[1:]) for k, v in fields.items()}
        reward = None if first else view.reward.reshape(num, -1)
        for j, copy_id in enumerate(view.copies):
            if first:
                self.episodes[copy_id] = []
            else:
                self.episodes[copy_id][-1]["reward"] = reward[j]
            self.episodes[copy_id].append({k: v[j] for k, v in split.items()})

    def record(self, view: TeamView, rec: dict[str, Tensor], action: Tensor, first: bool) -> None:
        self._store(view, rec, action, view.alive, first)

    def end_episode(self, view: TeamView, rec: dict[str, Tensor], terminated: bool, explore: float) -> dict[str, float]:
        self._store(view, rec, torch.zeros_like(view.alive, dtype=torch.long), view.alive & (not terminated), False)
        episodes = [self.episodes.pop(c) for c in view.copies]  # same length: all started at t = 0
        batch = {k: torch.stack([torch.stack([s[k] for s in steps]) for steps in zip(*episodes)])
                 for k in episodes[0][0]}
        logs: dict[str, float] = {}
        for _ in range(self.cfg.updates):
            logs = self.update(batch, explore)
        return logs

    def update(self, batch: dict[str, Tensor], explore: float) -> dict[str, float]:
        """One gradient step on the episodes of ``C`` copies, ``T + 1`` records each: ``[T + 1, C, N, ...]``."""
        flat = self.interaction.mean_action({k: v.flatten(0, 1) for k, v in batch.items()})
        context = flat.view(*batch["obs"].shape[:3], -1)
        value_all = self.critic(batch["obs"], context).squeeze(-1)
        rec = {k: v[:-1] for k, v in batch.items()}
        value, next_value = value_all[:-1], value_all[1:].detach()
        not_done = batch["alive"][1:].float()
        mask = rec["alive"]
        with torch.no_grad():
            advantage = gae(rec["reward"], value.detach(), next_value, not_done, self.cfg.gamma, self.cfg.gae_lambda)
            returns = advantage + value.detach()
        logits = self.logits(rec["obs"], context[:-1].detach(), explore)
        log_prob = torch.log_softmax(logits, -1).gather(-1, rec["action"].unsqueeze(-1)).squeeze(-1)
        policy_loss = -(log_prob * advantage)[mask].mean()
        value_loss = ((value - returns) ** 2)[mask].mean()
        entropy = entropy_of_logits(logits)[mask].mean()
        loss = policy_loss + self.cfg.value_coef * value_loss - self.entropy_weight(explore) * entropy
        losses = {"actor_critic": loss}
        target = rec["reward"] + self.cfg.gamma * not_done * next_value
        aux = self.interaction.aux_loss(rec, target)
        if aux is not None:
            losses["vae"] = aux[0]
        check_finite(losses)
        optimizer = self._optimizer()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], self.cfg.max_grad_norm)
        optimizer.step()
        if aux is not None:
            self.interaction.step_aux(aux[0])
        logs = {"losses/policy": policy_loss.item(), "losses/value": value_loss.item(), "losses/entropy": entropy.item()}
        if aux is not None:
            logs.update({f"losses/vae_{k}": v for k, v in aux[1].items()})
        self.updates += 1
        if self.diagnostics.held is None:  # the first steps of the first copy's episode
            self.diagnostics.held = {k: v[:HELD_RECORDS, 0] for k, v in batch.items()}
        logs.update(self.diagnostics.maybe_measure(self.updates))
        return logs

    def diagnosed_networks(self) -> dict[str, tuple[nn.Module, bool]]:
        return {"critic": (self.critic, True), "actor": (self.actor, self.actor.context_dim > 0)}

    def context_chooser(self) -> nn.Module | None:
        """The actor, when it reads the context (the value critic chooses no action)."""
        return self.actor if self.actor.context_dim else None

    def training_state(self) -> dict:
        state = {} if self.optimizer is None else {"optimizer": self.optimizer.state_dict()}
        return {**state, **self.interaction.training_state()}

    def load_training_state(self, state: dict) -> None:
        if "optimizer" in state:
            self._optimizer().load_state_dict(state["optimizer"])
        self.interaction.load_training_state(state)
