"""Run logs: ``metrics.csv`` (one row per episode), TensorBoard events and the optional
trackers of :mod:`bmf_graph.training.trackers` (W&B, MLflow).

Metric names are grouped as ``charts/`` (returns, kills, groups, the exploration level
``charts/epsilon``, ``charts/temperature`` or, for continuous actions, ``charts/noise``, and
``charts/entropy``, the mean entropy of the learning team's acting policy over alive agents),
``losses/`` and ``perf/``. A resumed run keeps its file's header.
The CSV has a fixed header (:data:`COLUMNS` plus a return, kills and entropy column per team) so
files from different algorithms line up; cells of metrics an algorithm lacks stay empty.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from bmf_graph.files import atomic_write_text
from bmf_graph.training.trackers import Tracker, open_trackers

LEARNER_COLUMNS = ("charts/groups", "losses/q", "losses/q_mean", "losses/policy", "losses/value", "losses/entropy",
                   "losses/vae_rec", "losses/vae_pred", "losses/vae_kl", "charts/context_effect", "charts/context_effect_zero",
                   "charts/dead_units_critic", "charts/dead_units_actor")
"""A learner's own logs. The first learning team's fill these columns; every further learning
team's (Pursuit's prey) fill ``{column}_{team name}``."""

COLUMNS = ("episode", "env_steps", "charts/return", "charts/entropy", "charts/epsilon", "charts/temperature",
           "charts/noise", *LEARNER_COLUMNS, "perf/sps")


def team_columns(team_names: Sequence[str]) -> list[str]:
    """Per team: return, kills and the mean entropy of its acting policy (learning teams)."""
    return [f"charts/{metric}_{name}" for metric in ("return", "kills", "entropy") for name in team_names]


def learner_columns(team_names: Sequence[str]) -> list[str]:
    """:data:`LEARNER_COLUMNS` of each further learning team, suffixed with its name."""
    return [f"{column}_{name}" for name in team_names for column in LEARNER_COLUMNS]


class RunLogger:
    """Append-only CSV plus TensorBoard and the trackers ``cfg.logging`` asks for.

    The header is written once, with the file (atomically); each row is appended and flushed.
    ``keep_rows`` (resume) first cuts the CSV to its header and first ``keep_rows`` rows by an
    atomic rewrite (a temporary file renamed over it), so a kill at any moment leaves either the
    old file or the cut one, never a partial one. ``other_learners``: the names of the learning
    teams after the first, whose learner logs get columns of their own (:func:`learner_columns`).
    A resumed run started by an earlier version keeps its file's header; the metrics that header
    lacks go to TensorBoard only. ``cfg``: the run's configuration, whose ``logging`` section
    (:class:`~bmf_graph.config.LoggingConfig`) turns TensorBoard off or W&B / MLflow on; without
    it, ``tensorboard`` decides and no tracker runs.
    """

    def __init__(self, run_dir: Path, team_names: Sequence[str], keep_rows: int | None = None,
                 tensorboard: bool = True, other_learners: Sequence[str] = (), cfg: Any = None):
        self.path = Path(run_dir) / "metrics.csv"
        self.columns = list(COLUMNS) + team_columns(team_names) + learner_columns(other_learners)
        self.not_in_file: set[str] = set()
        if not self.path.exists():
            if keep_rows:
                raise FileNotFoundError(f"{self.path} is missing but the checkpoint is at episode {keep_rows}")
            atomic_write_text(self.path, _csv_text([self.columns]))
        elif keep_rows is not None:
            self._truncate(keep_rows)
        self.file = self.path.open("a", newline="")
        self.csv = csv.writer(self.file)
        self.trackers: list[Tracker] = []
        if cfg is not None:
            from omegaconf import OmegaConf

            tensorboard = cfg.logging.tensorboard
            self.trackers = open_trackers(Path(run_dir), cfg.logging,
                                          OmegaConf.to_container(OmegaConf.structured(cfg)))
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir), purge_step=(keep_rows + 1) if keep_rows else None)

    def _truncate(self, keep_rows: int) -> None:
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        if rows and rows[0] != self.columns and rows[0][:1] == ["episode"] and set(rows[0]) <= set(self.columns):
            # a run started by an earlier version keeps its file's header
            self.not_in_file, self.columns = set(self.columns) - set(rows[0]), rows[0]
        if not rows or rows[0] != self.columns:
            raise ValueError(f"{self.path} does not start with the expected header "
                             f"({','.join(self.columns[:3])},...); it was edited or damaged")
        if len(rows) - 1 < keep_rows:
            raise ValueError(f"{self.path} holds {len(rows) - 1} episode rows but the checkpoint is at episode "
                             f"{keep_rows}; rows were lost")
        if len(rows) - 1 > keep_rows:
            atomic_write_text(self.path, _csv_text(rows[: keep_rows + 1]))

    def log(self, row: Mapping[str, float]) -> None:
        unknown = set(row) - set(self.columns) - self.not_in_file
        if unknown:
            raise KeyError(f"RunLogger.log: unknown metrics {sorted(unknown)}; expected names from {self.columns}")
        self.csv.writerow(["" if row.get(c) is None else row[c] for c in self.columns])
        self.file.flush()
        step = int(row["episode"])
        metrics = {key: value for key, value in row.items() if "/" in key and value is not None}
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)
        for tracker in self.trackers:
            tracker.log(metrics, step)

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()
        for tracker in self.trackers:
            tracker.close()


def _csv_text(rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def read_metrics(path: Path | str) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` (or of the one in a run folder) as dicts of floats."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


FINAL_FRACTION = 0.1
"""Share of a run's last episodes its *final* values average over (sweep summaries, RESULTS.md)."""


def final_mean(values: Sequence[float]) -> float:
    """Mean of the last 10 % of ``values`` (at least one); NaN when there are none."""
    values = list(values)
    if not values:
        return math.nan
    return float(np.mean(values[-max(1, math.ceil(FINAL_FRACTION * len(values))):]))
