"""Uniformly random actions: the default prey of Adversarial Pursuit and a baseline."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from bmf_graph.algos.base import TeamView, sample_rows
from bmf_graph.envs.base import TeamSpec


class RandomPolicy(nn.Module):
    """Picks each agent's action uniformly from the team's action space (torch RNG)."""

    def __init__(self, spec: TeamSpec):
        super().__init__()
        self.spec = spec

    def __repr__(self) -> str:
        return f"RandomPolicy({self.spec.name}, num_actions={self.spec.num_actions})"

    def begin_episode(self) -> None:
        pass

    def observe(self, view: TeamView) -> dict[str, Tensor]:
        return {}

    def policy(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """The uniform distribution ``[N, A]``, whatever ``explore``."""
        n, a = view.alive.shape[0], self.spec.num_actions
        return torch.full((n, a), 1.0 / a, device=view.alive.device)

    def act(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """Uniform actions: indices, or ``[N, A]`` vectors uniform in the Box of a continuous team."""
        if self.spec.continuous:
            low, high = self.spec.action_range
            n, a = view.alive.shape[0], self.spec.num_actions
            return torch.empty(n, a, device=view.alive.device).uniform_(low, high)
        return sample_rows(self.policy(view, rec, explore))
