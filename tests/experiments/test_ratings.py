"""Bradley–Terry ratings and their bootstrap over seeds, on synthetic game records."""
import numpy as np
import pytest

from bmf_graph.experiments.ratings import ELO, bradley_terry, elo, method_ratings, resample_seeds, win_matrix
from bmf_graph.experiments.results_stats import cluster_bootstrap


def synthetic_wins(strengths, games, rng):
    """``games`` games per pair drawn from the Bradley–Terry model of ``strengths`` (log)."""
    n = len(strengths)
    wins = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            p = 1 / (1 + np.exp(strengths[j] - strengths[i]))
            won = rng.binomial(games, p)
            wins[i, j], wins[j, i] = won, games - won
    return wins


def test_ratings_recover_known_strengths():
    truth = np.array([-1.5, -0.5, 0.0, 0.3, 1.2, 2.0])
    fitted = bradley_terry(synthetic_wins(truth, 2000, np.random.default_rng(0)), prior=0.0)
    assert np.abs((fitted - fitted.mean()) - (truth - truth.mean())).max() < 0.08
    assert list(np.argsort(fitted)) == list(range(len(truth)))


def test_two_players_match_the_closed_form():
    # P(0 beats 1) = 30 / 40 -> log(p0 / p1) = log 3
    fitted = bradley_terry(np.array([[0, 30], [10, 0]]), prior=0.0)
    assert fitted[0] - fitted[1] == pytest.approx(np.log(3.0), abs=1e-8)
    assert elo(fitted, anchor=1)[0] == pytest.approx(ELO * np.log(3.0), abs=1e-6)
    assert elo(fitted, anchor=1)[1] == 0


def test_a_perfect_record_stays_finite_with_the_prior():
    fitted = bradley_terry(np.array([[0, 50], [0, 0]]))
    assert np.isfinite(fitted).all() and fitted[0] > fitted[1]
    # prior 0.5 each way: 50.5 : 0.5
    assert fitted[0] - fitted[1] == pytest.approx(np.log(101.0), abs=1e-6)


def test_weights_count_a_player_twice_like_a_copy():
    rng = np.random.default_rng(1)
    wins = synthetic_wins(np.array([0.0, 1.0, -0.5]), 40, rng)
    weighted = bradley_terry(wins, weights=np.array([1.0, 2.0, 1.0]))
    # the same league with player 1 duplicated as player 3 (no games between the two copies)
    dup = np.zeros((4, 4))
    dup[:3, :3] = wins
    dup[3, [0, 2]], dup[[0, 2], 3] = wins[1, [0, 2]], wins[[0, 2], 1]
    explicit = bradley_terry(dup)
    assert weighted[:3] - weighted[0] == pytest.approx(explicit[:3] - explicit[0], abs=1e-6)
    assert np.isnan(bradley_terry(wins, weights=np.array([1.0, 0.0, 1.0]))[1])


def test_bootstrap_resamples_seeds_not_games():
    rng = np.random.default_rng(0)
    draws = [resample_seeds({"a": [3, 4, 5], "b": [6]}, rng) for _ in range(200)]
    assert all(len(d["a"]) == 3 and set(d["a"]) <= {3, 4, 5} and list(d["b"]) == [6] for d in draws)
    assert any(len(set(d["a"])) < 3 for d in draws)  # with replacement


def test_method_interval_reflects_spread_over_seeds():
    """Method A's three models differ widely, method B's are alike: A's interval over seeds is
    wider, although every model played as many games."""
    rng = np.random.default_rng(2)
    truth = np.array([0.0, -1.0, 1.0, 3.0, 1.0, 1.1, 0.9])  # random, A x3, B x3
    wins = synthetic_wins(truth, 200, rng)
    out = method_ratings(wins, {"A": [1, 2, 3], "B": [4, 5, 6]}, anchor=0, draws=150)
    width = {m: out[m]["high"] - out[m]["low"] for m in out}
    assert width["A"] > 3 * width["B"]
    assert out["A"]["low"] <= out["A"]["rating"] <= out["A"]["high"]


def test_win_matrix_counts_ties_as_halves():
    wins = win_matrix(["x", "y"], [("x", "y", "x"), ("x", "y", None), ("y", "x", "y")])
    assert wins.tolist() == [[0.0, 1.5], [1.5, 0.0]]
    with pytest.raises(ValueError, match="neither player"):
        win_matrix(["x", "y"], [("x", "y", "z")])


def test_cluster_bootstrap_resamples_seeds():
    mean, low, high = cluster_bootstrap([0.2, 0.4, 0.9], draws=2000)
    assert mean == pytest.approx(0.5)
    assert 0.2 <= low < mean < high <= 0.9
    assert cluster_bootstrap([0.7, 0.7], draws=50) == (0.7, 0.7, 0.7)
    with pytest.raises(ValueError, match="cluster_bootstrap"):
        cluster_bootstrap([])
