"""bmf_graph: Bi-level Mean Field multi-agent reinforcement learning on PyTorch Geometric."""

__version__ = "0.1.0"
