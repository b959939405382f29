"""Checks of a configuration's values that OmegaConf cannot make: choices, ranges, paths, the
task's own arguments and what ``resume=RUN`` may change. Each bad value raises one
:class:`ConfigError` naming the key, the value and what was expected.
"""
from __future__ import annotations

import inspect
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from omegaconf import OmegaConf

from bmf_graph.envs import TASKS

if TYPE_CHECKING:
    import torch

    from bmf_graph.config.schema import Config

ALGORITHMS = ("q", "mfq", "ac", "mfac", "gat_mf", "bmf_q", "bmf_ac")
ENVIRONMENTS = tuple(TASKS)  # firefighter, battle, pursuit, vmas
GROUPINGS = ("vae", "ae", "random")
SCORINGS = ("gatv2", "gat", "cosine")
CRITICS = ("q", "value")
TARGETS = ("double_q", "expectation")
EXPLORATIONS = ("epsilon", "boltzmann")
EPSILON_SCOPES = ("team", "agent")
SAMPLINGS = ("agents", "team_steps")
NETWORKS = ("branched", "reference", "mlp")
CONTEXT_BRANCHES = ("shared", "split")
OPPONENT_POLICIES = ("self_play", "random", "checkpoint")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A configuration key has an unknown name, a wrong type or an invalid value."""


POSITIVE = ("hidden", "lr", "max_grad_norm", "buffer_size", "batch_size", "batch_steps", "update_every", "updates", "num_groups",
            "group_interval", "latent_dim", "heads", "vae_lr", "vae_every", "temperature_start", "temperature_end",
            "replay_ratio", "actor_lr")
"""``algo.*`` settings that must be > 0."""
NON_NEGATIVE = ("learning_starts", "diagnostics_every", "entropy_coef", "entropy_coef_start", "value_coef", "beta", "lambda_rec",
                "lambda_pred")
"""``algo.*`` settings that must be >= 0 (when set: ``None`` stands for "not used")."""
UNIT = ("tau", "gamma", "gae_lambda", "explore_fraction", "epsilon_start", "epsilon_mid", "epsilon_mid_fraction",
        "epsilon_end", "noise_start", "noise_end")
"""``algo.*`` settings in [0, 1]."""
RESUME_KEYS = ("train.episodes", "train.progress", "train.state_minutes", "threads")
"""What ``resume=RUN`` may change: more episodes extend the run; the others do not change
what it computes (how often the resumable state is written, progress output, torch threads)."""


def _choice(key: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not valid; expected one of {', '.join(map(str, choices))}")


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} is not valid; expected a finite number")
    return value


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if not (_number(key, value) > 0 or (allow_zero and value == 0)):
        raise ConfigError(f"{key}={value!r} is not valid; expected a {'non-negative' if allow_zero else 'positive'} number")


def _unit(key: str, value: float) -> None:
    if not 0 <= _number(key, value) <= 1:
        raise ConfigError(f"{key}={value!r} is not valid; expected a number in [0, 1]")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a CUDA device is refused."""
    import torch

    _choice("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is not available: torch sees no CUDA device on this machine; "
                          "expected auto or cpu")
    return torch.device(name)


def _inside(key: str, value: Optional[str], what: str) -> None:
    """``value`` is a relative path that stays inside the folder it is joined to."""
    if value is None:
        return
    path = Path(value)
    if not value.strip() or path.is_absolute() or ".." in path.parts or value.strip() in (".", "./"):
        raise ConfigError(f"{key}={value!r} is not valid; expected {what}")


def validate(cfg: Config) -> Config:
    """Check the values OmegaConf cannot: choices, ranges and the task's own arguments."""
    _choice("env.name", cfg.env.name, ENVIRONMENTS)
    _choice("algo.name", cfg.algo.name, ALGORITHMS)
    _choice("algo.grouping", cfg.algo.grouping, GROUPINGS)
    _choice("algo.scoring", cfg.algo.scoring, SCORINGS)
    _choice("algo.critic", cfg.algo.critic, CRITICS)
    _choice("algo.target", cfg.algo.target, TARGETS)
    _choice("algo.exploration", cfg.algo.exploration, EXPLORATIONS)
    _choice("algo.epsilon_scope", cfg.algo.epsilon_scope, EPSILON_SCOPES)
    _choice("algo.sampling", cfg.algo.sampling, SAMPLINGS)
    _choice("algo.network", cfg.algo.network, NETWORKS)
    _choice("algo.context_branches", cfg.algo.context_branches, CONTEXT_BRANCHES)
    if cfg.algo.context_branches == "split" and cfg.algo.network == "mlp":
        raise ConfigError("algo.context_branches='split' is not valid with algo.network='mlp' (it joins the raw "
                          "context, with no branch); expected branched or reference")
    _choice("opponent.policy", cfg.opponent.policy, OPPONENT_POLICIES)
    _choice("device", cfg.device, DEVICES)  # CUDA itself is checked where the run starts (a sweep's workers)
    for key in POSITIVE:
        _positive(f"algo.{key}", getattr(cfg.algo, key))
    for key in NON_NEGATIVE:
        if getattr(cfg.algo, key) is not None:
            _positive(f"algo.{key}", getattr(cfg.algo, key), allow_zero=True)
    for key in UNIT:
        _unit(f"algo.{key}", getattr(cfg.algo, key))
    if cfg.algo.buffer_size < 2:
        raise ConfigError(f"algo.buffer_size={cfg.algo.buffer_size} is not valid; expected at least 2 (a transition "
                          f"needs two records)")
    if cfg.algo.epsilon_mid_fraction == 0 and cfg.algo.epsilon_mid != cfg.algo.epsilon_start:
        raise ConfigError("algo.epsilon_mid_fraction=0 needs algo.epsilon_mid == algo.epsilon_start")
    _unit("opponent.tau", cfg.opponent.tau)
    if cfg.env.radius != math.inf:  # inf: the whole team (MFRL's scope), no edges
        _positive("env.radius", cfg.env.radius)
    if not cfg.env.learn_teams or len(set(cfg.env.learn_teams)) != len(cfg.env.learn_teams) \
            or min(cfg.env.learn_teams) < 0:
        raise ConfigError(f"env.learn_teams={cfg.env.learn_teams} is not valid; expected distinct team indices >= 0")
    for key in ("episodes", "save_every", "envs", "eval_episodes"):
        _positive(f"train.{key}", getattr(cfg.train, key))
    _positive("train.state_minutes", cfg.train.state_minutes, allow_zero=True)
    if cfg.train.eval_every is not None:
        _positive("train.eval_every", cfg.train.eval_every)
    if not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"seed={cfg.seed!r} is not valid; expected an integer in [0, 2**32)")
    if not 0 <= cfg.threads <= max_threads():
        raise ConfigError(f"threads={cfg.threads} is not valid; expected 0 (torch's default) or 1..{max_threads()} "
                          f"(4 per CPU core of this machine)")
    if cfg.train.worker and cfg.train.envs < 2:
        raise ConfigError(f"train.worker=true needs train.envs >= 2 (two halves); got train.envs={cfg.train.envs}")
    if cfg.train.max_steps is not None:
        _positive("train.max_steps", cfg.train.max_steps)
    if cfg.resume is None:
        check_runs_dir(cfg.runs_dir)
    _inside("run_name", cfg.run_name, "a folder name inside runs_dir (no '..', not absolute)")
    if not cfg.conf.strip() or "/" in cfg.conf or "\\" in cfg.conf or cfg.conf.startswith("."):
        raise ConfigError(f"conf={cfg.conf!r} is not valid; expected a task file's name (no folders)")
    if cfg.opponent.policy == "checkpoint" and not cfg.opponent.checkpoint:
        raise ConfigError("opponent.policy=checkpoint needs opponent.checkpoint=PATH to a model file")
    if cfg.opponent.checkpoint and not Path(cfg.opponent.checkpoint).is_file():
        raise ConfigError(f"opponent.checkpoint={cfg.opponent.checkpoint!r} is not a file")
    if cfg.resume is not None and not Path(cfg.resume).is_dir():
        raise ConfigError(f"resume={cfg.resume!r} is not a run folder")
    _check_env_kwargs(cfg.env.name, cfg.env.kwargs)
    return cfg


def max_threads() -> int:
    """The most torch threads a run may ask for: 4 per CPU core."""
    return 4 * (os.cpu_count() or 1)


PACKAGE = Path(__file__).resolve().parents[1]


def check_runs_dir(runs_dir: str) -> None:
    """``runs_dir`` is a writable folder (or one that can be made in a writable folder) outside
    the installed package."""
    if not runs_dir.strip():
        raise ConfigError("runs_dir='' is not valid; expected a folder")
    path = Path(runs_dir).expanduser().resolve()
    if path == PACKAGE or PACKAGE in path.parents:
        raise ConfigError(f"runs_dir={runs_dir!r} is not valid: it is inside the installed bmf_graph package "
                          f"({PACKAGE}); expected a folder outside it (e.g. runs)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"runs_dir={runs_dir!r} is not valid: {existing} is a file; expected a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"runs_dir={runs_dir!r} is not valid: {existing} is not writable; expected a writable folder")


def _check_env_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"env.kwargs.{key}={value!r} is not valid; expected a finite number")
    factory = TASKS[name].batched_env
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ConfigError(f"env.kwargs.{unknown[0]} is not an argument of the {name} task; "
                          f"expected one of {', '.join(sorted(params))}")


def check_resume(cfg: Config, saved: Config) -> None:
    """``cfg`` may differ from the run's own ``saved`` configuration in :data:`RESUME_KEYS` (and
    the run folder's name and place) only: a resumed run keeps its settings, or it would no longer
    be one run."""
    mine, theirs = _flat(cfg), _flat(saved)
    ignored = set(RESUME_KEYS) | {"resume", "run_name", "runs_dir", "overwrite"}
    changed = sorted(k for k in mine.keys() | theirs.keys() if k not in ignored and mine.get(k) != theirs.get(k))
    if changed:
        key = changed[0]
        raise ConfigError(f"resume={str(Path(cfg.resume))!r} keeps the run's own settings; {key}={mine.get(key)!r} differs "
                          f"from its config.yaml ({theirs.get(key)!r}); only {', '.join(RESUME_KEYS)} may change "
                          f"(train.episodes=N extends the run)")


def _flat(cfg: Config) -> dict[str, Any]:
    def walk(node: Any, prefix: str) -> dict[str, Any]:
        if isinstance(node, dict) and not (prefix == "env.kwargs."):
            return {k2: v2 for k, v in node.items() for k2, v2 in walk(v, f"{prefix}{k}.").items()}
        return {prefix[:-1]: node}
    return walk(OmegaConf.to_container(OmegaConf.structured(cfg)), "")
