"""Neighbour graphs from agent positions (docs/method.md).

``radius_graph`` links ``j -> i`` iff ``i != j``, both lie in the same ``batch`` entry and
``‖pos_i − pos_j‖ < r`` (strict, as torch-cluster). Two backends give identical edges, sorted by
(target, source); the pair search itself is :mod:`bmf_graph.graph.search`:

- ``"torch"``: pure torch. Small calls (:data:`~bmf_graph.graph.search.DENSE_MAX_NODES`)
  compare all pairs of each batch entry at once; larger ones use a cell list, linear time in
  the number of agents, CPU and CUDA alike, and the one path inside ``torch.compile``.
- ``"kdtree"``: the same dense path for small calls; larger ones use scipy's ``cKDTree`` on
  the CPU (``benchmarks/graph_backends.py``: about 3x faster than the cell list there).
- ``"cluster"``: torch-cluster's ``radius_graph`` (extra ``[cluster]``).

``set_backend("auto")`` (the default) takes ``"kdtree"`` for CPU tensors (faster there than the
cell list and torch-cluster alike); for other devices and while ``torch.compile`` traces it takes
torch-cluster when it imports, else ``"torch"``. The import of torch-cluster is tried once and its
outcome kept until the next ``set_backend``.
"""
import math
from typing import Optional

import torch
from torch import Tensor

from bmf_graph.checks import check_index, checking, checking_values
from bmf_graph.graph.search import (adjacency, cell_list_pairs, cluster_pairs, dense_layout, dense_pairs,
                                     kdtree_pairs, squared_distance)

_BACKENDS = ("auto", "torch", "kdtree", "cluster")
_PAIRS = {"torch": cell_list_pairs, "kdtree": kdtree_pairs, "cluster": cluster_pairs}
_backend = "auto"
_auto_backend: Optional[str] = None  # what "auto" resolved to; None until first needed

DENSE_ADJACENCY_MAX_PAIRS = 2 ** 22
""":func:`dense_adjacency` takes blocks of up to
:data:`~bmf_graph.graph.search.DENSE_MAX_NODES` agents and up to this many pairs in all (e.g.
1,024 copies of a 64-agent team: 4 MB as bool). Unlike the edge list, its cost per agent grows
with the block size only, not with the number of blocks."""


def _cluster_available() -> bool:
    try:
        import torch_cluster  # noqa: F401
    except ImportError:
        return False
    return True


def set_backend(name: str) -> None:
    """Choose the ``radius_graph`` backend: ``"auto"``, ``"torch"``, ``"kdtree"`` or ``"cluster"``.

    Every call forgets what ``"auto"`` resolved to, so ``set_backend("auto")`` after installing
    torch-cluster picks it up."""
    global _backend, _auto_backend
    if name not in _BACKENDS:
        raise ValueError(f"set_backend: name must be one of {_BACKENDS}, got {name!r}")
    if name == "cluster" and not _cluster_available():
        raise ImportError("set_backend: backend 'cluster' needs torch-cluster; "
                          "install the extra with `pip install bmf_graph[cluster]`")
    _backend, _auto_backend = name, None


def get_backend(device: torch.device | str = "cpu") -> str:
    """The backend ``radius_graph`` uses now for tensors on ``device`` (``"auto"`` resolved:
    ``"kdtree"`` on the CPU; on other devices or while ``torch.compile`` traces, ``"cluster"``
    when torch-cluster imports, else ``"torch"``; the import of torch-cluster is tried at the
    first such call only, not at every graph)."""
    global _auto_backend
    if _backend != "auto":
        return _backend
    if torch.device(device).type == "cpu" and not torch.compiler.is_compiling():
        return "kdtree"
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
    adj = adjacency(pos.reshape(-1, n, dim), r, loop, None)
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
    backend = get_backend(device) if r > 0 else None
    layout = dense_layout(n, batch) if backend in ("torch", "kdtree") else None
    if layout is not None:  # the dense path masks invalid nodes itself
        source, target = dense_pairs(pos, r, batch, loop, layout, valid)  # (target, source) order
    elif valid is not None:  # the other paths run on the valid nodes, renumbered
        slots = valid.nonzero().view(-1)
        sub_batch = batch[slots] if batch is not None else None
        return slots[_edges(pos[slots], r, sub_batch, loop, max_num_neighbors)]
    else:
        if backend is None:
            source = target = torch.empty(0, dtype=torch.long, device=device)
        else:
            source, target = _PAIRS[backend](pos, r, batch)
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
    dist2 = squared_distance(pos[source], pos[target])
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
    ``n`` (stacked copies of one team), with ``n <= DENSE_MAX_NODES`` (:mod:`~bmf_graph.graph.search`) and
    ``B * n * n <= DENSE_ADJACENCY_MAX_PAIRS``, returns ``adj`` ``[B, n, n]`` bool with
    ``adj[b, i, j]`` true iff ``(b*n + j) -> (b*n + i)`` is an edge of
    ``neighbour_graph(pos, r, alive, batch)``; otherwise ``None``. Dense layers
    (:meth:`~bmf_graph.nn.MeanField.dense`) consume it with no edge list and no scatter.
    """
    r = _check_alive_inputs(pos, r, alive, batch, None, "dense_adjacency")
    layout = dense_layout(pos.size(0), batch, DENSE_ADJACENCY_MAX_PAIRS) if pos.size(0) > 0 else None
    if layout is None:
        return None
    num_batch, n, equal, ordered = layout
    if not (equal and ordered):
        return None
    if not pos.dtype.is_floating_point:
        pos = pos.to(torch.get_default_dtype())
    real = None if alive is None else alive.view(num_batch, n)
    return adjacency(pos.view(num_batch, n, -1), r, False, real)


def _check_alive_inputs(pos: Tensor, r: float, alive: Optional[Tensor], batch: Optional[Tensor],
                        max_num_neighbors: Optional[int], owner: str) -> float:
    if alive is not None and (not isinstance(alive, Tensor) or alive.dtype != torch.bool
                              or alive.dim() != 1 or alive.size(0) != pos.size(0)):
        shape = tuple(alive.shape) if isinstance(alive, Tensor) else type(alive)
        dtype = alive.dtype if isinstance(alive, Tensor) else None
        raise ValueError(f"{owner}: alive must be a bool tensor of shape [{pos.size(0)}], "
                         f"got shape {shape} and dtype {dtype}")
    return _check_inputs(pos, r, batch, max_num_neighbors, alive, owner)
