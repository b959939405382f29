"""Head-to-head bookkeeping, free of environments: who plays which side in which game, who won,
the win / tie / loss table of every pair and Wilson score intervals.

A game is won by the side that killed more opponents; equal kills are a tie, counted apart (a
tie is neither a win nor a loss, and win rates are ``wins / games``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054
"""Two-sided 95 % quantile of the standard normal distribution."""


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    r"""Wilson score interval of a binomial proportion ``successes / trials``:

    .. math::
        \frac{\hat p + \frac{z^2}{2n} \pm z \sqrt{\frac{\hat p (1 - \hat p)}{n} + \frac{z^2}{4n^2}}}
             {1 + \frac{z^2}{n}}

    ``(0, 1)`` when ``trials == 0`` (nothing is known).
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"wilson_interval: successes={successes!r}, trials={trials!r}; "
                         f"expected 0 <= successes <= trials")
    if trials == 0:
        return 0.0, 1.0
    p, n = successes / trials, trials
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denom = 1 + z * z / n
    return max(0.0, (centre - margin) / denom), min(1.0, (centre + margin) / denom)


@dataclass(frozen=True)
class Game:
    """One scheduled game: player indices on each side and the episode seed."""

    red: int
    blue: int
    seed: int


def schedule(num_players: int, games_per_pair: int, seed: int = 0) -> list[Game]:
    """Every unordered pair ``i < j`` plays ``games_per_pair`` games. Game ``g`` of a pair puts
    ``i`` on red when ``g`` is even and on blue when odd, with seed ``seed + g // 2``: each seed
    is played once with each team (the last one unpaired when ``games_per_pair`` is odd), and
    every pair sees the same seeds. Which team spawns on the left is the env's draw from the
    seed (Battle's ``random_sides``), so each seed is also played once from each side."""
    if num_players < 2:
        raise ValueError(f"schedule: num_players={num_players!r}; expected at least 2 players")
    if games_per_pair < 1:
        raise ValueError(f"schedule: games_per_pair={games_per_pair!r}; expected an integer >= 1")
    games = []
    for i in range(num_players):
        for j in range(i + 1, num_players):
            for g in range(games_per_pair):
                red, blue = (i, j) if g % 2 == 0 else (j, i)
                games.append(Game(red, blue, seed + g // 2))
    return games


@dataclass(frozen=True)
class GameResult:
    """What a played :class:`Game` produced (kills and returns per team)."""

    red: int
    blue: int
    seed: int
    kills_red: float
    kills_blue: float
    return_red: float = 0.0
    return_blue: float = 0.0
    left: int | None = None
    """The player whose team spawned on the left (``None``: not recorded)."""

    @property
    def winner(self) -> int | None:
        """Index of the player that killed more opponents; ``None`` for a tie."""
        if self.kills_red == self.kills_blue:
            return None
        return self.red if self.kills_red > self.kills_blue else self.blue

    def to_dict(self) -> dict:
        return {"red": self.red, "blue": self.blue, "seed": self.seed, "kills_red": self.kills_red,
                "kills_blue": self.kills_blue, "return_red": self.return_red,
                "return_blue": self.return_blue, "left": self.left, "winner": self.winner}


@dataclass
class WinTable:
    """Pairwise counts: ``wins[i, j]`` games ``i`` won against ``j``; ``ties`` is symmetric."""

    names: list[str]
    wins: np.ndarray
    ties: np.ndarray

    @property
    def losses(self) -> np.ndarray:
        return self.wins.T

    @property
    def games(self) -> np.ndarray:
        return self.wins + self.wins.T + self.ties

    def win_rate(self) -> np.ndarray:
        """``wins / games``; NaN where a pair played no game (and on the diagonal)."""
        games = self.games
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(games > 0, self.wins / np.maximum(games, 1), np.nan)

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Wilson 95 % bounds of every win rate (NaN where no game was played)."""
        n = len(self.names)
        low, high = np.full((n, n), np.nan), np.full((n, n), np.nan)
        for i in range(n):
            for j in range(n):
                if self.games[i, j] > 0:
                    low[i, j], high[i, j] = wilson_interval(int(self.wins[i, j]), int(self.games[i, j]))
        return low, high

    def overall(self) -> list[dict]:
        """Per player, summed over all opponents: wins, ties, losses, games, win rate, interval."""
        rows = []
        for i, name in enumerate(self.names):
            w, t, g = int(self.wins[i].sum()), int(self.ties[i].sum()), int(self.games[i].sum())
            low, high = wilson_interval(w, g)
            rows.append({"player": name, "wins": w, "ties": t, "losses": g - w - t, "games": g,
                         "win_rate": w / g if g else None, "ci95": [low, high]})
        return rows

    def to_dict(self) -> dict:
        """JSON-ready matrices (``None`` where no game was played)."""
        def clean(a: np.ndarray) -> list:
            return [[None if math.isnan(v) else float(v) for v in row] for row in a]

        low, high = self.interval()
        return {"players": list(self.names), "wins": self.wins.tolist(), "ties": self.ties.tolist(),
                "losses": self.losses.tolist(), "games": self.games.tolist(),
                "win_rate": clean(self.win_rate()), "ci95_low": clean(low), "ci95_high": clean(high),
                "overall": self.overall()}

    def format(self) -> str:
        """A text table: row player's wins-ties-losses and win rate [95 % CI] against each column."""
        n = len(self.names)
        rate, (low, high) = self.win_rate(), self.interval()
        cells = [[("-" if i == j or self.games[i, j] == 0 else
                   f"{int(self.wins[i, j])}-{int(self.ties[i, j])}-{int(self.losses[i, j])} "
                   f"{rate[i, j]:.2f} [{low[i, j]:.2f},{high[i, j]:.2f}]") for j in range(n)] for i in range(n)]
        width = max([len(c) for row in cells for c in row] + [4])
        lines = ["win rate of row vs column: wins-ties-losses rate [Wilson 95% CI]",
                 "     " + "".join(f"{f'[{j}]':>{width + 2}}" for j in range(n))]
        lines += [f"{f'[{i}]':<5}" + "".join(f"{c:>{width + 2}}" for c in cells[i]) for i in range(n)]
        lines += [f"[{i}] {name}" for i, name in enumerate(self.names)]
        return "\n".join(lines)


def tally(names: Sequence[str], results: Sequence[GameResult]) -> WinTable:
    """Count wins and ties of every pair from game results (player indices into ``names``)."""
    n = len(names)
    wins, ties = np.zeros((n, n), dtype=np.int64), np.zeros((n, n), dtype=np.int64)
    for r in results:
        if not (0 <= r.red < n and 0 <= r.blue < n) or r.red == r.blue:
            raise ValueError(f"tally: game {r} has players red={r.red}, blue={r.blue}; expected two "
                             f"different indices in 0..{n - 1}")
        if r.winner is None:
            ties[r.red, r.blue] += 1
            ties[r.blue, r.red] += 1
        else:
            loser = r.blue if r.winner == r.red else r.red
            wins[r.winner, loser] += 1
    return WinTable(list(names), wins, ties)
