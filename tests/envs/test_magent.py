"""MagentBatchedEnv against magent2's dict API: same arrays, stable slots, masks, limits."""
from __future__ import annotations

import numpy as np
import pytest

from bmf_graph.envs import battle, make_env, pursuit
from bmf_graph.envs.magent import ID_BITS, MagentBatchedEnv

# Battle on map 20 (12 v 12, 8 cells apart): the left team drifts right (+2, 0), the right one left.
# Pursuit: predators stay put unless a prey is in reach, prey wander.
CASES = {
    "battle": (battle, dict(map_size=20, max_steps=60), (8, 4)),
    "pursuit": (pursuit, dict(map_size=30, max_steps=40), (2, 4)),
}


def attack_policy(env: MagentBatchedEnv, steps, rng: np.random.Generator, moves) -> list[np.ndarray]:
    """Attack an enemy in reach if any, else ``moves[t]`` (p = 0.6) or a random move."""
    actions = []
    for spec, handle, st, move in zip(env.teams, env.handles, steps, moves):
        base, view2attack = env.gridworld.get_view2attack(handle)
        a = np.where(rng.random(spec.num_agents) < 0.6, move, rng.integers(0, base, spec.num_agents))
        if base < spec.num_actions:
            enemy = 4 if spec.view_shape[2] == 7 else 3  # the minimap adds a channel per team
            agent, r, c = np.nonzero((view2attack >= 0)[None] & (st.view[..., enemy] > 0))
            a[agent] = base + view2attack[r, c]
        actions.append(a)
    return actions


def slot_of(env: MagentBatchedEnv, agent: str) -> tuple[int, int]:
    name, slot = agent.rsplit("_", 1)
    return [t.name for t in env.teams].index(name), int(slot)


def assert_same(env: MagentBatchedEnv, pz, steps, obs, rewards=None, terminations=None) -> None:
    """Batched arrays equal the dict API's observations, rewards, live agents and positions."""
    offset = 0
    for spec, handle, st in zip(env.teams, env.handles, steps):
        channels = spec.view_shape[2]
        live = np.flatnonzero(st.alive)
        for s in live:
            o = obs[f"{spec.name}_{s}"]
            np.testing.assert_array_equal(o[..., :channels], st.view[s])
            # The id bits are the slot within the team (the dict API has the engine's global id).
            np.testing.assert_array_equal(o[0, 0, channels + ID_BITS:], st.feature[s, ID_BITS:])
            np.testing.assert_array_equal(st.feature[s, :ID_BITS], (s >> np.arange(ID_BITS)) & 1)
        dead = ~st.alive
        assert not st.view[dead].any() and not st.feature[dead].any()
        # Slot s is magent2 agent id offset + s for the whole episode.
        gw = pz.unwrapped.env
        slots = gw.get_agent_id(handle) - offset
        np.testing.assert_array_equal(np.sort(slots), live)
        np.testing.assert_array_equal(st.pos[slots], gw.get_pos(handle))
        offset += spec.num_agents
    if rewards is not None:
        got = np.concatenate([st.reward for st in steps])
        want = np.zeros_like(got)
        for agent, r in rewards.items():
            t, s = slot_of(env, agent)
            want[sum(x.num_agents for x in env.teams[:t]) + s] = r
        np.testing.assert_array_equal(got, want)
        alive_names = {a for a, done in terminations.items() if not done}
        if not alive_names:  # a team was wiped out: the dict API ends everyone's episode
            assert any(not st.alive.any() for st in steps)
            return
        assert alive_names == {f"{spec.name}_{s}" for spec, st in zip(env.teams, steps)
                               for s in np.flatnonzero(st.alive)}


@pytest.mark.parametrize("task", sorted(CASES))
def test_batched_equals_dict_api(task):
    module, kwargs, moves = CASES[task]
    env = module.batched_env(**kwargs)
    pz = module.parallel_env(extra_features=True, **kwargs)
    rng = np.random.default_rng(0)
    steps = env.reset(seed=3)
    obs, _ = pz.reset(seed=3)
    assert_same(env, pz, steps, obs)
    if getattr(env, "left_team", 0) == 1:  # Battle drew blue on the left: both drift the other way
        moves = moves[::-1]
    deaths, events = 0, 0
    for _ in range(kwargs["max_steps"]):
        actions = attack_policy(env, steps, rng, moves)
        todo = {}
        for agent in pz.agents:
            t, s = slot_of(env, agent)
            todo[agent] = int(actions[t][s])
        before = [st.alive.copy() for st in steps]
        steps, terminated, truncated, info = env.step(actions)
        obs, rewards, terms, truncs, _ = pz.step(todo)
        assert_same(env, pz, steps, obs, rewards, terms)
        died = [int((b & ~st.alive).sum()) for b, st in zip(before, steps)]
        assert info["kills"] == [died[1], died[0]]
        deaths += sum(died)
        events += sum(info.get("tags", info["kills"]))
        assert all(truncs.values()) == truncated
        if terminated or truncated:
            break
    assert events > 0  # the rollout exercised kills (battle) or tags (pursuit)
    if task == "battle":
        assert deaths > 0


def test_dead_slots_stay_masked_and_keep_position():
    env = battle.batched_env(map_size=20, max_steps=60, random_sides=False)  # red left, drifting right
    rng = np.random.default_rng(1)
    steps = env.reset(seed=5)
    died_at: dict[tuple[int, int], np.ndarray] = {}
    for _ in range(60):
        steps, terminated, truncated, _ = env.step(attack_policy(env, steps, rng, (8, 4)))
        for t, st in enumerate(steps):
            for s in np.flatnonzero(~st.alive):
                key = (t, int(s))
                if key in died_at:  # died in an earlier step: nothing changes any more
                    np.testing.assert_array_equal(st.pos[s], died_at[key])
                    assert st.reward[s] == 0
                died_at.setdefault(key, st.pos[s].copy())
        if terminated or truncated:
            break
    assert len(died_at) > 0
    for t, st in enumerate(steps):
        assert st.alive.sum() == env.teams[t].num_agents - sum(k[0] == t for k in died_at)


def test_returned_arrays_are_not_overwritten_by_later_steps():
    env = battle.batched_env(map_size=20)
    first = env.reset(seed=0)[0]
    kept = first.view.copy(), first.feature.copy()
    rng = np.random.default_rng(0)
    after = env.step([rng.integers(0, 13, t.num_agents) for t in env.teams])[0][0]
    env.step([rng.integers(0, 13, t.num_agents) for t in env.teams])
    np.testing.assert_array_equal(first.view, kept[0])
    np.testing.assert_array_equal(first.feature, kept[1])
    assert not np.array_equal(after.feature, kept[1])  # last action / reward changed


def test_step_limit_truncates_on_both_paths():
    env = battle.batched_env(map_size=16, max_steps=3)
    pz = battle.parallel_env(map_size=16, max_steps=3)
    pz.reset(seed=0)
    stay = [np.full(t.num_agents, 6) for t in env.teams]
    for _ in range(2):  # two full episodes: reset starts over
        env.reset(seed=0)
        flags = [env.step(stay)[1:3] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]
        assert env.num_steps == 3
        with pytest.raises(RuntimeError, match="reset"):
            env.step(stay)
    for k in range(3):
        truncs = pz.step({a: 6 for a in pz.agents})[3]
        assert all(truncs.values()) == (k == 2)
    assert pz.agents == []


def test_bad_actions_raise():
    env = battle.batched_env(map_size=16)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step([np.zeros(t.num_agents, int) for t in env.teams])
    env.reset(seed=0)
    n = env.teams[0].num_agents
    with pytest.raises(ValueError, match="expected 2"):
        env.step([np.zeros(n, int)])
    with pytest.raises(ValueError, match=r"shape \(3,\), expected"):
        env.step([np.zeros(3, int), np.zeros(n, int)])
    with pytest.raises(ValueError, match="must lie in 0..20"):
        env.step([np.full(n, 21), np.zeros(n, int)])
    with pytest.raises(ValueError, match="max_steps"):
        MagentBatchedEnv(battle.parallel_env(map_size=16), ("red", "blue"), 0, ((0, 0, 0),) * 2)


@pytest.mark.parametrize("task", sorted(CASES))
def test_render_draws_walls_and_every_agent(task):
    module, kwargs, _ = CASES[task]
    env = module.batched_env(cell_px=3, **kwargs)
    steps = env.reset(seed=2)
    frame = env.render()
    side = kwargs["map_size"] * 3
    assert frame.shape == (side, side, 3) and frame.dtype == np.uint8
    assert (frame[0, 0] == (90, 90, 90)).all() and (frame[-1, -1] == (90, 90, 90)).all()
    for color, size, st in zip(env.colors, env.body_sizes, steps):
        pixels = np.all(frame == np.asarray(color, np.uint8), axis=-1).sum()
        assert pixels == st.alive.sum() * size * size * 9
    pz = module.parallel_env(render_mode="rgb_array", **kwargs)
    pz.reset(seed=2)
    big = pz.render()
    cell = big.shape[0] // kwargs["map_size"]
    np.testing.assert_array_equal(big[::cell, ::cell], frame[::3, ::3])


@pytest.mark.parametrize("task", ["battle", "pursuit"])
def test_id_features_do_not_tell_the_teams_apart(task):
    """A model sees the same kind of input whichever team it plays: slot s of every team carries
    the same id bits, after reset and after deaths (dead slots stay zero)."""
    env = make_env(task, {"map_size": 20} if task == "battle" else {"map_size": 25})
    steps = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(30):
        expected = [((np.arange(s.num_agents)[:, None] >> np.arange(ID_BITS)) & 1) * st.alive[:, None]
                    for s, st in zip(env.teams, steps)]
        for want, st in zip(expected, steps):
            np.testing.assert_array_equal(st.feature[:, :ID_BITS], want)
        steps, terminated, truncated, _ = env.step([rng.integers(0, s.num_actions, s.num_agents) for s in env.teams])
        if terminated or truncated:
            break
    env.close()
