"""Plain mean field: the mean previous action of an agent's neighbours (paper Eq. 5)."""
from typing import Optional

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing

from bmf_graph.checks import as_actions, check_dense, check_edge_index, check_node_tensor


class MeanField(MessagePassing):
    r"""Neighbour mean of the previous actions (MFRL's mean action, paper Eq. 5):

    .. math::
        \tilde{a}_i = \frac{1}{|\mathcal{N}(i)|} \sum_{j \in \mathcal{N}(i)} a_j,
        \qquad \mathcal{N}(i) = \{ j : (j \to i) \in \mathcal{E} \}

    An agent without neighbours gets the zero vector.

    Args:
        num_actions (int, optional): number of discrete actions; with it, integer action
            indices ``[N]`` (``[B, n]`` for :meth:`dense`) are accepted and one-hot encoded.
            Integer or bool one-hot rows are always accepted. (default: ``None``)

    Shapes:
        - **input:** actions :math:`(|\mathcal{V}|, F)` (or indices :math:`(|\mathcal{V}|)`),
          edge indices :math:`(2, |\mathcal{E}|)` (row 0 = source, row 1 = target; several
          ``batch`` entries may share the graph, as their edges never cross)
        - **output:** :math:`(|\mathcal{V}|, F)`
    """

    def __init__(self, num_actions: Optional[int] = None):
        super().__init__(aggr="add")
        name = self.__class__.__name__
        if num_actions is not None and (not isinstance(num_actions, int) or num_actions < 1):
            raise ValueError(f"{name}: num_actions={num_actions!r} is not valid; expected None "
                             f"or an integer >= 1")
        self.num_actions = num_actions
        self.reset_parameters()

    def reset_parameters(self):
        """No learnable parameters; kept for the common layer interface."""
        super().reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = as_actions(x, self.num_actions, "MeanField")
        check_node_tensor(x, "x", "MeanField")
        check_edge_index(edge_index, x.size(0), "MeanField")
        return self._mean(x, edge_index, None)

    def _mean(self, x: Tensor, edge_index: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        # The sum of the messages over the summed edge weights (1 per edge without weight).
        n = x.size(0)
        total = self.propagate(edge_index, x=x, weight=weight, size=(n, n))
        per_edge = x.new_ones(edge_index.size(1)) if weight is None else weight
        count = x.new_zeros(n).index_add_(0, edge_index[1], per_edge)
        return total / count.clamp(min=1).unsqueeze(1)

    def dense(self, x: Tensor, adj: Tensor) -> Tensor:
        r"""The same mean over a dense adjacency: ``x`` :math:`(B, n, F)` (or indices
        :math:`(B, n)`) and ``adj`` :math:`(B, n, n)` bool with ``adj[b, i, j]`` for the edge
        ``j -> i`` of graph ``b`` (:func:`~bmf_graph.graph.dense_adjacency`,
        :func:`~bmf_graph.graph.radius_adjacency`) give :math:`(B, n, F)`, one batched matrix
        product instead of a scatter over edges; equal to :meth:`forward` on the ``B`` graphs
        flattened into one. Sums of one-hot actions are exact in either form, so both give the
        same bits."""
        x = as_actions(x, self.num_actions, self.__class__.__name__, feature_dim=3)
        check_dense(x, adj, self.__class__.__name__)
        weight = adj.to(x.dtype)
        return torch.bmm(weight, x) / weight.sum(-1, keepdim=True).clamp(min=1)

    def message(self, x_j: Tensor, weight: Optional[Tensor]) -> Tensor:
        return x_j if weight is None else x_j * weight.unsqueeze(1)

    def __repr__(self) -> str:
        actions = "" if self.num_actions is None else f"num_actions={self.num_actions}"
        return f"{self.__class__.__name__}({actions})"
