"""Neighbour graphs from agent positions (docs/method.md).

``radius_graph`` links ``j -> i`` iff ``i != j``, both lie in the same ``batch`` entry and
``‖pos_i − pos_j‖ < r`` (strict, as torch-cluster). Two backends give identical edges, sorted by
(target, source):

- ``"torch"``: a cell list in pure torch (grid of cell side ``r``; each agent checks its own
  cell and half of the ``3^D - 1`` cells around it, each pair found once and mirrored). Linear
  time in the number of agents, CPU and CUDA alike. Small calls (``DENSE_MAX_NODES``)
  compare all pairs of each batch entry at once instead (an ``N x N`` mask per entry: fewer,
  larger tensor operations, which beat the cell list's fixed cost at small ``N``); both paths
  compute the same squared distances in the same order, so their edges are identical.
- ``"cluster"``: torch-cluster's ``radius_graph`` (extra ``[cluster]``).

``set_backend("auto")`` (the default) takes torch-cluster when it imports, else the cell list;
the import is tried once and its outcome kept until the next ``set_backend``.
"""
import itertools
import math
from typing import Optional

import torch
from torch import Tensor

from bmf_graph.checks import check_index, checking, checking_values

_BACKENDS = ("auto", "torch", "cluster")
_backend = "auto"
_auto_backend: Optional[str] = None  # what "auto" resolved to; None until first needed

DENSE_MAX_NODES = 384
"""The ``"torch"`` backend compares all pairs densely when they number at most
``DENSE_MAX_NODES ** 2``: up to 384 agents in one graph, or ``B`` batch entries of at most
``n_max`` agents each with ``B * n_max ** 2 <= 384 ** 2`` (e.g. 36 teams of 64). Measured on one CPU thread at battle density (0.08 agents
per cell, r = 6), a whole ``radius_graph`` call takes about 60 us at 64 agents by the dense path
against 400 us by the cell list, and the two cross near 500 agents (near 1,000 agents at 0.5
agents per cell); below the crossing the dense path's few large operations win over the cell
list's many small ones."""


DENSE_ADJACENCY_MAX_PAIRS = 2 ** 22
""":func:`dense_adjacency` takes blocks of up to ``DENSE_MAX_NODES`` agents and up to this many
pairs in all (e.g. 1,024 copies of a 64-agent team: 4 MB as bool). Unlike the edge list, its
cost per agent grows with the block size only, not with the number of blocks."""


def _cluster_available() -> bool:
    try:
        import torch_cluster  # noqa: F401
    except ImportError:
        return False
    return True


def set_backend(name: str) -> None:
    """Choose the ``radius_graph`` backend: ``"auto"``, ``"torch"`` or ``"cluster"``.

    Every call forgets what ``"auto"`` resolved to, so ``set_backend("auto")`` after installing
    torch-cluster picks it up."""
    global _backend, _auto_backend
    if name not in _BACKENDS:
        raise ValueError(f"set_backend: name must be one of {_BACKENDS}, got {name!r}")
    if name == "cluster" and not _cluster_available():
        raise ImportError("set_backend: backend 'cluster' needs torch-cluster; "
                          "install the extra with `pip install bmf_graph[cluster]`")
    _backend, _auto_backend = name, None


def get_backend() -> str:
    """The backend ``radius_graph`` uses now (``"auto"`` resolved to ``"torch"``/``"cluster"``;
    the import of torch-cluster is tried at the first call only, not at every graph)."""
    global _auto_backend
    if _backend != "auto":
        return _backend
    if _auto_backend is None:
        _auto_backend = "cluster" if _cluster_available() else "torch"
    return _auto_backend


def _check_inputs(pos: Tensor, r: float, batch: Optional[Tensor],
                  max_num_neighbors: Optional[int], alive: Optional[Tensor] = None,
                  owner: str = "radius_graph") -> float:
    if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.size(1) < 1:
        shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos)
        raise ValueError(f"{owner}: pos must have shape [N, D] (D >= 1, usually 2), "
                         f"got {shape}")
    if isinstance(r, Tensor):
        r = r.item()
    r = float(r)
    if not math.isfinite(r) or r < 0:
        raise ValueError(f"{owner}: r must be a finite number >= 0, got {r}")
    if pos.dtype.is_floating_point and checking_values(pos):
        finite = torch.isfinite(pos).all(1)
        if not bool((finite if alive is None else finite | ~alive).all()):
            raise ValueError(f"{owner}: pos must be finite, got NaN or inf entries")
    if batch is not None:
        check_index(batch, "batch", owner, pos.size(0))
        if batch.numel() > 0 and checking_values(batch) and int(batch.min()) < 0:
            raise ValueError(f"{owner}: batch entries must be >= 0, got {int(batch.min())}")
    if max_num_neighbors is not None and max_num_neighbors < 0:
        raise ValueError(f"{owner}: max_num_neighbors must be None or >= 0, "
                         f"got {max_num_neighbors}")
    return r


def _gap_codes(cell: Tensor) -> tuple[Tensor, int]:
    """Dense codes ``1..M`` for the occupied cells of one axis that keep unit steps between
    adjacent cells and put a gap of 2 between non-adjacent ones, so ``code ± 1`` is the code of
    the neighbouring cell exactly when that cell is occupied. Returns (codes, extent ``M + 2``)."""
    uniq, inverse = torch.unique(cell, return_inverse=True)
    step = torch.ones_like(uniq)
    step[1:] = torch.where(uniq[1:] - uniq[:-1] == 1, 1, 2)
    code = step.cumsum(0)
    return code[inverse], int(code[-1]) + 2


def _squared_distance(a: Tensor, b: Tensor) -> Tensor:
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


def _dense_layout(n: int, batch: Optional[Tensor],
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


def _adjacency(padded: Tensor, r: float, loop: bool, real: Optional[Tensor]) -> Tensor:
    """``adj[b, i, j]``: node ``j`` of entry ``b`` lies closer than ``r`` to node ``i`` (the
    diagonal is ``loop``), both ends ``real`` (``[B, n]``, all if ``None``); ``padded`` is
    ``[B, n, D]``."""
    adj = _squared_distance(padded.unsqueeze(2), padded.unsqueeze(1)) < r * r  # [entry, target, source]
    adj.diagonal(dim1=1, dim2=2).fill_(loop)
    if real is not None:
        adj &= real.unsqueeze(2) & real.unsqueeze(1)
    return adj


def _dense_pairs(pos: Tensor, r: float, batch: Optional[Tensor], loop: bool,
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
        adj = _adjacency(pos.view(num_batch, n_max, -1), r, loop, real)
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
    entry, target, source = _adjacency(padded, r, loop, real).nonzero().unbind(1)
    source, target = node[entry, source], node[entry, target]
    if not ordered:  # entries interleaved
        order = torch.argsort(target * n + source)
        source, target = source[order], target[order]
    return source, target


def _cell_list_pairs(pos: Tensor, r: float, batch: Optional[Tensor]) -> tuple[Tensor, Tensor]:
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

    near = _squared_distance(sorted_pos[source], sorted_pos[target]) < r * r
    source, target = order[source[near]], order[target[near]]
    return torch.cat([source, target]), torch.cat([target, source])


def _cluster_pairs(pos: Tensor, r: float, batch: Optional[Tensor]) -> tuple[Tensor, Tensor]:
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


def radius_graph(pos: Tensor, r: float, batch: Optional[Tensor] = None, loop: bool = False,
                 max_num_neighbors: Optional[int] = None) -> Tensor:
    r"""Edges ``j -> i`` between agents closer than ``r``:

    .. math::
        \mathcal{E} = \{(j, i) : i \ne j,\ b_i = b_j,\ \lVert p_i - p_j \rVert_2 < r\}

    Args:
        pos (Tensor): agent positions. Integer positions are cast to the default float dtype.
        r (float): radius, finite and ``>= 0`` (strict ``<``; ``r = 0`` gives no edges).
        batch (Tensor, optional): batch entry of each agent; edges never cross entries.
            Need not be sorted. (default: ``None``, one graph)
        loop (bool): also add the self-edge ``i -> i`` of every agent. (default: ``False``)
        max_num_neighbors (int, optional): keep at most this many sources per target, the
            nearest ones (self-edge first, ties by source index). (default: ``None``, all)

    Shapes:
        pos ``(|V|, D)``, batch ``(|V|)`` → edge_index ``(2, |E|)`` long, row 0 = source ``j``,
        row 1 = target ``i``, sorted by (target, source).
    """
    if torch._C._functorch.maybe_current_level() is not None:
        raise ValueError("radius_graph: the number of edges depends on the positions, so it cannot "
                         "run under vmap; use radius_adjacency(pos [..., n, D], r) instead")
    r = _check_inputs(pos, r, batch, max_num_neighbors)
    return _edges(pos, r, batch, loop, max_num_neighbors)


def radius_adjacency(pos: Tensor, r: float, loop: bool = False) -> Tensor:
    r""":func:`radius_graph` of ``B`` independent graphs of ``n`` agents as a dense adjacency:
    ``pos`` :math:`(*, n, D)` gives ``adj`` :math:`(*, n, n)` bool with ``adj[..., i, j]`` iff
    :math:`\lVert p_i - p_j \rVert < r` (``j -> i``; the diagonal is ``loop``). No shape
    depends on the positions, so it runs under ``torch.compile`` and ``torch.vmap`` (e.g. in a
    TorchRL critic); the edges equal those of :func:`radius_graph` on the flattened batch."""
    if checking() and (not isinstance(pos, Tensor) or pos.dim() < 2):
        shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos)
        raise ValueError(f"radius_adjacency: pos must have shape [*, n, D], got {shape}")
    if checking():
        r = _check_inputs(pos.reshape(-1, pos.size(-1)), r, None, None, None, "radius_adjacency")
    if not pos.dtype.is_floating_point:
        pos = pos.to(torch.get_default_dtype())
    batch_shape, (n, dim) = pos.shape[:-2], pos.shape[-2:]
    adj = _adjacency(pos.reshape(-1, n, dim), r, loop, None)
    return adj.view(*batch_shape, n, n)


def _edges(pos: Tensor, r: float, batch: Optional[Tensor], loop: bool,
           max_num_neighbors: Optional[int], valid: Optional[Tensor] = None) -> Tensor:
    """:func:`radius_graph` on checked inputs, over the nodes in ``valid`` only (all if
    ``None``; the others are isolated and their positions never compared)."""
    if not pos.dtype.is_floating_point:
        pos = pos.to(torch.get_default_dtype())
    n, device = pos.size(0), pos.device
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    backend = get_backend() if r > 0 else None
    layout = _dense_layout(n, batch) if backend == "torch" else None
    if layout is not None:  # the dense path masks invalid nodes itself
        source, target = _dense_pairs(pos, r, batch, loop, layout, valid)  # (target, source) order
    elif valid is not None:  # the other paths run on the valid nodes, renumbered
        slots = valid.nonzero().view(-1)
        sub_batch = batch[slots] if batch is not None else None
        return slots[_edges(pos[slots], r, sub_batch, loop, max_num_neighbors)]
    else:
        if backend is None:
            source = target = torch.empty(0, dtype=torch.long, device=device)
        else:
            pairs = _cluster_pairs if backend == "cluster" else _cell_list_pairs
            source, target = pairs(pos, r, batch)
        if loop:
            self_loops = torch.arange(n, device=device)
            source, target = torch.cat([source, self_loops]), torch.cat([target, self_loops])
        order = torch.argsort(target * n + source)
        source, target = source[order], target[order]
    if max_num_neighbors is not None:
        source, target = _keep_nearest(pos, source, target, max_num_neighbors)
    return torch.stack([source, target])


def _keep_nearest(pos: Tensor, source: Tensor, target: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Keep the ``k`` nearest sources of each target, edges given sorted by (target, source)."""
    n = pos.size(0)
    dist2 = _squared_distance(pos[source], pos[target])
    order = torch.argsort(dist2, stable=True)              # (dist, source) within equal target
    order = order[torch.argsort(target[order], stable=True)]  # -> (target, dist, source)
    sorted_target = target[order]
    degree = torch.bincount(target, minlength=n)
    first = (degree.cumsum(0) - degree)[sorted_target]
    rank = torch.arange(order.numel(), device=pos.device) - first
    kept = order[rank < k].sort().values                   # back to (target, source) order
    return source[kept], target[kept]


def neighbour_graph(pos: Tensor, r: float, alive: Optional[Tensor] = None,
                    batch: Optional[Tensor] = None, loop: bool = False,
                    max_num_neighbors: Optional[int] = None) -> Tensor:
    r"""``radius_graph`` over the alive agents only, with edges in slot indices of ``pos``.

    Args:
        pos (Tensor): positions of all agent slots, dead ones included.
        r (float): radius, as in :func:`radius_graph`.
        alive (Tensor, optional): bool mask of live slots. (default: ``None``, all alive)
        batch, loop, max_num_neighbors: as in :func:`radius_graph`.

    Shapes:
        pos ``(N, D)``, alive ``(N)``, batch ``(N)`` → edge_index ``(2, |E|)``; dead slots are
        isolated (and their positions are never read, so they may hold any value).
    """
    if alive is None:
        return radius_graph(pos, r, batch, loop, max_num_neighbors)
    r = _check_alive_inputs(pos, r, alive, batch, max_num_neighbors, "neighbour_graph")
    return _edges(pos, r, batch, loop, max_num_neighbors, valid=alive)


def dense_adjacency(pos: Tensor, r: float, alive: Optional[Tensor] = None,
                    batch: Optional[Tensor] = None) -> Optional[Tensor]:
    r""":func:`neighbour_graph` as a dense adjacency when that is cheaper than an edge list.

    When ``batch`` is ``None`` or splits the ``N`` agents into ``B`` equal contiguous blocks of
    ``n`` (stacked copies of one team), with ``n <= DENSE_MAX_NODES`` and
    ``B * n * n <= DENSE_ADJACENCY_MAX_PAIRS``, returns ``adj`` ``[B, n, n]`` bool with
    ``adj[b, i, j]`` true iff ``(b*n + j) -> (b*n + i)`` is an edge of
    ``neighbour_graph(pos, r, alive, batch)``; otherwise ``None``. Dense layers
    (:meth:`~bmf_graph.nn.MeanField.dense`) consume it with no edge list and no scatter.
    """
    r = _check_alive_inputs(pos, r, alive, batch, None, "dense_adjacency")
    layout = _dense_layout(pos.size(0), batch, DENSE_ADJACENCY_MAX_PAIRS) if pos.size(0) > 0 else None
    if layout is None:
        return None
    num_batch, n, equal, ordered = layout
    if not (equal and ordered):
        return None
    if not pos.dtype.is_floating_point:
        pos = pos.to(torch.get_default_dtype())
    real = None if alive is None else alive.view(num_batch, n)
    return _adjacency(pos.view(num_batch, n, -1), r, False, real)


def _check_alive_inputs(pos: Tensor, r: float, alive: Optional[Tensor], batch: Optional[Tensor],
                        max_num_neighbors: Optional[int], owner: str) -> float:
    if alive is not None and (not isinstance(alive, Tensor) or alive.dtype != torch.bool
                              or alive.dim() != 1 or alive.size(0) != pos.size(0)):
        shape = tuple(alive.shape) if isinstance(alive, Tensor) else type(alive)
        dtype = alive.dtype if isinstance(alive, Tensor) else None
        raise ValueError(f"{owner}: alive must be a bool tensor of shape [{pos.size(0)}], "
                         f"got shape {shape} and dtype {dtype}")
    return _check_inputs(pos, r, batch, max_num_neighbors, alive, owner)
