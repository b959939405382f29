import pytest
import torch
import torch.nn.functional as F

from bmf_graph.nn.gat_mean_field import GATMeanField
from bmf_graph.nn.mean_field import MeanField


def brute_gat(layer, h, x, edge_index):
    """Loops over agents: the reference's squared query-key scores, normalised per row."""
    out = torch.zeros_like(x)
    for i in range(x.size(0)):
        sources = edge_index[0, edge_index[1] == i]
        if sources.numel() == 0:
            continue
        score = ((h[sources] @ layer.key) @ (h[i] @ layer.query)) ** 2
        out[i] = score / (score.sum() + layer.eps) @ x[sources]
    return out


def simple_graph(n, e, gen):
    """Random edges without self loops or duplicates."""
    edge_index = torch.randint(0, n, (2, e), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    return torch.unique(edge_index, dim=1)


def test_gat_mean_field_reference_scores_hand_example():
    layer = GATMeanField(2, 2)
    with torch.no_grad():  # identity projections: s_ij = (h_i . h_j)^2
        layer.query.copy_(torch.eye(2))
        layer.key.copy_(torch.eye(2))
    h = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 3.0]])
    x = torch.eye(5)
    # Into 0 from 1, 2, 3: s = 4, 0, 1. Into 1 from 0: s = 4. Into 2 from 0: s = 0. 3, 4: none.
    edge_index = torch.tensor([[1, 2, 3, 0, 0], [0, 0, 0, 1, 2]])
    expected = torch.zeros(5, 5)
    expected[0, [1, 2, 3]] = torch.tensor([4.0, 0.0, 1.0]) / (5 + 1e-3)
    expected[1, 0] = 4 / (4 + 1e-3)
    for dense in (False, True):
        layer.dense = dense
        assert torch.allclose(layer(h, x, edge_index), expected)
    assert str(GATMeanField(3, 4)) == "GATMeanField(3, 4, dense=False)"
    assert str(GATMeanField(3, 4, dense=True)) == "GATMeanField(3, 4, dense=True)"


@pytest.mark.parametrize("dense", [False, True])
def test_gat_mean_field_matches_brute_force(dense):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    layer = GATMeanField(6, 8, dense=dense)
    h, x = torch.randn(30, 6, generator=gen), torch.randn(30, 4, generator=gen)
    edge_index = simple_graph(30, 120, gen)
    out = layer(h, x, edge_index)
    assert torch.allclose(out, brute_gat(layer, h, x, edge_index), atol=1e-5)


def test_gat_mean_field_dense_equals_sparse_with_gradients():
    gen = torch.Generator().manual_seed(1)
    sparse = GATMeanField(5, 7)
    dense = GATMeanField(5, 7, dense=True)
    dense.load_state_dict(sparse.state_dict())
    h = torch.randn(50, 5, generator=gen)
    x = torch.randn(50, 3, generator=gen)
    edge_index = simple_graph(45, 200, gen)  # nodes 45..49 isolated
    grads = []
    for layer in (sparse, dense):
        hh, xx = h.clone().requires_grad_(), x.clone().requires_grad_()
        out = layer(hh, xx, edge_index)
        (out * torch.arange(3.0)).sum().backward()
        assert torch.equal(out[45:], torch.zeros(5, 3))
        grads.append((out, hh.grad, xx.grad, layer.query.grad, layer.key.grad))
    for a, b in zip(*grads):
        assert torch.isfinite(a).all() and torch.allclose(a, b, atol=1e-5)
    assert grads[0][3].abs().sum() > 0 and grads[0][4].abs().sum() > 0  # attention learns


def test_gat_mean_field_permutation_equivariant():
    gen = torch.Generator().manual_seed(2)
    layer = GATMeanField(4, 8)
    h, x = torch.randn(25, 4, generator=gen), torch.randn(25, 3, generator=gen)
    edge_index = simple_graph(25, 80, gen)
    perm = torch.randperm(25, generator=gen)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(25)
    out = layer(h, x, edge_index)
    assert torch.allclose(layer(h[perm], x[perm], inverse[edge_index]), out[perm], atol=1e-6)


def test_gat_mean_field_one_neighbour_and_empty_graph():
    layer = GATMeanField(2, 4, dense=True)
    h, x = torch.randn(3, 2), torch.randn(3, 5)
    out = layer(h, x, torch.tensor([[2], [0]]))  # a single neighbour: weight s / (s + eps)
    s = ((h[0] @ layer.query) @ (h[2] @ layer.key)) ** 2
    assert torch.allclose(out[0], s / (s + layer.eps) * x[2]) and torch.equal(out[1:], torch.zeros(2, 5))
    out = GATMeanField(2, 4)(h, x, torch.empty(2, 0, dtype=torch.long))
    assert torch.equal(out, torch.zeros(3, 5))


def test_complete_equals_the_edge_list_of_every_alive_pair_with_gradients():
    """GATMeanField.complete on C graphs of n nodes == forward on the stacked graphs' edge list of
    every ordered pair of alive nodes of a graph; dead nodes and a graph's only alive node get 0."""
    gen = torch.Generator().manual_seed(4)
    layer = GATMeanField(5, 6)
    c, n = 3, 7
    h, x = torch.randn(c, n, 5, generator=gen), torch.randn(c, n, 4, generator=gen)
    alive = torch.rand(c, n, generator=gen) < 0.7
    alive[2] = False
    alive[2, 3] = True                                      # graph 2: one alive node
    flat, graph = alive.reshape(-1), torch.arange(c).repeat_interleave(n)
    same = flat.unsqueeze(0) & flat.unsqueeze(1) & (graph.unsqueeze(0) == graph.unsqueeze(1))
    same.fill_diagonal_(False)
    target, source = same.nonzero().t()
    results = []
    for dense_path in (True, False):
        layer.zero_grad()
        hh, xx = h.clone().requires_grad_(), x.clone().requires_grad_()
        if dense_path:
            out = layer.complete(hh, xx, alive)
        else:
            out = layer(hh.reshape(c * n, 5), xx.reshape(c * n, 4), torch.stack([source, target])).reshape(c, n, 4)
        (out * torch.arange(4.0)).sum().backward()
        results.append((out, hh.grad, xx.grad, layer.query.grad.clone(), layer.key.grad.clone()))
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-5)
    out = results[0][0]
    assert torch.equal(out[~alive], torch.zeros(int((~alive).sum()), 4)) and torch.equal(out[2, 3], torch.zeros(4))
    assert out[alive].abs().sum() > 0
    with pytest.raises(ValueError, match=r"GATMeanField.complete: h, x and alive have shapes \(3, 7, 5\), "
                                         r"\(3, 7, 4\) and \(3, 6\); expected \(C, n, F_in\)"):
        layer.complete(h, x, alive[:, :6])


def test_gat_mean_field_errors():
    layer = GATMeanField(3, 4)
    h, x = torch.randn(4, 3), torch.randn(4, 2)
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match=r"GATMeanField: h must have shape \[N, 3\], got \(4, 5"):
        layer(torch.randn(4, 5), x, edge_index)
    with pytest.raises(ValueError, match=r"GATMeanField: x must have shape \[4, F\], got \(3, 2"):
        layer(h, torch.randn(3, 2), edge_index)
    with pytest.raises(ValueError, match=r"GATMeanField: edge_index entries must lie in \[0, 4\)"):
        layer(h, x, torch.tensor([[0, 7], [1, 2]]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gat_mean_field_cuda():
    gen = torch.Generator().manual_seed(3)
    layer = GATMeanField(3, 4)
    h, x = torch.randn(20, 3, generator=gen), torch.randn(20, 2, generator=gen)
    edge_index = simple_graph(20, 60, gen)
    expected = layer(h, x, edge_index)
    layer = layer.cuda()
    for dense in (False, True):
        layer.dense = dense
        out = layer(h.cuda(), x.cuda(), edge_index.cuda())
        assert torch.allclose(out.cpu(), expected, atol=1e-5)
    alive = torch.rand(4, 5, generator=gen) < 0.7
    expected = layer.cpu().complete(h.view(4, 5, 3), x.view(4, 5, 2), alive)
    assert torch.allclose(layer.cuda().complete(h.view(4, 5, 3).cuda(), x.view(4, 5, 2).cuda(), alive.cuda()).cpu(),
                          expected, atol=1e-5)
