r"""Q-learning over an interaction: ``q`` (none), ``mfq``, ``gat_mf`` and ``bmf_q``.

One learning rule for the four methods; they differ only in the critic input
:math:`\bar a_i` of the interaction (empty for ``q``, the neighbour mean for ``mfq``, Eq. 8 for
BMF):

.. math::
    \mathcal{L}_q = \big(Q_\theta(o_i, a_i, \bar a_i) - y_i\big)^2,\qquad
    y_i = r_i + \gamma (1 - d_i)\, V(o'_i, \bar a'_i)

with ``algo.target``:

- ``double_q`` (default, MFRL's code):
  :math:`V = Q_{\bar\theta}(o', \arg\max_a Q_\theta(o', a, \bar a'), \bar a')`;
- ``expectation`` (Yang et al. 2018): :math:`V = \sum_a \pi(a \mid o', \bar a')\,
  Q_{\bar\theta}(o', a, \bar a')` with :math:`\pi` the acting policy of the online network.

The acting policy is ε-greedy (``algo.exploration=epsilon``, MFRL's schedule 1 → 0.2 at 80 % of
the episodes → 0.1 at the end) or Boltzmann with a temperature schedule. Replay of whole-team
steps (one record per env copy and step), soft target updates, and as many gradient steps as
``algo.replay_ratio`` pays for: every stored agent transition is sampled about ``replay_ratio``
times in expectation, however many env copies record at once.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from bmf_graph.algos.base import (Algorithm, Interaction, TeamView, boltzmann, check_finite, context_parts, dead_rows_idle,
                                  epsilon_greedy, greedy, on_alive_rows, piecewise_linear, soft_update)
from bmf_graph.algos.diagnostics import Diagnostics
from bmf_graph.algos.networks import make_network
from bmf_graph.algos.replay import StepBuffer, replay_records
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec


class QLearner(Algorithm):
    """DQN-style learner with ε-greedy or Boltzmann exploration over a pluggable
    :class:`Interaction`."""

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float, interaction: Interaction):
        super().__init__(spec, cfg, radius, interaction)
        self.q = self.make_critic(spec, cfg, interaction)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.buffer: StepBuffer | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.steps = 0
        """Team records stored (one per env copy and step)."""
        self.credit = 0.0
        """Agent transitions the learner may still sample (see ``AlgoConfig.replay_ratio``)."""
        self._block = 0  # steps // update_every at the last after_step
        self.updates = 0
        """Gradient steps taken."""
        self.diagnostics = Diagnostics(self)

    def make_critic(self, spec: TeamSpec, cfg: AlgoConfig, interaction: Interaction) -> nn.Module:
        """``Q(o, ., context) -> [.., A]``, one value per discrete action."""
        return make_network(spec, cfg.network, interaction.dim, spec.num_actions, cfg.hidden,
                            context_parts(cfg, interaction))

    def diagnosed_networks(self) -> dict[str, tuple[nn.Module, bool]]:
        """The networks :class:`~bmf_graph.algos.diagnostics.Diagnostics` watches: name ->
        (network ``(obs, context)``, whether it reads the context)."""
        return {"critic": (self.q, self.interaction.dim > 0)}

    def context_chooser(self) -> nn.Module | None:
        """The network whose greedy choice the context effect measures: the critic."""
        return self.q

    def action_schema(self) -> tuple[tuple[int, ...], torch.dtype]:
        """Shape and dtype of a record's actions: one index per agent."""
        return (self.spec.num_agents,), torch.long

    def q_taken(self, rec: dict[str, Tensor], context: Tensor) -> Tensor:
        """``Q(o, a, context)`` of the recorded actions, ``[B, N]``."""
        return self.q(rec["obs"], context).gather(-1, rec["action"].unsqueeze(-1)).squeeze(-1)

    # ------------------------------------------------------------------ acting
    def exploration(self, explore: float) -> float:
        """ε (``exploration=epsilon``) or the temperature at training progress ``explore``."""
        c = self.cfg
        if c.exploration == "epsilon":
            knots = [(0.0, c.epsilon_start), (c.epsilon_mid_fraction, c.epsilon_mid), (1.0, c.epsilon_end)]
        else:
            knots = [(0.0, c.temperature_start), (c.explore_fraction, c.temperature_end)]
        return piecewise_linear(explore, knots)

    def exploration_stats(self, explore: float) -> dict[str, float]:
        name = "epsilon" if self.cfg.exploration == "epsilon" else "temperature"
        return {f"charts/{name}": self.exploration(explore)}

    def action_probs(self, q: Tensor, explore: float | None, view: TeamView | None = None) -> Tensor:
        """The acting policy ``pi(. | o, a_bar)`` over Q-values ``[..., A]``: greedy (ties broken
        at random) when ``explore`` is ``None``, else ε-greedy or Boltzmann at progress
        ``explore``. With ``algo.epsilon_scope=team`` and the acting ``view``, one ε switch per
        team and env copy; without a view (target values) the per-agent mixture."""
        if explore is None:
            return greedy(q)
        if self.cfg.exploration == "epsilon":
            if view is not None and self.cfg.epsilon_scope == "team":
                copy = view.batch if view.batch is not None else q.new_zeros(q.shape[0], dtype=torch.long)
                return epsilon_greedy(q, self.exploration(explore), copy, view.num_envs)
            return epsilon_greedy(q, self.exploration(explore))
        return boltzmann(q, self.exploration(explore))

    @torch.no_grad()
    def policy(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        q = on_alive_rows(self.q, view.alive, view.obs, rec["mean_action"])
        return dead_rows_idle(self.action_probs(q, explore, view), view.alive)

    # ------------------------------------------------------------------ recording
    def _setup(self) -> None:
        n = self.spec.num_agents
        schema = {"obs": ((n, self.spec.obs_dim), torch.float32), "action": self.action_schema(),
                  "reward": ((n,), torch.float32), "alive": ((n,), torch.bool),
                  **self.interaction.schema(n)}
        self.buffer = StepBuffer(replay_records(self.cfg.buffer_size, n), schema, self.device)
        self.optimizer = torch.optim.Adam(self.critic_parameters(), lr=self.cfg.lr, fused=True)  # one kernel for all

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic loss trains: the Q network and the interaction's learned parts (not
        the target copies, not the agent VAE nor an actor, which have optimizers of their own)."""
        return [p for name, p in self.named_parameters()
                if p.requires_grad and not name.startswith(("interaction.vae", "actor"))]

    def _store(self, view: TeamView, rec: dict[str, Tensor], action: Tensor, first: bool) -> None:
        """One record per copy in ``view``; each copy's previous record gets its reward."""
        if self.buffer is None:
            self._setup()
        if not first and view.reward is not None:
            self.buffer.set_last(view.copies, "reward", view.reward)
        fields = {k: v for k, v in rec.items() if k != "mean_action"}
        self.buffer.add({**fields, "obs": view.obs, "alive": view.alive, "action": action,
                         "reward": torch.zeros_like(view.alive, dtype=torch.float32)}, view.copies, first)

    def record(self, view: TeamView, rec: dict[str, Tensor], action: Tensor, first: bool) -> None:
        """Store one team step per copy; its alive agents' transitions earn ``replay_ratio``
        samples each."""
        self._store(view, rec, action, first)
        self.steps += view.num_envs
        self.credit += self.cfg.replay_ratio * int(view.alive.sum())

    def end_episode(self, view: TeamView, rec: dict[str, Tensor], terminated: bool, explore: float) -> dict[str, float]:
        # The final state closes the last transition; it has no action (nor transition) of its own.
        shape, dtype = self.action_schema()
        self._store(view, rec, torch.zeros((view.alive.shape[0], *shape[1:]), dtype=dtype, device=view.alive.device),
                    first=False)
        if terminated:
            self.buffer.set_last(view.copies, "alive", torch.zeros_like(view.alive))
        return {}

    # ------------------------------------------------------------------ learning
    def batch_cost(self) -> float:
        """Credit one gradient step costs: ``batch_size`` agent transitions (``sampling=agents``),
        or ``batch_steps`` times the mean number of alive agents over the stored records that
        have a successor (``sampling=team_steps``, those :meth:`update` samples)."""
        size = len(self.buffer)
        valid = self.buffer.next[:size] >= 0
        records = int(valid.sum())
        if records == 0:
            return 0.0
        if self.cfg.sampling == "agents":
            return float(self.cfg.batch_size)
        alive = self.buffer.data["alive"][:size].sum(1)
        return self.cfg.batch_steps * float(alive[torch.from_numpy(valid).to(alive.device)].sum()) / records

    def agent_fields(self) -> tuple[str, ...]:
        """Record fields with one row per agent that a minibatch of agent transitions keeps
        only for the sampled agent (``sampling=agents``)."""
        return ("obs", "action", "reward", "alive", *self.interaction.agent_fields)

    def sample(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """A minibatch ``(records, successors)`` as ``algo.sampling`` says: ``batch_size`` agent
        transitions, each a record of one agent (``[B, 1, ...]``), or ``batch_steps`` whole team
        records (``[B, N, ...]``)."""
        if self.cfg.sampling == "team_steps":
            return self.buffer.sample(self.cfg.batch_steps)
        return self.buffer.sample_agents(self.cfg.batch_size, self.agent_fields(), self.interaction.whole_fields)

    def after_step(self, explore: float) -> dict[str, float]:
        """Every ``update_every`` stored records (from ``learning_starts`` on), the gradient steps
        the credit pays for; their logs averaged."""
        c = self.cfg
        block = self.steps // c.update_every
        crossed, self._block = block > self._block, block
        if self.steps < c.learning_starts or not crossed:
            return {}
        cost, logs = self.batch_cost(), []
        if cost <= 0:
            return {}
        while self.credit >= cost:
            logs.append(self.update(explore))
            self.credit -= cost
        keys = {k for log in logs for k in log}
        return {k: sum(log[k] for log in logs if k in log) / sum(k in log for log in logs) for k in keys}

    def target_value(self, nxt: dict[str, Tensor], explore: float) -> Tensor:
        """``V(o', a_bar')`` per agent, ``[B, N]``, without gradients (``algo.target``)."""
        with torch.no_grad():
            context = self.interaction.mean_action(nxt, target=True)
            q_next = self.q_target(nxt["obs"], context)
            q_online = self.q(nxt["obs"], context)
            if self.cfg.target == "double_q":
                return q_next.gather(-1, q_online.argmax(-1, keepdim=True)).squeeze(-1)
            return (self.action_probs(q_online, explore) * q_next).sum(-1)

    def td_loss(self, rec: dict[str, Tensor], nxt: dict[str, Tensor], explore: float) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, y, q)`` on records ``rec`` and their successors ``nxt`` (``[B, N, ...]``):
        the mean squared TD error over the agents alive in ``rec``."""
        mask = rec["alive"]
        # An agent alive before the step and dead (or the episode terminated) after it is done.
        not_done = nxt["alive"].float()
        y = rec["reward"] + self.cfg.gamma * not_done * self.target_value(nxt, explore)
        q = self.q_taken(rec, self.interaction.mean_action(rec))
        return ((q - y)[mask] ** 2).mean(), y, q

    def update(self, explore: float) -> dict[str, float]:
        """One gradient step on a sampled minibatch (:meth:`sample`)."""
        rec, nxt = self.sample()
        loss, y, q = self.td_loss(rec, nxt, explore)
        losses = {"q": loss}
        aux = self.interaction.aux_loss(rec, y)
        if aux is not None:
            losses["vae"] = aux[0]
        check_finite(losses)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], self.cfg.max_grad_norm)
        self.optimizer.step()
        if aux is not None:
            self.interaction.step_aux(aux[0])
        soft_update(self.q_target, self.q, self.cfg.tau)
        self.interaction.soft_update(self.cfg.tau)
        logs = {"losses/q": loss.item(), "losses/q_mean": q[rec["alive"]].mean().item()}
        if aux is not None:
            logs.update({f"losses/vae_{k}": v for k, v in aux[1].items()})
        logs.update(self.after_critic_update(rec, explore))
        self.updates += 1
        logs.update(self.diagnostics.maybe_measure(self.updates))
        return logs

    def after_critic_update(self, rec: dict[str, Tensor], explore: float) -> dict[str, float]:
        """A further step on the same sampled records (the actor of the AC family); logs."""
        return {}

    def training_state(self) -> dict:
        if self.buffer is None:
            return {"steps": self.steps, "credit": self.credit}
        return {"steps": self.steps, "credit": self.credit, "updates": self.updates, "buffer": self.buffer.state_dict(),
                "optimizer": self.optimizer.state_dict(), **self.interaction.training_state()}

    def load_training_state(self, state: dict) -> None:
        self.steps, self.credit, self.updates = state["steps"], state.get("credit", 0.0), state.get("updates", 0)
        self._block = self.steps // self.cfg.update_every
        if "buffer" in state:
            self._setup()
            self.buffer.load_state_dict(state["buffer"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.interaction.load_training_state(state)
