"""Evaluation of the frozen policy during training, into the run's ``eval.csv`` and TensorBoard.

A run evaluates at the episodes :func:`eval_points`: every ``train.eval_every`` episodes
(default :func:`eval_every`, 10 % of the run) and at the end. An evaluation plays
``train.eval_episodes`` episodes through :func:`~bmf_graph.training.rollout.play_episodes` in the run's
own env copies, with nothing learning and exploration off for every team:

* Q family (q, mfq, gat_mf, bmf_q): ``greedy``, the highest-valued action (ties at random);
* actor-critic family (ac, mfac, bmf_ac): ``mode``, the most probable action, and ``sampled``,
  a draw from the policy (the policy itself: the entropy weight shapes training only).

Every evaluation plays the same seeds, :func:`eval_seed` ``(seed, 0 .. eval_episodes - 1)``,
which never meet the training episodes' seeds, and leaves the random streams of training as
they were (training continues as if no evaluation had been played).

``eval.csv`` holds one row per point of :func:`eval_points`: ``evaluation`` (1, 2, ...; ``last.pt``
counts them as ``evaluations`` and a resume checks the file against it), ``episode`` (the point),
``trained_episodes`` (training episodes done when it was played: the end of the round of
``train.envs`` episodes that reached the point; a round passing two points writes the one
evaluation for both), ``episodes`` and, per mode, the mean and standard deviation (``ddof=0``)
of the first learning team's return and its mean kills. A resumed run first cuts the file to the
points its checkpoint had passed, as ``metrics.csv``, so it ends with exactly one row per point.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bmf_graph.training.checkpoint import rng_state, seed_everything, set_rng_state
from bmf_graph.config import Config
from bmf_graph.envs.copies import WorkerCopies
from bmf_graph.files import atomic_write_text
from bmf_graph.training.rollout import EpisodeResult, acting_copy, play_episodes

ACTOR_CRITIC = ("ac", "mfac", "bmf_ac")
MODES = ("greedy", "mode", "sampled")
COLUMNS = ("evaluation", "episode", "trained_episodes", "episodes",
           *(f"eval/{kind}_{mode}" for mode in MODES for kind in ("return", "return_std", "kills")))
SEED_MODULUS = 2**31 - 1


def eval_every(cfg: Config) -> int:
    """``train.eval_every``, or 10 % of ``train.episodes`` (rounded up) when it is unset."""
    return cfg.train.eval_every or max(1, math.ceil(cfg.train.episodes / 10))


def eval_points(episodes: int, every: int) -> list[int]:
    """The episodes after which a run evaluates: ``every, 2 every, ...`` below ``episodes``, and
    ``episodes`` (the end)."""
    if every < 1 or episodes < 1:
        raise ValueError(f"eval_points: episodes={episodes!r}, every={every!r}; expected integers >= 1")
    return list(range(every, episodes, every)) + [episodes]


def eval_seed(seed: int, k: int) -> int:
    """The reset seed of evaluation episode ``k``: ``(seed * 1,000,003 - 1 - k) mod (2^31 - 1)``.
    Training's episode ``e`` uses ``(seed * 1,000,003 + e) mod (2^31 - 1)``
    (:func:`~bmf_graph.training.trainer.episode_seed`), so the two meet only if ``e + k + 1`` reaches
    ``2^31 - 1``."""
    return (seed * 1_000_003 - 1 - k) % SEED_MODULUS


def eval_modes(algo: str) -> list[tuple[str, float | None]]:
    """``(mode, explore)`` pairs a run of ``algo`` is evaluated in."""
    return [("mode", None), ("sampled", 1.0)] if algo in ACTOR_CRITIC else [("greedy", None)]


class EvalLog:
    """``eval.csv``: header written once (atomically), rows appended and flushed; ``keep_until``
    (resume) first cuts it to the rows of points ``<= keep_until`` by an atomic rewrite."""

    def __init__(self, run_dir: Path, keep_until: int | None = None):
        self.path = Path(run_dir) / "eval.csv"
        self.rows = 0
        """Rows written so far (each numbered in the ``evaluation`` column, 1, 2, ...; ``last.pt``
        keeps the count as ``evaluations``, which a resume checks the file against)."""
        if not self.path.exists():
            atomic_write_text(self.path, ",".join(COLUMNS) + "\n")
        elif keep_until is not None:
            rows = read_eval(self.path)
            kept = [r for r in rows if r["episode"] <= keep_until]
            self.rows = len(kept)
            if len(kept) != len(rows):
                lines = [",".join(COLUMNS)] + [",".join(_cell(r.get(c)) for c in COLUMNS) for r in kept]
                atomic_write_text(self.path, "\n".join(lines) + "\n")
        else:
            raise FileExistsError(f"{self.path} already exists in a new run; expected a new run folder or resume=")

    def write(self, row: dict[str, float]) -> None:
        self.rows += 1
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_cell({**row, "evaluation": self.rows}.get(c)) for c in COLUMNS])


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def read_eval(path: Path | str) -> list[dict[str, float]]:
    """Rows of an ``eval.csv`` (or of the one in a run folder) as dicts of floats (empty cells left out)."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path} has columns {reader.fieldnames}; expected {','.join(COLUMNS)}")
        return [{k: float(v) for k, v in row.items() if v != ""} for row in reader]


class TrainingEvaluation:
    """The evaluations of one training run (module docstring); the trainer calls
    :meth:`after_round` after every round of episodes.

    Args:
        trainer: the :class:`~bmf_graph.training.trainer.Trainer` (its config, copies, policies, device,
            run folder and episode count, at the episode it starts or resumes from).
        logger: the run's :class:`~bmf_graph.training.logging.RunLogger` (its TensorBoard writer).
    """

    def __init__(self, trainer: Any, logger: Any):
        cfg = trainer.cfg
        self.trainer, self.writer = trainer, getattr(logger, "writer", None)
        self.points = eval_points(cfg.train.episodes, eval_every(cfg))
        self.seeds = [eval_seed(cfg.seed, k) for k in range(cfg.train.eval_episodes)]
        self.modes = eval_modes(cfg.algo.name)
        self.team = cfg.env.learn_teams[0]
        # a resume (also one restarting a stuck run in place, from episode 0) keeps the rows up to its checkpoint
        self.log = EvalLog(trainer.run_dir, keep_until=trainer.episode if cfg.resume else None)
        self.done = trainer.episode

    def after_round(self, episode: int) -> None:
        """Evaluate once if the round that ended at ``episode`` passed evaluation points, and write
        one row per point passed."""
        passed = [p for p in self.points if self.done < p <= episode]
        self.done = episode
        if not passed:
            return
        row = self.evaluate()
        for point in passed:
            self.log.write({"episode": point, "trained_episodes": episode, **row})
            if self.writer is not None:
                for key, value in row.items():
                    if key.startswith("eval/"):
                        self.writer.add_scalar(key, value, point)

    def evaluate(self) -> dict[str, float]:
        """Play the evaluation episodes in every mode; the row's values."""
        row: dict[str, float] = {"episodes": len(self.seeds)}
        for mode, explore in self.modes:
            results = self.play(explore)
            returns = np.array([r.returns[self.team] for r in results], dtype=float)
            row[f"eval/return_{mode}"] = float(returns.mean())
            row[f"eval/return_std_{mode}"] = float(returns.std())
            row[f"eval/kills_{mode}"] = float(np.mean([r.kills[self.team] for r in results]))
        return row

    def play(self, explore: float | None) -> list[EpisodeResult]:
        """The evaluation episodes, as many at once as the run has env copies, played by copies of
        the policies (:func:`~bmf_graph.training.rollout.acting_copy`: the same weights, their own episode
        state, so BMF's warm-start centroids stay training's), with training's random streams
        saved before and restored after."""
        t = self.trainer
        state = rng_state()
        policies = [acting_copy(p) for p in t.policies]  # the same weights; BMF's warm-start groups untouched
        try:
            seed_everything(self.seeds[0])
            results: list[EpisodeResult] = []
            with torch.no_grad():
                for start in range(0, len(self.seeds), t.copies.num_envs):
                    chunk: Sequence[int] = self.seeds[start:start + t.copies.num_envs]
                    parts = 2 if isinstance(t.copies, WorkerCopies) and len(chunk) >= 2 else 1
                    results += play_episodes(t.copies, policies, t.device, chunk, t.max_steps, explore, parts=parts)
            return results
        finally:
            set_rng_state(state)
