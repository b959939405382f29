"""W&B and MLflow beside metrics.csv: offline W&B and a local MLflow store get every metric of
every episode, a resumed run continues the same tracker run, and a missing package stops the
command before any run folder is made."""
import importlib.util
import json

import pytest

from bmf_graph.training import trackers
from bmf_graph.cli.train import main
from bmf_graph.training.logging import read_metrics
from tiny_runs import FAST, TINY


def args(tmp_path, *extra):
    return ["conf=firefighter", "algo=q", f"runs_dir={tmp_path / 'runs'}", "run_name=r", *TINY["firefighter"], *FAST,
            "train.save_every=2", *extra]


def test_missing_tracker_package_stops_before_the_run_folder(tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    assert main(args(tmp_path, "train.episodes=2", "logging.wandb=true")) == 2
    assert capsys.readouterr().err == ('error: logging.wandb=true needs the wandb package, which is not installed; '
                                       'pip install "bmf_graph[wandb]" or set logging.wandb=false\n')
    assert not (tmp_path / "runs").exists()


def test_mlflow_gets_every_row_and_a_resume_continues_its_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert main(args(tmp_path, "train.episodes=2", "logging.mlflow=true", "logging.project=tests")) == 0
    run_dir = tmp_path / "runs" / "r"
    assert main([f"resume={run_dir}", "train.episodes=4"]) == 0
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert len(runs) == 1 and runs[0].data.params["algo.name"] == "q" and runs[0].info.status == "FINISHED"
    history = sorted((m.step, m.value) for m in client.get_metric_history(runs[0].info.run_id, "charts/return"))
    assert history == [(int(r["episode"]), pytest.approx(r["charts/return"])) for r in read_metrics(run_dir)]
    assert [r["episode"] for r in read_metrics(run_dir)] == [1, 2, 3, 4]


def test_wandb_offline_gets_every_row_and_the_config(tmp_path, monkeypatch):
    """Offline W&B: each episode's metrics go to ``run.log`` at ``step = episode``, and the run's
    record file (binary) in ``{run}/wandb`` holds the metric names and the configuration."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logged = []
    original = trackers.WandbTracker.log
    monkeypatch.setattr(trackers.WandbTracker, "log", lambda self, row, step: logged.append((step, dict(row)))
                        or original(self, row, step))
    assert main(args(tmp_path, "train.episodes=3", "logging.wandb=true", "logging.tensorboard=false")) == 0
    run_dir = tmp_path / "runs" / "r"
    rows = read_metrics(run_dir)
    assert [step for step, _ in logged] == [1, 2, 3]
    assert [row["charts/return"] for _, row in logged] == [r["charts/return"] for r in rows]
    assert not list(run_dir.glob("events.out.tfevents.*"))                  # logging.tensorboard=false
    records = list((run_dir / "wandb").glob(f"offline-run-*-{trackers.run_id(run_dir)}/run-*.wandb"))
    assert len(records) == 1
    data = records[0].read_bytes()
    assert b"charts/return" in data and b"losses/q" in data and b"num_firefighters" in data
