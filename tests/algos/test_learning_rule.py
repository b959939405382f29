"""MFRL's learning rule: agent-transition minibatches, team-scope epsilon, random greedy ties,
the team-wide (infinite-radius) mean field."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.algos.base import epsilon_greedy, greedy, scope_graph, scope_mean
from bmf_graph.algos.replay import StepBuffer
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import firefighter
from bmf_graph.graph import neighbour_graph
from bmf_graph.nn import GATMeanField, IntraGroupMeanField, MeanField
from bmf_graph.training.rollout import play_episode


def test_greedy_breaks_ties_at_random():
    torch.manual_seed(0)
    q = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0]]).repeat(3000, 1)
    picks = greedy(q).argmax(-1)
    counts = torch.bincount(picks, minlength=5).tolist()
    assert counts[0] == counts[3] == 0 and all(900 < c < 1100 for c in (counts[1], counts[2], counts[4]))
    assert torch.equal(greedy(torch.tensor([[0.0, 2.0, 1.0]])), torch.tensor([[0.0, 1.0, 0.0]]))


def test_team_epsilon_draws_one_switch_per_copy():
    """MFRL's act: with probability epsilon a whole team (copy) acts at random, else all greedily."""
    torch.manual_seed(0)
    q = torch.rand(200, 4)
    copy = torch.arange(10).repeat_interleave(20)
    seen = []
    for _ in range(200):
        probs = epsilon_greedy(q, 0.3, copy, 10).view(10, 20, 4)
        uniform = (probs == 0.25).all(-1)
        assert (uniform.all(1) | (~uniform).all(1)).all()           # never mixed within a copy
        seen.append(uniform.all(1).float().mean())
    assert abs(float(torch.stack(seen).mean()) - 0.3) < 0.03
    per_agent = epsilon_greedy(q, 0.3)
    torch.testing.assert_close(per_agent.sum(-1), torch.ones(200))
    assert (per_agent.max(-1).values == pytest.approx(0.7 + 0.3 / 4))


def test_epsilon_scope_reaches_the_acting_policy():
    env = firefighter.batched_env(num_firefighters=8, max_steps=3)
    seen = []
    for scope in ("team", "agent"):
        algo = make_algorithm(env.teams[0], AlgoConfig(name="mfq", exploration="epsilon", epsilon_scope=scope),
                              radius=1.5)
        rows = []
        play_episode(env, [algo], "cpu", seed=0, explore=0.5,
                     on_step=lambda t, views, recs, actions: rows.append(algo.policy(views[0], recs[0], 0.5)))
        seen.append(torch.cat(rows))
    team, agent = seen
    assert ((team == 0.5).all(-1) | (team.max(-1).values == 1.0)).all()  # 2 actions: uniform rows or greedy rows
    assert (agent.max(-1).values < 1.0).all()


def _filled_buffer(n: int = 6, records: int = 40) -> tuple[StepBuffer, torch.Tensor]:
    schema = {"obs": ((n, 3), torch.float32), "alive": ((n,), torch.bool), "mf": ((n, 2), torch.float32),
              "a_grp": ((2, 2), torch.float32)}
    buffer = StepBuffer(1000, schema)
    gen = torch.Generator().manual_seed(0)
    alive_all = torch.rand(records, n, generator=gen) < 0.6
    for t in range(records):
        row = torch.full((n, 3), float(t))
        row[:, 1] = torch.arange(n)
        buffer.add({"obs": row, "alive": alive_all[t], "mf": torch.rand(n, 2), "a_grp": torch.full((2, 2), float(t))},
                   [0], first=t == 0)
    return buffer, alive_all


def test_agent_sampling_is_uniform_over_stored_agent_transitions():
    buffer, alive = _filled_buffer()
    torch.manual_seed(0)
    counts = np.zeros(alive.shape)
    for _ in range(300):
        rec, nxt = buffer.sample_agents(64, ("obs", "alive", "mf"), whole_keys=("obs",))
        record, agent = rec["obs"][:, 0, 0].long(), rec["agent"]
        assert rec["obs"].shape == (64, 1, 3) and rec["mf"].shape == (64, 1, 2) and rec["a_grp"].shape == (64, 2, 2)
        assert rec["whole"]["obs"].shape == (64, 6, 3)
        assert torch.equal(rec["obs"][:, 0, 1].long(), agent)                   # the sampled agent's row
        assert torch.equal(nxt["obs"][:, 0, 0].long(), record + 1)               # its successor, same agent
        assert torch.equal(nxt["agent"], agent) and rec["alive"].all()
        np.add.at(counts, (record.numpy(), agent.numpy()), 1)
    eligible = alive.numpy().copy()
    eligible[-1] = False                                                          # the last record has no successor
    assert counts[~eligible].sum() == 0
    expected = counts.sum() / eligible.sum()
    assert np.abs(counts[eligible] - expected).max() < 5 * math.sqrt(expected)


def test_whole_records_are_gathered_into_reused_storage():
    """The whole-record fields (GAT-MF's observations) equal a brute-force gather on every call,
    records and successors in storage of their own, reused by the next call."""
    buffer, _ = _filled_buffer()
    torch.manual_seed(1)
    first, first_next = buffer.sample_agents(16, ("obs", "alive"), whole_keys=("obs",))
    pointers = (first["whole"]["obs"].data_ptr(), first_next["whole"]["obs"].data_ptr())
    assert pointers[0] != pointers[1]
    for _ in range(3):
        rec, nxt = buffer.sample_agents(16, ("obs", "alive"), whole_keys=("obs",))
        record = rec["obs"][:, 0, 0].long()
        assert torch.equal(rec["whole"]["obs"], buffer.data["obs"][record])
        assert torch.equal(nxt["whole"]["obs"], buffer.data["obs"][record + 1])
        assert (rec["whole"]["obs"].data_ptr(), nxt["whole"]["obs"].data_ptr()) == pointers
    rec, _ = buffer.sample_agents(8, ("obs", "alive"), whole_keys=("obs",))  # another batch size: new storage
    assert rec["whole"]["obs"].shape == (8, 6, 3)
    assert torch.equal(rec["whole"]["obs"], buffer.data["obs"][rec["obs"][:, 0, 0].long()])


def test_scope_mean_is_the_infinite_radius_mean():
    """radius = inf: the mean over the other alive agents of the copy (or group), as a brute force."""
    torch.manual_seed(0)
    n = 30
    x = torch.rand(n, 4)
    alive = torch.rand(n) < 0.8
    batch = torch.arange(3).repeat_interleave(10)
    group = batch * 2 + torch.randint(0, 2, (n,))
    for scope, out in ((batch, scope_mean(x, alive, batch)), (group, scope_mean(x, alive, batch, group))):
        for i in range(n):
            mates = [j for j in range(n) if j != i and alive[j] and scope[j] == scope[i]]
            want = x[mates].mean(0) if alive[i] and mates else torch.zeros(4)
            torch.testing.assert_close(out[i], want)
    # equal to the layers on a graph whose radius covers the whole map
    pos = torch.rand(n, 2) * 10
    edges = neighbour_graph(pos, 100.0, alive=alive, batch=batch)
    torch.testing.assert_close(scope_mean(x, alive, batch), MeanField()(x, edges) * alive[:, None])
    torch.testing.assert_close(scope_mean(x, alive, batch, group),
                               IntraGroupMeanField()(x, edges, group) * alive[:, None])
    full = scope_graph(pos, math.inf, alive, batch)
    assert torch.equal(full[:, full[1].argsort(stable=True)].unique(dim=1), edges.unique(dim=1))


def test_gat_rows_equal_the_layer_on_the_graph():
    torch.manual_seed(0)
    layer = GATMeanField(5, 4)
    b, n = 6, 7
    h, x = torch.rand(b, n, 5), torch.rand(b, n, 3)
    alive = torch.rand(b, n) < 0.8
    pos = torch.rand(b, n, 2) * 4
    agent = torch.randint(0, n, (b,))
    alive[torch.arange(b), agent] = True                      # sampled agents are alive
    batch = torch.arange(b).repeat_interleave(n)
    edges = neighbour_graph(pos.reshape(-1, 2), 2.0, alive=alive.reshape(-1), batch=batch)
    full = layer(h.reshape(b * n, -1), x.reshape(b * n, -1), edges).view(b, n, -1)
    rows = torch.arange(b)
    mask = alive & ((pos - pos[rows, agent].unsqueeze(1)).square().sum(-1) < 4.0)
    mask[rows, agent] = False
    torch.testing.assert_close(layer.rows(h[rows, agent], h, x, mask), full[rows, agent])


@pytest.mark.parametrize("name", ["mfq", "gat_mf", "bmf_q", "bmf_ac"])
@pytest.mark.parametrize("radius", [1.5, math.inf])
def test_agent_minibatches_train_every_method(name, radius):
    torch.manual_seed(0)
    env = firefighter.batched_env(num_firefighters=8, max_steps=12)
    cfg = AlgoConfig(name=name, learning_starts=4, update_every=2, batch_size=8, num_groups=2, diagnostics_every=0)
    algo = make_algorithm(env.teams[0], cfg, radius=radius)
    before = [p.clone() for p in algo.q.parameters()]
    result = play_episode(env, [algo], "cpu", seed=0, explore=0.5, learners={0: algo})
    assert algo.updates > 0 and math.isfinite(np.mean(result.logs["losses/q"]))
    assert all(not torch.equal(a, b) for a, b in zip(before, algo.q.parameters()))
    rec, nxt = algo.sample()
    assert rec["obs"].shape == (8, 1, env.teams[0].obs_dim)
    assert algo.interaction.mean_action(rec).shape == (8, 1, algo.interaction.dim)
