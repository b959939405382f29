"""Input checks (and the action conversion :func:`as_actions`) shared by the graph functions and
the layers: each check raises ``ValueError`` naming the caller (``owner``), the argument, the
value received and the value expected.

The checks cost nothing where they would get in the way (docs/integrations.md):

- while ``torch.compile`` traces and under a ``torch.func`` transform (``vmap``, ``grad``) none
  runs, so compiled and vmapped layers see no Python branch on tensor data;
- in eager mode shapes and dtypes are always checked (no device work); value ranges (``[0, N)``
  of an edge index, finite positions, ...) read tensor data, so by default (``"auto"``) they run
  on CPU tensors only, where that read is not a device synchronisation.

:func:`set_checks` switches between ``"auto"``, ``"full"`` (value ranges on every device) and
``"off"``.
"""
from typing import Optional

import torch
from torch import Tensor

MODES = ("auto", "full", "off")
_mode = "auto"


def set_checks(mode: str) -> None:
    """``"auto"`` (default): shapes always, value ranges on CPU tensors; ``"full"``: value ranges
    on every device too (one host synchronisation per check on CUDA); ``"off"``: no checks."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"set_checks: mode={mode!r} is not valid; expected one of "
                         f"{', '.join(MODES)}")
    _mode = mode


def get_checks() -> str:
    """The mode :func:`set_checks` set last."""
    return _mode


def tracing() -> bool:
    """Whether ``torch.compile`` traces or a ``torch.func`` transform (``vmap``, ``grad``) runs
    now: then no shape may depend on tensor data."""
    return torch.compiler.is_compiling() or torch._C._functorch.maybe_current_level() is not None


def checking() -> bool:
    """Whether checks run now: not ``"off"`` and not :func:`tracing` (``vmap``'s batched
    tensors have no single value to test)."""
    return _mode != "off" and not tracing()


def checking_values(t: Tensor) -> bool:
    """Whether checks that read the data of ``t`` run now (see the module docstring)."""
    return checking() and (_mode == "full" or t.device.type == "cpu")


def check_edge_index(edge_index: Tensor, num_nodes: int, owner: str) -> None:
    """Raise ``ValueError`` (naming ``owner``) unless ``edge_index`` is a long ``[2, E]``
    tensor with entries in ``[0, num_nodes)``."""
    if not checking():
        return
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise ValueError(f"{owner}: edge_index must have shape [2, E], got {shape}")
    if edge_index.dtype != torch.long:
        raise ValueError(f"{owner}: edge_index must be a torch.long tensor, "
                         f"got {edge_index.dtype}")
    if edge_index.numel() > 0 and checking_values(edge_index):
        lo, hi = map(int, torch.aminmax(edge_index))
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"{owner}: edge_index entries must lie in [0, {num_nodes}), "
                             f"got values in [{lo}, {hi}]")


def check_node_tensor(t: Tensor, name: str, owner: str, num_nodes: Optional[int] = None,
                      channels: Optional[int] = None) -> None:
    """Raise ``ValueError`` (naming ``owner`` and ``name``) unless ``t`` is a ``[num_nodes,
    channels]`` tensor (``None`` or a lazy ``-1`` leaves that size free)."""
    if not checking():
        return
    channels = None if channels == -1 else channels
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
    if not checking():
        return
    if not isinstance(index, Tensor) or index.shape != (num_nodes,):
        shape = tuple(index.shape) if isinstance(index, Tensor) else type(index)
        raise ValueError(f"{owner}: {name} must have shape [{num_nodes}], got {shape}")
    if index.dtype.is_floating_point or index.dtype == torch.bool:
        raise ValueError(f"{owner}: {name} must be an integer tensor, got {index.dtype}")
    if upper is not None:
        check_range(index, name, owner, upper)


def check_range(index: Tensor, name: str, owner: str, upper: int) -> None:
    """Raise ``ValueError`` unless the entries of ``index`` lie in ``[0, upper)`` (a data check:
    see :func:`checking_values`)."""
    if index.numel() > 0 and checking_values(index):
        lo, hi = map(int, torch.aminmax(index))
        if lo < 0 or hi >= upper:
            raise ValueError(f"{owner}: {name} entries must lie in [0, {upper}), "
                             f"got values in [{lo}, {hi}]")


def check_dense(x: Tensor, adj: Tensor, owner: str) -> None:
    """Raise ``ValueError`` unless ``x`` is ``[B, n, F]`` and ``adj`` a bool ``[B, n, n]``."""
    if not checking():
        return
    if not isinstance(x, Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
        raise ValueError(f"{owner}: x must have shape [B, n, F], got {shape}")
    b, n = x.shape[:2]
    if not isinstance(adj, Tensor) or adj.dtype != torch.bool or adj.shape != (b, n, n):
        got = (tuple(adj.shape), adj.dtype) if isinstance(adj, Tensor) else type(adj)
        raise ValueError(f"{owner}: adj must be a bool tensor of shape [{b}, {n}, {n}], got {got}")


def as_actions(x: Tensor, num_actions: Optional[int], owner: str, feature_dim: int = 2,
               dtype: Optional[torch.dtype] = None) -> Tensor:
    r"""Actions as a float tensor with ``feature_dim`` dimensions (``[N, F]``: 2, ``[B, n, F]``:
    3). Integer indices with one dimension fewer (``[N]``, ``[B, n]``) are one-hot encoded over
    ``num_actions``; integer or bool one-hot rows are cast to ``dtype`` (default: the default
    float dtype). Float tensors are returned as they are."""
    if not isinstance(x, Tensor) or x.is_floating_point():
        return x
    dtype = dtype or torch.get_default_dtype()
    if x.dim() == feature_dim - 1 and x.dtype != torch.bool:
        if num_actions is None:
            if checking():
                raise ValueError(f"{owner}: x holds action indices of shape {tuple(x.shape)}; "
                                 f"pass num_actions to the layer to one-hot them")
        else:
            check_range(x, "x", owner, num_actions)
            return one_hot(x, num_actions, dtype)
    return x.to(dtype)


def one_hot(index: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """``[..., num_classes]`` rows with a 1 at ``index`` (zeros out of range), by comparison
    with ``arange``: no data-dependent check, so it traces under ``torch.compile`` and ``vmap``."""
    classes = torch.arange(num_classes, device=index.device)
    return (index.unsqueeze(-1) == classes).to(dtype)
