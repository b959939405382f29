"""Inter-group attention: weights between the pooled groups of a team (paper Eq. 6, right)."""
import numbers
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot
from torch_geometric.utils import scatter, softmax

from bmf_graph.checks import check_index, check_node_tensor

DENSE_MAX_GROUPS = 128  # up to this many groups per entry, attention runs on dense scores
ONE_HOT_MAX_ENTRIES = 2 ** 14  # up to this N * K, group means and spreading are matmuls
SCORINGS = ("gatv2", "gat", "cosine")


def _check_pool_inputs(h: Tensor, x: Tensor, group: Tensor, num_groups: int,
                       batch: Optional[Tensor], owner: str,
                       channels: Optional[int] = None) -> None:
    check_node_tensor(h, "h", owner, channels=channels)
    check_node_tensor(x, "x", owner, num_nodes=h.size(0))
    if not isinstance(num_groups, numbers.Integral) or num_groups < 1:
        raise ValueError(f"{owner}: num_groups must be an int >= 1, got {num_groups!r}")
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
        self.count = torch.bincount(self.group, minlength=num_groups)
        inv_count = 1 / self.count.clamp(min=1).to(dtype).unsqueeze(1)
        self.one_hot = None
        if group.numel() * num_groups <= ONE_HOT_MAX_ENTRIES:
            self.one_hot = torch.zeros(group.numel(), num_groups, dtype=dtype,
                                       device=group.device).scatter_(1, self.group.unsqueeze(1), 1)
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


def _pool(h: Tensor, x: Tensor, group: Tensor, num_groups: int, batch: Optional[Tensor],
          owner: str) -> tuple[Tensor, Tensor, _Membership, Optional[Tensor]]:
    # group_batch is None without batch (pool_groups fills in the zeros it documents).
    members = _Membership(group, num_groups, h.dtype)
    h_grp, x_grp, count = members.mean(h), members.mean(x), members.count
    if batch is None:
        return h_grp, x_grp, members, None
    group_batch = scatter(batch.long(), group, 0, num_groups, reduce="min")
    highest = scatter(batch.long(), group, 0, num_groups, reduce="max")
    split = (group_batch != highest).nonzero().view(-1)
    if split.numel() > 0:
        m = int(split[0])
        raise ValueError(f"{owner}: group {m} has members in batch entries "
                         f"{int(group_batch[m])} and {int(highest[m])}; expected each group "
                         f"inside one batch entry (use ids global over the batch)")
    group_batch = group_batch.masked_fill(count == 0, -1)
    return h_grp, x_grp, members, group_batch


def pool_groups(h: Tensor, x: Tensor, group: Tensor, num_groups: int,
                batch: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Group means of embeddings and actions (docs/method.md):

    .. math::
        h_m = \frac{1}{|G_m|} \sum_{j \in G_m} h_j, \qquad
        a_m = \frac{1}{|G_m|} \sum_{j \in G_m} a_j

    Args:
        h (Tensor): agent embeddings (VAE latent means).
        x (Tensor): agent previous actions.
        group (Tensor): group id of each agent in ``[0, num_groups)``, global over the batch.
        num_groups (int): number of groups :math:`K` over the whole batch.
        batch (Tensor, optional): batch entry of each agent; all members of a group must lie
            in one entry. (default: ``None``)

    Returns:
        ``(h_grp, x_grp, count, group_batch)``: group means (zeros for empty groups), member
        counts, and the batch entry of each group (``0`` without ``batch``; ``-1`` for empty
        groups).

    Shapes:
        :math:`(N, D), (N, F), (N)` → :math:`(K, D), (K, F), (K), (K)`
    """
    _check_pool_inputs(h, x, group, num_groups, batch, "pool_groups")
    h_grp, x_grp, members, group_batch = _pool(h, x, group, int(num_groups), batch,
                                               "pool_groups")
    count = members.count
    if group_batch is None:
        group_batch = torch.zeros_like(count).masked_fill(count == 0, -1)
    return h_grp, x_grp, count, group_batch


def group_pairs(nonempty: Tensor, group_batch: Optional[Tensor] = None) -> Tensor:
    r"""Complete directed graph without self loops over the non-empty groups of each batch
    entry, built without a loop over entries: ``[2, P]`` with row 0 = source ``n``, row 1 =
    target ``m``, :math:`P = \sum_b k_b (k_b - 1)` for :math:`k_b` non-empty groups in entry b."""
    groups = nonempty.nonzero().view(-1)
    if group_batch is not None:
        entry = group_batch[groups]
        perm = torch.argsort(entry, stable=True)
        groups, entry = groups[perm], entry[perm]
        size = torch.unique_consecutive(entry, return_counts=True)[1]
    else:
        size = groups.new_full((1,), groups.numel())
    seg_size = size.repeat_interleave(size)          # own entry's group count, per group
    seg_start = (size.cumsum(0) - size).repeat_interleave(size)
    target = torch.arange(groups.numel(), device=groups.device).repeat_interleave(seg_size)
    first = (seg_size.cumsum(0) - seg_size).repeat_interleave(seg_size)
    source = seg_start.repeat_interleave(seg_size) \
        + torch.arange(target.numel(), device=groups.device) - first
    distinct = source != target
    return torch.stack([groups[source[distinct]], groups[target[distinct]]])


def block_size(nonempty: Tensor, group_batch: Optional[Tensor] = None) -> Optional[int]:
    """Groups per batch entry ``k`` when the non-empty groups of entry ``b`` are among rows
    ``b*k .. b*k+k-1`` (how :class:`~bmf_graph.nn.DynamicGrouping` and replayed records number
    them), so attention can run on dense ``[B, k, k]`` blocks; ``K`` without ``group_batch``
    (one entry); ``None`` for any other layout or no groups."""
    num_groups = nonempty.numel()
    if num_groups == 0:
        return None
    if group_batch is None:
        return num_groups
    entries = int(group_batch.max()) + 1
    if entries <= 1:
        return num_groups
    if num_groups % entries:
        return None
    block = num_groups // entries
    own = torch.arange(num_groups, device=nonempty.device) // block
    return block if bool(((group_batch == own) | ~nonempty).all()) else None


class InterGroupAttention(MessagePassing):
    r"""Attention between the groups of a team (paper Eq. 6, second line): on the complete
    directed graph over the non-empty groups of one ``batch`` entry, without self loops,

    .. math::
        \tilde{a}_m = \sum_{n \ne m} w_{mn}\, a_n, \qquad \tilde{a}_i = \tilde{a}_{g_i}

    with :math:`h_m, a_n` the group means of :func:`pool_groups`. The weights :math:`w_{mn}`
    come from one of three scorers (``scoring``):

    - ``"gatv2"``: :math:`w_{mn} = \operatorname{softmax}_{n \ne m}\big(\mathbf{a}^\top
      \mathrm{LeakyReLU}(\mathbf{W}_{dst} h_m + \mathbf{W}_{src} h_n)\big)` (Brody et al., 2022).
      The score depends on the pair, so each group may rank the others in its own order.
    - ``"gat"``: :math:`w_{mn} = \operatorname{softmax}_{n \ne m}\big(\mathrm{LeakyReLU}(
      \mathbf{a}_{dst}^\top \mathbf{W} h_m + \mathbf{a}_{src}^\top \mathbf{W} h_n)\big)`
      (Velickovic et al., 2018). LeakyReLU is monotonic, so every group ranks the others in the
      same order ("static" attention).
    - ``"cosine"``: :math:`w_{mn} = \max(\cos(h_m, h_n), 0) / \sum_{n' \ne m} \max(\cos(h_m,
      h_{n'}), 0)`, zeros where that sum is 0; no parameters (the paper's released code uses
      cosine weights between group representations).

    A group alone in its entry (or empty) gets zeros. With several heads (``gat``, ``gatv2``),
    :math:`w` is the mean of the heads' weights.

    Args:
        in_channels (int): size of each embedding ``h_i``.
        hidden_channels (int): size of ``W h_m`` per head (unused by ``cosine``).
        heads (int): number of attention heads (``cosine`` has one). (default: ``1``)
        scoring (str): ``"gatv2"``, ``"gat"`` or ``"cosine"``. (default: ``"gatv2"``)
        negative_slope (float): LeakyReLU slope. (default: ``0.2``)

    Shapes:
        - **input:** embeddings :math:`(N, F_{in})`, actions :math:`(N, F)`, group ids
          :math:`(N)` in :math:`[0, K)`, batch :math:`(N)` (optional)
        - **output:** per-agent inter-group action :math:`(N, F)`; with ``return_weight=True``
          also the weights as a sparse :math:`(K, K)` tensor (``weight[m, n]`` = :math:`w_{mn}`,
          one stored entry per pair of non-empty groups of one entry)
    """

    def __init__(self, in_channels: int, hidden_channels: int, heads: int = 1,
                 scoring: str = "gatv2", negative_slope: float = 0.2):
        super().__init__(aggr="add", node_dim=0)
        if scoring not in SCORINGS:
            raise ValueError(f"InterGroupAttention: scoring={scoring!r} is not valid; expected "
                             f"one of {', '.join(SCORINGS)}")
        for arg, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                           ("heads", heads)):
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"InterGroupAttention: {arg}={value!r} is not valid; expected an "
                                 f"integer >= 1")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.heads = 1 if scoring == "cosine" else heads
        self.scoring = scoring
        self.negative_slope = negative_slope
        width = self.heads * hidden_channels
        if scoring == "gatv2":
            self.lin_dst = Linear(in_channels, width, bias=False, weight_initializer="glorot")
            self.lin_src = Linear(in_channels, width, bias=False, weight_initializer="glorot")
            self.att = Parameter(torch.empty(1, heads, hidden_channels))
        elif scoring == "gat":
            self.lin = Linear(in_channels, width, bias=False, weight_initializer="glorot")
            self.att_src = Parameter(torch.empty(1, heads, hidden_channels))
            self.att_dst = Parameter(torch.empty(1, heads, hidden_channels))
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for module in self.children():
            if isinstance(module, Linear):
                module.reset_parameters()
        for name, param in self.named_parameters(recurse=False):
            glorot(param)

    def forward(self, h: Tensor, x: Tensor, group: Tensor, num_groups: int,
                batch: Optional[Tensor] = None,
                return_weight: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        """:func:`pool_groups`, then :meth:`attend`, then each agent reads its group's row."""
        _check_pool_inputs(h, x, group, num_groups, batch, "InterGroupAttention",
                           channels=self.in_channels)
        h_grp, x_grp, members, group_batch = _pool(h, x, group, int(num_groups), batch,
                                                   "InterGroupAttention")
        out_grp, weight = self._attend(h_grp, x_grp, members.count > 0, group_batch,
                                       return_weight)
        return members.spread(out_grp), weight

    def attend(self, h_grp: Tensor, x_grp: Tensor, count_or_nonempty: Tensor,
               group_batch: Optional[Tensor] = None,
               return_weight: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        """Attention over pooled groups, e.g. recomputed from a replay batch of ``B`` stored
        transitions with their groups numbered ``0..B*k-1`` and ``group_batch`` = transition.

        Args:
            h_grp (Tensor): group embeddings ``[K, in_channels]``.
            x_grp (Tensor): group mean actions ``[K, F]``.
            count_or_nonempty (Tensor): member counts (integer) or a bool mask, ``[K]``;
                groups with count 0 / ``False`` are empty.
            group_batch (Tensor, optional): batch entry of each group ``[K]``; groups attend
                only within their entry. When entry ``b`` owns rows ``b*k .. b*k+k-1`` (see
                :func:`block_size`), attention runs on dense ``[B, k, k]`` blocks; other
                layouts score the group pairs. (default: ``None``, one entry)
            return_weight (bool): also return the weights, a sparse ``[K, K]`` tensor.
                (default: ``False``)

        Returns:
            ``(out_grp [K, F], weight or None)``.
        """
        owner = "InterGroupAttention.attend"
        check_node_tensor(h_grp, "h_grp", owner, channels=self.in_channels)
        num_groups = h_grp.size(0)
        check_node_tensor(x_grp, "x_grp", owner, num_nodes=num_groups)
        if not isinstance(count_or_nonempty, Tensor) \
                or count_or_nonempty.shape != (num_groups,) \
                or count_or_nonempty.dtype.is_floating_point:
            got = (f"shape {tuple(count_or_nonempty.shape)}, dtype {count_or_nonempty.dtype}"
                   if isinstance(count_or_nonempty, Tensor) else type(count_or_nonempty))
            raise ValueError(f"{owner}: count_or_nonempty must be an integer or bool tensor of "
                             f"shape [{num_groups}], got {got}")
        if group_batch is not None:
            check_index(group_batch, "group_batch", owner, num_groups)
        nonempty = count_or_nonempty if count_or_nonempty.dtype == torch.bool \
            else count_or_nonempty > 0
        return self._attend(h_grp, x_grp, nonempty, group_batch, return_weight)

    # ------------------------------------------------------------------ scores
    def _parts(self, h_grp: Tensor) -> tuple[Tensor, Tensor]:
        """Each group's share of the pair score, as the target ``m`` and as the source ``n``."""
        if self.scoring == "gatv2":
            shape = (-1, self.heads, self.hidden_channels)
            return self.lin_dst(h_grp).view(shape), self.lin_src(h_grp).view(shape)
        if self.scoring == "gat":
            z = self.lin(h_grp).view(-1, self.heads, self.hidden_channels)
            return (z * self.att_dst).sum(-1), (z * self.att_src).sum(-1)
        unit = F.normalize(h_grp, dim=-1)
        return unit, unit

    def _score(self, dst: Tensor, src: Tensor) -> Tensor:
        """Scores ``[..., heads]`` of the pairs ``(m, n)`` from broadcast or gathered parts."""
        if self.scoring == "gatv2":
            return (F.leaky_relu(dst + src, self.negative_slope) * self.att).sum(-1)
        if self.scoring == "gat":
            return F.leaky_relu(dst + src, self.negative_slope)
        return (dst * src).sum(-1, keepdim=True)

    # ------------------------------------------------------------------ weights
    def _attend(self, h_grp: Tensor, x_grp: Tensor, nonempty: Tensor, group_batch: Optional[Tensor],
                return_weight: bool) -> tuple[Tensor, Optional[Tensor]]:
        dst, src = self._parts(h_grp)
        block = block_size(nonempty, group_batch)
        if block is not None and block <= DENSE_MAX_GROUPS:
            return self._attend_dense(dst, src, x_grp, nonempty, block, return_weight)
        return self._attend_sparse(dst, src, x_grp, nonempty, group_batch, return_weight)

    def _attend_dense(self, dst: Tensor, src: Tensor, x_grp: Tensor, nonempty: Tensor, block: int,
                      return_weight: bool) -> tuple[Tensor, Optional[Tensor]]:
        # All pairs of each block of groups at once, [block b, target m, source n, head]; pairs
        # that may not attend (self, empty) get weight 0, and a row without any pair is zeros.
        num_blocks = x_grp.size(0) // block
        nonempty = nonempty.view(num_blocks, block)
        allowed = nonempty.unsqueeze(2) & nonempty.unsqueeze(1)
        allowed.diagonal(dim1=1, dim2=2).fill_(False)
        dst, src = dst.view(num_blocks, block, *dst.shape[1:]), src.view(num_blocks, block, *src.shape[1:])
        score = self._score(dst.unsqueeze(2), src.unsqueeze(1))
        mask = allowed.unsqueeze(-1)
        if self.scoring == "cosine":
            positive = score.clamp(min=0) * mask
            total = positive.sum(2, keepdim=True)
            weight = positive / total.masked_fill(total == 0, 1)
        else:
            weight = torch.softmax(score.masked_fill(~mask, torch.finfo(score.dtype).min), 2) * mask
        weight = weight.mean(-1)
        out_grp = (weight @ x_grp.view(num_blocks, block, -1)).view(x_grp.shape)
        if not return_weight:
            return out_grp, None
        b, m, n = allowed.nonzero().unbind(1)
        index = torch.stack([b * block + m, b * block + n])
        return out_grp, self._sparse_weight(index, weight[b, m, n], x_grp.size(0))

    def _attend_sparse(self, dst: Tensor, src: Tensor, x_grp: Tensor, nonempty: Tensor,
                       group_batch: Optional[Tensor],
                       return_weight: bool) -> tuple[Tensor, Optional[Tensor]]:
        # Scores on the group pairs only: memory linear in the number of pairs.
        num_groups = x_grp.size(0)
        pair_index = group_pairs(nonempty, group_batch)
        source, target = pair_index
        score = self._score(dst[target], src[source])
        if self.scoring == "cosine":
            positive = score.clamp(min=0)
            total = scatter(positive, target, 0, num_groups, reduce="sum")
            alpha = positive / total.masked_fill(total == 0, 1)[target]
        else:
            alpha = softmax(score, target, num_nodes=num_groups)
        alpha = alpha.mean(-1)
        out_grp = self.propagate(pair_index, x=x_grp, alpha=alpha, size=(num_groups, num_groups))
        if not return_weight:
            return out_grp, None
        return out_grp, self._sparse_weight(pair_index.flip(0), alpha, num_groups)

    @staticmethod
    def _sparse_weight(index: Tensor, value: Tensor, num_groups: int) -> Tensor:
        # [K, K] with weight[m, n] = w_mn at index (m, n), one entry per attending pair.
        return torch.sparse_coo_tensor(index, value, (num_groups, num_groups),
                                       check_invariants=False).coalesce()

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * x_j

    def __repr__(self) -> str:
        heads = "" if self.scoring == "cosine" else f", heads={self.heads}"
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}"
                f"{heads}, scoring={self.scoring!r})")
