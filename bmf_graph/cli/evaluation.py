"""Evaluate trained models: returns, Battle head-to-head, zero-shot scaling, side bias and the
context-shuffle test.

The command line of ``bmf-evaluate`` (``python -m bmf_graph.cli.evaluation``); the evaluations
themselves are :mod:`bmf_graph.experiments.evaluate`.

    bmf-evaluate returns RUN --episodes 20      # RUN/checkpoints/model_final.safetensors
    bmf-evaluate head-to-head A.safetensors B.safetensors C.safetensors --random --games 20 --env-kwargs map_size=40
    bmf-evaluate zero-shot RUN --sizes 128,288,512,2048 --games 4
    bmf-evaluate sides RUN --games 20
    bmf-evaluate context RUN --games 100 --part all --mode permute
    bmf-evaluate context-table results --out results/context.json --games 20   # resumable
    bmf-evaluate league results --games 52 --threads 1   # resumable, results/battle/league/
    bmf-evaluate pursuit-pool results --episodes 10 --out results/pursuit/pools.json

A model is a model file or a run folder (its ``checkpoints/model_final.safetensors``); play is greedy
unless ``--sampled``; torch uses the run's ``threads`` setting unless ``--threads`` is given. A
Battle model trained before the minimap (or with fixed sides) is played with
``--env-kwargs minimap_mode=false random_sides=false``. Each command prints JSON to stdout
(head-to-head also a table to stderr); ``--out FILE.json`` also writes it, refusing to replace a
file unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from bmf_graph.cli.options import GREEDY_NOTE, DefaultsFormatter, console_script, check_out, int_list, parse_kwargs
from bmf_graph.algos.diagnostics import MODES, PARTS
from bmf_graph.config.checks import resolve_device
from bmf_graph.experiments.context_shuffle import context_test
from bmf_graph.experiments.context_table import context_table
from bmf_graph.envs import TASKS
from bmf_graph.experiments.evaluate import ZERO_SHOT_SIZES, evaluate_returns, head_to_head, side_bias, zero_shot
from bmf_graph.files import atomic_write_text
from bmf_graph.experiments.league import DEFAULT_GAMES, play_league, summarize, table_lines
from bmf_graph.training.players import RANDOM, set_threads
from bmf_graph.experiments.pursuit_pool import pursuit_pool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bmf-evaluate", description=__doc__.split("\n")[0],
                                     epilog=GREEDY_NOTE, formatter_class=DefaultsFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                        help="task arguments, over those of the checkpoint's run")
    common.add_argument("--seed", type=int, default=0, help="episode e (game g) is seeded with seed + e")
    common.add_argument("--sampled", action="store_true",
                        help="sample actions (explore=1.0, as at the end of training) instead of greedy play")
    common.add_argument("--device", default="cpu", help="torch device of the policies")
    common.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (0: torch's default); default: the model's run's threads setting")
    common.add_argument("--out", help="also write the JSON here")
    common.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    p = sub.add_parser("returns", parents=[common], help="mean ± std return over episodes", epilog=GREEDY_NOTE,
                       formatter_class=DefaultsFormatter)
    p.add_argument("checkpoint", help="model file (.safetensors or .pt) or run folder (its final model)")
    p.add_argument("--env", choices=tuple(TASKS), help="default: the run's env")
    p.add_argument("--episodes", type=int, default=10, help="episodes to average over")
    p.add_argument("--team", type=int, default=0, help="index of the evaluated team")
    p.add_argument("--opponent", default=RANDOM, help="other teams: random, scripted (Battle), self or a model file")
    p.add_argument("--copies", type=int, default=1, help="episodes played at once in env copies")
    p.add_argument("--temperature", type=float,
                   help="play the model at softmax(Q-values or actor logits / T) instead of greedily")
    p.add_argument("--worker", action="store_true",
                   help="step the copies in a worker process, in two halves (with --threads 1 on two cores)")

    p = sub.add_parser("head-to-head", parents=[common], help="Battle win-rate matrix", epilog=GREEDY_NOTE,
                       formatter_class=DefaultsFormatter)
    p.add_argument("checkpoints", nargs="+", help="model files or run folders ('random' allowed)")
    p.add_argument("--games", type=int, default=10, help="games per pair (each seed twice, teams swapped)")
    p.add_argument("--random", action="store_true", help="add a random player")

    p = sub.add_parser("zero-shot", parents=[common], help="Battle at other team sizes", epilog=GREEDY_NOTE,
                       formatter_class=DefaultsFormatter)
    p.add_argument("checkpoint", help="model file (.safetensors or .pt) or run folder")
    p.add_argument("--sizes", type=int_list, default=list(ZERO_SHOT_SIZES), help="total agents, e.g. 128,288,512")
    p.add_argument("--games", type=int, default=4, help="games per size")
    p.add_argument("--opponent", default=RANDOM, help="random, scripted (Battle), self or a model file")

    p = sub.add_parser("sides", parents=[common], help="Battle side bias: kills on the left vs on the right",
                       epilog=GREEDY_NOTE, formatter_class=DefaultsFormatter)
    p.add_argument("checkpoint", help="model file (.safetensors or .pt) or run folder")
    p.add_argument("--games", type=int, default=20, help="games per side (the same seeds on both sides)")
    p.add_argument("--team", type=int, help="the model's team, 0 or 1 (default: the team it learned as)")
    p.add_argument("--opponent", default=RANDOM, help="random, scripted (Battle), self or a model file")
    p.add_argument("--copies", type=int, default=1, help="episodes played at once in env copies")

    p = sub.add_parser("context", parents=[common], help="context-shuffle test: does the model use its context?",
                       formatter_class=DefaultsFormatter)
    p.add_argument("checkpoint", help="model file (.pt) or run folder of an MF-family model")
    p.add_argument("--games", type=int, default=100,
                   help="Battle: games against the shuffled self (each seed with the intact model on either "
                        "team); other tasks: episodes played intact and shuffled")
    p.add_argument("--part", choices=PARTS, default="all", help="the context columns to shuffle (BMF: intra, inter)")
    p.add_argument("--mode", choices=MODES, default="permute",
                   help="permute the context across the team's alive agents, or zero it")
    p.add_argument("--copies", type=int, default=16, help="games played at once in env copies")
    p = sub.add_parser("pursuit-pool", parents=[common], help="Pursuit predators against a fixed prey pool, prey "
                       "against a fixed predator pool", formatter_class=DefaultsFormatter)
    p.add_argument("results_dir", help="results folder holding pursuit/METHOD/seedS runs")
    p.add_argument("--episodes", type=int, default=10, help="episodes per model and pool member")
    p.add_argument("--methods", nargs="*", help="method folders (default: every algorithm)")

    p = sub.add_parser("league", help="Battle league: every final model and two yardsticks, round robin, ratings",
                       formatter_class=DefaultsFormatter)
    p.add_argument("results_dir", help="results folder holding battle/METHOD/seedS runs")
    p.add_argument("--games", type=int, default=DEFAULT_GAMES, help="games per pair (each seed with both colours)")
    p.add_argument("--out", help="league folder (default: RESULTS_DIR/battle/league); resumes what it holds")
    p.add_argument("--methods", nargs="*", help="method folders to take models from (default: every algorithm)")
    p.add_argument("--copies", type=int, default=8, help="games of a pair played at once in env copies")
    p.add_argument("--max-pairs", type=int, help="stop after this many unfinished pairs (continue later)")
    p.add_argument("--summarize-only", action="store_true", help="only refit the ratings of the games played")
    p.add_argument("--draws", type=int, default=1000, help="bootstrap draws over seeds")
    p.add_argument("--seed", type=int, default=0, help="game g of a pair uses seed + g // 2")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="torch device of the policies")
    p = sub.add_parser("context-table", help="the context-shuffle test of every MF-family model of a results folder",
                       formatter_class=DefaultsFormatter)
    p.add_argument("results_dir", help="results folder holding TASK/METHOD/seedS runs")
    p.add_argument("--out", required=True, help="JSON file of the tests and the table; resumes what it holds")
    p.add_argument("--tasks", nargs="+", default=["battle", "firefighter"], help="task folders")
    p.add_argument("--games", type=int, default=20, help="Battle: games against the shuffled self per model and mode")
    p.add_argument("--episodes", type=int, default=4, help="other tasks: episodes intact and shuffled per model and mode")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="shuffle modes")
    p.add_argument("--copies", type=int, default=16, help="games played at once in env copies")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    return parser


def _context_table(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    report = context_table(args.results_dir, args.out, args.tasks, args.games, args.episodes, args.modes, args.copies)
    return report["table"]


def _league(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    folder = Path(args.out) if args.out else Path(args.results_dir) / "battle" / "league"
    if not args.summarize_only:
        play_league(args.results_dir, folder, args.games, args.seed, args.copies, args.methods, args.max_pairs,
                    resolve_device(args.device))
    summary = summarize(folder, args.draws)
    print("\n".join(table_lines(summary)), file=sys.stderr)
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``bmf-evaluate`` command; returns the result it prints (bad input exits with status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("league", "context-table"):
        try:
            result = _league(args) if args.command == "league" else _context_table(args)
        except (ValueError, OSError) as error:
            parser.error(str(error))
        print(json.dumps(result, indent=2))
        return result
    try:
        if args.command != "pursuit-pool":
            set_threads(args.threads, args.checkpoints[0] if args.command == "head-to-head" else args.checkpoint)
        out = check_out(args.out, args.overwrite)
        kwargs = parse_kwargs(args.env_kwargs)
        common = dict(seed=args.seed, deterministic=not args.sampled, device=resolve_device(args.device))
        if args.command == "pursuit-pool":
            if args.threads is not None and args.threads > 0:
                torch.set_num_threads(args.threads)
            result = pursuit_pool(args.results_dir, args.episodes, args.seed, args.methods, common["device"])
        elif args.command == "returns":
            result = evaluate_returns(args.checkpoint, args.env, kwargs, args.episodes, team=args.team,
                                      opponent=args.opponent, copies=args.copies, worker=args.worker,
                                      temperature=args.temperature, **common)
            print(f"play: {result['mode']}" + (f" (softmax at T = {result['temperature']})"
                                               if result["temperature"] is not None else "")
                  + f"; return {result['return']['mean']:.2f} ± {result['return']['std']:.2f} "
                    f"over {result['episodes']} episodes", file=sys.stderr)
        elif args.command == "head-to-head":
            result = head_to_head(args.checkpoints, args.games, kwargs, include_random=args.random, **common)
            print(result["text"], file=sys.stderr)
        elif args.command == "zero-shot":
            result = zero_shot(args.checkpoint, args.sizes, args.games, args.opponent, env_kwargs=kwargs, **common)
        elif args.command == "context":
            if args.sampled:
                raise ValueError("context: --sampled is not valid; the context-shuffle test plays greedily")
            result = context_test(args.checkpoint, args.games, args.part, args.mode, kwargs, args.seed, args.copies,
                                  common["device"])
        else:
            result = side_bias(args.checkpoint, args.games, kwargs, team=args.team, opponent=args.opponent,
                               copies=args.copies, **common)
    except (ValueError, OSError, argparse.ArgumentTypeError) as error:  # bad input, unreadable or unwritable files
        parser.error(str(error))
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        try:
            atomic_write_text(out, text + "\n", overwrite=args.overwrite)  # the existence check again, at rename
        except OSError as error:
            parser.error(str(error))
    return result


command = console_script(main)
"""``bmf-evaluate``."""


if __name__ == "__main__":
    raise SystemExit(command())
