"""BMFNet, the dense BMF block of the TorchRL/BenchMARL integration."""
import pytest
import torch

from bmf_graph.graph import radius_graph
from bmf_graph.integrations.torchrl import BMFNet
from bmf_graph.nn import InterGroupAttention, IntraGroupMeanField
from bmf_graph.nn.kmeans import dense_kmeans


def test_bmf_net_equals_sparse_layers_on_flattened_batch():
    torch.manual_seed(0)
    net = BMFNet(8, 3, position=(0, 2), radius=0.6, num_groups=2, hidden=16)
    obs = torch.rand(5, 4, 6, 8)                    # [*, n, F] with two batch dimensions
    out = net(obs)
    assert out.shape == (5, 4, 6, 3)
    flat = obs.reshape(20, 6, 8)
    h = net.encoder(flat)
    group = dense_kmeans(h, 2, net.kmeans_iters)
    entry = torch.arange(20).repeat_interleave(6)
    global_group = (group + 2 * torch.arange(20).unsqueeze(1)).view(-1)
    edge_index = radius_graph(flat[..., :2].reshape(-1, 2), 0.6, entry)
    h_flat = h.reshape(-1, 16)
    intra = IntraGroupMeanField()(h_flat, edge_index, global_group)
    inter, _ = net.inter(h_flat, h_flat, global_group, 40, entry)
    expected = net.head(torch.cat([h_flat, intra, inter], -1)).view(5, 4, 6, 3)
    assert torch.allclose(out, expected, atol=1e-5)
    centralised = BMFNet(8, 3, centralised=True)
    assert centralised(obs).shape == (5, 4, 3)


def test_bmf_net_vmap_and_gradients():
    torch.manual_seed(1)
    net = BMFNet(8, 2, num_groups=3, hidden=8, scoring="gat", group_features="position")
    obs = torch.rand(2, 7, 5, 8)
    assert torch.allclose(torch.vmap(net)(obs), net(obs), atol=1e-6)
    net(obs).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_bmf_net_errors():
    with pytest.raises(ValueError, match=r"BMFNet: position=\(3, 12\) is not valid; expected "
                                         r"\(start, stop\) with 0 <= start < stop <= "
                                         r"in_features=8"):
        BMFNet(8, 2, position=(3, 12))
    with pytest.raises(ValueError, match="BMFNet: group_features='actions' is not valid; "
                                         "expected one of embedding, observation, position"):
        BMFNet(8, 2, group_features="actions")
    with pytest.raises(ValueError, match=r"BMFNet: obs must have shape \[\*, n, 8\], got \(3, 7\)"):
        BMFNet(8, 2)(torch.rand(3, 7))
    assert isinstance(BMFNet(8, 2).inter, InterGroupAttention)
