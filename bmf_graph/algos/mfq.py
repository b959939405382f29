r"""Mean-field interaction (MFQ, MFAC; Yang et al. 2018, Eq. 5).

.. math::
    \bar a_i = \frac{1}{|\mathcal N(i)|} \sum_{j \in \mathcal N(i)} a^{t-1}_j

over the radius neighbours of agent :math:`i` in its own team (zeros when it has none).
``mfq`` is :class:`~bmf_graph.algos.q.QLearner` and ``mfac``
:class:`~bmf_graph.algos.ac.ActorCritic` over this interaction.
"""
from __future__ import annotations

import torch
from torch import Tensor

from bmf_graph.algos.base import Interaction, TeamView
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec
from bmf_graph.nn import MeanField


class MeanFieldInteraction(Interaction):
    """Stores the neighbour mean of the previous actions; nothing is learned."""

    agent_fields = ("mf",)

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float):
        super().__init__(spec, cfg, radius)
        self.dim = spec.num_actions
        self.mean_field = MeanField()

    def schema(self, num_agents: int) -> dict:
        return {"mf": ((num_agents, self.dim), torch.float32)}

    def observe(self, view: TeamView) -> dict[str, Tensor]:
        mf = self.neighbour_mean(self.mean_field, view)
        return {"mf": mf, "mean_action": mf}

    def mean_action(self, rec: dict[str, Tensor], target: bool = False) -> Tensor:
        return rec["mf"]
