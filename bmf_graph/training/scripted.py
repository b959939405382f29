"""Battle's scripted yardstick team: attack an adjacent enemy if there is one, otherwise move
toward the nearest enemy the team sees.

It reads only what a learned Battle team reads, its own observations (plus its agents' cells,
``TeamView.pos``), so it plays through the same episode loop as any policy and in any number of
env copies. Per agent and step:

1. **Attack.** Enemies on the 8 neighbouring cells (the view's enemy-presence channel around
   the centre) are attacked, the one with the least HP first (the enemy-HP channel).
2. **Move.** Otherwise the agent takes the move whose cell is nearest (Chebyshev distance, then
   Euclidean) to its nearest enemy, never the enemy's own cell. The team pools its sight: an
   enemy any alive agent of the copy sees (view radius 6) is a target for all of them.
3. **Advance.** When the team sees no enemy, agents move toward the map centre, read from the
   normalised position features ``x / map_size, y / map_size`` (minimap mode); without them
   they stay.

Battle's 21 actions, as magent2 lays them out (row by row over the offsets ``(dx, dy)``,
``dy`` outer): moves ``0..12`` over the cells within distance 2 (6 stays), attacks ``13..20``
on the 8 neighbours. The views put row = y, column = x, the agent at the centre.
"""
from __future__ import annotations

import torch
from torch import Tensor

from bmf_graph.envs.base import TeamSpec

MOVES = torch.tensor([(dx, dy) for dy in range(-2, 3) for dx in range(-2, 3) if dx * dx + dy * dy <= 4],
                     dtype=torch.float32)
"""``(dx, dy)`` of move actions ``0..12`` (magent2's ``CircleRange(2)``)."""
ATTACKS = torch.tensor([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)],
                       dtype=torch.float32)
"""``(dx, dy)`` of attack actions ``13..20`` (magent2's ``CircleRange(1.5)`` without the centre)."""
ATTACK_BASE = len(MOVES)
NUM_ACTIONS = len(MOVES) + len(ATTACKS)
ENEMY, ENEMY_HP = 4, 5  # view channels: enemy presence, enemy HP (after obstacle, own presence, HP, minimap)


class ScriptedBattleTeam:
    """The scripted Battle team (module docstring); a policy for :func:`~bmf_graph.training.rollout.play_episodes`.

    Args:
        spec: a Battle team: view ``(H, W, 7)`` (minimap mode) or ``(H, W, 5)``, 21 actions.
    """

    def __init__(self, spec: TeamSpec):
        shape = tuple(spec.view_shape)
        if len(shape) != 3 or shape[2] not in (5, 7) or shape[0] != shape[1] or spec.num_actions != NUM_ACTIONS:
            raise ValueError(f"ScriptedBattleTeam: team {spec.name!r} has view_shape={shape}, "
                             f"num_actions={spec.num_actions}; expected a Battle team, view (H, H, 7 or 5) "
                             f"and {NUM_ACTIONS} actions")
        self.spec = spec
        self.view_size, self.channels = shape[0], shape[2]
        self.positions = shape[2] == 7  # minimap mode: the last two features are x, y / map_size

    def __repr__(self) -> str:
        return f"ScriptedBattleTeam({self.spec.name}, view={self.view_size})"

    def begin_episode(self) -> None:
        pass

    def observe(self, view) -> dict[str, Tensor]:
        return {}

    def policy(self, view, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """The one-hot ``[N, 21]`` of :meth:`act` (the team plays deterministically)."""
        return torch.nn.functional.one_hot(self.act(view, rec, explore), NUM_ACTIONS).float()

    def act(self, view, rec: dict[str, Tensor], explore: float | None) -> Tensor:
        """Actions ``[N]`` of every agent (module docstring); ``explore`` is ignored."""
        n, size, r = view.obs.shape[0], self.view_size, self.view_size // 2
        grid = view.obs[:, : size * size * self.channels].reshape(n, size, size, self.channels)
        enemy = (grid[..., ENEMY] > 0) & view.alive[:, None, None]
        near = enemy[:, r - 1:r + 2, r - 1:r + 2].reshape(n, 9)[:, [0, 1, 2, 3, 5, 6, 7, 8]]
        hp = grid[:, r - 1:r + 2, r - 1:r + 2, ENEMY_HP].reshape(n, 9)[:, [0, 1, 2, 3, 5, 6, 7, 8]]
        attack = ATTACK_BASE + torch.where(near, -hp, torch.full_like(hp, -torch.inf)).argmax(1)
        target, is_enemy = self._targets(view, enemy, r)
        move = self._move_toward(target - view.pos, is_enemy)
        return torch.where(near.any(1), attack, move)

    def _targets(self, view, enemy: Tensor, r: int) -> tuple[Tensor, Tensor]:
        """Each agent's target cell ``[N, 2]``: the nearest enemy its copy's team sees, else the
        map centre (or its own cell); and whether the target is an enemy ``[N]``."""
        n, device = view.obs.shape[0], view.obs.device
        copy = view.batch if view.batch is not None else torch.zeros(n, dtype=torch.long, device=device)
        seer, row, col = enemy.nonzero(as_tuple=True)
        seen = view.pos[seer] + torch.stack([col - r, row - r], 1).to(view.pos.dtype)
        key = torch.cat([copy[seer, None].to(seen.dtype), seen], 1).unique(dim=0)  # (copy, x, y) once each
        target = self._centre(view)
        is_enemy = torch.zeros(n, dtype=torch.bool, device=device)
        if len(key):
            gap = (view.pos[:, None, :] - key[None, :, 1:]).abs()
            dist = gap.amax(-1) + 1e-3 * gap.pow(2).sum(-1)
            dist = torch.where(copy[:, None] == key[None, :, 0].long(), dist, torch.full_like(dist, torch.inf))
            best = dist.argmin(1)
            is_enemy = torch.isfinite(dist.gather(1, best[:, None])[:, 0])
            target = torch.where(is_enemy[:, None], key[best, 1:], target)
        return target, is_enemy

    def _centre(self, view) -> Tensor:
        """The map centre ``pos / (2 * normalised pos)`` per agent; its own cell without position features."""
        if not self.positions:
            return view.pos.clone()
        norm = view.obs[:, -2:]
        size = torch.where(norm > 0, view.pos / norm.clamp_min(1e-6), torch.zeros_like(norm)).amax(1, keepdim=True)
        return torch.where(size > 0, size / 2, view.pos).floor()

    @staticmethod
    def _move_toward(delta: Tensor, is_enemy: Tensor) -> Tensor:
        """The move action ``[N]`` leaving the agent nearest ``delta`` away (Chebyshev, then
        Euclidean); an enemy's own cell is never chosen (it is occupied)."""
        rest = delta[:, None, :] - MOVES.to(delta.device)[None]
        cost = rest.abs().amax(-1) + 1e-3 * rest.pow(2).sum(-1)
        onto = (rest.abs().sum(-1) == 0) & is_enemy[:, None]
        return torch.where(onto, torch.full_like(cost, torch.inf), cost).argmin(1)
