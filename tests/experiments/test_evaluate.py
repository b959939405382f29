"""Evaluation: win-rate bookkeeping, Wilson intervals, side swapping, returns and zero-shot
scaling on tiny checkpoints trained by the real entry point."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bmf_graph.experiments import evaluate
from bmf_graph.training import players
from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.cli import evaluation
from bmf_graph.config import load_config
from bmf_graph.envs import battle
from bmf_graph.envs.base import TeamSpec
from bmf_graph.envs.copies import WorkerCopies
from bmf_graph.training.rollout import EpisodeResult, team_view
from bmf_graph.training.trainer import train
from bmf_graph.experiments.winrate import GameResult, schedule, tally, wilson_interval
from tiny_runs import FAST, TINY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """Model files of tiny runs: ``ckpt[(conf, algo)]``."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for conf, algo in [("firefighter", "bmf_q"), ("battle", "bmf_q"), ("battle", "mfq"), ("pursuit", "bmf_ac")]:
        cfg = load_config([f"conf={conf}", f"algo={algo}", f"runs_dir={root}", f"run_name={conf}_{algo}",
                           "train.episodes=1", *TINY[conf], *FAST])
        out[(conf, algo)] = train(cfg) / "checkpoints" / "model_final.safetensors"
    return out


# ----------------------------------------------------------------------- bookkeeping
@pytest.mark.parametrize("wins, games, low, high", [
    (8, 10, 0.4901624, 0.9433178),   # textbook values of the Wilson score interval
    (5, 10, 0.2365931, 0.7634069),
    (0, 10, 0.0, 0.2775328),
    (10, 10, 0.7224672, 1.0),
    (0, 0, 0.0, 1.0),
])
def test_wilson_interval_known_values(wins, games, low, high):
    lo, hi = wilson_interval(wins, games)
    assert lo == pytest.approx(low, abs=1e-6) and hi == pytest.approx(high, abs=1e-6)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="successes=3, trials=2"):
        wilson_interval(3, 2)


def test_schedule_swaps_sides_every_game_and_pairs_seeds():
    games = schedule(3, 4, seed=7)
    assert len(games) == 3 * 4
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        pair = [g for g in games if {g.red, g.blue} == {i, j}]
        assert [g.red for g in pair] == [i, j, i, j]
        assert [g.seed for g in pair] == [7, 7, 8, 8]
    odd = schedule(2, 3)
    assert [(g.red, g.blue, g.seed) for g in odd] == [(0, 1, 0), (1, 0, 0), (0, 1, 1)]
    with pytest.raises(ValueError, match="games_per_pair=0"):
        schedule(2, 0)
    with pytest.raises(ValueError, match="num_players=1"):
        schedule(1, 2)


def test_tally_counts_wins_ties_and_losses_by_player_not_colour():
    results = [
        GameResult(red=0, blue=1, seed=0, kills_red=5, kills_blue=2),   # A beats B as red
        GameResult(red=1, blue=0, seed=0, kills_red=1, kills_blue=4),   # A beats B as blue
        GameResult(red=0, blue=1, seed=1, kills_red=3, kills_blue=3),   # tie
        GameResult(red=1, blue=0, seed=1, kills_red=6, kills_blue=0),   # B beats A as red
        GameResult(red=2, blue=0, seed=0, kills_red=0, kills_blue=1),   # A beats C
        GameResult(red=1, blue=2, seed=0, kills_red=0, kills_blue=0),   # tie
    ]
    table = tally(["A", "B", "C"], results)
    np.testing.assert_array_equal(table.wins, [[0, 2, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(table.ties, [[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(table.losses, [[0, 1, 0], [2, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(table.games, [[0, 4, 1], [4, 0, 1], [1, 1, 0]])
    rate = table.win_rate()
    assert rate[0, 1] == 0.5 and rate[1, 0] == 0.25 and rate[0, 2] == 1.0 and rate[1, 2] == 0.0
    assert np.isnan(np.diag(rate)).all()
    low, high = table.interval()
    assert (low[0, 1], high[0, 1]) == pytest.approx(wilson_interval(2, 4))
    d = json.loads(json.dumps(table.to_dict()))
    assert d["win_rate"][0][0] is None and d["win_rate"][0][1] == 0.5
    overall = {row["player"]: row for row in d["overall"]}
    assert (overall["A"]["wins"], overall["A"]["ties"], overall["A"]["losses"], overall["A"]["games"]) == (3, 1, 1, 5)
    assert (overall["C"]["wins"], overall["C"]["ties"], overall["C"]["losses"]) == (0, 1, 1)
    assert "2-1-1 0.50" in table.format()
    with pytest.raises(ValueError, match="red=1, blue=1"):
        tally(["A", "B"], [GameResult(1, 1, 0, 1, 0)])


class Fixed:
    """A policy stand-in with a fixed number of kills per game (read by the fake ``play``)."""

    def __init__(self, kills):
        self.kills = kills

    def begin_episode(self):
        pass

    def observe(self, view):
        return {}

    def act(self, view, rec, explore):
        return torch.zeros(view.alive.shape, dtype=torch.long)

    def __repr__(self):
        return f"Fixed({self.kills})"


def fake_play(side_bonus=0):
    played = []

    def play(env, policies, seed, deterministic=True, device="cpu"):
        played.append((policies[0], policies[1], seed))
        kills = np.array([policies[0].kills + side_bonus, policies[1].kills], dtype=float)
        return EpisodeResult(returns=kills * 5, kills=kills, alive=np.zeros(2), steps=1, terminated=True)

    return play, played


def test_head_to_head_credits_players_whatever_their_colour(monkeypatch):
    strong, weak, weak2 = Fixed(3), Fixed(1), Fixed(1)
    play, played = fake_play()
    monkeypatch.setattr(evaluate, "play", play)
    result = evaluate.head_to_head([strong, weak, weak2], games=4, env_kwargs={"map_size": 20, "agents_per_team": 2},
                                   names=["strong", "weak", "weak2"])
    table = result["table"]
    assert table["wins"] == [[0, 4, 4], [0, 0, 0], [0, 0, 0]]
    assert table["ties"] == [[0, 0, 0], [0, 0, 4], [0, 4, 0]]
    assert table["win_rate"][0][1] == 1.0 and table["win_rate"][1][0] == 0.0
    assert table["ci95_low"][0][1] == pytest.approx(wilson_interval(4, 4)[0])
    # Colours really alternate: each player is red in half of its games against each opponent.
    for a, b in [(strong, weak), (strong, weak2), (weak, weak2)]:
        reds = [red is a for red, blue, _ in played if {red, blue} == {a, b}]
        assert reds == [True, False, True, False]
    assert [g["red"] for g in result["games"][:4]] == ["strong", "weak", "strong", "weak"]


def test_red_side_advantage_cancels_out_with_side_swapping(monkeypatch):
    play, _ = fake_play(side_bonus=10)   # red always wins
    monkeypatch.setattr(evaluate, "play", play)
    result = evaluate.head_to_head([Fixed(1), Fixed(1)], games=6, env_kwargs={"map_size": 20, "agents_per_team": 2})
    assert result["table"]["win_rate"][0][1] == result["table"]["win_rate"][1][0] == 0.5


def test_head_to_head_plays_real_checkpoints_and_random(ckpt):
    a, b = ckpt[("battle", "bmf_q")], ckpt[("battle", "mfq")]
    result = evaluate.head_to_head([a, b], games=2, include_random=True, env_kwargs={"max_steps": 4})
    assert result["table"]["players"] == ["battle_bmf_q", "battle_mfq", "random"]
    assert result["env_kwargs"] == {"preset": "bmf", "map_size": 20, "agents_per_team": 8, "max_steps": 4}
    assert len(result["games"]) == 3 * 2
    assert np.array_equal(np.array(result["table"]["games"]), 2 * (1 - np.eye(3)))
    assert [(g["red"], g["blue"]) for g in result["games"][:2]] == [("battle_bmf_q", "battle_mfq"),
                                                                   ("battle_mfq", "battle_bmf_q")]
    for g in result["games"]:
        assert math.isfinite(g["return_red"]) and math.isfinite(g["return_blue"]) and g["return_red"] != 0
    json.dumps(result)


def test_players_are_named_after_their_run_folders(tmp_path):
    runs = [tmp_path / "battle" / "bmf_q" / "seed10", tmp_path / "battle" / "mfq" / "seed10", tmp_path / "battle_q"]
    for run in runs:
        (run / "checkpoints").mkdir(parents=True)
    files = [run / "checkpoints" / "model_final.safetensors" for run in runs[:2]]
    others = [runs[2], runs[0] / "checkpoints" / "model_ep000032.safetensors", tmp_path / "mine.pt", runs[2], "random"]
    assert evaluate._names(files + others) == ["bmf_q/seed10", "mfq/seed10", "battle_q", "bmf_q/seed10/model_ep000032",
                                               "mine", "battle_q#5", "random"]


def test_head_to_head_sides_come_from_each_games_seed(ckpt):
    """The env draws the team on the left from the seed: a seed's two games put each player on
    each side, and over seeds a player is not simply on one side in its even games."""
    a, b = ckpt[("battle", "bmf_q")], ckpt[("battle", "mfq")]
    result = evaluate.head_to_head([a, b], games=12, env_kwargs={"max_steps": 1}, seed=3)
    env = battle.batched_env(map_size=20, agents_per_team=8)
    for g in result["games"]:
        env.reset(seed=g["seed"])
        assert g["left"] == (g["red"], g["blue"])[env.left_team]
    lefts = [g["left"] for g in result["games"]]
    assert all(x != y for x, y in zip(lefts[::2], lefts[1::2]))   # each seed once from each side
    assert len({x for x in lefts[::2]}) == 2                      # sides vary across seeds


# ----------------------------------------------------------------------- returns
def test_evaluate_returns_firefighter_is_seeded_and_uses_the_run_env(ckpt):
    path = ckpt[("firefighter", "bmf_q")]
    r = evaluate.evaluate_returns(path, episodes=3, seed=5)
    assert r["env"] == "firefighter" and r["env_kwargs"] == {"num_firefighters": 12, "max_steps": 12}
    assert len(r["returns"]) == 3 and all(v < 0 for v in r["returns"])
    assert r["return"]["mean"] == pytest.approx(np.mean(r["returns"]))
    assert r["return"]["std"] == pytest.approx(np.std(r["returns"]))
    assert r["return_per_agent"]["mean"] == pytest.approx(r["return"]["mean"] / 12)
    assert evaluate.evaluate_returns(path, episodes=3, seed=5)["returns"] == r["returns"]
    sampled = evaluate.evaluate_returns(path, episodes=3, seed=5, deterministic=False)
    assert evaluate.evaluate_returns(path, episodes=3, seed=5, deterministic=False)["returns"] == sampled["returns"]
    bigger = evaluate.evaluate_returns(path, "firefighter", {"num_firefighters": 20}, episodes=1)
    assert bigger["env_kwargs"] == {"num_firefighters": 20, "max_steps": 12}


def test_evaluate_returns_in_copies_equals_one_by_one(ckpt, monkeypatch):
    """Greedy MFQ on Battle against itself: episodes played 3 copies at a time (last chunk of 2)
    are the episodes played one by one; a worker holds no more copies than there are episodes
    (at least the 2 halves)."""
    path = ckpt[("battle", "mfq")]
    one = evaluate.evaluate_returns(path, episodes=5, seed=2, opponent="self")
    copies = evaluate.evaluate_returns(path, episodes=5, seed=2, opponent="self", copies=3)
    assert copies["returns"] == pytest.approx(one["returns"]) and copies["steps"] == one["steps"]
    worker = evaluate.evaluate_returns(path, episodes=5, seed=2, opponent="self", copies=3, worker=True)
    assert worker["returns"] == pytest.approx(one["returns"]) and worker["steps"] == one["steps"]
    sizes = []
    monkeypatch.setattr(evaluate, "WorkerCopies",
                        lambda *args: sizes.append(args[2]) or WorkerCopies(*args))
    few = evaluate.evaluate_returns(path, episodes=1, seed=2, opponent="self", copies=8, worker=True)
    assert sizes == [2]
    assert few["returns"] == pytest.approx(one["returns"][:1]) and few["steps"] == one["steps"][:1]
    with pytest.raises(ValueError, match="copies=1; expected an integer >= 2 with a worker"):
        evaluate.evaluate_returns(path, episodes=2, copies=1, worker=True)
    with pytest.raises(ValueError, match="copies=0; expected an integer >= 1"):
        evaluate.evaluate_returns(path, episodes=2, copies=0)


def test_evaluate_returns_pursuit_against_random_prey(ckpt):
    r = evaluate.evaluate_returns(ckpt[("pursuit", "bmf_ac")], episodes=2)
    assert r["team"] == "predator" and r["opponent"] == "random"
    assert r["steps"] == [10, 10]


def test_evaluate_returns_errors_name_the_problem(ckpt):
    with pytest.raises(ValueError, match="obs_dim=.*team 'firefighter' needs obs_dim=2"):
        evaluate.evaluate_returns(ckpt[("battle", "bmf_q")], "firefighter", {"num_firefighters": 12}, episodes=1)
    with pytest.raises(ValueError, match="episodes=0"):
        evaluate.evaluate_returns(ckpt[("firefighter", "bmf_q")], episodes=0)
    with pytest.raises(ValueError, match="not inside a run folder with a config.yaml, so its task is unknown; "
                                         "name it .*one of firefighter, battle, pursuit"):
        evaluate.evaluate_returns(RandomPolicy(TeamSpec("firefighter", 12, (), 4, 2)), episodes=1)


def test_a_run_folder_stands_for_its_final_model_and_missing_models_are_named(ckpt, tmp_path, capsys):
    run = ckpt[("firefighter", "bmf_q")].parent.parent
    by_file = evaluate.evaluate_returns(ckpt[("firefighter", "bmf_q")], episodes=2)
    by_run = evaluate.evaluate_returns(run, episodes=2)
    assert by_run["returns"] == by_file["returns"] and by_run["env_kwargs"] == by_file["env_kwargs"]
    for args, message in [(["returns", str(tmp_path / "none.pt")], "model '.*none.pt' does not exist; expected a "
                                                                    "model file \\(.safetensors or .pt\\) or a run folder"),
                          (["returns", str(tmp_path)], "is a folder without checkpoints/model_final.safetensors"),
                          (["zero-shot", str(tmp_path / "x.pt")], "x.pt' does not exist")]:
        with pytest.raises(SystemExit) as exit_info:
            evaluation.main(args)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and re.search(message, err) and "env_name" not in err


def test_evaluation_uses_the_runs_threads_unless_told(ckpt, monkeypatch, tmp_path):
    """Tiny runs set threads=1; --threads wins; 0 (and a model outside a run) leaves torch alone."""
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    evaluation.main(["returns", str(ckpt[("firefighter", "bmf_q")]), "--episodes", "1"])
    evaluation.main(["returns", str(ckpt[("firefighter", "bmf_q")]), "--episodes", "1", "--threads", "3"])
    evaluation.main(["returns", str(ckpt[("firefighter", "bmf_q")]), "--episodes", "1", "--threads", "0"])
    assert calls == [1, 3]
    loose = tmp_path / "loose.safetensors"
    loose.write_bytes(ckpt[("firefighter", "bmf_q")].read_bytes())
    loose.with_suffix(".json").write_bytes(ckpt[("firefighter", "bmf_q")].with_suffix(".json").read_bytes())
    evaluation.main(["returns", str(loose), "--env", "firefighter", "--env-kwargs", "num_firefighters=12",
                   "max_steps=3", "--episodes", "1"])
    assert calls == [1, 3] and players.run_threads(loose) == 0


# ----------------------------------------------------------------------- zero-shot
def test_battle_map_size_matches_the_paper_sizes():
    assert [evaluate.battle_map_size(n) for n in (128, 288, 512, 2048)] == [40, 60, 80, 160]
    with pytest.raises(ValueError, match="total_agents=129"):
        evaluate.battle_map_size(129)
    with pytest.raises(ValueError, match="holds 17; expected even totals"):
        evaluate.zero_shot("unused.pt", sizes=(16, 17))


def test_zero_shot_loads_the_model_into_larger_battles(ckpt, monkeypatch):
    loaded = []
    original = players.load_model

    def spy(path, device="cpu", num_agents=None):
        model = original(path, device, num_agents)
        loaded.append(num_agents)
        return model

    monkeypatch.setattr(players, "load_model", spy)
    r = evaluate.zero_shot(ckpt[("battle", "bmf_q")], sizes=(16, 40), games=6, opponent="self",
                           env_kwargs={"max_steps": 3})
    assert r["trained_agents"] == 16 and r["team"] == "red"
    assert [(s["agents"], s["map_size"], s["agents_per_team"]) for s in r["sizes"]] == [(16, 20, 8), (40, 25, 20)]
    assert 20 in loaded and 8 in loaded
    for row in r["sizes"]:
        assert len(row["returns"]) == 6 and all(math.isfinite(v) and v != 0 for v in row["returns"])
        assert row["wins"] + row["ties"] + row["losses"] == 6
        assert row["ci95"] == list(wilson_interval(row["wins"], 6))
        assert 0 < row["games_on_left"] < 6  # the model plays red; the env draws its side per seed


# ----------------------------------------------------------------------- CLI
def test_cli_writes_json_and_refuses_to_overwrite(ckpt, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["returns", str(ckpt[("firefighter", "bmf_q")]), "--episodes", "2", "--out", str(out)]
    evaluation.main(args)
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed and len(printed["returns"]) == 2
    out.write_text("keep")
    with pytest.raises(SystemExit) as exit_info:
        evaluation.main(args)
    assert exit_info.value.code == 2 and "pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep"
    evaluation.main(args + ["--overwrite", "--sampled"])
    assert json.loads(out.read_text())["deterministic"] is False


def test_cli_head_to_head_as_a_module(ckpt):
    a = str(ckpt[("battle", "bmf_q")])
    proc = subprocess.run([sys.executable, "-m", "bmf_graph.cli.evaluation", "head-to-head", a, "--random", "--games", "2",
                           "--env-kwargs", "max_steps=2", "--threads", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["table"]["games"] == [[0, 2], [2, 0]]
    assert "[1] random" in proc.stderr


# ----------------------------------------------------------------------- side bias
def test_side_bias_plays_the_model_on_each_side(ckpt, monkeypatch):
    placed = []
    original = evaluate.play_copies

    def spy(env, *args, **kwargs):
        results = original(env, *args, **kwargs)
        placed.append(env.left_team)
        return results

    monkeypatch.setattr(evaluate, "play_copies", spy)
    r = evaluate.side_bias(ckpt[("battle", "mfq")], games=3, env_kwargs={"max_steps": 5})
    assert placed == [0, 1] and r["team"] == "red"   # the model's team: left, then right
    assert r["env_kwargs"] == {"preset": "bmf", "map_size": 20, "agents_per_team": 8, "max_steps": 5,
                               "random_sides": False}
    for side in ("left", "right"):
        assert len(r[side]["kills_per_game"]) == 3 and r[side]["wins"] + r[side]["ties"] + r[side]["losses"] == 3
    assert (r["kills_left"], r["kills_right"]) == (r["left"]["kills"]["mean"], r["right"]["kills"]["mean"])
    high, low = max(r["kills_left"], r["kills_right"]), min(r["kills_left"], r["kills_right"])
    assert r["relative_gap"] == pytest.approx((high - low) / high if high else 0.0)
    blue = evaluate.side_bias(ckpt[("battle", "mfq")], games=1, env_kwargs={"max_steps": 2}, team=1)
    assert blue["team"] == "blue" and placed[-2:] == [1, 0]
    with pytest.raises(ValueError, match="team=2; expected 0 \\(red\\) or 1 \\(blue\\)"):
        evaluate.side_bias(ckpt[("battle", "mfq")], team=2)


def test_models_from_before_the_minimap_play_with_the_old_env_arguments(tmp_path):
    old = load_config(["conf=battle", "algo=q", f"runs_dir={tmp_path}", "run_name=old", "train.episodes=1",
                       *TINY["battle"], *FAST, "env.kwargs.minimap_mode=false", "env.kwargs.random_sides=false"])
    path = train(old) / "checkpoints" / "model_final.safetensors"
    (path.parent.parent / "config.yaml").write_text(
        (path.parent.parent / "config.yaml").read_text().replace("    minimap_mode: false\n", "")
        .replace("    random_sides: false\n", ""))  # a run from before: the env's defaults then
    with pytest.raises(ValueError, match="needs obs_dim=1217.*minimap_mode=false random_sides=false"):
        evaluate.evaluate_returns(path, episodes=1)
    r = evaluation.main(["sides", str(path), "--games", "1", "--env-kwargs", "minimap_mode=false", "max_steps=2"])
    assert r["env_kwargs"]["minimap_mode"] is False and len(r["left"]["kills_per_game"]) == 1


def test_cli_sides_writes_json(ckpt, tmp_path, capsys):
    out = tmp_path / "sides.json"
    evaluation.main(["sides", str(ckpt[("battle", "bmf_q")]), "--games", "2", "--env-kwargs", "max_steps=3",
                   "--copies", "2", "--out", str(out)])
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed and printed["games_per_side"] == 2
    assert set(printed) >= {"left", "right", "kills_left", "kills_right", "relative_gap"}


def test_returns_state_their_mode_and_temperature(ckpt):
    model = ckpt[("firefighter", "bmf_q")]
    greedy = evaluate.evaluate_returns(model, episodes=2)
    sampled = evaluate.evaluate_returns(model, episodes=2, deterministic=False)
    warm = evaluate.evaluate_returns(model, episodes=2, temperature=0.5)
    assert (greedy["mode"], greedy["temperature"]) == ("greedy", None)
    assert (sampled["mode"], sampled["temperature"]) == ("sampled", None)
    assert (warm["mode"], warm["temperature"], warm["deterministic"]) == ("temperature", 0.5, False)
    env = evaluate.make_env("firefighter", players.checkpoint_config(model).env.kwargs)
    policy = players.load_policy(model, env.teams[0])
    cold = players.AtTemperature(policy, 1e-6)
    view = team_view(env.reset(seed=0)[0], torch.zeros(env.teams[0].num_agents, 2), None, torch.device("cpu"))
    rec = cold.observe(view)
    q = cold.scores(view, rec)
    assert torch.equal(cold.policy(view, rec, None).argmax(1), q.argmax(1))
    assert torch.allclose(players.AtTemperature(policy, 1e6).policy(view, rec, None), torch.full_like(q, 0.5), atol=1e-4)
    with pytest.raises(ValueError, match="temperature=0"):
        players.AtTemperature(policy, 0)
