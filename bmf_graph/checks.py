"""Input checks shared by the graph functions and the layers: each raises ``ValueError`` naming
the caller (``owner``), the argument, the value received and the value expected."""
from typing import Optional

import torch
from torch import Tensor


def check_edge_index(edge_index: Tensor, num_nodes: int, owner: str) -> None:
    """Raise ``ValueError`` (naming ``owner``) unless ``edge_index`` is a long ``[2, E]``
    tensor with entries in ``[0, num_nodes)``."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise ValueError(f"{owner}: edge_index must have shape [2, E], got {shape}")
    if edge_index.dtype != torch.long:
        raise ValueError(f"{owner}: edge_index must be a torch.long tensor, "
                         f"got {edge_index.dtype}")
    if edge_index.numel() > 0:
        lo, hi = map(int, torch.aminmax(edge_index))
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"{owner}: edge_index entries must lie in [0, {num_nodes}), "
                             f"got values in [{lo}, {hi}]")


def check_node_tensor(t: Tensor, name: str, owner: str, num_nodes: Optional[int] = None,
                      channels: Optional[int] = None) -> None:
    """Raise ``ValueError`` (naming ``owner`` and ``name``) unless ``t`` is a ``[num_nodes,
    channels]`` tensor (``None`` leaves that size free)."""
    want = f"[{'N' if num_nodes is None else num_nodes}, {'F' if channels is None else channels}]"
    if not isinstance(t, Tensor) or t.dim() != 2 \
            or (num_nodes is not None and t.size(0) != num_nodes) \
            or (channels is not None and t.size(1) != channels):
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t)
        raise ValueError(f"{owner}: {name} must have shape {want}, got {shape}")


def check_index(index: Tensor, name: str, owner: str, num_nodes: int,
                upper: Optional[int] = None) -> None:
    """Raise ``ValueError`` unless ``index`` is an integer ``[num_nodes]`` tensor, with entries
    in ``[0, upper)`` when ``upper`` is given."""
    if not isinstance(index, Tensor) or index.shape != (num_nodes,):
        shape = tuple(index.shape) if isinstance(index, Tensor) else type(index)
        raise ValueError(f"{owner}: {name} must have shape [{num_nodes}], got {shape}")
    if index.dtype.is_floating_point or index.dtype == torch.bool:
        raise ValueError(f"{owner}: {name} must be an integer tensor, got {index.dtype}")
    if upper is not None and index.numel() > 0:
        lo, hi = map(int, torch.aminmax(index))
        if lo < 0 or hi >= upper:
            raise ValueError(f"{owner}: {name} entries must lie in [0, {upper}), "
                             f"got values in [{lo}, {hi}]")


def check_dense(x: Tensor, adj: Tensor, owner: str) -> None:
    """Raise ``ValueError`` unless ``x`` is ``[B, n, F]`` and ``adj`` a bool ``[B, n, n]``."""
    if not isinstance(x, Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
        raise ValueError(f"{owner}: x must have shape [B, n, F], got {shape}")
    b, n = x.shape[:2]
    if not isinstance(adj, Tensor) or adj.dtype != torch.bool or adj.shape != (b, n, n):
        got = (tuple(adj.shape), adj.dtype) if isinstance(adj, Tensor) else type(adj)
        raise ValueError(f"{owner}: adj must be a bool tensor of shape [{b}, {n}, {n}], got {got}")
