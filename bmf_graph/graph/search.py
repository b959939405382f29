"""All pairs of agents closer than ``r`` (the search behind :mod:`bmf_graph.graph`), four ways
that give the same pairs:

- :func:`dense_pairs`: the ``[B, n, n]`` distance matrix of each batch entry, for small calls
  (:data:`DENSE_MAX_NODES`): a few large tensor operations;
- :func:`cell_list_pairs`: a cell list in pure torch (grid of cell side ``r``; each agent checks
  its own cell and half of the ``3^D - 1`` cells around it, each pair found once and mirrored),
  linear time in the number of agents, CPU and CUDA alike;
- :func:`kdtree_pairs`: scipy's ``cKDTree.query_pairs`` on CPU, the candidates checked again
  by :func:`squared_distance`;
- :func:`cluster_pairs`: torch-cluster's ``radius_graph`` (extra ``[cluster]``).

Distances are computed by :func:`squared_distance` everywhere, one coordinate at a time in the
same order, so a pair at (nearly) exactly ``r`` is in or out on every path alike.
"""
import itertools
from typing import Optional

import torch
from torch import Tensor

DENSE_MAX_NODES = 384
"""The ``"torch"`` backend compares all pairs densely when they number at most
``DENSE_MAX_NODES ** 2``: up to 384 agents in one graph, or ``B`` batch entries of at most
``n_max`` agents each with ``B * n_max ** 2 <= 384 ** 2`` (e.g. 36 teams of 64). Measured on
one CPU thread at battle density (0.08 agents per cell, r = 6), a whole ``radius_graph`` call
takes about 60 us at 64 agents by the dense path against 400 us by the cell list, and the two
cross near 500 agents (near 1,000 agents at 0.5 agents per cell); below the crossing the dense
path's few large operations win over the cell list's many small ones."""


def _gap_codes(cell: Tensor) -> tuple[Tensor, int]:
    """Dense codes ``1..M`` for the occupied cells of one axis that keep unit steps between
    adjacent cells and put a gap of 2 between non-adjacent ones, so ``code ± 1`` is the code of
    the neighbouring cell exactly when that cell is occupied. Returns (codes, extent ``M + 2``)."""
    uniq, inverse = torch.unique(cell, return_inverse=True)
    step = torch.ones_like(uniq)
    step[1:] = torch.where(uniq[1:] - uniq[:-1] == 1, 1, 2)
    code = step.cumsum(0)
    return code[inverse], int(code[-1]) + 2


def squared_distance(a: Tensor, b: Tensor) -> Tensor:
    """``‖a − b‖²`` over the last dimension, summed one coordinate at a time in order, so that
    every path (and broadcast shape) rounds a pair's distance the same way."""
    dist = None
    for d in range(a.size(-1)):
        diff = a[..., d] - b[..., d]
        dist = diff * diff if dist is None else dist + diff * diff
    return dist


def batch_slots(batch: Tensor, count: Tensor) -> Tensor:
    """Each node's rank within its batch entry ``[N]`` (in node order), given the members per
    entry ``count = bincount(batch)``, so that node ``i`` sits at ``[batch[i], slot[i]]`` of a
    padded ``[len(count), count.max()]`` layout."""
    order = torch.argsort(batch, stable=True)
    first = torch.cumsum(count, 0) - count
    slot = torch.empty_like(batch)
    slot[order] = torch.arange(batch.numel(), device=batch.device) - first[batch[order]]
    return slot


def dense_layout(n: int, batch: Optional[Tensor],
                  max_pairs: Optional[int] = None) -> Optional[tuple[int, int, bool, bool]]:
    """``(B, n_max, equal, ordered)`` of the dense path's ``[B, n_max, n_max]`` pairs, or
    ``None`` when an entry has more than ``DENSE_MAX_NODES`` nodes or the pairs would exceed
    ``max_pairs`` (default ``DENSE_MAX_NODES ** 2``); ``equal`` when every entry has ``n_max``
    nodes, ``ordered`` when ``batch`` is sorted. Both: every entry is one contiguous block (one
    graph, or stacked copies of one team), which needs no padding."""
    if batch is None:
        return (1, n, True, True) if n <= DENSE_MAX_NODES else None
    count = torch.bincount(batch)
    num_batch, n_max = count.numel(), int(count.max())
    if n_max > DENSE_MAX_NODES or num_batch * n_max * n_max > (max_pairs or DENSE_MAX_NODES ** 2):
        return None
    return num_batch, n_max, num_batch * n_max == n, not bool((batch[1:] < batch[:-1]).any())


def adjacency(padded: Tensor, r: float, loop: bool, real: Optional[Tensor]) -> Tensor:
    """``adj[b, i, j]``: node ``j`` of entry ``b`` lies closer than ``r`` to node ``i`` (the
    diagonal is ``loop``), both ends ``real`` (``[B, n]``, all if ``None``); ``padded`` is
    ``[B, n, D]``."""
    adj = squared_distance(padded.unsqueeze(2), padded.unsqueeze(1)) < r * r  # [entry, target, source]
    adj.diagonal(dim1=1, dim2=2).fill_(loop)
    if real is not None:
        adj &= real.unsqueeze(2) & real.unsqueeze(1)
    return adj


def dense_pairs(pos: Tensor, r: float, batch: Optional[Tensor], loop: bool,
                 layout: tuple[int, int, bool, bool],
                 valid: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """All pairs ``(source, target)`` of the same batch entry closer than ``r``, self pairs only
    when ``loop``, both ends in ``valid`` (all nodes if ``None``), from the distance matrix of
    each entry (``[B, n_max, n_max]``; entries padded to the largest unless they are equal
    contiguous blocks); sorted by (target, source)."""
    n = pos.size(0)
    num_batch, n_max, equal, ordered = layout
    if equal and ordered:  # equal contiguous blocks (or one graph): a view, no padding
        real = None if valid is None else valid.view(num_batch, n_max)
        adj = adjacency(pos.view(num_batch, n_max, -1), r, loop, real)
        flat = adj.view(-1).nonzero().view(-1)  # block b, target i, source j at b*n*n + i*n + j
        return flat % n_max + flat // (n_max * n_max) * n_max, flat // n_max
    batch = batch.long()
    slot = batch_slots(batch, torch.bincount(batch, minlength=num_batch))
    node = torch.full((num_batch, n_max), -1, dtype=torch.long, device=pos.device)
    node[batch, slot] = torch.arange(n, device=pos.device)
    padded = pos.new_zeros(num_batch, n_max, pos.size(1))
    padded[batch, slot] = pos
    real = node >= 0
    if valid is not None:
        real &= valid[node.clamp(min=0)]
    entry, target, source = adjacency(padded, r, loop, real).nonzero().unbind(1)
    source, target = node[entry, source], node[entry, target]
    if not ordered:  # entries interleaved
        order = torch.argsort(target * n + source)
        source, target = source[order], target[order]
    return source, target


def cell_list_pairs(pos: Tensor, r: float, batch: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """All pairs ``(source, target)``, ``source != target``, of the same batch entry with
    squared distance below ``r * r`` — by cell list, without a loop over agents.

    Agents are sorted by cell; each one looks at its own cell and the half of the neighbouring
    cells that come later in that order, keeps the later agents in range, and every pair found
    is returned in both directions.
    """
    n, dim = pos.shape
    device = pos.device
    # Cells slightly wider than r: rounding never puts a pair closer than r two cells apart.
    pos64 = pos.to(torch.float64)
    cell = ((pos64 - pos64.min(0).values) / (r * (1.0 + 1e-6))).floor().long()
    key = batch.long() if batch is not None else torch.zeros(n, dtype=torch.long, device=device)
    num_keys = int(key.max()) + 1
    strides = []
    for d in range(dim):
        code, extent = _gap_codes(cell[:, d])
        num_keys *= extent
        if num_keys >= 2 ** 62:
            raise ValueError(f"radius_graph: too many occupied cells to index in int64 "
                             f"(pos of shape {tuple(pos.shape)}, r={r})")
        key = key * extent + code
        strides = [s * extent for s in strides] + [1]
    # The own cell and the lexicographically positive offsets: each of those lies later in
    # cell order (every extent is >= 3, so an offset's key shift has the sign of its first
    # non-zero coordinate).
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=dim)
               if next((c for c in o if c != 0), 1) > 0]
    offset_key = torch.tensor(offsets, device=device) @ torch.tensor(strides, device=device)

    order = torch.argsort(key, stable=True)
    sorted_key, sorted_pos = key[order], pos[order]
    cells, counts = torch.unique_consecutive(sorted_key, return_counts=True)
    starts = counts.cumsum(0) - counts

    # Everything below runs on positions in cell order.
    query = (sorted_key[:, None] + offset_key[None, :]).view(-1)
    slot = torch.searchsorted(cells, query).clamp_(max=cells.numel() - 1)
    found = (cells[slot] == query).nonzero().view(-1)
    target = found // offset_key.numel()
    slot = slot[found]

    count = counts[slot]
    target = target.repeat_interleave(count)
    first = (count.cumsum(0) - count).repeat_interleave(count)
    source = starts[slot].repeat_interleave(count) \
        + torch.arange(target.numel(), device=device) - first
    later = source > target
    source, target = source[later], target[later]

    near = squared_distance(sorted_pos[source], sorted_pos[target]) < r * r
    source, target = order[source[near]], order[target[near]]
    return torch.cat([source, target]), torch.cat([target, source])


def kdtree_pairs(pos: Tensor, r: float, batch: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """The pairs of :func:`cell_list_pairs` from scipy's KD-tree (``cKDTree.query_pairs``, in
    C++), on the CPU whatever the device of ``pos``.

    The tree searches a radius slightly wider than ``r`` in float64, so it misses no pair that
    :func:`squared_distance` (in the dtype of ``pos``) puts below ``r * r``; the candidates are
    then kept by that same test, so the edges equal the other paths' bit for bit. Batch entries
    are kept apart by one more coordinate, ``batch * 4 * r'``, more than twice the searched
    radius ``r'`` apart from one entry to the next and equal within an entry.
    """
    from scipy.spatial import cKDTree

    device = pos.device
    points = pos.detach().to("cpu", torch.float64)
    wide = r * (1.0 + 1e-6)
    if batch is not None:
        points = torch.cat([points, batch.to("cpu", torch.float64).unsqueeze(1) * (4.0 * wide)], 1)
    # Median splits (balanced, compact nodes) build twice as slowly and query no faster here.
    tree = cKDTree(points.numpy(), balanced_tree=False, compact_nodes=False)
    found = tree.query_pairs(wide, output_type="ndarray")
    pair = torch.from_numpy(found.astype("int64", copy=False)).view(-1, 2).to(device)
    first, second = pair[:, 0], pair[:, 1]
    near = squared_distance(pos[first], pos[second]) < r * r
    if batch is not None:
        near &= batch[first] == batch[second]
    first, second = first[near], second[near]
    return torch.cat([first, second]), torch.cat([second, first])


def cluster_pairs(pos: Tensor, r: float, batch: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    import torch_cluster

    perm = None
    if batch is not None and bool((batch[1:] < batch[:-1]).any()):
        perm = torch.argsort(batch, stable=True)  # torch-cluster needs a sorted batch
        pos, batch = pos[perm], batch[perm]
    # torch-cluster keeps an arbitrary max_num_neighbors per target (and its CUDA kernel
    # allocates N * max_num_neighbors): grow the cap until no target reaches it.
    cap = 32
    while True:
        edge_index = torch_cluster.radius_graph(pos, r, batch, loop=False, max_num_neighbors=cap)
        degree = torch.bincount(edge_index[1], minlength=pos.size(0))
        if cap >= pos.size(0) - 1 or int(degree.max()) < cap:
            break
        cap = min(4 * cap, pos.size(0) - 1)
    if perm is not None:
        edge_index = perm[edge_index]
    return edge_index[0], edge_index[1]
