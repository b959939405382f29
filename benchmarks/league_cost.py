"""Cost of the Battle league on one CPU thread: seconds per game over a random sample of pairs
of the league's roster, and the whole league's estimate (pairs x games per pair x mean seconds
per game). Nothing is written to the league's folder.

    python benchmarks/league_cost.py results --pairs 12 --games 8 --copies 8 --out benchmarks/results/league_cost.json
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bmf_graph.envs import make_env
from bmf_graph.experiments.league import DEFAULT_GAMES, env_kwargs, play_pair, roster
from bmf_graph.training.players import team_policies
from bmf_graph.experiments.winrate import Game, schedule

from report import emit


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results_dir")
    parser.add_argument("--pairs", type=int, default=12, help="pairs sampled")
    parser.add_argument("--games", type=int, default=8, help="games per sampled pair")
    parser.add_argument("--copies", type=int, default=8, help="games of a pair played at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    players = roster(args.results_dir)
    n, rng = len(players), np.random.default_rng(args.seed)
    pairs = [tuple(int(k) for k in sorted(rng.choice(n, 2, replace=False))) for _ in range(args.pairs)]
    envs = [make_env("battle", env_kwargs(players)) for _ in range(args.copies)]
    sides = [team_policies(envs[0], [p.source, p.source], "cpu", own=p.source) for p in players]
    per_game = []
    for i, j in pairs:
        # the league's schedule of one pair, with players 0 and 1 of schedule(2, ...) as i and j
        todo = [(g, Game(*((i, j) if game.red == 0 else (j, i)), game.seed))
                for g, game in enumerate(schedule(2, args.games, args.seed))]
        start = time.perf_counter()
        for _ in play_pair(envs, sides, players, i, j, todo):
            pass
        per_game.append((time.perf_counter() - start) / args.games)
    for env in envs:
        env.close()
    mean, pairs_total = float(np.mean(per_game)), n * (n - 1) // 2
    return emit({"benchmark": "league_cost", "threads": 1, "copies": args.copies, "players": n,
                 "pairs_sampled": [f"{players[i].name} v {players[j].name}" for i, j in pairs],
                 "seconds_per_game": [round(s, 3) for s in per_game], "mean_seconds_per_game": round(mean, 3),
                 "league_pairs": pairs_total, "games_per_pair": DEFAULT_GAMES,
                 "league_estimate_minutes": round(mean * pairs_total * DEFAULT_GAMES / 60, 1)}, args.out)


if __name__ == "__main__":
    main()
