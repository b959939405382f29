"""The command line of ``bmf-sweep`` (``python -m bmf_graph.cli.sweep``); the sweep itself is
:mod:`bmf_graph.experiments.sweep`.
"""
from __future__ import annotations

import sys
from typing import Sequence

from bmf_graph.cli.settings import settings_help
from bmf_graph.config.checks import ConfigError
from bmf_graph.experiments import sweep
from bmf_graph.experiments.sweep_grid import options_help
from bmf_graph.files import DiskFull


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"{sweep.__doc__}\n{options_help()}\n\nRun settings (any may be an axis, key=a,b,c):\n\n{settings_help()}")
        return 0 if argv else 2
    try:
        result = sweep.run_sweep(argv)
    except (ConfigError, sweep.RayMissing) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DiskFull as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if result.busy:
        print(f"{len(result.busy)} of {len(result.outcomes)} runs were in use by another process and were skipped; "
              f"run the sweep again once it ends", file=sys.stderr)
    if result.failed:
        print(f"{len(result.failed)} of {len(result.outcomes)} runs failed; see {result.sweep_dir / 'sweep_failures.json'}",
              file=sys.stderr)
        return 1
    return 0


def command() -> int:
    """``bmf-sweep``: :func:`main` on ``sys.argv``."""
    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
