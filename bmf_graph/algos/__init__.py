"""Algorithms of DESIGN.md section 3: a learning rule over an interaction.

=========  ======================================  ==============================
name       learning rule                           critic input
=========  ======================================  ==============================
``q``      :class:`~bmf_graph.algos.q.QLearner`    ``o``
``mfq``    QLearner                                ``o, a_mf``
``gat_mf`` QLearner                                ``o, a_gat``
``bmf_q``  QLearner                                ``o, a_intra, a_inter``
``ac``     :class:`~bmf_graph.algos.ac.ActorCritic` ``o``
``mfac``   ActorCritic                             ``o, a_mf``
``bmf_ac`` ActorCritic                             ``o, a_intra, a_inter``
=========  ======================================  ==============================
"""
from __future__ import annotations

from bmf_graph.algos.ac import ActorCritic
from bmf_graph.algos.base import Algorithm, Interaction, NonFiniteLoss, TeamView
from bmf_graph.algos.bmf import BiLevelInteraction
from bmf_graph.algos.gat_mf import GATInteraction
from bmf_graph.algos.mfq import MeanFieldInteraction
from bmf_graph.algos.q import QLearner
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec

REGISTRY = {
    "q": (QLearner, Interaction),
    "mfq": (QLearner, MeanFieldInteraction),
    "gat_mf": (QLearner, GATInteraction),
    "bmf_q": (QLearner, BiLevelInteraction),
    "ac": (ActorCritic, Interaction),
    "mfac": (ActorCritic, MeanFieldInteraction),
    "bmf_ac": (ActorCritic, BiLevelInteraction),
}


def make_algorithm(spec: TeamSpec, cfg: AlgoConfig, radius: float) -> Algorithm:
    """The algorithm ``cfg.name`` for one team."""
    if cfg.name not in REGISTRY:
        raise ValueError(f"make_algorithm: algo.name={cfg.name!r} is not valid; expected one of {', '.join(REGISTRY)}")
    rule, interaction = REGISTRY[cfg.name]
    return rule(spec, cfg, radius, interaction(spec, cfg, radius))


__all__ = ["Algorithm", "ActorCritic", "QLearner", "Interaction", "MeanFieldInteraction", "GATInteraction",
           "BiLevelInteraction", "NonFiniteLoss", "TeamView", "REGISTRY", "make_algorithm"]
