"""The batched array interface every bmf_graph environment offers the trainer.

The PettingZoo ``ParallelEnv`` of each task is the compatibility face; training reads
whole teams as arrays instead, one :class:`TeamStep` per team per step. Agents keep a
fixed slot for the whole episode: a dead agent's slot stays, masked by ``alive``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class TeamSpec:
    """Static description of one team (all its agents share spaces and parameters).

    Attributes:
        name: team name, e.g. ``"red"``, ``"predator"``, ``"firefighter"``.
        num_agents: number of slots ``N`` (agents at episode start).
        view_shape: shape of one agent's spatial view ``(H, W, C)``; ``()`` if none.
        feature_dim: length of one agent's feature vector.
        num_actions: size of the discrete action space, or the length ``A`` of an action
            vector when ``action_range`` is set.
        action_range: ``(low, high)`` of a continuous action space ``Box(low, high, (A,))``
            (every component in the same range); ``None``: discrete actions.
    """

    name: str
    num_agents: int
    view_shape: tuple[int, ...]
    feature_dim: int
    num_actions: int
    action_range: tuple[float, float] | None = None

    @property
    def continuous(self) -> bool:
        """Actions are vectors in ``Box(*action_range, (num_actions,))``."""
        return self.action_range is not None

    @property
    def obs_dim(self) -> int:
        """Length of the flat observation ``[view.flatten(), feature]``."""
        view = int(np.prod(self.view_shape, dtype=np.int64)) if self.view_shape else 0
        return view + self.feature_dim


@dataclass
class TeamStep:
    """One team's arrays after ``reset`` or ``step``.

    Attributes:
        view: ``[N, *view_shape]`` float32, zeros in dead slots (``[N, 0]`` if no view).
        feature: ``[N, feature_dim]`` float32, zeros in dead slots.
        pos: ``[N, 2]`` float32 positions; dead slots keep their last position.
        alive: ``[N]`` bool, alive after this step.
        reward: ``[N]`` float32 reward of the step just taken (zeros after ``reset``); an
            agent that died during the step still receives its reward here.
        shared_reward: the task gives one team reward per step and every slot of ``reward``
            holds it (Firefighter); the team's reward is then that value, not the sum.
    """

    view: np.ndarray
    feature: np.ndarray
    pos: np.ndarray
    alive: np.ndarray
    reward: np.ndarray
    shared_reward: bool = False

    def team_reward(self) -> float:
        """The team's reward for the step: ``reward.sum()`` over slots, or the one shared value
        when ``shared_reward``. A team's return is the sum of this over the episode's steps."""
        return float(self.reward[0]) if self.shared_reward else float(self.reward.sum())

    def obs(self, out: np.ndarray | None = None) -> np.ndarray:
        """Flat observations ``[N, obs_dim]``: the view flattened, then the features; written
        into ``out`` (e.g. rows of a larger array) when given."""
        n = self.alive.shape[0]
        if out is None:
            return np.concatenate([self.view.reshape(n, -1), self.feature], axis=1)
        split = out.shape[1] - self.feature.shape[1]
        out[:, :split] = self.view.reshape(n, -1)
        out[:, split:] = self.feature
        return out


class BatchedEnv(ABC):
    """Array-per-team environment used by the trainer.

    Subclasses set ``teams`` (a tuple of :class:`TeamSpec`) and ``max_steps``.
    """

    teams: tuple[TeamSpec, ...]
    max_steps: int

    @abstractmethod
    def reset(self, seed: int | None = None) -> list[TeamStep]:
        """Start an episode; one :class:`TeamStep` per team, in ``teams`` order."""

    @abstractmethod
    def step(self, actions: Sequence[np.ndarray]) -> tuple[list[TeamStep], bool, bool, dict[str, Any]]:
        """Advance one step.

        Args:
            actions: one ``[N_t]`` integer array per team, or ``[N_t, A]`` float action vectors
                for a continuous team (entries of dead slots are ignored).

        Returns:
            ``(team_steps, terminated, truncated, info)``; ``info`` holds per-team counters
            such as ``"kills"`` (a list, one int per team, for this step) where they apply.
        """

    @abstractmethod
    def render(self) -> np.ndarray:
        """An RGB frame ``[H, W, 3]`` uint8 of the current state."""

    def close(self) -> None:
        """Release native resources (no-op by default)."""
