"""The Battle league on tiny models trained by the real entry point: round robin with colours and
sides swapped, resumable, refusing to mix leagues, and its ratings file."""
import json
import shutil

import pytest

from bmf_graph.cli import evaluation
from bmf_graph.config import load_config
from bmf_graph.experiments.league import COLUMNS, play_league, read_games, roster, summarize, table_lines
from bmf_graph.training.model_files import final_model
from bmf_graph.training.trainer import train
from tiny_runs import FAST, TINY


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """``results/battle/{mfq,q}/seed{1,2}`` of one-episode runs."""
    root = tmp_path_factory.mktemp("results")
    for algo, seeds in (("mfq", (1, 2)), ("q", (1,))):
        for seed in seeds:
            train(load_config(["conf=battle", f"algo={algo}", f"seed={seed}", f"runs_dir={root / 'battle'}",
                               f"run_name={algo}/seed{seed}", "train.episodes=1", *TINY["battle"], *FAST]))
    return root


def test_roster_takes_yardsticks_then_methods_in_algorithm_order(results):
    names = [p.name for p in roster(results)]
    assert names == ["random", "scripted", "q/seed1", "mfq/seed1", "mfq/seed2"]
    with pytest.raises(FileNotFoundError, match="'ac' has no"):
        roster(results, ["ac"])


def test_league_swaps_colours_and_sides_and_resumes(results, tmp_path):
    folder = tmp_path / "league"
    play_league(results, folder, games=4, max_pairs=3, copies=3)
    assert len(read_games(folder)) == 3 * 4
    with (folder / "games.csv").open("a") as f:
        f.write("random,q/seed1,3,1,q/seed1,ran")  # a row cut off by a kill
    play_league(results, folder, games=4, copies=3)
    rows = read_games(folder)
    assert len(rows) == 10 * 4 and len({(r["a"], r["b"], r["game"]) for r in rows}) == 40
    play_league(results, folder, games=4, copies=3)  # nothing left to play
    assert len(read_games(folder)) == 40
    assert (folder / "games.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    for a, b in {(r["a"], r["b"]) for r in rows}:
        pair = [r for r in rows if (r["a"], r["b"]) == (a, b)]
        for seed in {r["seed"] for r in pair}:
            same = [r for r in pair if r["seed"] == seed]
            assert len(same) == 2
            assert {same[0]["red"], same[1]["red"]} == {a, b}  # colours swapped
            assert {same[0]["left"], same[1]["left"]} == {a, b}  # and sides
        for r in pair:
            kills = (r["kills_red"], r["kills_blue"])
            assert r["winner"] == (None if kills[0] == kills[1] else r["red"] if kills[0] > kills[1] else r["blue"])


def test_another_league_is_refused_not_mixed(results, tmp_path):
    folder = tmp_path / "league"
    play_league(results, folder, games=2, max_pairs=1)
    before = (folder / "games.csv").read_text()
    with pytest.raises(ValueError, match="another league .*games_per_pair"):
        play_league(results, folder, games=4)
    with pytest.raises(ValueError, match="another league .*players"):
        play_league(results, folder, games=2, methods=["mfq"])
    assert (folder / "games.csv").read_text() == before


def test_the_league_grows_with_new_models_and_keeps_its_games(results, tmp_path, capsys):
    """Models that arrive later join: the games played stay as they were, the new pairs are played."""
    folder = tmp_path / "league"
    play_league(results, folder, games=2, methods=["mfq"])  # random, scripted, mfq/seed1, mfq/seed2
    before = (folder / "games.csv").read_text()
    assert len(read_games(folder)) == 6 * 2
    play_league(results, folder, games=2)  # q/seed1 joins: 4 more pairs
    assert (folder / "games.csv").read_text().startswith(before)
    rows = read_games(folder)
    assert len(rows) == 10 * 2 and len({(r["a"], r["b"], r["game"]) for r in rows}) == 20
    assert sum("q/seed1" in (r["a"], r["b"]) for r in rows) == 4 * 2
    assert [p["name"] for p in json.loads((folder / "league.json").read_text())["players"]] == \
        [p.name for p in roster(results)]
    assert "league: q/seed1 join the league in" in capsys.readouterr().err


def test_a_player_whose_model_file_changed_is_refused(results, tmp_path):
    """A model retrained under the same name would mix games of two models: refused, nothing written."""
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    folder = tmp_path / "league"
    play_league(copy, folder, games=2, max_pairs=1)
    before = [(folder / name).read_text() for name in ("games.csv", "league.json")]
    shutil.copy(final_model(copy / "battle" / "mfq" / "seed1"), final_model(copy / "battle" / "mfq" / "seed2"))
    with pytest.raises(ValueError, match=r"another league \(its players \['mfq/seed2'\] have other model files"):
        play_league(copy, folder, games=2)
    assert [(folder / name).read_text() for name in ("games.csv", "league.json")] == before


def test_summary_rates_methods_and_yardsticks(results, tmp_path, capsys):
    folder = tmp_path / "league"
    out = evaluation.main(["league", str(results), "--out", str(folder), "--games", "2", "--draws", "20"])
    assert out["complete"] and out["games"] == 10 * 2
    assert set(out["methods"]) == {"q", "mfq"} and out["models"]["random"] == 0
    assert out["methods"]["mfq"]["models"] == 2
    assert out["methods"]["mfq"]["low"] <= out["methods"]["mfq"]["rating"] <= out["methods"]["mfq"]["high"]
    assert set(out["against"]["mfq"]) == {"random", "scripted"}
    assert len(out["against"]["mfq"]["scripted"]["per_seed"]) == 2
    assert json.loads((folder / "ratings.json").read_text()) == out
    assert "| mfq | 2 |" in "\n".join(table_lines(out))
    assert "Battle league" in capsys.readouterr().err
    assert summarize(folder, draws=5)["games"] == 20


def test_pursuit_is_scored_against_fixed_pools(tmp_path):
    from bmf_graph.experiments.pursuit_pool import pursuit_pool

    root = tmp_path / "results"
    for algo in ("mfq", "q"):
        train(load_config(["conf=pursuit", f"algo={algo}", "seed=1", f"runs_dir={root / 'pursuit'}",
                           f"run_name={algo}/seed1", "train.episodes=1", *TINY["pursuit"], *FAST]))
    out = evaluation.main(["pursuit-pool", str(root), "--episodes", "1", "--threads", "1"])
    assert out["prey_pool"] == ["random", "q/seed1", "mfq/seed1"] == out["predator_pool"]
    mfq = out["predators"]["mfq/seed1"]
    assert set(mfq["against"]) == {"random", "q/seed1", "mfq/seed1"}
    assert mfq["score"] == pytest.approx(sum(mfq["against"].values()) / 3)
    assert set(out["methods"]["predator"]) == set(out["methods"]["prey"]) == {"q", "mfq"}
    assert out["methods"]["prey"]["q"]["seeds"] == 1
    # the same predator against the same prey scores the same whichever method's pool it sits in
    assert out["predators"]["q/seed1"]["against"]["random"] == pytest.approx(
        pursuit_pool(root, 1, methods=["q"])["predators"]["q/seed1"]["against"]["random"])
