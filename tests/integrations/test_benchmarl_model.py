"""BMFConfig trains in BenchMARL on VMAS (skipped without the [benchmarl] extra)."""
import pytest
import torch

pytest.importorskip("vmas")
# Through our module, which makes benchmarl importable on torchrl 0.13 (see its docstring); only a
# missing package skips, a broken import fails.
bmf_benchmarl = pytest.importorskip("bmf_graph.integrations.benchmarl")
from bmf_graph.integrations import torchrl as bmf_torchrl  # noqa: E402


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
