r"""Graph-attention mean field (GAT-MF; Hao et al. 2023), attention as its reference code.

.. math::
    \bar a_i = \sum_{j \in \mathcal N(i)} \alpha_{ij} a^{t-1}_j,\qquad
    \alpha_{ij} = \frac{(q_i \cdot k_j)^2}{\sum_{j'} (q_i \cdot k_{j'})^2 + \epsilon},\qquad
    q_i = W_Q^\top o_i,\ k_j = W_K^\top o_j

over the radius neighbours of agent :math:`i` (:class:`~bmf_graph.nn.GATMeanField`). The
attention learns through the critic loss, so records keep positions and previous actions and
the neighbour graph is rebuilt for every sampled step at update time; target values use a
target copy of the attention, soft-updated with the critic (as the reference's target
attention). ``algo.dense=true`` uses the reference's full :math:`N \times N` score matrix.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from bmf_graph.algos.base import Interaction, TeamView, scope_graph
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec
from bmf_graph.nn import GATMeanField


class GATInteraction(Interaction):
    """Attention-weighted neighbour mean with scores from the agents' observations."""

    whole_fields = ("obs", "alive")

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float):
        super().__init__(spec, cfg, radius)
        self.dim = spec.num_actions
        self.attention = GATMeanField(spec.obs_dim, cfg.hidden, dense=cfg.dense)
        self.add_target("attention")

    def schema(self, num_agents: int) -> dict:
        return {"pos": ((num_agents, 2), torch.float32), "a_prev": ((num_agents, self.dim), torch.float32)}

    def observe(self, view: TeamView) -> dict[str, Tensor]:
        if self.whole_team:
            c = view.num_envs
            gat = self.attention.complete(view.obs.view(c, -1, view.obs.size(-1)), view.a_prev.view(c, -1, self.dim),
                                          view.alive.view(c, -1)).reshape(-1, self.dim)
        else:
            gat = self.attention(view.obs, view.a_prev, self.graph(view))
        return {"pos": view.pos, "a_prev": view.a_prev, "mean_action": gat}

    @property
    def whole_team(self) -> bool:
        r"""Each agent attends over its whole team (``radius = inf``): the complete graph of each
        copy, computed per copy with batched products (:meth:`~bmf_graph.nn.GATMeanField.complete`);
        ``algo.dense=true`` keeps the reference's one :math:`N \times N` matrix over all copies."""
        return math.isinf(self.radius) and not self.attention.dense

    def mean_action(self, rec: dict[str, Tensor], target: bool = False) -> Tensor:
        """``[B, N, dim]`` over whole records; ``[B, 1, dim]`` for a minibatch of agent
        transitions (``rec["agent"]``): the sampled agent's query against the whole record in
        ``rec["whole"]`` (:meth:`~bmf_graph.nn.GATMeanField.rows`)."""
        attention = self.part("attention", target)
        if "agent" in rec:
            whole, agent = rec["whole"], rec["agent"]
            b, n = whole["alive"].shape
            rows = torch.arange(b, device=agent.device)
            mask = whole["alive"].clone()
            if not math.isinf(self.radius):
                gap = rec["pos"] - rec["pos"][rows, agent].unsqueeze(1)
                mask &= gap.square().sum(-1) < self.radius ** 2
            mask[rows, agent] = False
            return attention.rows(whole["obs"][rows, agent], whole["obs"], rec["a_prev"], mask).unsqueeze(1)
        b, n = rec["alive"].shape
        if self.whole_team:
            return attention.complete(rec["obs"], rec["a_prev"], rec["alive"])
        batch = torch.arange(b, device=rec["alive"].device).repeat_interleave(n)
        edge_index = scope_graph(rec["pos"].reshape(b * n, 2), self.radius, rec["alive"].reshape(-1), batch)
        out = attention(rec["obs"].reshape(b * n, -1), rec["a_prev"].reshape(b * n, -1), edge_index)
        return out.reshape(b, n, -1)
