"""The learned group graph of a BMF model: who is grouped with whom, and how groups attend.

:func:`capture_groups` plays an episode and records, at chosen steps, the evaluated team's
agent positions, groups, the intra-group radius edges (radius-graph edges whose endpoints
share a group; docs/method.md) and the inter-group attention weights ``w_mn``
(step 3, from the recorded ``h_grp``, ``a_grp``, ``count``). :func:`draw_snapshot` draws one
snapshot on a matplotlib axis: agents coloured by group, intra-group edges in the group
colour, group nodes at their members' mean position (area growing with the group's share of
the team), and an arrow ``n -> m`` per pair whose width and opacity grow with ``w_mn`` (group
``m`` reads ``a_inter_m = sum_n w_mn a_n``), drawn above the nodes. Other teams are grey;
Firefighter houses are squares coloured by fire level, a scale no group colour falls on.
:func:`legend_handles` explains all of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from bmf_graph.algos.bmf import BiLevelInteraction  # noqa: E402
from bmf_graph.training.checkpoint import seed_everything  # noqa: E402
from bmf_graph.envs.base import BatchedEnv  # noqa: E402
from bmf_graph.algos.base import scope_graph  # noqa: E402
from bmf_graph.training.rollout import play_episode  # noqa: E402

__all__ = ["GroupSnapshot", "Drawn", "capture_groups", "draw_snapshot", "group_colors", "legend_handles"]


@dataclass
class GroupSnapshot:
    """The evaluated team at one step (alive agents only, indices into ``pos``)."""

    step: int
    pos: np.ndarray
    """``[N, 2]`` positions of the alive agents."""
    group: np.ndarray
    """``[N]`` group id of each."""
    edges: np.ndarray
    """``[2, E]`` intra-group radius edges (source, target)."""
    count: np.ndarray
    """``[K]`` members per group."""
    group_pos: np.ndarray
    """``[K, 2]`` mean member position (NaN for empty groups)."""
    weight: np.ndarray
    """``[K, K]`` inter-group attention, ``weight[m, n] = w_mn``."""
    others: np.ndarray
    """``[M, 2]`` positions of alive agents of the other teams."""
    houses: tuple[np.ndarray, np.ndarray, int] | None = None
    """Firefighter: house positions ``[H, 2]``, fire levels ``[H]`` and the level drawn darkest."""
    map_size: int | None = None
    """Grid tasks: side of the map (positions are cells, row = y, drawn downwards)."""

    @property
    def num_groups(self) -> int:
        """Non-empty groups."""
        return int((self.count > 0).sum())


@dataclass
class Drawn:
    """The artists :func:`draw_snapshot` added, for checks and styling."""

    agents: list[PathCollection] = field(default_factory=list)
    """One scatter per non-empty group."""
    edges: LineCollection | None = None
    group_nodes: PathCollection | None = None
    arrows: list[FancyArrowPatch] = field(default_factory=list)
    """One per drawn pair ``(n -> m)``; ``arrow_weights`` holds their ``w_mn``."""
    arrow_weights: list[float] = field(default_factory=list)
    others: PathCollection | None = None
    houses: PathCollection | None = None
    """Firefighter: the houses, coloured by fire level (a colour bar reads them)."""


def bmf_interaction(model: Any) -> BiLevelInteraction:
    """The model's :class:`BiLevelInteraction`, or a ``ValueError`` naming its algorithm."""
    interaction = getattr(model, "interaction", None)
    if not isinstance(interaction, BiLevelInteraction):
        name = getattr(getattr(model, "cfg", None), "name", type(model).__name__)
        raise ValueError(f"group graph: the model is {name!r}; expected a BMF model (bmf_q or bmf_ac) with groups")
    return interaction


def snapshot(t: int, interaction: BiLevelInteraction, view: Any, rec: dict, others: list[np.ndarray],
             houses: tuple[np.ndarray, np.ndarray, int] | None, map_size: int | None) -> GroupSnapshot:
    """A :class:`GroupSnapshot` from one team's view and its BMF record."""
    alive = view.alive
    slots = alive.nonzero().view(-1)
    group = rec["group"][slots]
    edges = scope_graph(view.pos, interaction.radius, alive)
    edges = edges[:, rec["group"][edges[0]] == rec["group"][edges[1]]]
    index = torch.full((alive.numel(),), -1, dtype=torch.long, device=alive.device)
    index[slots] = torch.arange(slots.numel(), device=alive.device)
    with torch.no_grad():
        _, weight = interaction.attention.attend(rec["h_grp"], rec["a_grp"], rec["count"], return_weight=True)
        weight = weight.to_dense()
    pos = view.pos[slots].cpu().numpy()
    k = rec["count"].numel()
    count = rec["count"].cpu().numpy()
    sums = np.zeros((k, 2))
    np.add.at(sums, group.cpu().numpy(), pos)
    with np.errstate(invalid="ignore", divide="ignore"):
        group_pos = np.where(count[:, None] > 0, sums / np.maximum(count, 1)[:, None], np.nan)
    return GroupSnapshot(t, pos, group.cpu().numpy(), index[edges].cpu().numpy(), count, group_pos,
                         weight.cpu().numpy(), np.concatenate(others) if others else np.zeros((0, 2)), houses, map_size)


def capture_groups(model: Any, env: BatchedEnv, policies: Sequence[Any], steps: Sequence[int] | None,
                   seed: int = 0, team: int = 0, deterministic: bool = True,
                   device: torch.device | str = "cpu") -> list[GroupSnapshot]:
    """Play one seeded episode with ``policies`` (``policies[team]`` is ``model``) and record
    a snapshot at each of ``steps`` (``None``: every step). Raises ``ValueError`` when the
    episode ends before a requested step."""
    interaction = bmf_interaction(model)
    if policies[team] is not model:
        raise ValueError(f"capture_groups: policies[{team}] must be the model whose groups are drawn")
    wanted = None if steps is None else sorted(set(int(s) for s in steps))
    if wanted is not None and (not wanted or wanted[0] < 0):
        raise ValueError(f"capture_groups: steps={list(steps)!r}; expected step indices >= 0")
    map_size = getattr(env, "map_size", None)
    shots: list[GroupSnapshot] = []

    def on_step(t: int, views: list, recs: list, actions: list) -> None:
        if wanted is not None and t not in wanted:
            return
        others = [v.pos[v.alive].cpu().numpy() for i, v in enumerate(views) if i != team]
        houses = (env.house_positions(), env.levels, env.fire_scale) if hasattr(env, "house_positions") else None
        shots.append(snapshot(t, interaction, views[team], recs[team], others, houses, map_size))

    seed_everything(seed)
    with torch.no_grad():
        result = play_episode(env, policies, device, seed, max_steps=None if wanted is None else wanted[-1] + 1,
                              explore=None if deterministic else 1.0, on_step=on_step)
    if wanted is not None and len(shots) < len(wanted):
        raise ValueError(f"capture_groups: steps={wanted} but the episode (seed {seed}) ended after "
                         f"{result.steps} steps; choose steps < {result.steps}")
    return shots


GROUP_PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#637939", "#7b4173", "#393b79", "#98df8a",
                 "#aec7e8", "#c5b0d5", "#3a7d7c", "#8ca252", "#a55194", "#00a087", "#004c6d", "#5254a3")
"""Group colours: blues, greens, purples and teals only, so that no group looks like a fire level
(Firefighter's houses, yellow to red), the grey of the other team or the red/blue of a task's
own rendering; distinct enough side by side for 16 groups."""

OTHERS_COLOR = "0.6"
"""The other teams' agents."""

WEIGHT_SCALE = (0.25, 0.5, 1.0)
"""Attention weights shown in the legend's arrow-width scale."""

SHARE_SCALE = (0.1, 0.5)
"""Shares of the team shown in the legend's group-node size scale."""


def group_colors(num_groups: int) -> np.ndarray:
    """``[K, 4]`` RGBA colours, fixed per group id (ids stay stable across regroupings): the
    :data:`GROUP_PALETTE`, then hues between green and purple beyond 16 groups."""
    from matplotlib.colors import hsv_to_rgb, to_rgba

    colors = [to_rgba(c) for c in GROUP_PALETTE[:num_groups]]
    extra = num_groups - len(colors)
    colors += [(*hsv_to_rgb((0.3 + 0.5 * i / max(extra, 1), 0.65, 0.7)), 1.0) for i in range(extra)]
    return np.array(colors).reshape(num_groups, 4)


def arrow_width(w: float) -> float:
    """Line width (points) of the arrow of attention weight ``w``."""
    return 0.4 + 5.0 * w


def node_size(share: np.ndarray | float) -> np.ndarray | float:
    """Marker area (points²) of a group node holding ``share`` of the team's alive agents."""
    return 50 + 350 * np.asarray(share)


def plural(count: int, noun: str) -> str:
    """``"1 agent"``, ``"3 agents"``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def snapshot_title(snap: GroupSnapshot) -> str:
    """``"t = 20: 4 groups, 60 agents"``."""
    return f"t = {snap.step}: {plural(snap.num_groups, 'group')}, {plural(len(snap.pos), 'agent')}"


def _limits(snap: GroupSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corner of the drawn area: the whole map of a grid task, else every
    agent and house with a margin."""
    if snap.map_size is not None:
        return np.full(2, -0.5), np.full(2, snap.map_size - 0.5)
    points = [snap.pos, snap.others] + ([snap.houses[0]] if snap.houses is not None else [])
    points = np.concatenate([p.reshape(-1, 2) for p in points])
    if not len(points):
        return np.zeros(2), np.ones(2)
    lo, hi = points.min(0), points.max(0)
    margin = 0.06 * max(float((hi - lo).max()), 1e-6)
    return lo - margin, hi + margin


def draw_snapshot(ax: plt.Axes, snap: GroupSnapshot, min_weight: float = 0.0, title: bool = True) -> Drawn:
    """Draw one snapshot on ``ax`` (equal aspect, the whole map of a grid task); arrows only for
    ``w_mn > min_weight``, drawn above the nodes they join."""
    drawn, colors = Drawn(), group_colors(len(snap.count))
    if snap.houses is not None:
        pos, level, top = snap.houses
        drawn.houses = ax.scatter(pos[:, 0], pos[:, 1], s=40, marker="s", c=level, cmap="YlOrRd", vmin=0, vmax=top,
                                  edgecolors="0.6", linewidths=0.5, zorder=1)
    if len(snap.others):
        drawn.others = ax.scatter(snap.others[:, 0], snap.others[:, 1], s=10, c=OTHERS_COLOR, zorder=2,
                                  label="other team")
    if snap.edges.shape[1]:
        segments = np.stack([snap.pos[snap.edges[0]], snap.pos[snap.edges[1]]], axis=1)
        drawn.edges = LineCollection(segments, colors=colors[snap.group[snap.edges[1]]], linewidths=0.6,
                                     alpha=0.5, zorder=3)
        ax.add_collection(drawn.edges)
    present = np.flatnonzero(snap.count > 0)
    for m in present:
        members = snap.pos[snap.group == m]
        drawn.agents.append(ax.scatter(members[:, 0], members[:, 1], s=14, color=colors[m], zorder=4,
                                       label=f"group {m}"))
    share = snap.count / max(int(snap.count.sum()), 1)
    if len(present):
        gp = snap.group_pos[present]
        drawn.group_nodes = ax.scatter(gp[:, 0], gp[:, 1], s=node_size(share[present]), color=colors[present],
                                       edgecolors="black", linewidths=1.2, zorder=5)
    radius = np.sqrt(node_size(share)) / 2  # marker radius in points: arrows stop at the node's rim
    for m in present:
        for n in present:
            w = float(snap.weight[m, n])
            if m == n or w <= min_weight:
                continue
            arrow = FancyArrowPatch(snap.group_pos[n], snap.group_pos[m], arrowstyle="-|>", mutation_scale=10,
                                    connectionstyle="arc3,rad=0.15", linewidth=arrow_width(w),
                                    shrinkA=radius[n] + 1, shrinkB=radius[m] + 1,
                                    color=colors[n], alpha=0.25 + 0.75 * w, zorder=6)
            ax.add_patch(arrow)
            drawn.arrows.append(arrow)
            drawn.arrow_weights.append(w)
    lo, hi = _limits(snap)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim((hi[1], lo[1]) if snap.map_size is not None else (lo[1], hi[1]))  # grid rows run downwards
    ax.set_aspect("equal")
    unit = "cells" if snap.map_size is not None else "layout units" if snap.houses is not None else "world units"
    ax.set_xlabel(f"x ({unit})", fontsize=8)
    ax.set_ylabel(f"y ({unit})", fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(snapshot_title(snap), fontsize=9)
    return drawn


def legend_handles(snaps: Sequence[GroupSnapshot]) -> list[Any]:
    """Legend entries for panels of ``snaps``: each group drawn (its colour), the other team,
    the intra-group edges, the group-node size scale and the arrow-width scale of ``w_mn``."""
    from matplotlib.lines import Line2D

    k = max(len(s.count) for s in snaps)
    colors = group_colors(k)
    drawn = sorted({int(m) for s in snaps for m in np.flatnonzero(s.count > 0)})
    handles = [Line2D([], [], linestyle="", marker="o", markersize=5, color=colors[m], label=f"group {m}")
               for m in drawn]
    if any(len(s.others) for s in snaps):
        handles.append(Line2D([], [], linestyle="", marker="o", markersize=4, color=OTHERS_COLOR, label="other team"))
    handles.append(Line2D([], [], color="0.3", linewidth=0.6, alpha=0.6, label="intra-group edge (within r)"))
    for share in SHARE_SCALE:
        handles.append(Line2D([], [], linestyle="", marker="o", markersize=float(np.sqrt(node_size(share))),
                              markerfacecolor="white", markeredgecolor="black",
                              label=f"group node, {share:.0%} of the team"))
    for w in WEIGHT_SCALE:
        handles.append(Line2D([], [], color="0.3", linewidth=arrow_width(w), alpha=0.25 + 0.75 * w,
                              label=f"attention n → m, w = {w:g}"))
    return handles
