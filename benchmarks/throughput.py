"""Battle throughput in one run: raw env, acting, training of every algorithm, BMF-Q at 2,048 agents.

    python benchmarks/throughput.py [--algos bmf_q mfq ...] [--acting-envs 32] [--big-episodes 4] [--out FILE.json]

An *agent-step* is one agent slot of either team in one env step (128 per step at 64 v 64).

- ``raw``: one batched env stepped with uniformly random actions.
- ``acting``: BMF-Q policies for both teams (learner and self-play opponent), no learning,
  through :func:`bmf_graph.training.rollout.play_episodes`: one env; ``--acting-envs`` copies stepped in
  this process; the same copies stepped by a ``WorkerCopies`` process and played in two halves.
- ``training``: every algorithm with the shipped defaults (``conf/battle.yaml`` plus
  ``algo=NAME``, so ``train.envs`` and ``train.worker`` as shipped): a :class:`Trainer` plays
  one untimed round of ``train.envs`` 25-step episodes (which passes ``algo.learning_starts``),
  then ``--rounds`` timed rounds of full episodes, updates included. ``update_ms`` is the mean
  time of one learner update afterwards (Q family; the BMF-Q row also without the VAE).
  ``training_bmf_q_worker``: BMF-Q again with ``train.worker=true``.
- ``targets``: BMF-Q's training speed over MFQ's, over GAT-MF's and over the raw env; the
  minutes a 2,000-episode Battle BMF-Q run would take at that speed if every episode ran its
  400 steps (an extrapolation from the timed rounds, not a measured run).
- ``large``: ``train.py`` with BMF-Q at 2,048 agents (map 160) in a child process for one round
  of ``train.envs`` episodes of ``--big-steps`` steps: wall time and peak memory (resident set
  of the process and its worker, sampled every 0.1 s).
- ``load``: the machine's load averages before and after (timings on a shared machine vary).

Run it from the repository root. Prints JSON.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from bmf_graph.config import load_config
from bmf_graph.config.checks import ALGORITHMS
from bmf_graph.envs import make_env
from bmf_graph.envs.copies import LocalCopies, WorkerCopies
from bmf_graph.training.rollout import play_episode, play_episodes
from bmf_graph.training.trainer import Trainer

from report import emit

ROOT = Path(__file__).resolve().parent.parent
BIG = ["env.kwargs.map_size=160", "env.kwargs.agents_per_team=1024"]


def per_second(run, steps: int) -> float:
    """Env steps per second of ``run()`` (returns the env steps it took) over at least ``steps``."""
    done, start = 0, time.perf_counter()
    while done < steps:
        done += run()
    return done / (time.perf_counter() - start)


def raw_and_acting(steps: int, envs: int, tmp: Path) -> dict:
    trainer = Trainer(load_config(["conf=battle", "algo=bmf_q", f"runs_dir={tmp}", "run_name=acting",
                                   "train.progress=false", "train.envs=1", "train.worker=false"]))
    env, policies, agents = trainer.env, trainer.policies, sum(t.num_agents for t in trainer.env.teams)
    rng = np.random.default_rng(0)

    def raw() -> int:
        env.reset(seed=0)
        for t in range(env.max_steps):
            _, term, trunc, _ = env.step([rng.integers(s.num_actions, size=s.num_agents) for s in env.teams])
            if term or trunc:
                return t + 1
        return env.max_steps

    def copies(played, parts: int) -> int:
        return sum(r.steps for r in play_episodes(played, policies, "cpu", list(range(played.num_envs)),
                                                  explore=1.0, parts=parts))

    out = {"agents": agents, "raw": agents * per_second(raw, steps)}
    with torch.no_grad():
        out["acting_one_env"] = agents * per_second(lambda: play_episode(env, policies, "cpu", 0, explore=1.0).steps,
                                                    steps)
    with LocalCopies([make_env("battle", {}) for _ in range(envs)]) as local:
        out["acting_copies"] = agents * per_second(lambda: copies(local, 1), steps * envs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with WorkerCopies("battle", {}, envs) as worker:
        copies(worker, 2)  # the worker's start and first episode are not timed
        out["acting_worker"] = agents * per_second(lambda: copies(worker, 2), steps * envs)
    torch.set_num_threads(threads)
    out.update(acting_envs=envs, acting_worker_threads=1)
    trainer.close()
    return out


def update_ms(learner, repeats: int = 20) -> float:
    learner.update(0.5)
    start = time.perf_counter()
    for _ in range(repeats):
        learner.update(0.5)
    return 1000 * (time.perf_counter() - start) / repeats


def training(algo: str, rounds: int, tmp: Path, *overrides: str) -> dict:
    name = "_".join([algo, *(o.replace("=", "-").replace(".", "-") for o in overrides)])
    cfg = load_config(["conf=battle", f"algo={algo}", f"runs_dir={tmp}", f"run_name={name}", "train.progress=false",
                       *overrides])
    trainer = Trainer(cfg)
    agents = sum(t.num_agents for t in trainer.env.teams)
    try:
        trainer.max_steps = 25  # untimed short round: fills the replay past learning_starts
        trainer.run_round(0.5)
        trainer.max_steps = cfg.train.max_steps or trainer.env.max_steps
        start = time.perf_counter()
        steps = sum(sum(r.steps for r in trainer.run_round(0.5)) for _ in range(rounds))
        sps = steps / (time.perf_counter() - start)
        out = {"algo": algo, "overrides": list(overrides), "envs": cfg.train.envs, "worker": cfg.train.worker,
               "threads": cfg.threads, "env_steps_timed": steps, "env_steps_per_s": sps, "agent_steps_per_s": agents * sps}
        learner = trainer.learners[0]
        if hasattr(learner, "buffer"):
            out["update_ms"] = update_ms(learner)
            if algo.startswith("bmf"):
                learner.interaction.vae_every = 10**9  # every update after the first skips the VAE
                learner.interaction.aux_calls = 1
                out["update_ms_without_vae"] = update_ms(learner)
        return out
    finally:
        trainer.close()


def large(steps: int, tmp: Path) -> dict:
    """BMF-Q at 2,048 agents: one round of ``train.envs`` episodes in a child ``train.py``."""
    envs = load_config(["conf=battle"]).train.envs
    cmd = [sys.executable, "train.py", "conf=battle", "algo=bmf_q", *BIG, f"train.max_steps={steps}",
           f"train.episodes={envs}", "train.progress=false", f"runs_dir={tmp}", "run_name=big"]
    start, peak = time.perf_counter(), 0
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process = psutil.Process(child.pid)
    while child.poll() is None:
        try:
            tree = [process] + process.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.1)
    out, err = child.communicate()
    if child.returncode:
        raise RuntimeError(f"large run failed ({' '.join(cmd)}):\n{err[-2000:]}")
    wall = time.perf_counter() - start
    return {"agents": 2048, "map_size": 160, "episodes": envs, "max_steps": steps, "command": " ".join(cmd[1:]),
            "wall_s": wall, "env_steps_per_s": envs * steps / wall, "peak_rss_gb": peak / 2**30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--steps", type=int, default=2000, help="env steps per raw / acting measurement")
    parser.add_argument("--acting-envs", type=int, default=32, help="copies for the acting measurements")
    parser.add_argument("--rounds", type=int, default=1, help="timed training rounds per algorithm")
    parser.add_argument("--big-steps", type=int, default=100, help="episode length of the 2,048-agent run (0: skip)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    report = {"benchmark": "throughput", "task": "battle 64v64", "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        report["acting"] = raw_and_acting(args.steps, args.acting_envs, Path(tmp))
        report["training"] = [training(a, args.rounds, Path(tmp)) for a in args.algos]
        if "bmf_q" in args.algos:
            report["training_bmf_q_worker"] = training("bmf_q", args.rounds, Path(tmp), "train.worker=true")
        if args.big_steps:
            report["large"] = large(args.big_steps, Path(tmp))
    report["load_after"] = os.getloadavg()
    speed = {r["algo"]: r["env_steps_per_s"] for r in report["training"]}
    if "bmf_q" in speed:
        raw = report["acting"]["raw"]
        report["targets"] = {
            "bmf_q_over_mfq": speed["bmf_q"] / speed["mfq"] if "mfq" in speed else None,
            "bmf_q_over_gat_mf": speed["bmf_q"] / speed["gat_mf"] if "gat_mf" in speed else None,
            "bmf_q_training_over_raw_agent_steps": 128 * speed["bmf_q"] / raw,
            "full_bmf_q_run_minutes_extrapolated": 2000 * 400 / speed["bmf_q"] / 60,
        }
    emit(report, args.out)


if __name__ == "__main__":
    main()
