r"""The networks every algorithm builds its critic, value and actor from (``algo.network``).

All methods of a family share one network and differ only in its **context branch**, the input
through which the interaction's critic input :math:`\bar a_i` (the mean action of MF, GAT-MF's
attention mean, BMF's :math:`[\tilde a_i \,\|\, \tilde a_{m(i)}]`) enters:

``branched`` (default) -- MFRL's battle model (``mlii/mfrl``, ``examples/battle_model/algo/base.py``)
with its view trunk replaced by a dense layer:

.. math::
    h = \mathrm{relu}\big(W_5\, \mathrm{relu}(W_4 [\,t(v) \,\|\, f_{32}(x) \,\|\, c_{32}(c_{64}(\bar a))\,])\big),
    \qquad \mathrm{out} = W_6 h

with :math:`t(v)` = dense 256 on the flattened view (``trunk="mlp"``) or MFRL's two 3×3 conv
layers of 32 channels (no padding) then dense 256 (``trunk="conv"``), :math:`f_{32}` a dense
32 on the feature vector, the context branch dense 64 → dense 32, :math:`W_4` 128 units and
:math:`W_5` 64 units; ReLU everywhere. A task with flat observations (no view: Firefighter,
VMAS) sends the whole observation through the dense 256 trunk. With ``context_parts`` (BMF's
two halves under ``algo.context_branches=split``) each part has its own 64 → 32 branch and
:math:`W_4` reads their concatenation.
``reference`` -- exactly MFRL's model: the ``branched`` network with the conv trunk.
``mlp`` -- v2's plain network, kept as a named variant: the flat observation through one dense
layer of ``algo.hidden`` units, joined with the raw context in front of a two-layer MLP.

:func:`dead_units` measures the fraction of hidden ReLUs that are zero for every input of a
batch (logged as ``charts/dead_units_*`` during training); :func:`live_units` gives them per layer.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bmf_graph.config.checks import NETWORKS
from bmf_graph.envs.base import TeamSpec

TRUNK_UNITS, FEATURE_UNITS, CONTEXT_UNITS, JOINT_UNITS, OUT_UNITS = 256, 32, (64, 32), 128, 64
"""MFRL's layer widths: view trunk, feature embedding, context branch, the two joint layers."""

CONV_CHANNELS = 32
"""Channels of each of MFRL's two 3×3 conv layers."""


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Two hidden ReLU layers."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out_dim))


class ConvTrunk(nn.Module):
    """MFRL's view trunk: two 3×3 conv layers of 32 channels without padding, then dense 256.
    Reads the flat view ``[..., H*W*C]`` (channels last, as the env lays it out)."""

    def __init__(self, view_shape: tuple[int, ...]):
        super().__init__()
        h, w, c = view_shape
        self.view_shape = (h, w, c)
        self.conv = nn.Sequential(nn.Conv2d(c, CONV_CHANNELS, 3), nn.ReLU(),
                                  nn.Conv2d(CONV_CHANNELS, CONV_CHANNELS, 3), nn.ReLU())
        self.dense = nn.Sequential(nn.Linear(CONV_CHANNELS * (h - 4) * (w - 4), TRUNK_UNITS), nn.ReLU())

    def forward(self, view: Tensor) -> Tensor:
        lead = view.shape[:-1]
        image = view.reshape(-1, *self.view_shape).permute(0, 3, 1, 2)
        return self.dense(self.conv(image).flatten(1)).reshape(*lead, TRUNK_UNITS)


def context_branch(size: int) -> nn.Sequential:
    """MFRL's embedding of the mean action: dense 64 then dense 32, ReLU after each."""
    return nn.Sequential(nn.Linear(size, CONTEXT_UNITS[0]), nn.ReLU(), nn.Linear(CONTEXT_UNITS[0], CONTEXT_UNITS[1]),
                         nn.ReLU())


class BranchedNetwork(nn.Module):
    """MFRL's battle model over a flat observation ``[view.flatten() ‖ features]`` and a
    context (module docstring); ``context_dim = 0`` drops the context branch.

    Args:
        spec: the team (view shape and feature size split the observation).
        context_dim: size of the context; 0 for methods without one.
        out_dim: outputs (Q-values per action, policy logits, or 1 for a value).
        trunk: ``"mlp"`` (dense 256 on the flat view) or ``"conv"`` (MFRL's conv layers).
        context_parts: sizes of the context's parts, summing to ``context_dim``, each read by
            its own branch; empty: one branch over the whole context.
    """

    def __init__(self, spec: TeamSpec, context_dim: int, out_dim: int, trunk: str = "mlp",
                 context_parts: tuple[int, ...] = ()):
        super().__init__()
        if context_parts and sum(context_parts) != context_dim:
            raise ValueError(f"BranchedNetwork: context_parts={context_parts} sum to {sum(context_parts)}; expected "
                             f"context_dim={context_dim}")
        self.view_dim = spec.obs_dim - spec.feature_dim if spec.view_shape else 0
        self.context_dim = context_dim
        if self.view_dim:
            if trunk == "conv":
                self.view = ConvTrunk(spec.view_shape)
            else:
                self.view = nn.Sequential(nn.Linear(self.view_dim, TRUNK_UNITS), nn.ReLU())
            self.feature = nn.Sequential(nn.Linear(spec.feature_dim, FEATURE_UNITS), nn.ReLU())
            joint = TRUNK_UNITS + FEATURE_UNITS
        else:  # flat observations: the whole observation through the dense trunk
            self.view = nn.Sequential(nn.Linear(spec.obs_dim, TRUNK_UNITS), nn.ReLU())
            self.feature = None
            joint = TRUNK_UNITS
        self.context_parts = tuple(context_parts) if len(context_parts) > 1 else ()
        if self.context_parts:
            self.context = nn.ModuleList(context_branch(size) for size in self.context_parts)
            joint += CONTEXT_UNITS[1] * len(self.context_parts)
        elif context_dim:
            self.context = context_branch(context_dim)
            joint += CONTEXT_UNITS[1]
        self.head = nn.Sequential(nn.Linear(joint, JOINT_UNITS), nn.ReLU(), nn.Linear(JOINT_UNITS, OUT_UNITS),
                                  nn.ReLU(), nn.Linear(OUT_UNITS, out_dim))

    def forward(self, obs: Tensor, context: Tensor | None = None) -> Tensor:
        if self.feature is None:
            parts = [self.view(obs)]
        else:
            parts = [self.view(obs[..., :self.view_dim]), self.feature(obs[..., self.view_dim:])]
        if self.context_parts:
            parts += [branch(part) for branch, part in zip(self.context, context.split(self.context_parts, dim=-1))]
        elif self.context_dim:
            parts.append(self.context(context))
        return self.head(torch.cat(parts, dim=-1))


class FlatNetwork(nn.Module):
    """v2's network (``algo.network=mlp``): ``mlp([relu(W o) ‖ context])``."""

    def __init__(self, obs_dim: int, context_dim: int, out_dim: int, hidden: int):
        super().__init__()
        self.context_dim = context_dim
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU())
        self.head = mlp(hidden + context_dim, hidden, out_dim)

    def forward(self, obs: Tensor, context: Tensor | None = None) -> Tensor:
        trunk = self.trunk(obs)
        return self.head(torch.cat([trunk, context], dim=-1) if self.context_dim else trunk)


def make_network(spec: TeamSpec, network: str, context_dim: int, out_dim: int, hidden: int,
                 context_parts: tuple[int, ...] = ()) -> nn.Module:
    """The ``algo.network`` network ``(obs, context) -> [..., out_dim]`` for team ``spec``;
    ``context_parts`` gives each part of the context its own branch (not for ``mlp``)."""
    if network == "mlp":
        return FlatNetwork(spec.obs_dim, context_dim, out_dim, hidden)
    if network not in NETWORKS:
        raise ValueError(f"make_network: algo.network={network!r} is not valid; expected one of {', '.join(NETWORKS)}")
    if network == "reference" and len(spec.view_shape) != 3:
        raise ValueError(f"make_network: algo.network='reference' needs a spatial view (H, W, C); team "
                         f"{spec.name!r} has view shape {spec.view_shape} (use branched)")
    return BranchedNetwork(spec, context_dim, out_dim, trunk="conv" if network == "reference" else "mlp",
                           context_parts=context_parts)


@torch.no_grad()
def live_units(network: nn.Module, *inputs: Tensor) -> list[Tensor]:
    """One bool mask per hidden ReLU layer of ``network`` (in call order): which of its units
    are positive for at least one row of ``inputs`` (a conv channel counts as one unit, live
    when positive at any position). Layers that saw no row are left out."""
    outputs: list[Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
             for m in network.modules() if isinstance(m, nn.ReLU)]
    try:
        network(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    masks = []
    for out in outputs:
        if out.numel() == 0:
            continue
        if out.dim() == 4:  # [B, C, H, W] conv activations
            masks.append((out > 0).transpose(0, 1).reshape(out.shape[1], -1).any(1))
        else:
            masks.append((out > 0).reshape(-1, out.shape[-1]).any(0))
    return masks


def dead_units(network: nn.Module, *inputs: Tensor) -> float:
    """Fraction of the hidden ReLU units of ``network`` that are 0 for every row of ``inputs``
    (:func:`live_units`); NaN when the network has no ReLU or the batch is empty."""
    return dead_fraction(live_units(network, *inputs))


def dead_fraction(masks: list[Tensor]) -> float:
    """Fraction of dead units over the layers' live masks of :func:`live_units`."""
    total = sum(m.numel() for m in masks)
    return sum(int((~m).sum()) for m in masks) / total if total else math.nan


def parameter_count(network: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)
