"""The critic input recomputed from replay equals the one the agents acted on."""
import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.algos.ac import gae
from bmf_graph.algos.base import TeamView
from bmf_graph.algos.random_policy import RandomPolicy
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import battle, firefighter
from bmf_graph.training.rollout import play_episode


@pytest.mark.parametrize("name", ["mfq", "gat_mf", "bmf_q"])
def test_replayed_critic_input_matches_acting_time(name):
    torch.manual_seed(0)
    env = firefighter.batched_env(num_firefighters=16, max_steps=12)
    cfg = AlgoConfig(name=name, hidden=16, num_groups=3, group_interval=2, buffer_size=1024)
    algo = make_algorithm(env.teams[0], cfg, radius=1.5)
    seen = []
    play_episode(env, [algo], "cpu", seed=0, explore=0.5, learners={0: algo},
                 on_step=lambda t, views, recs, actions: seen.append(recs[0]["mean_action"].clone()))
    rec = {k: v[: len(seen)] for k, v in algo.buffer.data.items()}
    with torch.no_grad():
        replayed = algo.interaction.mean_action(rec)
    assert replayed.shape == (len(seen), 16, algo.interaction.dim)
    assert torch.allclose(replayed, torch.stack(seen), atol=1e-6)


def test_gat_whole_team_attention_per_copy_equals_the_edge_list():
    """At radius inf GAT-MF attends per copy over its whole team (batched products): the same
    values as its layer on the edge list of every alive pair of a copy, acting and replayed."""
    torch.manual_seed(0)
    spec = battle.batched_env(map_size=16, agents_per_team=6, minimap_mode=False).teams[0]
    algo = make_algorithm(spec, AlgoConfig(name="gat_mf", hidden=16), radius=float("inf"))
    interaction = algo.interaction
    assert interaction.whole_team
    c, n = 3, spec.num_agents
    obs, pos = torch.rand(c * n, spec.obs_dim), torch.rand(c * n, 2) * 16
    a_prev = torch.nn.functional.one_hot(torch.randint(spec.num_actions, (c * n,)), spec.num_actions).float()
    alive = torch.rand(c * n) < 0.7
    view = TeamView(obs=obs, pos=pos, alive=alive, a_prev=a_prev * alive.unsqueeze(1), prev_obs=obs, num_envs=c,
                    batch=torch.arange(c).repeat_interleave(n))
    with torch.no_grad():
        acted = interaction.observe(view)["mean_action"]
        edges = interaction.attention(view.obs, view.a_prev, interaction.graph(view))
        rec = {"obs": obs.view(c, n, -1), "pos": pos.view(c, n, 2), "alive": alive.view(c, n),
               "a_prev": view.a_prev.view(c, n, -1)}
        replayed = interaction.mean_action(rec).reshape(c * n, -1)
    assert edges.abs().sum() > 0 and torch.allclose(acted, edges, atol=1e-6)
    assert torch.allclose(replayed, edges, atol=1e-6)


def test_bmf_critic_input_is_intra_then_inter():
    env = firefighter.batched_env(num_firefighters=10)
    algo = make_algorithm(env.teams[0], AlgoConfig(name="bmf_q", hidden=8, num_groups=2), radius=1.5)
    recs = []
    play_episode(env, [algo], "cpu", seed=1, explore=0.0, max_steps=3,
                 on_step=lambda t, views, r, a: recs.append((views[0], r[0])))
    view, rec = recs[-1]
    assert torch.equal(rec["mean_action"][:, :2], rec["mf"])
    inter = rec["mean_action"][:, 2:]
    # Every agent of a group gets its group's inter-group mean action.
    for g in rec["group"].unique():
        members = inter[rec["group"] == g]
        assert torch.allclose(members, members[:1].expand_as(members))


def test_gae_matches_hand_computation():
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    value = torch.tensor([[0.5], [0.5], [0.5]])
    next_value = torch.tensor([[0.5], [0.5], [9.0]])
    not_done = torch.tensor([[1.0], [1.0], [0.0]])
    g, lam = 0.9, 0.5
    d = reward + g * not_done * next_value - value      # deltas: 0.95, 1.95, 2.5
    expected = torch.tensor([[d[0, 0] + g * lam * (d[1, 0] + g * lam * d[2, 0])],
                             [d[1, 0] + g * lam * d[2, 0]], [d[2, 0]]])
    assert torch.allclose(gae(reward, value, next_value, not_done, g, lam), expected)


def test_unknown_algorithm_is_rejected():
    env = firefighter.batched_env(num_firefighters=4)
    with pytest.raises(ValueError, match="algo.name='sarsa'"):
        make_algorithm(env.teams[0], AlgoConfig(name="sarsa"), radius=1.5)


@pytest.mark.parametrize("name", ["bmf_q", "gat_mf"])
def test_target_attention_follows_the_soft_update(name):
    torch.manual_seed(3)
    env = firefighter.batched_env(num_firefighters=12, max_steps=15)
    cfg = AlgoConfig(name=name, hidden=16, num_groups=3, group_interval=2, buffer_size=768, learning_starts=4,
                     update_every=2, batch_steps=4, tau=0.1)
    algo = make_algorithm(env.teams[0], cfg, radius=1.5)
    interaction = algo.interaction
    assert interaction.targets == ["attention"]
    assert not any(p.requires_grad for p in interaction.target_attention.parameters())
    play_episode(env, [algo], "cpu", seed=0, explore=0.5, learners={0: algo})
    online = dict(interaction.attention.named_parameters())
    target = dict(interaction.target_attention.named_parameters())
    assert all(not torch.equal(online[k], target[k]) for k in online)  # the target lags behind
    before = {k: v.clone() for k, v in target.items()}
    algo.update(explore=0.5)
    for k, v in target.items():  # target <- tau * online + (1 - tau) * target, with the critic's tau
        assert torch.allclose(v, 0.9 * before[k] + 0.1 * online[k], atol=1e-6)
    # Target values use the target copy: records replayed with target=True differ.
    rec, _ = algo.buffer.sample(4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(interaction.mean_action(rec), interaction.mean_action(rec, target=True))
        for k in online:  # ... and equal the online ones once the copies agree
            target[k].copy_(online[k])
        assert torch.equal(interaction.mean_action(rec), interaction.mean_action(rec, target=True))


@pytest.mark.parametrize("scoring", ["gatv2", "gat", "cosine"])
def test_bmf_replay_stores_groups_and_critic_loss_reaches_every_attention_parameter(scoring):
    torch.manual_seed(4)
    env = firefighter.batched_env(num_firefighters=16, max_steps=15)
    # Random groups: several non-empty groups in every record, so every score has a gradient (k-means
    # on an untrained VAE may put all 16 firefighters in one group, where attention has nothing to weigh).
    cfg = AlgoConfig(name="bmf_q", hidden=16, num_groups=4, group_interval=3, buffer_size=1024,
                     learning_starts=1000, scoring=scoring, grouping="random")
    algo = make_algorithm(env.teams[0], cfg, radius=1.5)
    play_episode(env, [algo], "cpu", seed=0, explore=1.0, learners={0: algo})
    assert {"group", "a_grp", "h_grp", "count", "mf"} <= set(algo.buffer.data)
    assert "mean_action" not in algo.buffer.data  # the inter-group mean is recomputed, never stored
    rec, _ = algo.buffer.sample(8, generator=torch.Generator().manual_seed(1))
    q = algo.q(rec["obs"], algo.interaction.mean_action(rec))
    (q * torch.randn_like(q)).sum().backward()
    params = dict(algo.interaction.attention.named_parameters())
    assert (scoring == "cosine") == (not params)
    for name, param in params.items():
        assert param.grad is not None and param.grad.norm() > 0, name


def test_groups_follow_the_env_step_schedule(monkeypatch):
    torch.manual_seed(0)
    env = battle.batched_env(map_size=20, agents_per_team=8, max_steps=12)
    cfg = AlgoConfig(name="bmf_q", hidden=8, num_groups=3, group_interval=4)
    algo = make_algorithm(env.teams[0], cfg, radius=6.0)
    grouping, regrouped_at, groups = algo.interaction.grouping, [], []
    regroup = grouping._regroup
    monkeypatch.setattr(grouping, "_regroup", lambda *args: regrouped_at.append(len(groups)) or regroup(*args))
    play_episode(env, [algo, RandomPolicy(env.teams[1])], "cpu", seed=2, explore=1.0,
                 on_step=lambda t, views, recs, actions: groups.append((views[0].step, recs[0]["group"].clone())))
    assert [t for t, _ in groups] == list(range(12))
    # t = 0 groups the first observations (no grouping held); then t = 1, 1 + 4, 1 + 8.
    assert regrouped_at == [0, 1, 5, 9]
    changed = [t for t in range(1, 12) if not torch.equal(groups[t][1], groups[t - 1][1])]
    assert set(changed) <= {1, 5, 9}
