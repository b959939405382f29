"""Training throughput on VMAS crowd navigation from 100 to 1,000+ agents per env (continuous actions).

    python benchmarks/vmas_throughput.py [--sizes 100,250,500,1000,2000] [--algos bmf_ac,mfac]
        [--envs 4] [--steps 20] [--rounds 2] [--device cpu] [--out FILE.json] [--no-plot]

For each size ``N`` (agents per env):

- ``raw``: the ``--envs`` VMAS copies stepped with uniformly random actions, no policy.
- per algorithm: a :class:`~bmf_graph.training.trainer.Trainer` of ``conf/vmas_crowd_navigation.yaml``
  with ``algo=NAME``, ``env.kwargs.n_agents=N``, ``train.envs=--envs`` and episodes of
  ``--steps`` steps plays one untimed round (replay filled, the first updates done), then
  ``--rounds`` timed rounds, acting and updates included at the conf's replay ratio
  (``algo.learning_starts`` lowered to one step; ``steps_with_updates`` counts the steps that
  took gradient steps).

``env_steps_per_s`` counts copy-steps (as ``perf/sps``: ``--envs`` per VMAS step);
``agent_steps_per_s`` is ``N`` times that. ``load`` gives the machine's load averages before and
after (timings on a shared machine vary). Prints JSON; ``--out`` also writes it; draws
``assets/vmas_throughput.png`` unless ``--no-plot``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import emit  # noqa: E402

from bmf_graph.config import load_config  # noqa: E402
from bmf_graph.envs.vmas import env_copies  # noqa: E402
from bmf_graph.training.trainer import Trainer  # noqa: E402


def raw(n: int, envs: int, steps: int, device: str) -> float:
    """Copy-steps per second of the VMAS copies under random actions."""
    copies = env_copies(envs, n_agents=n, max_steps=steps, device=device)
    part = (0, envs)
    copies.reset(list(range(envs)), [part])
    copies.result(part)
    start = time.perf_counter()
    for t in range(steps):
        copies.step(part, [np.random.uniform(-1, 1, (envs * n, 2)).astype(np.float32)], t)
        copies.result(part)
    copies.close()
    return envs * steps / (time.perf_counter() - start)


def training(n: int, algo: str, args: argparse.Namespace, runs_dir: str) -> dict:
    cfg = load_config(["conf=vmas_crowd_navigation", f"algo={algo}", f"runs_dir={runs_dir}", f"device={args.device}",
                       f"env.kwargs.n_agents={n}", f"env.kwargs.max_steps={args.steps}", f"train.envs={args.envs}",
                       f"train.episodes={args.envs * (args.rounds + 1)}", "train.progress=false", "threads=1",
                       f"env.kwargs.device={args.device}", f"algo.learning_starts={args.envs}"])
    trainer = Trainer(cfg)
    try:
        trainer.run_round(0.0)
        trainer.episode += args.envs
        start, steps, updates = time.perf_counter(), 0, 0
        for _ in range(args.rounds):
            results = trainer.run_round(0.5)
            steps += sum(r.steps for r in results)
            updates += len(results[0].logs.get("losses/q", []))
        seconds = time.perf_counter() - start
    finally:
        trainer.close()
    return {"env_steps_per_s": steps / seconds, "agent_steps_per_s": n * steps / seconds, "seconds": seconds,
            "steps_with_updates": updates}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["agents"] for row in report["rows"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name in ["raw", *report["algos"]]:
        ax.plot(sizes, [row[name]["agent_steps_per_s"] for row in report["rows"]], marker="o",
                label="VMAS alone (random actions)" if name == "raw" else f"training {name}")
    ax.set(xscale="log", yscale="log", xlabel="agents per env", ylabel="agent-steps per second",
           title=f"VMAS crowd navigation, {report['envs']} envs, {report['device']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,250,500,1000,2000")
    parser.add_argument("--algos", default="bmf_ac,mfac")
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    algos = args.algos.split(",")
    report = {"benchmark": "vmas_throughput", "device": args.device, "envs": args.envs, "steps": args.steps,
              "rounds": args.rounds, "algos": algos, "threads": 1, "load": {"before": os.getloadavg()}, "rows": []}
    with tempfile.TemporaryDirectory() as runs_dir:
        for n in map(int, args.sizes.split(",")):
            sps = raw(n, args.envs, args.steps, args.device)
            row = {"agents": n, "raw": {"env_steps_per_s": sps, "agent_steps_per_s": n * sps}}
            for algo in algos:
                row[algo] = training(n, algo, args, runs_dir)
            report["rows"].append(row)
            print(f"{n} agents done", file=sys.stderr)
    report["load"]["after"] = os.getloadavg()
    if not args.no_plot:
        plot(report, ROOT / "assets" / "vmas_throughput.png")
    emit(report, args.out)


if __name__ == "__main__":
    main()
