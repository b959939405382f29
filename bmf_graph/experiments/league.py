"""The Battle league: every final model of every method and seed, plus two fixed yardsticks (a
random team and :class:`~bmf_graph.training.scripted.ScriptedBattleTeam`), play a round robin.

Every pair plays ``games`` games from :func:`~bmf_graph.experiments.winrate.schedule`: each seed twice, the
players' colours swapped; the env draws from the seed which colour spawns on the left
(``random_sides``), so each seed is also played once from each side. Play is greedy (the AC
family its mode); a game is won by more kills, equal kills are a tie.

The league lives in a folder (default ``RESULTS_DIR/battle/league/``):

``league.json``   the settings and the roster (name, method, seed, model file of each player);
``games.csv``     one row per game, appended (and flushed) after every batch of games, so a
                  killed league resumes where it stopped: the games already in the file are
                  not played again;
``ratings.json``  :func:`summarize`: Bradley–Terry ratings per model and per method with 95 %
                  intervals over seeds (:mod:`bmf_graph.experiments.ratings`), and each method's win rate
                  against each yardstick (mean over seeds, cluster-bootstrap interval).

The league grows with the results: a roster that keeps every player of the folder's league
(the same model files, by their SHA-256) and adds models continues it, keeping every game played
and playing the new pairs. A folder holding another league (other settings, a player gone or
its model file changed) is refused, never mixed.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from bmf_graph.training.checkpoint import seed_everything
from bmf_graph.config.checks import ALGORITHMS
from bmf_graph.envs import make_env
from bmf_graph.files import atomic_write_text
from bmf_graph.training.model_files import final_model
from bmf_graph.training.players import RANDOM, SCRIPTED, checkpoint_config, team_policies
from bmf_graph.experiments.ratings import bradley_terry, elo, method_ratings, win_matrix
from bmf_graph.experiments.results_stats import cluster_bootstrap
from bmf_graph.training.rollout import play_episodes
from bmf_graph.experiments.sweep_grid import SEED_FOLDER
from bmf_graph.experiments.winrate import Game, schedule

YARDSTICKS = (RANDOM, SCRIPTED)
COLUMNS = ("a", "b", "game", "seed", "red", "blue", "left", "kills_red", "kills_blue", "return_red",
           "return_blue", "winner")
DEFAULT_GAMES = 52


@dataclass(frozen=True)
class Player:
    """One league player: a yardstick (``method`` = its name, ``seed`` None) or a final model,
    with the SHA-256 of its model file (``digest``), so a retrained model is never mixed in."""

    name: str
    method: str
    seed: int | None
    source: str
    digest: str | None = None


def roster(results_dir: Path | str, methods: Sequence[str] | None = None) -> list[Player]:
    """The yardsticks, then the final model (:func:`~bmf_graph.training.model_files.final_model`) of every
    ``RESULTS_DIR/battle/{method}/seed{S}`` run of every method (``methods``, default every algorithm
    with a folder) in algorithm order."""
    battle = Path(results_dir) / "battle"
    methods = list(methods) if methods else [m for m in ALGORITHMS if (battle / m).is_dir()]
    players = [Player(y, y, None, y) for y in YARDSTICKS]
    for method in methods:
        runs = sorted((d for d in (battle / method).glob("seed*") if SEED_FOLDER.fullmatch(d.name)),
                      key=lambda d: int(SEED_FOLDER.fullmatch(d.name).group(1)))
        finals = [(run, model) for run in runs if (model := final_model(run)) is not None]
        if not finals:
            raise FileNotFoundError(f"league: method {method!r} has no final model under {battle / method}/seed*/"
                                    f"checkpoints; expected at least one finished Battle run")
        for run, path in finals:
            seed = int(SEED_FOLDER.fullmatch(run.name).group(1))
            players.append(Player(f"{method}/seed{seed}", method, seed, str(path),
                                  hashlib.sha256(Path(path).read_bytes()).hexdigest()))
    if len(players) == len(YARDSTICKS):
        raise FileNotFoundError(f"league: no Battle models under {battle}; expected {battle}/METHOD/seedS runs")
    return players


def env_kwargs(players: Sequence[Player]) -> dict[str, Any]:
    """The Battle arguments every model's run shares (refused when they differ)."""
    found: dict[str, Any] | None = None
    for p in players:
        cfg = checkpoint_config(p.source) if p.seed is not None else None
        if cfg is None:
            continue
        kwargs = dict(cfg.env.kwargs)
        if found is not None and kwargs != found:
            raise ValueError(f"league: {p.name} was trained with env.kwargs={kwargs}, others with {found}; "
                             f"expected every model from the same Battle settings")
        found = kwargs
    return found or {}


def read_games(folder: Path | str) -> list[dict[str, Any]]:
    """The rows of ``folder/games.csv`` (numbers as floats, ``winner`` None for a tie)."""
    path = Path(folder) / "games.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"league: {path} has columns {reader.fieldnames}; expected {','.join(COLUMNS)}")
        rows = list(reader)
    for row in rows:
        row["game"], row["seed"] = int(row["game"]), int(row["seed"])
        for key in ("kills_red", "kills_blue", "return_red", "return_blue"):
            row[key] = float(row[key])
        row["winner"] = row["winner"] or None
    return rows


def _settings(players: Sequence[Player], games: int, seed: int, kwargs: dict) -> dict[str, Any]:
    return {"games_per_pair": games, "seed": seed, "deterministic": True, "env": "battle", "env_kwargs": kwargs,
            "players": [asdict(p) for p in players]}


def _identity(settings: dict[str, Any]) -> dict[str, Any]:
    """What makes two leagues the same: the settings and the players, not where their files lie."""
    return {**settings, "players": [{k: v for k, v in p.items() if k != "source"} for p in settings["players"]]}


def _open(folder: Path, settings: dict[str, Any]) -> list[str]:
    """Create the league folder, or check that it holds this league or one this roster grows
    (module docstring; then ``league.json`` takes the new roster), and cut a partial last row
    left by a kill, whose game is then played again. Returns the names of the players that join."""
    path = folder / "league.json"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
        atomic_write_text(folder / "games.csv", ",".join(COLUMNS) + "\n")
        return []
    saved, new = _identity(json.loads(path.read_text())), _identity(settings)
    diff = sorted(k for k in new if k != "players" and saved.get(k) != new[k])
    if diff:
        raise ValueError(f"league: {folder} holds another league (its {', '.join(diff)} differ); "
                         f"expected the same settings, or another --out folder")
    now = {p["name"]: p for p in new["players"]}
    before = [p["name"] for p in saved["players"]]
    gone = [name for name in before if name not in now]
    changed = [p["name"] for p in saved["players"] if p["name"] in now and now[p["name"]] != p]
    if gone or changed or [name for name in now if name in before] != before:
        why = (f"players {gone} are not in this roster" if gone else
               f"players {changed} have other model files than the ones that played" if changed else
               "players come in another order")
        raise ValueError(f"league: {folder} holds another league (its {why}); expected a roster that keeps "
                         f"its players and their model files, or another --out folder")
    text = (folder / "games.csv").read_text()
    if not text.endswith("\n"):  # a batch cut off by a kill: drop its partial last line
        atomic_write_text(folder / "games.csv", text[:text.rfind("\n") + 1])
    joined = [name for name in now if name not in before]
    if joined:
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n", overwrite=True)
    return joined


def play_league(results_dir: Path | str, out: Path | str | None = None, games: int = DEFAULT_GAMES,
                seed: int = 0, copies: int = 8, methods: Sequence[str] | None = None,
                max_pairs: int | None = None, device: torch.device | str = "cpu", log=None) -> Path:
    """Play (or continue) the league of :func:`roster` into ``out``; returns the folder.

    ``copies`` games of a pair are played at once (:func:`~bmf_graph.training.rollout.play_episodes`);
    ``max_pairs`` stops after that many unfinished pairs (the rest on the next call).
    """
    log = log if log is not None else sys.stderr  # the stream at call time (a test may capture it)
    if games < 2:
        raise ValueError(f"league: games={games!r}; expected an integer >= 2 (each seed with both colours)")
    if copies < 1:
        raise ValueError(f"league: copies={copies!r}; expected an integer >= 1")
    players = roster(results_dir, methods)
    kwargs = env_kwargs(players)
    folder = Path(out) if out is not None else Path(results_dir) / "battle" / "league"
    joined = _open(folder, _settings(players, games, seed, kwargs))
    if joined:
        print(f"league: {', '.join(joined)} join the league in {folder}; its games so far are kept", file=log, flush=True)
    done = {(r["a"], r["b"], r["game"]) for r in read_games(folder)}
    plan = schedule(len(players), games, seed)
    envs = [make_env("battle", kwargs) for _ in range(copies)]
    try:
        sides = [team_policies(envs[0], [p.source, p.source], device, own=p.source) for p in players]
        pairs = _pairs(plan, games, players, done)
        for count, (i, j, todo) in enumerate(pairs):
            if max_pairs is not None and count >= max_pairs:
                break
            start = time.perf_counter()
            for rows in play_pair(envs, sides, players, i, j, todo, device):
                with (folder / "games.csv").open("a", newline="") as f:
                    csv.writer(f).writerows([[row[c] if row[c] is not None else "" for c in COLUMNS] for row in rows])
            print(f"league: {players[i].name} v {players[j].name}: {len(todo)} games in "
                  f"{time.perf_counter() - start:.1f} s (pair {count + 1} of the {len(pairs)} unfinished)",
                  file=log, flush=True)
    finally:
        for env in envs:
            env.close()
    return folder


def _pairs(plan: list[Game], games: int, players: Sequence[Player], done: set) -> list[tuple[int, int, list]]:
    """``(i, j, [(game index, Game)...])`` of every pair with games still to play."""
    out = []
    for k in range(0, len(plan), games):
        block = plan[k:k + games]
        i, j = block[0].red, block[0].blue
        todo = [(g, game) for g, game in enumerate(block) if (players[i].name, players[j].name, g) not in done]
        if todo:
            out.append((i, j, todo))
    return out


def play_pair(envs: list, sides: list, players: Sequence[Player], i: int, j: int, todo: list,
              device: torch.device | str = "cpu") -> Iterator[list[dict]]:
    """Play the games ``todo`` (``(index in pair, Game)``) of players ``i`` and ``j`` in the env
    copies ``envs``, those of one colour order together (the same policies on the same teams),
    ``len(envs)`` at a time; yields the rows of each batch. ``sides[k]`` holds player ``k``'s
    policy for each team (one instance per team: a policy never plays both teams of a game)."""
    for colour in (0, 1):
        same = [t for t in todo if t[0] % 2 == colour]
        for k in range(0, len(same), len(envs)):
            yield _play(envs, sides, players, i, j, same[k:k + len(envs)], device)


def _play(envs: list, sides: list, players: Sequence[Player], i: int, j: int, chunk: list, device) -> list[dict]:
    red, blue = chunk[0][1].red, chunk[0][1].blue
    seeds = [game.seed for _, game in chunk]
    seed_everything(seeds[0])
    with torch.no_grad():
        results = play_episodes(envs[:len(seeds)], [sides[red][0], sides[blue][1]], device, seeds)
    rows = []
    for (g, game), env, r in zip(chunk, envs, results):
        kills = (float(r.kills[0]), float(r.kills[1]))
        winner = None if kills[0] == kills[1] else players[red if kills[0] > kills[1] else blue].name
        rows.append({"a": players[i].name, "b": players[j].name, "game": g, "seed": game.seed,
                     "red": players[red].name, "blue": players[blue].name,
                     "left": players[(red, blue)[env.left_team]].name, "kills_red": kills[0],
                     "kills_blue": kills[1], "return_red": float(r.returns[0]), "return_blue": float(r.returns[1]),
                     "winner": winner})
    return rows


def summarize(folder: Path | str, draws: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Ratings and yardstick win rates of the games in ``folder`` (written to ``ratings.json``)."""
    folder = Path(folder)
    settings = json.loads((folder / "league.json").read_text())
    players = [Player(**p) for p in settings["players"]]
    names = [p.name for p in players]
    rows = read_games(folder)
    if not rows:
        raise ValueError(f"league: {folder / 'games.csv'} holds no games yet; play the league first")
    wins = win_matrix(names, [(r["a"], r["b"], r["winner"]) for r in rows])
    groups: dict[str, list[int]] = {}
    for k, p in enumerate(players):
        if p.seed is not None:
            groups.setdefault(p.method, []).append(k)
    anchor = names.index(RANDOM)
    model_points = elo(bradley_terry(wins), anchor)
    expected = len(players) * (len(players) - 1) // 2 * settings["games_per_pair"]
    summary = {"games": len(rows), "games_expected": expected, "complete": len(rows) == expected,
               "games_per_pair": settings["games_per_pair"], "anchor": RANDOM, "bootstrap_draws": draws,
               "models": {n: float(model_points[k]) for k, n in enumerate(names)},
               "yardsticks": {y: float(model_points[names.index(y)]) for y in YARDSTICKS},
               "methods": method_ratings(wins, groups, anchor, draws=draws, seed=seed),
               "against": _against(rows, players, groups, draws, seed)}
    atomic_write_text(folder / "ratings.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _against(rows: list[dict], players: Sequence[Player], groups: dict[str, list[int]], draws: int,
             seed: int) -> dict[str, dict[str, Any]]:
    """Per method and yardstick: each model's win rate (wins / games), their mean over seeds and a
    cluster-bootstrap 95 % interval (seeds resampled, their games kept together)."""
    out: dict[str, dict[str, Any]] = {}
    for method, members in groups.items():
        out[method] = {}
        for yardstick in YARDSTICKS:
            rates = []
            for k in members:
                name = players[k].name
                mine = [r for r in rows if {r["a"], r["b"]} == {name, yardstick}]
                if mine:
                    rates.append(sum(r["winner"] == name for r in mine) / len(mine))
            if rates:
                mean, low, high = cluster_bootstrap(rates, draws, seed)
                out[method][yardstick] = {"win_rate": mean, "low": low, "high": high, "per_seed": rates}
    return out


def table_lines(summary: dict[str, Any]) -> list[str]:
    """The league as a Markdown table, methods by rating."""
    head = (f"Battle league: {summary['games']} of {summary['games_expected']} games "
            f"({summary['games_per_pair']} per pair). Bradley–Terry ratings on the Elo scale, random team = 0; "
            f"95 % intervals from {summary['bootstrap_draws']} bootstrap draws over seeds (models resampled, "
            f"not games). Win rates against the yardsticks: mean over seeds, cluster-bootstrap 95 % interval "
            f"(games nested in seeds).")
    lines = [head, "", "| method | models | rating [95 % CI] | win rate v scripted | win rate v random |",
             "|---|---:|---|---|---|"]
    ranked = sorted(summary["methods"].items(), key=lambda kv: (math.isnan(kv[1]["rating"]), -kv[1]["rating"]))
    for method, r in ranked:
        rating = "— (no games yet)" if math.isnan(r["rating"]) else f"{r['rating']:.0f} [{r['low']:.0f}, {r['high']:.0f}]"
        cells = []
        for y in (SCRIPTED, RANDOM):
            a = summary["against"].get(method, {}).get(y)
            cells.append("—" if a is None else f"{a['win_rate']:.2f} [{a['low']:.2f}, {a['high']:.2f}]")
        lines.append(f"| {method} | {r['models']} | {rating} | {cells[0]} | {cells[1]} |")
    lines.append(f"| scripted team | — | {summary['yardsticks'][SCRIPTED]:.0f} | — | — |")
    return lines
