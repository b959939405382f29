"""PyG conventions of the layers: torch.compile(fullgraph=True), lazy -1 channels, integer
actions, inferred num_groups, and the dense [B, n, F] entry points against the sparse path."""
import pytest
import torch

from bmf_graph.graph import radius_adjacency, radius_graph
from bmf_graph.nn import GATMeanField, InterGroupAttention, IntraGroupMeanField, MeanField

SCORINGS = ("gatv2", "gat", "cosine")


def batched_inputs(b=3, n=8, k=3, seed=0):
    """B entries of n agents: embeddings, one-hot actions (4 kinds), groups in [0, k) with
    group k - 1 left empty in entry 0, positions in the unit square."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(b, n, 6, generator=gen)
    action = torch.randint(0, 4, (b, n), generator=gen)
    group = torch.randint(0, k, (b, n), generator=gen)
    group[0] = group[0] % (k - 1)
    return h, action, group, torch.rand(b, n, 2, generator=gen)


def test_compile_fullgraph_matches_eager():
    # aot_eager traces exactly what inductor would compile (dynamo + AOT autograd) in seconds;
    # most of the time is dynamo's start-up, paid once.
    torch.manual_seed(0)
    h, action, group, pos = batched_inputs()
    x = torch.nn.functional.one_hot(action, 4).float()
    flat_h, flat_x, flat_group = h[0], x[0], group[0]
    edge_index = radius_graph(pos[0], 0.5)
    cases = [(InterGroupAttention(6, 8, heads=2), (flat_h, flat_x, flat_group, 3)),
             (InterGroupAttention(6, 8, scoring="cosine").dense, (h, x, group, 3)),
             (MeanField(), (flat_x, edge_index)),
             (IntraGroupMeanField(), (flat_x, edge_index, flat_group)),
             (GATMeanField(6, 8), (flat_h, flat_x, edge_index))]
    for fn, args in cases:
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
        eager, out = fn(*args), compiled(*args)
        eager, out = (eager[0], out[0]) if isinstance(eager, tuple) else (eager, out)
        assert torch.allclose(out, eager, atol=1e-6)


@pytest.mark.slow
def test_compile_inductor_matches_eager():
    """The default backend (C++ code generation: about 30 s on a 2-core machine)."""
    torch.manual_seed(0)
    h, action, group, _ = batched_inputs()
    layer = InterGroupAttention(6, 8, heads=2)
    compiled = torch.compile(layer.dense, fullgraph=True)
    assert torch.allclose(compiled(h, action.float().unsqueeze(-1), group, 3)[0],
                          layer.dense(h, action.float().unsqueeze(-1), group, 3)[0], atol=1e-5)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_lazy_channels_inter_group(scoring):
    h, action, group, _ = batched_inputs()
    lazy = InterGroupAttention(-1, 8, heads=2, scoring=scoring)
    assert str(lazy).startswith("InterGroupAttention(-1, 8")
    out, _ = lazy(h[0], action[0].float().unsqueeze(1), group[0])
    torch.manual_seed(1)
    eager = InterGroupAttention(6, 8, heads=2, scoring=scoring)
    eager.load_state_dict(lazy.state_dict())
    assert torch.equal(eager(h[0], action[0].float().unsqueeze(1), group[0])[0], out)
    with pytest.raises(ValueError, match=r"InterGroupAttention: in_channels=-2 is not valid; "
                                         r"expected an integer >= 1 \(or -1, lazy\)"):
        InterGroupAttention(-2, 8)


def test_lazy_channels_gat_mean_field_and_state_dict():
    h, action, _, pos = batched_inputs()
    x, edge_index = action[0].float().unsqueeze(1), radius_graph(pos[0], 0.6)
    lazy = GATMeanField(-1, 5)
    out = lazy(h[0], x, edge_index)
    assert lazy.query.shape == (6, 5) and lazy.key.shape == (6, 5)
    other = GATMeanField(-1, 5)
    other.load_state_dict(lazy.state_dict())  # a lazy layer takes a stored state's shapes
    assert torch.equal(other(h[0], x, edge_index), out)
    with pytest.raises(ValueError, match=r"GATMeanField: h must have shape \[N, 6\], got \(8, 3\)"):
        lazy(h[0, :, :3], x, edge_index)


def test_integer_actions_equal_float_one_hot():
    h, action, group, pos = batched_inputs()
    one_hot = torch.nn.functional.one_hot(action, 4).float()
    edge_index = radius_graph(pos[0], 0.6)
    for layer, args in ((MeanField, (edge_index,)), (IntraGroupMeanField, (edge_index, group[0]))):
        expected = layer()(one_hot[0], *args)
        assert torch.equal(layer(num_actions=4)(action[0], *args), expected)
        assert torch.equal(layer()(one_hot[0].long(), *args), expected)
        with pytest.raises(ValueError, match=f"{layer.__name__}: x holds action indices of shape "
                                             r"\(8,\); pass num_actions"):
            layer()(action[0], *args)
    torch.manual_seed(0)
    attention = InterGroupAttention(6, 8, num_actions=4)
    expected = attention(h[0], one_hot[0], group[0], 3)[0]
    assert torch.equal(attention(h[0], action[0], group[0], 3)[0], expected)
    assert torch.equal(attention(h[0], one_hot[0].int(), group[0], 3)[0], expected)
    assert str(attention) == "InterGroupAttention(6, 8, heads=1, scoring='gatv2', num_actions=4)"
    gat = GATMeanField(6, 4, num_actions=4)
    assert torch.equal(gat(h[0], action[0], edge_index), gat(h[0], one_hot[0], edge_index))


def test_num_groups_inferred():
    h, action, group, _ = batched_inputs()
    x = action.float().unsqueeze(-1)
    attention = InterGroupAttention(6, 8)
    flat = group[1]
    assert torch.equal(attention(h[1], x[1], flat)[0],
                       attention(h[1], x[1], flat, int(flat.max()) + 1)[0])
    assert torch.equal(attention.dense(h, x, group)[0], attention.dense(h, x, group, 3)[0])
    with pytest.raises(ValueError, match="InterGroupAttention: num_groups must be given under "
                                         "torch.compile or torch.func transforms"):
        torch.vmap(lambda a, b, c: attention(a, b, c)[0])(h, x, group)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_dense_entry_equals_sparse_on_flattened_batch(scoring):
    h, action, group, pos = batched_inputs(b=4, n=9, k=3)
    b, n, k = 4, 9, 3
    x = torch.nn.functional.one_hot(action, 4).float()
    torch.manual_seed(0)
    attention = InterGroupAttention(6, 8, heads=2, scoring=scoring, num_actions=4)
    entry = torch.arange(b).repeat_interleave(n)
    global_group = (group + torch.arange(b).unsqueeze(1) * k).view(-1)
    sparse, sparse_weight = attention(h.view(-1, 6), x.view(-1, 4), global_group, b * k, entry,
                                      return_weight=True)
    dense, dense_weight = attention.dense(h, action, group, k, return_weight=True)
    assert torch.allclose(dense.view(-1, 4), sparse, atol=1e-6)
    assert torch.equal(dense_weight.indices(), sparse_weight.indices())
    assert torch.allclose(dense_weight.values(), sparse_weight.values(), atol=1e-6)

    adj = radius_adjacency(pos, 0.45)
    edge_index = radius_graph(pos.view(-1, 2), 0.45, entry)
    assert torch.equal(MeanField().dense(x, adj).view(-1, 4), MeanField()(x.view(-1, 4), edge_index))
    assert torch.equal(IntraGroupMeanField().dense(x, adj, group).view(-1, 4),
                       IntraGroupMeanField()(x.view(-1, 4), edge_index, global_group))


def test_dense_entry_errors():
    h, action, group, _ = batched_inputs()
    attention = InterGroupAttention(6, 8)
    x = action.float().unsqueeze(-1)
    with pytest.raises(ValueError, match=r"InterGroupAttention.dense: group must have shape "
                                         r"\[3, 8\], got \(3, 7\)"):
        attention.dense(h, x, group[:, :7], 3)
    with pytest.raises(ValueError, match=r"InterGroupAttention.dense: group entries must lie in "
                                         r"\[0, 2\), got values in \[0, 2\]"):
        attention.dense(h, x, group, 2)
    with pytest.raises(ValueError, match=r"InterGroupAttention.dense: h must have shape "
                                         r"\[B, n, 6\], got \(8, 6\)"):
        attention.dense(h[0], x, group, 3)


def test_layers_under_vmap_match_a_loop():
    torch.manual_seed(0)
    h, action, group, pos = batched_inputs()
    x = torch.nn.functional.one_hot(action, 4).float()
    attention = InterGroupAttention(6, 8, heads=2)

    def bmf(h, x, group, pos):  # one call per stack of environments, as a vmapped critic
        adj = radius_adjacency(pos, 0.5)
        return (IntraGroupMeanField().dense(x, adj, group) + MeanField().dense(x, adj)
                + attention.dense(h, x, group, 3)[0])

    stacked = [t.unsqueeze(0).expand(2, *t.shape) for t in (h, x, group, pos)]
    stacked[0] = stacked[0] + torch.randn_like(stacked[0])  # the two calls differ
    vmapped = torch.vmap(bmf)(*stacked)
    looped = torch.stack([bmf(*(t[i] for t in stacked)) for i in range(2)])
    assert torch.allclose(vmapped, looped, atol=1e-6)


def test_intra_group_weighted_form_equals_filtered_edges(monkeypatch):
    """Under compile/vmap the layer weights edges 0/1 instead of dropping them: same bits."""
    import bmf_graph.nn.intra_group as intra_group
    h, action, group, pos = batched_inputs(b=1, n=40, k=5)
    x, edge_index = torch.randn(40, 3), radius_graph(pos[0], 0.4)
    eager = IntraGroupMeanField()(x, edge_index, group[0])
    monkeypatch.setattr(intra_group, "tracing", lambda: True)
    assert torch.equal(IntraGroupMeanField()(x, edge_index, group[0]), eager)
