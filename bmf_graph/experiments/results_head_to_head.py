"""The Battle head-to-head of RESULTS.md: every pair of final models, pooled over seeds.

Each file under ``results/battle/head_to_head/`` is one ``bmf-evaluate
head-to-head ... --out`` (usually one seed's seven models). Players named ``{label}/seed{S}``
are pooled by label: the games ``i`` won against ``j`` add up over the files,

    rate(i, j) = sum_f wins_f(i, j) / sum_f games_f(i, j),

with a Wilson interval over the pooled games. Those intervals count games, not seeds, so the
row's mean win rate is also shown per file, which is where the spread between seeds shows, with
a cluster-bootstrap interval over the files (seeds) of their mean.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bmf_graph.experiments.results_stats import cluster_bootstrap, mean_std
from bmf_graph.experiments.sweep_grid import SEED_FOLDER
from bmf_graph.experiments.winrate import WinTable


@dataclass
class HeadToHead:
    """Counts pooled by label, and what each file contributed."""

    table: WinTable
    files: list[dict]
    """Each file's JSON, in name order."""

    def file_means(self, label: str) -> list[float | None]:
        """The row's mean win rate over the opponents it met, per file (``None``: not in it)."""
        means = []
        for data in self.files:
            rates = [rate for name, row in zip(data["table"]["players"], data["table"]["win_rate"])
                     if _label(name) == label for rate in row if rate is not None]
            means.append(mean_std(rates)[0] if rates else None)
        return means


def _split(player: str) -> tuple[str, str | None]:
    """``bmf_q/seed10`` -> ``("bmf_q", "10")``; any other name -> ``(name, None)``."""
    head, _, tail = player.rpartition("/")
    match = SEED_FOLDER.fullmatch(tail)
    return (head, match[1]) if head and match else (player, None)


def _label(player: str) -> str:
    return _split(player)[0]


def _seeds(players: Sequence[str]) -> list[str]:
    """The seeds of players named ``{label}/seed{S}``, in order of first appearance."""
    return list(dict.fromkeys(seed for _, seed in map(_split, players) if seed is not None))


def read_head_to_head(folder: Path) -> HeadToHead | None:
    """Pool every ``*.json`` of ``folder`` by label (``None`` when there is none). Games between
    two players of the same label (two seeds of one method in one file) are left out."""
    files = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    if not files:
        return None
    labels = list(dict.fromkeys(_label(name) for data in files for name in data["table"]["players"]))
    index = {label: k for k, label in enumerate(labels)}
    wins = np.zeros((len(labels), len(labels)), dtype=np.int64)
    ties = np.zeros_like(wins)
    for data in files:
        rows = [index[_label(name)] for name in data["table"]["players"]]
        for i, row in enumerate(rows):
            for j, column in enumerate(rows):
                if row != column:
                    wins[row, column] += data["table"]["wins"][i][j]
                    ties[row, column] += data["table"]["ties"][i][j]
    return HeadToHead(WinTable(labels, wins, ties), files)


def head_to_head_lines(pool: HeadToHead) -> list[str]:
    """The section's text below its title: the pooled table with each row's mean, per file too
    when there are several files, and how often the left side won."""
    table, files = pool.table.to_dict(), pool.files
    names = table["players"]
    seeds = [_seeds(data["table"]["players"]) for data in files]
    per_seed = len(files) > 1
    games = ", ".join(dict.fromkeys(str(data["games_per_pair"]) for data in files))
    greedy = all(data.get("deterministic", True) for data in files)
    if all(len(s) == 1 for s in seeds):
        whose = "final models (seed" + ("s " if per_seed else " ") + ", ".join(s[0] for s in seeds) + ")"
    else:
        whose = "final models"
    lines = [f"Every pair of {whose} played {games} games{' per seed' if per_seed else ''} "
             f"({'greedy' if greedy else 'sampled'} actions); the winner killed more, ties are counted apart; "
             "row's win rate against column with its Wilson 95 % interval, and its mean over the opponents."]
    if per_seed:
        lines[0] += (" The seeds' games are pooled by method; the Wilson intervals count games, not seeds. The "
                     "last column gives the row's mean per seed and the 95 % interval of their mean over seeds "
                     "(cluster bootstrap: seeds resampled, each seed's games kept together), the interval to read.")
    extra = " | per seed [95 % CI over seeds]" if per_seed else ""
    lines += ["", "| | " + " | ".join(names) + " | mean" + extra + " |", "|---" * (len(names) + 2 + per_seed) + "|"]
    for i, name in enumerate(names):
        played = [j for j, rate in enumerate(table["win_rate"][i]) if j != i and rate is not None]
        cells = [f"{table['win_rate'][i][j]:.2f} [{table['ci95_low'][i][j]:.2f}, {table['ci95_high'][i][j]:.2f}]"
                 if j in played else "—" for j in range(len(names))]
        rates = [table["win_rate"][i][j] for j in played]
        row = f"| {name} | " + " | ".join(cells) + f" | {f'{mean_std(rates)[0]:.2f}' if rates else '—'} |"
        if per_seed:
            means = pool.file_means(name)
            row += " " + " · ".join("—" if m is None else f"{m:.2f}" for m in means)
            seeded = [m for m in means if m is not None]
            if len(seeded) > 1:
                _, low, high = cluster_bootstrap(seeded)
                row += f" [{low:.2f}, {high:.2f}]"
            row += " |"
        lines.append(row)
    return lines + ["", *_side_line([game for data in files for game in data.get("games", [])])]


def _side_line(games: Sequence[dict]) -> list[str]:
    """How often the team that started on the left won the decisive games (empty without games)."""
    decisive = [g for g in games if g.get("winner") is not None and "left" in g]
    if not decisive:
        return []
    left = sum(g["winner"] == g["left"] for g in decisive)
    return [f"The side matters: the team that started on the left won {left:,} of the {len(decisive):,} decisive "
            f"games ({left / len(decisive):.0%}). Each pair played every game seed once from each side, so a win "
            "rate above 0.50 needs wins from the right.", ""]
