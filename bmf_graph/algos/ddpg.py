r"""The deterministic-actor (DDPG) form of ``ac``, ``mfac`` and ``bmf_ac`` (and ``gat_mf``) for
continuous actions (docs/continuous.md): the paper's BMF-AC (Sec. 4.3).

A task whose team acts in ``Box(low, high, (A,))`` (:attr:`TeamSpec.action_range`) runs this
rule under the same algorithm names; the interaction is the same as for discrete actions, over
action *vectors*: :math:`\bar a_i` is the mean of the neighbours' previous action vectors
(``mfac``), the intra-group mean and inter-group attention over group means of action vectors
(``bmf_ac``), the attention-weighted neighbour mean (``gat_mf``) or nothing (``ac``).

.. math::
    \mu_\phi(o) = m + h \tanh f_\phi(o),\qquad m = \tfrac{low + high}{2},\ h = \tfrac{high - low}{2}

    \mathcal L_Q = \big(Q_\theta(o_i, a_i, \bar a_i) - y_i\big)^2,\qquad
    y_i = r_i + \gamma (1 - d_i)\, Q_{\bar\theta}\big(o'_i, \mu_{\bar\phi}(o'_i), \bar a'_i\big)

    \mathcal L_\mu = -Q_\theta\big(o_i, \mu_\phi(o_i), \bar a_i\big)

averaged over the agents alive in the sampled records; :math:`\bar a'_i` is the context of the
next record (the mean of the actions taken at this step: the one-step delay of all our mean
fields), from the interaction's target copies. Targets :math:`\bar\theta, \bar\phi` follow
:math:`\tau`. Acting adds Gaussian noise, :math:`a = \mathrm{clip}(\mu(o) + h\,\sigma\,\epsilon)`,
:math:`\sigma` linear from ``algo.noise_start`` to ``algo.noise_end`` over ``algo.explore_fraction``
of training (logged as ``charts/noise``); evaluation acts with :math:`\mu(o)`.

Replay, the replay ratio, the update schedule, the soft target network of the critic and of
the interaction's learned parts and the BMF agent VAE are the Q family's
(:class:`~bmf_graph.algos.q.QLearner`); the critic is its network with the action vector joined
to the context. Reference: GAT-MF's DDPG (github.com/tsinghua-fib-lab/Large-Scale-MARL-GATMF,
``code/train.py``), whose critic context is the attention mean of the neighbours' actions at the
same step (docs/continuous.md states the difference).
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from bmf_graph.algos.ac import Actor
from bmf_graph.algos.base import Interaction, TeamView, check_finite, on_alive_rows, piecewise_linear, soft_update
from bmf_graph.algos.networks import make_network
from bmf_graph.algos.q import QLearner
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec


class DeterministicActor(Actor):
    """``mu(o) = offset + scale * tanh(f(o))`` in ``Box(low, high)`` (``f`` reads the context too when
    ``context_dim > 0``)."""

    def __init__(self, spec: TeamSpec, network: str, context_dim: int, hidden: int):
        super().__init__(spec, network, context_dim, spec.num_actions, hidden)
        action_range = spec.action_range
        low, high = action_range
        self.register_buffer("offset", torch.tensor(0.5 * (low + high)), persistent=False)
        self.register_buffer("scale", torch.tensor(0.5 * (high - low)), persistent=False)

    def forward(self, obs: Tensor, context: Tensor | None) -> Tensor:
        return self.offset + self.scale * torch.tanh(super().forward(obs, context))


class ActionValue(nn.Module):
    """``Q(o, a, context) -> [..]``: the ``algo.network`` network with the action vector joined to
    the context (it enters through the context branch)."""

    def __init__(self, spec: TeamSpec, network: str, context_dim: int, hidden: int):
        super().__init__()
        self.net = make_network(spec, network, spec.num_actions + context_dim, 1, hidden)

    def forward(self, obs: Tensor, context: Tensor, action: Tensor | None = None) -> Tensor:
        return self.net(obs, torch.cat([action, context], dim=-1)).squeeze(-1)


class DDPG(QLearner):
    """Deterministic actor, action-value critic, Gaussian exploration noise."""

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float, interaction: Interaction):
        if not spec.continuous:
            raise ValueError(f"DDPG: team {spec.name!r} has discrete actions; expected a continuous action space")
        super().__init__(spec, cfg, radius, interaction)
        context = interaction.dim if cfg.actor_context else 0
        self.actor = DeterministicActor(spec, cfg.network, context, cfg.hidden)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)

    def make_critic(self, spec: TeamSpec, cfg: AlgoConfig, interaction: Interaction) -> nn.Module:
        return ActionValue(spec, cfg.network, interaction.dim, cfg.hidden)

    def diagnosed_networks(self) -> dict[str, tuple[nn.Module, bool]]:
        return {}  # the critic reads the action too; the context effect is a discrete-action measure

    def context_chooser(self) -> nn.Module | None:
        return None

    def action_schema(self) -> tuple[tuple[int, ...], torch.dtype]:
        return (self.spec.num_agents, self.spec.num_actions), torch.float32

    def q_taken(self, rec: dict[str, Tensor], context: Tensor) -> Tensor:
        return self.q(rec["obs"], context, rec["action"])

    # ------------------------------------------------------------------ acting
    def exploration(self, explore: float) -> float:
        """Noise standard deviation, as a fraction of the Box half-width, at progress ``explore``."""
        c = self.cfg
        return piecewise_linear(explore, [(0.0, c.noise_start), (c.explore_fraction, c.noise_end)])

    def exploration_stats(self, explore: float) -> dict[str, float]:
        return {"charts/noise": self.exploration(explore)}

    @torch.no_grad()
    def act(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """``mu(o)`` plus clipped Gaussian noise while training (``explore`` set), ``[N, A]``."""
        action = on_alive_rows(self.actor, view.alive, view.obs, rec["mean_action"] if self.actor.context_dim else None)
        if explore is None:
            return action
        noisy = action + self.actor.scale * self.exploration(explore) * torch.randn_like(action)
        low, high = self.spec.action_range
        return noisy.clamp(low, high)

    def policy(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        raise TypeError("DDPG acts deterministically (plus noise) and has no action distribution; call act()")

    # ------------------------------------------------------------------ learning
    def target_value(self, nxt: dict[str, Tensor], explore: float) -> Tensor:
        """``Q_target(o', mu_target(o'), context')`` per agent, ``[B, N]``."""
        with torch.no_grad():
            context = self.interaction.mean_action(nxt, target=True)
            action = self.actor_target(nxt["obs"], context if self.actor.context_dim else None)
            return self.q_target(nxt["obs"], context, action)

    def after_critic_update(self, rec: dict[str, Tensor], explore: float) -> dict[str, float]:
        """One actor step up the critic, ``-Q(o, mu(o), context)`` over the alive agents; then
        the actor's target follows."""
        with torch.no_grad():
            context = self.interaction.mean_action(rec)
        action = self.actor(rec["obs"], context if self.actor.context_dim else None)
        loss = -self.q(rec["obs"], context, action)[rec["alive"]].mean()
        check_finite({"actor": loss})
        self.actor_optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), self.cfg.max_grad_norm)
        self.actor_optimizer.step()
        soft_update(self.actor_target, self.actor, self.cfg.tau)
        return {"losses/policy": loss.item()}

    def training_state(self) -> dict:
        return {**super().training_state(), "actor_optimizer": self.actor_optimizer.state_dict()}

    def load_training_state(self, state: dict) -> None:
        super().load_training_state(state)
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
