"""Experiment trackers beside ``metrics.csv`` and TensorBoard: Weights & Biases
(``logging.wandb=true``, extra ``[wandb]``) and MLflow (``logging.mlflow=true``, extra
``[mlflow]``).

Each tracker gets the run's resolved configuration once and every metrics row with
``step = episode``, under the same names as the CSV (``charts/return``, ``losses/q``, ...). A
resumed run continues the same tracker run: W&B by an id derived from the run folder's path,
MLflow by the run tagged with that path. Both libraries are imported only when asked for.
"""
from __future__ import annotations

import hashlib
import importlib.util
import time
from pathlib import Path
from typing import Any, Mapping, Protocol

from bmf_graph.config.checks import ConfigError

EXTRAS = {"wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}
"""Setting -> (module to import, extra that installs it)."""

RUN_DIR_TAG = "bmf_graph.run_dir"
"""MLflow tag holding the run folder's absolute path (how a resume finds its MLflow run)."""


class Tracker(Protocol):
    def log(self, row: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


def check_trackers(logging_cfg: Any) -> None:
    """Raise a one-line :class:`ConfigError` for a tracker asked for but not installed, before
    any run folder is made."""
    for setting, (module, extra) in EXTRAS.items():
        if getattr(logging_cfg, setting) and importlib.util.find_spec(module) is None:
            raise ConfigError(f"logging.{setting}=true needs the {module} package, which is not installed; "
                              f'pip install "bmf_graph[{extra}]" or set logging.{setting}=false')


def run_id(run_dir: Path) -> str:
    """A stable id of a run folder (its absolute path hashed): the W&B run id."""
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"algo": {"name": "q"}}`` -> ``{"algo.name": "q"}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class WandbTracker:
    """One W&B run per run folder (resumed with it), files under ``{run}/wandb``."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], project: str):
        import wandb

        self.run = wandb.init(project=project, name=Path(run_dir).name, id=run_id(run_dir), resume="allow",
                              dir=str(run_dir), config=dict(config))

    def log(self, row: Mapping[str, float], step: int) -> None:
        self.run.log(dict(row), step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    """One MLflow run per run folder in the experiment ``project``, found again on resume by
    its :data:`RUN_DIR_TAG`; the configuration goes in as parameters (dotted keys)."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], project: str):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        experiment = self.client.get_experiment_by_name(project)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(project)
        path = str(Path(run_dir).resolve())
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{path}'",
                                        max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(experiment_id, run_name=Path(run_dir).name, tags={RUN_DIR_TAG: path})
            self.run_id = run.info.run_id
            from mlflow.entities import Param

            params = [Param(key, str(value)[:6000]) for key, value in flat(config).items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
                self.client.log_batch(self.run_id, params=params[start:start + 100])

    def log(self, row: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in row.items() if "/" in key]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def open_trackers(run_dir: Path, logging_cfg: Any, config: Mapping[str, Any]) -> list[Tracker]:
    """The trackers ``logging_cfg`` asks for, each started on ``run_dir`` with ``config``."""
    check_trackers(logging_cfg)
    trackers: list[Tracker] = []
    if logging_cfg.wandb:
        trackers.append(WandbTracker(run_dir, config, logging_cfg.project))
    if logging_cfg.mlflow:
        trackers.append(MlflowTracker(run_dir, config, logging_cfg.project))
    return trackers
