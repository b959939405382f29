"""Self-play and exploration as MFRL: the opponent's own initialisation, its update after a won
episode, every team exploring with the learner, and the epsilon schedule over a real run."""
import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.config import load_config
from bmf_graph.training.logging import read_metrics
from bmf_graph.training.rollout import play_episode
from bmf_graph.training.trainer import Trainer, opponent_seed, train
from tiny_runs import FAST, TINY


def battle_trainer(tmp_path, *extra) -> Trainer:
    cfg = load_config(["conf=battle", f"runs_dir={tmp_path}", *TINY["battle"], *FAST, "algo.hidden=4", *extra])
    return Trainer(cfg)


def params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_opponent_starts_from_its_own_weights(tmp_path):
    trainer = battle_trainer(tmp_path / "a", "run_name=a")
    learner, opponent = trainer.learners[0], trainer.policies[1]
    assert type(opponent) is type(learner) and opponent is not learner
    assert opponent.spec.name == "blue" and not opponent.training
    assert not any(p.requires_grad for p in opponent.parameters())
    mine, theirs = params(learner), params(opponent)
    assert len(mine) == len(theirs)
    assert all(not torch.equal(a, b) for a, b in zip(mine, theirs) if a.numel() > 1)
    # Its initialisation comes from a seed of its own ...
    with torch.random.fork_rng():
        torch.manual_seed(opponent_seed(0, 1))
        fresh = make_algorithm(opponent.spec, trainer.cfg.algo, trainer.cfg.env.radius)
    assert all(torch.equal(a, b) for a, b in zip(params(fresh), theirs))
    # ... so the learner is the one a run without self-play builds, and runs repeat exactly.
    alone = battle_trainer(tmp_path / "b", "run_name=b", "opponent.policy=random").learners[0]
    assert all(torch.equal(a, b) for a, b in zip(params(alone), mine))
    again = battle_trainer(tmp_path / "c", "run_name=c")
    assert all(torch.equal(a, b) for a, b in zip(params(again.policies[1]), theirs))
    other_seed = battle_trainer(tmp_path / "d", "run_name=d", "seed=1")
    assert not torch.equal(params(other_seed.policies[1])[0], theirs[0])


@pytest.mark.parametrize("tau", [0.01, 0.25])
def test_self_play_update_is_the_formula(tmp_path, tau):
    """After a won episode: opponent <- (1 - tau) * learner + tau * opponent; else unchanged."""
    trainer = battle_trainer(tmp_path, f"opponent.tau={tau}")
    learner, opponent = trainer.learners[0], trainer.policies[1]
    before_l, before_o = params(learner), params(opponent)

    trainer._self_play_update({"charts/return_red": 3.0, "charts/return_blue": 3.0})  # a tie is no win
    assert all(torch.equal(a, b) for a, b in zip(params(opponent), before_o))
    trainer._self_play_update({"charts/return_red": -1.0, "charts/return_blue": 2.0})
    assert all(torch.equal(a, b) for a, b in zip(params(opponent), before_o))

    trainer._self_play_update({"charts/return_red": 2.5, "charts/return_blue": 2.0})
    for got, l, o in zip(params(opponent), before_l, before_o):
        assert torch.allclose(got, (1 - tau) * l + tau * o, atol=1e-7)
    assert all(torch.equal(a, b) for a, b in zip(params(learner), before_l))  # the learner is untouched


def test_every_team_acts_with_the_learners_exploration(tmp_path):
    trainer = battle_trainer(tmp_path)
    seen = []

    class Spy:
        def __init__(self, policy):
            self.policy = policy

        def begin_episode(self):
            self.policy.begin_episode()

        def observe(self, view):
            return self.policy.observe(view)

        def act(self, view, rec, explore):
            seen.append(explore)
            return self.policy.act(view, rec, explore)

    learner = trainer.learners[0]
    play_episode(trainer.env, [learner, Spy(trainer.policies[1])], "cpu", seed=0, max_steps=3,
                 explore=0.3, learners=trainer.learners)
    assert seen == [0.3, 0.3, 0.3]
    seen.clear()
    with torch.no_grad():
        play_episode(trainer.env, [learner, Spy(trainer.policies[1])], "cpu", seed=0, max_steps=2)
    assert seen == [None, None]


@pytest.mark.parametrize("exploration, column, values", [
    ("epsilon", "charts/epsilon", [1.0, 0.8, 0.6, 0.4, 0.2, 0.1]),   # 0 %, ..., 80 %, 100 % of training
    ("boltzmann", "charts/temperature", [1.0, 0.7, 0.4, 0.1, 0.1, 0.1]),
])
def test_metrics_log_the_exploration_schedule(tmp_path, exploration, column, values):
    cfg = load_config(["conf=firefighter", "algo=q", f"runs_dir={tmp_path}", *TINY["firefighter"], *FAST,
                       "train.episodes=6", f"algo.exploration={exploration}", "algo.explore_fraction=0.6",
                       "algo.temperature_start=1.0", "algo.temperature_end=0.1"])  # conf/firefighter.yaml sets its own
    rows = read_metrics(train(cfg))
    assert [r[column] for r in rows] == pytest.approx(values)
    other = {"charts/epsilon", "charts/temperature"} - {column}
    assert not any(other & set(r) for r in rows)
    assert all(r["charts/entropy"] == r["charts/entropy_firefighter"] for r in rows)  # the learning team's
