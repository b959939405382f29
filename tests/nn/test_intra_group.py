import pytest
import torch

from bmf_graph.nn.intra_group import IntraGroupMeanField
from block_graphs import random_block_graph


def brute_intra_group(x, edge_index, group):
    out = torch.zeros_like(x)
    for i in range(x.size(0)):
        sources = [int(j) for j in edge_index[0, edge_index[1] == i] if group[j] == group[i]]
        if sources:
            out[i] = x[sources].mean(0)
    return out


def test_intra_group_tiny():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    edge_index = torch.tensor([[1, 2, 3, 0, 0], [0, 0, 0, 1, 3]])
    group = torch.tensor([0, 0, 1, 0])
    out = IntraGroupMeanField()(x, edge_index, group)
    # Node 0 averages nodes 1 and 3 (node 2 is in another group); node 2 has no edge in.
    assert out.tolist() == [[1.0, 1.5], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    assert str(IntraGroupMeanField()) == "IntraGroupMeanField()"


def test_intra_group_matches_brute_force_and_is_equivariant():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=gen)
    edge_index = torch.randint(0, 40, (2, 200), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    group = torch.randint(0, 4, (40,), generator=gen)
    out = IntraGroupMeanField()(x, edge_index, group)
    assert torch.allclose(out, brute_intra_group(x, edge_index, group), atol=1e-6)
    perm = torch.randperm(40, generator=gen)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(40)
    permuted = IntraGroupMeanField()(x[perm], inverse[edge_index], group[perm])
    assert torch.allclose(permuted, out[perm], atol=1e-6)


def test_intra_group_single_group_is_mean_field_and_isolated_zero():
    x = torch.randn(5, 3, requires_grad=True)
    edge_index = torch.tensor([[1, 2, 0], [0, 0, 1]])
    out = IntraGroupMeanField()(x, edge_index, torch.zeros(5, dtype=torch.long))
    assert torch.allclose(out[0], (x[1] + x[2]) / 2) and torch.equal(out[1], x[0])
    assert torch.equal(out[2:], torch.zeros(3, 3))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    alone = IntraGroupMeanField()(x, edge_index, torch.arange(5))  # each agent its own group
    assert torch.equal(alone, torch.zeros(5, 3))


def test_intra_group_dense_equals_edges():
    gen = torch.Generator().manual_seed(4)
    adj, edge_index = random_block_graph(gen, 2, 12, keep=0.6)
    group = torch.randint(0, 3, (24,), generator=gen) + 3 * torch.arange(2).repeat_interleave(12)
    one_hot = torch.nn.functional.one_hot(torch.randint(0, 4, (24,), generator=gen), 4).float()
    dense = IntraGroupMeanField().dense(one_hot.view(2, 12, 4), adj, group.view(2, 12)).view(24, 4)
    assert torch.equal(dense, IntraGroupMeanField()(one_hot, edge_index, group))
    assert torch.equal(dense, brute_intra_group(one_hot, edge_index, group))
    with pytest.raises(ValueError, match=r"IntraGroupMeanField: group must have shape \[2, 12\]"):
        IntraGroupMeanField().dense(one_hot.view(2, 12, 4), adj, group)


def test_intra_group_errors():
    x = torch.randn(4, 2)
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match=r"IntraGroupMeanField: group must have shape \[4\]"):
        IntraGroupMeanField()(x, edge_index, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="IntraGroupMeanField: group must be an integer tensor"):
        IntraGroupMeanField()(x, edge_index, torch.zeros(4))
    with pytest.raises(ValueError, match=r"IntraGroupMeanField: edge_index entries must lie"):
        IntraGroupMeanField()(x, torch.tensor([[0], [9]]), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"IntraGroupMeanField: x must have shape \[N, F\]"):
        IntraGroupMeanField()(torch.randn(4, 2, 1), edge_index, torch.zeros(4, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_intra_group_cuda():
    x = torch.randn(6, 3)
    edge_index = torch.tensor([[1, 2, 0, 5], [0, 0, 1, 4]])
    group = torch.tensor([0, 1, 0, 1, 1, 1])
    out = IntraGroupMeanField()(x.cuda(), edge_index.cuda(), group.cuda())
    assert torch.allclose(out.cpu(), IntraGroupMeanField()(x, edge_index, group), atol=1e-6)
