"""The paper's Table 1 on this machine: wall time and peak memory of training BMF against GAT-MF.

    python benchmarks/table1.py [--conf firefighter] [--episodes N] [--seeds 0,1,2] [--out results/table1.json]

Each run is ``python train.py conf=CONF algo=ALGO seed=S train.episodes=N threads=1`` in a fresh
process (into a temporary runs folder that is deleted afterwards); its wall time and peak
resident memory (``ru_maxrss`` of the child) are recorded. Methods: BMF-Q, GAT-MF with the sparse
edge attention and GAT-MF with the reference's dense O(N^2) attention (``algo.dense=true``).
Mean ± std over seeds; the JSON feeds the Table 1 section of RESULTS.md.
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

from report import emit

ROOT = Path(__file__).resolve().parent.parent
METHODS = {"bmf_q": ["algo=bmf_q"], "gat_mf": ["algo=gat_mf"], "gat_mf (dense)": ["algo=gat_mf", "algo.dense=true"]}


def run_once(conf: str, overrides: list[str], seed: int, episodes: int, runs_dir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one training run in a child process (``os.wait4``
    gives that child's own resource usage)."""
    command = [sys.executable, str(ROOT / "train.py"), f"conf={conf}", *overrides, f"seed={seed}",
               f"train.episodes={episodes}", "threads=1", "train.progress=false", f"runs_dir={runs_dir}"]
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"table1: {' '.join(command)} exited with status {child.returncode}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default="firefighter")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            seconds, peaks = [], []
            for seed in seeds:
                s, m = run_once(args.conf, METHODS[method], seed, args.episodes, Path(tmp) / f"{method}_{seed}")
                seconds.append(s)
                peaks.append(m)
            rows.append({"method": method, "seconds": seconds, "peak_mib": peaks,
                         "seconds_mean": float(np.mean(seconds)), "peak_mib_mean": float(np.mean(peaks))})
    setting = (f"`python benchmarks/table1.py --conf {args.conf} --episodes {args.episodes} --seeds {args.seeds}`: "
               f"{args.episodes} training episodes of conf={args.conf}, one torch thread, {os.cpu_count()} CPU cores, "
               f"no GPU; time is the whole process (start-up included), memory its peak resident set.")
    emit({"setting": setting, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
