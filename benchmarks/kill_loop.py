"""Kill a training run with SIGKILL at random moments, resume it after each kill, and check that
its per-episode CSVs lost and duplicated no row: ``metrics.csv`` (and ``eval.csv`` where a run
writes one) must number episodes 1..N once each and hold the rows of an uninterrupted run of the
same settings (``perf/sps`` aside).

    python benchmarks/kill_loop.py --kills 20 --seed 0          # about 5 min on two CPU cores

A small Firefighter run with a checkpoint after every episode, so kills land in training, in
checkpoint writes and in the resume's own start and checks. The kills take turns: one at a time
drawn uniformly from ``[0, --window]`` seconds after the process starts (most land in the start
and the resume's checks), one at a time drawn uniformly from ``[0, --window / 4]`` seconds after
the process wrote its first new row (training), and one as soon as a checkpoint's temporary file
appears (a write in progress). Where a kill landed is read from the
folder it left: temporary files of a checkpoint (a write was cut), no new row (start, imports and
the resume's checks), or new rows (training). Prints JSON.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bmf_graph.training.run_files import check_episode_rows, read_csv  # noqa: E402

SETTINGS = ["conf=firefighter", "algo=q", "env.kwargs.num_firefighters=24", "env.kwargs.max_steps=24",
            "train.progress=false", "algo.learning_starts=4", "algo.update_every=2", "algo.batch_steps=4",
            "algo.buffer_size=400000", "algo.hidden=16", "threads=1", "train.envs=1", "train.save_every=1"]
"""A checkpoint after every episode, with a replay that grows to megabytes, so that checkpoint
writes take a fair share of the time."""
EPISODE_CSVS = ("metrics.csv", "eval.csv")
"""Per-episode CSVs checked when a run has them (``eval.csv``: runs that evaluate as they train)."""
IGNORED = {"perf/sps"}
MODES = ("start", "first new row", "checkpoint write")


def rows(path: Path) -> int:
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        return max(sum(1 for _ in csv.reader(f)) - 1, 0)


def run_train(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--window", type=float, default=12.0, help="kill times are drawn from [0, window] s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    work = Path(tempfile.mkdtemp(prefix="kill_loop_"))
    settings = [*SETTINGS, f"train.episodes={args.episodes}", f"runs_dir={work}"]

    start = time.perf_counter()
    reference = run_train([*settings, "run_name=reference"], env)
    assert reference.wait() == 0, reference.stderr.read()
    reference_seconds = time.perf_counter() - start

    run = work / "killed"
    kills, landed, exits = [], {"checkpoint write": 0, "start and resume checks": 0, "training": 0}, []
    while len(kills) < args.kills:
        first = not run.exists()
        before = rows(run / "metrics.csv")
        temps_before = {p.name for p in run.rglob(".*.tmp")} if run.exists() else set()
        process = run_train([*settings, "run_name=killed"] if first else [f"resume={run}"], env)
        mode = MODES[len(kills) % len(MODES)] if not first else "start"
        delay = rng.uniform(0, args.window if mode == "start" else args.window / 4)
        if mode == "first new row":  # the process is training
            while process.poll() is None and rows(run / "metrics.csv") <= before:
                time.sleep(0.02)
        elif mode == "checkpoint write":  # kill as soon as a new temporary file shows a write in progress
            delay = 0.0
            while process.poll() is None and not ({p.name for p in run.rglob(".*.tmp")} - temps_before):
                time.sleep(0.002)
        try:
            code = process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            temps = sorted({p.name for p in run.rglob(".*.tmp")} - temps_before) if run.exists() else []
            after = rows(run / "metrics.csv")
            where = "checkpoint write" if temps else ("training" if after > before else "start and resume checks")
            landed[where] += 1
            kills.append({"after_s": round(delay, 2), "from": mode,
                          "rows_before": before, "rows_after": after, "landed": where,
                          "temp_files": temps})
            continue
        exits.append(code)
        if code == 0:
            break  # finished before the next kill
        raise SystemExit(f"kill_loop: a resume failed with status {code}: {process.stderr.read().strip()}")
    while True:  # finish the run
        process = run_train([f"resume={run}"], env)
        if process.wait() == 0:
            break
        raise SystemExit(f"kill_loop: the last resume failed: {process.stderr.read().strip()}")

    checks = {}
    for name in EPISODE_CSVS:
        mine, theirs = run / name, work / "reference" / name
        if not theirs.is_file():
            continue
        count = len(read_csv(theirs))
        lines = check_episode_rows(mine, count)  # 1..count once each, every row well formed
        got, want = read_csv(mine), read_csv(theirs)
        differ = [int(g["episode"]) for g, w in zip(got, want)
                  if {k: v for k, v in g.items() if k not in IGNORED} != {k: v for k, v in w.items() if k not in IGNORED}]
        checks[name] = {"rows": lines, "expected": count, "episodes_1_to_n_once": lines == count,
                        "rows_differing_from_uninterrupted": differ[:10], "identical": not differ and lines == count}
    result = {"kills": len(kills), "episodes": args.episodes, "window_s": args.window, "seed": args.seed,
              "reference_seconds": round(reference_seconds, 1), "landed": landed,
              "finished_before_a_kill": len(exits), "files": checks,
              "ok": all(c["identical"] for c in checks.values()) and len(kills) == args.kills,
              "kill_log": kills}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
