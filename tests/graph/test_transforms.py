"""RadiusGraph against brute force, on one graph and on a PyG Batch."""
import pytest
import torch
from torch_geometric.data import Batch, Data

from bmf_graph.graph.transforms import RadiusGraph


def brute_radius_edges(pos, r, batch=None, loop=False):
    """All (source j, target i) with |p_i - p_j| < r in one batch entry, by a double loop."""
    n = pos.size(0)
    batch = torch.zeros(n, dtype=torch.long) if batch is None else batch
    edges = [(j, i) for i in range(n) for j in range(n)
             if (loop or i != j) and batch[i] == batch[j] and float((pos[i] - pos[j]).norm()) < r]
    return torch.tensor(edges, dtype=torch.long).view(-1, 2).t()


def test_transform_matches_brute_force_one_graph():
    gen = torch.Generator().manual_seed(0)
    pos = torch.rand(40, 2, generator=gen)
    data = RadiusGraph(0.2)(Data(pos=pos, edge_attr=torch.ones(3, 1)))
    assert torch.equal(data.edge_index, brute_radius_edges(pos, 0.2))
    assert data.edge_attr is None  # stale edge features go, as in T.RadiusGraph
    looped = RadiusGraph(0.2, loop=True)(Data(pos=pos))
    assert torch.equal(looped.edge_index, brute_radius_edges(pos, 0.2, loop=True))
    flipped = RadiusGraph(0.2, flow="target_to_source")(Data(pos=pos))
    assert torch.equal(flipped.edge_index, brute_radius_edges(pos, 0.2).flip(0))


def test_transform_on_batch_keeps_graphs_apart():
    gen = torch.Generator().manual_seed(1)
    graphs = [Data(pos=torch.rand(n, 3, generator=gen)) for n in (7, 12, 1, 9)]
    batch = RadiusGraph(0.5)(Batch.from_data_list(graphs))
    assert torch.equal(batch.edge_index, brute_radius_edges(batch.pos, 0.5, batch.batch))
    assert all(batch.batch[batch.edge_index[0]] == batch.batch[batch.edge_index[1]])
    nearest = RadiusGraph(0.5, max_num_neighbors=2)(Batch.from_data_list(graphs))
    assert int(torch.bincount(nearest.edge_index[1]).max()) <= 2


def test_transform_errors_and_repr():
    assert str(RadiusGraph(0.3)) == "RadiusGraph(r=0.3)"
    with pytest.raises(ValueError, match="RadiusGraph: flow='up' is not valid; expected "
                                         "one of source_to_target, target_to_source"):
        RadiusGraph(0.3, flow="up")
    with pytest.raises(ValueError, match="RadiusGraph: data must be a Data or Batch with "
                                         "pos, got Data without pos"):
        RadiusGraph(0.3)(Data(x=torch.ones(2, 1)))
