"""Playing several env copies at once equals playing them one by one."""
import numpy as np
import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import battle, firefighter
from bmf_graph.rollout import play_episode, team_view
from bmf_graph.vector_rollout import play_episodes, stacked_view


def _single(env, policies, seeds, max_steps=None):
    with torch.no_grad():
        return [play_episode(env, policies, "cpu", seed, max_steps=max_steps) for seed in seeds]


@pytest.mark.parametrize("name", ["q", "mfq", "gat_mf"])
def test_copies_play_the_single_env_episodes(name):
    """Greedy policies: copy e plays exactly the episode of seed e, also when copies end at
    different steps (Firefighter ends when every fire is out)."""
    torch.manual_seed(0)
    make = lambda: firefighter.batched_env(num_firefighters=8, max_steps=40)  # noqa: E731
    algo = make_algorithm(make().teams[0], AlgoConfig(name=name, hidden=16), radius=1.5)
    seeds = [3, 4, 5, 6]
    copies = play_episodes([make() for _ in seeds], [algo], "cpu", seeds)
    alone = _single(make(), [algo], seeds)
    assert len({r.steps for r in alone}) > 1  # the copies really end apart
    for a, b in zip(copies, alone):
        assert (a.steps, a.terminated) == (b.steps, b.terminated)
        assert np.allclose(a.returns, b.returns) and np.array_equal(a.alive, b.alive)


def test_battle_copies_keep_teams_and_kills_apart():
    torch.manual_seed(1)
    make = lambda: battle.batched_env(map_size=20, agents_per_team=8, max_steps=25)  # noqa: E731
    spec = make().teams
    policies = [make_algorithm(s, AlgoConfig(name="mfq", hidden=16), radius=6.0) for s in spec]
    seeds = [0, 1, 2]
    copies = play_episodes([make() for _ in seeds], policies, "cpu", seeds, max_steps=25)
    alone = _single(make(), policies, seeds, max_steps=25)
    for a, b in zip(copies, alone):
        assert a.steps == b.steps and np.allclose(a.returns, b.returns)
        assert np.array_equal(a.kills, b.kills) and np.array_equal(a.alive, b.alive)


def test_bmf_stacked_view_equals_views_of_each_copy():
    """With k above the team size every agent is a group of its own (no k-means draw), so the
    stacked observation must equal each copy's own: groups and attention stay in a copy."""
    torch.manual_seed(2)
    envs = [firefighter.batched_env(num_firefighters=10) for _ in range(3)]
    algo = make_algorithm(envs[0].teams[0], AlgoConfig(name="bmf_q", hidden=16, num_groups=12), radius=1.5)
    steps = [env.reset(seed=seed)[0] for env, seed in zip(envs, [7, 8, 9])]
    a_prev = torch.nn.functional.one_hot(torch.randint(2, (30,)), 2).float()
    batch = torch.arange(3).repeat_interleave(10)
    stacked = algo.observe(stacked_view(steps, np.zeros(3, bool), a_prev, None, batch, torch.device("cpu")))
    assert torch.equal(stacked["group"] // 12, batch)  # copy b owns ids 12b .. 12b + 11
    for b, step in enumerate(steps):
        rows = slice(10 * b, 10 * (b + 1))
        algo.interaction.grouping.reset_parameters()
        alone = algo.observe(team_view(step, a_prev[rows], None, torch.device("cpu")))
        assert torch.allclose(stacked["mean_action"][rows], alone["mean_action"], atol=1e-6)
        assert alone["mean_action"][:, 2:].abs().sum() > 0  # inter-group part is not trivial


def test_ended_copies_are_dead_and_random_policies_run():
    envs = [firefighter.batched_env(num_firefighters=6, max_steps=30) for _ in range(2)]
    results = play_episodes(envs, [RandomPolicy(envs[0].teams[0])], "cpu", [0, 1], explore=1.0)
    assert all(1 <= r.steps <= 30 for r in results) and all(r.returns[0] < 0 for r in results)


def test_play_episodes_errors():
    env = firefighter.batched_env(num_firefighters=6)
    policy = RandomPolicy(env.teams[0])
    with pytest.raises(ValueError, match="got 1 envs and 2 seeds"):
        play_episodes([env], [policy], "cpu", [0, 1])
    with pytest.raises(ValueError, match="same teams"):
        play_episodes([env, firefighter.batched_env(num_firefighters=8)], [policy], "cpu", [0, 1])


def test_stacked_view_rows_are_each_copys_arrays():
    envs = [battle.batched_env(map_size=20, agents_per_team=8) for _ in range(2)]
    steps = [env.reset(seed=seed)[1] for env, seed in zip(envs, [0, 1])]
    view = stacked_view(steps, np.array([False, True]), torch.zeros(16, 21), None, torch.arange(2).repeat_interleave(8),
                        torch.device("cpu"))
    assert torch.equal(view.obs, torch.from_numpy(np.concatenate([s.obs() for s in steps])))
    assert torch.equal(view.pos, torch.from_numpy(np.concatenate([s.pos for s in steps])))
    assert view.alive[:8].all() and not view.alive[8:].any()  # copy 1 has ended
    assert view.num_envs == 2 and torch.equal(view.prev_obs, view.obs)
