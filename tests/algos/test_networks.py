"""The v3 networks: shapes per task, the context branch, dead-unit counting."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bmf_graph.algos.networks import (BranchedNetwork, ConvTrunk, FlatNetwork, dead_units, live_units, make_network,
                                      parameter_count)
from bmf_graph.envs.base import TeamSpec

BATTLE = TeamSpec("red", 64, (13, 13, 7), 34, 21)
FIREFIGHTER = TeamSpec("firefighter", 50, (), 2, 2)
PURSUIT = TeamSpec("predator", 25, (10, 10, 5), 23, 13)


@pytest.mark.parametrize("spec", [BATTLE, FIREFIGHTER, PURSUIT], ids=lambda s: s.name)
@pytest.mark.parametrize("network", ["branched", "reference", "mlp"])
@pytest.mark.parametrize("context_dim", [0, 21, 42])
def test_network_shapes_per_task(spec, network, context_dim):
    if network == "reference" and not spec.view_shape:
        with pytest.raises(ValueError, match="algo.network='reference' needs a spatial view"):
            make_network(spec, network, context_dim, spec.num_actions, 16)
        return
    net = make_network(spec, network, context_dim, spec.num_actions, 16)
    obs, context = torch.rand(5, 3, spec.obs_dim), torch.rand(5, 3, context_dim)
    assert net(obs, context).shape == (5, 3, spec.num_actions)
    assert net(obs[:, :1], context[:, :1]).shape == (5, 1, spec.num_actions)
    assert net(obs[:0], context[:0]).shape == (0, 3, spec.num_actions)


def test_branched_is_mfrl_battle_model():
    """MFRL's layer widths: view 256, features 32, context 64 -> 32, joint 128 -> 64 -> head; the
    reference trunk is two valid 3x3 convs of 32 channels (13 -> 11 -> 9) before the dense 256."""
    net = make_network(BATTLE, "reference", 21, 21, 64)
    assert isinstance(net.view, ConvTrunk)
    assert [m.out_channels for m in net.view.conv if isinstance(m, nn.Conv2d)] == [32, 32]
    assert net.view.dense[0].in_features == 32 * 9 * 9 and net.view.dense[0].out_features == 256
    assert net.feature[0].in_features == 34 and net.feature[0].out_features == 32
    assert [m.out_features for m in net.context if isinstance(m, nn.Linear)] == [64, 32]
    assert [m.out_features for m in net.head if isinstance(m, nn.Linear)] == [128, 64, 21]
    branched = make_network(BATTLE, "branched", 21, 21, 64)
    assert branched.view[0].in_features == 13 * 13 * 7 and branched.view[0].out_features == 256
    assert parameter_count(branched) < parameter_count(net)


def test_conv_trunk_reads_channels_last_views():
    """The flat view is the env's [H, W, C] flattened: the trunk must convolve over H and W."""
    torch.manual_seed(0)
    trunk = ConvTrunk((5, 5, 2))
    view = torch.rand(3, 5, 5, 2)
    expected = trunk.dense(trunk.conv(view.permute(0, 3, 1, 2)).flatten(1))
    torch.testing.assert_close(trunk(view.reshape(3, -1)), expected)


@pytest.mark.parametrize("network", ["branched", "reference", "mlp"])
def test_context_branch_receives_gradient(network):
    torch.manual_seed(0)
    net = make_network(BATTLE, network, 42, 21, 16)
    context = torch.rand(8, 42, requires_grad=True)
    net(torch.rand(8, BATTLE.obs_dim), context).sum().backward()
    assert context.grad is not None and context.grad.abs().sum() > 0
    if network != "mlp":  # the context has its own branch, whose first layer learns
        assert net.context[0].weight.grad.abs().sum() > 0


def test_without_context_the_output_ignores_it():
    net = make_network(BATTLE, "branched", 0, 21, 16)
    assert not hasattr(net, "context")
    obs = torch.rand(4, BATTLE.obs_dim)
    torch.testing.assert_close(net(obs, None), net(obs, torch.rand(4, 9)))


def test_flat_network_keeps_v2_parameter_names():
    """v2 model files (``q.trunk.*``, ``q.head.*``) load into ``network=mlp``."""
    net = make_network(BATTLE, "mlp", 21, 21, 64)
    assert isinstance(net, FlatNetwork)
    assert {k.split(".")[0] for k in net.state_dict()} == {"trunk", "head"}


def test_dead_units_by_hand():
    """A layer whose units are 0 for every input of the batch is dead; one live row keeps a unit."""
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        net[0].bias.zero_()
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0]])            # unit 0 live, 1 (zero) and 2 (negative) dead
    assert dead_units(net, x) == pytest.approx(2 / 3)
    assert live_units(net, x)[0].tolist() == [True, False, False]
    assert dead_units(net, torch.tensor([[1.0, 1.0], [-1.0, -1.0]])) == 0.0
    assert math.isnan(dead_units(nn.Linear(2, 2), x))  # no ReLU
    assert isinstance(make_network(FIREFIGHTER, "branched", 0, 2, 8), BranchedNetwork)
