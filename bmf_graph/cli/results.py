"""The command line of ``bmf-results`` (``python -m bmf_graph.cli.results``): RESULTS.md from the
artifacts under ``results/`` (:mod:`bmf_graph.experiments.results`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from bmf_graph.experiments import results
from bmf_graph.files import atomic_write_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bmf-results", description=results.__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="the artifacts folder (default: results)")
    parser.add_argument("--out", default="RESULTS.md", help="the Markdown file to write (default: RESULTS.md)")
    parser.add_argument("--assets", default="assets",
                        help="folder of the figures, beside --out (default: assets)")
    parser.add_argument("--no-figures", action="store_true", help="write the text only")
    parser.add_argument("--pictures", action="store_true",
                        help="also draw the Battle group strip and GIF that are missing (plays the BMF-Q model)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not Path(args.results).is_dir():
        parser.error(f"--results {args.results!r} is not a folder; expected the results/ folder of a checkout")
    out = Path(args.out)
    try:
        text = results.render(args.results, args.assets, figures=not args.no_figures, figure_dir=out.parent / args.assets,
                      pictures=args.pictures)
        atomic_write_text(out, text)
    except (ValueError, OSError) as error:  # an unreadable run file or model, an unwritable output
        parser.error(str(error))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def command() -> int:
    """``bmf-results``: :func:`main` on ``sys.argv``."""
    return main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
