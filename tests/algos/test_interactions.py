"""The critic input recomputed from replay equals the one the agents acted on."""
import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.algos.ac import gae
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import firefighter
from bmf_graph.rollout import play_episode


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
