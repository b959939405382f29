"""radius_graph backends side by side: pure torch (dense below 384 agents, else the cell list),
scipy's KD-tree (the same dense path below 384 agents) and torch-cluster.

Agents as in ``scaling.py`` (distinct random cells at battle density 0.08 per cell, r = 6). Per
backend and size: the edge count (the backends must give the same edges, or the script stops)
and the median wall time (``time_s``) and process time (``cpu_s``, the steadier on a shared
machine) of one call over ``--reps`` timed blocks, each as long as ``--min-seconds`` allows, plus what ``set_backend("auto")`` picks on the device. The KD-tree runs on the CPU only
(its column is ``null`` on CUDA); the torch-cluster column is ``null`` when torch-cluster (extra
``[cluster]``) is not installed.

    python benchmarks/graph_backends.py [--sizes 256,1024] [--device auto|cpu|cuda] [--threads N] [--out FILE]

Prints JSON; ``--out`` also writes it.
"""
import argparse
import statistics
import time
from pathlib import Path

import torch

from bmf_graph.graph import radius as graph
from bmf_graph.cli.options import int_list
from report import emit
from scaling import RADIUS, SIZES, make_inputs


def time_backend(backend: str, pos: torch.Tensor, reps: int, min_seconds: float) -> tuple[dict, torch.Tensor]:
    graph.set_backend(backend)
    edge_index = graph.radius_graph(pos, RADIUS)  # warm-up

    def sync():
        if pos.is_cuda:
            torch.cuda.synchronize()

    times, cpu_times = [], []
    for _ in range(reps):
        calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            graph.radius_graph(pos, RADIUS)
            calls += 1
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds / reps:
                break
        times.append(elapsed / calls)
        cpu_times.append((time.process_time() - cpu_start) / calls)
    return {"num_edges": edge_index.size(1), "time_s": statistics.median(times),
            "cpu_s": statistics.median(cpu_times)}, edge_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int_list, default=",".join(map(str, SIZES)))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    try:
        graph.set_backend("cluster")
        has_cluster = True
    except ImportError:
        has_cluster = False
    backends = ["torch"] + (["kdtree"] if device.type == "cpu" else []) + (["cluster"] if has_cluster else [])
    results = []
    for n in args.sizes:
        pos, _, _ = make_inputs(n, device)
        timed = {name: time_backend(name, pos, args.reps, args.min_seconds) for name in backends}
        for name, (_, edge_index) in timed.items():
            if not torch.equal(edge_index, timed["torch"][1]):
                raise SystemExit(f"graph_backends: {name} and torch give different edges at N={n}")
        graph.set_backend("auto")
        results.append({"num_agents": n, **{name: timed[name][0] if name in timed else None
                                            for name in ("torch", "kdtree", "cluster")},
                        "auto": graph.get_backend(device)})
    graph.set_backend("auto")
    emit({"benchmark": "graph_backends", "device": str(device),
          "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
          "torch_cluster": has_cluster, "radius": RADIUS, "results": results}, args.out)


if __name__ == "__main__":
    main()
