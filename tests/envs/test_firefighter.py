import itertools

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test, parallel_seed_test

from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.envs.base import TeamSpec
from bmf_graph.envs.firefighter import (FirefighterBatchedEnv, FirefighterParallelEnv, batched_env,
                                        paper_transition, parallel_env)
from bmf_graph.rollout import play_episode
from bmf_graph.vector_rollout import play_episodes

RULES = ["paper", "ffg"]


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


def reference_house(level, n, b, u_rise, u_drop):
    """One house under rules="paper", written case by case as the rule table reads."""
    if n >= 2:
        return 0
    burning = level > 0
    if b:  # burning or not: +1 w.p. 0.8, and with one firefighter independently -1 w.p. 0.6
        new = level + (u_rise < 0.8) - (n == 1 and u_drop < 0.6)
    elif burning:  # +1 w.p. 0.4, then -1 surely with one firefighter
        new = level + (u_rise < 0.4) - (n == 1)
    else:
        new = 0
    return max(new, 0)


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


# --- rules="paper": the six cases, exact ---------------------------------------------------
def test_paper_rules_match_the_case_table():
    """Every combination of level (0 .. 4), firefighters (0 .. 3), burning neighbour and
    draws on both sides of 0.4, 0.6 and 0.8, against the case-by-case reference."""
    grid = np.array(list(itertools.product(range(5), range(4), (False, True),
                                           (0.1, 0.39, 0.41, 0.79, 0.81, 0.99), (0.1, 0.59, 0.61, 0.99))))
    level, n, b, u_rise, u_drop = (grid[:, 0].astype(np.int64), grid[:, 1].astype(np.int64),
                                   grid[:, 2].astype(bool), grid[:, 3], grid[:, 4])
    got = paper_transition(level, n, b, u_rise, u_drop)
    want = [reference_house(*row) for row in zip(level, n, b, u_rise, u_drop)]
    np.testing.assert_array_equal(got, want)
    # the cases spelled out on one burning house at level 2 (u_rise, u_drop -> next level)
    cases = {  # (n, b): {(u_rise, u_drop): next}
        (0, True): {(0.5, 0.5): 3, (0.9, 0.5): 2},
        (1, True): {(0.5, 0.5): 2, (0.5, 0.7): 3, (0.9, 0.5): 1, (0.9, 0.7): 2},
        (0, False): {(0.3, 0.0): 3, (0.5, 0.0): 2},
        (1, False): {(0.3, 0.9): 2, (0.5, 0.9): 1},
    }
    for (n_, b_), outcomes in cases.items():
        for (ur, ud), want_level in outcomes.items():
            assert paper_transition(np.array([2]), np.array([n_]), np.array([b_]), np.array([ur]),
                                    np.array([ud]))[0] == want_level, (n_, b_, ur, ud)
    # an intact house: catches fire only beside a fire; one firefighter may undo it; clip at 0
    one = lambda lv, n_, b_, ur, ud: paper_transition(np.array([lv]), np.array([n_]), np.array([b_]),  # noqa: E731
                                                      np.array([ur]), np.array([ud]))[0]
    assert one(0, 0, True, 0.5, 0.0) == 1 and one(0, 0, True, 0.9, 0.0) == 0
    assert one(0, 1, True, 0.5, 0.7) == 1 and one(0, 1, True, 0.5, 0.5) == 0
    assert one(0, 1, True, 0.9, 0.5) == 0  # 0 - 1 clipped at 0
    assert one(0, 0, False, 0.0, 0.0) == 0 and one(0, 1, False, 0.0, 0.0) == 0
    assert one(9, 2, True, 0.0, 0.9) == 0 and one(9, 3, False, 0.0, 0.9) == 0


def test_paper_hand_built_states():
    env = batched_env(num_firefighters=8)
    counts = np.zeros(8)
    for seed in range(400):
        env.reset(seed=seed)
        # firefighters per house: [1, 2, 0, 2, 1, 0, 1, 1]
        step_with(env, [0, 6, 0, 0, 0, 1000, 5, 0], [1, 0, 1, 0, 0, 1, 1, 1])
        lv = env.levels
        assert lv[1] == 0 and lv[3] == 0  # n >= 2
        assert lv[5] in (1000, 1001)  # no cap: beside a fire, unattended, +1 w.p. 0.8
        assert lv[6] in (4, 5, 6)  # beside a fire, one firefighter: +1 w.p. 0.8, -1 w.p. 0.6
        assert lv[[0, 4, 7]].max() <= 1  # intact, beside a fire, one firefighter: clip at 0
        counts += lv - [0, 6, 0, 0, 0, 1000, 5, 0]
    # synchronous: house 2 sees house 1 burning before the step, although house 1 is put out
    # in the same step (updating house by house in place, it would never catch fire here)
    assert within_binomial(int(counts[2]), 400, 0.8)
    assert within_binomial(int(counts[5]), 400, 0.8)
    for house in (0, 4, 7):  # ring: house 0 burns beside house 1, house 7 beside house 6
        assert within_binomial(int(counts[house]), 400, 0.8 * 0.4), house
    assert abs(counts[6] / 400 - (0.8 - 0.6)) < 5 * np.sqrt(0.44 / 400)  # E[change] = 0.8 - 0.6


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


# --- rules="ffg": the first variant, kept as it was -------------------------------------------
def test_ffg_two_firefighters_extinguish_and_ring_wraps():
    env = batched_env(num_firefighters=2, layout="line", rules="ffg")
    for seed in range(20):
        env.reset(seed=seed)
        step_with(env, [5, 5, 5], [1, 0])
        assert env.levels[1] == 0
    ring = batched_env(num_firefighters=5, rules="ffg")
    np.testing.assert_array_equal(ring.houses[-1], [4, 0])
    for seed in range(20):
        ring.reset(seed=seed)
        step_with(ring, [5, 4, 4, 4, 4], [0, 0, 0, 0, 1])  # firefighters 4 and 0 meet at house 0
        assert ring.levels[0] == 0


def test_ffg_cap_holds():
    for max_fire in (3, 6):
        env = batched_env(num_firefighters=6, rules="ffg", max_fire=max_fire)
        for seed in range(30):
            env.reset(seed=seed)
            step_with(env, np.full(6, max_fire), [1, 0, 1, 0, 1, 0])  # houses 0, 2, 4 unattended
            np.testing.assert_array_equal(env.levels, [max_fire, 0] * 3)


def test_ffg_ring_neighbours_wrap_line_ends_do_not():
    ring, line = batched_env(num_firefighters=6, rules="ffg"), batched_env(num_firefighters=5, layout="line", rules="ffg")
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


def test_ffg_rewards_and_termination():
    env = batched_env(num_firefighters=6, rules="ffg")
    env.reset(seed=0)
    # house 2 alone with one firefighter and no burning neighbour: drops by exactly 1
    team, terminated, truncated, info = step_with(env, [0, 0, 3, 0, 0, 0], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(env.levels, [0, 0, 2, 0, 0, 0])
    np.testing.assert_array_equal(team.reward, [0, -1, -1, 0, 0, 0])
    assert info == {"team_reward": [-2.0], "burning_houses": [1]} and team.team_reward() == -2.0
    assert not terminated and not truncated
    np.testing.assert_array_equal(team.feature[:, :2], (env.levels[env.houses] / 5).astype(np.float32))
    # two firefighters put out the last fire: every level 0 is absorbing, the episode ends
    team, terminated, truncated, info = step_with(env, [0, 0, 2, 0, 0, 0], [1, 1, 0, 0, 0, 0])
    assert terminated and not truncated and info["team_reward"] == [0.0]
    assert not team.reward.any() and not team.feature.any()
    with pytest.raises(RuntimeError, match="reset"):
        env.step([np.zeros(6, np.int64)])


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


# --- statistics --------------------------------------------------------------------------
def tally_steps(rules, layout, steps=10, n_ff=4000, top=5, seed=7):
    """Random states and actions; yields (before, after, n, b) per step."""
    env = batched_env(num_firefighters=n_ff, layout=layout, rules=rules)
    h = env.num_houses
    env.reset(seed=seed)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        before = np.where(rng.random(h) < 0.5, 0, rng.integers(1, top + 1, h))
        a = rng.integers(0, 2, n_ff)
        n = np.bincount(env.houses[np.arange(n_ff), a], minlength=h)
        burning = before > 0
        padded = np.concatenate([[burning[-1] if layout == "ring" else False], burning,
                                 [burning[0] if layout == "ring" else False]])
        step_with(env, before, a)
        yield before, env.levels, n, padded[:-2] | padded[2:]


@pytest.mark.parametrize("layout", ["ring", "line"])
def test_paper_transition_probabilities(layout):
    # (n, burning, b) -> {change: probability}; intact houses: the new level itself
    expected = {(0, True, True): {1: 0.8, 0: 0.2}, (1, True, True): {1: 0.32, 0: 0.56, -1: 0.12},
                (0, True, False): {1: 0.4, 0: 0.6}, (1, True, False): {0: 0.4, -1: 0.6},
                (0, False, True): {1: 0.8, 0: 0.2}, (1, False, True): {1: 0.32, 0: 0.68},
                (0, False, False): {0: 1.0}, (1, False, False): {0: 1.0}}
    counts = {case: {d: 0 for d in probs} for case, probs in expected.items()}
    for before, after, n, b in tally_steps("paper", layout):
        assert (after[n >= 2] == 0).all()
        for (n_, burning, b_), outcome in counts.items():
            m = (n == n_) & ((before > 0) == burning) & (b == b_)
            change = after[m] - before[m]
            assert np.isin(change, list(outcome)).all(), ((n_, burning, b_), np.unique(change))
            for d in outcome:
                outcome[d] += int((change == d).sum())
    for case, probs in expected.items():
        trials = sum(counts[case].values())
        for d, p in probs.items():
            assert within_binomial(counts[case][d], trials, p), (case, d, counts[case], p)


@pytest.mark.parametrize("layout", ["ring", "line"])
def test_ffg_transition_probabilities(layout):
    counts = {}  # (case) -> [successes, trials]

    def tally(case, success):
        c = counts.setdefault(case, [0, 0])
        c[0] += int(success.sum())
        c[1] += success.size

    for before, after, n, b in tally_steps("ffg", layout):
        burning = before > 0
        assert (after[n >= 2] == 0).all()
        one, zero = n == 1, n == 0
        assert (after[one & ~burning] == 0).all()
        m = one & burning
        assert np.isin(after[m] - before[m], [0, -1]).all()
        tally(("drop", False), (after < before)[m & ~b])
        tally(("drop", True), (after < before)[m & b])
        m = zero & burning & (before < 5)
        assert np.isin(after[m] - before[m], [0, 1]).all()
        tally(("rise", False), (after > before)[m & ~b])
        tally(("rise", True), (after > before)[m & b])
        assert (after[zero & (before == 5)] == 5).all()
        assert (after[zero & ~burning & ~b] == 0).all()
        m = zero & ~burning & b
        assert np.isin(after[m], [0, 1]).all()
        tally(("catch", True), after[m] == 1)

    expected = {("drop", False): 1.0, ("drop", True): 0.6, ("rise", False): 0.4,
                ("rise", True): 0.8, ("catch", True): 0.8}
    for case, p in expected.items():
        assert within_binomial(*counts[case], p), (case, counts[case], p)


@pytest.mark.parametrize("rules", RULES)
def test_flame_flag_probability(rules):
    env = batched_env(num_firefighters=5000, rules=rules)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    levels, flags = [], []
    for _ in range(6):
        team, *_ = step_with(env, rng.integers(0, 5, 5000), rng.integers(0, 2, 5000))
        levels.append(env.levels[env.houses])  # the flags are drawn from the levels after the step
        flags.append(team.feature[:, -2:])
        if rules == "ffg":
            np.testing.assert_allclose(team.feature[:, :2] * 5, levels[-1], atol=1e-5)
    assert team.feature.shape == (5000, 2 if rules == "paper" else 4)  # paper: the flags only
    levels, flags = np.concatenate(levels).ravel(), np.concatenate(flags).ravel()
    assert np.isin(flags, [0, 1]).all() and not flags[levels == 0].any()
    for level in range(1, 5):
        f = flags[levels == level]
        assert within_binomial(int(f.sum()), f.size, 1 - np.exp(-level)), level


def test_5000_agents_flags_are_drawn_per_agent():
    env = batched_env(num_firefighters=5000)
    env.reset(seed=0)
    (team,), *_ = env.step([np.zeros(5000, np.int64)])  # nobody pairs: every house still burns
    right, left_of_next = team.feature[:-1, 1], team.feature[1:, 0]  # the same house, two agents
    assert (env.levels > 0).all() and not np.array_equal(right, left_of_next)


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
