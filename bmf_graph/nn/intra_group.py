"""Intra-group mean field: the neighbour mean restricted to an agent's own group (Eq. 6)."""
from torch import Tensor

from bmf_graph.checks import as_actions, check_dense, check_edge_index, check_index, \
    check_node_tensor, checking, tracing
from bmf_graph.nn.mean_field import MeanField


class IntraGroupMeanField(MeanField):
    r"""Mean previous action of the neighbours in the agent's own group (paper Eq. 6, first
    line; docs/method.md):

    .. math::
        \tilde{a}_i = \frac{1}{|\mathcal{N}_g(i)|} \sum_{j \in \mathcal{N}_g(i)} a_j,
        \qquad \mathcal{N}_g(i) = \{ j : (j \to i) \in \mathcal{E},\ g_j = g_i \}

    An agent without a neighbour in its group gets the zero vector: this is
    :class:`~bmf_graph.nn.MeanField` over the edges whose two ends share a group. Under
    ``torch.compile`` and ``vmap`` it is computed as a 0/1 weight per edge instead, so that no
    shape depends on the groups (the same values; the tests compare both).

    Args:
        num_actions (int, optional): as in :class:`~bmf_graph.nn.MeanField`.

    Shapes:
        - **input:** actions :math:`(|\mathcal{V}|, F)` (or indices), edge indices
          :math:`(2, |\mathcal{E}|)`, group ids :math:`(|\mathcal{V}|)` (any integers; only
          equality matters)
        - **output:** :math:`(|\mathcal{V}|, F)`
    """

    def forward(self, x: Tensor, edge_index: Tensor, group: Tensor) -> Tensor:
        x = as_actions(x, self.num_actions, "IntraGroupMeanField")
        check_node_tensor(x, "x", "IntraGroupMeanField")
        check_edge_index(edge_index, x.size(0), "IntraGroupMeanField")
        check_index(group, "group", "IntraGroupMeanField", x.size(0))
        ends = group.index_select(0, edge_index.reshape(-1)).view(2, -1)
        same_group = ends[0] == ends[1]
        if tracing():  # a 0/1 weight per edge: no shape depends on the groups
            return self._mean(x, edge_index, same_group.to(x.dtype))
        # Eager: keep the same-group edges only (about twice as fast with many groups).
        return self._mean(x, edge_index.index_select(1, same_group.nonzero().view(-1)))

    def dense(self, x: Tensor, adj: Tensor, group: Tensor) -> Tensor:
        r"""The same mean over a dense adjacency ``adj`` :math:`(B, n, n)` (see
        :meth:`MeanField.dense`) with group ids :math:`(B, n)`: :math:`(B, n, F)`."""
        x = as_actions(x, self.num_actions, "IntraGroupMeanField", feature_dim=3)
        check_dense(x, adj, "IntraGroupMeanField")
        if checking() and (not isinstance(group, Tensor) or group.shape != x.shape[:2]):
            shape = tuple(group.shape) if isinstance(group, Tensor) else type(group)
            raise ValueError(f"IntraGroupMeanField: group must have shape {list(x.shape[:2])}, got {shape}")
        return super().dense(x, adj & (group.unsqueeze(2) == group.unsqueeze(1)))
