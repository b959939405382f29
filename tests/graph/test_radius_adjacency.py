"""radius_adjacency: the dense, vmap- and compile-safe form of radius_graph."""
import pytest
import torch

from bmf_graph.graph import radius_adjacency, radius_graph


def test_radius_adjacency_equals_radius_graph_on_flattened_batch():
    gen = torch.Generator().manual_seed(0)
    pos = torch.rand(2, 3, 10, 2, generator=gen)   # [*, n, D] with two batch dimensions
    adj = radius_adjacency(pos, 0.4)
    assert adj.shape == (2, 3, 10, 10) and adj.dtype == torch.bool
    entry = torch.arange(6).repeat_interleave(10)
    edge_index = radius_graph(pos.view(-1, 2), 0.4, entry)
    b, i, j = adj.view(6, 10, 10).nonzero().unbind(1)
    assert torch.equal(torch.stack([b * 10 + j, b * 10 + i]), edge_index)
    assert torch.equal(radius_adjacency(pos, 0.4, loop=True),
                       adj | torch.eye(10, dtype=torch.bool))


def test_radius_adjacency_under_vmap_and_radius_graph_error():
    pos = torch.rand(4, 6, 2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.vmap(lambda p: radius_adjacency(p, 0.5))(pos),
                       radius_adjacency(pos, 0.5))
    with pytest.raises(ValueError, match="radius_graph: the number of edges depends on the "
                                         "positions, so it cannot run under vmap"):
        torch.vmap(lambda p: radius_graph(p, 0.5))(pos)
    with pytest.raises(ValueError, match=r"radius_adjacency: pos must have shape \[\*, n, D\], "
                                         r"got \(6,\)"):
        radius_adjacency(pos[0, :, 0], 0.5)
    with pytest.raises(ValueError, match="radius_adjacency: pos must be finite"):
        radius_adjacency(torch.full((2, 2), float("nan")), 0.5)
