"""GAT-MF: attention-weighted neighbour mean of the previous actions (Hao et al., 2023)."""
import math
from typing import Optional

import torch
from torch import Tensor
from torch.nn import Parameter
from torch.nn.parameter import UninitializedParameter
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from bmf_graph.checks import as_actions, check_edge_index, check_node_tensor


class GATMeanField(MessagePassing):
    r"""Graph-attention mean field (GAT-MF, the paper's baseline [7]) as its reference code
    computes it: squared dot products of query and key projections of the embeddings ``h``
    (the agents' observations), masked by the adjacency and normalised over each row,

    .. math::
        s_{ij} = \big( (\mathbf{W}_Q^\top h_i) \cdot (\mathbf{W}_K^\top h_j) \big)^2, \qquad
        \alpha_{ij} = \frac{s_{ij}}{\sum_{j' \in \mathcal{N}(i)} s_{ij'} + \epsilon}, \qquad
        \tilde{a}_i = \sum_{j \in \mathcal{N}(i)} \alpha_{ij}\, x_j

    The small :math:`\epsilon` of the reference keeps rows whose scores are all (nearly) zero
    finite: such a row gets (nearly) zero weights, so an agent without neighbours, or whose
    neighbours all score 0 (e.g. all-zero observations), gets the zero vector. Otherwise a row
    sums to :math:`S / (S + \epsilon)`, within :math:`\epsilon / S` of 1.

    Args:
        in_channels (int): size of each embedding ``h_i``; ``-1`` infers it at the first call
            (lazy, as PyG's layers; a state dict loads into a lazy layer too).
        hidden_channels (int): size of the query and key projections.
        dense (bool): compute the full :math:`N \times N` score matrix masked by the adjacency,
            :math:`O(N^2)` as the GAT-MF reference does, instead of scores on the edges only.
            Both give the same result (up to float rounding) for an ``edge_index`` without
            duplicate edges. (default: ``False``)
        eps (float): :math:`\epsilon`. (default: ``1e-3``, the reference's)
        num_actions (int, optional): with it, integer action indices ``[N]`` are accepted and
            one-hot encoded; integer one-hot rows are always accepted. (default: ``None``)

    Shapes:
        - **input:** embeddings :math:`(|\mathcal{V}|, F_{in})`, actions
          :math:`(|\mathcal{V}|, F)`, edge indices :math:`(2, |\mathcal{E}|)`
        - **output:** :math:`(|\mathcal{V}|, F)`
    """

    def __init__(self, in_channels: int, hidden_channels: int, dense: bool = False,
                 eps: float = 1e-3, num_actions: Optional[int] = None):
        super().__init__(aggr="add", node_dim=0)
        for arg, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels)):
            if not isinstance(value, int) or value < 1 and not (arg == "in_channels" and value == -1):
                lazy = " (or -1, lazy)" if arg == "in_channels" else ""
                raise ValueError(f"GATMeanField: {arg}={value!r} is not valid; expected an "
                                 f"integer >= 1{lazy}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.dense = dense
        self.eps = eps
        self.num_actions = num_actions
        if in_channels == -1:
            self.query, self.key = UninitializedParameter(), UninitializedParameter()
            self._register_load_state_dict_pre_hook(self._materialize_from_state)
        else:
            self.query = Parameter(torch.empty(in_channels, hidden_channels))
            self.key = Parameter(torch.empty(in_channels, hidden_channels))
        self.reset_parameters()

    def reset_parameters(self):
        r"""Uniform in :math:`[-1/\sqrt{F_{in}}, 1/\sqrt{F_{in}}]`, as the reference (a lazy
        layer draws them at its first call)."""
        super().reset_parameters()
        if isinstance(self.query, UninitializedParameter):
            return
        bound = 1 / math.sqrt(self.query.size(0))
        for weight in (self.query, self.key):
            torch.nn.init.uniform_(weight, -bound, bound)

    def _materialize(self, in_channels: int, device: torch.device, dtype: torch.dtype) -> None:
        for weight in (self.query, self.key):
            weight.materialize((in_channels, self.hidden_channels), device=device, dtype=dtype)
        self.reset_parameters()

    def _materialize_from_state(self, state_dict, prefix, *args) -> None:
        stored = state_dict.get(prefix + "query")
        if isinstance(self.query, UninitializedParameter) and isinstance(stored, Tensor):
            self._materialize(stored.size(0), stored.device, stored.dtype)

    def forward(self, h: Tensor, x: Tensor, edge_index: Tensor) -> Tensor:
        if isinstance(self.query, UninitializedParameter):
            self._materialize(h.size(-1), h.device, h.dtype)
        x = as_actions(x, self.num_actions, "GATMeanField", dtype=h.dtype)
        check_node_tensor(h, "h", "GATMeanField", channels=self.query.size(0))
        check_node_tensor(x, "x", "GATMeanField", num_nodes=h.size(0))
        check_edge_index(edge_index, h.size(0), "GATMeanField")
        q, k = h @ self.query, h @ self.key
        if self.dense:
            return self._dense(x, edge_index, q, k)
        source, target = edge_index
        score = (q[target] * k[source]).sum(-1).square()
        total = scatter(score, target, 0, h.size(0), reduce="sum")
        alpha = score / (total[target] + self.eps)
        return self.propagate(edge_index, x=x, alpha=alpha, size=(h.size(0), h.size(0)))

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * x_j

    def _dense(self, x: Tensor, edge_index: Tensor, q: Tensor, k: Tensor) -> Tensor:
        n = x.size(0)
        adjacency = torch.zeros(n, n, dtype=x.dtype, device=x.device)
        adjacency[edge_index[1], edge_index[0]] = 1.0
        score = (q @ k.t()).square() * adjacency
        return score / (score.sum(1, keepdim=True) + self.eps) @ x

    def complete(self, h: Tensor, x: Tensor, alive: Tensor) -> Tensor:
        r"""The same mean over the complete graph of each of :math:`C` graphs of :math:`n`
        nodes, densely: ``h`` :math:`(C, n, F_{in})`, actions ``x`` :math:`(C, n, F)` and
        ``alive`` :math:`(C, n)` (bool); every alive node attends over the other alive nodes of
        its graph (dead ones get the zero vector); returns :math:`(C, n, F)`. The same result
        (up to float rounding) as :meth:`forward` on the edge list of every ordered pair of
        alive nodes of a graph, at :math:`O(C\,n^2\,d)` in batched matrix products instead of
        gathering :math:`2d` query and key entries per edge (10 games of 1,024 agents a team:
        10 M edges, 5 GB of gathered rows)."""
        if isinstance(self.query, UninitializedParameter):
            self._materialize(h.size(-1), h.device, h.dtype)
        x = as_actions(x, self.num_actions, "GATMeanField", dtype=h.dtype, feature_dim=3)
        if h.dim() != 3 or x.shape[:2] != h.shape[:2] or alive.shape != h.shape[:2]:
            raise ValueError(f"GATMeanField.complete: h, x and alive have shapes {tuple(h.shape)}, {tuple(x.shape)} "
                             f"and {tuple(alive.shape)}; expected (C, n, F_in), (C, n, F) and (C, n)")
        n = h.size(1)
        pairs = alive.unsqueeze(2) & alive.unsqueeze(1) & ~torch.eye(n, dtype=torch.bool, device=h.device)
        score = torch.bmm(h @ self.query, (h @ self.key).transpose(1, 2)).square() * pairs.to(h.dtype)
        return torch.bmm(score / (score.sum(2, keepdim=True) + self.eps), x)

    def rows(self, h_query: Tensor, h: Tensor, x: Tensor, mask: Tensor) -> Tensor:
        r"""The same mean for one query agent per graph of a batch, densely: ``h_query``
        :math:`(B, F_{in})` attends over the :math:`n` agents of its graph, ``h``
        :math:`(B, n, F_{in})` and actions ``x`` :math:`(B, n, F)`, where ``mask`` :math:`(B, n)`
        (bool) marks its neighbours; returns :math:`(B, F)`. The keys are never formed:
        :math:`q_i \cdot \mathbf{W}_K^\top h_j = (\mathbf{W}_K q_i) \cdot h_j`, so a minibatch of sampled
        agents costs :math:`O(B\,n\,F_{in})` instead of the :math:`O(B\,n\,F_{in}\,d)` of projecting
        every agent of every graph (:math:`d` = ``hidden_channels``)."""
        if isinstance(self.query, UninitializedParameter):
            self._materialize(h.size(-1), h.device, h.dtype)
        x = as_actions(x, self.num_actions, "GATMeanField", dtype=h.dtype, feature_dim=3)
        reach = (h_query @ self.query) @ self.key.t()                  # W_K q_i, (B, F_in)
        score = torch.einsum("bf,bnf->bn", reach, h).square() * mask.to(h.dtype)
        return torch.einsum("bn,bnf->bf", score / (score.sum(1, keepdim=True) + self.eps), x)

    def __repr__(self) -> str:
        actions = "" if self.num_actions is None else f", num_actions={self.num_actions}"
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"dense={self.dense}{actions})")
