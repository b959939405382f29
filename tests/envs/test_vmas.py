"""The VMAS adapter against VMAS's own outputs for the same seed and actions."""
import numpy as np
import pytest
import torch

vmas = pytest.importorskip("vmas")

from bmf_graph.envs import make_env  # noqa: E402
from bmf_graph.envs.vmas import VmasCopies, batched_env, env_copies  # noqa: E402
from bmf_graph.envs.vmas_crowd import OBS_DIM, CrowdNavigation  # noqa: E402
from bmf_graph.training.rollout import play_episodes  # noqa: E402


def reference(scenario, num_envs, seed, **kwargs):
    env = vmas.make_env(scenario, num_envs=num_envs, device="cpu", continuous_actions=True, clamp_actions=True,
                        **kwargs)
    obs = env.reset(seed=seed)
    return env, obs


def stacked(tensors):
    return torch.stack(list(tensors), dim=1).numpy()


def test_copies_match_vmas_outputs():
    n, e, seed = 6, 3, 11
    rng = np.random.default_rng(0)
    ours = env_copies(e, n_agents=n, max_steps=50)
    ours.reset([seed, 1, 2], [(0, e)])
    first = ours.result((0, e))
    env, obs = reference(CrowdNavigation(), e, seed, n_agents=n)
    np.testing.assert_allclose(ours.obs(0, (0, e), first.parity), stacked(obs).reshape(e * n, -1), rtol=0, atol=0)
    np.testing.assert_allclose(first.pos[0], stacked(a.state.pos for a in env.agents).reshape(e * n, 2))
    for t in range(4):
        actions = rng.uniform(-1.5, 1.5, (e * n, 2)).astype(np.float32)  # beyond the Box: both clamp
        ours.step((0, e), [actions], t)
        got = ours.result((0, e))
        obs, rewards, dones, _ = env.step([torch.as_tensor(actions.reshape(e, n, 2)[:, i]) for i in range(n)])
        np.testing.assert_allclose(ours.obs(0, (0, e), got.parity), stacked(obs).reshape(e * n, -1))
        np.testing.assert_allclose(got.pos[0], stacked(a.state.pos for a in env.agents).reshape(e * n, 2))
        np.testing.assert_allclose(got.rewards[0], stacked(rewards).reshape(-1), rtol=1e-6)
        np.testing.assert_allclose(got.reward[:, 0], stacked(rewards).sum(1), rtol=1e-5)
        assert got.alive[0].all() and not got.ended.any()


def test_batched_env_matches_builtin_navigation():
    """Any VMAS scenario with one space for all agents: here VMAS's own ``navigation``."""
    env = batched_env("navigation", n_agents=3, max_steps=2)
    spec = env.teams[0]
    assert (spec.num_agents, spec.num_actions, spec.action_range) == (3, 2, (-1.0, 1.0))
    step = env.reset(seed=5)[0]
    ref, obs = reference("navigation", 1, 5, n_agents=3)
    np.testing.assert_allclose(step.obs(), stacked(obs)[0])
    actions = np.array([[0.5, -0.2], [1.0, 1.0], [-0.3, 0.0]], np.float32)
    (step,), terminated, truncated, _ = env.step([actions])
    obs, rewards, _, _ = ref.step([torch.as_tensor(actions[i])[None] for i in range(3)])
    np.testing.assert_allclose(step.obs(), stacked(obs)[0])
    np.testing.assert_allclose(step.reward, stacked(rewards)[0])
    np.testing.assert_allclose(step.pos, stacked(a.state.pos for a in ref.agents)[0])
    assert not terminated and not truncated
    assert env.step([actions])[2]  # truncated after max_steps = 2


def test_observation_size_does_not_grow_with_agents():
    assert make_env("vmas", {"n_agents": 4}).teams[0].feature_dim == OBS_DIM
    assert make_env("vmas", {"n_agents": 150}).teams[0].feature_dim == OBS_DIM


def test_crowd_counts_and_offsets_by_brute_force():
    env = batched_env(n_agents=7)
    scenario = env.sim.env.scenario
    pos = torch.rand(2, 7, 2) * 0.3
    count, offset = scenario.crowd(pos)
    for b in range(2):
        for i in range(7):
            near = [j for j in range(7) if j != i and torch.dist(pos[b, i], pos[b, j]) < scenario.crowd_radius]
            assert count[b, i] == len(near)
            want = (pos[b, near] - pos[b, i]).mean(0) if near else torch.zeros(2)
            torch.testing.assert_close(offset[b, i], want)


def test_ended_copies_keep_their_arrays_and_stop_earning():
    copies = env_copies(3, n_agents=4, max_steps=2)
    copies.reset([0, 1], [(0, 2)])  # copy 2 idle
    copies.result((0, 2))
    zeros = [np.zeros((8, 2), np.float32)]
    for t in range(2):
        copies.step((0, 2), zeros, t)
        last = copies.result((0, 2))
    assert last.ended.all() and not last.terminated.any()
    before = copies.obs(0, (0, 2), last.parity).copy()
    copies.step((0, 2), [np.ones((8, 2), np.float32)], 2)
    after = copies.result((0, 2))
    np.testing.assert_array_equal(copies.obs(0, (0, 2), after.parity), before)
    np.testing.assert_array_equal(after.pos[0], last.pos[0])
    assert not after.rewards[0].any()


def test_episode_loop_plays_vmas_copies_with_action_vectors():
    copies = env_copies(2, n_agents=5, max_steps=3)

    class Still:
        def begin_episode(self):
            pass

        def observe(self, view):
            return {}

        def act(self, view, rec, explore):
            return torch.zeros(view.obs.shape[0], 2)

    results = play_episodes(copies, [Still()], "cpu", [4, 5])
    assert [r.steps for r in results] == [3, 3] and all(np.isfinite(r.returns).all() for r in results)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="parts"):
        VmasCopies(2, n_agents=2).reset([0, 1], [(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="max_steps=0"):
        batched_env(n_agents=2, max_steps=0)
    with pytest.raises(ValueError, match="num_envs=0"):
        env_copies(0, n_agents=2)
    with pytest.raises(ValueError, match="scenario=''"):
        batched_env("")
    with pytest.raises(ValueError, match="n_agent"):
        batched_env(n_agent=5)


@pytest.mark.parametrize("algo", ["ac", "mfac", "bmf_ac", "gat_mf"])
def test_train_entry_point_runs_the_ddpg_forms_on_the_vmas_conf(tmp_path, algo):
    from bmf_graph.algos import DDPG
    from bmf_graph.training.checkpoint import load_model
    from bmf_graph.config import load_config
    from bmf_graph.training.logging import read_metrics
    from bmf_graph.training.trainer import train
    from tiny_runs import FAST

    cfg = load_config(["conf=vmas_crowd_navigation", f"algo={algo}", f"runs_dir={tmp_path}", *FAST,
                       "env.kwargs.n_agents=8", "env.kwargs.max_steps=6", "train.envs=2", "train.episodes=4"])
    run_dir = train(cfg)
    rows = read_metrics(run_dir)
    assert [r["episode"] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert rows[0]["charts/noise"] == pytest.approx(cfg.algo.noise_start)
    assert all(np.isfinite(r["charts/return"]) and "losses/policy" in r for r in rows[2:])
    assert isinstance(load_model(run_dir / "checkpoints" / "model_final.safetensors"), DDPG)
