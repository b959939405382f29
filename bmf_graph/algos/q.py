r"""Q-learning over an interaction: ``q`` (none), ``mfq``, ``gat_mf`` and ``bmf_q``.

.. math::
    \mathcal{L}_q = \big(Q_\theta(o_i, a_i, \bar a_i) - y_i\big)^2,\qquad
    y_i = r_i + \gamma (1 - d_i)\, V(o'_i)

with :math:`\bar a_i` the interaction's critic input (empty for ``q``; Eq. 8 for BMF). For ``q``,
:math:`V(o') = Q_{\bar\theta}(o', \arg\max_a Q_\theta(o', a))` (double Q); with mean actions,
:math:`V(o') = \sum_a \pi(a \mid o', \bar a')\, Q_{\bar\theta}(o', a, \bar a')` with the Boltzmann
policy :math:`\pi` of the online network (MFQ). Soft target updates, replay of whole-team steps.

Update schedule (replay ratio :math:`\rho`, ``algo.replay_ratio``): every recorded step earns
:math:`\rho` times the alive agent transitions it stores in credit; one gradient step on
``batch_steps`` records costs ``batch_steps`` times the mean alive agents per record. So each
stored agent transition is sampled about :math:`\rho` times, however many env copies record at once.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from bmf_graph.algos.base import (Algorithm, Interaction, TeamView, boltzmann, check_finite, linear_schedule,
                                  mlp, sample_rows, soft_update)
from bmf_graph.buffer import StepBuffer, replay_records
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec


class QNetwork(nn.Module):
    """``Q(o, ., a_bar) -> [.., A]``: an observation trunk joined with the critic input."""

    def __init__(self, obs_dim: int, context_dim: int, num_actions: int, hidden: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU())
        self.head = mlp(hidden + context_dim, hidden, num_actions)

    def forward(self, obs: Tensor, context: Tensor) -> Tensor:
        return self.head(torch.cat([self.trunk(obs), context], dim=-1))


class QLearner(Algorithm):
    """DQN-style learner with Boltzmann exploration over a pluggable :class:`Interaction`."""

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float, interaction: Interaction):
        super().__init__(spec, cfg, radius, interaction)
        self.q = QNetwork(spec.obs_dim, interaction.dim, spec.num_actions, cfg.hidden)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.buffer: StepBuffer | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.records = 0  # team records stored (one per env copy and step)
        self.transitions = 0  # alive agent transitions stored
        self.credit = 0.0  # agent transitions still to be sampled (replay ratio)

    def temperature(self, explore: float | None) -> float:
        if explore is None:
            return 0.0
        c = self.cfg
        return linear_schedule(c.temperature_start, c.temperature_end, c.explore_fraction, explore)

    @torch.no_grad()
    def act(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        probs = boltzmann(self.q(view.obs, rec["mean_action"]), self.temperature(explore))
        return sample_rows(probs)

    # ------------------------------------------------------------------ learning
    def _setup(self) -> None:
        n = self.spec.num_agents
        schema = {"obs": ((n, self.spec.obs_dim), torch.float32), "action": ((n,), torch.long),
                  "reward": ((n,), torch.float32), "alive": ((n,), torch.bool),
                  **self.interaction.schema(n)}
        self.buffer = StepBuffer(replay_records(self.cfg.buffer_size, n), schema, self.device)
        critic = [p for name, p in self.named_parameters() if not name.startswith(("q_target", "interaction.vae"))]
        self.optimizer = torch.optim.Adam(critic, lr=self.cfg.lr)

    def _store(self, view: TeamView, rec: dict[str, Tensor], action: Tensor, first: bool) -> None:
        """One record per copy in ``view``; the copy's previous record gets its reward."""
        if self.buffer is None:
            self._setup()
        if not first:
            self.buffer.set_last(view.copies, "reward", view.reward)
        fields = {k: v for k, v in rec.items() if k != "mean_action"}
        self.buffer.add({**fields, "obs": view.obs, "alive": view.alive, "action": action,
                         "reward": torch.zeros_like(view.alive, dtype=torch.float32)}, view.copies, first)

    def record(self, view: TeamView, rec: dict[str, Tensor], action: Tensor, first: bool) -> None:
        self._store(view, rec, action, first)
        alive = int(view.alive.sum())
        self.records += view.num_envs
        self.transitions += alive
        if self.records >= self.cfg.learning_starts:
            self.credit += self.cfg.replay_ratio * alive

    def after_step(self, explore: float) -> dict[str, float]:
        c = self.cfg
        cost = c.batch_steps * max(self.transitions / max(self.records, 1), 1.0)
        logs: list[dict[str, float]] = []
        while self.credit >= cost and self.buffer.num_transitions > 0:
            logs.append(self.update(self.temperature(explore)))
            self.credit -= cost
        keys = {k for log in logs for k in log}
        return {k: sum(log[k] for log in logs if k in log) / sum(k in log for log in logs) for k in keys}

    def end_episode(self, view: TeamView, rec: dict[str, Tensor], terminated: bool, explore: float) -> dict[str, float]:
        # The final state closes the last transition; it has no action of its own.
        self._store(view, rec, torch.zeros_like(view.alive, dtype=torch.long), first=False)
        if terminated:
            self.buffer.set_last(view.copies, "alive", torch.zeros_like(view.alive))
        return {}

    def target_value(self, nxt: dict[str, Tensor], temperature: float) -> Tensor:
        """``V(o')`` per agent, ``[B, N]``, without gradients."""
        with torch.no_grad():
            context = self.interaction.mean_action(nxt)
            q_next = self.q_target(nxt["obs"], context)
            q_online = self.q(nxt["obs"], context)
            if self.interaction.dim == 0:
                return q_next.gather(-1, q_online.argmax(-1, keepdim=True)).squeeze(-1)
            return (boltzmann(q_online, temperature) * q_next).sum(-1)

    def update(self, temperature: float) -> dict[str, float]:
        rec, nxt = self.buffer.sample(self.cfg.batch_steps)
        mask = rec["alive"]
        # An agent alive before the step and dead (or the episode terminated) after it is done.
        not_done = nxt["alive"].float()
        y = rec["reward"] + self.cfg.gamma * not_done * self.target_value(nxt, temperature)
        q = self.q(rec["obs"], self.interaction.mean_action(rec)).gather(-1, rec["action"].unsqueeze(-1)).squeeze(-1)
        loss = ((q - y)[mask] ** 2).mean()
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
        logs = {"losses/q": loss.item(), "losses/q_mean": q[mask].mean().item()}
        if aux is not None:
            logs.update({f"losses/vae_{k}": v for k, v in aux[1].items()})
        return logs

    def training_state(self) -> dict:
        counters = {"records": self.records, "transitions": self.transitions, "credit": self.credit}
        if self.buffer is None:
            return counters
        return {**counters, "buffer": self.buffer.state_dict(), "optimizer": self.optimizer.state_dict(),
                **self.interaction.training_state()}

    def load_training_state(self, state: dict) -> None:
        self.records, self.transitions, self.credit = state["records"], state["transitions"], state["credit"]
        if "buffer" in state:
            self._setup()
            self.buffer.load_state_dict(state["buffer"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.interaction.load_training_state(state)
