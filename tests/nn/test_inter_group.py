import pytest
import torch
import torch.nn.functional as F

import bmf_graph.nn.inter_group as inter_group
import bmf_graph.nn.pooling as pooling
from bmf_graph.nn.inter_group import InterGroupAttention, block_size, group_pairs, pool_groups


# (DENSE_MAX_GROUPS, ONE_HOT_MAX_ENTRIES) of each way through the layer: dense K x K scores
# with one-hot pooling (small N * K), dense scores with index pooling, edge softmax with both.
PATHS = {"dense": (inter_group.DENSE_MAX_GROUPS, pooling.ONE_HOT_MAX_ENTRIES),
         "dense_index_pool": (inter_group.DENSE_MAX_GROUPS, 0),
         "sparse": (0, pooling.ONE_HOT_MAX_ENTRIES),
         "sparse_index_pool": (0, 0)}


def use_path(monkeypatch, name):
    dense_max_groups, one_hot_max_entries = PATHS[name]
    monkeypatch.setattr(inter_group, "DENSE_MAX_GROUPS", dense_max_groups)
    monkeypatch.setattr(pooling, "ONE_HOT_MAX_ENTRIES", one_hot_max_entries)


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    """Runs a test on every way through the layer (attention and pooling paths)."""
    use_path(monkeypatch, request.param)
    return request.param


SCORINGS = ["gatv2", "gat", "cosine"]


def brute_scores(layer, h_m, h_others):
    """Per-head scores e_mn of group m against each n, written out from the formulas."""
    if layer.scoring == "gatv2":
        hidden = (h_m @ layer.lin_dst.weight.t() + h_others @ layer.lin_src.weight.t())
        hidden = F.leaky_relu(hidden.view(len(h_others), layer.heads, -1), layer.negative_slope)
        return (hidden * layer.att[0]).sum(-1)
    if layer.scoring == "gat":
        z_m = (h_m @ layer.lin.weight.t()).view(layer.heads, -1)
        z_n = (h_others @ layer.lin.weight.t()).view(len(h_others), layer.heads, -1)
        return F.leaky_relu((z_m * layer.att_dst[0]).sum(-1) + (z_n * layer.att_src[0]).sum(-1),
                            layer.negative_slope)
    return F.cosine_similarity(h_m.expand_as(h_others), h_others, dim=-1).unsqueeze(-1)


def brute_inter_group(layer, h, x, group, num_groups, batch):
    """Loops over groups: the per-agent output and the dense [K, K] weights."""
    weight = torch.zeros(num_groups, num_groups)
    h_grp = torch.zeros(num_groups, h.size(1))
    x_grp = torch.zeros(num_groups, x.size(1))
    entry = {}
    for m in range(num_groups):
        members = group == m
        if members.any():
            h_grp[m], x_grp[m] = h[members].mean(0), x[members].mean(0)
            entry[m] = int(batch[members][0])
    for m in entry:
        others = [n for n in entry if n != m and entry[n] == entry[m]]
        if not others:
            continue
        score = brute_scores(layer, h_grp[m], h_grp[others])
        if layer.scoring == "cosine":
            positive = score.clamp(min=0)[:, 0]
            alpha = positive / positive.sum() if positive.sum() > 0 else positive
        else:
            alpha = score.softmax(0).mean(-1)
        weight[m, others] = alpha
    return (weight @ x_grp)[group], weight


def random_inputs(gen, n=60, num_groups=12, entries=3):
    h, x = torch.randn(n, 5, generator=gen), torch.randn(n, 3, generator=gen)
    batch = torch.randint(0, entries, (n,), generator=gen)
    # Groups global over the batch: entry b owns ids b*k..b*k+k-1 and some stay empty.
    k = num_groups // entries
    group = batch * k + torch.randint(0, k - 1, (n,), generator=gen)
    return h, x, group, batch


@pytest.mark.parametrize("scoring", ["gatv2", "gat"])
def test_inter_group_tiny_uniform_attention(path, scoring):
    layer = InterGroupAttention(2, 4, scoring=scoring)
    torch.nn.init.zeros_(layer.att if scoring == "gatv2" else layer.att_src)  # equal scores
    h = torch.randn(7, 2)
    x = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1], [2, 2], [0, 0], [5, 5]])
    group = torch.tensor([0, 0, 1, 1, 3, 3, 4])
    batch = torch.tensor([0, 0, 0, 0, 0, 0, 1])
    out, weight = layer(h, x, group, 5, batch, return_weight=True)
    # Group means: 0 -> (1, 0), 1 -> (0, 1), 3 -> (1, 1); group 2 empty; group 4 alone in entry 1.
    half = 0.5
    assert weight.is_sparse and weight._nnz() == 6  # the pairs among groups 0, 1 and 3
    assert torch.allclose(weight.to_dense(), torch.tensor([[0, half, 0, half, 0], [half, 0, 0, half, 0],
                                                           [0, 0, 0, 0, 0], [half, half, 0, 0, 0],
                                                           [0, 0, 0, 0, 0]]))
    expected = torch.tensor([[0.5, 1.0]] * 2 + [[1.0, 0.5]] * 2 + [[0.5, 0.5]] * 2 + [[0, 0]])
    assert torch.allclose(out, expected)
    assert layer(h, x, group, 5, batch)[1] is None  # weights only when asked


def test_cosine_weights_hand_example(path):
    # One agent per group; cos(h0, h1) = 1/sqrt(2), cos(h0, h2) = 0, cos(h0, h3) = -1,
    # cos(h1, h2) = 1/sqrt(2), cos(h1, h3) = -1/sqrt(2), cos(h2, h3) = 0; group 4 has h = 0.
    h = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0], [-1.0, 0.0], [0.0, 0.0]])
    x = torch.eye(5)
    layer = InterGroupAttention(2, 4, heads=3, scoring="cosine")
    assert list(layer.parameters()) == [] and layer.heads == 1
    out, weight = layer(h, x, torch.arange(5), 5, return_weight=True)
    c = 2 ** -0.5
    expected = torch.tensor([[0, 1, 0, 0, 0],                 # only h1 has a positive cosine
                             [c / (2 * c), 0, c / (2 * c), 0, 0],
                             [0, 1, 0, 0, 0],
                             [0, 0, 0, 0, 0],                 # no positive cosine: zeros
                             [0, 0, 0, 0, 0]])                # h = 0: cosines 0, zeros
    assert torch.allclose(weight.to_dense(), expected, atol=1e-6)
    assert torch.allclose(out, expected, atol=1e-6)  # x is the identity: out rows are w rows
    # Only the other non-empty groups count: with group 1 empty, row 0 has no positive cosine.
    out, weight = layer(h[[0, 2, 3]], x[[0, 2, 3]], torch.tensor([0, 2, 3]), 5, return_weight=True)
    assert torch.equal(weight.to_dense(), torch.zeros(5, 5))


@pytest.mark.parametrize("scoring", SCORINGS)
@pytest.mark.parametrize("heads", [1, 3])
def test_inter_group_matches_brute_force(heads, scoring, path):
    gen = torch.Generator().manual_seed(heads)
    layer = InterGroupAttention(5, 8, heads=heads, scoring=scoring, negative_slope=0.1)
    h, x, group, batch = random_inputs(gen)
    h = h + 0.5  # mostly positive cosines, so cosine rows mix several groups too
    out, weight = layer(h, x, group, 12, batch, return_weight=True)
    ref_out, ref_weight = brute_inter_group(layer, h, x, group, 12, batch)
    assert torch.allclose(weight.to_dense(), ref_weight, atol=1e-6)
    assert torch.allclose(out, ref_out, atol=1e-5)
    assert (ref_weight > 0).sum() > 4 and (ref_weight[ref_weight > 0] < 1).any()  # not trivial


def order_between(weight, m, m_other, k):
    """Ranks of the groups other than m and m_other as seen by rows m and m_other."""
    common = [n for n in range(k) if n not in (m, m_other)]
    return weight[m, common].argsort(), weight[m_other, common].argsort()


@pytest.mark.parametrize("seed", range(5))
def test_gatv2_groups_rank_the_others_differently_gat_never(seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    k = 6
    h, x = torch.randn(k, 4, generator=gen), torch.randn(k, 3, generator=gen)
    differs = {}
    for scoring in ("gatv2", "gat"):
        layer = InterGroupAttention(4, 16, scoring=scoring)
        weight = layer(h, x, torch.arange(k), k, return_weight=True)[1].to_dense()
        differs[scoring] = sum(not torch.equal(*order_between(weight, m, m2, k))
                               for m in range(k) for m2 in range(m + 1, k))
    assert differs["gat"] == 0      # static attention: one order for every query group
    assert differs["gatv2"] > 0     # pairwise scores: query groups disagree


@pytest.mark.parametrize("scoring", SCORINGS)
def test_inter_group_weight_invariants(scoring):
    gen = torch.Generator().manual_seed(0)
    layer = InterGroupAttention(5, 8, heads=2, scoring=scoring)
    h, x, group, batch = random_inputs(gen)
    weight = layer(h, x, group, 12, batch, return_weight=True)[1].to_dense()
    count = torch.bincount(group, minlength=12)
    entry = torch.full((12,), -1).scatter_(0, group, batch)
    same_entry = entry[:, None] == entry[None, :]
    for m in range(12):
        others = (count > 0) & same_entry[m] & (torch.arange(12) != m)
        total = weight[m].sum()
        if scoring == "cosine":  # 1, or 0 when no other group has a positive cosine
            assert torch.isclose(total, torch.tensor(1.0)) or total == 0
        else:
            expected = 1.0 if count[m] > 0 and others.any() else 0.0
            assert torch.allclose(total, torch.tensor(expected))
        assert torch.equal(weight[m, ~others], torch.zeros(int((~others).sum())))


@pytest.mark.parametrize("scoring", SCORINGS)
def test_inter_group_permutation_equivariant(scoring):
    gen = torch.Generator().manual_seed(1)
    layer = InterGroupAttention(5, 8, scoring=scoring)
    h, x, group, batch = random_inputs(gen)
    out, weight = layer(h, x, group, 12, batch, return_weight=True)
    weight = weight.to_dense()
    perm = torch.randperm(h.size(0), generator=gen)  # reorder agents
    out_p, weight_p = layer(h[perm], x[perm], group[perm], 12, batch[perm], return_weight=True)
    assert torch.allclose(out_p, out[perm], atol=1e-6) and torch.allclose(weight_p.to_dense(), weight)
    relabel = torch.randperm(12, generator=gen)  # rename groups
    out_r, weight_r = layer(h, x, relabel[group], 12, batch, return_weight=True)
    assert torch.allclose(out_r, out, atol=1e-6)
    assert torch.allclose(weight_r.to_dense()[relabel][:, relabel], weight, atol=1e-6)


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


@pytest.mark.parametrize("scoring", SCORINGS)
def test_attend_batched_equals_forward_per_entry(path, scoring):
    gen = torch.Generator().manual_seed(2)
    layer = InterGroupAttention(5, 8, heads=2, scoring=scoring)
    entries, k = 6, 4
    pooled, expected = [], []
    for b in range(entries):
        n = 3 + b  # entry 0 has 3 agents: at most 3 of its 4 groups are non-empty
        h, x = torch.randn(n, 5, generator=gen), torch.randn(n, 3, generator=gen)
        group = torch.randint(0, k, (n,), generator=gen)
        if b == 1:
            group.zero_()  # a single non-empty group: zeros
        out, weight = layer(h, x, group, k, return_weight=True)
        expected.append((out, weight.to_dense(), group))
        pooled.append(pool_groups(h, x, group, k))
    h_grp, x_grp, count, _ = (torch.cat(t) for t in zip(*pooled))
    group_batch = torch.arange(entries).repeat_interleave(k)
    out_grp, weight = layer.attend(h_grp, x_grp, count, group_batch, return_weight=True)
    lean_out, no_weight = layer.attend(h_grp, x_grp, count > 0, group_batch)
    assert no_weight is None and torch.allclose(lean_out, out_grp)
    weight = weight.to_dense()
    for b, (out, w, group) in enumerate(expected):
        rows = slice(b * k, (b + 1) * k)
        assert torch.allclose(out_grp[rows][group], out, atol=1e-6)
        assert torch.allclose(weight[rows, rows], w, atol=1e-6)
    assert torch.equal(out_grp[k:2 * k], torch.zeros(k, 3))
    off_block = weight.clone()
    for b in range(entries):
        off_block[b * k:(b + 1) * k, b * k:(b + 1) * k] = 0
    assert torch.equal(off_block, torch.zeros_like(weight))


@pytest.mark.parametrize("scoring", ["gatv2", "gat"])
def test_inter_group_gradients_reach_every_parameter(path, scoring):
    gen = torch.Generator().manual_seed(3)
    layer = InterGroupAttention(5, 8, heads=2, scoring=scoring)
    h, x, group, batch = random_inputs(gen)
    h.requires_grad_()
    out, weight = layer(h, x, group, 12, batch)
    assert weight is None
    (out * torch.arange(3.0)).sum().backward()
    for name, param in layer.named_parameters():
        assert torch.isfinite(param.grad).all() and param.grad.norm() > 1e-4, name
    assert torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0


@pytest.mark.parametrize("scoring", SCORINGS)
def test_inter_group_lonely_group(scoring):
    # One agent only: its group is alone, so zeros and finite gradients.
    layer = InterGroupAttention(5, 8, heads=2, scoring=scoring)
    h1 = torch.randn(1, 5, requires_grad=True)
    out, weight = layer(h1, torch.ones(1, 3), torch.tensor([2]), 3, return_weight=True)
    out.sum().backward()
    assert torch.equal(out, torch.zeros(1, 3)) and weight._nnz() == 0
    assert torch.isfinite(h1.grad).all()


@pytest.mark.parametrize("scoring", SCORINGS)
def test_all_paths_agree(monkeypatch, scoring):
    gen = torch.Generator().manual_seed(5)
    layer = InterGroupAttention(5, 8, heads=2, scoring=scoring)
    h, x, group, batch = random_inputs(gen)
    results = []
    for name in PATHS:
        use_path(monkeypatch, name)
        hg, xg = h.clone().requires_grad_(), x.clone().requires_grad_()
        layer.zero_grad()
        out, weight = layer(hg, xg, group, 12, batch, return_weight=True)
        (out * torch.arange(3.0)).sum().backward()
        grads = [p.grad.clone() for p in layer.parameters()]
        results.append((out, weight.to_dense(), hg.grad, xg.grad, *grads))
    for other in results[1:]:
        for first, second in zip(results[0], other):
            assert torch.allclose(first, second, atol=1e-6)


def test_inter_group_repr_and_errors():
    layer = InterGroupAttention(8, 32, heads=2)
    assert str(layer) == "InterGroupAttention(8, 32, heads=2, scoring='gatv2')"
    assert str(InterGroupAttention(8, 32, scoring="cosine")) == "InterGroupAttention(8, 32, scoring='cosine')"
    with pytest.raises(ValueError, match="InterGroupAttention: scoring='dot' is not valid; expected one of "
                                         "gatv2, gat, cosine"):
        InterGroupAttention(8, 32, scoring="dot")
    with pytest.raises(ValueError, match="InterGroupAttention: heads=0 is not valid; expected an integer >= 1"):
        InterGroupAttention(8, 32, heads=0)
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
@pytest.mark.parametrize("scoring", SCORINGS)
def test_inter_group_cuda(scoring):
    gen = torch.Generator().manual_seed(4)
    layer = InterGroupAttention(5, 8, heads=2, scoring=scoring)
    h, x, group, batch = random_inputs(gen)
    out, weight = layer(h, x, group, 12, batch, return_weight=True)
    out_c, weight_c = layer.cuda()(h.cuda(), x.cuda(), group.cuda(), 12, batch.cuda(), return_weight=True)
    assert torch.allclose(out_c.cpu(), out, atol=1e-5)
    assert torch.allclose(weight_c.to_dense().cpu(), weight.to_dense(), atol=1e-6)
