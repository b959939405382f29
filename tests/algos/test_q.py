"""The Q family's one learning rule: exploration schedules, acting distributions, both targets
against brute force, the same rule whatever the critic input, and the replay ratio."""
import math

import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.algos.base import TeamView, entropy, mean_entropy, piecewise_linear, sample_rows
from bmf_graph.algos.mfq import MeanFieldInteraction
from bmf_graph.algos.q import QLearner
from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import pursuit
from bmf_graph.envs.base import TeamSpec
from bmf_graph.training.rollout import play_episode

SPEC = TeamSpec("t", num_agents=5, view_shape=(), feature_dim=6, num_actions=4)


def learner(name="q", **kw) -> QLearner:
    torch.manual_seed(0)
    return make_algorithm(SPEC, AlgoConfig(name=name, hidden=8, **kw), radius=1.5)


def view(n=5, seed=0) -> TeamView:
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, SPEC.obs_dim, generator=gen)
    return TeamView(obs=obs, pos=torch.rand(n, 2, generator=gen), alive=torch.ones(n, dtype=torch.bool),
                    a_prev=torch.zeros(n, SPEC.num_actions), prev_obs=obs)


@pytest.mark.parametrize("progress, epsilon", [(0.0, 1.0), (0.4, 0.6), (0.8, 0.2), (0.9, 0.15), (1.0, 0.1)])
def test_epsilon_follows_mfrl_schedule(progress, epsilon):
    """1 at the start, 0.2 at 80 % of the episodes, 0.1 at the end, linear in between."""
    algo = learner()
    assert algo.exploration(progress) == pytest.approx(epsilon)
    assert algo.exploration_stats(progress) == {"charts/epsilon": pytest.approx(epsilon)}


def test_temperature_schedule_and_piecewise_linear():
    algo = learner(exploration="boltzmann", temperature_start=2.0, temperature_end=0.5, explore_fraction=0.5)
    assert [algo.exploration(p) for p in (0.0, 0.25, 0.5, 1.0)] == pytest.approx([2.0, 1.25, 0.5, 0.5])
    assert algo.exploration_stats(0.25) == {"charts/temperature": pytest.approx(1.25)}
    knots = [(0.0, 1.0), (0.8, 0.2), (1.0, 0.1)]
    assert piecewise_linear(-1.0, knots) == 1.0 and piecewise_linear(2.0, knots) == 0.1
    assert piecewise_linear(1.0, [(0.0, 3.0), (0.0, 1.0)]) == 1.0  # a zero-length decay: the end value


def test_policy_is_the_acting_distribution():
    v = view()
    for exploration in ("epsilon", "boltzmann"):
        algo = learner("q", exploration=exploration, epsilon_scope="agent")
        rec = algo.observe(v)
        q = algo.q(v.obs, rec["mean_action"]).detach()
        greedy = algo.policy(v, rec, None)
        assert torch.equal(greedy, torch.nn.functional.one_hot(q.argmax(-1), 4).float())
        probs = algo.policy(v, rec, 0.5)
        assert torch.allclose(probs.sum(-1), torch.ones(5))
        if exploration == "epsilon":  # ε = 0.5 at half of training
            want = 0.5 * greedy + 0.5 / 4
        else:
            want = torch.softmax(q / algo.exploration(0.5), -1)
        assert torch.allclose(probs, want)
        torch.manual_seed(3)
        acts = algo.act(v, rec, 0.5)
        torch.manual_seed(3)  # act draws from policy (greedy ties draw first)
        assert torch.equal(acts, sample_rows(algo.policy(v, rec, 0.5)))
    uniform = RandomPolicy(SPEC).policy(v, {}, 0.3)
    assert torch.allclose(uniform, torch.full((5, 4), 0.25))
    assert float(mean_entropy(uniform, v.alive)) == pytest.approx(math.log(4))
    assert math.isnan(mean_entropy(uniform, torch.zeros(5, dtype=torch.bool)))
    assert entropy(torch.tensor([[1.0, 0.0], [0.5, 0.5]])).tolist() == pytest.approx([0.0, math.log(2)])


def batch(seed=0, b=3, n=5, mf=True):
    gen = torch.Generator().manual_seed(seed)

    def record():
        rec = {"obs": torch.randn(b, n, SPEC.obs_dim, generator=gen),
               "action": torch.randint(4, (b, n), generator=gen),
               "reward": torch.randn(b, n, generator=gen),
               "alive": torch.rand(b, n, generator=gen) > 0.2}
        if mf:
            rec["mf"] = torch.softmax(torch.randn(b, n, 4, generator=gen), -1)
        return rec
    return record(), record()


@pytest.mark.parametrize("target", ["double_q", "expectation"])
@pytest.mark.parametrize("exploration", ["epsilon", "boltzmann"])
def test_targets_equal_brute_force(target, exploration):
    algo = learner("mfq", target=target, exploration=exploration, gamma=0.9)
    with torch.no_grad():  # a target network that differs from the online one
        for p in algo.q_target.parameters():
            p.add_(0.3 * torch.randn_like(p))
    rec, nxt = batch()
    loss, y, q = algo.td_loss(rec, nxt, explore=0.5)
    want_y = torch.zeros(3, 5)
    level = algo.exploration(0.5)
    for b in range(3):
        for i in range(5):
            o, mf = nxt["obs"][b, i], nxt["mf"][b, i]
            q_online = algo.q(o[None], mf[None])[0].detach()
            q_bar = algo.q_target(o[None], mf[None])[0].detach()
            if target == "double_q":
                v = q_bar[q_online.argmax()]
            elif exploration == "epsilon":
                pi = torch.full((4,), level / 4)
                pi[q_online.argmax()] += 1 - level
                v = (pi * q_bar).sum()
            else:
                v = (torch.softmax(q_online / level, -1) * q_bar).sum()
            want_y[b, i] = rec["reward"][b, i] + 0.9 * float(nxt["alive"][b, i]) * v
    assert torch.allclose(y, want_y, atol=1e-6)
    want_q = algo.q(rec["obs"], rec["mf"]).gather(-1, rec["action"][..., None])[..., 0]
    assert torch.allclose(q, want_q)
    assert loss.item() == pytest.approx(((want_q - want_y)[rec["alive"]] ** 2).mean().item(), rel=1e-6)


class ZeroWidthMeanField(MeanFieldInteraction):
    """MFQ's interaction with its critic input cut to zero width."""

    def __init__(self, spec, cfg, radius):
        super().__init__(spec, cfg, radius)
        self.dim = 0

    def mean_action(self, rec, target=False):
        return super().mean_action(rec, target)[..., :0]


@pytest.mark.parametrize("target", ["double_q", "expectation"])
def test_q_and_zero_width_mfq_share_target_and_loss(target):
    """The rule does not depend on the interaction: ``mfq`` with an empty mean action computes
    ``q``'s target and loss on the same batch (v1 bootstrapped ``q`` and ``mfq`` differently)."""
    cfg = AlgoConfig(name="mfq", hidden=8, target=target)
    q_algo = learner("q", target=target)
    mfq = QLearner(SPEC, cfg, 1.5, ZeroWidthMeanField(SPEC, cfg, 1.5))
    mfq.load_state_dict(q_algo.state_dict())
    with torch.no_grad():
        for a, b in zip(q_algo.q_target.parameters(), mfq.q_target.parameters()):
            noise = 0.3 * torch.randn_like(a)
            a.add_(noise)
            b.add_(noise)
    rec, nxt = batch(seed=4)
    loss_q, y_q, _ = q_algo.td_loss(rec, nxt, explore=0.3)
    loss_mf, y_mf, _ = mfq.td_loss(rec, nxt, explore=0.3)
    assert torch.equal(y_q, y_mf) and torch.equal(loss_q, loss_mf)


def test_replay_ratio_samples_each_agent_transition_about_twice(monkeypatch):
    """Credit ``ratio * alive`` per recorded step, a gradient step costs ``batch_steps * mean
    alive per record``: with every agent alive, ``ratio * steps / batch_steps`` updates."""
    env = pursuit.batched_env(map_size=20, num_predators=6, num_prey=5, max_steps=41)  # nobody dies
    cfg = AlgoConfig(name="q", hidden=8, learning_starts=1, update_every=1, batch_steps=4, replay_ratio=2.0,
                     sampling="team_steps")
    algo = make_algorithm(env.teams[0], cfg, radius=1.5)
    calls = []
    monkeypatch.setattr(QLearner, "update", lambda self, explore: calls.append(explore) or {})
    result = play_episode(env, [algo, RandomPolicy(env.teams[1])], "cpu", seed=0, explore=0.5, learners={0: algo})
    # After step t the credit earned is 2 * 6 * t and an update costs 4 * 6: t // 2 updates.
    assert result.steps == 41 and len(calls) == 20 and calls[0] == 0.5
    assert algo.credit == pytest.approx(2.0 * 6 * 41 - 24 * 20)
    assert algo.batch_cost() == pytest.approx(4 * 6)


def test_batch_cost_uses_mean_alive_agents_of_sampled_records():
    algo = learner("q", batch_steps=2, sampling="team_steps")
    v = view()
    rec = algo.observe(v)
    for alive in (5, 3, 1):  # three records with successors, then the closing record
        v.alive = torch.arange(5) < alive
        algo.record(v, rec, torch.zeros(5, dtype=torch.long), first=alive == 5)
    algo.end_episode(v, rec, terminated=True, explore=0.0)
    assert algo.credit == pytest.approx(2.0 * (5 + 3 + 1))
    assert algo.batch_cost() == pytest.approx(2 * (5 + 3 + 1) / 3)
    agents = learner("q", batch_size=6)                        # MFRL's rule: a fixed number of agent transitions
    agents.record(v, rec, torch.zeros(5, dtype=torch.long), first=True)
    agents.record(v, rec, torch.zeros(5, dtype=torch.long), first=False)
    assert agents.batch_cost() == 6.0


def test_agent_minibatches_sample_each_agent_transition_about_twice(monkeypatch):
    """MFRL's rule: credit ``ratio * alive`` per recorded step, a gradient step costs
    ``batch_size`` agent transitions: ``2 * 6 * 41 / 12`` = 41 updates in a 41-step episode."""
    env = pursuit.batched_env(map_size=20, num_predators=6, num_prey=5, max_steps=41)  # nobody dies
    cfg = AlgoConfig(name="q", learning_starts=1, update_every=1, batch_size=12, replay_ratio=2.0)
    algo = make_algorithm(env.teams[0], cfg, radius=1.5)
    calls = []
    monkeypatch.setattr(QLearner, "update", lambda self, explore: calls.append(explore) or {})
    result = play_episode(env, [algo, RandomPolicy(env.teams[1])], "cpu", seed=0, explore=0.5, learners={0: algo})
    assert result.steps == 41 and len(calls) == 41       # the first record's credit is spent once it has a successor
    assert algo.credit == pytest.approx(2.0 * 6 * 41 - 12 * 41)
