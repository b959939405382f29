r"""Advantage actor-critic over an interaction: ``ac`` (none), ``mfac`` and ``bmf_ac``.

The actor :math:`\pi_\phi(a \mid o_i)` is decentralised; the critic is
:math:`V_\theta(o_i, \bar a_i)` with the interaction's critic input (Eq. 9 with the value as
baseline). On each episode batch, GAE advantages per agent,

.. math::
    \delta_t = r_t + \gamma (1 - d_t) V(o_{t+1}, \bar a_{t+1}) - V(o_t, \bar a_t),\qquad
    \hat A_t = \sum_l (\gamma\lambda)^l \delta_{t+l},

and the loss :math:`-\log\pi(a_t|o_t)\hat A_t + c_v (V - \hat R_t)^2 - c_H\,\mathcal{H}[\pi]`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from bmf_graph.algos.base import (Algorithm, Interaction, TeamView, check_finite, entropy_of_logits, greedy,
                                  mlp)
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec


class ActorCriticNetwork(nn.Module):
    """Policy logits from the observation; value from the observation and the critic input."""

    def __init__(self, obs_dim: int, context_dim: int, num_actions: int, hidden: int):
        super().__init__()
        self.policy = mlp(obs_dim, hidden, num_actions)
        self.value_trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU())
        self.value_head = mlp(hidden + context_dim, hidden, 1)

    def value(self, obs: Tensor, context: Tensor) -> Tensor:
        return self.value_head(torch.cat([self.value_trunk(obs), context], dim=-1)).squeeze(-1)


def gae(reward: Tensor, value: Tensor, next_value: Tensor, not_done: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates over time (dim 0): all inputs ``[T, N]``."""
    delta = reward + gamma * not_done * next_value - value
    advantage = torch.zeros_like(delta)
    running = torch.zeros_like(delta[0])
    for t in range(delta.shape[0] - 1, -1, -1):
        running = delta[t] + gamma * lam * not_done[t] * running
        advantage[t] = running
    return advantage


class ActorCritic(Algorithm):
    """A2C on whole-episode batches with a pluggable :class:`Interaction` in the critic."""

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float, interaction: Interaction):
        super().__init__(spec, cfg, radius, interaction)
        self.net = ActorCriticNetwork(spec.obs_dim, interaction.dim, spec.num_actions, cfg.hidden)
        self.optimizer: torch.optim.Optimizer | None = None
        self.episode: list[dict[str, Tensor]] = []

    @torch.no_grad()
    def policy(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """``softmax`` of the actor's logits; the greedy one-hot when ``explore`` is ``None``."""
        logits = self.net.policy(view.obs)
        return greedy(logits) if explore is None else torch.softmax(logits, -1)

    def _optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            params = [p for name, p in self.named_parameters() if not name.startswith("interaction.vae")]
            self.optimizer = torch.optim.Adam(params, lr=self.cfg.lr)
        return self.optimizer

    def record(self, view: TeamView, rec: dict[str, Tensor], action: Tensor, first: bool) -> None:
        if first:
            self.episode = []
        fields = {k: v for k, v in rec.items() if k != "mean_action"}
        self.episode.append({**fields, "obs": view.obs, "alive": view.alive, "action": action,
                             "reward": torch.zeros_like(view.alive, dtype=torch.float32)})

    def reward(self, reward: Tensor) -> None:
        self.episode[-1]["reward"] = reward

    def end_episode(self, view: TeamView, rec: dict[str, Tensor], terminated: bool, explore: float) -> dict[str, float]:
        final = {k: v for k, v in rec.items() if k != "mean_action"}
        final.update(obs=view.obs, alive=view.alive & (not terminated), action=torch.zeros_like(view.alive, dtype=torch.long),
                     reward=torch.zeros_like(view.alive, dtype=torch.float32))
        steps = self.episode + [final]
        self.episode = []
        batch = {k: torch.stack([s[k] for s in steps]) for k in steps[0]}
        logs: dict[str, float] = {}
        for _ in range(self.cfg.updates):
            logs = self.update(batch)
        return logs

    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One gradient step on an episode batch of ``T + 1`` records ``[T + 1, N, ...]``."""
        value_all = self.net.value(batch["obs"], self.interaction.mean_action(batch))
        rec = {k: v[:-1] for k, v in batch.items()}
        value, next_value = value_all[:-1], value_all[1:].detach()
        not_done = batch["alive"][1:].float()
        mask = rec["alive"]
        with torch.no_grad():
            advantage = gae(rec["reward"], value.detach(), next_value, not_done, self.cfg.gamma, self.cfg.gae_lambda)
            returns = advantage + value.detach()
        logits = self.net.policy(rec["obs"])
        log_prob = torch.log_softmax(logits, -1).gather(-1, rec["action"].unsqueeze(-1)).squeeze(-1)
        policy_loss = -(log_prob * advantage)[mask].mean()
        value_loss = ((value - returns) ** 2)[mask].mean()
        entropy = entropy_of_logits(logits)[mask].mean()
        loss = policy_loss + self.cfg.value_coef * value_loss - self.cfg.entropy_coef * entropy
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
        return logs

    def training_state(self) -> dict:
        state = {} if self.optimizer is None else {"optimizer": self.optimizer.state_dict()}
        return {**state, **self.interaction.training_state()}

    def load_training_state(self, state: dict) -> None:
        if "optimizer" in state:
            self._optimizer().load_state_dict(state["optimizer"])
        self.interaction.load_training_state(state)
