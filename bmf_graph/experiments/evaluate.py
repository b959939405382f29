"""Evaluate trained models: returns over episodes, Battle head-to-head, zero-shot scaling and
side bias.

Play is greedy by default (``deterministic=True``, ``explore=None``: every agent takes its
highest-scoring action) or sampled (``explore=1.0``: each policy acts as at the end of its
exploration schedule, as training's last episodes do); every episode ``e`` is seeded (``random``,
numpy, torch and the env) with a seed derived from ``seed``. Standard deviations are over
episodes (``ddof=0``).

In Battle, which team spawns on the left is drawn by the env from each episode's seed
(``random_sides``, the default); :func:`side_bias` places the model's team on each side
explicitly. A model trained before the minimap (or with fixed sides) is played with
``env_kwargs={"minimap_mode": False, "random_sides": False}``.

A model is a model file or a run folder (its ``checkpoints/model_final.safetensors``). The command line,
``bmf-evaluate``, is :mod:`bmf_graph.cli.evaluation`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from bmf_graph.training.checkpoint import load_model, seed_everything
from bmf_graph.envs import battle, make_env
from bmf_graph.envs.base import BatchedEnv
from bmf_graph.envs.copies import WorkerCopies
from bmf_graph.training.players import (RANDOM, AtTemperature, Source, checkpoint_config, describe, is_file_source, model_file,
                               setup_play, team_policies)
from bmf_graph.training.rollout import EpisodeResult, play_episode, play_episodes
from bmf_graph.experiments.sweep_grid import SEED_FOLDER
from bmf_graph.experiments.winrate import GameResult, schedule, tally, wilson_interval

__all__ = ["evaluate_returns", "head_to_head", "zero_shot", "side_bias", "battle_map_size", "play", "play_copies"]

ZERO_SHOT_SIZES = (128, 288, 512, 2048)


def play(env: BatchedEnv, policies: Sequence[Any], seed: int, deterministic: bool = True,
         device: torch.device | str = "cpu") -> EpisodeResult:
    """One seeded evaluation episode (no learning)."""
    seed_everything(seed)
    with torch.no_grad():
        return play_episode(env, policies, device, seed, explore=None if deterministic else 1.0)


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std())}


def play_copies(env: BatchedEnv, env_name: str, env_kwargs: Mapping[str, Any], policies: Sequence[Any],
                seeds: Sequence[int], copies: int, deterministic: bool = True,
                device: torch.device | str = "cpu", worker: bool = False) -> list[EpisodeResult]:
    """Seeded evaluation episodes, ``copies`` at a time
    (:func:`~bmf_graph.training.rollout.play_episodes`); ``copies=1`` plays them one by one
    (:func:`play`). Greedy Q, MF and GAT-MF policies give the same episodes either way. With
    ``worker``, the copies are stepped in a worker process and played in two halves
    (:class:`~bmf_graph.envs.copies.WorkerCopies`); a last, smaller round plays only the
    copies it needs."""
    least = 2 if worker else 1
    if copies < least:
        raise ValueError(f"evaluate: copies={copies!r}; expected an integer >= {least}"
                         + (" with a worker" if worker else ""))
    if copies == 1:
        return [play(env, policies, s, deterministic, device) for s in seeds]
    needed = max(least, min(copies, len(seeds)))
    local = [] if worker else [env] + [make_env(env_name, env_kwargs) for _ in range(needed - 1)]
    stepped = WorkerCopies(env_name, env_kwargs, needed) if worker else None
    explore = None if deterministic else 1.0
    results: list[EpisodeResult] = []
    try:
        for start in range(0, len(seeds), copies):
            chunk = list(seeds[start:start + copies])
            seed_everything(chunk[0])
            if stepped is None:
                results += play_episodes(local[:len(chunk)], policies, device, chunk, explore=explore)
            else:
                results += play_episodes(stepped, policies, device, chunk, explore=explore, parts=min(2, len(chunk)))
    finally:
        for extra in local[1:]:
            extra.close()
        if stepped is not None:
            stepped.close()
    return results


def evaluate_returns(model_path_or_policy: Source, env_name: str | None = None,
                     env_kwargs: Mapping[str, Any] | None = None, episodes: int = 10, seed: int = 0,
                     deterministic: bool = True, device: torch.device | str = "cpu", team: int = 0,
                     opponent: Source = RANDOM, copies: int = 1, worker: bool = False,
                     temperature: float | None = None) -> dict[str, Any]:
    """Mean ± std of the team return over ``episodes`` episodes (Firefighter, Pursuit, Battle).

    Args:
        model_path_or_policy: a model file (env defaults to its run's) or a policy object.
        env_name, env_kwargs: the task; ``env_kwargs`` go over the training run's arguments.
        team: index of the evaluated team; every other team plays ``opponent``
            (``"random"``, ``"self"`` or a model file).
        seed: episode ``e`` uses seed ``seed + e``.
        copies: episodes played at once, in copies of the env (faster for many episodes).
        worker: step the copies in a worker process while the policies run (:func:`play_copies`).
        temperature: play the model at ``softmax(scores / temperature)`` (:class:`~bmf_graph.training.players.AtTemperature`:
            Q-values or actor logits) instead of greedily or sampled.

    Returns:
        ``{"return": {"mean", "std"}, "returns": [...], "kills", "steps", "mode", "temperature", ...}``
        with the settings; ``mode`` is ``greedy`` (the Q family's best action, the actor-critic
        family's most probable one), ``sampled`` (each policy as at the end of its exploration
        schedule) or ``temperature``.
    """
    if episodes < 1:
        raise ValueError(f"evaluate_returns: episodes={episodes!r}; expected an integer >= 1")
    env, env_name, kwargs, policies = setup_play(model_path_or_policy, env_name, env_kwargs, team, opponent, device,
                                                 owner="evaluate_returns: ")
    if temperature is not None:
        policies[team] = AtTemperature(policies[team], temperature)
    try:
        results = play_copies(env, env_name, kwargs, policies, [seed + e for e in range(episodes)], copies,
                              deterministic and temperature is None, device, worker)
    finally:
        env.close()
    returns = [float(r.returns[team]) for r in results]
    kills = [float(r.kills[team]) for r in results]
    return {"env": env_name, "env_kwargs": kwargs, "model": describe(model_path_or_policy),
            "team": env.teams[team].name, "opponent": describe(opponent) if len(env.teams) > 1 else None,
            "episodes": episodes, "seed": seed, "deterministic": deterministic and temperature is None,
            "mode": "temperature" if temperature is not None else "greedy" if deterministic else "sampled",
            "temperature": temperature, "return": _mean_std(returns), "return_per_agent": _mean_std(np.array(returns) / env.teams[team].num_agents),
            "kills": _mean_std(kills), "steps": [r.steps for r in results], "returns": returns}


def _name(player: Source) -> str:
    """The run folder of ``RUN`` or ``RUN/checkpoints/model_final.*`` (``LABEL/seedS`` for the
    results layout's ``LABEL/seedS`` runs), ``RUN/model_ep...`` for other files of a run, else the
    file stem (or the description of a non-file)."""
    if not isinstance(player, (str, Path)) or str(player) == RANDOM:
        return describe(player)
    path = Path(player)
    if path.is_dir():
        folder, model = path, "model_final"
    elif path.parent.name == "checkpoints":
        folder, model = path.parent.parent, path.stem
    else:
        return path.stem
    run = f"{folder.parent.name}/{folder.name}" if SEED_FOLDER.fullmatch(folder.name) else folder.name
    return run if model == "model_final" else f"{run}/{model}"


def _names(players: Sequence[Source]) -> list[str]:
    names: list[str] = []
    for p in players:
        name = _name(p)
        names.append(name if name not in names else f"{name}#{len(names)}")
    return names


def head_to_head(checkpoints: Sequence[Source], games: int = 10, env_kwargs: Mapping[str, Any] | None = None,
                 seed: int = 0, deterministic: bool = True, device: torch.device | str = "cpu",
                 include_random: bool = False, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Battle win-rate matrix between every pair of players.

    Each pair plays ``games`` games, each seed twice with the players' teams swapped (see
    :func:`~bmf_graph.experiments.winrate.schedule`); with ``random_sides`` (the default) the env draws from
    each seed which team spawns on the left, so a player's side is random per game and each seed
    is played once from each side. Every game records the player on the left. The winner killed
    more opponents, ties are counted apart; win rates come with Wilson 95 % intervals.

    Args:
        checkpoints: model files (or ``"random"`` / policy objects); at least two players
            with ``include_random``.
        env_kwargs: Battle arguments over those of the first checkpoint's run (if Battle).

    Returns:
        ``{"table": WinTable.to_dict(), "games": [...per game...], "env_kwargs", ...}``.
    """
    players = list(checkpoints) + ([RANDOM] if include_random else [])
    if len(players) < 2:
        raise ValueError(f"head_to_head: got {len(players)} player(s); expected at least 2 "
                         f"(include_random=True, --random, adds a random player)")
    names = list(names) if names is not None else _names(players)
    if len(names) != len(players):
        raise ValueError(f"head_to_head: names has {len(names)} entries, expected {len(players)} (one per player)")
    first = checkpoint_config(players[0])
    kwargs = dict(first.env.kwargs) if first is not None and first.env.name == "battle" else {}
    kwargs.update(env_kwargs or {})
    plan = schedule(len(players), games, seed)
    env = make_env("battle", kwargs)
    try:
        # One instance per player and side: a policy object never plays both teams of a game.
        sides = [team_policies(env, [p, p], device, own=p) for p in players]
        results = []
        for game in plan:
            r = play(env, [sides[game.red][0], sides[game.blue][1]], game.seed, deterministic, device)
            results.append(GameResult(game.red, game.blue, game.seed, float(r.kills[0]), float(r.kills[1]),
                                      float(r.returns[0]), float(r.returns[1]),
                                      left=(game.red, game.blue)[env.left_team]))
    finally:
        env.close()
    table = tally(names, results)
    return {"env": "battle", "env_kwargs": kwargs, "players": [describe(p) for p in players],
            "games_per_pair": games, "seed": seed, "deterministic": deterministic,
            "table": table.to_dict(), "text": table.format(),
            "games": [{**r.to_dict(), "red": names[r.red], "blue": names[r.blue], "left": names[r.left],
                       "winner": None if r.winner is None else names[r.winner]} for r in results]}


def battle_map_size(total_agents: int) -> int:
    """Smallest Battle map whose default density holds ``total_agents / 2`` per team
    (128 -> 40, 288 -> 60, 512 -> 80, 2,048 -> 160)."""
    if total_agents < 2 or total_agents % 2:
        raise ValueError(f"battle_map_size: total_agents={total_agents!r}; expected an even number >= 2")
    per_team, m = total_agents // 2, battle.MIN_MAP_SIZE
    while battle.default_agents_per_team(m) < per_team or battle.max_agents_per_team(m) < per_team:
        m += 1
    return m


def zero_shot(checkpoint: Source, sizes: Sequence[int] = ZERO_SHOT_SIZES, games: int = 4,
              opponent: Source = RANDOM, seed: int = 0, deterministic: bool = True,
              device: torch.device | str = "cpu", env_kwargs: Mapping[str, Any] | None = None,
              map_sizes: Mapping[int, int] | None = None) -> dict[str, Any]:
    """A Battle model evaluated at other team sizes, without training.

    Args:
        checkpoint: model file (or policy object) of the evaluated team.
        sizes: total agents (both teams) per setting.
        games: games per size; the model plays the team it learned as, game ``g`` with seed
            ``seed + g``; the env draws its side from the seed (``random_sides``).
        opponent: ``"random"``, ``"self"`` (the checkpoint itself at the same size) or a model file.
        env_kwargs: other Battle arguments (preset, max_steps) over the run's.
        map_sizes: map per size; default :func:`battle_map_size`.

    Returns:
        ``{"sizes": [{"agents", "map_size", "return", "opponent_return", "kills", "wins", "ties",
        "losses", "win_rate", "ci95", "games_on_left", ...}], ...}``.
    """
    if games < 1:
        raise ValueError(f"zero_shot: games={games!r}; expected an integer >= 1")
    odd = [s for s in sizes if s < 2 or s % 2]
    if odd:
        raise ValueError(f"zero_shot: sizes={list(sizes)!r} holds {odd[0]}; expected even totals >= 2 (two equal teams)")
    sized = sorted({"map_size", "agents_per_team"} & set(env_kwargs or {}))
    if sized:
        raise ValueError(f"zero_shot: env_kwargs {sized[0]}={env_kwargs[sized[0]]!r} is not valid: every size sets its "
                         f"own map and team size; expected sizes (and map_sizes) instead")
    if not sizes:
        raise ValueError("zero_shot: sizes=[] is empty; expected at least one even total, e.g. 128")
    cfg = checkpoint_config(checkpoint)
    base = dict(cfg.env.kwargs) if cfg is not None and cfg.env.name == "battle" else {}
    base.update(env_kwargs or {})
    for key in ("map_size", "agents_per_team"):  # the run's own sizes: replaced by each size's
        base.pop(key, None)
    trained = load_model(model_file(checkpoint)).spec.num_agents * 2 if is_file_source(checkpoint) else None
    me = learned_team(checkpoint)
    rows = []
    for size in sizes:
        map_size = (map_sizes or {}).get(size) or battle_map_size(size)
        env = make_env("battle", {**base, "map_size": map_size, "agents_per_team": size // 2})
        try:
            policies = team_policies(env, [checkpoint if i == me else opponent for i in (0, 1)], device, own=checkpoint)
            results, left = [], 0
            for g in range(games):
                results.append(play(env, policies, seed + g, deterministic, device))
                left += env.left_team == me
        finally:
            env.close()
        rows.append({"agents": size, "map_size": map_size, "agents_per_team": size // 2, "games": games,
                     **duel_stats(results, me), "games_on_left": left})
    return {"env": "battle", "env_kwargs": base, "checkpoint": describe(checkpoint), "trained_agents": trained,
            "team": ("red", "blue")[me], "opponent": describe(opponent), "seed": seed,
            "deterministic": deterministic, "sizes": rows}


def duel_stats(results: Sequence[EpisodeResult], team: int) -> dict[str, Any]:
    """Battle games seen from ``team``: returns and kills of both teams (mean, std; the team's
    per game), wins, ties and losses by kills, the win rate and its Wilson interval."""
    returns, kills = [float(r.returns[team]) for r in results], [float(r.kills[team]) for r in results]
    against = [float(r.kills[1 - team]) for r in results]
    wins, ties, games = sum(k > o for k, o in zip(kills, against)), sum(k == o for k, o in zip(kills, against)), len(results)
    return {"return": _mean_std(returns), "opponent_return": _mean_std([float(r.returns[1 - team]) for r in results]),
            "kills": _mean_std(kills), "opponent_kills": _mean_std(against), "wins": wins, "ties": ties,
            "losses": games - wins - ties, "win_rate": wins / games, "ci95": list(wilson_interval(wins, games)),
            "returns": returns, "kills_per_game": kills}


def learned_team(checkpoint: Source) -> int:
    """The Battle team a model learned as (its run's first learning team; 0 outside a run)."""
    cfg = checkpoint_config(checkpoint)
    return cfg.env.learn_teams[0] if cfg is not None and cfg.env.name == "battle" else 0


def side_bias(checkpoint: Source, games: int = 20, env_kwargs: Mapping[str, Any] | None = None, seed: int = 0,
              deterministic: bool = True, device: torch.device | str = "cpu", team: int | None = None,
              opponent: Source = RANDOM, copies: int = 1) -> dict[str, Any]:
    """Kills of a Battle model with its team on the left and on the right.

    The model plays ``team`` (default: the team it learned as) against ``opponent`` in
    ``games`` games with its team's cells on the left and ``games`` on the right
    (``random_sides=False``, ``left_team``), both with seeds ``seed .. seed + games - 1``.
    A model that learned from both sides kills about as many from either.

    Returns:
        ``{"left": {...}, "right": {...}, "kills_left", "kills_right", "relative_gap", ...}``
        with :func:`duel_stats` per side; ``relative_gap = |L - R| / max(L, R)`` of mean kills.
    """
    if games < 1:
        raise ValueError(f"side_bias: games={games!r}; expected an integer >= 1")
    team = learned_team(checkpoint) if team is None else team
    if team not in (0, 1):
        raise ValueError(f"side_bias: team={team!r}; expected 0 (red) or 1 (blue)")
    seeds, out = [seed + g for g in range(games)], {}
    for side, left in (("left", team), ("right", 1 - team)):
        kwargs = {**(env_kwargs or {}), "random_sides": False, "left_team": left}
        env, _, kwargs, policies = setup_play(checkpoint, "battle", kwargs, team, opponent, device, "side_bias: ")
        try:
            results = play_copies(env, "battle", kwargs, policies, seeds, copies, deterministic, device)
        finally:
            env.close()
        out[side] = duel_stats(results, team)
    left, right = out["left"]["kills"]["mean"], out["right"]["kills"]["mean"]
    kwargs.pop("left_team")
    return {"env": "battle", "env_kwargs": kwargs, "model": describe(checkpoint), "team": ("red", "blue")[team],
            "opponent": describe(opponent), "games_per_side": games, "seed": seed, "deterministic": deterministic,
            **out, "kills_left": left, "kills_right": right,
            "relative_gap": abs(left - right) / max(left, right) if max(left, right) > 0 else 0.0}
