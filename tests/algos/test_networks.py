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


def test_split_context_gives_each_part_its_own_branch():
    """``context_parts=(21, 21)``: two 64 -> 32 branches, each reading only its half (a change
    in one half moves only that branch's embedding), both learning, and W_4 reading both."""
    torch.manual_seed(0)
    net = make_network(BATTLE, "branched", 42, 21, 16, context_parts=(21, 21))
    assert [branch[0].in_features for branch in net.context] == [21, 21]
    assert net.head[0].in_features == 256 + 32 + 2 * 32
    shared = make_network(BATTLE, "branched", 42, 21, 16)
    # a second bias of 64, a second dense 64 -> 32 and 32 more inputs to W_4 (the first layers split 42 x 64)
    assert parameter_count(net) - parameter_count(shared) == 64 + (64 * 32 + 32) + 32 * 128
    obs, context = torch.rand(8, BATTLE.obs_dim), torch.rand(8, 42)
    changed = context.clone()
    changed[:, 21:] = torch.rand(8, 21)
    torch.testing.assert_close(net.context[0](context[:, :21]), net.context[0](changed[:, :21]))
    assert not torch.allclose(net(obs, context), net(obs, changed))
    net(obs, context).sum().backward()
    assert all(branch[0].weight.grad.abs().sum() > 0 for branch in net.context)
    with pytest.raises(ValueError, match=r"context_parts=\(21, 20\) sum to 41; expected context_dim=42"):
        make_network(BATTLE, "branched", 42, 21, 16, context_parts=(21, 20))


def test_bmf_learner_splits_only_under_split_branches():
    from bmf_graph.algos import make_algorithm
    from bmf_graph.config import AlgoConfig, load_config
    from bmf_graph.config.checks import ConfigError

    shared = make_algorithm(BATTLE, AlgoConfig(name="bmf_q"), 6.0)
    split = make_algorithm(BATTLE, AlgoConfig(name="bmf_q", context_branches="split"), 6.0)
    mfq = make_algorithm(BATTLE, AlgoConfig(name="mfq", context_branches="split"), 6.0)
    assert isinstance(shared.q.context, nn.Sequential) and len(split.q.context) == 2
    assert isinstance(mfq.q.context, nn.Sequential)  # one part: one branch either way
    with pytest.raises(ConfigError, match="algo.context_branches='split' is not valid with algo.network='mlp'"):
        load_config(["conf=battle", "algo.network=mlp", "algo.context_branches=split"])


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
