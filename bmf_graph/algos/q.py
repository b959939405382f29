r"""Q-learning over an interaction: ``q`` (none), ``mfq``, ``gat_mf`` and ``bmf_q``.

.. math::
    \mathcal{L}_q = \big(Q_\theta(o_i, a_i, \bar a_i) - y_i\big)^2,\qquad
    y_i = r_i + \gamma (1 - d_i)\, V(o'_i)

with :math:`\bar a_i` the interaction's critic input (empty for ``q``; Eq. 8 for BMF). For ``q``,
:math:`V(o') = Q_{\bar\theta}(o', \arg\max_a Q_\theta(o', a))` (double Q); with mean actions,
:math:`V(o') = \sum_a \pi(a \mid o', \bar a')\, Q_{\bar\theta}(o', a, \bar a')` with the Boltzmann
policy :math:`\pi` of the online network (MFQ). Soft target updates, replay of whole-team steps.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from bmf_graph.algos.base import (Algorithm, Interaction, TeamView, boltzmann, check_finite, linear_schedule,
                                  mlp, sample_rows, soft_update)
from bmf_graph.buffer import StepBuffer
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
        self.steps = 0
        self._last = -1

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
        self.buffer = StepBuffer(self.cfg.buffer_steps, schema, self.device)
        self.optimizer = torch.optim.Adam(self.critic_parameters(), lr=self.cfg.lr)

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic loss trains: the Q network and the interaction's learned parts (not
        the target copies, not the agent VAE, which has its own optimizer)."""
        return [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("interaction.vae")]

    def record(self, view: TeamView, rec: dict[str, Tensor], action: Tensor, first: bool) -> None:
        if self.buffer is None:
            self._setup()
        fields = {k: v for k, v in rec.items() if k != "mean_action"}
        self._last = self.buffer.add({**fields, "obs": view.obs, "alive": view.alive, "action": action,
                                      "reward": torch.zeros_like(view.alive, dtype=torch.float32)}, first)

    def reward(self, reward: Tensor) -> None:
        self.buffer.set(self._last, "reward", reward)

    def after_step(self, explore: float) -> dict[str, float]:
        self.steps += 1
        c = self.cfg
        if self.steps < c.learning_starts or self.steps % c.update_every or self.buffer.num_transitions == 0:
            return {}
        logs: dict[str, float] = {}
        for _ in range(c.updates):
            logs = self.update(self.temperature(explore))
        return logs

    def end_episode(self, view: TeamView, rec: dict[str, Tensor], terminated: bool, explore: float) -> dict[str, float]:
        # The final state closes the last transition; it has no action of its own.
        action = torch.zeros_like(view.alive, dtype=torch.long)
        self.record(view, rec, action, first=False)
        if terminated:
            self.buffer.set(self._last, "alive", torch.zeros_like(view.alive))
        return {}

    def target_value(self, nxt: dict[str, Tensor], temperature: float) -> Tensor:
        """``V(o')`` per agent, ``[B, N]``, without gradients."""
        with torch.no_grad():
            context = self.interaction.mean_action(nxt, target=True)
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
        context = self.interaction.mean_action(rec)
        q = self.q(rec["obs"], context).gather(-1, rec["action"].unsqueeze(-1)).squeeze(-1)
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
        self.interaction.soft_update(self.cfg.tau)
        logs = {"losses/q": loss.item(), "losses/q_mean": q[mask].mean().item()}
        if aux is not None:
            logs.update({f"losses/vae_{k}": v for k, v in aux[1].items()})
        logs.update(self.after_critic_update(rec, context.detach()))
        return logs

    def after_critic_update(self, rec: dict[str, Tensor], context: Tensor) -> dict[str, float]:
        """A further step on the same sampled records (the actor of the AC family); logs."""
        return {}

    def training_state(self) -> dict:
        if self.buffer is None:
            return {"steps": self.steps}
        return {"steps": self.steps, "buffer": self.buffer.state_dict(), "optimizer": self.optimizer.state_dict(),
                **self.interaction.training_state()}

    def load_training_state(self, state: dict) -> None:
        self.steps = state["steps"]
        if "buffer" in state:
            self._setup()
            self.buffer.load_state_dict(state["buffer"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.interaction.load_training_state(state)
