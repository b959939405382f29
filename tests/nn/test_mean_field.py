import pytest
import torch

from bmf_graph.nn.mean_field import MeanField
from block_graphs import random_block_graph


def brute_mean_field(x, edge_index):
    out = torch.zeros_like(x)
    for i in range(x.size(0)):
        sources = edge_index[0, edge_index[1] == i]
        if sources.numel() > 0:
            out[i] = x[sources].mean(0)
    return out


def random_graph(n, e, gen):
    edge_index = torch.randint(0, n, (2, e), generator=gen)
    return edge_index[:, edge_index[0] != edge_index[1]]


def test_mean_field_tiny():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    edge_index = torch.tensor([[1, 2, 0], [0, 0, 1]])
    out = MeanField()(x, edge_index)
    assert out.tolist() == [[0.5, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert str(MeanField()) == "MeanField()"


def test_mean_field_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=gen)
    edge_index = random_graph(40, 150, gen)
    assert torch.allclose(MeanField()(x, edge_index), brute_mean_field(x, edge_index), atol=1e-6)


def test_mean_field_permutation_equivariant():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(30, 4, generator=gen)
    edge_index = random_graph(30, 100, gen)
    perm = torch.randperm(30, generator=gen)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(30)
    out = MeanField()(x, edge_index)
    assert torch.allclose(MeanField()(x[perm], inverse[edge_index]), out[perm], atol=1e-6)


def test_mean_field_empty_graph_and_batches():
    x = torch.randn(5, 3)
    assert torch.equal(MeanField()(x, torch.empty(2, 0, dtype=torch.long)), torch.zeros(5, 3))
    assert MeanField()(torch.empty(0, 3), torch.empty(2, 0, dtype=torch.long)).shape == (0, 3)
    # Two batch entries in one graph give the same as separate calls.
    edge_index = torch.tensor([[1, 0, 2], [0, 1, 1]])
    both = MeanField()(torch.cat([x, x]), torch.cat([edge_index, edge_index + 5], 1))
    assert torch.allclose(both, torch.cat([MeanField()(x, edge_index)] * 2))


def test_mean_field_gradient():
    x = torch.randn(4, 2, requires_grad=True)
    MeanField()(x, torch.tensor([[1, 2], [0, 0]])).sum().backward()
    assert x.grad.tolist() == [[0.0, 0.0], [0.5, 0.5], [0.5, 0.5], [0.0, 0.0]]


def test_mean_field_dense_equals_edges():
    """One-hot actions: the dense mean gives the edge mean's exact bits; any x: close."""
    gen = torch.Generator().manual_seed(3)
    adj, edge_index = random_block_graph(gen, 3, 9, keep=0.4)
    one_hot = torch.nn.functional.one_hot(torch.randint(0, 5, (27,), generator=gen), 5).float()
    dense = MeanField().dense(one_hot.view(3, 9, 5), adj).view(27, 5)
    assert torch.equal(dense, MeanField()(one_hot, edge_index))
    x = torch.randn(27, 4, generator=gen)
    assert torch.allclose(MeanField().dense(x.view(3, 9, 4), adj).view(27, 4), brute_mean_field(x, edge_index),
                          atol=1e-6)
    with pytest.raises(ValueError, match=r"MeanField: adj must be a bool tensor of shape \[3, 9, 9\]"):
        MeanField().dense(x.view(3, 9, 4), adj.float())
    with pytest.raises(ValueError, match=r"MeanField: x must have shape \[B, n, F\], got \(27, 4\)"):
        MeanField().dense(x, adj)


def test_mean_field_errors():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"MeanField: x must have shape \[N, F\], got \(4,\)"):
        MeanField()(torch.randn(4), torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match=r"MeanField: edge_index must have shape \[2, E\]"):
        MeanField()(x, torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match=r"entries must lie in \[0, 4\), got values in \[0, 4\]"):
        MeanField()(x, torch.tensor([[0, 4], [1, 2]]))
    with pytest.raises(ValueError, match=r"got values in \[-1, 2\]"):
        MeanField()(x, torch.tensor([[0, -1], [1, 2]]))
    with pytest.raises(ValueError, match="edge_index must be a torch.long tensor, got torch.fl"):
        MeanField()(x, torch.tensor([[0.0], [1.0]]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mean_field_cuda():
    x = torch.randn(6, 3)
    edge_index = torch.tensor([[1, 2, 0, 5], [0, 0, 1, 4]])
    out = MeanField().cuda()(x.cuda(), edge_index.cuda())
    assert torch.allclose(out.cpu(), MeanField()(x, edge_index), atol=1e-6)
