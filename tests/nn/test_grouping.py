import io

import pytest
import torch

from bmf_graph.nn.grouping import DynamicGrouping
from bmf_graph.nn.kmeans import KMeans

CENTERS = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]])


def latent_blobs(size=10, seed=0, shift=0.0):
    gen = torch.Generator().manual_seed(seed)
    mu = (CENTERS + shift).repeat_interleave(size, 0)
    return mu + 0.1 * torch.randn(mu.shape, generator=gen), torch.arange(4).repeat_interleave(size)


def same_partition(a, b):
    return torch.equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


def count_kmeans_calls(grouping, monkeypatch):
    calls = []
    forward = grouping.kmeans.forward
    monkeypatch.setattr(grouping.kmeans, 'forward',
                        lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs))
    return calls


def test_grouping_recovers_blobs_per_team():
    mu, truth = latent_blobs()
    mu = torch.cat([mu, mu + 1.0])  # two teams sharing one latent region
    batch = torch.arange(2).repeat_interleave(40)
    grouping = DynamicGrouping(4, interval=10)
    assert str(grouping) == "DynamicGrouping(4, interval=10, mode='kmeans')"
    assert grouping.group is None
    group = grouping(mu, step=0, batch=batch, generator=torch.Generator().manual_seed(0))
    assert group.dtype == torch.long and group.shape == (80, )
    assert torch.equal(group // 4, batch)
    assert same_partition(group[:40], truth) and same_partition(group[40:], truth)
    assert grouping.centroids.shape == (8, 2)
    assert torch.equal(grouping.group, group)


def test_grouping_regroups_on_the_step_schedule(monkeypatch):
    mu, _ = latent_blobs()
    grouping = DynamicGrouping(4, interval=3)
    calls = count_kmeans_calls(grouping, monkeypatch)
    regrouped = []
    for t in range(11):
        before = len(calls)
        grouping(mu, step=t)
        grouping(mu, step=t)  # a second call at the same step never regroups
        regrouped.append(len(calls) - before)
    # t = 0: no grouping held yet; then t = 1, 1 + 3, 1 + 6, 1 + 9.
    assert regrouped == [1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1]
    assert grouping.last_scheduled(0) == 0 and grouping.last_scheduled(9) == 7

    grouping.reset()  # episode start: the next call regroups, whatever its step
    grouping(mu, step=2)
    assert len(calls) == 6
    grouping(mu, step=6)  # step 4 was skipped: its regrouping happens now
    assert len(calls) == 7
    grouping(mu, step=3)  # back in time: a new episode
    assert len(calls) == 8


def test_grouping_keeps_groups_whatever_the_call_pattern(monkeypatch):
    """Acting calls (one team of 40) alternate with calls of another size (16 teams of 40):
    each layout keeps its groups between its scheduled steps."""
    grouping = DynamicGrouping(4, interval=5)
    calls = count_kmeans_calls(grouping, monkeypatch)
    gen = torch.Generator().manual_seed(0)
    big_batch = torch.arange(16).repeat_interleave(40)
    held_small = held_big = None
    for t in range(12):
        before = len(calls)
        small = grouping(torch.randn(40, 3, generator=gen), step=t).clone()
        big = grouping(torch.randn(640, 3, generator=gen), step=t, batch=big_batch).clone()
        scheduled = t in (0, 1, 6, 11)
        assert len(calls) - before == (2 if scheduled else 0)
        if not scheduled:  # new latents, same groups
            assert torch.equal(small, held_small) and torch.equal(big, held_big)
        held_small, held_big = small, big
        assert torch.equal(grouping.group, big)  # the last call's layout
    assert torch.equal(held_big // 4, big_batch)


def test_grouping_ids_stable_under_relabelling():
    mu, _ = latent_blobs()
    grouping = DynamicGrouping(4, interval=1)
    first = grouping(mu, step=1, generator=torch.Generator().manual_seed(0)).clone()
    raw_first = KMeans(4)(mu, generator=torch.Generator().manual_seed(0))[0]
    relabelled = 0
    for seed in range(1, 8):
        raw = KMeans(4)(mu, generator=torch.Generator().manual_seed(seed))[0]
        relabelled += int(not torch.equal(raw, raw_first))
        assert torch.equal(grouping(mu, step=1 + seed, generator=torch.Generator().manual_seed(seed)), first)
    assert relabelled > 0  # k-means++ did order the clusters differently

    # Drifting clusters keep their ids, also across an episode reset.
    grouping.reset()
    drifted, _ = latent_blobs(seed=1, shift=0.8)
    assert torch.equal(grouping(drifted, step=0, generator=torch.Generator().manual_seed(9)), first)


def spy_kmeans_init(grouping, monkeypatch):
    """Records the ``init`` (None for k-means++) of every k-means call."""
    inits = []
    forward = grouping.kmeans.forward

    def spy(*args, init=None, **kwargs):
        inits.append(None if init is None else init.clone())
        return forward(*args, init=init, **kwargs)

    monkeypatch.setattr(grouping.kmeans, 'forward', spy)
    return inits


def test_grouping_warm_starts_from_previous_centroids(monkeypatch):
    mu, truth = latent_blobs(size=12)
    grouping = DynamicGrouping(4, interval=1)
    inits = spy_kmeans_init(grouping, monkeypatch)
    first = grouping(mu, step=0, generator=torch.Generator().manual_seed(0)).clone()
    assert inits[-1] is None  # first regroup: k-means++
    for step in range(1, 6):  # drifting latents: warm starts, few iterations, stable ids
        previous = grouping.centroids.clone()
        drifted, _ = latent_blobs(size=12, seed=step, shift=0.2 * step)
        assert torch.equal(grouping(drifted, step=step), first)
        assert torch.equal(inits[-1], previous)
        assert grouping.kmeans.n_iter_ <= 2
        assert torch.allclose(grouping.centroids, previous + 0.2, atol=0.1)
    assert same_partition(first, truth)

    grouping.reset()  # episode start: still warm
    grouping(mu, step=0)
    assert inits[-1] is not None
    grouping.reset_parameters()
    grouping(mu, step=0)
    assert inits[-1] is None
    grouping(mu[:-1], step=0)  # another number of agents: a layout of its own
    assert inits[-1] is None
    grouping(mu[:-1], step=1)
    assert inits[-1] is not None
    two_teams = torch.arange(2).repeat_interleave(24)[:47]
    grouping(mu[:-1], step=1, batch=two_teams)  # another number of teams
    assert inits[-1] is None


def test_grouping_cold_start_when_groups_may_be_lost(monkeypatch):
    mu, _ = latent_blobs(size=2)
    grouping = DynamicGrouping(4, interval=1)
    inits = spy_kmeans_init(grouping, monkeypatch)
    grouping(mu, step=1)
    grouping(mu, step=2)
    assert inits[-1] is not None
    alive = torch.ones(8, dtype=torch.bool)
    alive[:4] = False  # 4 alive agents for 4 groups: one each, as k-means++ guarantees
    group = grouping(mu, step=3, alive=alive)
    assert inits[-1] is None and group[alive].unique().numel() == 4
    alive[4] = False  # 3 agents: a group is left empty ...
    group = grouping(mu, step=4, alive=alive)
    assert group[alive].unique().numel() == 3
    grouping(mu, step=5)  # ... so the next regroup is cold, though all agents are back
    assert inits[-1] is None


def test_grouping_alive_mask():
    mu, truth = latent_blobs()
    alive = torch.ones(40, dtype=torch.bool)
    alive[[3, 15]] = False
    grouping = DynamicGrouping(4, interval=2)
    group = grouping(mu, step=1, alive=alive).clone()
    assert (group[~alive] == 0).all()  # no previous group: the team's first id
    assert same_partition(group[alive], truth[alive])
    grouping(mu, step=2, alive=alive)

    # At the next regrouping the dead agents sit far away: they would form a
    # cluster of their own if they were clustered, and keep their old ids.
    alive[[20, 21]] = False
    moved = mu.clone()
    moved[~alive] = 100.0
    new = grouping(moved, step=3, alive=alive)
    assert torch.equal(new[~alive], group[~alive])
    assert torch.equal(new[alive], group[alive])


def test_grouping_more_groups_than_alive_agents():
    mu = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 3.0], [9.0, 9.0]])
    alive = torch.tensor([True, True, False, True, True])
    batch = torch.tensor([0, 0, 0, 0, 1])
    group = DynamicGrouping(5, interval=4)(mu, step=0, alive=alive, batch=batch)
    assert group[[0, 1, 3]].unique().numel() == 3
    assert ((group[[0, 1, 2, 3]] >= 0) & (group[[0, 1, 2, 3]] < 5)).all()
    assert 5 <= group[4] < 10


def test_grouping_random_mode():
    gen = torch.Generator().manual_seed(0)
    mu = torch.zeros(8000, 3)
    batch = torch.arange(2).repeat_interleave(4000)
    alive = torch.rand(8000, generator=gen) > 0.1
    grouping = DynamicGrouping(4, interval=5, mode='random')
    assert str(grouping) == "DynamicGrouping(4, interval=5, mode='random')"
    group = grouping(mu, step=1, alive=alive, batch=batch, generator=gen).clone()
    assert torch.equal(group // 4, batch)
    assert torch.equal(group[~alive], batch[~alive] * 4)
    count = torch.bincount(group[alive], minlength=8).float()
    expected = torch.bincount(batch[alive], minlength=2).float().repeat_interleave(4) / 4
    assert ((count - expected).abs() / expected).max() < 0.08
    assert grouping.centroids.shape == (8, 3)

    for t in range(2, 6):
        assert torch.equal(grouping(mu, step=t, alive=alive, batch=batch, generator=gen), group)
    changed = grouping(mu, step=6, alive=alive, batch=batch, generator=gen)
    assert (changed[alive] != group[alive]).float().mean() > 0.5


def test_grouping_state_dict_round_trip():
    mu, _ = latent_blobs()
    alive = torch.ones(40, dtype=torch.bool)
    alive[7] = False
    grouping = DynamicGrouping(4, interval=3)
    for t in range(2):
        grouping(mu, step=t, alive=alive, generator=torch.Generator().manual_seed(0))
    grouping(mu[:30], step=1)  # a second layout, saved too

    buffer = io.BytesIO()
    torch.save(grouping.state_dict(), buffer)
    buffer.seek(0)
    restored = DynamicGrouping(4, interval=3)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.group, grouping.group) and restored.group.shape == (30,)
    assert torch.equal(restored.centroids, grouping.centroids)
    previous = grouping(mu, step=1).clone()
    assert torch.equal(restored(mu, step=1), previous)  # the 40-agent layout was restored
    changes = 0
    for step in range(2, 8):  # agents swap places: the groups change when regrouped
        order = torch.randperm(40, generator=torch.Generator().manual_seed(step))
        gen_a, gen_b = (torch.Generator().manual_seed(step) for _ in range(2))
        group = grouping(mu[order], step=step, alive=alive, generator=gen_b)
        assert torch.equal(restored(mu[order], step=step, alive=alive, generator=gen_a), group)
        changes += int(not torch.equal(group, previous))
        previous = group.clone()
    assert changes == 2  # regrouped at steps 4 and 7
    with pytest.raises(ValueError, match="DynamicGrouping: the saved state has keys .*'steps'.*; expected 'layouts'"):
        restored.set_extra_state({"group": None, "centroids": None, "filled": None, "steps": 0})


def test_grouping_no_agents():
    grouping = DynamicGrouping(3, interval=2)
    group = grouping(torch.empty(0, 4), step=0)
    assert group.shape == (0, ) and group.dtype == torch.long
    assert torch.equal(grouping.centroids, torch.zeros(3, 4))


def test_grouping_errors():
    with pytest.raises(ValueError, match=r"DynamicGrouping: num_groups must be .* got 0"):
        DynamicGrouping(0, interval=1)
    with pytest.raises(ValueError, match=r"DynamicGrouping: interval must be .* got 0"):
        DynamicGrouping(2, interval=0)
    with pytest.raises(ValueError, match=r"DynamicGrouping: mode must be one of .* got 'vae'"):
        DynamicGrouping(2, interval=1, mode='vae')
    grouping = DynamicGrouping(2, interval=1)
    with pytest.raises(ValueError, match=r"DynamicGrouping: mu must have shape \[N, D\]"):
        grouping(torch.zeros(4), step=0)
    with pytest.raises(ValueError, match=r"DynamicGrouping: alive must be a bool tensor"):
        grouping(torch.zeros(4, 2), step=0, alive=torch.ones(4))
    with pytest.raises(ValueError, match=r"DynamicGrouping: batch must have shape \[4\]"):
        grouping(torch.zeros(4, 2), step=0, batch=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"DynamicGrouping: batch must be an integer"):
        grouping(torch.zeros(4, 2), step=0, batch=torch.zeros(4))
    with pytest.raises(ValueError, match=r"DynamicGrouping: step must be an integer >= 0, got -1"):
        grouping(torch.zeros(4, 2), step=-1)
