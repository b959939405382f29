"""Playing several env copies at once equals playing them one by one."""
import numpy as np
import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import battle, firefighter
from bmf_graph.rollout import play_episode, team_view
from bmf_graph.envs.copies import LocalCopies, WorkerCopies
from bmf_graph.vector_rollout import PartPlayer, acting_copy, play_episodes


def _single(env, policies, seeds, max_steps=None):
    with torch.no_grad():
        return [play_episode(env, policies, "cpu", seed, max_steps=max_steps) for seed in seeds]


@pytest.mark.parametrize("name", ["q", "mfq", "gat_mf"])
def test_copies_play_the_single_env_episodes(name):
    """Greedy policies: copy e plays exactly the episode of seed e, also when copies end at
    different steps (Firefighter with rules="ffg" ends when every fire is out)."""
    torch.manual_seed(0)
    make = lambda: firefighter.batched_env(num_firefighters=8, rules="ffg", max_steps=40)  # noqa: E731
    algo = make_algorithm(make().teams[0], AlgoConfig(name=name, hidden=16), radius=1.5)
    seeds = [3, 4, 5, 6]
    copies = play_episodes([make() for _ in seeds], [algo], "cpu", seeds)
    alone = _single(make(), [algo], seeds)
    assert len({r.steps for r in alone}) > 1  # the copies really end apart
    for a, b in zip(copies, alone):
        assert (a.steps, a.terminated) == (b.steps, b.terminated)
        assert np.allclose(a.returns, b.returns) and np.array_equal(a.alive, b.alive)


@pytest.mark.parametrize("parts", [1, 2])
def test_battle_copies_keep_teams_and_kills_apart(parts):
    torch.manual_seed(1)
    kwargs = {"map_size": 20, "agents_per_team": 8, "max_steps": 25}
    spec = battle.batched_env(**kwargs).teams
    policies = [make_algorithm(s, AlgoConfig(name="mfq", hidden=16), radius=6.0) for s in spec]
    seeds = [0, 1, 2]
    with WorkerCopies("battle", kwargs, 3) as copies:
        results = play_episodes(copies, policies, "cpu", seeds, max_steps=25, parts=parts)
    alone = _single(battle.batched_env(**kwargs), policies, seeds, max_steps=25)
    for a, b in zip(results, alone):
        assert a.steps == b.steps and np.allclose(a.returns, b.returns)
        assert np.array_equal(a.kills, b.kills) and np.array_equal(a.alive, b.alive)


@pytest.mark.parametrize("where", ["local", "worker"])
def test_copies_in_two_parts_play_the_single_env_episodes(where):
    """Two halves played in turn (the second with copies of the policies), stepped here or in
    a worker process: each copy still plays its single-env episode, also when copies end apart."""
    torch.manual_seed(3)
    kwargs = {"num_firefighters": 8, "rules": "ffg", "max_steps": 40}
    algo = make_algorithm(firefighter.batched_env(**kwargs).teams[0], AlgoConfig(name="mfq", hidden=16), radius=1.5)
    seeds = [3, 4, 5, 6, 7]
    copies = WorkerCopies("firefighter", kwargs, 5) if where == "worker" else \
        LocalCopies([firefighter.batched_env(**kwargs) for _ in seeds])
    with copies:
        results = play_episodes(copies, [algo], "cpu", seeds, parts=2)
    alone = _single(firefighter.batched_env(**kwargs), [algo], seeds)
    assert len({r.steps for r in alone}) > 1
    for a, b in zip(results, alone):
        assert (a.steps, a.terminated) == (b.steps, b.terminated) and np.allclose(a.returns, b.returns)
        assert np.array_equal(a.alive, b.alive)


def test_worker_copies_report_errors():
    with pytest.raises(ValueError, match="env_name='chess' is not valid"):
        WorkerCopies("chess", {}, 2)
    with pytest.raises(ValueError, match="num_envs=0"):
        WorkerCopies("firefighter", {}, 0)
    with WorkerCopies("firefighter", {"num_firefighters": 4}, 2) as copies:
        copies.reset([0, 1], [(0, 2)])
        copies.result((0, 2))
        copies.step((0, 2), [np.full(8, 7)], 0)  # Firefighter has 2 actions
        with pytest.raises(RuntimeError, match="worker process failed(.|\n)*actions"):
            copies.result((0, 2))
    with WorkerCopies("firefighter", {"num_firefighters": 4}, 2) as copies:
        copies._process.kill()  # as when the spawned worker cannot import the main module
        copies._process.join()
        with pytest.raises(RuntimeError, match=r"worker process exited \(exit code -9\)(.|\n)*__main__"):
            copies.reset([0, 1], [(0, 2)])
            copies.result((0, 2))
    with pytest.raises(ValueError, match="parts=3; expected an integer in 1..2"):
        play_episodes([firefighter.batched_env() for _ in range(2)], [RandomPolicy(firefighter.batched_env().teams[0])],
                      "cpu", [0, 1], parts=3)


def test_bmf_stacked_view_equals_views_of_each_copy():
    """With k above the team size every agent is a group of its own (no k-means draw), so the
    stacked observation must equal each copy's own: groups and attention stay in a copy."""
    torch.manual_seed(2)
    copies = LocalCopies([firefighter.batched_env(num_firefighters=10) for _ in range(3)])
    algo = make_algorithm(copies.teams[0], AlgoConfig(name="bmf_q", hidden=16, num_groups=12), radius=1.5)
    copies.reset([7, 8, 9], [(0, 3)])
    player = PartPlayer(copies, (0, 3), [algo], torch.device("cpu"))
    player.a_prev[0] = torch.nn.functional.one_hot(torch.randint(2, (30,)), 2).float()
    view = player.views(copies.result((0, 3)))[0]
    stacked = algo.observe(view)
    assert torch.equal(stacked["group"] // 12, view.batch)  # copy b owns ids 12b .. 12b + 11
    for b, env in enumerate(copies.envs):
        rows = slice(10 * b, 10 * (b + 1))
        algo.interaction.grouping.reset_parameters()
        alone = algo.observe(team_view(env.reset(seed=7 + b)[0], view.a_prev[rows], None, torch.device("cpu")))
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
    copies = LocalCopies(envs)
    copies.reset([0, 1], [(0, 2)])
    player = PartPlayer(copies, (0, 2), [RandomPolicy(t) for t in copies.teams], torch.device("cpu"))
    arrays = copies.result((0, 2))
    arrays.alive[1][8:] = False  # as if copy 1 had ended
    view = player.views(arrays)[1]
    steps = [env.reset(seed=seed)[1] for env, seed in zip(envs, [0, 1])]
    assert torch.equal(view.obs, torch.from_numpy(np.concatenate([s.obs() for s in steps])))
    assert torch.equal(view.pos, torch.from_numpy(np.concatenate([s.pos for s in steps])))
    assert view.alive[:8].all() and not view.alive[8:].any()
    assert view.num_envs == 2 and torch.equal(view.prev_obs, view.obs)
    assert torch.equal(view.batch, torch.arange(2).repeat_interleave(8))


def test_acting_copy_copies_modules_and_shares_learning_state():
    algo = make_algorithm(battle.batched_env(map_size=20, agents_per_team=8).teams[0],
                          AlgoConfig(name="bmf_q", hidden=16, buffer_steps=5), radius=6.0)
    algo._setup()
    clone = acting_copy(algo)
    assert clone.buffer is algo.buffer and clone.optimizer is algo.optimizer
    assert clone.interaction.vae_optimizer is algo.interaction.vae_optimizer
    assert clone.interaction.grouping is not algo.interaction.grouping and clone.q is not algo.q
    assert all(torch.equal(a, b) for a, b in zip(clone.parameters(), algo.parameters()))
