"""Battle: sizes and placement, reward presets, the kill / wipe-out ending, argument errors."""
from __future__ import annotations

import numpy as np
import pytest
import magent2.environments.battle_v4 as battle_v4
from pettingzoo.test import parallel_api_test, parallel_seed_test

from bmf_graph.envs import battle

STAY, RIGHT = 6, 7  # battle move actions: (0, 0) and (+1, 0)


def test_team_specs_and_defaults():
    env = battle.batched_env()
    assert env.max_steps == battle.MAX_STEPS == 400
    assert env.parallel.max_cycles == 400
    for spec, name in zip(env.teams, ("red", "blue")):
        assert (spec.name, spec.num_agents, spec.view_shape) == (name, 64, (13, 13, 7))
        assert (spec.feature_dim, spec.num_actions, spec.obs_dim) == (34, 21, 13 * 13 * 7 + 34)
    assert battle.KILL_REWARD == 5.0
    plain = battle.batched_env(map_size=20, minimap_mode=False).teams[0]
    assert (plain.view_shape, plain.feature_dim) == ((13, 13, 5), 32)


def sides(pos: list[np.ndarray], map_size: int) -> int:
    """Index of the team whose agents all stand in the left half."""
    left = [bool((p[:, 0] < map_size / 2).all()) for p in pos]
    right = [bool((p[:, 0] > map_size / 2).all()) for p in pos]
    assert left == [not r for r in right] and sum(left) == 1
    return left.index(True)


def test_sides_are_drawn_from_the_reset_seed_alike_on_both_paths():
    env = battle.batched_env(map_size=20, agents_per_team=8)
    pz = battle.parallel_env(map_size=20, agents_per_team=8)
    gw, handles = pz.unwrapped.env, pz.unwrapped.handles
    drawn = []
    for seed in range(300):
        steps = env.reset(seed=seed)
        obs, _ = pz.reset(seed=seed)
        left = sides([st.pos for st in steps], 20)
        assert env.left_team == pz.unwrapped.left_team == left
        for st, handle in zip(steps, handles):
            np.testing.assert_array_equal(st.pos, gw.get_pos(handle))
        # Names and slots stay with the team: red_0 is engine agent 0 wherever red stands.
        np.testing.assert_array_equal(gw.get_agent_id(handles[0]), np.arange(8))
        assert sorted(obs) == sorted(pz.possible_agents)
        drawn.append(left)
    # 300 fair coin flips: 150 +- 8.7; this seed range gives 135 red-left episodes.
    assert sum(d == 0 for d in drawn) == 135
    assert [left_after_reset(env, s) for s in range(20)] == drawn[:20]  # a seed always draws the same


def left_after_reset(env, seed=None) -> int:
    env.reset(seed=seed)
    return env.left_team


def test_reset_without_seed_draws_the_next_side():
    env = battle.batched_env(map_size=20, agents_per_team=8, seed=1)
    first = [left_after_reset(env) for _ in range(40)]
    assert 10 < sum(first) < 30
    left_after_reset(env, seed=7)
    after_seed = [left_after_reset(env) for _ in range(40)]
    left_after_reset(env, seed=7)
    assert [left_after_reset(env) for _ in range(40)] == after_seed


@pytest.mark.parametrize("left_team, want", [(None, 0), (0, 0), (1, 1)])
def test_fixed_sides(left_team, want):
    env = battle.batched_env(map_size=20, agents_per_team=8, random_sides=False, left_team=left_team)
    for seed in range(6):
        steps = env.reset(seed=seed)
        assert env.left_team == sides([st.pos for st in steps], 20) == want


@pytest.mark.parametrize("map_size, total", [(40, 128), (60, 288), (80, 512)])
def test_standard_sizes_match_magent2_formation(map_size, total):
    env = battle.batched_env(map_size=map_size, random_sides=False)  # magent2 puts red on the left
    steps = env.reset(seed=0)
    assert sum(t.num_agents for t in env.teams) == total
    assert [int(st.alive.sum()) for st in steps] == [total // 2] * 2
    assert [st.view.shape[0] for st in steps] == [total // 2] * 2
    ref = battle_v4.parallel_env(map_size=map_size).unwrapped
    for st, handle in zip(steps, ref.handles):
        np.testing.assert_array_equal(st.pos, ref.env.get_pos(handle))


@pytest.mark.parametrize("map_size, n", [(40, 50), (40, 152), (25, 7), (12, 5)])
def test_custom_counts_are_placed_inside_each_half(map_size, n):
    env = battle.batched_env(map_size=map_size, agents_per_team=n, random_sides=False)
    red, blue = (st.pos for st in env.reset(seed=0))
    assert len(red) == len(blue) == n
    cells = np.concatenate([red, blue])
    assert len(np.unique(cells, axis=0)) == 2 * n
    assert cells.min() >= 1 and cells.max() <= map_size - 2
    assert red[:, 0].max() < map_size / 2 < blue[:, 0].min()


def duel(preset: str, **overrides):
    """1 v 1 on map 12, red on the left: red walks right to blue (who stays) and attacks until
    blue dies."""
    env = battle.batched_env(map_size=12, agents_per_team=1, preset=preset, random_sides=False,
                             minimap_mode=False, **overrides)
    steps = env.reset(seed=0)
    base, view2attack = env.gridworld.get_view2attack(env.handles[0])
    history = []
    for _ in range(30):
        hit = np.argwhere((view2attack >= 0) & (steps[0].view[0, ..., 3] > 0))
        red = base + view2attack[tuple(hit[0])] if len(hit) else RIGHT
        steps, terminated, truncated, info = env.step([np.array([red]), np.array([STAY])])
        history.append((red >= base, steps[0].reward[0], steps[1].reward[0], info["kills"]))
        if terminated:
            assert not steps[1].alive[0] and steps[0].alive[0] and not truncated
            return history
    raise AssertionError("blue survived 30 steps of attacks")


@pytest.mark.parametrize("preset, hit, dead", [("mfrl", 0.2, -0.1), ("bmf", 0.5, -0.5)])
def test_preset_rewards_in_a_duel(preset, hit, dead):
    history = duel(preset)
    attacks = [h for h in history if h[0]]
    assert len(attacks) == 6  # 10 HP, 2 damage a hit, +0.1 HP a step
    for attacked, red, blue, kills in history[:-1]:
        want = -0.005 - 0.1 + hit if attacked else -0.005
        assert red == pytest.approx(want, abs=1e-6) and blue == pytest.approx(-0.005, abs=1e-6)
        assert kills == [0, 0]
    _, red, blue, kills = history[-1]
    # The killing blow earns the kill reward instead of the hit reward; the victim gets only
    # the dead penalty.
    assert red == pytest.approx(battle.KILL_REWARD - 0.1 - 0.005, abs=1e-6)
    assert blue == pytest.approx(dead, abs=1e-6)
    assert kills == [1, 0]


def test_reward_overrides_replace_the_preset_value():
    history = duel("mfrl", attack_opponent_reward=1.0, dead_penalty=-2.0, step_reward=0.0)
    assert history[0][1] == 0.0
    assert [h[1] for h in history if h[0]][0] == pytest.approx(-0.1 + 1.0, abs=1e-6)
    assert history[-1][2] == pytest.approx(-2.0)


def test_presets_differ_only_in_hit_and_death_terms():
    """Same seed and actions in a 12 v 12 melee: bmf − mfrl = 0.3 per hit − 0.4 per death."""
    rewards = {}
    for preset in ("mfrl", "bmf"):
        env = battle.batched_env(map_size=20, preset=preset, random_sides=False, minimap_mode=False)
        rng = np.random.default_rng(4)
        steps = env.reset(seed=4)
        per_step = []
        for _ in range(40):
            actions = []
            for spec, handle, st, move in zip(env.teams, env.handles, steps, (8, 4)):
                base, v2a = env.gridworld.get_view2attack(handle)
                n = spec.num_agents
                a = np.where(rng.random(n) < 0.6, move, rng.integers(0, base, n))
                agent, r, c = np.nonzero((v2a >= 0)[None] & (st.view[..., 3] > 0))
                a[agent] = base + v2a[r, c]
                actions.append(a)
            before = [st.alive for st in steps]
            steps, terminated, _, _ = env.step(actions)
            died = np.concatenate([b & ~st.alive for b, st in zip(before, steps)])
            per_step.append((np.concatenate([st.reward for st in steps]).astype(np.float64), died))
            if terminated:
                break
        rewards[preset] = per_step
    assert len(rewards["mfrl"]) == len(rewards["bmf"])
    hits = 0
    for (r_mfrl, died), (r_bmf, died_bmf) in zip(rewards["mfrl"], rewards["bmf"]):
        np.testing.assert_array_equal(died, died_bmf)  # the dynamics ignore rewards
        diff = r_bmf - r_mfrl
        for mask, allowed in ((~died, (0.0, 0.3)), (died, (-0.4, 0.3 - 0.4))):  # hit, then died
            ok = np.zeros(int(mask.sum()), dtype=bool)
            for v in allowed:
                ok |= np.isclose(diff[mask], v, atol=1e-6)
            assert ok.all(), diff[mask][~ok]
        hits += int(np.isclose(diff, 0.3, atol=1e-6).sum())
    assert hits > 0 and any(d.any() for _, d in rewards["mfrl"])


def test_dict_api_ends_everyone_when_a_team_is_wiped_out():
    pz = battle.parallel_env(map_size=12, agents_per_team=1, random_sides=False, minimap_mode=False)
    obs = pz.reset(seed=0)[0]
    base, view2attack = pz.unwrapped.env.get_view2attack(pz.unwrapped.handles[0])
    for _ in range(30):
        hit = np.argwhere((view2attack >= 0) & (obs["red_0"][..., 3] > 0))
        red = base + view2attack[tuple(hit[0])] if len(hit) else RIGHT
        obs, rewards, terms, _, _ = pz.step({"red_0": int(red), "blue_0": STAY})
        if terms["blue_0"]:
            break
    assert terms == {"red_0": True, "blue_0": True} and pz.agents == []
    assert rewards["red_0"] == pytest.approx(battle.KILL_REWARD - 0.105, abs=1e-6)


def test_pettingzoo_api_and_seed():
    parallel_api_test(battle.parallel_env(map_size=16, max_steps=30), num_cycles=40)
    parallel_seed_test(lambda: battle.parallel_env(map_size=16, max_steps=30), num_cycles=20)


@pytest.mark.parametrize("kwargs, match", [
    (dict(map_size=11), r"map_size=11 must be an integer >= 12"),
    (dict(map_size=40, agents_per_team=153),
     r"agents_per_team=153 .*map_size=40; valid range 1\.\.152"),
    (dict(map_size=12, agents_per_team=6), r"agents_per_team=6 .*valid range 1\.\.5"),
    (dict(agents_per_team=0), r"agents_per_team=0"),
    (dict(preset="paper"), r"preset='paper' is unknown; valid presets: \['bmf', 'mfrl'\]"),
    (dict(max_steps=0), r"max_steps=0"),
    (dict(left_team=1), r"left_team=1 is not valid with random_sides=True"),
    (dict(random_sides=False, left_team=2), r"left_team=2 .*expected 0 \(red\) or 1 \(blue\)"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        battle.batched_env(**kwargs)
    with pytest.raises(ValueError, match=match):
        battle.parallel_env(**kwargs)


def test_size_helpers():
    assert [battle.default_agents_per_team(m) for m in (40, 60, 80, 160)] == [64, 144, 256, 1024]
    assert battle.max_agents_per_team(40) == 152
    red, blue = battle.formation(40, 64)
    assert len(red) == len(blue) == 64 and red[0] == [1, 12, 0] and blue[0] == [23, 12, 0]
