"""The fire dynamics of :mod:`bmf_graph.envs.firefighter`, one step for all houses at once.

``rules="paper"`` (the paper's cited source, Jiang & Amato 2021): with ``n`` firefighters at
a house and ``b`` = a neighbouring house burns (level > 0), all from the levels *before* the
step:

* ``n >= 2`` -> level 0;
* ``b``: +1 with probability 0.8 and, when ``n = 1``, independently -1 with probability 0.6
  (whether the house burns or not);
* burning, not ``b``: +1 with probability 0.4, then -1 surely when ``n = 1``;
* not burning, not ``b``: stays 0.

Levels are clipped at 0 and have no cap.

``rules="ffg"`` (the variant this project used first, after FireFightingGraph): ``n >= 2`` ->
0; ``n = 1`` -> a burning house drops one level with probability 1 (not ``b``) or 0.6
(``b``); ``n = 0`` -> a burning house rises with probability 0.8 (``b``) or 0.4, capped at
``max_fire``, and a house at 0 catches fire with probability 0.8 if ``b``.
"""
from __future__ import annotations

import numpy as np

RULES = ("paper", "ffg")
START_LEVEL = 3

# rules="ffg": probability that a house changes level this step, indexed [min(n, 1), burning, b];
# with no firefighter a change is +1 (or catching fire), with one it is -1.
_FFG_P_CHANGE = np.array([[[0.0, 0.8], [0.4, 0.8]],
                          [[0.0, 0.0], [1.0, 0.6]]])


def neighbour_burns(levels: np.ndarray, ring: bool) -> np.ndarray:
    """``[H]`` bool: house ``h - 1`` or ``h + 1`` (mod ``H`` on a ring) has level > 0."""
    burning = levels > 0
    b = np.zeros(len(levels), bool)
    b[1:] |= burning[:-1]
    b[:-1] |= burning[1:]
    if ring:
        b[0] |= burning[-1]
        b[-1] |= burning[0]
    return b


def paper_transition(levels: np.ndarray, n: np.ndarray, b: np.ndarray, u_rise: np.ndarray,
                     u_drop: np.ndarray) -> np.ndarray:
    """Next levels under ``rules="paper"``, all houses at once from the pre-step state.

    ``n``: firefighters per house; ``b``: a neighbour burns; ``u_rise``, ``u_drop``: uniform
    draws in [0, 1) per house. A house rises by one with probability 0.8 if ``b``, else 0.4
    if it burns, else 0; it drops by one when ``n = 1`` with probability 0.6 if ``b``, else
    surely if it burns; then the level is clipped at 0, and ``n >= 2`` sets it to 0.
    """
    burning = levels > 0
    rise = u_rise < np.where(b, 0.8, np.where(burning, 0.4, 0.0))
    drop = (n == 1) & np.where(b, u_drop < 0.6, burning)
    new = np.maximum(levels + rise - drop, 0)
    new[n >= 2] = 0
    return new


def ffg_transition(levels: np.ndarray, n: np.ndarray, b: np.ndarray, u: np.ndarray,
                   max_fire: int) -> np.ndarray:
    """Next levels under ``rules="ffg"`` (``u``: one uniform draw per house)."""
    attended = np.minimum(n, 1)
    change = u < _FFG_P_CHANGE[attended, (levels > 0).view(np.int8), b.view(np.int8)]
    new = np.minimum(levels + change * (1 - 2 * attended), max_fire)
    new[n >= 2] = 0
    return new


def flame_flags(levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noisy flame flags of ``levels`` (any shape): 1 with probability ``1 - exp(-level)``."""
    return rng.random(levels.shape) < -np.expm1(-levels)
