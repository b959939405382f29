"""Who plays a team when nothing learns: a model file, ``"random"`` or ``"self"``, loaded for a
team of any size (zero-shot scaling), plus the environment and run configuration a checkpoint
was trained in.

``"self"`` means the evaluated checkpoint again, as a separate instance (a policy object keeps
per-episode state such as its groups, so one object never plays two teams at once).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.training.checkpoint import load_model
from bmf_graph.training.model_files import final_model, model_stems
from bmf_graph.config import Config, from_yaml
from bmf_graph.config.checks import ENVIRONMENTS
from bmf_graph.envs import make_env
from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep
from bmf_graph.training.rollout import previous_actions, team_view
from bmf_graph.training.scripted import ScriptedBattleTeam

RANDOM, SELF, SCRIPTED = "random", "self", "scripted"
Source = Any
"""A model file path, ``"random"``, ``"self"``, ``"scripted"`` (Battle's
:class:`~bmf_graph.training.scripted.ScriptedBattleTeam`) or a policy object (``begin_episode/observe/act``)."""


def describe(source: Source) -> str:
    """A JSON-friendly name of a policy source."""
    if isinstance(source, (str, Path)):
        return str(source)
    return repr(source)


def read_run_config(path: Path | str) -> Config:
    """A run's ``config.yaml`` against the schema, without :func:`~bmf_graph.config.checks.validate`
    (so a run folder moved away from its opponent checkpoint still reads)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_run_config: no config file at {path}")
    return from_yaml(path, check=False)


def is_file_source(source: Source) -> bool:
    """Whether ``source`` names a file or folder (not ``"random"``, ``"self"`` or a policy)."""
    return isinstance(source, (str, Path)) and str(source) not in (RANDOM, SELF, SCRIPTED)


def model_file(source: Path | str) -> Path:
    """The model file ``source`` names: itself, or ``RUN/checkpoints/model_final.safetensors``
    (an earlier version's ``model_final.pt``) for a run folder ``RUN``. Raises
    ``FileNotFoundError`` naming what is missing."""
    path = Path(source)
    if path.is_dir():
        final = final_model(path)
        if final is not None:
            return final
        saved = model_stems(path / "checkpoints")
        raise FileNotFoundError(f"{path} is a folder without checkpoints/model_final.safetensors; expected a model "
                                f"file (.safetensors or .pt) or a finished run folder"
                                + (f" (its model files: {', '.join(saved)})" if saved else ""))
    if not path.is_file():
        raise FileNotFoundError(f"model {str(path)!r} does not exist; expected a model file (.safetensors or .pt) "
                                f"or a run folder")
    return path


def checkpoint_config(checkpoint: Source) -> Config | None:
    """The config of the run a model file belongs to (``RUN/checkpoints/model_*`` or ``RUN`` ->
    ``RUN/config.yaml``); ``None`` for other sources or files outside a run folder."""
    if not is_file_source(checkpoint):
        return None
    path = model_file(checkpoint)
    config = path.parent.parent / "config.yaml"
    return read_run_config(config) if path.parent.name == "checkpoints" and config.is_file() else None


def run_threads(checkpoint: Source) -> int:
    """The ``threads`` setting of the run ``checkpoint`` comes from (0: torch's default, also for
    sources outside a run folder); evaluation and plots use it unless told otherwise."""
    cfg = checkpoint_config(checkpoint)
    return cfg.threads if cfg is not None else 0


def set_threads(requested: int | None, checkpoint: Source) -> int:
    """Set torch's CPU threads to ``requested``, or to the run's own ``threads`` when it is
    ``None``; 0 leaves torch's default. Returns the number applied (0: unchanged)."""
    threads = run_threads(checkpoint) if requested is None else requested
    if threads > 0:
        torch.set_num_threads(threads)
    return threads


def resolve_env(checkpoint: Source, env_name: str | None, env_kwargs: Mapping[str, Any] | None) -> tuple[str, dict]:
    """The env name and keyword arguments to evaluate in: the training run's, with
    ``env_kwargs`` on top; ``env_name`` replaces the run's env (and drops its arguments)."""
    cfg = checkpoint_config(checkpoint)
    if env_name is None:
        if cfg is None:
            raise ValueError(f"{describe(checkpoint)!r} is not inside a run folder with a config.yaml, so its task "
                             f"is unknown; name it (--env, env_name=), one of {', '.join(ENVIRONMENTS)}")
        env_name = cfg.env.name
    kwargs = dict(cfg.env.kwargs) if cfg is not None and cfg.env.name == env_name else {}
    kwargs.update(env_kwargs or {})
    return env_name, kwargs


def load_policy(source: Source, team: TeamSpec, device: torch.device | str = "cpu",
                own: Source | None = None) -> Any:
    """A policy for ``team``: ``"random"``, ``"scripted"`` (Battle), ``"self"`` (``own`` again) or a model file, loaded
    for ``team.num_agents`` agents; a policy object is used as it is. Checks the team's spaces."""
    if isinstance(source, str) and source == SELF:
        if own is None:
            raise ValueError("load_policy: source='self' needs the evaluated checkpoint (own=...)")
        source = own
    if isinstance(source, str) and source == RANDOM:
        return RandomPolicy(team)
    if isinstance(source, str) and source == SCRIPTED:
        return ScriptedBattleTeam(team)
    if isinstance(source, (str, Path)):
        policy = load_model(model_file(source), device, num_agents=team.num_agents)
    elif all(hasattr(source, m) for m in ("begin_episode", "observe", "act")):
        policy = source
    else:
        raise ValueError(f"load_policy: source={source!r}; expected a model file, 'random', 'scripted', 'self' "
                         f"or a policy with begin_episode/observe/act")
    spec = getattr(policy, "spec", None)
    if spec is not None and (spec.obs_dim, spec.num_actions) != (team.obs_dim, team.num_actions):
        raise ValueError(f"load_policy: {describe(source)!r} has obs_dim={spec.obs_dim}, "
                         f"num_actions={spec.num_actions}; team {team.name!r} needs obs_dim={team.obs_dim}, "
                         f"num_actions={team.num_actions} (play it in the env it learned in, e.g. "
                         f"minimap_mode=false random_sides=false for a Battle model trained before the minimap)")
    return policy


class AtTemperature:
    """A learned discrete policy played at ``softmax(scores / temperature)``: the scores are the
    actor's logits of the actor-critic family (``policy.actor``, never its critic) or the
    Q-values of the Q family (``policy.q``), read with the policy's own context (``rec["mean_action"]``)."""

    def __init__(self, policy: Any, temperature: float):
        if not temperature > 0:
            raise ValueError(f"AtTemperature: temperature={temperature!r}; expected a number > 0")
        if not (hasattr(policy, "q") or hasattr(policy, "actor")) or getattr(policy.spec, "continuous", False):
            raise ValueError(f"AtTemperature: {describe(policy)} has neither Q-values (q) nor actor logits "
                             f"(actor) over discrete actions; expected a Q-family or actor-critic model")
        self.inner, self.temperature, self.spec = policy, float(temperature), policy.spec

    def __repr__(self) -> str:
        return f"AtTemperature({type(self.inner).__name__}, T={self.temperature})"

    def begin_episode(self) -> None:
        self.inner.begin_episode()

    def observe(self, view: Any) -> dict[str, torch.Tensor]:
        return self.inner.observe(view)

    def scores(self, view: Any, rec: dict[str, torch.Tensor]) -> torch.Tensor:
        """Q-values or logits ``[N, A]``."""
        net = self.inner.actor if hasattr(self.inner, "actor") else self.inner.q
        return net(view.obs, rec["mean_action"])

    def policy(self, view: Any, rec: dict[str, torch.Tensor], explore: float | None) -> torch.Tensor:
        return torch.softmax(self.scores(view, rec) / self.temperature, dim=-1)

    def act(self, view: Any, rec: dict[str, torch.Tensor], explore: float | None) -> torch.Tensor:
        return torch.multinomial(self.policy(view, rec, explore), 1).squeeze(-1)


def team_policies(env: BatchedEnv, sources: Sequence[Source], device: torch.device | str, own: Source) -> list[Any]:
    """One policy per team of ``env`` from one source per team."""
    if len(sources) != len(env.teams):
        raise ValueError(f"team_policies: got {len(sources)} policy sources, expected {len(env.teams)} "
                         f"(one per team: {', '.join(t.name for t in env.teams)})")
    return [load_policy(s, t, device, own) for s, t in zip(sources, env.teams)]


def setup_play(checkpoint: Source, env_name: str | None, env_kwargs: Mapping[str, Any] | None, team: int,
               opponent: Source | None, device: torch.device | str,
               owner: str = "") -> tuple[BatchedEnv, str, dict, list[Any]]:
    """The env to play in and one policy per team: ``checkpoint`` plays ``team``, ``opponent``
    every other team (``None``: the model itself where the other teams have its spaces, else
    random). Returns ``(env, env_name, env_kwargs, policies)``; the caller closes ``env``."""
    env_name, kwargs = resolve_env(checkpoint, env_name, env_kwargs)
    env = make_env(env_name, kwargs)
    try:
        if not 0 <= team < len(env.teams):
            raise ValueError(f"{owner}team={team!r}; expected an index in 0..{len(env.teams) - 1} "
                             f"({', '.join(t.name for t in env.teams)})")
        if opponent is None:
            spec = env.teams[team]
            same = all((t.obs_dim, t.num_actions) == (spec.obs_dim, spec.num_actions) for t in env.teams)
            opponent = SELF if same else RANDOM
        sources = [checkpoint if i == team else opponent for i in range(len(env.teams))]
        return env, env_name, kwargs, team_policies(env, sources, device, own=checkpoint)
    except BaseException:
        env.close()
        raise


class Driver:
    """Policies as a ``save_episode_gif`` policy: ``driver(team_steps) -> actions per team``.

    Keeps the previous actions, observations and the step index as
    :func:`~bmf_graph.training.rollout.play_episodes` does; call :meth:`reset` (or create a new driver)
    before each episode.
    """

    def __init__(self, policies: Sequence[Any], num_actions: Sequence[int], device: torch.device | str,
                 explore: float | None = None):
        self.policies, self.num_actions = list(policies), list(num_actions)
        self.device, self.explore = torch.device(device), explore
        self.reset()

    def reset(self) -> None:
        self.a_prev: list[torch.Tensor | None] = [None] * len(self.policies)
        self.prev_obs: list[torch.Tensor | None] = [None] * len(self.policies)
        self.t = 0  # env step of the next call
        for policy in self.policies:
            policy.begin_episode()

    @torch.no_grad()
    def __call__(self, steps: Sequence[TeamStep]) -> list[np.ndarray]:
        actions = []
        for i, (policy, step) in enumerate(zip(self.policies, steps)):
            if self.a_prev[i] is None:
                self.a_prev[i] = torch.zeros(len(step.alive), self.num_actions[i], device=self.device)
            view = team_view(step, self.a_prev[i], self.prev_obs[i], self.device, self.t)
            action = policy.act(view, policy.observe(view), self.explore)
            self.a_prev[i] = previous_actions(action, self.num_actions[i], view)
            self.prev_obs[i] = view.obs
            actions.append(action.cpu().numpy())
        self.t += 1
        return actions
