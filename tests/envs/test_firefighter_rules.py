"""The fire dynamics of both rule sets: exact on hand-built states, statistically on many."""
import itertools

import numpy as np
import pytest

from bmf_graph.envs.firefighter import batched_env
from bmf_graph.envs.firefighter_rules import paper_transition
from firefighter_steps import step_with, within_binomial

RULES = ["paper", "ffg"]


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
