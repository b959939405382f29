"""BMF as a TorchRL module: the dense Bi-level Mean Field block on batched observations
``[*, n, F]`` of ``n`` agents (docs/integrations.md)."""
from typing import Sequence, Tuple

import torch
from torch import Tensor

from bmf_graph.graph import radius_adjacency
from bmf_graph.nn.inter_group import SCORINGS, InterGroupAttention
from bmf_graph.nn.intra_group import IntraGroupMeanField
from bmf_graph.nn.kmeans import dense_kmeans

GROUP_FEATURES = ("embedding", "observation", "position")


def _mlp(in_features: int, hidden: int, out_features: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, out_features))


class BMFNet(torch.nn.Module):
    r"""One Bi-level Mean Field layer over the agents of each environment, then an MLP head
    (paper Eq. 6 with embeddings in place of previous actions):

    .. math::
        h_i = \mathrm{MLP}_{enc}(o_i), \quad
        \bar h^{intra}_i = \frac{1}{|\mathcal{N}_g(i)|} \sum_{j \in \mathcal{N}_g(i)} h_j, \quad
        \bar h^{inter}_i = \sum_{n \ne g_i} w_{g_i n}\, h_n, \quad
        y_i = \mathrm{MLP}_{head}([h_i, \bar h^{intra}_i, \bar h^{inter}_i])

    with :math:`\mathcal{N}_g(i)` the agents of :math:`i`'s group closer than ``radius`` (the
    positions are ``o[..., position]``), groups from :func:`~bmf_graph.nn.kmeans.dense_kmeans`
    on ``group_features`` at every call, and :math:`w` the attention of
    :class:`~bmf_graph.nn.InterGroupAttention` between group means. Every step has fixed
    shapes, so the module runs under ``torch.vmap`` (TorchRL's GAE vmaps the critic) and
    ``torch.compile``.

    Args:
        in_features (int): observation size :math:`F`.
        out_features (int): output size per agent.
        position (tuple): ``(start, stop)`` of the positions in the observation.
            (default: ``(0, 2)``, where VMAS puts them)
        radius (float): neighbour radius. (default: ``0.5``)
        num_groups (int): groups :math:`k` per environment. (default: ``2``)
        hidden (int): embedding and hidden width. (default: ``64``)
        heads (int): attention heads. (default: ``1``)
        scoring (str): attention scorer of :class:`~bmf_graph.nn.InterGroupAttention`.
            (default: ``"gatv2"``)
        group_features (str): what k-means clusters: ``"embedding"`` (:math:`h`),
            ``"observation"`` or ``"position"``. (default: ``"embedding"``)
        kmeans_iters (int): Lloyd steps per call. (default: ``5``)
        centralised (bool): mean the output over agents, ``[*, out_features]``.
            (default: ``False``)

    Shapes:
        - **input:** observations :math:`(*, n, F)`
        - **output:** :math:`(*, n, F_{out})`, or :math:`(*, F_{out})` when ``centralised``
    """

    def __init__(self, in_features: int, out_features: int, position: Sequence[int] = (0, 2),
                 radius: float = 0.5, num_groups: int = 2, hidden: int = 64, heads: int = 1,
                 scoring: str = "gatv2", group_features: str = "embedding",
                 kmeans_iters: int = 5, centralised: bool = False):
        super().__init__()
        name = self.__class__.__name__
        start, stop = position
        if not 0 <= start < stop <= in_features:
            raise ValueError(f"{name}: position={tuple(position)!r} is not valid; expected "
                             f"(start, stop) with 0 <= start < stop <= in_features={in_features}")
        if not radius >= 0:
            raise ValueError(f"{name}: radius={radius!r} is not valid; expected a number >= 0")
        if group_features not in GROUP_FEATURES:
            raise ValueError(f"{name}: group_features={group_features!r} is not valid; expected "
                             f"one of {', '.join(GROUP_FEATURES)}")
        if scoring not in SCORINGS:
            raise ValueError(f"{name}: scoring={scoring!r} is not valid; expected one of "
                             f"{', '.join(SCORINGS)}")
        self.in_features, self.out_features = in_features, out_features
        self.position: Tuple[int, int] = (start, stop)
        self.radius, self.num_groups, self.hidden = float(radius), num_groups, hidden
        self.group_features, self.kmeans_iters = group_features, kmeans_iters
        self.centralised = centralised
        self.encoder = _mlp(in_features, hidden, hidden)
        self.intra = IntraGroupMeanField()
        self.inter = InterGroupAttention(hidden, hidden, heads=heads, scoring=scoring)
        self.head = _mlp(3 * hidden, hidden, out_features)

    def groups(self, obs: Tensor, h: Tensor) -> Tensor:
        """Group ids ``[*, n]`` in ``[0, num_groups)`` from k-means on ``group_features``."""
        features = {"embedding": h, "observation": obs,
                    "position": obs[..., self.position[0]:self.position[1]]}[self.group_features]
        return dense_kmeans(features, self.num_groups, self.kmeans_iters)

    def forward(self, obs: Tensor) -> Tensor:
        if obs.dim() < 2 or obs.size(-1) != self.in_features:
            raise ValueError(f"{self.__class__.__name__}: obs must have shape [*, n, "
                             f"{self.in_features}], got {tuple(obs.shape)}")
        batch_shape, n = obs.shape[:-2], obs.size(-2)
        obs = obs.reshape(-1, n, self.in_features)
        h = self.encoder(obs)
        adj = radius_adjacency(obs[..., self.position[0]:self.position[1]], self.radius)
        group = self.groups(obs, h)
        intra = self.intra.dense(h, adj, group)
        inter, _ = self.inter.dense(h, h, group, self.num_groups)
        out = self.head(torch.cat([h, intra, inter], -1)).view(*batch_shape, n, self.out_features)
        return out.mean(-2) if self.centralised else out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_features}, {self.out_features}, "
                f"radius={self.radius}, num_groups={self.num_groups})")


def bmf_module(in_key, out_key, in_features: int, out_features: int, **kwargs):
    """A ``tensordict.nn.TensorDictModule`` reading observations ``[*, n, F]`` at ``in_key`` and
    writing :class:`BMFNet`'s output at ``out_key`` (keys may be nested tuples, e.g.
    ``("agents", "observation")``); ``kwargs`` go to :class:`BMFNet`."""
    from tensordict.nn import TensorDictModule

    return TensorDictModule(BMFNet(in_features, out_features, **kwargs), in_keys=[in_key],
                            out_keys=[out_key])
