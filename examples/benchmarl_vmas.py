"""Train BMF, BenchMARL's GNN and BenchMARL's MLP on one VMAS task for a few iterations and print
JSON: the mean episode return of every iteration, the last one, and the wall and process (CPU)
time per iteration (the CPU time is the steadier of the two on a shared machine).

    python examples/benchmarl_vmas.py --algorithm mappo --task navigation --iterations 10

Needs the ``[benchmarl]`` extra (benchmarl, torchrl, tensordict, vmas). Each model is the
policy and the critic; the GNN is ``GraphConv`` on the complete graph of the agents (its
``from_pos`` topology needs torch-cluster), the MLP BenchMARL's default ``[256, 256]`` Tanh.
"""
import argparse
import json
import logging
import tempfile
import time

import torch

from benchmarl.experiment import Callback

from bmf_graph.integrations.benchmarl import BMFConfig, make_experiment


class Returns(Callback):
    """The mean episode return of each iteration's collection."""

    def __init__(self):
        super().__init__()
        self.returns = []

    def on_train_end(self, training_td, group):
        self.returns.append(float(self.experiment.mean_return))


def model_configs(radius: float, num_groups: int) -> dict:
    """BMF and BenchMARL's own GNN and MLP, by name."""
    import torch_geometric
    from benchmarl.models import GnnConfig, MlpConfig

    return {"bmf": BMFConfig(radius=radius, num_groups=num_groups),
            "gnn": GnnConfig(topology="full", self_loops=False,
                             gnn_class=torch_geometric.nn.conv.GraphConv, gnn_kwargs={}),
            "mlp": MlpConfig.get_from_yaml()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="mappo", choices=["mappo", "ippo", "iql"])
    parser.add_argument("--task", default="navigation", help="a VMAS task, e.g. navigation, balance")
    parser.add_argument("--n-agents", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=100, help="steps per episode")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--frames", type=int, default=1200, help="frames per iteration")
    parser.add_argument("--envs", type=int, default=12, help="vectorised environments")
    parser.add_argument("--minibatch-iters", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--models", nargs="+", default=["bmf", "gnn", "mlp"])
    parser.add_argument("--radius", type=float, default=0.5)
    parser.add_argument("--num-groups", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("torchrl").setLevel(logging.WARNING)  # stdout holds the JSON only

    configs = model_configs(args.radius, args.num_groups)
    results = {"algorithm": args.algorithm, "task": args.task, "n_agents": args.n_agents,
               "iterations": args.iterations, "frames_per_iteration": args.frames,
               "threads": args.threads, "models": {}}
    for name in args.models:
        runs = []
        for seed in args.seeds:
            returns = Returns()
            with tempfile.TemporaryDirectory() as folder:
                experiment = make_experiment(
                    configs[name], algorithm=args.algorithm, task=args.task,
                    n_agents=args.n_agents, max_steps=args.max_steps,
                    iterations=args.iterations, frames_per_batch=args.frames,
                    n_envs=args.envs, minibatch_iters=args.minibatch_iters,
                    minibatch_size=args.frames // 4, seed=seed, folder=folder,
                    callbacks=[returns])
                start, cpu_start = time.perf_counter(), time.process_time()
                experiment.run()
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            runs.append({"seed": seed, "returns": [round(r, 4) for r in returns.returns],
                         "final_return": round(returns.returns[-1], 4),
                         "seconds_per_iteration": round(wall / args.iterations, 3),
                         "cpu_seconds_per_iteration": round(cpu / args.iterations, 3)})
        results["models"][name] = {
            "final_return_mean": round(sum(r["final_return"] for r in runs) / len(runs), 4),
            **{f"{key}_mean": round(sum(r[key] for r in runs) / len(runs), 3)
               for key in ("seconds_per_iteration", "cpu_seconds_per_iteration")},
            "runs": runs}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
