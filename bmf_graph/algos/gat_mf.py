r"""Graph-attention mean field (GAT-MF; Hao et al. 2023).

.. math::
    \bar a_i = \sum_{j \in \mathcal N(i)} \alpha_{ij} a^{t-1}_j,\qquad
    \alpha_{ij} = \operatorname{softmax}_j\big(\mathrm{LeakyReLU}(\mathbf a^\top [W o_i \,\|\, W o_j])\big)

The attention parameters learn through the critic loss, so records keep positions and
previous actions and the neighbour graph is rebuilt for every sampled step at update time.
``algo.dense=true`` uses the reference's full :math:`N \times N` attention masked by adjacency.
"""
from __future__ import annotations

import torch
from torch import Tensor

from bmf_graph.algos.base import Interaction, TeamView
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec
from bmf_graph.graph import neighbour_graph
from bmf_graph.nn import GATMeanField


class GATInteraction(Interaction):
    """Attention-weighted neighbour mean with scores from the agents' observations."""

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float):
        super().__init__(spec, cfg, radius)
        self.dim = spec.num_actions
        self.attention = GATMeanField(spec.obs_dim, cfg.hidden, dense=cfg.dense)

    def schema(self, num_agents: int) -> dict:
        return {"pos": ((num_agents, 2), torch.float32), "a_prev": ((num_agents, self.dim), torch.float32)}

    def observe(self, view: TeamView) -> dict[str, Tensor]:
        gat = self.attention(view.obs, view.a_prev, self.graph(view))
        return {"pos": view.pos, "a_prev": view.a_prev, "mean_action": gat}

    def mean_action(self, rec: dict[str, Tensor]) -> Tensor:
        b, n = rec["alive"].shape
        batch = torch.arange(b, device=rec["alive"].device).repeat_interleave(n)
        edge_index = neighbour_graph(rec["pos"].reshape(b * n, 2), self.radius,
                                     alive=rec["alive"].reshape(-1), batch=batch)
        out = self.attention(rec["obs"].reshape(b * n, -1), rec["a_prev"].reshape(b * n, -1), edge_index)
        return out.reshape(b, n, -1)
