"""Random stacked-block graphs for checking the dense layer paths against the edge paths."""
import torch


def random_block_graph(gen: torch.Generator, entries: int, n: int, keep: float):
    """Adjacency ``[entries, n, n]`` (each pair kept with probability ``keep``, no self-loops)
    and the same graph as an ``edge_index`` over the ``entries * n`` stacked nodes
    (``adj[b, i, j]`` is the edge ``b*n + j -> b*n + i``)."""
    adj = torch.rand(entries, n, n, generator=gen) > 1 - keep
    adj.diagonal(dim1=1, dim2=2).fill_(False)
    b, i, j = adj.nonzero().unbind(1)
    return adj, torch.stack([b * n + j, b * n + i])
