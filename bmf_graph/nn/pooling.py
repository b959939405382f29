"""Group pooling of the inter-group attention (paper Eq. 6, right): group means of the agents'
embeddings and actions, and the membership maps that spread a group's row back to its agents."""
import numbers
from typing import Optional

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from bmf_graph.checks import check_index, check_node_tensor, check_range, checking, \
    checking_values, one_hot

ONE_HOT_MAX_ENTRIES = 2 ** 14  # up to this N * K, group means and spreading are matmuls


def infer_num_groups(group: Tensor, num_groups: Optional[int], owner: str) -> int:
    """``num_groups`` if given, else ``group.max() + 1`` (``1`` for no agents): one read of the
    data, so ``torch.compile``/``vmap`` need ``num_groups`` passed."""
    if num_groups is not None:
        if checking() and (not isinstance(num_groups, numbers.Integral) or num_groups < 1):
            raise ValueError(f"{owner}: num_groups must be an int >= 1, got {num_groups!r}")
        return int(num_groups)
    if not checking():
        raise ValueError(f"{owner}: num_groups must be given under torch.compile or "
                         f"torch.func transforms (inferring it reads the group ids)")
    if not isinstance(group, Tensor) or group.dtype.is_floating_point:
        return 1  # the group check that follows names what is wrong
    return int(group.max()) + 1 if group.numel() > 0 else 1


def check_pool_inputs(h: Tensor, x: Tensor, group: Tensor, num_groups: int,
                       batch: Optional[Tensor], owner: str,
                       channels: Optional[int] = None) -> None:
    check_node_tensor(h, "h", owner, channels=channels)
    check_node_tensor(x, "x", owner, num_nodes=h.size(0))
    check_index(group, "group", owner, h.size(0), upper=num_groups)
    if batch is not None:
        check_index(batch, "batch", owner, h.size(0))


class _Membership:
    r"""Which group each agent is in, as the two linear maps of the membership matrix
    :math:`A \in \{0, 1\}^{N \times K}`: :meth:`mean` :math:`= D^{-1} A^\top t` (group means,
    zeros for empty groups; :math:`D` = member counts) and :meth:`spread` :math:`= A t` (each
    agent reads its group's row). Up to ``ONE_HOT_MAX_ENTRIES`` = N * K, :math:`A` is built and
    each map is one matmul (fewer, cheaper autograd nodes than the index_add / index_select used
    above that)."""

    def __init__(self, group: Tensor, num_groups: int, dtype: torch.dtype):
        self.group = group.long()
        self.count = torch.zeros(num_groups, dtype=torch.long, device=group.device).index_add_(
            0, self.group, torch.ones_like(self.group))
        inv_count = 1 / self.count.clamp(min=1).to(dtype).unsqueeze(1)
        self.one_hot = None
        if group.numel() * num_groups <= ONE_HOT_MAX_ENTRIES:
            self.one_hot = one_hot(self.group, num_groups, dtype)
            self.mean_map = self.one_hot.t() * inv_count  # [K, N], rows sum to 1 (or 0)
        else:
            self.inv_count = inv_count

    def mean(self, t: Tensor) -> Tensor:
        if self.one_hot is not None:
            return self.mean_map.to(t.dtype) @ t
        sums = t.new_zeros(self.count.numel(), t.size(1)).index_add(0, self.group, t)
        return sums * self.inv_count.to(t.dtype)

    def spread(self, t: Tensor) -> Tensor:
        if self.one_hot is not None:
            return self.one_hot.to(t.dtype) @ t
        return t.index_select(0, self.group)


def pool(h: Tensor, x: Tensor, group: Tensor, num_groups: int, batch: Optional[Tensor],
          owner: str) -> tuple[Tensor, Tensor, _Membership, Optional[Tensor]]:
    # group_batch is None without batch (pool_groups fills in the zeros it documents).
    members = _Membership(group, num_groups, h.dtype)
    h_grp, x_grp, count = members.mean(h), members.mean(x), members.count
    if batch is None:
        return h_grp, x_grp, members, None
    group_batch = scatter(batch.long(), group, 0, num_groups, reduce="min")
    if checking_values(batch):
        highest = scatter(batch.long(), group, 0, num_groups, reduce="max")
        split = (group_batch != highest).nonzero().view(-1)
        if split.numel() > 0:
            m = int(split[0])
            raise ValueError(f"{owner}: group {m} has members in batch entries "
                             f"{int(group_batch[m])} and {int(highest[m])}; expected each group "
                             f"inside one batch entry (use ids global over the batch)")
    group_batch = group_batch.masked_fill(count == 0, -1)
    return h_grp, x_grp, members, group_batch


def pool_groups(h: Tensor, x: Tensor, group: Tensor, num_groups: Optional[int] = None,
                batch: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Group means of embeddings and actions (docs/method.md):

    .. math::
        h_m = \frac{1}{|G_m|} \sum_{j \in G_m} h_j, \qquad
        a_m = \frac{1}{|G_m|} \sum_{j \in G_m} a_j

    Args:
        h (Tensor): agent embeddings (VAE latent means).
        x (Tensor): agent previous actions.
        group (Tensor): group id of each agent in ``[0, num_groups)``, global over the batch.
        num_groups (int, optional): number of groups :math:`K` over the whole batch.
            (default: ``None``, ``group.max() + 1``)
        batch (Tensor, optional): batch entry of each agent; all members of a group must lie
            in one entry. (default: ``None``)

    Returns:
        ``(h_grp, x_grp, count, group_batch)``: group means (zeros for empty groups), member
        counts, and the batch entry of each group (``0`` without ``batch``; ``-1`` for empty
        groups).

    Shapes:
        :math:`(N, D), (N, F), (N)` → :math:`(K, D), (K, F), (K), (K)`
    """
    num_groups = infer_num_groups(group, num_groups, "pool_groups")
    check_pool_inputs(h, x, group, num_groups, batch, "pool_groups")
    h_grp, x_grp, members, group_batch = pool(h, x, group, num_groups, batch, "pool_groups")
    count = members.count
    if group_batch is None:
        group_batch = torch.zeros_like(count).masked_fill(count == 0, -1)
    return h_grp, x_grp, count, group_batch


def check_batched(h: Tensor, x: Tensor, group: Tensor, k: int, channels: int,
                   owner: str) -> None:
    """Shapes of :meth:`InterGroupAttention.dense`: ``h [B, n, channels]``, ``x [B, n, F]``,
    integer ``group [B, n]`` in ``[0, k)``."""
    if not isinstance(h, Tensor) or h.dim() != 3 or channels not in (-1, h.size(-1)):
        shape = tuple(h.shape) if isinstance(h, Tensor) else type(h)
        raise ValueError(f"{owner}: h must have shape [B, n, {'F' if channels == -1 else channels}]"
                         f", got {shape}")
    for name, t, dims in (("x", x, 3), ("group", group, 2)):
        if not isinstance(t, Tensor) or t.dim() != dims or t.shape[:2] != h.shape[:2]:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t)
            want = list(h.shape[:2]) + (["F"] if dims == 3 else [])
            raise ValueError(f"{owner}: {name} must have shape [{', '.join(map(str, want))}], "
                             f"got {shape}")
    if group.dtype.is_floating_point or group.dtype == torch.bool:
        raise ValueError(f"{owner}: group must be an integer tensor, got {group.dtype}")
    check_range(group, "group", owner, k)
