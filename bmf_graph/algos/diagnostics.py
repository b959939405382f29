r"""Does a learner use its context, and are its networks alive?

The context of an agent (the mean action of MF, GAT-MF's attention mean, BMF's
:math:`[\tilde a_i \,\|\, \tilde a_{m(i)}]`) is the one input that tells the methods of a family
apart, so every learner measures how much it moves its decisions: the **context effect** is the
fraction of alive agents whose greedy action changes when the contexts are permuted across the
alive agents of each team (or zeroed), on the same observations,

.. math::
    \mathrm{effect} = \frac{1}{|V|} \sum_{i \in V}
        \big[\arg\max_a Q(o_i, a, c_i) \ne \arg\max_a Q(o_i, a, c_{\sigma(i)})\big],

with :math:`\sigma` a random permutation within each team and env copy. A permuted context still
breaks ties the way some context would; a zeroed one removes it, so the two modes differ where the
context acts only as a tie-breaker. ``dq`` is the mean :math:`|\Delta Q|` relative to the mean
spread :math:`\max_a Q - \min_a Q`. :class:`Diagnostics` logs ``charts/context_effect`` (permuted),
``charts/context_effect_zero`` (zeroed: the only mode that moves a team-wide mean, the same for
every agent of a team) and
``charts/dead_units_{network}`` (:func:`~bmf_graph.algos.networks.dead_units`) every
``algo.diagnostics_every`` gradient steps on a held batch of stored records, and stops training
(:class:`DeadNetwork`) when a hidden layer of a network has no live unit left (its output is then
a constant).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from bmf_graph.algos.base import NonFiniteLoss
from bmf_graph.algos.networks import dead_fraction, live_units

if TYPE_CHECKING:
    from bmf_graph.algos.base import Algorithm

HELD_RECORDS = 8
"""Stored team records in the held batch the diagnostics are measured on."""

MODES = ("permute", "zero")
PARTS = ("all", "intra", "inter")


class DeadNetwork(NonFiniteLoss):
    """A network has no live hidden unit left: its output no longer depends on its input.
    Training stops on it as on a non-finite loss, keeping the last good checkpoint."""


def context_columns(dim: int, part: str) -> slice:
    """The context columns ``part`` names: ``all``, or BMF's ``intra`` (first half) / ``inter``
    (second half) of :math:`[\\tilde a_i \\,\\|\\, \\tilde a_{m(i)}]`."""
    if part not in PARTS:
        raise ValueError(f"context_columns: part={part!r} is not valid; expected one of {', '.join(PARTS)}")
    if part == "all":
        return slice(0, dim)
    if dim % 2:
        raise ValueError(f"context_columns: part={part!r} needs BMF's two-part context; this one has {dim} columns")
    return slice(0, dim // 2) if part == "intra" else slice(dim // 2, dim)


def shuffle_context(context: Tensor, alive: Tensor, batch: Tensor | None = None, mode: str = "permute",
                    part: str = "all", generator: torch.Generator | None = None) -> Tensor:
    """``context`` ``[M, D]`` with the columns of ``part`` permuted at random among the alive rows
    of each ``batch`` entry (``mode="permute"``) or zeroed for every row (``mode="zero"``); the other
    columns and the dead rows as they were."""
    if mode not in MODES:
        raise ValueError(f"shuffle_context: mode={mode!r} is not valid; expected one of {', '.join(MODES)}")
    cols = context_columns(context.shape[-1], part)
    out = context.clone()
    if mode == "zero":
        out[:, cols] = 0
        return out
    rows = alive.nonzero().squeeze(-1)
    entry = (batch if batch is not None else torch.zeros_like(alive, dtype=torch.long))[rows].to(torch.float64)
    noise = torch.rand(rows.shape[0], generator=generator, dtype=torch.float64).to(rows.device)
    order = torch.argsort(entry)                       # rows grouped by entry
    shuffled = torch.argsort(entry + 0.5 * noise)      # the same groups, in random order within each
    out[rows[order], cols] = context[rows[shuffled], cols]
    return out


@torch.no_grad()
def context_effect(network: nn.Module, obs: Tensor, context: Tensor, alive: Tensor, batch: Tensor | None = None,
                   mode: str = "permute", part: str = "all", generator: torch.Generator | None = None) -> dict[str, float]:
    """``changed``: the fraction of alive rows whose greedy output of ``network(obs, context)``
    (``[M, A]``) changes when the context is shuffled (:func:`shuffle_context`); ``dq``: the
    mean ``|Δ output|`` over the alive rows and outputs over their mean spread ``max - min``."""
    before = network(obs, context)[alive]
    after = network(obs, shuffle_context(context, alive, batch, mode, part, generator))[alive]
    if before.shape[0] == 0:
        return {"changed": math.nan, "dq": math.nan}
    spread = (before.amax(-1) - before.amin(-1)).mean()
    return {"changed": float((before.argmax(-1) != after.argmax(-1)).float().mean()),
            "dq": float((after - before).abs().mean() / spread) if spread > 0 else math.nan}


class Diagnostics:
    """Context effect and dead units of one learner, measured on a held batch of its stored
    records every ``algo.diagnostics_every`` gradient steps (module docstring)."""

    def __init__(self, learner: "Algorithm"):
        self.learner = learner
        self.every = learner.cfg.diagnostics_every
        self.held: dict[str, Tensor] | None = None

    def maybe_measure(self, updates: int) -> dict[str, float]:
        """The measurements when ``updates`` is a multiple of ``diagnostics_every``, else ``{}``."""
        if not self.every or updates % self.every:
            return {}
        if self.held is None:
            self.held, _ = self.learner.buffer.sample(HELD_RECORDS)
        return self.measure(self.held)

    @torch.no_grad()
    def measure(self, rec: dict[str, Tensor]) -> dict[str, float]:
        """``charts/context_effect`` and ``charts/dead_units_{name}`` on whole team records ``rec``."""
        learner = self.learner
        b, n = rec["alive"].shape
        alive = rec["alive"].reshape(-1)
        obs = rec["obs"].reshape(b * n, -1)[alive]
        context = learner.interaction.mean_action(rec).reshape(b * n, -1)
        batch = torch.arange(b, device=alive.device).repeat_interleave(n)
        logs: dict[str, float] = {}
        for name, (network, reads_context) in learner.diagnosed_networks().items():
            masks = live_units(network, obs, context[alive] if reads_context else None)
            logs[f"charts/dead_units_{name}"] = dead_fraction(masks)
            dead = [i for i, m in enumerate(masks) if not m.any()]
            if dead:
                raise DeadNetwork(f"the {name} network of team {learner.spec.name!r} has no live unit left in its "
                                  f"hidden layer {dead[0] + 1} of {len(masks)} (every ReLU is 0 on the held batch, so "
                                  f"its output no longer depends on the input); stopping")
        chooser = learner.context_chooser()
        if chooser is not None and context.shape[-1]:
            for mode, key in (("permute", "charts/context_effect"), ("zero", "charts/context_effect_zero")):
                effect = context_effect(chooser, rec["obs"].reshape(b * n, -1), context, alive, batch, mode)
                logs[key] = effect["changed"]
        return logs
