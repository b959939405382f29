"""Command-line pieces the ``bmf-evaluate`` and ``bmf-plot`` parsers share: ``--env-kwargs``
items, comma-separated integers, the ``--out`` file, the note on greedy play and a ``--help``
that shows defaults, and the console script of a command whose ``main`` returns its result."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import OmegaConf


def parse_kwargs(items: Sequence[str]) -> dict[str, Any]:
    """``["map_size=40", "preset=bmf"]`` -> ``{"map_size": 40, "preset": "bmf"}`` (YAML values,
    as ``train.py`` overrides)."""
    bad = [item for item in items if "=" not in item]
    if bad:
        raise argparse.ArgumentTypeError(f"--env-kwargs item {bad[0]!r} is not of the form key=value")
    return OmegaConf.to_container(OmegaConf.from_dotlist(list(items)))


def check_out(path: str | None, overwrite: bool) -> Path | None:
    """The ``--out`` file, refusing an existing one unless ``overwrite``."""
    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; expected a file name")
    if out.exists() and not overwrite:
        raise FileExistsError(f"--out {out} exists; pass --overwrite to replace it")
    return out


def int_list(text: str) -> list[int]:
    """Parse ``"0,20,40"`` (a command-line option) into integers."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} holds no integer; expected e.g. 128,288")
    return values


GREEDY_NOTE = ("Play is greedy (every agent takes its best action) unless --sampled; the learning curve comes "
               "from exploring play, so greedy returns can differ from it.")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help or ""
        return super()._get_help_string(action)


def console_script(main: Callable[[Sequence[str]], Any]) -> Callable[[], int]:
    """The console script of ``main(argv)``, which returns what it computed or drew: it runs
    ``main`` on ``sys.argv`` and returns exit status 0 (argparse exits with 2 on bad input)."""
    def command() -> int:
        main(sys.argv[1:])
        return 0
    return command
