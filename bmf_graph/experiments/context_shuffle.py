r"""The context-shuffle test: does a trained model use its context? (``bmf-evaluate context``)

A model of the MF family reads, beside its observation, a *context*: the mean action (MFQ, MFAC),
GAT-MF's attention mean or BMF's :math:`[\tilde a_i \,\|\, \tilde a_{m(i)}]`. The test plays the
model greedily and, at every step, measures what happens when that context is permuted across the
alive agents of the team (``mode="permute"``; or zeroed, ``"zero"``), for the whole context or
one of BMF's halves (``part="intra"``/``"inter"``):

- ``changed``: the fraction of alive agents whose greedy action (of the critic; of the actor where
  the actor reads the context and the critic chooses nothing) changes
  (:func:`~bmf_graph.algos.diagnostics.context_effect`), averaged over the steps, weighted by the
  alive agents; ``dq``: the mean :math:`|\Delta Q|` over the mean spread
  :math:`\max_a Q - \min_a Q`.
- Battle: the model plays itself with the context shuffled on one side, ``games`` games, every
  seed once with the intact model as red and once as blue (the env draws the sides from the
  seed, so the intact model plays each seed from both sides). Per game the kill difference
  ``intact - shuffled``; its mean over the two games of each seed cancels the side's advantage,
  and the 95 % t-interval is over seeds (:func:`mirror_statistics`). Also the intact model's win
  rate over games (more kills) with a Wilson interval. Greedy mirror games are often decided by
  the side, so the kill difference is the sharper measure.
- Other tasks: the return of the learned team with the intact and with the shuffled context, the
  other teams random.

A model whose network ignores its context gives ``changed = 0`` and ``dq = 0`` exactly.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from bmf_graph.algos.base import TeamView
from bmf_graph.algos.bmf import BiLevelInteraction
from bmf_graph.algos.diagnostics import MODES, context_columns, context_effect, shuffle_context
from bmf_graph.envs import make_env
from bmf_graph.experiments.evaluate import play_copies
from bmf_graph.training.players import RANDOM, Source, describe, resolve_env, team_policies
from bmf_graph.experiments.winrate import wilson_interval

__all__ = ["ShuffledContext", "context_test", "mirror_statistics"]


class ShuffledContext:
    """A policy wrapper around a trained algorithm that shuffles its context before it acts
    (``act_shuffled``) or acts on the intact context and only measures the effect of shuffling.

    ``changed`` and ``dq`` accumulate over the steps played, weighted by the alive agents.
    """

    def __init__(self, algo: Any, mode: str = "permute", part: str = "all", act_shuffled: bool = False):
        if mode not in MODES:
            raise ValueError(f"ShuffledContext: mode={mode!r} is not valid; expected one of {', '.join(MODES)}")
        if getattr(algo, "interaction", None) is None or algo.interaction.dim == 0:
            name = getattr(getattr(algo, "cfg", None), "name", type(algo).__name__)
            raise ValueError(f"ShuffledContext: the model is {name!r}, which reads no context; expected a model "
                             f"of the MF family (mfq, mfac, gat_mf, bmf_q, bmf_ac)")
        if part != "all" and not isinstance(algo.interaction, BiLevelInteraction):
            raise ValueError(f"ShuffledContext: part={part!r} names a half of BMF's context [a_intra | a_inter]; the "
                             f"model is {algo.cfg.name!r}, whose context is one mean (expected part='all')")
        context_columns(algo.interaction.dim, part)  # a part BMF's halves name, or all
        self.algo, self.mode, self.part, self.act_shuffled = algo, mode, part, act_shuffled
        self.spec = algo.spec
        self.chooser = algo.context_chooser()  # None: no network chooses an action from the context (DDPG)
        self.weight = self.changed = self.dq = 0.0

    def begin_episode(self) -> None:
        self.algo.begin_episode()

    def observe(self, view: TeamView) -> dict[str, Tensor]:
        rec = self.algo.observe(view)
        context = rec["mean_action"]
        alive = int(view.alive.sum())
        if self.chooser is not None and alive:
            effect = context_effect(self.chooser, view.obs, context, view.alive, view.batch, self.mode, self.part)
            self.changed += effect["changed"] * alive
            self.dq += (0.0 if math.isnan(effect["dq"]) else effect["dq"]) * alive
            self.weight += alive
        if self.act_shuffled:
            rec = {**rec, "mean_action": shuffle_context(context, view.alive, view.batch, self.mode, self.part)}
        return rec

    def policy(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        return self.algo.policy(view, rec, explore)

    def act(self, view: TeamView, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        return self.algo.act(view, rec, explore)

    def summary(self) -> dict[str, float]:
        """``changed`` and ``dq`` over everything played so far (NaN before any step)."""
        if not self.weight:
            return {"changed": math.nan, "dq": math.nan}
        return {"changed": self.changed / self.weight, "dq": self.dq / self.weight}


def mean_interval(values: np.ndarray) -> dict[str, Any]:
    """Mean and 95 % t-interval of ``values`` (NaN bounds for fewer than two values)."""
    mean = float(values.mean())
    if len(values) < 2 or values.std() == 0:
        half = math.nan if len(values) < 2 else 0.0
    else:
        half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return {"mean": mean, "ci95": [mean - half, mean + half]}


def mirror_statistics(as_red: np.ndarray, as_blue: np.ndarray) -> dict[str, Any]:
    """Statistics of the Battle games against the shuffled self: ``as_red[i]`` and ``as_blue[i]``
    are the kill differences (intact − shuffled) of seed ``i`` with the intact model as red and as
    blue. The env draws the sides from the seed, so the two games of a seed put the intact model
    once on each side: their mean cancels the side's advantage (greedy mirror games are often
    decided by it), and the seed is the unit of the 95 % t-interval of ``kill_difference``.
    ``wins``, ``ties`` and ``losses`` count games."""
    games = np.concatenate([as_red, as_blue])
    per_seed = (as_red + as_blue) / 2
    wins, ties = int((games > 0).sum()), int((games == 0).sum())
    return {"kill_difference": mean_interval(per_seed), "wins": wins, "ties": ties, "losses": len(games) - wins - ties,
            "win_rate": wins / len(games), "win_rate_ci95": list(wilson_interval(wins, len(games))),
            "kill_differences": games.tolist(), "seed_kill_differences": per_seed.tolist()}


def context_test(model: Source, games: int = 100, part: str = "all", mode: str = "permute",
                 env_kwargs: Mapping[str, Any] | None = None, seed: int = 0, copies: int = 16,
                 device: torch.device | str = "cpu") -> dict[str, Any]:
    """Run the context-shuffle test (module docstring) on ``model`` for ``games`` games (Battle;
    an even number) or episodes (other tasks, each played intact and shuffled)."""
    if games < 2 or games % 2:
        raise ValueError(f"context_test: games={games!r}; expected an even integer >= 2 (each seed is played "
                         f"with the intact model on either team)")
    env_name, kwargs = resolve_env(model, None, env_kwargs)
    env = make_env(env_name, kwargs)
    play = dict(copies=copies, deterministic=True, device=device)
    try:
        if env_name == "battle":
            seeds = [seed + g for g in range(games // 2)]
            intact, shuffled = team_policies(env, [model, model], device, own=model)
            probe = ShuffledContext(intact, mode, part)
            against = ShuffledContext(shuffled, mode, part, act_shuffled=True)
            blue_intact = team_policies(env, [model, model], device, own=model)
            probe_blue = ShuffledContext(blue_intact[1], mode, part)
            against_red = ShuffledContext(blue_intact[0], mode, part, act_shuffled=True)
            red = play_copies(env, env_name, kwargs, [probe, against], seeds, **play)
            blue = play_copies(env, env_name, kwargs, [against_red, probe_blue], seeds, **play)
            effect = {k: float(np.mean([probe.summary()[k], probe_blue.summary()[k]])) for k in ("changed", "dq")}
            play_result = mirror_statistics(np.array([r.kills[0] - r.kills[1] for r in red]),
                                            np.array([r.kills[1] - r.kills[0] for r in blue]))
        else:
            seeds = [seed + g for g in range(games)]
            own = team_policies(env, [model] + [RANDOM] * (len(env.teams) - 1), device, own=model)
            probe = ShuffledContext(own[0], mode, part)
            intact = play_copies(env, env_name, kwargs, [probe] + own[1:], seeds, **play)
            own = team_policies(env, [model] + [RANDOM] * (len(env.teams) - 1), device, own=model)
            shuffled = play_copies(env, env_name, kwargs, [ShuffledContext(own[0], mode, part, act_shuffled=True)]
                                   + own[1:], seeds, **play)
            effect = probe.summary()
            intact_returns = np.array([r.returns[0] for r in intact])
            shuffled_returns = np.array([r.returns[0] for r in shuffled])
            play_result = {"return_intact": mean_interval(intact_returns),
                           "return_shuffled": mean_interval(shuffled_returns),
                           "return_difference": mean_interval(intact_returns - shuffled_returns)}
    finally:
        env.close()
    return {"model": describe(model), "env": env_name, "env_kwargs": kwargs, "mode": mode, "part": part,
            "games": games, "seed": seed, "changed_fraction": effect["changed"], "dq_relative": effect["dq"],
            **play_result}
