"""Run configuration: the schema (:mod:`~bmf_graph.config.schema`, one dataclass per component),
its checks (:mod:`~bmf_graph.config.checks`) and loading from task files and the command line
(:mod:`~bmf_graph.config.load`).

    from bmf_graph.config import load_config
    cfg = load_config(["conf=battle", "algo=mfq", "seed=3"])
"""
from bmf_graph.config.checks import RESUME_KEYS, ConfigError, validate
from bmf_graph.config.load import CONF_DIR, SHORTHANDS, conf_names, conf_path, from_yaml, load_config, resume_config, to_yaml
from bmf_graph.config.schema import (V2_ALGO, AlgoConfig, Config, EnvConfig, LoggingConfig, OpponentConfig, TrainConfig,
                                     with_v2_defaults)

__all__ = ["AlgoConfig", "CONF_DIR", "Config", "ConfigError", "EnvConfig", "LoggingConfig", "OpponentConfig", "RESUME_KEYS",
           "SHORTHANDS", "TrainConfig", "V2_ALGO", "conf_names", "conf_path", "from_yaml", "load_config", "resume_config",
           "to_yaml", "validate", "with_v2_defaults"]
