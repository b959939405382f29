"""BMF as a BenchMARL model (extra ``[benchmarl]``; docs/integrations.md).

``BMFConfig`` follows the ``ModelConfig``/``Model`` contract of BenchMARL's own models
(BenchMARL, github.com/facebookresearch/BenchMARL, benchmarl/models/gnn.py and mlp.py): a
dataclass whose fields reach :class:`BMF` as keyword arguments next to the specs BenchMARL
passes, and whose ``associated_class`` is the model. The model works as a policy or a critic of
IPPO, MAPPO, IQL and the other algorithms on tasks whose observations are ``[*, n, F]`` per
agent group (VMAS), shared parameters only (a mean field treats agents alike).

Importing this module registers ``BMFConfig`` as ``"bmf"`` in BenchMARL's
``model_config_registry``, whichever of the two is imported first, and its YAML
(``benchmarl_conf/model/layers/bmf.yaml``) ships with the package, so BenchMARL's Hydra command
line selects it as ``model=layers/bmf`` (:func:`main`). Supported: BenchMARL 1.5.2 on torchrl
and tensordict 0.11 (the ``[benchmarl]`` extra), the versions that install beside torch 2.13.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from benchmarl.models import model_config_registry
from benchmarl.models.common import Model, ModelConfig
from tensordict import TensorDictBase

from bmf_graph.integrations.torchrl import BMFNet

CONFIG_DIR = Path(__file__).resolve().parent / "benchmarl_conf"
"""BenchMARL-layout config folder of the model (``model/layers/bmf.yaml``), a Hydra search path."""


class BMF(Model):
    """BenchMARL model running :class:`~bmf_graph.integrations.torchrl.BMFNet` on the
    concatenated inputs of an agent group, ``[*, n, F]`` -> ``[*, n, out]`` (the mean over
    agents for a centralised critic with shared parameters). The fields of :class:`BMFConfig`
    are its keyword arguments; the rest come from BenchMARL."""

    def __init__(self, radius: float, num_groups: int, hidden: int, heads: int, scoring: str,
                 position_start: int, position_stop: int, group_features: str,
                 kmeans_iters: int, **kwargs):
        super().__init__(**kwargs)
        self.input_features = sum(spec.shape[-1] for spec in self.input_spec.values(True, True))
        self.output_features = self.output_leaf_spec.shape[-1]
        self.net = BMFNet(self.input_features, self.output_features,
                          position=(position_start, position_stop), radius=radius,
                          num_groups=num_groups, hidden=hidden, heads=heads, scoring=scoring,
                          group_features=group_features, kmeans_iters=kmeans_iters,
                          centralised=not self.output_has_agent_dim).to(self.device)

    def _perform_checks(self):
        super()._perform_checks()
        if not self.input_has_agent_dim:
            raise ValueError("BMF: the input has no agent dimension (a global state); expected "
                             "per-agent observations [*, n_agents, F] (use another critic model "
                             "for tasks with a global state)")
        if not self.share_params:
            raise ValueError("BMF: share_params=False is not supported; expected shared "
                             "parameters (share_policy_params / share_param_critic = True)")
        for key, spec in self.input_spec.items(True, True):
            if len(spec.shape) != 2 or spec.shape[0] != self.n_agents:
                raise ValueError(f"BMF: input {key} must have shape [{self.n_agents}, F] (agents, "
                                 f"features), got {tuple(spec.shape)}")

    def _forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = torch.cat([tensordict.get(key) for key in self.in_keys], dim=-1)
        tensordict.set(self.out_key, self.net(obs))
        return tensordict


@dataclass
class BMFConfig(ModelConfig):
    """BenchMARL ``ModelConfig`` of :class:`BMF`; every field is a
    :class:`~bmf_graph.integrations.torchrl.BMFNet` setting."""

    radius: float = 0.5
    """Neighbour radius, in the units of the positions."""
    num_groups: int = 2
    """Groups per environment (k-means every call)."""
    hidden: int = 64
    """Embedding and hidden width."""
    heads: int = 1
    """Attention heads of the inter-group attention."""
    scoring: str = "gatv2"
    """Inter-group scorer: gatv2, gat or cosine."""
    position_start: int = 0
    """First feature of the agent position in the (concatenated) observation."""
    position_stop: int = 2
    """One past the last position feature (VMAS puts the 2-D position first)."""
    group_features: str = "embedding"
    """What k-means clusters: embedding, observation or position."""
    kmeans_iters: int = 5
    """Lloyd steps of each grouping."""

    @staticmethod
    def associated_class():
        return BMF

    @classmethod
    def get_from_yaml(cls, path: Optional[str] = None) -> "BMFConfig":
        """The shipped ``model/layers/bmf.yaml`` (``path=None``) or another yaml file; keys
        the file leaves out keep the defaults above."""
        from benchmarl.utils import _read_yaml_config

        config = _read_yaml_config(str(path or CONFIG_DIR / "model" / "layers" / "bmf.yaml"))
        config.pop("name", None)
        return cls(**config)


model_config_registry["bmf"] = BMFConfig


ALGORITHMS = ("mappo", "ippo", "iql")


def make_experiment(model_config: ModelConfig, critic_model_config: Optional[ModelConfig] = None,
                    algorithm: str = "mappo", task: str = "navigation", n_agents: int = 3,
                    max_steps: int = 100, iterations: int = 10, frames_per_batch: int = 600,
                    n_envs: int = 6, minibatch_iters: int = 4, minibatch_size: int = 200,
                    seed: int = 0, folder: Optional[str] = None, callbacks=None):
    """A BenchMARL ``Experiment`` of ``algorithm`` on the VMAS ``task`` with ``n_agents`` agents
    and episodes of ``max_steps``, sized for a quick run on CPU: ``iterations`` collections of
    ``frames_per_batch`` frames from ``n_envs`` environments, each followed by
    ``minibatch_iters`` updates of ``minibatch_size`` frames (on- and off-policy alike); no
    evaluation, loggers or checkpoints. ``critic_model_config`` defaults to ``model_config``."""
    from benchmarl.algorithms import IppoConfig, IqlConfig, MappoConfig
    from benchmarl.environments import VmasTask
    from benchmarl.experiment import Experiment, ExperimentConfig

    if algorithm not in ALGORITHMS:
        raise ValueError(f"make_experiment: algorithm={algorithm!r} is not valid; expected one "
                         f"of {', '.join(ALGORITHMS)}")
    algorithm_config = {"mappo": MappoConfig, "ippo": IppoConfig,
                        "iql": IqlConfig}[algorithm].get_from_yaml()
    vmas_task = getattr(VmasTask, task.upper()).get_from_yaml()
    vmas_task.config.update(n_agents=n_agents, max_steps=max_steps)
    config = ExperimentConfig.get_from_yaml()
    config.loggers, config.create_json = [], False
    config.evaluation, config.render = False, False
    config.checkpoint_interval, config.checkpoint_at_end = 0, False
    config.save_folder, config.max_n_iters, config.max_n_frames = folder, iterations, None
    config.prefer_continuous_actions = algorithm != "iql"
    config.on_policy_collected_frames_per_batch = frames_per_batch
    config.off_policy_collected_frames_per_batch = frames_per_batch
    config.on_policy_n_envs_per_worker = config.off_policy_n_envs_per_worker = n_envs
    config.on_policy_n_minibatch_iters = config.off_policy_n_optimizer_steps = minibatch_iters
    config.on_policy_minibatch_size = config.off_policy_train_batch_size = minibatch_size
    config.lr = 3e-4
    return Experiment(task=vmas_task, algorithm_config=algorithm_config, model_config=model_config,
                      critic_model_config=critic_model_config or model_config, seed=seed,
                      config=config, callbacks=callbacks)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """BenchMARL's Hydra command line with BMF registered and its config on the search path::

        python -m bmf_graph.integrations.benchmarl algorithm=mappo task=vmas/navigation model=layers/bmf

    Every argument is BenchMARL's (``benchmarl/run.py``); ``model.radius=0.3`` and the like
    override the fields of :class:`BMFConfig`."""
    import sys

    from benchmarl.run import hydra_experiment

    argv = sys.argv[1:] if argv is None else list(argv)
    sys.argv = [sys.argv[0], *argv, f"hydra.searchpath=[file://{CONFIG_DIR}]"]
    hydra_experiment()


if __name__ == "__main__":
    main()
