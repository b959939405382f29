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

from bmf_graph.checks import as_actions, check_index, check_node_tensor, checking, one_hot
from bmf_graph.nn.pooling import check_batched, check_pool_inputs, infer_num_groups, pool, \
    pool_groups

__all__ = ["InterGroupAttention", "pool_groups", "group_pairs", "block_size"]

DENSE_MAX_GROUPS = 128  # up to this many groups per entry, attention runs on dense scores
SCORINGS = ("gatv2", "gat", "cosine")


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
        in_channels (int): size of each embedding ``h_i``; ``-1`` infers it at the first call
            (lazy, as PyG's layers).
        hidden_channels (int): size of ``W h_m`` per head (unused by ``cosine``).
        heads (int): number of attention heads (``cosine`` has one). (default: ``1``)
        scoring (str): ``"gatv2"``, ``"gat"`` or ``"cosine"``. (default: ``"gatv2"``)
        negative_slope (float): LeakyReLU slope. (default: ``0.2``)
        num_actions (int, optional): with it, integer action indices ``[N]`` (``[B, n]`` for
            :meth:`dense`) are accepted and one-hot encoded; integer one-hot rows are always
            accepted. (default: ``None``)

    Shapes:
        - **input:** embeddings :math:`(N, F_{in})`, actions :math:`(N, F)`, group ids
          :math:`(N)` in :math:`[0, K)`, batch :math:`(N)` (optional)
        - **output:** per-agent inter-group action :math:`(N, F)`; with ``return_weight=True``
          also the weights as a sparse :math:`(K, K)` tensor (``weight[m, n]`` = :math:`w_{mn}`,
          one stored entry per pair of non-empty groups of one entry)
    """

    def __init__(self, in_channels: int, hidden_channels: int, heads: int = 1,
                 scoring: str = "gatv2", negative_slope: float = 0.2,
                 num_actions: Optional[int] = None):
        super().__init__(aggr="add", node_dim=0)
        if scoring not in SCORINGS:
            raise ValueError(f"InterGroupAttention: scoring={scoring!r} is not valid; expected "
                             f"one of {', '.join(SCORINGS)}")
        for arg, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                           ("heads", heads), ("num_actions", num_actions)):
            if arg == "in_channels" and value == -1 or arg == "num_actions" and value is None:
                continue
            if not isinstance(value, numbers.Integral) or value < 1:
                lazy = " (or -1, lazy)" if arg == "in_channels" else ""
                raise ValueError(f"InterGroupAttention: {arg}={value!r} is not valid; expected an "
                                 f"integer >= 1{lazy}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.heads = 1 if scoring == "cosine" else heads
        self.scoring = scoring
        self.negative_slope = negative_slope
        self.num_actions = num_actions
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

    def forward(self, h: Tensor, x: Tensor, group: Tensor, num_groups: Optional[int] = None,
                batch: Optional[Tensor] = None,
                return_weight: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        """:func:`pool_groups`, then :meth:`attend`, then each agent reads its group's row
        (``num_groups`` defaults to ``group.max() + 1``)."""
        owner = "InterGroupAttention"
        x = as_actions(x, self.num_actions, owner, dtype=h.dtype)
        num_groups = infer_num_groups(group, num_groups, owner)
        check_pool_inputs(h, x, group, num_groups, batch, owner, channels=self.in_channels)
        h_grp, x_grp, members, group_batch = pool(h, x, group, num_groups, batch, owner)
        out_grp, weight = self._attend(h_grp, x_grp, members.count > 0, group_batch,
                                       return_weight)
        return members.spread(out_grp), weight

    def dense(self, h: Tensor, x: Tensor, group: Tensor, num_groups: Optional[int] = None,
              return_weight: bool = False) -> tuple[Tensor, Optional[Tensor]]:
        r"""The same for ``B`` independent entries of ``n`` agents each (batched environments):
        ``h`` :math:`(B, n, F_{in})`, ``x`` :math:`(B, n, F)` (or indices :math:`(B, n)`),
        ``group`` :math:`(B, n)` with ids in :math:`[0, k)` per entry, ``num_groups`` = :math:`k`
        (default ``group.max() + 1``) give :math:`(B, n, F)`; equal to :meth:`forward` on the
        flattened batch with ids :math:`b k + g` and ``batch`` = :math:`b`. Pooling is one
        batched matrix product and attention always runs on the dense ``[B, k, k]`` blocks, so
        there is no data-dependent shape (``torch.compile``, ``vmap``); the weights come back
        as a sparse :math:`(Bk, Bk)` tensor."""
        owner = "InterGroupAttention.dense"
        x = as_actions(x, self.num_actions, owner, feature_dim=3, dtype=h.dtype)
        k = infer_num_groups(group, num_groups, owner)
        if checking():
            check_batched(h, x, group, k, self.in_channels, owner)
        b, n = group.shape
        member = one_hot(group, k, h.dtype)                                # [B, n, k]
        count = member.sum(1)                                             # [B, k]
        mean_map = member.transpose(1, 2) / count.clamp(min=1).unsqueeze(2)
        h_grp, x_grp = (mean_map @ h).flatten(0, 1), (mean_map @ x).flatten(0, 1)
        dst, src = self._parts(h_grp)
        out_grp, weight = self._attend_dense(dst, src, x_grp, (count > 0).view(-1), k,
                                             return_weight)
        return member @ out_grp.view(b, k, -1), weight

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
        actions = "" if self.num_actions is None else f", num_actions={self.num_actions}"
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}"
                f"{heads}, scoring={self.scoring!r}{actions})")

