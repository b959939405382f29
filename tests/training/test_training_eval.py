"""Evaluation of the frozen policy during training: schedule, seeds, eval.csv on resume and without."""
import pytest

from bmf_graph.config import load_config
from bmf_graph.config.checks import ConfigError
from bmf_graph.training.logging import read_metrics
from bmf_graph.training.trainer import episode_seed, train
from bmf_graph.training.evaluation import COLUMNS, SEED_MODULUS, eval_every, eval_points, eval_seed, read_eval
from tiny_runs import FAST, TINY, interrupted_run


def tiny(tmp_path, algo, *extra):
    return load_config(["conf=firefighter", f"algo={algo}", f"runs_dir={tmp_path}", *TINY["firefighter"], *FAST,
                        *extra])


def test_eval_points_and_default_every():
    assert eval_points(7, 3) == [3, 6, 7]
    assert eval_points(6, 3) == [3, 6]
    assert eval_points(1, 5) == [1]
    assert eval_points(2000, 200) == list(range(200, 2001, 200))
    cfg = load_config(["train.episodes=2000"])
    assert eval_every(cfg) == 200 and len(eval_points(2000, eval_every(cfg))) == 10
    assert eval_every(load_config(["train.episodes=7"])) == 1
    with pytest.raises(ConfigError, match="train.eval_every"):
        load_config(["train.eval_every=0"])
    with pytest.raises(ConfigError, match="train.eval_episodes"):
        load_config(["train.eval_episodes=0"])


@pytest.mark.parametrize("seed", [0, 1, 7, 2146, 2**20 + 3, 2**31 - 2])
def test_eval_seeds_never_meet_training_seeds(seed):
    episodes, evals = 50_000, 5_000
    training = {episode_seed(seed, e) for e in range(episodes)}
    evaluation = {eval_seed(seed, k) for k in range(evals)}
    assert len(evaluation) == evals and not training & evaluation
    assert all(0 <= s < SEED_MODULUS for s in evaluation)


@pytest.mark.parametrize("envs, trained", [(1, [3, 6, 7]), (3, [3, 6, 7]), (4, [4, 7, 7])])
def test_eval_csv_holds_one_row_per_point(tmp_path, envs, trained):
    run = train(tiny(tmp_path, "mfq", "train.episodes=7", "train.eval_every=3", "train.eval_episodes=2",
                     f"train.envs={envs}"))
    rows = read_eval(run)
    assert [r["episode"] for r in rows] == [3, 6, 7]
    assert [r["trained_episodes"] for r in rows] == trained
    assert all(r["episodes"] == 2 and "eval/return_greedy" in r and "eval/return_mode" not in r for r in rows)
    assert all(r["eval/return_greedy"] < 0 for r in rows)  # Firefighter returns are -sum(levels)
    assert (run / "eval.csv").read_text().splitlines()[0] == ",".join(COLUMNS)


def test_actor_critic_is_evaluated_in_mode_and_sampled(tmp_path):
    rows = read_eval(train(tiny(tmp_path, "mfac", "train.episodes=2", "train.eval_every=1", "train.eval_episodes=3")))
    assert len(rows) == 2
    assert all({"eval/return_mode", "eval/return_sampled", "eval/return_std_sampled"} <= set(r) for r in rows)
    assert all("eval/return_greedy" not in r for r in rows)


def test_evaluation_leaves_training_unchanged(tmp_path):
    """Training's random streams are restored after every evaluation: the metrics of a run that
    evaluates after every episode equal those of one that evaluates only at its end."""
    often = read_metrics(train(tiny(tmp_path / "a", "bmf_q", "train.episodes=4", "train.eval_every=1")))
    once = read_metrics(train(tiny(tmp_path / "b", "bmf_q", "train.episodes=4", "train.eval_every=4")))
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]  # noqa: E731
    assert strip(often) == strip(once)


@pytest.mark.parametrize("algo", ["q", "ac"])
def test_resumed_run_has_the_same_evaluations(tmp_path, monkeypatch, algo):
    args = ["train.episodes=6", "train.save_every=2", "train.eval_every=1", "train.eval_episodes=2"]
    full = read_eval(train(tiny(tmp_path / "a", algo, *args)))
    # stopped after episode 5: eval.csv holds rows 1..5 but the checkpoint is at 4, so row 5 goes
    run = interrupted_run(tmp_path / "b", monkeypatch, 5, tiny(tmp_path / "b", algo, *args))
    assert [r["episode"] for r in read_eval(run)] == [1, 2, 3, 4, 5]
    resumed = read_eval(train(load_config([f"resume={run}"])))
    assert [r["episode"] for r in resumed] == [r["episode"] for r in full] == [1, 2, 3, 4, 5, 6]
    assert resumed == full
