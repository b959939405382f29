"""The training loop: rounds of ``train.envs`` episodes played at once in env copies by
:func:`~bmf_graph.training.rollout.play_episodes`, with learners.

Each copy's episode is one training episode: one row of ``metrics.csv``, counted toward
``train.episodes``; the exploration progress of a round is ``episodes done / (episodes - 1)``
at its start, and every policy acts with it. ``train(cfg)`` runs a whole configuration and returns its run folder
``{runs_dir}/{conf}__{algo}__{seed}__{time}/`` holding ``config.yaml``, ``metrics.csv``,
TensorBoard events, model files ``checkpoints/model_ep{E}.safetensors`` /
``model_final.safetensors`` (each with its ``.json`` spec) and the resumable state
``checkpoints/last.pt``.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bmf_graph.algos import NonFiniteLoss, make_algorithm
from bmf_graph.algos.base import soft_update
from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.training.checkpoint import UnreadableFile, atomic_save, rng_state, save_model, seed_everything, set_rng_state
from bmf_graph.config import Config, from_yaml, resume_config, to_yaml
from bmf_graph.config.checks import ConfigError, resolve_device
from bmf_graph.envs import TASKS, make_env
from bmf_graph.files import atomic_write_text, disk_error, remove_temp_files
from bmf_graph.envs.copies import EnvCopies, LocalCopies, WorkerCopies
from bmf_graph.training.limits import check_limits
from bmf_graph.training.logging import RunLogger
from bmf_graph.training.players import load_policy
from bmf_graph.training.resume import read_state
from bmf_graph.training.rollout import EpisodeResult, play_episodes
from bmf_graph.training.runlock import RunLock
from bmf_graph.training.evaluation import TrainingEvaluation


def episode_seed(seed: int, episode: int) -> int:
    """Every episode's ``reset(seed=)``, derived so a resumed run replays the same episodes."""
    return (seed * 1_000_003 + episode) % (2**31 - 1)


def opponent_seed(seed: int, team: int) -> int:
    """The torch seed a self-play opponent of ``team`` is initialised from."""
    return int(np.random.SeedSequence([seed, team, 0x5E1F]).generate_state(1)[0])


class Trainer:
    """Owns the env copies, the team policies and the run folder of one training run; call
    :meth:`close` (or use :func:`train`) to stop a worker process."""

    def __init__(self, cfg: Config, run_dir: Path | None = None, lock: RunLock | None = None):
        self.cfg, self.lock = cfg, lock
        check_limits(cfg)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        try:
            self.env = make_env(cfg.env.name, cfg.env.kwargs)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"env.kwargs={dict(cfg.env.kwargs)} is not valid for {cfg.env.name}: {error}") from None
        self.max_steps = cfg.train.max_steps or self.env.max_steps
        teams = self.env.teams
        bad = [t for t in cfg.env.learn_teams if not 0 <= t < len(teams)]
        if bad or not cfg.env.learn_teams:
            raise ValueError(f"env.learn_teams={cfg.env.learn_teams} is not valid; expected indices in "
                             f"0..{len(teams) - 1} ({', '.join(t.name for t in teams)})")
        self.learners = {t: make_algorithm(teams[t], cfg.algo, cfg.env.radius).to(self.device)
                         for t in cfg.env.learn_teams}
        self.policies: list[Any] = [self.learners.get(t) or self._opponent(t) for t in range(len(teams))]
        self.episode, self.env_steps = 0, 0
        self.state_written = time.monotonic()  # when last.pt was last written (or the run began)
        self.evaluation: TrainingEvaluation | None = None  # set by train(); its row count goes into last.pt
        self.copies = self._copies()
        try:
            self.run_dir = run_dir or self._new_run_dir()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _opponent(self, team: int) -> Any:
        spec, opp = self.env.teams[team], self.cfg.opponent
        if opp.policy == "random":
            return RandomPolicy(spec)
        if opp.policy == "checkpoint":
            try:
                return load_policy(opp.checkpoint, spec, self.device)
            except ValueError as error:  # another task's model, or an unreadable file
                raise ConfigError(f"opponent.checkpoint={opp.checkpoint!r} is not valid: {error}") from None
        first = self.learners[self.cfg.env.learn_teams[0]]
        if first.spec.obs_dim != spec.obs_dim or first.spec.num_actions != spec.num_actions:
            raise ValueError(f"opponent.policy=self_play needs team {spec.name!r} to have the learner's spaces; "
                             f"use opponent.policy=random or checkpoint")
        # MFRL: a second network of the learner's kind with its own initialisation, drawn from a
        # seed of its own so the learner's random stream is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(opponent_seed(self.cfg.seed, team))
            opponent = make_algorithm(spec, self.cfg.algo, self.cfg.env.radius)
        return opponent.to(self.device).requires_grad_(False).eval()

    def _copies(self) -> EnvCopies:
        """``train.envs`` copies of the task (no more than episodes), here or in a worker process."""
        c = self.cfg
        num = min(c.train.envs, c.train.episodes)
        if hasattr(TASKS[c.env.name], "env_copies"):  # a vectorised simulator (VMAS): its envs are the copies
            copies: EnvCopies = TASKS[c.env.name].env_copies(num, **c.env.kwargs)
        elif c.train.worker:
            copies = WorkerCopies(c.env.name, c.env.kwargs, num)
        else:
            copies = LocalCopies([self.env] + [make_env(c.env.name, c.env.kwargs) for _ in range(num - 1)])
        if self.device.type == "cuda":
            copies.pin_memory()
        return copies

    def close(self) -> None:
        self.copies.close()  # local copies close self.env with the others
        if not isinstance(self.copies, LocalCopies):
            self.env.close()
        if self.lock is not None:
            self.lock.release()

    def _new_run_dir(self) -> Path:
        c = self.cfg
        name = c.run_name or f"{c.conf}__{c.algo.name}__{c.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(c.runs_dir) / name
        if run_dir.exists() and not c.overwrite:
            raise FileExistsError(f"run folder {run_dir} already exists; choose another run_name, resume={run_dir} "
                                  f"or overwrite=true to replace it")
        if run_dir.exists():
            self.lock = RunLock(run_dir)  # refused while another process holds it
            _empty_run_folder(run_dir)
        else:
            try:
                run_dir.mkdir(parents=True)
            except OSError as error:
                raise ConfigError(f"runs_dir={c.runs_dir!r} is not valid: cannot create {run_dir} "
                                  f"({error.strerror or error}); expected a writable folder") from None
            self.lock = RunLock(run_dir)
        atomic_write_text(run_dir / "config.yaml", to_yaml(c))
        return run_dir

    # ------------------------------------------------------------------ stepping
    def run_round(self, explore: float) -> list[EpisodeResult]:
        """Play the next ``min(train.envs, episodes left)`` training episodes at once."""
        c = self.cfg
        count = min(c.train.envs, c.train.episodes - self.episode)
        seeds = [episode_seed(c.seed, self.episode + e) for e in range(count)]
        return play_episodes(self.copies, self.policies, self.device, seeds, self.max_steps, explore, self.learners,
                             parts=2 if isinstance(self.copies, WorkerCopies) and count >= 2 else 1)

    def metrics(self, result: EpisodeResult, explore: float) -> dict[str, float]:
        """One episode's metrics row (without counters); the learners' logs are the round's means."""
        teams = self.env.teams
        metrics = {f"charts/return_{t.name}": result.returns[i] for i, t in enumerate(teams)}
        metrics.update({f"charts/kills_{t.name}": result.kills[i] for i, t in enumerate(teams)})
        first = self.cfg.env.learn_teams[0]
        metrics["charts/return"] = result.returns[first]
        metrics.update({k: float(np.mean(v)) for k, v in result.logs.items()})
        metrics["charts/entropy"] = metrics.get(f"charts/entropy_{teams[first].name}")
        metrics.update(self.learners[first].exploration_stats(explore))
        return metrics

    def _self_play_update(self, metrics: dict[str, float]) -> None:
        """MFRL self-play (``tools.Runner``): after an episode whose total learner reward beats
        the opponent's, ``opponent <- (1 - tau) * learner + tau * opponent`` (``opponent.tau``)."""
        if self.cfg.opponent.policy != "self_play":
            return
        learner_team = self.cfg.env.learn_teams[0]
        learner = self.learners[learner_team]
        for i, policy in enumerate(self.policies):
            if i in self.learners:
                continue
            mine = metrics[f"charts/return_{self.env.teams[learner_team].name}"]
            theirs = metrics[f"charts/return_{self.env.teams[i].name}"]
            if mine > theirs:
                soft_update(policy, learner, 1.0 - self.cfg.opponent.tau)

    # ------------------------------------------------------------------ persistence
    def check_finite(self) -> None:
        """Refuse (``NonFiniteLoss``) weights before they are saved unless every tensor's squared
        norm ``sum w^2`` is finite: no NaN or infinity, and no value so large (|w| >~ 1e19 in
        float32) that a forward pass overflows."""
        for i, policy in enumerate(self.policies):
            bad = next((name for name, value in policy.named_parameters()
                        if not torch.isfinite(value.detach().pow(2).sum())),
                       None) if isinstance(policy, torch.nn.Module) else None
            if bad is not None:
                raise NonFiniteLoss(f"the weights of team {self.env.teams[i].name!r} ({bad}) are not finite "
                                    f"after episode {self.episode}")

    def save(self, final: bool = False) -> None:
        """Model files of episode ``E`` (when a multiple of ``save_every``) and, at the end,
        ``model_final``; then ``last.pt``, written only after the weights were checked finite, and
        before the end only when ``train.state_minutes`` have passed since its last write."""
        self.check_finite()
        ckpt = self.run_dir / "checkpoints"
        first = self.cfg.env.learn_teams[0]
        names = [f"model_ep{self.episode:06d}"] + (["model_final"] if final else [])
        for t, algo in self.learners.items():
            suffix = "" if t == first else f"_{self.env.teams[t].name}"
            for name in names:
                save_model(ckpt / f"{name}{suffix}", algo)
        if not final and time.monotonic() - self.state_written < 60 * self.cfg.train.state_minutes:
            return
        state = {"episode": self.episode, "env_steps": self.env_steps, "rng": rng_state(),
                 "evaluations": self.evaluation.log.rows if self.evaluation is not None else 0,
                 "learners": {t: {"weights": a.state_dict(), "training": a.training_state()}
                              for t, a in self.learners.items()},
                 "policies": {i: p.state_dict() for i, p in enumerate(self.policies) if i not in self.learners}}
        atomic_save(state, ckpt / "last.pt")
        self.state_written = time.monotonic()

    def load(self, state: dict[str, Any]) -> None:
        """Continue from ``state``, the run state :func:`~bmf_graph.training.resume.read_state` checked."""
        path = self.run_dir / "checkpoints" / "last.pt"
        try:
            for t, algo in self.learners.items():
                algo.load_state_dict(state["learners"][t]["weights"])
                algo.load_training_state(state["learners"][t]["training"])
            for i, weights in state["policies"].items():
                self.policies[i].load_state_dict(weights)
            self.episode, self.env_steps = state["episode"], state["env_steps"]
            set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UnreadableFile(f"{path} does not match this run's config.yaml ({first}); it was written by "
                                 f"another version or for another run") from None

    # ------------------------------------------------------------------ main loop
    def train(self, logger: RunLogger) -> Path:
        total, every = self.cfg.train.episodes, self.cfg.train.save_every
        bar = tqdm(total=total, initial=self.episode, disable=not self.cfg.train.progress, unit="ep", dynamic_ncols=True)
        try:
            evaluation = self.evaluation = TrainingEvaluation(self, logger)
            while self.episode < total:
                explore = self.episode / max(total - 1, 1)
                start, before = time.perf_counter(), self.episode
                results = self.run_round(explore)
                sps = sum(r.steps for r in results) / max(time.perf_counter() - start, 1e-9)
                for result in results:
                    metrics = self.metrics(result, explore)
                    self._self_play_update(metrics)
                    self.episode += 1
                    self.env_steps += result.steps
                    logger.log({"episode": self.episode, "env_steps": self.env_steps, **metrics, "perf/sps": sps})
                    bar.update(1)
                    bar.set_postfix(ret=f"{metrics['charts/return']:.1f}", sps=f"{sps:.0f}")
                evaluation.after_round(self.episode)
                if self.episode // every > before // every and self.episode < total:
                    self.save()
            self.save(final=True)  # the one write of last.pt at the end
        finally:
            bar.close()
            logger.close()
        return self.run_dir


def _stop_message(error: NonFiniteLoss, trainer: Trainer) -> str:
    last = trainer.run_dir / "checkpoints" / "last.pt"
    minutes = trainer.cfg.train.state_minutes
    later = f" and {minutes:g} minutes (train.state_minutes)" if minutes else ""
    where = (f"the last good checkpoint is {last}" if last.is_file() else
             f"no checkpoint was written before (the first follows episode {trainer.cfg.train.save_every}{later})")
    return f"{error} (episodes {trainer.episode + 1}.. of run {trainer.run_dir}); {where}"


def _record_extension(trainer: Trainer) -> None:
    """``resume=RUN train.episodes=N``: the run's ``config.yaml`` takes the new budget."""
    path = trainer.run_dir / "config.yaml"
    written = from_yaml(path, check=False)
    if written.train.episodes != trainer.cfg.train.episodes:
        written.train.episodes = trainer.cfg.train.episodes
        atomic_write_text(path, to_yaml(written))


def _empty_run_folder(run_dir: Path) -> None:
    """``overwrite=true``: remove what a run folder holds (not its lock); a folder that is not a
    run folder (no ``config.yaml``) and is not empty is refused."""
    entries = [p for p in run_dir.iterdir() if p.name != ".lock"]
    if entries and not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"overwrite=true would replace {run_dir}, which is not a run folder (no config.yaml); "
                          f"expected a run folder or a new run_name")
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _open_log(trainer: Trainer, keep_rows: int | None) -> RunLogger:
    """The run's logger; on resume it cuts ``metrics.csv`` to ``keep_rows`` rows, or refuses a
    header it cannot continue (one line, nothing written)."""
    teams, learn = trainer.env.teams, trainer.cfg.env.learn_teams
    try:
        return RunLogger(trainer.run_dir, [t.name for t in teams], keep_rows=keep_rows,
                         other_learners=[teams[t].name for t in learn[1:]], cfg=trainer.cfg)
    except ValueError as error:
        raise UnreadableFile(str(error)) from None


def train(cfg: Config) -> Path:
    """Run a training run and return its folder.

    With ``cfg.resume`` the run folder's own ``config.yaml`` is used (only ``train.episodes``
    may differ: a larger value extends the run; see :func:`~bmf_graph.config.resume_config`)
    and training continues from ``checkpoints/last.pt`` exactly, once
    :func:`~bmf_graph.training.resume.read_state` found it and the per-episode CSVs consistent (before
    anything is written); a run without ``last.pt`` restarts from episode 1 in place. The run
    folder is locked (:class:`~bmf_graph.training.runlock.RunLock`) for the whole run; temporary files
    left by a killed run are removed once the checks pass.
    """
    state = None
    if cfg.resume:
        run_dir = Path(cfg.resume)
        lock = RunLock(run_dir)
        try:
            saved = resume_config(cfg)
            state = read_state(run_dir, saved, resolve_device(saved.device))
            if state is None:
                print(f"resume={run_dir}: no checkpoint yet (checkpoints/last.pt); restarting the run from episode 1 "
                      f"in place", file=sys.stderr, flush=True)
            trainer = Trainer(saved, run_dir=run_dir, lock=lock)
        except BaseException:
            lock.release()
            raise
    else:
        trainer = Trainer(cfg)
    try:
        if state is not None:
            trainer.load(state)
        logger = _open_log(trainer, trainer.episode if cfg.resume else None)
        if cfg.resume:
            remove_temp_files(trainer.run_dir)
            _record_extension(trainer)
        return trainer.train(logger)
    except NonFiniteLoss as error:
        raise NonFiniteLoss(_stop_message(error, trainer)) from None
    except OSError as error:
        raise disk_error(error, trainer.run_dir) from error
    finally:
        trainer.close()
