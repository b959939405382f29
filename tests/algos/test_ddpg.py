"""The DDPG form of the AC family for continuous actions."""
import numpy as np
import pytest
import torch

from bmf_graph.algos import DDPG, make_algorithm
from bmf_graph.algos.base import TeamView
from bmf_graph.training.checkpoint import load_model, save_model
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import BatchedEnv, TeamSpec, TeamStep
from bmf_graph.training.rollout import play_episodes

BEST = 0.3


class Bandit(BatchedEnv):
    """One step per episode; each agent's reward is ``-(a - 0.3)^2`` of its 1-D action."""

    def __init__(self, n=8):
        self.teams = (TeamSpec("agents", n, (), 1, 1, action_range=(-1.0, 1.0)),)
        self.max_steps = 1

    def _step(self, reward):
        n = self.teams[0].num_agents
        pos = np.stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)], 1)
        return [TeamStep(np.zeros((n, 0), np.float32), np.ones((n, 1), np.float32), pos, np.ones(n, bool), reward)]

    def reset(self, seed=None):
        return self._step(np.zeros(self.teams[0].num_agents, np.float32))

    def step(self, actions):
        a = np.asarray(actions[0], np.float32).reshape(-1)
        return self._step(-(a - BEST) ** 2), True, False, {}

    def render(self):
        return np.zeros((1, 1, 3), np.uint8)


def test_actor_converges_to_the_bandit_optimum():
    torch.manual_seed(0)
    envs = [Bandit() for _ in range(4)]
    # Wide noise covers the whole Box, so the critic learns the parabola, not only near mu.
    cfg = AlgoConfig(name="mfac", network="mlp", sampling="team_steps", hidden=32, lr=1e-2, actor_lr=3e-3, learning_starts=4, update_every=1,
                     replay_ratio=16.0, batch_steps=8, noise_start=1.0, noise_end=1.0, tau=0.05)
    algo = make_algorithm(envs[0].teams[0], cfg, radius=1.5)
    assert isinstance(algo, DDPG)
    for round_ in range(60):
        play_episodes(envs, [algo], "cpu", seeds=list(range(4)), explore=0.5, learners={0: algo})
    view = TeamView(obs=torch.ones(8, 1), pos=torch.zeros(8, 2), alive=torch.ones(8, dtype=torch.bool),
                    a_prev=torch.zeros(8, 1), prev_obs=torch.ones(8, 1))
    action = algo.act(view, algo.observe(view), explore=None)
    assert action.shape == (8, 1)
    # 0.3 +- 0.05 over seeds 0-2; an untrained actor sits near 0 and a runaway one at the bound 1.
    assert torch.allclose(action, torch.full_like(action, BEST), atol=0.05), action.flatten()


def records(algo, b, n, seed):
    g = torch.Generator().manual_seed(seed)
    spec = algo.spec
    rec = {"obs": torch.randn(b, n, spec.obs_dim, generator=g),
           "action": torch.rand(b, n, spec.num_actions, generator=g) * 2 - 1,
           "reward": torch.randn(b, n, generator=g), "alive": torch.rand(b, n, generator=g) > 0.2,
           "mf": torch.rand(b, n, spec.num_actions, generator=g)}
    return rec


def test_target_is_target_critic_at_target_actor_and_next_context():
    torch.manual_seed(1)
    spec = TeamSpec("agents", 5, (), 3, 2, action_range=(-2.0, 2.0))
    algo = make_algorithm(spec, AlgoConfig(name="mfac", network="mlp", sampling="team_steps", hidden=8, gamma=0.9), radius=1.0)
    for p in algo.actor.parameters():  # online and target nets now differ
        p.data.add_(0.3)
    for p in algo.q.parameters():
        p.data.mul_(1.5)
    rec, nxt = records(algo, 3, 5, 0), records(algo, 3, 5, 1)
    with torch.no_grad():
        action = algo.actor_target(nxt["obs"], None)
        want = algo.q_target.net.head(torch.cat([algo.q_target.net.trunk(nxt["obs"]), action, nxt["mf"]], -1)).squeeze(-1)
    torch.testing.assert_close(algo.target_value(nxt, 0.0), want)
    loss, y, q = algo.td_loss(rec, nxt, 0.0)
    torch.testing.assert_close(y, rec["reward"] + 0.9 * nxt["alive"].float() * want)
    torch.testing.assert_close(q, algo.q(rec["obs"], rec["mf"], rec["action"]))
    torch.testing.assert_close(loss, ((q - y)[rec["alive"]] ** 2).mean())
    assert (action.abs() <= 2.0).all()


def test_noise_schedule_and_clipping():
    spec = TeamSpec("agents", 400, (), 2, 2, action_range=(0.0, 1.0))
    cfg = AlgoConfig(name="ac", noise_start=0.8, noise_end=0.1, explore_fraction=0.5)
    algo = make_algorithm(spec, cfg, radius=1.0)
    assert [algo.exploration(p) for p in (0.0, 0.25, 0.5, 1.0)] == pytest.approx([0.8, 0.45, 0.1, 0.1])
    assert algo.exploration_stats(0.25) == {"charts/noise": pytest.approx(0.45)}
    view = TeamView(obs=torch.randn(400, 2), pos=torch.zeros(400, 2), alive=torch.ones(400, dtype=torch.bool),
                    a_prev=torch.zeros(400, 2), prev_obs=torch.zeros(400, 2))
    rec = algo.observe(view)
    greedy = algo.act(view, rec, None)
    assert torch.equal(algo.act(view, rec, None), greedy) and ((greedy > 0.2) & (greedy < 0.8)).all()
    small = algo.act(view, rec, 1.0) - greedy  # std 0.1 * half-width 0.5: never reaches the bounds here
    assert small.std() == pytest.approx(0.05, rel=0.1) and small.mean().abs() < 0.01
    wide = algo.act(view, rec, 0.0)  # std 0.8 * 0.5: clipped to the Box
    assert ((wide >= 0) & (wide <= 1)).all() and (wide == 0).any() and (wide == 1).any()


def test_mean_action_vectors_over_radius_neighbours_match_brute_force():
    torch.manual_seed(3)
    n, copies, radius = 30, 2, 0.4
    spec = TeamSpec("agents", n, (), 4, 3, action_range=(-1.0, 1.0))
    algo = make_algorithm(spec, AlgoConfig(name="mfac"), radius=radius)
    pos, a_prev = torch.rand(copies * n, 2), torch.rand(copies * n, 3) * 2 - 1
    alive = torch.rand(copies * n) > 0.25
    batch = torch.arange(copies).repeat_interleave(n)
    view = TeamView(obs=torch.randn(copies * n, 4), pos=pos, alive=alive, a_prev=a_prev * alive[:, None],
                    prev_obs=torch.zeros(copies * n, 4), batch=batch, num_envs=copies)
    mf = algo.observe(view)["mf"]
    for i in range(copies * n):
        near = [j for j in range(copies * n) if j != i and alive[j] and batch[j] == batch[i]
                and torch.dist(pos[i], pos[j]) < radius]
        want = a_prev[near].mean(0) if near else torch.zeros(3)
        if alive[i]:
            torch.testing.assert_close(mf[i], want)


def test_bmf_ac_learns_on_action_vectors_and_checkpoints_round_trip(tmp_path):
    torch.manual_seed(4)
    envs = [Bandit(6) for _ in range(2)]
    cfg = AlgoConfig(name="bmf_ac", network="mlp", sampling="team_steps", hidden=8, num_groups=2, learning_starts=2, update_every=1, batch_steps=4,
                     vae_every=1)
    algo = make_algorithm(envs[0].teams[0], cfg, radius=1.5)
    for _ in range(4):
        logs = play_episodes(envs, [algo], "cpu", seeds=[0, 1], explore=0.0, learners={0: algo})[0].logs
    assert {"losses/q", "losses/policy", "losses/vae_rec"} <= set(logs)
    assert algo.buffer.data["action"].dtype == torch.float32 and algo.buffer.data["action"].shape[1:] == (6, 1)
    loaded = load_model(save_model(tmp_path / "m", algo))
    view = TeamView(obs=torch.ones(6, 1), pos=torch.zeros(6, 2), alive=torch.ones(6, dtype=torch.bool),
                    a_prev=torch.zeros(6, 1), prev_obs=torch.ones(6, 1))
    assert isinstance(loaded, DDPG) and loaded.spec.action_range == (-1.0, 1.0)
    torch.testing.assert_close(loaded.act(view, loaded.observe(view), None), algo.act(view, algo.observe(view), None))


def test_discrete_only_settings_are_rejected_for_continuous_teams():
    spec = TeamSpec("agents", 4, (), 2, 2, action_range=(-1.0, 1.0))
    with pytest.raises(ValueError, match="algo.name='mfq' needs discrete actions"):
        make_algorithm(spec, AlgoConfig(name="mfq"), radius=1.0)
    with pytest.raises(ValueError, match="algo.critic='value' has no continuous-action form"):
        make_algorithm(spec, AlgoConfig(name="ac", critic="value"), radius=1.0)
    with pytest.raises(TypeError, match="no action distribution"):
        view = TeamView(obs=torch.ones(4, 2), pos=torch.zeros(4, 2), alive=torch.ones(4, dtype=torch.bool),
                        a_prev=torch.zeros(4, 2), prev_obs=torch.ones(4, 2))
        make_algorithm(spec, AlgoConfig(name="ac"), radius=1.0).policy(view, {}, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ddpg_updates_on_cuda_with_vmas_copies():
    pytest.importorskip("vmas")
    from bmf_graph.envs.vmas import env_copies

    torch.manual_seed(5)
    copies = env_copies(4, n_agents=20, max_steps=10, device="cuda")
    cfg = AlgoConfig(name="bmf_ac", hidden=16, learning_starts=8, update_every=1, batch_steps=4)
    algo = make_algorithm(copies.teams[0], cfg, radius=0.3).to("cuda")
    copies.pin_memory()
    results = play_episodes(copies, [algo], "cuda", seeds=[0, 1, 2, 3], explore=0.2, learners={0: algo})
    assert "losses/q" in results[0].logs and np.isfinite(results[0].logs["losses/q"]).all()
    assert algo.buffer.data["obs"].device.type == "cuda"
    copies.close()
