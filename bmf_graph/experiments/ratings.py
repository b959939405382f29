r"""Bradley–Terry ratings of a league and their intervals over seeds, free of environments.

Player ``i`` has a strength :math:`p_i > 0` and beats ``j`` with probability

.. math::
    P(i \succ j) = \frac{p_i}{p_i + p_j}.

A tie counts half a win for each player. The maximum-likelihood strengths come from Hunter's
(2004) minorise–maximise iteration :math:`p_i \leftarrow W_i / \sum_j n_{ij} / (p_i + p_j)`,
with ``W_i`` the wins of ``i`` and ``n_ij`` the games of the pair. Every pair that played also
gets ``prior`` virtual wins each way (a weak pull toward equal strength), so a player that won
every game still has a finite rating. Ratings are on the Elo scale, :math:`400 \log_{10} p_i`,
with an anchor player (the random team) at 0: a gap of 400 means odds of 10 : 1.

Intervals resample **models, not games** (:func:`seed_bootstrap`): each draw keeps the fixed
players (the yardsticks) and, for every method, draws as many of its models (seeds) with
replacement as it has; the league of the draw is refitted on the games among the drawn models
(a model drawn twice counts twice), and a method's rating is the mean of its drawn models'.
The 95 % interval is the 2.5 and 97.5 percentiles over draws.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

ELO = 400.0 / math.log(10.0)
"""Natural-log strength to Elo points."""


def bradley_terry(wins: np.ndarray, prior: float = 0.5, weights: np.ndarray | None = None,
                  tol: float = 1e-10, max_iter: int = 10_000) -> np.ndarray:
    """Log-strengths ``[n]`` (mean 0) from ``wins[i, j]``, the games ``i`` won against ``j``
    (ties as half a win each); ``weights[i]`` counts player ``i`` that many times (0 drops it:
    NaN). Players without games get NaN; with ``prior=0`` a player that never won has strength 0
    (log-strength ``-inf``), which the prior exists to avoid."""
    wins = np.asarray(wins, dtype=float)
    n = wins.shape[0]
    if wins.shape != (n, n) or (wins < 0).any() or not np.isfinite(wins).all():
        raise ValueError(f"bradley_terry: wins has shape {wins.shape} or negative/non-finite entries; "
                         f"expected a square matrix of win counts >= 0")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    pair = np.outer(w, w) * (1 - np.eye(n))
    played = ((wins + wins.T) > 0) & (pair > 0)
    won = pair * (wins + prior * played)
    games = won + won.T
    keep = games.sum(1) > 0
    strength = np.ones(n)
    for _ in range(max_iter):
        denom = (games / (strength[:, None] + strength[None, :])).sum(1)
        new = np.where(keep, won.sum(1) / np.where(keep, denom, 1.0), 1.0)
        new = new / np.exp(np.log(new[keep]).mean())
        done = np.abs(np.log(new[keep]) - np.log(strength[keep])).max(initial=0.0) < tol
        strength = new
        if done:
            break
    log_p = np.log(strength)
    log_p[~keep] = np.nan
    return log_p


def elo(log_strength: np.ndarray, anchor: int | None = None) -> np.ndarray:
    """Elo points ``400 log10 p``, with player ``anchor`` at 0 (else mean 0)."""
    points = ELO * np.asarray(log_strength, dtype=float)
    return points - (points[anchor] if anchor is not None else np.nanmean(points))


def resample_seeds(groups: Mapping[str, Sequence[int]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One draw of every group's members (a method's models or seeds) with replacement, as many
    as the group has."""
    return {name: rng.choice(np.asarray(members), size=len(members), replace=True) for name, members in groups.items()}


def method_ratings(wins: np.ndarray, groups: Mapping[str, Sequence[int]], anchor: int, prior: float = 0.5,
                   draws: int = 1000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per group (method): the mean Elo rating of its players in the whole league and the 95 %
    interval of that mean over :func:`resample_seeds` draws; players outside every group (the
    yardsticks, ``anchor`` among them) stay in every draw.

    Returns:
        ``{method: {"rating", "low", "high", "models"}}``.
    """
    if draws < 1:
        raise ValueError(f"method_ratings: draws={draws!r}; expected an integer >= 1")
    n = wins.shape[0]
    full = elo(bradley_terry(wins, prior), anchor)
    grouped = {i for members in groups.values() for i in members}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in groups}
    for _ in range(draws):
        drawn = resample_seeds(groups, rng)
        counts = np.array([0.0 if i in grouped else 1.0 for i in range(n)])
        for members in drawn.values():
            np.add.at(counts, members, 1.0)
        points = elo(bradley_terry(wins, prior, weights=counts), anchor)
        for name, members in drawn.items():
            samples[name].append(float(points[members].mean()))
    out = {}
    for name, members in groups.items():
        low, high = np.percentile(samples[name], [2.5, 97.5])
        out[name] = {"rating": float(full[list(members)].mean()), "low": float(low), "high": float(high),
                     "models": len(members)}
    return out


def win_matrix(names: Sequence[str], games: Sequence[tuple[str, str, str | None]]) -> np.ndarray:
    """``wins[i, j]`` of ``names`` from ``(player, player, winner or None)`` records; a tie adds
    half a win to each."""
    index = {name: i for i, name in enumerate(names)}
    wins = np.zeros((len(names), len(names)))
    for a, b, winner in games:
        i, j = index[a], index[b]
        if winner is None:
            wins[i, j] += 0.5
            wins[j, i] += 0.5
        elif winner in (a, b):
            wins[index[winner], j if winner == a else i] += 1.0
        else:
            raise ValueError(f"win_matrix: winner {winner!r} of a game between {a!r} and {b!r} is neither player")
    return wins
