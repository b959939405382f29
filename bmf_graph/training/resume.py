"""What ``resume=RUN`` checks before it writes anything: the run state ``checkpoints/last.pt``
and every per-episode CSV against its counters.

The checks, in order (the first failure is one :class:`~bmf_graph.training.run_files.UnreadableFile` or
:class:`~bmf_graph.config.checks.ConfigError` line, and every file stays as it was,
``config.yaml`` included):

1. ``last.pt`` loads with ``weights_only=True`` and holds the keys a run state has;
2. its counters are integers with ``0 <= episode <= E`` (``E``: the episodes ``config.yaml``
   plans, or the larger number a resume asks for) and ``env_steps >= 0``;
3. each per-episode CSV of :data:`EPISODE_FILES` numbers its first ``episode`` rows
   ``1..episode`` once each, every one of them well formed, and its row ``episode`` holds the
   checkpoint's ``env_steps`` (:func:`~bmf_graph.training.run_files.check_episode_rows`). Rows after
   them were written after the checkpoint, and the resume cuts them.

A run folder without ``last.pt`` (killed, or stopped by a NaN, before its first checkpoint) has
nothing to continue: the resume restarts it from episode 1 in place, after saying so.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bmf_graph.config import Config, from_yaml
from bmf_graph.config.checks import ConfigError
from bmf_graph.training.run_files import UnreadableFile, check_episode_rows, load_file


@dataclass(frozen=True)
class EpisodeFile:
    """A per-episode CSV of a run folder and the ``last.pt`` counter its rows must match."""

    name: str
    """File name in the run folder."""
    column: str = "episode"
    """The column numbering its rows 1, 2, ..."""
    counter: str = "episode"
    """The key of ``last.pt`` that counts its rows."""
    required: bool = True
    """Whether a run with rows counted must have the file (``False`` for files that runs of
    earlier versions lack)."""
    last_row: tuple[str, ...] = ()
    """Columns whose value in the last counted row must equal the ``last.pt`` key of that name."""


EPISODE_FILES = (EpisodeFile("metrics.csv", last_row=("env_steps",)),
                 EpisodeFile("eval.csv", column="evaluation", counter="evaluations", required=False))
"""The per-episode CSVs a resume checks: ``metrics.csv`` against the episode counter, ``eval.csv``
(one row per evaluation of the frozen policy) against ``last.pt``'s ``evaluations``, which runs
written before evaluations existed lack."""

STATE_KEYS = ("episode", "env_steps", "rng", "learners", "policies")


def _counter(path: Path, state: dict[str, Any], key: str) -> int:
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnreadableFile(f"{path} has the counter {key}={value!r}; expected an integer >= 0 (truncated or "
                             f"corrupt, or edited)")
    return value


def read_state(run_dir: Path, cfg: Config, device: Any = "cpu") -> dict[str, Any] | None:
    """The checked run state of ``run_dir`` for resuming it with ``cfg`` (its own settings, maybe
    more episodes); ``None`` when it has no ``last.pt`` yet (then its ``metrics.csv``, if any,
    must still have its header). Writes nothing."""
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        for spec in EPISODE_FILES:
            if (run_dir / spec.name).is_file():
                check_episode_rows(run_dir / spec.name, 0, spec.column)
        return None
    state = load_file(last, device)
    if not isinstance(state, dict):
        raise UnreadableFile(f"{last} is not a run state (wrong format: it holds a {type(state).__name__})")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise UnreadableFile(f"{last} is not a run state (missing key {missing[0]!r}; expected {', '.join(STATE_KEYS)})")
    episode = _counter(last, state, "episode")
    _counter(last, state, "env_steps")
    planned = from_yaml(run_dir / "config.yaml", check=False).train.episodes
    if episode > max(planned, cfg.train.episodes):
        raise UnreadableFile(f"{last} has the counter episode={episode} but {run_dir / 'config.yaml'} plans "
                             f"{planned} episodes; expected at most {planned} (truncated or corrupt, or edited)")
    if episode > cfg.train.episodes:
        raise ConfigError(f"train.episodes={cfg.train.episodes} is below the {episode} episodes {run_dir} has done; "
                          f"expected at least {episode}")
    for spec in EPISODE_FILES:
        path, count = run_dir / spec.name, _counter(last, state, spec.counter) if spec.counter in state else None
        if count is None:
            if spec.required:
                raise UnreadableFile(f"{last} is not a run state (missing key {spec.counter!r}, which counts "
                                     f"{spec.name})")
            continue
        if not path.is_file():
            if count and spec.required:
                raise UnreadableFile(f"{path} is missing but {last} is at {spec.column} {count}; rows were lost")
            continue
        check_episode_rows(path, count, spec.column, {k: state[k] for k in spec.last_row})
    return state
