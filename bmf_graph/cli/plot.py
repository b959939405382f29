"""The command line of ``bmf-plot`` (``python -m bmf_graph.cli.plot``); the figures themselves are
:mod:`bmf_graph.experiments.plot`.

    bmf-plot curves runs/ --out assets/ --smooth 5
    bmf-plot groups RUN --step -1 --out plots/
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Sequence

from bmf_graph.cli.options import GREEDY_NOTE, DefaultsFormatter, console_script, int_list, parse_kwargs
from bmf_graph.config.checks import ENVIRONMENTS, resolve_device
from bmf_graph.experiments import plot
from bmf_graph.training.players import set_threads


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bmf-plot", description=plot.__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="output file or folder (a default file name inside)")
    common.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    play = argparse.ArgumentParser(add_help=False, parents=[common])
    play.add_argument("checkpoint", help="BMF model file (.safetensors or .pt) or run folder (its final model)")
    play.add_argument("--env", choices=ENVIRONMENTS, help="task (default: the run's)")
    play.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                      help="task arguments, over those of the model's run")
    play.add_argument("--seed", type=int, default=0, help="seed of the episode")
    play.add_argument("--team", type=int, default=0, help="index of the team whose groups are drawn")
    play.add_argument("--opponent", help="random, self or a model file (default: self where possible)")
    play.add_argument("--sampled", action="store_true", help="sample actions instead of greedy play")
    play.add_argument("--device", default="cpu", help="torch device of the policies")
    play.add_argument("--threads", type=int, default=None,
                      help="torch CPU threads (0: torch's default); default: the model's run's threads setting")
    formats = dict(formatter_class=DefaultsFormatter, epilog=GREEDY_NOTE)

    p = sub.add_parser("curves", parents=[common], help="learning curves, mean ± std over seeds",
                       formatter_class=DefaultsFormatter)
    p.add_argument("runs", nargs="+", help="run folders or folders of runs")
    p.add_argument("--metric", default="charts/return", help="a metrics.csv column, or eval/return_greedy (eval/return_mode, eval/return_sampled): evaluation returns from eval.csv")
    p.add_argument("--smooth", type=int, default=1, help="trailing moving-average window, in episodes")
    p.add_argument("--x", choices=plot.X_AXES, default="episode", help="x axis")
    p.add_argument("--title", help="panel title (default: the task and what is averaged)")
    p = sub.add_parser("groups", parents=[play], help="the learned group graph at one step", **formats)
    p.add_argument("--step", type=int, default=0, help="env step to draw; negative counts from the episode's end")
    p.add_argument("--min-weight", type=float, default=0.0, help="draw the arrow n -> m only when w_mn exceeds it")
    p = sub.add_parser("strip", parents=[play], help="group graph snapshots over an episode", **formats)
    p.add_argument("--steps", type=int_list, help="e.g. 0,10,-1 (default: --panels evenly spaced)")
    p.add_argument("--panels", type=int, default=4, help="panels when --steps is not given")
    p.add_argument("--min-weight", type=float, default=0.0, help="draw the arrow n -> m only when w_mn exceeds it")
    p = sub.add_parser("gif", parents=[play], help="replay GIF of one episode (with a step counter)", **formats)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (default: the episode's end)")
    p.add_argument("--fps", type=float, default=10, help="frames per second")
    return parser


def main(argv: Sequence[str] | None = None) -> Any:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "curves":
            result = plot.learning_curves(args.runs, args.out, args.metric, args.smooth, args.x, args.title, args.overwrite)
        else:
            set_threads(args.threads, args.checkpoint)
            common = dict(env_name=args.env, env_kwargs=parse_kwargs(args.env_kwargs), seed=args.seed, team=args.team,
                          opponent=args.opponent, deterministic=not args.sampled, device=resolve_device(args.device),
                          overwrite=args.overwrite)
            if args.command == "groups":
                result = plot.group_graph(args.checkpoint, args.out, args.step, min_weight=args.min_weight, **common)
            elif args.command == "strip":
                result = plot.group_strip(args.checkpoint, args.out, args.steps, args.panels, min_weight=args.min_weight,
                                     **common)
            else:
                result = plot.replay_gif(args.checkpoint, args.out, max_steps=args.max_steps, fps=args.fps, **common)
    except (ValueError, OSError, argparse.ArgumentTypeError) as error:  # bad input, unreadable or unwritable files
        parser.error(str(error))
    print(os.fspath(result))
    return result


command = console_script(main)
"""``bmf-plot``."""


if __name__ == "__main__":
    raise SystemExit(command())
