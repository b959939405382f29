"""Battle 64 v 64 throughput: raw env, acting (no updates) and training, in agent-steps/s.

    python benchmarks/throughput.py [--algos bmf_q mfq] [--steps 400] [--envs 1,32,64] [--out FILE.json]

Agent-steps/s counts every agent slot of both teams per environment step (128 per step at
64 v 64), as ``benchmarks/env_speed.py`` does. *raw* steps one batched env with uniformly
random actions; *acting* plays the learner and a self-play opponent without updates, through
:func:`bmf_graph.rollout.play_episode` for one env and through
:func:`bmf_graph.vector_rollout.play_episodes` for ``E > 1`` copies (one forward pass per team
and step for all copies): ``acting_copies`` steps them in this process with ``--threads`` torch
threads; ``acting_worker`` steps them in a worker process (``WorkerCopies``) and plays them in
two halves, so that the worker steps one half while the policies run on the other, with one
torch thread here (the worker takes the other core). *training* adds recording and the
algorithm's updates (after ``learning_starts``), one env. Prints JSON.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bmf_graph.config import load_config
from bmf_graph.envs import make_env
from bmf_graph.envs.copies import LocalCopies, WorkerCopies
from bmf_graph.evaluate import int_list
from bmf_graph.rollout import play_episode
from bmf_graph.trainer import Trainer
from bmf_graph.vector_rollout import play_episodes

from report import emit


def steps_per_second(run, steps: int) -> float:
    done, start = 0, time.perf_counter()
    while done < steps:
        done += run()
    return done / (time.perf_counter() - start)


def measure(algo: str, steps: int, threads: int, copies: list[int], tmp: Path) -> dict:
    cfg = load_config(["conf=battle", f"algo={algo}", f"runs_dir={tmp}", f"run_name={algo}", "train.progress=false",
                       f"threads={threads}", "algo.learning_starts=0", "device=cpu"])
    trainer = Trainer(cfg)
    env, agents = trainer.env, sum(t.num_agents for t in trainer.env.teams)
    rng = np.random.default_rng(0)

    def raw() -> int:
        env.reset(seed=0)
        for t in range(env.max_steps):
            _, term, trunc, _ = env.step([rng.integers(s.num_actions, size=s.num_agents) for s in env.teams])
            if term or trunc:
                return t + 1
        return env.max_steps

    def acting() -> int:
        with torch.no_grad():
            return play_episode(env, trainer.policies, trainer.device, seed=0, explore=1.0).steps

    def training() -> int:
        return play_episode(env, trainer.policies, trainer.device, seed=0, explore=0.5, learners=trainer.learners).steps

    def acting_copies(envs, parts: int) -> int:
        results = play_episodes(envs, trainer.policies, trainer.device, seeds=list(range(envs.num_envs)),
                                explore=1.0, parts=parts)
        return sum(r.steps for r in results)

    raw_sps, act_sps, train_sps = (agents * steps_per_second(f, steps) for f in (raw, acting, training))
    result = {"algo": algo, "agents": agents, "raw_agent_steps_per_s": raw_sps, "acting_agent_steps_per_s": act_sps,
              "training_agent_steps_per_s": train_sps, "acting_over_raw": act_sps / raw_sps,
              "training_over_raw": train_sps / raw_sps, "acting_copies": [], "acting_worker": []}
    for num_envs in (e for e in copies if e > 1):
        with LocalCopies([make_env(cfg.env.name, cfg.env.kwargs) for _ in range(num_envs)]) as envs:
            sps = agents * steps_per_second(lambda: acting_copies(envs, 1), steps * num_envs)
        result["acting_copies"].append({"envs": num_envs, "acting_agent_steps_per_s": sps,
                                        "acting_over_raw": sps / raw_sps})
        torch.set_num_threads(1)
        with WorkerCopies(cfg.env.name, cfg.env.kwargs, num_envs) as envs:
            acting_copies(envs, 2)  # the worker's start and first episode are not timed
            sps = agents * steps_per_second(lambda: acting_copies(envs, 2), steps * num_envs)
        torch.set_num_threads(threads)
        result["acting_worker"].append({"envs": num_envs, "parts": 2, "torch_threads": 1,
                                        "acting_agent_steps_per_s": sps, "acting_over_raw": sps / raw_sps})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["bmf_q", "mfq", "q"])
    parser.add_argument("--steps", type=int, default=400, help="environment steps per measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--envs", type=int_list, default="1,32,64",
                        help="comma-separated numbers of env copies played at once")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(a, args.steps, args.threads, args.envs, Path(tmp)) for a in args.algos]
    emit({"benchmark": "throughput", "task": "battle 64v64", "threads": args.threads, "results": results},
         args.out)


if __name__ == "__main__":
    main()
