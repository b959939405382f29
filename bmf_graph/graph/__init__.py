"""Dynamic agent graphs: radius queries on positions (:mod:`~bmf_graph.graph.radius`), the
neighbour search behind them (:mod:`~bmf_graph.graph.search`: cell list, KD-tree, dense, or
torch-cluster when installed) and a PyG transform (:mod:`~bmf_graph.graph.transforms`).

    from bmf_graph.graph import radius_graph
    edge_index = radius_graph(pos, r=6.0, batch=batch)   # [2, E], source -> target
"""
from bmf_graph.graph.radius import (DENSE_ADJACENCY_MAX_PAIRS, dense_adjacency, get_backend, neighbour_graph, radius_adjacency,
                                    radius_graph, set_backend)

__all__ = ["DENSE_ADJACENCY_MAX_PAIRS", "dense_adjacency", "get_backend", "neighbour_graph", "radius_adjacency",
           "radius_graph", "set_backend"]
