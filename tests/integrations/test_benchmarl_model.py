"""BMFConfig trains in BenchMARL on VMAS (skipped without the [benchmarl] extra, or with
versions outside its range)."""
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import torch

pytest.importorskip("vmas")
pytest.importorskip("benchmarl")
if not version("torchrl").startswith("0.11."):
    pytest.skip(f"torchrl {version('torchrl')} is outside the [benchmarl] extra's range (0.11); "
                f"pip install -e '.[benchmarl]'", allow_module_level=True)
import bmf_graph.integrations.benchmarl as bmf_benchmarl  # noqa: E402  (a broken import fails)
from bmf_graph.integrations import torchrl as bmf_torchrl  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

TRAIN_3_ITERATIONS = """
import json, sys, torch
if sys.argv[1] == "benchmarl first":
    import benchmarl.experiment
    import bmf_graph.integrations.benchmarl as ours
else:
    import bmf_graph.integrations.benchmarl as ours
    import benchmarl.experiment
import torchrl.collectors, torchrl.objectives
from benchmarl.models import model_config_registry

config = model_config_registry["bmf"].get_from_yaml()
config.hidden = 16
experiment = ours.make_experiment(config, algorithm="mappo", n_agents=3, max_steps=10, iterations=3,
                                  frames_per_batch=40, n_envs=4, minibatch_iters=2, minibatch_size=20,
                                  folder=sys.argv[2])
before = [p.detach().clone() for p in experiment.policy.parameters()]
experiment.run()
print(json.dumps({"config": type(config).__name__, "iterations": experiment.n_iters_performed,
                  "frames": experiment.total_frames, "return": float(experiment.mean_return),
                  "learned": any(not torch.equal(a, b) for a, b in zip(before, experiment.policy.parameters())),
                  "patched": [torchrl.collectors.SyncDataCollector.__module__,
                              torchrl.objectives.ClipPPOLoss.__module__]}))
"""


@pytest.mark.parametrize("order", ["benchmarl first", "bmf_graph first"])
def test_registered_bmf_trains_3_iterations_in_either_import_order(tmp_path, order):
    """A fresh process imports BenchMARL and our module in ``order``, takes
    ``model_config_registry["bmf"]`` and trains MAPPO with it for 3 iterations on VMAS
    navigation; torchrl's names are torchrl's own."""
    result = subprocess.run([sys.executable, "-c", TRAIN_3_ITERATIONS, order, str(tmp_path)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["config"] == "BMFConfig" and out["iterations"] == 3 and out["frames"] == 3 * 40
    assert out["learned"] and out["return"] == out["return"]  # finite, not NaN
    assert all(module.startswith("torchrl.") for module in out["patched"])


def test_yaml_equals_the_dataclass_and_hydra_selects_it(tmp_path):
    """The shipped YAML holds every field at its dataclass default, and BenchMARL's Hydra
    config with ``model=layers/bmf`` (our config folder on the search path) loads a BMFConfig,
    overrides included."""
    from dataclasses import asdict

    from benchmarl.hydra_config import load_model_config_from_hydra
    from hydra import compose, initialize_config_module

    assert bmf_benchmarl.BMFConfig.get_from_yaml() == bmf_benchmarl.BMFConfig()
    assert "bmf" in __import__("benchmarl.models", fromlist=["x"]).model_config_registry
    with initialize_config_module("benchmarl.conf", version_base=None):
        cfg = compose("config", overrides=["algorithm=mappo", "task=vmas/navigation", "model=layers/bmf",
                                           "model.radius=0.3", f"hydra.searchpath=[file://{bmf_benchmarl.CONFIG_DIR}]"])
    loaded = load_model_config_from_hydra(cfg.model)
    assert asdict(loaded) == {**asdict(bmf_benchmarl.BMFConfig()), "radius": 0.3}


def tiny_experiment(tmp_path, algorithm, **config):
    return bmf_benchmarl.make_experiment(
        bmf_benchmarl.BMFConfig(hidden=16, **config), algorithm=algorithm, n_agents=3,
        max_steps=10, iterations=1, frames_per_batch=40, n_envs=4, minibatch_iters=2,
        minibatch_size=20, folder=str(tmp_path))


def test_mappo_trains_with_a_vmapped_bmf_critic(tmp_path, monkeypatch):
    calls = []
    forward = bmf_torchrl.BMFNet.forward

    def record(net, obs):  # who calls, and under vmap or not
        calls.append((net.centralised, torch._C._functorch.maybe_current_level() is not None))
        return forward(net, obs)

    monkeypatch.setattr(bmf_torchrl.BMFNet, "forward", record)
    experiment = tiny_experiment(tmp_path, "mappo")
    before = {k: v.clone() for k, v in experiment.policy.state_dict().items()}
    experiment.run()
    after = experiment.policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the policy learned
    assert (True, True) in calls          # the centralised critic ran under GAE's vmap
    assert (False, False) in calls        # the policy ran eagerly
    assert experiment.n_iters_performed == 1 and torch.isfinite(torch.tensor(experiment.mean_return))


def test_iql_trains_with_bmf_q_network(tmp_path):
    experiment = tiny_experiment(tmp_path, "iql", scoring="cosine", group_features="observation")
    experiment.run()
    assert experiment.n_iters_performed == 1 and torch.isfinite(torch.tensor(experiment.mean_return))


def test_bmf_config_errors(tmp_path):
    with pytest.raises(ValueError, match="BMF: share_params=False is not supported"):
        config = bmf_benchmarl.BMFConfig()
        from benchmarl.algorithms import IppoConfig
        from benchmarl.environments import VmasTask
        from benchmarl.experiment import Experiment, ExperimentConfig
        experiment_config = ExperimentConfig.get_from_yaml()
        experiment_config.share_policy_params = False
        experiment_config.loggers, experiment_config.save_folder = [], str(tmp_path)
        Experiment(task=VmasTask.NAVIGATION.get_from_yaml(), algorithm_config=IppoConfig.get_from_yaml(),
                   model_config=config, seed=0, config=experiment_config)
    with pytest.raises(ValueError, match="make_experiment: algorithm='sac' is not valid"):
        bmf_benchmarl.make_experiment(bmf_benchmarl.BMFConfig(), algorithm="sac")
