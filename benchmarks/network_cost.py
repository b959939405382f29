"""Cost of the networks of ``algo.network`` per task: parameters, forward and Adam step.

    python benchmarks/network_cost.py [--rows 64 1024] [--repeats 20] [--out FILE.json]

For every task's team (Battle 64 v 64, Firefighter, Pursuit's predators) and every network
(``branched``, ``reference``, ``mlp``), with no context and with BMF's two-part context: the
parameter count, and the process CPU milliseconds (one torch thread; steadier than wall time on a
shared machine) of a forward pass without gradients and of a forward, backward and Adam step, on
``--rows`` agent rows (64: one minibatch of MFRL's agent transitions; 1,024: one acting step of
16 env copies of 64 agents). Prints JSON.
"""
from __future__ import annotations

import argparse
import time

import torch

from bmf_graph.algos.networks import make_network, parameter_count
from bmf_graph.config.checks import NETWORKS
from bmf_graph.envs import make_env

from report import emit

TASKS = {"battle": {}, "firefighter": {}, "pursuit": {}}


def cost(call, repeats: int) -> float:
    """Process CPU milliseconds per call, after three warm-up calls."""
    for _ in range(3):
        call()
    start = time.process_time()
    for _ in range(repeats):
        call()
    return 1000 * (time.process_time() - start) / repeats


def measure(spec, network: str, context_dim: int, rows: int, repeats: int) -> dict:
    net = make_network(spec, network, context_dim, spec.num_actions, 64)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    obs, context = torch.rand(rows, spec.obs_dim), torch.rand(rows, context_dim)

    def forward() -> None:
        with torch.no_grad():
            net(obs, context)

    def step() -> None:
        optimizer.zero_grad()
        net(obs, context).square().mean().backward()
        optimizer.step()

    return {"parameters": parameter_count(net), "forward_ms": round(cost(forward, repeats), 3),
            "step_ms": round(cost(step, repeats), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for task, kwargs in TASKS.items():
        env = make_env(task, kwargs)
        spec = env.teams[0]
        env.close()
        for network in NETWORKS:
            if network == "reference" and len(spec.view_shape) != 3:
                continue
            for context_dim in (0, 2 * spec.num_actions):
                for rows in args.rows:
                    results.append({"task": task, "team": spec.name, "obs_dim": spec.obs_dim, "network": network,
                                    "context_dim": context_dim, "rows": rows,
                                    **measure(spec, network, context_dim, rows, args.repeats)})
    emit({"benchmark": "network_cost", "threads": 1, "results": results}, args.out)


if __name__ == "__main__":
    main()
