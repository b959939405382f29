"""Plain mean field: the mean previous action of an agent's neighbours (paper Eq. 5)."""
import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing

from bmf_graph.checks import check_dense, check_edge_index, check_node_tensor


class MeanField(MessagePassing):
    r"""Neighbour mean of the previous actions (MFRL's mean action, paper Eq. 5):

    .. math::
        \tilde{a}_i = \frac{1}{|\mathcal{N}(i)|} \sum_{j \in \mathcal{N}(i)} a_j,
        \qquad \mathcal{N}(i) = \{ j : (j \to i) \in \mathcal{E} \}

    An agent without neighbours gets the zero vector.

    Shapes:
        - **input:** actions :math:`(|\mathcal{V}|, F)`, edge indices :math:`(2, |\mathcal{E}|)`
          (row 0 = source, row 1 = target; several ``batch`` entries may share the graph, as
          their edges never cross)
        - **output:** :math:`(|\mathcal{V}|, F)`
    """

    def __init__(self):
        super().__init__(aggr="mean")
        self.reset_parameters()

    def reset_parameters(self):
        """No learnable parameters; kept for the common layer interface."""
        super().reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        check_node_tensor(x, "x", "MeanField")
        check_edge_index(edge_index, x.size(0), "MeanField")
        return self.propagate(edge_index, x=x, size=(x.size(0), x.size(0)))

    def dense(self, x: Tensor, adj: Tensor) -> Tensor:
        r"""The same mean over a dense adjacency: ``x`` :math:`(B, n, F)` and ``adj``
        :math:`(B, n, n)` bool with ``adj[b, i, j]`` for the edge ``j -> i`` of graph ``b``
        (:func:`~bmf_graph.graph.dense_adjacency`) give :math:`(B, n, F)`, one batched matrix
        product instead of a scatter over edges. Sums of one-hot actions are exact in either
        form, so both give the same bits."""
        check_dense(x, adj, "MeanField")
        weight = adj.to(x.dtype)
        return torch.bmm(weight, x) / weight.sum(-1, keepdim=True).clamp(min=1)

    def message(self, x_j: Tensor) -> Tensor:
        return x_j

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"
