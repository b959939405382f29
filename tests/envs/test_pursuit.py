"""Adversarial Pursuit: two kinds of agents, tags and their rewards, sizes, limits, errors."""
from __future__ import annotations

import numpy as np
import pytest
import magent2.environments.adversarial_pursuit_v4 as adversarial_pursuit_v4
from pettingzoo.test import parallel_api_test, parallel_seed_test

from bmf_graph.envs import pursuit
from bmf_graph.envs.magent import ID_BITS


def test_team_specs_and_defaults():
    env = pursuit.batched_env()
    predator, prey = env.teams
    assert (predator.name, predator.num_agents, predator.view_shape) == ("predator", 25, (10, 10, 5))
    assert (predator.feature_dim, predator.num_actions) == (24, 13)
    assert (prey.name, prey.num_agents, prey.view_shape) == ("prey", 50, (9, 9, 5))
    assert (prey.feature_dim, prey.num_actions) == (20, 9)
    assert env.max_steps == pursuit.MAX_STEPS == 500 and env.parallel.max_cycles == 500
    assert pursuit.default_counts(45) == (25, 50)


def test_default_map_matches_magent2():
    env = pursuit.batched_env()
    steps = env.reset(seed=11)
    ref = adversarial_pursuit_v4.parallel_env()
    ref.reset(seed=11)
    gw = ref.unwrapped.env
    for st, handle in zip(steps, ref.unwrapped.handles):
        np.testing.assert_array_equal(st.pos, gw.get_pos(handle))
        view, feature = gw.get_observation(handle)
        np.testing.assert_array_equal(st.view, view)
        # the id bits are team-relative (tests/envs/test_magent.py); the rest is the engine's
        np.testing.assert_array_equal(st.feature[:, ID_BITS:], feature[:, ID_BITS:])
    np.testing.assert_array_equal(env.gridworld._get_walls_info(), gw._get_walls_info())


def chase(env, steps, rng):
    """Predators tag a prey in reach (else move at random), prey move at random."""
    base, view2attack = env.gridworld.get_view2attack(env.handles[0])
    predators = rng.integers(0, base, env.teams[0].num_agents)
    agent, r, c = np.nonzero((view2attack >= 0)[None] & (steps[0].view[..., 3] > 0))
    predators[agent] = base + view2attack[r, c]
    return [predators, rng.integers(0, 9, env.teams[1].num_agents)]


@pytest.mark.parametrize("tag_penalty", [-0.2, -0.5])
def test_tags_rewards_and_info(tag_penalty):
    env = pursuit.batched_env(map_size=30, tag_penalty=tag_penalty, max_steps=30)
    rng = np.random.default_rng(0)
    steps = env.reset(seed=1)
    total = 0
    for _ in range(30):
        actions = chase(env, steps, rng)
        steps, terminated, truncated, info = env.step(actions)
        predator, prey = (st.reward.astype(np.float64) for st in steps)
        tagged = np.isclose(predator, 1 + tag_penalty)
        assert np.all(tagged | np.isclose(predator, 0) | np.isclose(predator, tag_penalty))
        missed = np.isclose(predator, tag_penalty)
        assert np.all(actions[0][missed] >= 5)  # only tag actions pay the penalty
        assert np.all(np.isclose(prey, np.round(prey)) & (prey <= 0))  # -1 per tag received
        assert info["tags"] == [int(tagged.sum()), 0] == [int(-prey.sum()), 0]
        assert info["kills"] == [0, 0]
        assert all(st.alive.all() for st in steps) and not terminated  # tags do no damage
        total += info["tags"][0]
    assert truncated and total > 0


def test_tag_penalty_on_empty_cells():
    env = pursuit.batched_env(map_size=30, tag_penalty=-0.3)
    env.reset(seed=0)
    steps = env.step([np.full(env.teams[0].num_agents, 5), np.full(env.teams[1].num_agents, 4)])[0]
    predator = steps[0].reward.astype(np.float64)
    assert np.all(np.isclose(predator, -0.3) | np.isclose(predator, 0.7))
    assert np.isclose(predator, -0.3).sum() > 0


def test_custom_counts_and_bodies():
    env = pursuit.batched_env(map_size=30, num_predators=10, num_prey=30)
    steps = env.reset(seed=0)
    assert [t.num_agents for t in env.teams] == [10, 30]
    assert [st.view.shape for st in steps] == [(10, 10, 10, 5), (30, 9, 9, 5)]
    # A predator covers 2 x 2 cells from its position; no body overlaps another or a wall.
    cells = [p + d for p in steps[0].pos.astype(int) for d in ((0, 0), (0, 1), (1, 0), (1, 1))]
    cells += list(steps[1].pos.astype(int)) + list(env.gridworld._get_walls_info())
    assert len(np.unique(np.array(cells), axis=0)) == len(cells)


def test_step_limit():
    env = pursuit.batched_env(map_size=20, max_steps=4)
    env.reset(seed=0)
    idle = [np.full(t.num_agents, 2 if t.name == "predator" else 4) for t in env.teams]
    assert [env.step(idle)[2] for _ in range(4)] == [False, False, False, True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(idle)


def test_pettingzoo_api_and_seed():
    parallel_api_test(pursuit.parallel_env(map_size=20, max_steps=30), num_cycles=40)
    parallel_seed_test(lambda: pursuit.parallel_env(map_size=20, max_steps=30), num_cycles=20)


@pytest.mark.parametrize("kwargs, match", [
    (dict(map_size=6), r"map_size=6 must be an integer >= 7"),
    (dict(num_predators=0), r"num_predators=0 must be an integer >= 1"),
    (dict(num_prey=-1), r"num_prey=-1 must be an integer >= 1"),
    (dict(map_size=20, num_predators=40), r"do not fit on map_size=20; valid range: "
                                          r"4 \* num_predators \+ num_prey <= 156"),
    (dict(max_steps=0), r"max_steps=0"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pursuit.batched_env(**kwargs)
    with pytest.raises(ValueError, match=match):
        pursuit.parallel_env(**kwargs)
