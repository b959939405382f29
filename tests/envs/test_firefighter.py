import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from bmf_graph.envs.base import TeamSpec
from bmf_graph.envs.firefighter import (FirefighterBatchedEnv, FirefighterParallelEnv,
                                        batched_env, parallel_env)


def step_with(env, levels, actions):
    """Set the state, take one step, return (team_step, terminated, truncated, info)."""
    env.levels = np.asarray(levels)
    (team,), terminated, truncated, info = env.step([np.asarray(actions)])
    return team, terminated, truncated, info


def within_binomial(successes, trials, p, sigmas=5.0):
    assert trials >= 300, f"too few samples ({trials}) for a statistical check"
    if p in (0.0, 1.0):
        return successes == p * trials
    return abs(successes / trials - p) <= sigmas * np.sqrt(p * (1 - p) / trials)


# --- interface -------------------------------------------------------------------------
def test_team_spec_and_arrays():
    env = batched_env(num_firefighters=7)
    assert isinstance(env, FirefighterBatchedEnv)
    assert env.teams == (TeamSpec("firefighter", 7, (), 4, 2),)
    assert env.num_houses == 7 and batched_env(num_firefighters=7, layout="line").num_houses == 8
    (team,) = env.reset(seed=0)
    assert team.view.shape == (7, 0) and team.feature.shape == (7, 4)
    assert team.feature.dtype == np.float32 and team.pos.dtype == np.float32
    assert team.obs().shape == (7, env.teams[0].obs_dim) == (7, 4)
    assert team.alive.all() and not team.reward.any()
    np.testing.assert_array_equal(team.feature[:, :2], np.float32(3 / 5))
    np.testing.assert_array_equal(env.levels, np.full(7, 3))


def test_parallel_api_and_seed():
    for layout in ("ring", "line"):
        parallel_api_test(parallel_env(num_firefighters=6, layout=layout, max_steps=30), num_cycles=40)
        parallel_seed_test(lambda: parallel_env(num_firefighters=6, layout=layout))
    env = parallel_env()
    assert env.metadata["name"] == "firefighter_v0" and env.metadata["render_modes"] == ["rgb_array"]
    assert env.possible_agents[0] == "firefighter_0" and len(env.possible_agents) == 50
    assert env.observation_space("firefighter_3").shape == (4,)
    assert env.action_space("firefighter_3").n == 2


@pytest.mark.parametrize("layout", ["ring", "line"])
def test_batched_and_dict_paths_identical(layout):
    batched = batched_env(num_firefighters=40, layout=layout)
    par = parallel_env(num_firefighters=40, layout=layout)
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
        assert infos["firefighter_0"]["team_reward"] == info["team_reward"][0]
        np.testing.assert_array_equal(par.state(), (batched.levels / 5).astype(np.float32))
        if terminated or truncated:
            assert par.agents == []
            break
    else:
        pytest.fail("episode did not end within max_steps")


def test_seeding():
    def rollout(env, seed):
        out = [env.reset(seed=seed)[0].feature]
        for _ in range(20):
            (team,), terminated, truncated, _ = env.step([np.zeros(env.num_firefighters, np.int64)])
            out.append(team.feature)
            if terminated or truncated:
                break
        return np.concatenate(out)

    env = batched_env(num_firefighters=200)
    a, b, c = rollout(env, 1), rollout(env, 1), rollout(env, 2)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert not np.array_equal(rollout(env, None), rollout(env, None))  # generator carries on


# --- exact rules on hand-built states --------------------------------------------------
def test_two_firefighters_extinguish_and_ring_wraps():
    env = batched_env(num_firefighters=2, layout="line")
    for seed in range(20):
        env.reset(seed=seed)
        step_with(env, [5, 5, 5], [1, 0])
        assert env.levels[1] == 0
    ring = batched_env(num_firefighters=5)
    np.testing.assert_array_equal(ring.houses[-1], [4, 0])
    for seed in range(20):
        ring.reset(seed=seed)
        step_with(ring, [5, 4, 4, 4, 4], [0, 0, 0, 0, 1])  # firefighters 4 and 0 meet at house 0
        assert ring.levels[0] == 0


def test_no_spontaneous_fire_far_from_burning_houses():
    env = batched_env(num_firefighters=10)
    rng = np.random.default_rng(0)
    for seed in range(50):
        env.reset(seed=seed)
        step_with(env, [5, 0, 0, 0, 0, 0, 0, 0, 0, 0], rng.integers(0, 2, 10))
        np.testing.assert_array_equal(env.levels[2:9], 0)


def test_cap_holds():
    for max_fire in (3, 6):
        env = batched_env(num_firefighters=6, max_fire=max_fire)
        for seed in range(30):
            env.reset(seed=seed)
            step_with(env, np.full(6, max_fire), [1, 0, 1, 0, 1, 0])  # houses 0, 2, 4 unattended
            np.testing.assert_array_equal(env.levels, [max_fire, 0] * 3)


def test_ring_neighbours_wrap_line_ends_do_not():
    ring, line = batched_env(num_firefighters=6), batched_env(num_firefighters=5, layout="line")
    caught = 0
    for seed in range(40):
        ring.reset(seed=seed)
        line.reset(seed=seed)
        step_with(ring, [0, 0, 0, 0, 0, 5], [1, 0, 0, 0, 0, 0])  # house 0 unattended
        caught += ring.levels[0]
        step_with(line, [0, 0, 0, 0, 0, 5], [1, 0, 0, 0, 0])  # house 0 unattended
        assert line.levels[0] == 0  # its only neighbour is house 1
        step_with(line, [5, 0, 0, 0, 0, 5], [0, 0, 0, 0, 0])  # house 5 is no neighbour of 0
        assert line.levels[0] == 4  # one firefighter, no burning neighbour: drops surely
    assert caught > 20  # 0.8 per seed through the wrap-around neighbour


def test_rewards_and_termination():
    env = batched_env(num_firefighters=6)
    env.reset(seed=0)
    # house 2 alone with one firefighter and no burning neighbour: drops by exactly 1
    team, terminated, truncated, info = step_with(env, [0, 0, 3, 0, 0, 0], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(env.levels, [0, 0, 2, 0, 0, 0])
    np.testing.assert_array_equal(team.reward, [0, -1, -1, 0, 0, 0])
    assert info == {"team_reward": [-2.0], "burning_houses": [1]}
    assert not terminated and not truncated
    np.testing.assert_array_equal(team.feature[:, :2], (env.levels[env.houses] / 5).astype(np.float32))
    # two firefighters put out the last fire: every level 0 is absorbing, the episode ends
    team, terminated, truncated, info = step_with(env, [0, 0, 2, 0, 0, 0], [1, 1, 0, 0, 0, 0])
    assert terminated and not truncated and info["team_reward"] == [0.0]
    assert not team.reward.any() and not team.feature.any()
    with pytest.raises(RuntimeError, match="reset"):
        env.step([np.zeros(6, np.int64)])


def test_truncation_at_max_steps():
    env = batched_env(num_firefighters=4, max_steps=3)
    env.reset(seed=0)
    done = [step_with(env, [5, 5, 5, 5], [0, 0, 0, 0])[1:3] for _ in range(3)]
    assert done == [(False, False), (False, False), (False, True)]
    par = parallel_env(num_firefighters=4, max_steps=2)
    par.reset(seed=0)
    for _ in range(2):
        par.core.levels = np.full(4, 5)
        _, _, term, trunc, _ = par.step({a: 0 for a in par.agents})
    assert all(trunc.values()) and not any(term.values()) and par.agents == []


def test_rewards_match_levels_on_random_states():
    env = batched_env(num_firefighters=300, layout="line")
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(5):
        team, _, _, info = step_with(env, rng.integers(0, 6, 301), rng.integers(0, 2, 300))
        lv = env.levels
        np.testing.assert_allclose(team.reward, -(lv[:-1] + lv[1:]) / 2)
        assert info["team_reward"] == [-float(lv.sum())]


# --- statistics --------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["ring", "line"])
def test_transition_probabilities(layout):
    n_ff, max_fire = 4000, 5
    env = batched_env(num_firefighters=n_ff, layout=layout, max_fire=max_fire)
    h = env.num_houses
    env.reset(seed=7)
    rng = np.random.default_rng(0)
    counts = {}  # (case) -> [successes, trials]

    def tally(case, success):
        c = counts.setdefault(case, [0, 0])
        c[0] += int(success.sum())
        c[1] += success.size

    for _ in range(10):
        before = np.where(rng.random(h) < 0.5, 0, rng.integers(1, max_fire + 1, h))
        a = rng.integers(0, 2, n_ff)
        target = np.arange(n_ff) + a
        n = np.bincount(target % h if layout == "ring" else target, minlength=h)
        burning = before > 0
        padded = np.concatenate([[burning[-1] if layout == "ring" else False], burning,
                                 [burning[0] if layout == "ring" else False]])
        b = padded[:-2] | padded[2:]
        step_with(env, before, a)
        after = env.levels

        assert (after[n >= 2] == 0).all()
        one, zero = n == 1, n == 0
        assert (after[one & ~burning] == 0).all()
        m = one & burning
        assert np.isin(after[m] - before[m], [0, -1]).all()
        tally(("drop", False), (after < before)[m & ~b])
        tally(("drop", True), (after < before)[m & b])
        m = zero & burning & (before < max_fire)
        assert np.isin(after[m] - before[m], [0, 1]).all()
        tally(("rise", False), (after > before)[m & ~b])
        tally(("rise", True), (after > before)[m & b])
        assert (after[zero & (before == max_fire)] == max_fire).all()
        assert (after[zero & ~burning & ~b] == 0).all()
        m = zero & ~burning & b
        assert np.isin(after[m], [0, 1]).all()
        tally(("catch", True), after[m] == 1)

    expected = {("drop", False): 1.0, ("drop", True): 0.6, ("rise", False): 0.4,
                ("rise", True): 0.8, ("catch", True): 0.8}
    for case, p in expected.items():
        assert within_binomial(*counts[case], p), (case, counts[case], p)


def test_flame_flag_probability():
    env = batched_env(num_firefighters=5000, max_fire=5)
    (team,) = env.reset(seed=0)
    levels, flags = [team.feature[:, :2] * 5], [team.feature[:, 2:]]
    rng = np.random.default_rng(0)
    for _ in range(6):
        (team,), terminated, _, _ = env.step([rng.integers(0, 2, 5000)])
        np.testing.assert_allclose(team.feature[:, :2] * 5, env.levels[env.houses], atol=1e-5)
        levels.append(team.feature[:, :2] * 5)
        flags.append(team.feature[:, 2:])
        assert not terminated
    levels = np.rint(np.concatenate(levels)).astype(int).ravel()
    flags = np.concatenate(flags).ravel()
    assert np.isin(flags, [0, 1]).all() and not flags[levels == 0].any()
    for level in range(1, 4):
        f = flags[levels == level]
        assert within_binomial(int(f.sum()), f.size, 1 - np.exp(-level)), level


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
    ({"num_firefighters": 1}, r"num_firefighters=1 .*>= 2"),
    ({"num_firefighters": 2.5}, r"num_firefighters=2.5 is not an integer"),
    ({"layout": "star"}, r"layout='star' .*ring, line"),
    ({"num_houses": 49}, r"num_houses=49 .*valid: None or 50"),
    ({"num_houses": 50, "layout": "line"}, r"num_houses=50 .*valid: None or 51"),
    ({"max_fire": 2}, r"max_fire=2 .*>= 3"),
    ({"max_steps": 0}, r"max_steps=0 .*>= 1"),
    ({"render_mode": "human"}, r"render_mode='human'"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        batched_env(**kwargs)
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
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        env.levels = [0, 6, 0, 0]
    with pytest.raises(ValueError, match="4 integers"):
        env.levels = [0, 1]
    par = parallel_env(num_firefighters=4)
    par.reset(seed=0)
    with pytest.raises(ValueError, match="no action for 1 agents"):
        par.step({f"firefighter_{i}": 0 for i in range(3)})


# --- rendering -------------------------------------------------------------------------------
def test_render():
    env = batched_env(num_firefighters=20, render_mode="rgb_array")
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
    big = batched_env(num_firefighters=5000)
    big.reset(seed=0)
    frame = big.render()
    assert frame.dtype == np.uint8 and max(frame.shape[:2]) <= 2000
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 2


def test_parallel_render_modes():
    env = parallel_env(num_firefighters=5, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape[2] == 3
    quiet = parallel_env(num_firefighters=5)
    quiet.reset(seed=0)
    assert isinstance(quiet, FirefighterParallelEnv)
    with pytest.warns(UserWarning, match="render_mode=None"):
        assert quiet.render() is None
