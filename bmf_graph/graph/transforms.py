"""PyTorch Geometric transforms built on our graph functions (docs/integrations.md): drop-in
replacements of ``torch_geometric.transforms`` classes of the same name."""
from typing import Optional

from torch_geometric.data import Data, HeteroData
from torch_geometric.transforms import BaseTransform

from bmf_graph.graph import radius_graph

FLOWS = ("source_to_target", "target_to_source")


class RadiusGraph(BaseTransform):
    r"""Adds the edges between nodes closer than ``r`` to ``data.edge_index``, as PyG's
    ``T.RadiusGraph`` does, but through :func:`~bmf_graph.graph.radius_graph` (pure torch, no
    pyg-lib or torch-cluster needed):

    .. math::
        \mathcal{E} = \{(j, i) : i \ne j,\ b_i = b_j,\ \lVert p_i - p_j \rVert_2 < r\}

    with :math:`p` = ``data.pos`` and :math:`b` = ``data.batch`` (one graph without it). Edges
    come sorted by (target, source); any ``edge_attr`` is dropped, as in ``T.RadiusGraph``.

    Args:
        r (float): the radius (strict ``<``).
        loop (bool): also add self-loops. (default: ``False``)
        max_num_neighbors (int, optional): keep at most this many sources per target, the
            nearest ones (``T.RadiusGraph`` keeps an arbitrary 32). (default: ``None``, all)
        flow (str): ``"source_to_target"`` (row 0 = source) or ``"target_to_source"``.
            (default: ``"source_to_target"``)
    """

    def __init__(self, r: float, loop: bool = False, max_num_neighbors: Optional[int] = None,
                 flow: str = "source_to_target"):
        if flow not in FLOWS:
            raise ValueError(f"RadiusGraph: flow={flow!r} is not valid; expected one of "
                             f"{', '.join(FLOWS)}")
        if not r >= 0:
            raise ValueError(f"RadiusGraph: r={r!r} is not valid; expected a number >= 0")
        self.r = r
        self.loop = loop
        self.max_num_neighbors = max_num_neighbors
        self.flow = flow

    def forward(self, data: Data) -> Data:
        if isinstance(data, HeteroData) or getattr(data, "pos", None) is None:
            raise ValueError(f"RadiusGraph: data must be a Data or Batch with pos, "
                             f"got {type(data).__name__} without pos")
        batch = data.batch if "batch" in data else None
        edge_index = radius_graph(data.pos, self.r, batch, self.loop, self.max_num_neighbors)
        data.edge_attr = None
        data.edge_index = edge_index if self.flow == "source_to_target" else edge_index.flip(0)
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(r={self.r})"
