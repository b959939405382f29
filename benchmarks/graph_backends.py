"""radius_graph backends side by side: the pure-torch cell list and torch-cluster.

Agents as in ``scaling.py`` (distinct random cells at battle density 0.08 per cell, r = 6). Per
backend and size: the edge count (the backends must agree) and the median time of one call
over ``--reps`` timed blocks, each as long as ``--min-seconds`` allows. The torch-cluster column is
``null`` when torch-cluster (extra ``[cluster]``) is not installed.

    python benchmarks/graph_backends.py [--sizes 256,1024] [--device auto|cpu|cuda] [--out FILE]

Prints JSON; ``--out`` also writes it.
"""
import argparse
import statistics
import time
from pathlib import Path

import torch

from bmf_graph import graph
from bmf_graph.cli.options import int_list
from report import emit
from scaling import RADIUS, SIZES, make_inputs


def time_backend(backend: str, pos: torch.Tensor, reps: int, min_seconds: float) -> dict:
    graph.set_backend(backend)
    edges = graph.radius_graph(pos, RADIUS).size(1)  # warm-up

    def sync():
        if pos.is_cuda:
            torch.cuda.synchronize()

    times = []
    for _ in range(reps):
        calls, start = 0, time.perf_counter()
        while True:
            graph.radius_graph(pos, RADIUS)
            calls += 1
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds / reps:
                break
        times.append(elapsed / calls)
    return {"num_edges": edges, "time_s": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int_list, default=",".join(map(str, SIZES)))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    try:
        graph.set_backend("cluster")
        has_cluster = True
    except ImportError:
        has_cluster = False
    results = []
    for n in args.sizes:
        pos, _, _ = make_inputs(n, device)
        row = {"num_agents": n, "torch": time_backend("torch", pos, args.reps, args.min_seconds),
               "cluster": (time_backend("cluster", pos, args.reps, args.min_seconds)
                           if has_cluster else None)}
        if row["cluster"] is not None and row["cluster"]["num_edges"] != row["torch"]["num_edges"]:
            raise SystemExit(f"graph_backends: edge counts differ at N={n}: {row}")
        results.append(row)
    graph.set_backend("auto")
    emit({"benchmark": "graph_backends", "device": str(device),
          "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
          "torch_cluster": has_cluster, "radius": RADIUS, "results": results}, args.out)


if __name__ == "__main__":
    main()
