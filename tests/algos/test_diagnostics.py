"""Context shuffle and the training diagnostics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bmf_graph.algos import make_algorithm
from bmf_graph.algos.diagnostics import DeadNetwork, Diagnostics, context_effect, shuffle_context
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import firefighter
from bmf_graph.training.rollout import play_episode


def test_shuffle_permutes_within_each_entry_and_keeps_dead_rows():
    torch.manual_seed(0)
    context = torch.arange(24, dtype=torch.float32).view(12, 2)
    alive = torch.tensor([True] * 5 + [False] + [True] * 6)
    batch = torch.tensor([0] * 6 + [1] * 6)
    out = shuffle_context(context, alive, batch)
    for entry in (0, 1):
        rows = (batch == entry) & alive
        # the same rows, in another order: a permutation within the entry's alive agents
        assert sorted(out[rows, 0].tolist()) == sorted(context[rows, 0].tolist())
    torch.testing.assert_close(out[~alive], context[~alive])
    changed = [shuffle_context(context, alive, batch) for _ in range(20)]
    assert any(not torch.equal(c, context) for c in changed)


def test_shuffle_parts_and_zero():
    context = torch.arange(16, dtype=torch.float32).view(4, 4)
    alive = torch.ones(4, dtype=torch.bool)
    torch.manual_seed(1)
    inter = shuffle_context(context, alive, part="inter")
    torch.testing.assert_close(inter[:, :2], context[:, :2])          # intra half untouched
    zero = shuffle_context(context, alive, mode="zero", part="intra")
    assert zero[:, :2].abs().sum() == 0 and torch.equal(zero[:, 2:], context[:, 2:])
    with pytest.raises(ValueError, match="mode='swap' is not valid"):
        shuffle_context(context, alive, mode="swap")
    with pytest.raises(ValueError, match="needs BMF's two-part context"):
        shuffle_context(context[:, :3], alive, part="intra")


class Ignores(nn.Module):
    """Reads the observation only."""

    def forward(self, obs, context):
        return obs[..., :3] * 2.0


class Follows(nn.Module):
    """Its greedy action is the context's largest column."""

    def forward(self, obs, context):
        return context


def test_effect_is_zero_for_a_network_that_ignores_its_context():
    torch.manual_seed(0)
    obs, context = torch.rand(30, 5), torch.rand(30, 3)
    alive = torch.ones(30, dtype=torch.bool)
    for mode in ("permute", "zero"):
        assert context_effect(Ignores(), obs, context, alive, mode=mode) == {"changed": 0.0, "dq": 0.0}


def test_effect_of_a_network_that_follows_its_context():
    torch.manual_seed(0)
    context = torch.eye(3).repeat(10, 1)                              # 30 agents, actions 0, 1, 2 in turn
    alive = torch.ones(30, dtype=torch.bool)
    effect = context_effect(Follows(), torch.rand(30, 5), context, alive)
    assert 0.4 < effect["changed"] < 0.9                               # ~2/3 of a random permutation moves
    # every row of the zero context ties: the greedy action is the first of the tie, 0
    assert context_effect(Follows(), torch.rand(30, 5), context, alive, mode="zero")["changed"] == pytest.approx(2 / 3)


def test_training_logs_diagnostics_and_stops_on_a_dead_network():
    torch.manual_seed(0)
    env = firefighter.batched_env(num_firefighters=8, max_steps=20)
    cfg = AlgoConfig(name="mfq", learning_starts=8, update_every=2, batch_size=16, diagnostics_every=5)
    algo = make_algorithm(env.teams[0], cfg, radius=1.5)
    result = play_episode(env, [algo], "cpu", seed=0, explore=0.5, learners={0: algo})
    assert {"charts/context_effect", "charts/context_effect_zero", "charts/dead_units_critic"} <= set(result.logs)
    assert all(0.0 <= v <= 1.0 for v in result.logs["charts/dead_units_critic"])
    with torch.no_grad():                                              # kill the last hidden layer
        algo.q.head[2].bias.fill_(-1e6)
    with pytest.raises(DeadNetwork, match="critic network of team 'firefighter' has no live unit left in its hidden layer"):
        Diagnostics(algo).measure(algo.buffer.sample(4)[0])


def test_context_test_refuses_models_without_context():
    from bmf_graph.algos.random_policy import RandomPolicy
    from bmf_graph.experiments.context_shuffle import ShuffledContext

    env = firefighter.batched_env(num_firefighters=8, max_steps=5)
    q = make_algorithm(env.teams[0], AlgoConfig(name="q"), radius=1.5)
    with pytest.raises(ValueError, match="the model is 'q', which reads no context; expected a model of the MF family"):
        ShuffledContext(q)
    with pytest.raises(ValueError, match="the model is 'RandomPolicy', which reads no context"):
        ShuffledContext(RandomPolicy(env.teams[0]))
    mfq = make_algorithm(env.teams[0], AlgoConfig(name="mfq"), radius=1.5)
    with pytest.raises(ValueError, match="part='inter' names a half of BMF's context"):
        ShuffledContext(mfq, part="inter")


def test_context_probe_of_a_ddpg_model_measures_no_greedy_change_and_still_acts():
    """DDPG's critic reads the action too, so no network chooses from the context alone: the probe
    reports NaN instead of calling the critic without its action."""
    from bmf_graph.algos.base import TeamView
    from bmf_graph.experiments.context_shuffle import ShuffledContext
    from bmf_graph.envs.base import TeamSpec

    spec = TeamSpec("agents", 6, (), 3, 2, action_range=(-1.0, 1.0))
    algo = make_algorithm(spec, AlgoConfig(name="mfac", actor_context=True), radius=1.0)
    probe = ShuffledContext(algo, act_shuffled=True)
    view = TeamView(obs=torch.rand(6, 3), pos=torch.rand(6, 2), alive=torch.ones(6, dtype=torch.bool),
                    a_prev=torch.rand(6, 2), prev_obs=torch.rand(6, 3))
    rec = probe.observe(view)
    assert probe.act(view, rec, None).shape == (6, 2)
    assert all(v != v for v in probe.summary().values())   # NaN: nothing measured


def test_mirror_statistics_pair_the_two_games_of_a_seed():
    """Side-decided games (±35 kills) whose seeds are nearly even give a narrow interval around
    the per-seed means, not one as wide as the side's swing; win counts stay per game."""
    from scipy import stats

    from bmf_graph.experiments.context_shuffle import mirror_statistics

    red, blue = np.array([-36.0, 35.0, -30.0, 33.0]), np.array([37.0, -36.0, 32.0, -31.0])
    result = mirror_statistics(red, blue)
    per_seed = np.array([0.5, -0.5, 1.0, 1.0])
    assert result["seed_kill_differences"] == pytest.approx(per_seed)
    half = stats.t.ppf(0.975, 3) * per_seed.std(ddof=1) / 2
    assert result["kill_difference"]["mean"] == pytest.approx(0.5)
    assert result["kill_difference"]["ci95"] == pytest.approx([0.5 - half, 0.5 + half])
    assert half < 2.0 < np.concatenate([red, blue]).std(ddof=1)
    assert (result["wins"], result["ties"], result["losses"], result["win_rate"]) == (4, 0, 4, 0.5)
    assert result["kill_differences"] == [-36.0, 35.0, -30.0, 33.0, 37.0, -36.0, 32.0, -31.0]
