import pytest
import torch
import torch.nn.functional as F

import bmf_graph.nn.inter_group as inter_group
from bmf_graph.nn.inter_group import InterGroupAttention, block_size, group_pairs, pool_groups


# (DENSE_MAX_GROUPS, ONE_HOT_MAX_ENTRIES) of each way through the layer: dense K x K scores
# with one-hot pooling (small N * K), dense scores with index pooling, edge softmax with both.
PATHS = {"dense": (inter_group.DENSE_MAX_GROUPS, inter_group.ONE_HOT_MAX_ENTRIES),
         "dense_index_pool": (inter_group.DENSE_MAX_GROUPS, 0),
         "sparse": (0, inter_group.ONE_HOT_MAX_ENTRIES),
         "sparse_index_pool": (0, 0)}


def use_path(monkeypatch, name):
    dense_max_groups, one_hot_max_entries = PATHS[name]
    monkeypatch.setattr(inter_group, "DENSE_MAX_GROUPS", dense_max_groups)
    monkeypatch.setattr(inter_group, "ONE_HOT_MAX_ENTRIES", one_hot_max_entries)


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    """Runs a test on every way through the layer (attention and pooling paths)."""
    use_path(monkeypatch, request.param)
    return request.param


def brute_inter_group(layer, h, x, group, num_groups, batch):
    """Loops over groups: the per-agent output and the [K, K] weights of DESIGN.md §1."""
    weight = torch.zeros(num_groups, num_groups)
    h_grp = torch.zeros(num_groups, h.size(1))
    x_grp = torch.zeros(num_groups, x.size(1))
    entry = {}
    for m in range(num_groups):
        members = group == m
        if members.any():
            h_grp[m], x_grp[m] = h[members].mean(0), x[members].mean(0)
            entry[m] = int(batch[members][0])
    z = (h_grp @ layer.lin.weight.t()).view(num_groups, layer.heads, -1)
    for m in entry:
        others = [n for n in entry if n != m and entry[n] == entry[m]]
        if not others:
            continue
        score = (z[others] * layer.att_src[0]).sum(-1) + (z[m] * layer.att_dst[0]).sum(-1)
        alpha = F.leaky_relu(score, layer.negative_slope).softmax(0).mean(-1)
        weight[m, others] = alpha
    return (weight @ x_grp)[group], weight


def random_inputs(gen, n=60, num_groups=12, entries=3):
    h, x = torch.randn(n, 5, generator=gen), torch.randn(n, 3, generator=gen)
    batch = torch.randint(0, entries, (n,), generator=gen)
    # Groups global over the batch: entry b owns ids b*k..b*k+k-1 and some stay empty.
    k = num_groups // entries
    group = batch * k + torch.randint(0, k - 1, (n,), generator=gen)
    return h, x, group, batch


def test_inter_group_tiny_uniform_attention(path):
    layer = InterGroupAttention(2, 4)
    torch.nn.init.zeros_(layer.att_src)
    h = torch.randn(7, 2)
    x = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1], [2, 2], [0, 0], [5, 5]])
    group = torch.tensor([0, 0, 1, 1, 3, 3, 4])
    batch = torch.tensor([0, 0, 0, 0, 0, 0, 1])
    out, weight = layer(h, x, group, 5, batch)
    # Group means: 0 -> (1, 0), 1 -> (0, 1), 3 -> (1, 1); group 2 empty; group 4 alone in entry 1.
    half = 0.5
    assert torch.allclose(weight, torch.tensor([[0, half, 0, half, 0], [half, 0, 0, half, 0],
                                                [0, 0, 0, 0, 0], [half, half, 0, 0, 0],
                                                [0, 0, 0, 0, 0]]))
    expected = torch.tensor([[0.5, 1.0]] * 2 + [[1.0, 0.5]] * 2 + [[0.5, 0.5]] * 2 + [[0, 0]])
    assert torch.allclose(out, expected)


@pytest.mark.parametrize("heads", [1, 3])
def test_inter_group_matches_brute_force(heads, path):
    gen = torch.Generator().manual_seed(heads)
    layer = InterGroupAttention(5, 8, heads=heads, negative_slope=0.1)
    h, x, group, batch = random_inputs(gen)
    out, weight = layer(h, x, group, 12, batch)
    ref_out, ref_weight = brute_inter_group(layer, h, x, group, 12, batch)
    assert torch.allclose(weight, ref_weight, atol=1e-6)
    assert torch.allclose(out, ref_out, atol=1e-5)


def test_inter_group_weight_invariants():
    gen = torch.Generator().manual_seed(0)
    layer = InterGroupAttention(5, 8, heads=2)
    h, x, group, batch = random_inputs(gen)
    _, weight = layer(h, x, group, 12, batch)
    count = torch.bincount(group, minlength=12)
    entry = torch.full((12,), -1).scatter_(0, group, batch)
    same_entry = entry[:, None] == entry[None, :]
    for m in range(12):
        others = (count > 0) & same_entry[m] & (torch.arange(12) != m)
        expected = 1.0 if count[m] > 0 and others.any() else 0.0
        assert torch.allclose(weight[m].sum(), torch.tensor(expected))
        assert torch.equal(weight[m, ~others], torch.zeros(int((~others).sum())))
    assert (weight[weight > 0] < 1).any()  # attention is not trivially one-hot


def test_inter_group_permutation_equivariant():
    gen = torch.Generator().manual_seed(1)
    layer = InterGroupAttention(5, 8)
    h, x, group, batch = random_inputs(gen)
    out, weight = layer(h, x, group, 12, batch)
    perm = torch.randperm(h.size(0), generator=gen)  # reorder agents
    out_p, weight_p = layer(h[perm], x[perm], group[perm], 12, batch[perm])
    assert torch.allclose(out_p, out[perm], atol=1e-6) and torch.allclose(weight_p, weight)
    relabel = torch.randperm(12, generator=gen)  # rename groups
    out_r, weight_r = layer(h, x, relabel[group], 12, batch)
    assert torch.allclose(out_r, out, atol=1e-6)
    assert torch.allclose(weight_r[relabel][:, relabel], weight, atol=1e-6)


def test_pool_groups_values_and_empty_groups(path):
    h = torch.tensor([[1.0], [3.0], [5.0]])
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [4.0, 4.0]])
    h_grp, x_grp, count, group_batch = pool_groups(h, x, torch.tensor([2, 2, 0]), 4,
                                                   torch.tensor([1, 1, 1]))
    assert h_grp.tolist() == [[5.0], [0.0], [2.0], [0.0]]
    assert x_grp.tolist() == [[4.0, 4.0], [0.0, 0.0], [0.5, 0.5], [0.0, 0.0]]
    assert count.tolist() == [1, 0, 2, 0] and group_batch.tolist() == [1, -1, 1, -1]
    assert pool_groups(h, x, torch.tensor([0, 1, 1]), 2)[3].tolist() == [0, 0]
    with pytest.raises(ValueError, match="pool_groups: group 0 has members in batch entries 0 "
                                         "and 1"):
        pool_groups(h, x, torch.tensor([0, 0, 1]), 2, torch.tensor([0, 1, 1]))


def test_group_pairs():
    nonempty = torch.tensor([True, True, True, False, True, True, True])
    pairs = group_pairs(nonempty, torch.tensor([0, 1, 0, -1, 1, 2, 0]))
    got = sorted(map(tuple, pairs.t().tolist()))
    assert got == [(0, 2), (0, 6), (1, 4), (2, 0), (2, 6), (4, 1), (6, 0), (6, 2)]
    assert group_pairs(torch.zeros(3, dtype=torch.bool)).shape == (2, 0)
    assert group_pairs(torch.tensor([True, False, True])).tolist() == [[2, 0], [0, 2]]


def test_block_size_finds_blocked_layouts_only():
    full = torch.ones(6, dtype=torch.bool)
    assert block_size(full) == 6 and block_size(full, torch.zeros(6, dtype=torch.long)) == 6
    assert block_size(full, torch.tensor([0, 0, 0, 1, 1, 1])) == 3
    assert block_size(full, torch.tensor([0, 0, 1, 1, 2, 2])) == 2
    # Empty groups (entry -1) may sit anywhere; a trailing entry without groups hides the
    # layout (3 entries read as 2), which falls back to the general path.
    nonempty = torch.tensor([True, False, True, True, True, False])
    assert block_size(nonempty, torch.tensor([0, -1, 1, 1, 2, -1])) == 2
    nonempty[4] = False
    assert block_size(nonempty, torch.tensor([0, -1, 1, 1, -1, -1])) is None
    assert block_size(full, torch.tensor([1, 0, 0, 1, 1, 1])) is None   # entry 1 outside block
    assert block_size(full[:5], torch.tensor([0, 0, 0, 1, 1])) is None  # 5 groups, 2 entries


def test_attend_batched_equals_forward_per_entry(path):
    gen = torch.Generator().manual_seed(2)
    layer = InterGroupAttention(5, 8, heads=2)
    entries, k = 6, 4
    pooled, expected = [], []
    for b in range(entries):
        n = 3 + b  # entry 0 has 3 agents: at most 3 of its 4 groups are non-empty
        h, x = torch.randn(n, 5, generator=gen), torch.randn(n, 3, generator=gen)
        group = torch.randint(0, k, (n,), generator=gen)
        if b == 1:
            group.zero_()  # a single non-empty group: zeros
        out, weight = layer(h, x, group, k)
        expected.append((out, weight, group))
        pooled.append(pool_groups(h, x, group, k))
    h_grp, x_grp, count, _ = (torch.cat(t) for t in zip(*pooled))
    group_batch = torch.arange(entries).repeat_interleave(k)
    out_grp, weight = layer.attend(h_grp, x_grp, count, group_batch)
    lean_out, no_weight = layer.attend(h_grp, x_grp, count > 0, group_batch, return_weight=False)
    assert no_weight is None and torch.allclose(lean_out, out_grp)
    for b, (out, w, group) in enumerate(expected):
        rows = slice(b * k, (b + 1) * k)
        assert torch.allclose(out_grp[rows][group], out, atol=1e-6)
        assert torch.allclose(weight[rows, rows], w, atol=1e-6)
    assert torch.equal(out_grp[k:2 * k], torch.zeros(k, 3))
    off_block = weight.clone()
    for b in range(entries):
        off_block[b * k:(b + 1) * k, b * k:(b + 1) * k] = 0
    assert torch.equal(off_block, torch.zeros_like(weight))


def test_inter_group_gradients_and_lonely_groups(path):
    gen = torch.Generator().manual_seed(3)
    layer = InterGroupAttention(5, 8, heads=2)
    h, x, group, batch = random_inputs(gen)
    h.requires_grad_()
    out, weight = layer(h, x, group, 12, batch, return_weight=False)
    assert weight is None
    (out * torch.arange(3.0)).sum().backward()
    for grad in (layer.lin.weight.grad, layer.att_src.grad, layer.att_dst.grad, h.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # One agent only: its group is alone, so zeros and finite gradients.
    h1 = torch.randn(1, 5, requires_grad=True)
    out, weight = layer(h1, torch.ones(1, 3), torch.tensor([2]), 3)
    out.sum().backward()
    assert torch.equal(out, torch.zeros(1, 3)) and torch.equal(weight, torch.zeros(3, 3))
    assert torch.isfinite(h1.grad).all()


def test_all_paths_agree(monkeypatch):
    gen = torch.Generator().manual_seed(5)
    layer = InterGroupAttention(5, 8, heads=2)
    h, x, group, batch = random_inputs(gen)
    results = []
    for name in PATHS:
        use_path(monkeypatch, name)
        hg, xg = h.clone().requires_grad_(), x.clone().requires_grad_()
        layer.zero_grad()
        out, weight = layer(hg, xg, group, 12, batch)
        (out * torch.arange(3.0)).sum().backward()
        results.append((out, weight, hg.grad, xg.grad, layer.att_src.grad.clone()))
    for other in results[1:]:
        for first, second in zip(results[0], other):
            assert torch.allclose(first, second, atol=1e-6)


def test_inter_group_repr_and_errors():
    layer = InterGroupAttention(8, 32, heads=2)
    assert str(layer) == "InterGroupAttention(8, 32, heads=2)"
    h, x, group = torch.randn(4, 8), torch.randn(4, 3), torch.tensor([0, 1, 1, 2])
    with pytest.raises(ValueError, match=r"InterGroupAttention: group entries must lie in "
                                         r"\[0, 3\), got values in \[0, 3\]"):
        layer(h, x, torch.tensor([0, 1, 3, 2]), 3)
    with pytest.raises(ValueError, match=r"group entries must lie in \[0, 3\), got values in "
                                         r"\[-1, 2\]"):
        layer(h, x, torch.tensor([0, -1, 1, 2]), 3)
    with pytest.raises(ValueError, match=r"InterGroupAttention: h must have shape \[N, 8\]"):
        layer(torch.randn(4, 7), x, group, 3)
    with pytest.raises(ValueError, match=r"InterGroupAttention: x must have shape \[4, F\]"):
        layer(h, torch.randn(5, 3), group, 3)
    with pytest.raises(ValueError, match=r"InterGroupAttention: group must have shape \[4\]"):
        layer(h, x, group[:3], 3)
    with pytest.raises(ValueError, match="num_groups must be an int >= 1, got 0"):
        layer(h, x, group, 0)
    with pytest.raises(ValueError, match=r"InterGroupAttention: batch must have shape \[4\]"):
        layer(h, x, group, 3, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"pool_groups: group entries must lie in \[0, 2\)"):
        pool_groups(h, x, group, 2)
    with pytest.raises(ValueError, match=r"attend: count_or_nonempty must be an integer or bool"):
        layer.attend(torch.randn(3, 8), torch.randn(3, 3), torch.ones(3))
    with pytest.raises(ValueError, match=r"attend: group_batch must have shape \[3\]"):
        layer.attend(torch.randn(3, 8), torch.randn(3, 3), torch.ones(3, dtype=torch.long),
                     torch.zeros(4, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_inter_group_cuda():
    gen = torch.Generator().manual_seed(4)
    layer = InterGroupAttention(5, 8, heads=2)
    h, x, group, batch = random_inputs(gen)
    out, weight = layer(h, x, group, 12, batch)
    out_c, weight_c = layer.cuda()(h.cuda(), x.cuda(), group.cuda(), 12, batch.cuda())
    assert torch.allclose(out_c.cpu(), out, atol=1e-5)
    assert torch.allclose(weight_c.cpu(), weight, atol=1e-6)
