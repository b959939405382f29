"""Sweeps on Ray: ``bmf-sweep conf=firefighter algo=q,mfq,bmf_q seed=0,1,2 [key=value ...]``.

Every ``key=a,b,c`` override is an axis of the grid (commas inside brackets or quotes belong to
one value: ``env.learn_teams=[0,1]``); the grid is the cartesian product of the axes. Each grid
point is validated up front, then trained as one Ray task in its own run folder
``{runs_dir}/{conf}__{algo}__{seed}__{hash}/`` (the layout of ``train.py``; ``hash`` is taken
from the resolved configuration, so re-running the same command finds the same folders):
finished runs (``checkpoints/model_final.safetensors``) are skipped, interrupted ones resume from their
``checkpoints/last.pt``, and the others start in a fresh folder (``...__try2``); nothing
finished is ever overwritten. A failing run is recorded and the others go on; the command
exits with 1 when any run failed.

With ``sweep.layout=results`` the run folders are ``{runs_dir}/{label}/seed{S}/`` instead, the
layout RESULTS.md is generated from (:mod:`bmf_graph.experiments.results`); the label is the algorithm's name
or ``sweep.label``:

    bmf-sweep conf=firefighter algo=q,mfq,bmf_q seed=0,1,2,3 \
        runs_dir=results/firefighter sweep.layout=results
    bmf-sweep conf=battle algo=bmf_q algo.num_groups=4 seed=0,1,2 \
        runs_dir=results/battle_ablations sweep.layout=results sweep.label=bmf_q-k4

Sweep options ``sweep.KEY=VALUE`` (never part of a run's configuration) are the fields of
:class:`SweepOptions`; ``--help`` lists them.

The sweep folder holds ``sweep.yaml`` (the grid), ``sweep_failures.json``, ``summary.md`` /
``summary.csv`` and ``learning_curves.png``. The *final return* of a run is the mean of
``charts/return`` over its last 10% of episodes (at least one); the summary gives its mean and
(population) standard deviation over the seeds of each configuration.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from bmf_graph.config import Config
from bmf_graph.config.checks import ConfigError
from bmf_graph.files import atomic_write_text
from bmf_graph.training.logging import final_mean
from bmf_graph.training.model_files import final_model
from bmf_graph.training.run_files import read_csv as read_metrics
from bmf_graph.training.runlock import RunLocked, holder
from bmf_graph.experiments.sweep_grid import Run, SweepOptions, expand, parse_args

class RayMissing(ImportError):
    """Ray, the optional ``[sweep]`` extra, is not installed."""


@dataclass
class Outcome:
    """What happened to a run: ``skipped`` (already finished), ``done``, ``resumed``, ``failed``
    or ``busy`` (its folder is locked by another process, e.g. a second sweep: left alone)."""

    run: Run
    status: str
    run_dir: Optional[Path] = None
    error: str = ""
    traceback: str = ""
    seconds: float = 0.0


@dataclass
class SweepResult:
    """The sweep folder and one :class:`Outcome` per grid point, in grid order."""

    sweep_dir: Path
    outcomes: list[Outcome]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def busy(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "busy"]


FINISHED = ("skipped", "done", "resumed")
"""Outcomes whose run folder holds a finished run."""


# ---------------------------------------------------------------------- run folders
def attempts(run: Run) -> list[tuple[int, Path]]:
    """Existing folders of a run, oldest first: ``(1, name)``, ``(2, name__try2)``, ..."""
    root = Path(run.cfg.runs_dir)
    found = [(1, root / run.name)] if (root / run.name).is_dir() else []
    for path in root.glob(f"{run.name}__try*"):
        suffix = path.name[len(Path(run.name).name) + len("__try"):]
        if suffix.isdigit() and path.is_dir():
            found.append((int(suffix), path))
    return sorted(found)


def is_finished(run_dir: Path) -> bool:
    return final_model(run_dir) is not None


def plan(run: Run) -> tuple[str, Path]:
    """``("skip", folder)``, ``("resume", folder)`` or ``("fresh", new folder)`` for a run."""
    tries = attempts(run)
    for _, path in tries:
        if is_finished(path):
            return "skip", path
    for _, path in reversed(tries):
        if (path / "checkpoints" / "last.pt").is_file():
            return "resume", path
    name = f"{run.name}__try{tries[-1][0] + 1}" if tries else run.name
    return "fresh", Path(run.cfg.runs_dir) / name


def final_return(run_dir: Path) -> float:
    """Mean ``charts/return`` over the last 10% of a run's episodes (at least one)."""
    return final_mean(row["charts/return"] for row in read_metrics(run_dir) if "charts/return" in row)


# ---------------------------------------------------------------------- Ray
def _train_task(cfg: Config, cwd: Optional[str] = None) -> dict[str, Any]:
    """Body of a Ray task: one training run in the sweep's working directory ``cwd`` (so a
    relative ``runs_dir`` means the same folder, and is stored as given in ``config.yaml``); an
    exception comes back as data."""
    from bmf_graph.training.trainer import train

    if cwd is not None and os.path.isdir(cwd):
        os.chdir(cwd)
    start = time.perf_counter()
    try:
        run_dir = train(cfg)
    except (RunLocked, FileExistsError) as error:
        folder = Path(cfg.resume) if cfg.resume else Path(cfg.runs_dir) / str(cfg.run_name)
        pid = error.pid if isinstance(error, RunLocked) else holder(folder)
        if pid is not None:  # another process (a second sweep) runs it: leave it alone
            return {"ok": False, "busy": pid, "seconds": time.perf_counter() - start}
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(),
                "seconds": time.perf_counter() - start}
    except Exception as error:  # noqa: BLE001 - the sweep records every failure and goes on
        return {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(),
                "seconds": time.perf_counter() - start}
    return {"ok": True, "run_dir": str(run_dir), "seconds": time.perf_counter() - start}


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayMissing('bmf-sweep needs Ray, the [sweep] extra: pip install "bmf_graph[sweep]"') from None
    return ray


def _check_resources(ray, options: SweepOptions) -> None:
    available = ray.cluster_resources()
    for key, asked in (("CPU", options.cpus_per_run), ("GPU", options.gpus_per_run)):
        have = available.get(key, 0)
        if asked > have:
            message = (f"sweep.{key.lower()}s_per_run={asked:g} exceeds the {have:g} {key}s of the Ray cluster; "
                       f"runs would never start")
            if options.address is None:
                raise ConfigError(message)
            print(f"warning: {message} unless the cluster scales up", file=sys.stderr)


def execute(todo: list[tuple[Run, str, Path]], options: SweepOptions) -> list[Outcome]:
    """Run ``(run, action, folder)`` items as Ray tasks; report each as it completes."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if options.address is None:
            # Ray lowers its workers' priority (nice 15); runs here get that of ``python train.py``.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(include_dashboard=False)
        else:
            ray.init(address=options.address)
    outcomes = []
    try:
        _check_resources(ray, options)
        task = ray.remote(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run, max_retries=0)(_train_task)
        pending, in_flight = list(todo), {}
        limit = options.max_concurrent or len(todo)
        with tqdm(total=len(todo), unit="run", desc="sweep", dynamic_ncols=True) as bar:
            while pending or in_flight:
                while pending and len(in_flight) < limit:
                    run, action, folder = pending.pop(0)
                    cfg = (replace(run.cfg, resume=str(folder)) if action == "resume"
                           else replace(run.cfg, run_name=str(folder.relative_to(run.cfg.runs_dir))))
                    in_flight[task.remote(cfg, os.getcwd())] = (run, action, folder)
                [ref], _ = ray.wait(list(in_flight), num_returns=1)
                run, action, folder = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as error:  # noqa: BLE001 - a lost worker fails this run only
                    result = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": "", "seconds": 0.0}
                if result.get("busy"):
                    outcome = Outcome(run, "busy", folder, f"process {result['busy']}")
                    bar.write(f"   busy  {run.name}  skipped: its folder is in use by process {result['busy']}")
                elif result["ok"]:
                    outcome = Outcome(run, "resumed" if action == "resume" else "done", Path(result["run_dir"]),
                                      seconds=result["seconds"])
                    bar.write(f"{outcome.status:>7}  {run.name}  final return {final_return(outcome.run_dir):.3f}"
                              f"  ({outcome.seconds:.0f} s)")
                else:
                    outcome = Outcome(run, "failed", folder if folder.is_dir() else None, result["error"],
                                      result["traceback"], result["seconds"])
                    bar.write(f" FAILED  {run.name}  {result['error'].splitlines()[0] if result['error'] else ''}")
                outcomes.append(outcome)
                bar.update(1)
    finally:
        if started_here:
            ray.shutdown()
    return outcomes


# ---------------------------------------------------------------------- summary
def summarize(outcomes: list[Outcome], sweep_dir: Path) -> list[dict[str, Any]]:
    """Write ``summary.csv`` / ``summary.md``: final return per configuration over seeds."""
    groups: dict[tuple[str, str, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.run.cfg.conf, o.run.cfg.algo.name, " ".join(o.run.group)), []).append(o)
    rows = []
    for (conf, algo, setting), members in groups.items():
        ok = [o for o in members if o.status in FINISHED]
        finals = np.array([final_return(o.run_dir) for o in ok], dtype=float)
        rows.append({"conf": conf, "algo": algo, "setting": setting, "seeds": " ".join(str(o.run.cfg.seed) for o in ok),
                     "finished": len(ok), "runs": len(members),
                     "final_return_mean": float(finals.mean()) if ok else math.nan,
                     "final_return_std": float(finals.std()) if ok else math.nan})
    columns = ["conf", "algo", "setting", "seeds", "finished", "runs", "final_return_mean", "final_return_std"]
    table = io.StringIO()
    writer = csv.DictWriter(table, columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "summary.csv", table.getvalue())
    lines = ["| conf | algo | setting | seeds | finished | final return |", "|---|---|---|---|---|---|"]
    for r in rows:
        value = "-" if math.isnan(r["final_return_mean"]) else f"{r['final_return_mean']:.3f} ± {r['final_return_std']:.3f}"
        lines.append(f"| {r['conf']} | {r['algo']} | {r['setting']} | {r['seeds']} | {r['finished']}/{r['runs']} | {value} |")
    lines += ["", "Final return: mean `charts/return` over the last 10% of a run's episodes (at least one); "
              "mean ± population std over the finished seeds."]
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        lines += ["", "Failed runs (details in `sweep_failures.json`):", ""]
        lines += [f"- `{o.run.name}`: {o.error.splitlines()[0] if o.error else 'no error text'}" for o in failed]
    atomic_write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return rows


def plot_curves(run_dirs: list[Path], sweep_dir: Path) -> Optional[Path]:
    """The plotting module's learning curves of the finished runs, when it is available."""
    try:
        from bmf_graph.experiments.plot import learning_curves
    except ImportError:
        print("note: bmf_graph.experiments.plot.learning_curves is not available; skipping the learning-curve plot")
        return None
    out = sweep_dir / "learning_curves.png"
    try:  # redrawn from all finished runs on every (re-)run of the sweep
        return learning_curves(run_dirs, out, overwrite=True)
    except Exception as error:  # noqa: BLE001 - a plot problem must not hide the sweep's results
        print(f"warning: the learning-curve plot failed: {type(error).__name__}: {error}", file=sys.stderr)
        return None


# ---------------------------------------------------------------------- entry point
def run_sweep(argv: Sequence[str]) -> SweepResult:
    """Expand, validate, run what is missing and summarize; see the module docstring."""
    axes, options = parse_args(argv)
    runs = expand(axes, options)
    digest = hashlib.sha1(" ".join(sorted(r.name for r in runs)).encode()).hexdigest()[:8]
    sweep_dir = Path(runs[0].cfg.runs_dir) / f"sweep__{options.name or digest}"
    plans = [(run, *plan(run)) for run in runs]
    skipped = [Outcome(run, "skipped", folder) for run, action, folder in plans if action == "skip"]
    # A run whose folder (any attempt) another process holds, e.g. a sweep started twice, is left alone.
    holders = {run.name: next(filter(None, (holder(path) for _, path in attempts(run))), None)
               for run, action, _ in plans if action != "skip"}
    busy = [Outcome(run, "busy", folder, f"process {holders[run.name]}") for run, action, folder in plans
            if holders.get(run.name) is not None]
    todo = [p for p in plans if p[1] != "skip" and p[0].name not in {o.run.name for o in busy}]
    if todo:
        import_ray()  # before anything is written
    sweep_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": list(argv), "options": OmegaConf.to_container(OmegaConf.structured(options)),
            "axes": {key: values for key, values in axes},
            "runs": [{"name": r.name, "overrides": r.overrides} for r in runs]}
    atomic_write_text(sweep_dir / "sweep.yaml", OmegaConf.to_yaml(spec))
    resume = sum(action == "resume" for _, action, _ in todo)
    print(f"sweep {sweep_dir}: {len(runs)} runs, {len(skipped)} finished, {resume} to resume, "
          f"{len(todo) - resume} to start" + (f", {len(busy)} in use by another process (skipped: "
                                              f"{', '.join(f'{o.run.name} by {o.error}' for o in busy)})" if busy else ""))
    skipped += busy
    done = {o.run.name: o for o in skipped + (execute(todo, options) if todo else [])}
    outcomes = [done[run.name] for run in runs]

    failures = {o.run.name: {"overrides": o.run.overrides, "error": o.error, "traceback": o.traceback}
                for o in outcomes if o.status == "failed"}
    atomic_write_text(sweep_dir / "sweep_failures.json", json.dumps(failures, indent=2) + "\n")
    summarize(outcomes, sweep_dir)
    finished = [o.run_dir for o in outcomes if o.status in FINISHED]
    if finished:
        plot_curves(finished, sweep_dir)
    print((sweep_dir / "summary.md").read_text())
    return SweepResult(sweep_dir, outcomes)
