"""Algorithms (docs/method.md): a learning rule over an interaction.

=========  ==============================================  ==============================
name       learning rule                                   critic input
=========  ==============================================  ==============================
``q``      :class:`~bmf_graph.algos.q.QLearner`            ``o``
``mfq``    QLearner                                        ``o, a_mf``
``gat_mf`` QLearner                                        ``o, a_gat``
``bmf_q``  QLearner                                        ``o, a_intra, a_inter``
``ac``     ``algo.critic``: ``q`` -> :class:`~bmf_graph.algos.ac.QActorCritic` (Eq. 9),
           ``value`` -> :class:`~bmf_graph.algos.ac.ActorCritic` (A2C)
                                                           ``o``
``mfac``   as ``ac``                                       ``o, a_mf``
``bmf_ac`` as ``ac``                                       ``o, a_intra, a_inter``
=========  ==============================================  ==============================

A team with continuous actions (``TeamSpec.action_range``) runs ``ac``, ``mfac``, ``bmf_ac`` and
``gat_mf`` as :class:`~bmf_graph.algos.ddpg.DDPG` over the same interactions (critic
``Q(o, a, context)``, docs/continuous.md); the Q methods need discrete actions.
"""
from __future__ import annotations

from bmf_graph.algos.ac import ActorCritic, QActorCritic
from bmf_graph.algos.base import Algorithm, Interaction, NonFiniteLoss, TeamView
from bmf_graph.algos.bmf import BiLevelInteraction
from bmf_graph.algos.ddpg import DDPG
from bmf_graph.algos.gat_mf import GATInteraction
from bmf_graph.algos.mfq import MeanFieldInteraction
from bmf_graph.algos.q import QLearner
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec

ACTOR_CRITICS = {"q": QActorCritic, "value": ActorCritic}
"""The AC family's learning rule for each ``algo.critic``."""

REGISTRY = {
    "q": (QLearner, Interaction),
    "mfq": (QLearner, MeanFieldInteraction),
    "gat_mf": (QLearner, GATInteraction),
    "bmf_q": (QLearner, BiLevelInteraction),
    "ac": (ACTOR_CRITICS, Interaction),
    "mfac": (ACTOR_CRITICS, MeanFieldInteraction),
    "bmf_ac": (ACTOR_CRITICS, BiLevelInteraction),
}


CONTINUOUS = ("ac", "mfac", "bmf_ac", "gat_mf")
"""The algorithms with a DDPG form, run when the team's actions are continuous."""


def make_algorithm(spec: TeamSpec, cfg: AlgoConfig, radius: float) -> Algorithm:
    """The algorithm ``cfg.name`` for one team (its DDPG form for continuous actions)."""
    if cfg.name not in REGISTRY:
        raise ValueError(f"make_algorithm: algo.name={cfg.name!r} is not valid; expected one of {', '.join(REGISTRY)}")
    rule, interaction = REGISTRY[cfg.name]
    if spec.continuous:
        if cfg.name not in CONTINUOUS:
            raise ValueError(f"make_algorithm: algo.name={cfg.name!r} needs discrete actions and team {spec.name!r} "
                             f"acts in a continuous Box; expected one of {', '.join(CONTINUOUS)}")
        if cfg.critic != "q":
            raise ValueError(f"make_algorithm: algo.critic={cfg.critic!r} has no continuous-action form; expected q "
                             "(the DDPG critic Q(o, a, context))")
        return DDPG(spec, cfg, radius, interaction(spec, cfg, radius))
    if isinstance(rule, dict):
        if cfg.critic not in rule:
            raise ValueError(f"make_algorithm: algo.critic={cfg.critic!r} is not valid; expected one of {', '.join(rule)}")
        rule = rule[cfg.critic]
    return rule(spec, cfg, radius, interaction(spec, cfg, radius))


__all__ = ["Algorithm", "ActorCritic", "DDPG", "CONTINUOUS", "QActorCritic", "QLearner", "Interaction", "MeanFieldInteraction",
           "GATInteraction", "BiLevelInteraction", "NonFiniteLoss", "TeamView", "REGISTRY", "make_algorithm"]
