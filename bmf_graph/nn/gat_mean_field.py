"""GAT-MF: attention-weighted neighbour mean of the previous actions (Hao et al., 2023)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot
from torch_geometric.utils import softmax

from bmf_graph.checks import check_edge_index, check_node_tensor


class GATMeanField(MessagePassing):
    r"""Graph-attention mean field (GAT-MF, the paper's baseline [7]): the neighbour mean of the
    previous actions ``x``, weighted by an edge softmax over each target's incoming edges with
    scores from the embeddings ``h``:

    .. math::
        \alpha_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i)} \Big(
            \mathrm{LeakyReLU}(\mathbf{a}^\top [\mathbf{W} h_i \,\|\, \mathbf{W} h_j])\Big),
        \qquad \tilde{a}_i = \sum_{j \in \mathcal{N}(i)} \alpha_{ij}\, x_j

    An agent without neighbours gets the zero vector.

    Args:
        in_channels (int): size of each embedding ``h_i``.
        hidden_channels (int): size of ``W h_i``.
        dense (bool): compute the full :math:`N \times N` score matrix masked by the adjacency,
            :math:`O(N^2)` as the GAT-MF reference does, instead of scores on the edges only.
            Both give the same result (up to float rounding) for an ``edge_index`` without
            duplicate edges. (default: ``False``)
        negative_slope (float): LeakyReLU slope. (default: ``0.2``)

    Shapes:
        - **input:** embeddings :math:`(|\mathcal{V}|, F_{in})`, actions
          :math:`(|\mathcal{V}|, F)`, edge indices :math:`(2, |\mathcal{E}|)`
        - **output:** :math:`(|\mathcal{V}|, F)`
    """

    def __init__(self, in_channels: int, hidden_channels: int, dense: bool = False,
                 negative_slope: float = 0.2):
        super().__init__(aggr="add", node_dim=0)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.dense = dense
        self.negative_slope = negative_slope
        self.lin = Linear(in_channels, hidden_channels, bias=False, weight_initializer="glorot")
        self.att_src = Parameter(torch.empty(1, hidden_channels))
        self.att_dst = Parameter(torch.empty(1, hidden_channels))
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.lin.reset_parameters()
        glorot(self.att_src)
        glorot(self.att_dst)

    def forward(self, h: Tensor, x: Tensor, edge_index: Tensor) -> Tensor:
        check_node_tensor(h, "h", "GATMeanField", channels=self.in_channels)
        check_node_tensor(x, "x", "GATMeanField", num_nodes=h.size(0))
        check_edge_index(edge_index, h.size(0), "GATMeanField")
        z = self.lin(h)
        score_src = (z * self.att_src).sum(-1)
        score_dst = (z * self.att_dst).sum(-1)
        if self.dense:
            return self._dense(x, edge_index, score_src, score_dst)
        return self.propagate(edge_index, x=x, score_src=score_src, score_dst=score_dst,
                              size=(h.size(0), h.size(0)))

    def message(self, x_j: Tensor, score_src_j: Tensor, score_dst_i: Tensor, index: Tensor,
                ptr: Optional[Tensor], size_i: Optional[int]) -> Tensor:
        score = F.leaky_relu(score_src_j + score_dst_i, self.negative_slope)
        alpha = softmax(score, index, ptr, size_i)
        return alpha.unsqueeze(-1) * x_j

    def _dense(self, x: Tensor, edge_index: Tensor, score_src: Tensor,
               score_dst: Tensor) -> Tensor:
        n = x.size(0)
        blocked = torch.ones(n, n, dtype=torch.bool, device=x.device)
        blocked[edge_index[1], edge_index[0]] = False
        score = F.leaky_relu(score_dst.unsqueeze(1) + score_src.unsqueeze(0), self.negative_slope)
        # Non-edges get the lowest finite score, not -inf: a row without neighbours stays finite
        # (uniform, then zeroed), so no NaN reaches the output or the gradients.
        alpha = score.masked_fill(blocked, torch.finfo(score.dtype).min).softmax(dim=1)
        return alpha.masked_fill(blocked, 0.0) @ x

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"dense={self.dense})")
