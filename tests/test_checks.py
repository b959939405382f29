"""The input checks: one-line errors in eager mode, none while compiled or vmapped."""
import pytest
import torch

from bmf_graph import checks
from bmf_graph.checks import as_actions, checking, set_checks
from bmf_graph.nn import MeanField


@pytest.fixture
def restore_checks():
    yield
    set_checks("auto")


def test_checks_off_under_vmap_and_compile():
    assert checking()
    seen = []
    torch.vmap(lambda t: seen.append(checking()) or t)(torch.ones(3, 2))
    torch.compile(lambda t: seen.append(checking()) or t + 1, fullgraph=True,
                  backend="eager")(torch.ones(2))
    assert seen == [False, False]


def test_set_checks_modes(restore_checks):
    x, bad = torch.randn(3, 2), torch.tensor([[0, 5], [1, 2]])
    with pytest.raises(ValueError, match=r"MeanField: edge_index entries must lie in \[0, 3\), "
                                         r"got values in \[0, 5\]"):
        MeanField()(x, bad)
    set_checks("off")
    assert not checking()
    MeanField()(x, torch.tensor([[0], [1]]))  # nothing checked, nothing raised
    set_checks("full")
    assert checks.checking_values(torch.ones(1))
    with pytest.raises(ValueError, match="set_checks: mode='fast' is not valid; expected one of "
                                         "auto, full, off"):
        set_checks("fast")


def test_as_actions_indices_one_hot_and_errors():
    index = torch.tensor([2, 0, 1])
    assert torch.equal(as_actions(index, 3, "Layer"), torch.eye(3)[[2, 0, 1]])
    assert as_actions(index.view(1, 3), 3, "Layer", feature_dim=3).shape == (1, 3, 3)
    one_hot = torch.eye(3, dtype=torch.long)
    assert as_actions(one_hot, None, "Layer").dtype == torch.get_default_dtype()
    floats = torch.randn(3, 2)
    assert as_actions(floats, None, "Layer") is floats
    with pytest.raises(ValueError, match=r"Layer: x holds action indices of shape \(3,\); pass "
                                         "num_actions to the layer to one-hot them"):
        as_actions(index, None, "Layer")
    with pytest.raises(ValueError, match=r"Layer: x entries must lie in \[0, 2\), got values in "
                                         r"\[0, 2\]"):
        as_actions(index, 2, "Layer")
