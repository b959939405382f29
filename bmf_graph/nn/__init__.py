"""Graph layers of Bi-level Mean Field (docs/method.md)."""
from bmf_graph.nn.gat_mean_field import GATMeanField
from bmf_graph.nn.grouping import DynamicGrouping
from bmf_graph.nn.inter_group import InterGroupAttention, pool_groups
from bmf_graph.nn.intra_group import IntraGroupMeanField
from bmf_graph.nn.kmeans import KMeans
from bmf_graph.nn.mean_field import MeanField
from bmf_graph.nn.vae import AgentVAE

__all__ = ["MeanField", "IntraGroupMeanField", "InterGroupAttention", "GATMeanField", "AgentVAE", "KMeans",
           "DynamicGrouping", "pool_groups"]
