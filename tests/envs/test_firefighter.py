"""The Firefighter env's interface: arrays, PettingZoo API, seeding, rewards and returns, errors,
rendering (its fire dynamics: test_firefighter_rules.py)."""
import itertools

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test, parallel_seed_test

from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.envs.base import TeamSpec
from bmf_graph.envs.firefighter import FirefighterBatchedEnv, FirefighterParallelEnv, batched_env, parallel_env
from bmf_graph.training.rollout import play_episode, play_episodes
from firefighter_steps import step_with

RULES = ["paper", "ffg"]


# --- interface -------------------------------------------------------------------------
def test_team_spec_and_arrays():
    env = batched_env(num_firefighters=7)
    assert isinstance(env, FirefighterBatchedEnv) and env.rules == "paper" and env.max_fire is None
    assert env.teams == (TeamSpec("firefighter", 7, (), 2, 2),)
    assert env.num_houses == 7 and batched_env(num_firefighters=7, layout="line").num_houses == 8
    (team,) = env.reset(seed=0)
    assert team.view.shape == (7, 0) and team.feature.shape == (7, 2) and team.feature.dtype == np.float32
    assert team.obs().shape == (7, env.teams[0].obs_dim) == (7, 2) and team.pos.dtype == np.float32
    assert np.isin(team.feature, [0, 1]).all() and team.shared_reward
    assert team.alive.all() and not team.reward.any()
    np.testing.assert_array_equal(env.levels, np.full(7, 3))
    ffg = batched_env(num_firefighters=7, rules="ffg")
    assert ffg.teams == (TeamSpec("firefighter", 7, (), 4, 2),) and ffg.max_fire == 5
    (team,) = ffg.reset(seed=0)
    np.testing.assert_array_equal(team.feature[:, :2], np.float32(3 / 5))
    assert not team.shared_reward


@pytest.mark.parametrize("rules", RULES)
def test_parallel_api_and_seed(rules):
    for layout in ("ring", "line"):
        parallel_api_test(parallel_env(num_firefighters=6, layout=layout, rules=rules, max_steps=30), num_cycles=40)
        parallel_seed_test(lambda: parallel_env(num_firefighters=6, layout=layout, rules=rules))
    env = parallel_env(rules=rules)
    assert env.metadata["name"] == "firefighter_v1" and env.metadata["render_modes"] == ["rgb_array"]
    assert env.possible_agents[0] == "firefighter_0" and len(env.possible_agents) == 50
    assert env.observation_space("firefighter_3").shape == ((2,) if rules == "paper" else (4,))
    assert env.action_space("firefighter_3").n == 2


@pytest.mark.parametrize("rules, layout", itertools.product(RULES, ["ring", "line"]))
def test_batched_and_dict_paths_identical(rules, layout):
    batched = batched_env(num_firefighters=40, layout=layout, rules=rules)
    par = parallel_env(num_firefighters=40, layout=layout, rules=rules)
    (team,) = batched.reset(seed=3)
    obs, _ = par.reset(seed=3)
    np.testing.assert_array_equal(np.stack([obs[a] for a in par.possible_agents]), team.feature)
    rng = np.random.default_rng(0)
    for _ in range(100):
        a = rng.integers(0, 2, 40)
        (team,), terminated, truncated, info = batched.step([a])
        obs, rew, term, trunc, infos = par.step(dict(zip(par.possible_agents, a.tolist())))
        np.testing.assert_array_equal(np.stack([obs[x] for x in par.possible_agents]), team.feature)
        np.testing.assert_array_equal(np.array([rew[x] for x in par.possible_agents]), team.reward)
        assert set(term.values()) == {terminated} and set(trunc.values()) == {truncated}
        assert infos["firefighter_0"]["team_reward"] == info["team_reward"][0] == -float(batched.levels.sum())
        if rules == "paper":
            assert team.team_reward() == info["team_reward"][0]
        np.testing.assert_array_equal(par.state(), batched.levels.astype(np.float32))
        if terminated or truncated:
            assert par.agents == []
            break
    else:
        pytest.fail("episode did not end within max_steps")


@pytest.mark.parametrize("rules", RULES)
def test_seeding(rules):
    def rollout(env, seed):
        out = [env.reset(seed=seed)[0].feature]
        for _ in range(20):
            (team,), terminated, truncated, _ = env.step([np.zeros(env.num_firefighters, np.int64)])
            out.append(np.concatenate([team.feature, env.levels[env.houses]], axis=1))
            if terminated or truncated:
                break
        return np.concatenate(out[1:])

    env = batched_env(num_firefighters=200, rules=rules)
    a, b, c = rollout(env, 1), rollout(env, 1), rollout(env, 2)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert not np.array_equal(rollout(env, None), rollout(env, None))  # generator carries on


def test_paper_level_zero_everywhere_stays_and_the_horizon_is_fixed():
    env = batched_env(num_firefighters=5, max_steps=4)
    env.reset(seed=0)
    team, terminated, truncated, info = step_with(env, [0, 0, 0, 0, 0], [0, 1, 0, 1, 0])
    assert not terminated and not truncated and info == {"team_reward": [0.0], "burning_houses": [0]}
    assert not team.feature.any() and not team.reward.any()
    done = [env.step([np.zeros(5, np.int64)])[1:3] for _ in range(3)]
    assert done == [(False, False), (False, False), (False, True)] and not env.levels.any()
    with pytest.raises(RuntimeError, match="reset"):
        env.step([np.zeros(5, np.int64)])


def test_paper_rewards_are_shared_minus_the_sum_of_levels():
    env = batched_env(num_firefighters=300, layout="line")
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(5):
        team, _, _, info = step_with(env, rng.integers(0, 30, 301), rng.integers(0, 2, 300))
        total = -float(env.levels.sum())
        np.testing.assert_array_equal(team.reward, np.full(300, total, np.float32))
        assert team.shared_reward and team.team_reward() == total == info["team_reward"][0]


def test_returns_count_the_team_reward_once_per_step():
    """``charts/return`` is the sum over steps of -sum(levels), the paper's scale, in the
    episode loop and in the loop over env copies alike."""
    class Recording(FirefighterBatchedEnv):
        def step(self, actions):
            out = super().step(actions)
            self.rewards.append(out[3]["team_reward"][0])
            return out

    env = Recording(num_firefighters=8, max_steps=15)
    env.rewards = []
    policy = RandomPolicy(env.teams[0])
    torch.manual_seed(0)
    result = play_episode(env, [policy], "cpu", seed=4)
    assert len(env.rewards) == 15 and sum(env.rewards) < 0
    assert result.returns[0] == sum(env.rewards)  # integers: exact
    copies = [Recording(num_firefighters=8, max_steps=15) for _ in range(2)]
    for c in copies:
        c.rewards = []
    for r, c in zip(play_episodes(copies, [policy], "cpu", [4, 5]), copies):
        assert len(c.rewards) == 15 and r.returns[0] == sum(c.rewards) < 0


@pytest.mark.parametrize("rules", RULES)
def test_truncation_at_max_steps(rules):
    env = batched_env(num_firefighters=4, rules=rules, max_steps=3)
    env.reset(seed=0)
    done = [step_with(env, [5, 5, 5, 5], [0, 0, 0, 0])[1:3] for _ in range(3)]
    assert done == [(False, False), (False, False), (False, True)]
    par = parallel_env(num_firefighters=4, rules=rules, max_steps=2)
    par.reset(seed=0)
    for _ in range(2):
        par.core.levels = np.full(4, 5)
        _, _, term, trunc, _ = par.step({a: 0 for a in par.agents})
    assert all(trunc.values()) and not any(term.values()) and par.agents == []


# --- positions -----------------------------------------------------------------------------
def test_positions():
    for n in (3, 50, 1000):
        env = batched_env(num_firefighters=n)
        pos, houses = env.positions.astype(np.float64), env.house_positions().astype(np.float64)
        assert (pos >= 0).all()
        np.testing.assert_allclose(np.linalg.norm(pos - np.roll(pos, -1, 0), axis=1), 1, atol=1e-4)
        np.testing.assert_allclose(np.linalg.norm(houses - np.roll(houses, -1, 0), axis=1), 1, atol=1e-4)
        d = np.linalg.norm(pos[:, None] - houses[env.houses], axis=2)
        np.testing.assert_allclose(d[:, 0], d[:, 1], atol=1e-4)
        if n > 6:
            assert np.linalg.norm(pos[0] - pos[2]) > 1.5
    line = batched_env(num_firefighters=4, layout="line")
    (team,) = line.reset(seed=0)
    np.testing.assert_array_equal(team.pos, [[0.5, 0], [1.5, 0], [2.5, 0], [3.5, 0]])
    np.testing.assert_array_equal(line.house_positions()[:, 0], np.arange(5))


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"rules": "x"}, r"^Firefighter: rules='x' is unknown; valid: paper, ffg$"),
    ({"layout": "star"}, r"^Firefighter: layout='star' is unknown; valid: ring, line$"),
    ({"num_firefighters": 1}, r"num_firefighters=1 is out of range; valid: an integer >= 2$"),
    ({"num_firefighters": 2.5}, r"num_firefighters=2.5 is not an integer"),
    ({"num_houses": 49}, r"num_houses=49 .*layout='ring'.*valid: None or 50"),
    ({"num_houses": 50, "layout": "line"}, r"num_houses=50 .*valid: None or 51"),
    ({"max_fire": 5}, r"max_fire=5 does not apply to rules='paper' \(no cap\); valid: None, or rules='ffg'"),
    ({"max_fire": 2, "rules": "ffg"}, r"max_fire=2 .*>= 3"),
    ({"max_steps": 0}, r"max_steps=0 .*>= 1"),
    ({"render_mode": "human"}, r"render_mode='human'"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        batched_env(**kwargs)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=match):
        parallel_env(**kwargs)


def test_bad_actions_and_states():
    env = batched_env(num_firefighters=4)
    with pytest.raises(RuntimeError, match="reset"):
        env.step([np.zeros(4, np.int64)])
    env.reset(seed=0)
    for actions, match in [([np.zeros(3, np.int64)], "4 integers"), ([np.full(4, 2)], "0 or 1"),
                           ([np.zeros(4)], "integers"), ([np.zeros(4, np.int64)] * 2, "one team")]:
        with pytest.raises(ValueError, match=match):
            env.step(actions)
    with pytest.raises(ValueError, match=r">= 0 \(no cap\), got \[-1, 0\]"):
        env.levels = [0, -1, 0, 0]
    env.levels = [0, 10**6, 0, 0]  # no cap under the paper's rules
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        ffg = batched_env(num_firefighters=4, rules="ffg")
        ffg.levels = [0, 6, 0, 0]
    with pytest.raises(ValueError, match="4 integers"):
        env.levels = [0, 1]
    par = parallel_env(num_firefighters=4)
    par.reset(seed=0)
    with pytest.raises(ValueError, match="no action for 1 agents"):
        par.step({f"firefighter_{i}": 0 for i in range(3)})


# --- rendering -------------------------------------------------------------------------------
@pytest.mark.parametrize("rules", RULES)
def test_render(rules):
    env = batched_env(num_firefighters=20, rules=rules, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    env.levels = np.arange(20) % 6
    second = env.render()
    assert second.shape == first.shape and not np.array_equal(first, second)
    frames = []
    for a in (0, 1):
        step_with(env, np.full(20, 5), np.full(20, a))
        env.levels = np.full(20, 5)
        frames.append(env.render())
    assert not np.array_equal(*frames)  # the choice of each firefighter is drawn
    if rules == "paper":  # no cap: levels past the colour scale are drawn like the top of it
        assert env.fire_scale == 10
        env.levels = np.full(20, 10)
        top = env.render()
        env.levels = np.full(20, 500)
        np.testing.assert_array_equal(env.render(), top)
        big = batched_env(num_firefighters=5000)
        big.reset(seed=0)
        big.levels = np.arange(5000) % 12
        frame = big.render()
        assert frame.dtype == np.uint8 and max(frame.shape[:2]) <= 2000
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 12  # white, agents, 11 fire colours


def test_parallel_render_modes():
    env = parallel_env(num_firefighters=5, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape[2] == 3
    quiet = parallel_env(num_firefighters=5)
    quiet.reset(seed=0)
    assert isinstance(quiet, FirefighterParallelEnv)
    with pytest.warns(UserWarning, match="render_mode=None"):
        assert quiet.render() is None
