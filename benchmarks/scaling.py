"""Scaling of the mean-field layers with the number of agents (issue 2, item 5).

Agents stand on distinct random cells of a square map at battle density (0.08 agents per cell),
see each other within r = 6 and form k = 8 groups. Per method and size, one step is
forward + backward of

- ``mf``:        radius graph -> MeanField
- ``bmf``:       radius graph -> DynamicGrouping of mu -> IntraGroupMeanField +
                 InterGroupAttention, as BMF runs in training: DynamicGrouping regroups every
                 ``group_interval`` = 10 steps (the training default), warm-started from the
                 previous centroids, and returns the stored groups in between (each timed
                 10-step block holds one regroup)
- ``bmf_regroup``: ``bmf`` regrouping on every step (interval 1), an upper bound
- ``bmf_cold``:  ``bmf_regroup`` with the grouping forgotten before every step, so each regroup
                 seeds k-means by k-means++ (the first regroup of a run)
- ``bmf_layers``: ``bmf`` between regroupings (groups fixed beforehand, no k-means in the step)
- ``gat_sparse``: radius graph -> GATMeanField (edge softmax)
- ``gat_dense``:  radius graph -> GATMeanField(dense=True) (N x N attention, as GAT-MF)

with gradients to the layer parameters and to the inputs (actions ``x`` and latents ``mu``).

Latents ``mu`` (D = 16) stand in for VAE latent means at consecutive regroupings: 8 behaviour
modes with centres m_c ~ N(0, I) (centres about 5.7 apart, members about 4 from their centre,
so the modes touch), agent i in mode c_i with mu_i = m_{c_i} + e_i. From one step to the next,
e_i ~ N(0, I) moves as e <- 0.9 e + sqrt(1 - 0.9^2) xi (each coordinate changes by about 0.45)
and 2 % of the agents switch to a random mode. Each step's latents are drawn outside its timed
window; the mean number of Lloyd iterations per timed regroup is reported as ``kmeans_iters``.

Each (method, N) runs in a fresh process (``--best-of R`` runs R such processes, in R rounds over
the methods of one N, and keeps the one with the lowest median, to discount load from other
users of a shared machine): time = median over timed blocks of 10 consecutive steps (the mean
step of each block, for every method alike) after one warm-up step, at least ``--reps`` blocks
and as many more as fill
``--min-seconds`` (so that a burst of load on a shared machine hits a minority of the steps of
a fast method; ``time_quartiles_s`` and ``num_steps`` are reported with it);
memory = on CPU the growth of the peak resident set size (``ru_maxrss``) over the warm-up and the
timed steps, on CUDA ``torch.cuda.max_memory_allocated`` above the memory held before them.
Dense GAT-MF is skipped (and the skip recorded) where its N x N buffers would exceed
``--dense-budget-gb``.

    python benchmarks/scaling.py [--device auto|cpu|cuda] [--sizes 256,1024] [--quick] [--out]

Prints JSON; ``--out`` also writes it (default ``benchmarks/results/scaling.json``); draws
``assets/scaling.png`` unless ``--no-plot``.
"""
import argparse
import json
import math
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import emit

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("mf", "bmf", "bmf_regroup", "bmf_cold", "bmf_layers", "gat_sparse", "gat_dense")
SIZES = (256, 1024, 4096, 16384, 65536)
DENSITY, RADIUS, NUM_GROUPS = 0.08, 6.0, 8
ACTION_DIM, LATENT_DIM, HIDDEN = 21, 16, 32  # battle's 21 actions; VAE latent; attention width
DENSE_BYTES_PER_PAIR = 24  # N x N buffers of the dense step, forward + backward (measured ~18)
NUM_MODES, LATENT_RHO, LATENT_SWITCH = 8, 0.9, 0.02  # latent modes, AR(1) factor, switch rate
MAX_STEPS = 2000  # most timed steps of one measurement
GROUP_INTERVAL = 10  # AlgoConfig.group_interval, the steps between regroupings in training


def make_inputs(num_agents: int, device):
    """Positions, one-hot actions and an endless iterator over the latents of consecutive
    steps."""
    import torch

    gen = torch.Generator().manual_seed(num_agents)
    side = math.ceil(math.sqrt(num_agents / DENSITY))
    cells = torch.randperm(side * side, generator=gen)[:num_agents]
    pos = torch.stack([cells // side, cells % side], 1).float()
    actions = torch.randint(0, ACTION_DIM, (num_agents,), generator=gen)
    x = torch.nn.functional.one_hot(actions, ACTION_DIM).float()

    def latents():
        centres = torch.randn(NUM_MODES, LATENT_DIM, generator=gen)
        mode = torch.randint(NUM_MODES, (num_agents,), generator=gen)
        noise = torch.randn(num_agents, LATENT_DIM, generator=gen)
        while True:
            yield (centres[mode] + noise).to(device)
            noise = LATENT_RHO * noise \
                + math.sqrt(1 - LATENT_RHO ** 2) * torch.randn(noise.shape, generator=gen)
            switch = torch.rand(num_agents, generator=gen) < LATENT_SWITCH
            other = torch.randint(NUM_MODES, (num_agents,), generator=gen)
            mode = torch.where(switch, other, mode)

    return pos.to(device), x.to(device), latents()


def build_step(method: str, pos, x, mu0, kmeans_max_iter: int):
    """A closure running one forward + backward of ``method`` given this step's latents ``mu``;
    returns (number of edges, Lloyd iterations of its regroup or None). ``mu0`` fixes the
    groups of ``bmf_layers``."""
    import torch

    from bmf_graph.graph import radius_graph
    from bmf_graph.nn.gat_mean_field import GATMeanField
    from bmf_graph.nn.grouping import DynamicGrouping
    from bmf_graph.nn.inter_group import InterGroupAttention
    from bmf_graph.nn.intra_group import IntraGroupMeanField
    from bmf_graph.nn.mean_field import MeanField

    device = pos.device
    readout = torch.linspace(-1, 1, ACTION_DIM, device=device)  # a loss touching every column
    mean_field, intra = MeanField(), IntraGroupMeanField()
    inter = InterGroupAttention(LATENT_DIM, HIDDEN).to(device)
    gat = GATMeanField(LATENT_DIM, HIDDEN, dense=method == "gat_dense").to(device)
    interval = GROUP_INTERVAL if method == "bmf" else 1
    grouping = DynamicGrouping(NUM_GROUPS, interval=interval, max_iter=kmeans_max_iter)
    fixed_group = grouping(mu0, step=0).clone() if method == "bmf_layers" else None

    def step(mu) -> tuple:
        xg, mug = x.clone().requires_grad_(), mu.clone().requires_grad_()
        edge_index = radius_graph(pos, RADIUS)
        iters = None
        if method == "mf":
            out = mean_field(xg, edge_index)
        elif method.startswith("bmf"):
            if method == "bmf_cold":
                grouping.reset_parameters()  # k-means++ seeds, as at the first regroup
            if fixed_group is None:
                t = step.calls + 1  # env steps 1, 2, ...: regroups at 1, 1 + interval, ...
                regroups = grouping.group is None or grouping.last_scheduled(t) == t
                group = grouping(mug.detach(), step=t)
                iters = grouping.kmeans.n_iter_ if regroups else None
            else:
                group = fixed_group
            out_inter, _ = inter(mug, xg, group, NUM_GROUPS, return_weight=False)
            out = intra(xg, edge_index, group) + out_inter
        else:
            out = gat(mug, xg, edge_index)
        (out @ readout).sum().backward()
        step.calls += 1
        return edge_index.size(1), iters

    step.calls = 0
    return step


def worker(method: str, num_agents: int, device_name: str, reps: int, min_seconds: float,
           kmeans_max_iter: int) -> dict:
    """Measure one (method, N) in this (fresh) process."""
    import torch

    device = torch.device(device_name)
    torch.manual_seed(0)  # k-means++ draws
    pos, x, latents = make_inputs(num_agents, device)
    mu = next(latents)
    step = build_step(method, pos, x, mu, kmeans_max_iter)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    block = GROUP_INTERVAL  # steps per timed unit, for every method: bmf's regroup interval
    num_edges, _ = step(mu)  # warm-up (for bmf: the first, cold regroup); any 10 steps after it
                             # hold exactly one bmf regroup
    times, iters = [], []
    while len(times) < reps or (sum(times) * block < min_seconds
                                and len(times) * block < MAX_STEPS):
        mus = [next(latents) for _ in range(block)]
        sync()
        start = time.perf_counter()
        for mu in mus:
            _, step_iters = step(mu)
            if step_iters is not None:
                iters.append(step_iters)
        sync()
        times.append((time.perf_counter() - start) / block)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    result = {"method": method, "num_agents": num_agents, "num_edges": num_edges,
              "time_s": statistics.median(times),
              "time_quartiles_s": statistics.quantiles(times, n=4) if len(times) > 1 else times,
              "num_steps": len(times) * block, "peak_mem_mib": peak / 2 ** 20}
    if iters:
        result["kmeans_iters"] = statistics.mean(iters)  # per regroup
    return result


def measure(method: str, num_agents: int, args) -> dict:
    """One fresh worker process measuring ``method`` at ``num_agents``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, str(num_agents),
           "--device", args.device, "--reps", str(args.reps),
           "--min-seconds", str(args.min_seconds),
           "--kmeans-max-iter", str(args.kmeans_max_iter)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                              cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"method": method, "num_agents": num_agents,
                "skipped": f"timeout {args.timeout:.0f} s"}
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"method": method, "num_agents": num_agents,
                "skipped": f"exit {done.returncode}: {reason}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_size(num_agents: int, methods: list, args) -> list:
    """Every method at ``num_agents``, best (lowest median time) of ``args.best_of`` rounds; a
    round measures each method once, so the tries of one method are spread over time."""
    best = {}
    for method in methods:
        need = DENSE_BYTES_PER_PAIR * num_agents ** 2 / 2 ** 30
        if method == "gat_dense" and need > args.dense_budget_gb:
            best[method] = {"method": method, "num_agents": num_agents,
                            "skipped": f"N x N buffers ~{need:.0f} GiB > budget "
                                       f"{args.dense_budget_gb:g} GiB"}
    for _ in range(args.best_of):
        for method in methods:
            if "skipped" in best.get(method, {}):
                continue
            run = measure(method, num_agents, args)
            if method not in best or "skipped" in run or run["time_s"] < best[method]["time_s"]:
                best[method] = run
    return [best[method] for method in methods]


def check_targets(results: list) -> dict:
    at = {(r["method"], r["num_agents"]): r for r in results if "skipped" not in r}
    sizes = sorted({n for _, n in at})
    targets = {}

    def over_mf(method: str) -> dict:
        return {n: at[(method, n)]["time_s"] / at[("mf", n)]["time_s"]
                for n in sizes if (method, n) in at and ("mf", n) in at}

    ratios = over_mf("bmf")
    if ratios:
        targets["bmf_time_over_mf_le_2"] = {"ratios": ratios, "met": max(ratios.values()) <= 2}
    each = over_mf("bmf_regroup")
    if each:  # the same bound with a regroup on every step
        targets["bmf_regroup_every_step_time_over_mf_le_2"] = {
            "ratios": each, "met": max(each.values()) <= 2}
    cold = over_mf("bmf_cold")
    if cold:  # information: every regroup seeded by k-means++
        targets["bmf_cold_time_over_mf"] = {"ratios": cold}
    layers = over_mf("bmf_layers")
    if layers:  # information: the per-step cost between regroupings
        targets["bmf_layers_time_over_mf"] = {"ratios": layers}
    if ("bmf", 16384) in at and ("gat_dense", 16384) in at:
        bmf, dense = at[("bmf", 16384)], at[("gat_dense", 16384)]
        speed = dense["time_s"] / bmf["time_s"]
        lean = dense["peak_mem_mib"] / max(bmf["peak_mem_mib"], 1e-9)
        targets["bmf_vs_dense_at_16384_ge_20x"] = {
            "speedup": speed, "memory_ratio": lean, "met": speed >= 20 and lean >= 20}
    if ("bmf", 16384) in at and ("bmf", 65536) in at:
        ratio = at[("bmf", 65536)]["time_s"] / at[("bmf", 16384)]["time_s"]
        targets["bmf_time_65536_over_16384_le_5"] = {"ratio": ratio, "met": ratio <= 5}
    if ("bmf", 65536) in at:
        seconds = at[("bmf", 65536)]["time_s"]
        targets["bmf_65536_under_1s"] = {"time_s": seconds, "met": seconds < 1}
    return targets


def plot(results: list, path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method in METHODS:
        rows = [r for r in results if r["method"] == method and "skipped" not in r]
        if not rows:
            continue
        n = [r["num_agents"] for r in rows]
        style = "o--" if method in ("bmf_regroup", "bmf_cold") else "o-"
        axes[0].plot(n, [r["time_s"] for r in rows], style, label=method)
        mem = [(r["num_agents"], r["peak_mem_mib"]) for r in rows if r["peak_mem_mib"] > 0]
        if mem:
            axes[1].plot(*zip(*mem), style, label=method)
    for ax, label in zip(axes, ("forward + backward time (s)", "peak memory (MiB)")):
        ax.set(xscale="log", yscale="log", xlabel="agents", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Mean-field layers at battle density, r = {RADIUS:g}, k = {NUM_GROUPS} "
                 f"({device})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated numbers of agents")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--quick", action="store_true",
                        help="sizes up to 4096, 2 timed blocks each")
    parser.add_argument("--reps", type=int, default=3,
                        help=f"fewest timed blocks of {GROUP_INTERVAL} steps after one warm-up step")
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help=f"time further steps (up to {MAX_STEPS}) until this many seconds")
    parser.add_argument("--best-of", type=int, default=1,
                        help="fresh processes per measurement; the lowest median is kept")
    parser.add_argument("--kmeans-max-iter", type=int, default=50,
                        help="most Lloyd iterations of a regroup (DynamicGrouping default 50)")
    parser.add_argument("--dense-budget-gb", type=float, default=8.0,
                        help="skip dense GAT-MF above this estimated N x N memory")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    parser.add_argument("--out", nargs="?", const=str(ROOT / "benchmarks/results/scaling.json"),
                        help="also write the JSON here")
    parser.add_argument("--plot", default=str(ROOT / "assets/scaling.png"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.device, args.reps,
                                args.min_seconds, args.kmeans_max_iter)))
        return

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = args.device
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.reps, args.min_seconds = [n for n in sizes if n <= 4096], 2, 0.0
    results = []
    for num_agents in sizes:
        for result in measure_size(num_agents, args.methods.split(","), args):
            results.append(result)
            print(json.dumps(result), file=sys.stderr)
    report = {
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(),
        "setup": {"density_agents_per_cell": DENSITY, "radius": RADIUS, "num_groups": NUM_GROUPS,
                  "action_dim": ACTION_DIM, "latent_dim": LATENT_DIM, "hidden": HIDDEN,
                  "kmeans_max_iter": args.kmeans_max_iter, "reps": args.reps,
                  "min_seconds": args.min_seconds,
                  "best_of": args.best_of,
                  "latents": f"{NUM_MODES} modes, centres N(0, I_{LATENT_DIM}); mu_i = "
                             f"centre of agent i's mode + e_i, e_i ~ N(0, I) stationary; per "
                             f"step e <- {LATENT_RHO} e + sqrt(1 - {LATENT_RHO}^2) xi and "
                             f"{LATENT_SWITCH:.0%} of agents switch to a random mode",
                  "grouping": f"bmf: regroup every {GROUP_INTERVAL} steps (the training "
                              "default), k-means warm-started from the previous centroids "
                              "(the warm-up step is the cold first regroup); bmf_regroup: "
                              "the same on every step; bmf_cold: every step regroups from "
                              "k-means++ seeds, Hungarian matching of ids; bmf_layers: groups "
                              "fixed",
                  "time": "median forward+backward seconds per step after 1 warm-up, over "
                          f"at least reps timed blocks of {GROUP_INTERVAL} steps and "
                          "min_seconds; per block its mean step",
                  "memory": "CPU: growth of ru_maxrss (peak RSS) in a fresh process; "
                            "CUDA: max_memory_allocated above the memory held before"},
        "results": results,
        "targets": check_targets(results),
    }
    emit(report, args.out)
    if not args.no_plot:
        plot(results, Path(args.plot), report["device"])


if __name__ == "__main__":
    main()
