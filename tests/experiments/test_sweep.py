"""Sweeps: grid expansion and validation, then tiny sweeps on one local Ray instance."""
import csv
import json
import os
import sys
from dataclasses import replace

import pytest

ray = pytest.importorskip("ray")

from bmf_graph.config.checks import ConfigError  # noqa: E402
from bmf_graph.training.logging import read_metrics  # noqa: E402
from bmf_graph.cli.sweep import main  # noqa: E402
from bmf_graph.experiments.sweep import plan, run_sweep  # noqa: E402
from bmf_graph.experiments.sweep_grid import expand, parse_args, split_values  # noqa: E402
from bmf_graph.training.trainer import Trainer, train  # noqa: E402
from tiny_runs import interrupted_run  # noqa: E402

TINY = ["conf=firefighter", "env.kwargs.num_firefighters=8", "env.kwargs.max_steps=8",
        "algo.learning_starts=4", "algo.batch_steps=4", "algo.buffer_size=768", "algo.hidden=16", "train.envs=2"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_split_values_keeps_brackets_and_quotes_whole():
    assert split_values("q,mfq,bmf_q") == ["q", "mfq", "bmf_q"]
    assert split_values("[0],[0,1]") == ["[0]", "[0,1]"]
    assert split_values("'a,b',c") == ["'a,b'", "c"]
    assert split_values("") == [""]
    with pytest.raises(ConfigError, match="unclosed"):
        split_values("[0,1")
    with pytest.raises(ConfigError, match="empty item"):
        split_values("q,,mfq")


def test_grid_is_the_product_and_sweep_options_stay_out_of_the_config(tmp_path):
    axes, options = parse_args(["algo=q,mfq", "seed=0,1,2", "env.learn_teams=[0]", f"runs_dir={tmp_path}",
                                "sweep.cpus_per_run=2", "sweep.max_concurrent=3", "sweep.name=x"])
    assert (options.cpus_per_run, options.gpus_per_run, options.max_concurrent) == (2, 0, 3)
    runs = expand(axes, options)
    assert len(runs) == 6 and len({r.name for r in runs}) == 6
    assert {(r.cfg.algo.name, r.cfg.seed) for r in runs} == {(a, s) for a in ("q", "mfq") for s in (0, 1, 2)}
    assert all(r.cfg.threads == 2 and r.cfg.env.learn_teams == [0] and not r.cfg.train.progress for r in runs)
    assert all(not any(o.startswith("sweep.") for o in r.overrides) for r in runs)
    again = expand(*parse_args(["algo.name=q,mfq", "seed=0,1,2", f"runs_dir={tmp_path}", "sweep.cpus_per_run=1"]))
    assert [r.name for r in again] == [r.name for r in runs], "run names must not depend on spelling or resources"
    assert plan(runs[0]) == ("fresh", tmp_path / runs[0].name)


@pytest.mark.parametrize("args, match", [
    (["algo=q,mfx"], r"grid point algo=mfx .*algo.name='mfx' is not valid"),
    (["algo=q", "sweep.cpus=2"], r"Key 'cpus'.*valid options: sweep.cpus_per_run"),
    (["algo=q", "sweep.cpus_per_run=0"], r"sweep.cpus_per_run=0.0 is not valid"),
    (["algo=q", "sweep.address=somewhere"], r"sweep.address='somewhere' is not valid"),
    (["algo=q", "resume=x"], r"resume= is set by the sweep"),
    (["algo=q", "algo.name=mfq"], r"algo.name is given twice"),
    (["seed=0,0"], r"are the same run"),
    (["device=cuda"], r"sweep.gpus_per_run > 0"),
])
def test_invalid_sweeps_fail_before_any_run(tmp_path, args, match):
    with pytest.raises(ConfigError, match=match):
        run_sweep([*args, f"runs_dir={tmp_path}"])
    assert not any(tmp_path.iterdir())


def test_missing_ray_names_the_extra_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes ``import ray`` raise ImportError
    assert main([*TINY, "algo=q", f"runs_dir={tmp_path / 'runs'}"]) == 2
    assert capsys.readouterr().err == 'error: bmf-sweep needs Ray, the [sweep] extra: pip install "bmf_graph[sweep]"\n'
    assert not any(tmp_path.iterdir())   # checked before the sweep folder is made


def test_tiny_sweep_runs_every_point_then_skips_them(local_ray, tmp_path):
    argv = [*TINY, "train.episodes=2", "algo=q,mfq", "seed=0,1", f"runs_dir={tmp_path}"]
    first = run_sweep(argv)
    assert [o.status for o in first.outcomes] == ["done"] * 4
    run_dirs = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("sweep__"))
    assert run_dirs == sorted(o.run_dir for o in first.outcomes)
    for run_dir in run_dirs:
        assert len(read_metrics(run_dir)) == 2
        assert (run_dir / "checkpoints" / "model_final.safetensors").is_file()
        assert (run_dir / "config.yaml").read_text().count("threads: 1") == 1
    with (first.sweep_dir / "summary.csv").open() as f:
        summary = {row["algo"]: row for row in csv.DictReader(f)}
    assert set(summary) == {"q", "mfq"}
    assert all(row["seeds"] == "0 1" and row["finished"] == "2" for row in summary.values())
    assert float(summary["q"]["final_return_mean"]) < 0  # firefighter returns are costs
    assert "±" in (first.sweep_dir / "summary.md").read_text()
    assert json.loads((first.sweep_dir / "sweep_failures.json").read_text()) == {}
    assert (first.sweep_dir / "learning_curves.png").stat().st_size > 0

    stamps = {p: (p / "metrics.csv").stat().st_mtime_ns for p in run_dirs}
    second = run_sweep(argv)
    assert second.sweep_dir == first.sweep_dir
    assert [o.status for o in second.outcomes] == ["skipped"] * 4
    assert {p: (p / "metrics.csv").stat().st_mtime_ns for p in run_dirs} == stamps
    assert (second.sweep_dir / "learning_curves.png").stat().st_size > 0  # redrawn, not refused


def test_failing_run_is_recorded_and_the_others_finish(local_ray, tmp_path, capsys):
    code = main([*TINY, "train.episodes=2", "algo=q", "seed=0", "env.kwargs.rules=paper,x", f"runs_dir={tmp_path}", "sweep.name=bad"])
    assert code == 1
    failures = json.loads((tmp_path / "sweep__bad" / "sweep_failures.json").read_text())
    assert len(failures) == 1
    [failure] = failures.values()
    assert "env.kwargs.rules=x" in failure["overrides"] and "rules='x'" in failure["error"]
    assert "Traceback" in failure["traceback"]
    [run_dir] = [p for p in tmp_path.iterdir() if p.name.startswith("firefighter__")]
    assert (run_dir / "checkpoints" / "model_final.safetensors").is_file()
    out = capsys.readouterr()
    assert "FAILED" in out.out and "1 of 2 runs failed" in out.err
    assert "0/1" in (tmp_path / "sweep__bad" / "summary.md").read_text()


def test_interrupted_runs_resume_or_restart_without_touching_old_folders(local_ray, tmp_path, monkeypatch):
    argv = [*TINY, "train.episodes=4", "train.save_every=2", "algo=q", "seed=0,1", f"runs_dir={tmp_path}"]
    runs = expand(*parse_args(argv))
    original = Trainer.run_round
    crash_at = {0: 2, 1: 0}  # seed 0 stops after its checkpoint at episode 2, seed 1 before any

    def crash(self, *args, **kwargs):
        if self.episode == crash_at[self.cfg.seed]:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "run_round", crash)
    for run in runs:
        with pytest.raises(KeyboardInterrupt):
            train(replace(run.cfg, run_name=run.name))
    monkeypatch.setattr(Trainer, "run_round", original)
    assert [plan(r)[0] for r in runs] == ["resume", "fresh"]

    result = run_sweep(argv)
    resumed, restarted = result.outcomes
    assert (resumed.status, resumed.run_dir) == ("resumed", tmp_path / runs[0].name)
    assert [r["episode"] for r in read_metrics(resumed.run_dir)] == [1, 2, 3, 4]
    assert (restarted.status, restarted.run_dir) == ("done", tmp_path / f"{runs[1].name}__try2")
    assert len(read_metrics(restarted.run_dir)) == 4
    assert read_metrics(tmp_path / runs[1].name) == []  # the stale attempt is kept as it was


def test_results_layout_names_label_and_seed_folders(tmp_path):
    axes, options = parse_args(["algo=q,bmf_q", "seed=0,1", f"runs_dir={tmp_path}", "sweep.layout=results"])
    assert sorted(r.name for r in expand(axes, options)) == ["bmf_q/seed0", "bmf_q/seed1", "q/seed0", "q/seed1"]
    axes, options = parse_args(["algo=bmf_q", "algo.num_groups=4", "seed=2", f"runs_dir={tmp_path}",
                                "sweep.layout=results", "sweep.label=bmf_q-k4"])
    [run] = expand(axes, options)
    assert run.name == "bmf_q-k4/seed2" and plan(run) == ("fresh", tmp_path / "bmf_q-k4" / "seed2")
    (tmp_path / "bmf_q-k4" / "seed2" / "checkpoints").mkdir(parents=True)
    assert plan(run) == ("fresh", tmp_path / "bmf_q-k4" / "seed2__try2")
    (tmp_path / "bmf_q-k4" / "seed2__try2" / "checkpoints").mkdir(parents=True)
    (tmp_path / "bmf_q-k4" / "seed2__try2" / "checkpoints" / "model_final.pt").write_bytes(b"")
    assert plan(run) == ("skip", tmp_path / "bmf_q-k4" / "seed2__try2")


@pytest.mark.parametrize("args, match", [
    (["algo=bmf_q", "algo.num_groups=2,4", "sweep.layout=results"], r"both go to bmf_q/seed0; .*sweep.label"),
    (["algo=q", "sweep.label=x"], r"sweep.label names the label folder of sweep.layout=results"),
    (["algo=q", "sweep.layout=flat"], r"sweep.layout='flat' is not valid; expected one of runs, results"),
    (["algo=q", "sweep.layout=results", "sweep.label=a/b"], r"sweep.label='a/b' is not valid"),
])
def test_results_layout_refuses_ambiguous_grids(tmp_path, args, match):
    with pytest.raises(ConfigError, match=match):
        run_sweep([*args, f"runs_dir={tmp_path}"])
    assert not any(tmp_path.iterdir())


def test_tiny_sweep_in_the_results_layout(local_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative runs_dir, as in the committed results/
    result = run_sweep([*TINY, "algo=q", "seed=0", "train.episodes=2", "runs_dir=results/firefighter",
                        "sweep.layout=results", "sweep.max_concurrent=1"])
    assert [o.status for o in result.outcomes] == ["done"]
    run = tmp_path / "results" / "firefighter" / "q" / "seed0"
    assert (run / "checkpoints" / "model_final.safetensors").is_file()
    assert len(read_metrics(run)) == 2
    # the stored configuration names the folder as given, never this machine's absolute path
    assert "runs_dir: results/firefighter\n" in (run / "config.yaml").read_text()


def test_a_run_locked_by_another_process_is_skipped_and_said(tmp_path, monkeypatch, capsys):
    """A second sweep while the first still trains a run: the run is left alone (no Ray task,
    nothing written into it), reported as in use with the holder's pid, and not in the summary."""
    from bmf_graph.training.runlock import RunLock

    argv = [*TINY, "train.episodes=4", "train.save_every=2", "algo=q", "seed=0", f"runs_dir={tmp_path}"]
    [run] = expand(*parse_args(argv))
    folder = interrupted_run(tmp_path, monkeypatch, 2, replace(run.cfg, run_name=run.name))
    assert folder == tmp_path / run.name
    before = (folder / "metrics.csv").read_bytes()
    with RunLock(folder):  # as the first sweep's worker holds it
        assert main(argv) == 0
    out = capsys.readouterr()
    assert f"1 in use by another process (skipped: {run.name} by process {os.getpid()})" in out.out
    assert "1 of 1 runs were in use by another process and were skipped" in out.err
    assert (folder / "metrics.csv").read_bytes() == before
    assert "| 0/1 | - |" in next(tmp_path.glob("sweep__*/summary.md")).read_text()
