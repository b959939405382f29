import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.algos.base import TeamView, boltzmann, on_alive_rows, sample_rows
from bmf_graph.algos.networks import make_network
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec


def test_sample_rows_frequencies_match_probabilities():
    torch.manual_seed(0)
    probs = torch.tensor([[0.5, 0.0, 0.2, 0.3], [0.0, 0.0, 1.0, 0.0], [0.1, 0.2, 0.3, 0.4]])
    draws = 20000
    counts = torch.zeros(3, 4)
    for _ in range(draws):
        counts[torch.arange(3), sample_rows(probs)] += 1
    freq = counts / draws
    sigma = (probs * (1 - probs) / draws).sqrt()
    assert ((freq - probs).abs() <= 5 * sigma + 1e-12).all()
    assert counts[0, 1] == 0 and counts[1, 2] == draws  # zero-probability actions never drawn


def test_sample_rows_unnormalised_and_greedy():
    torch.manual_seed(1)
    q = torch.randn(50, 7)
    greedy = boltzmann(q, 0.0)
    assert torch.equal(sample_rows(greedy), q.argmax(-1))
    # Rows need not sum to one: the draw is relative to the row's total.
    assert torch.equal(sample_rows(3 * greedy), q.argmax(-1))
    out = sample_rows(torch.softmax(q, -1))
    assert out.dtype == torch.long and out.shape == (50,) and out.min() >= 0 and out.max() < 7


SPEC = TeamSpec("t", num_agents=12, view_shape=(3, 3, 2), feature_dim=5, num_actions=4)


def _alive(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) > 0.5


def test_on_alive_rows_equals_the_full_pass_on_alive_rows_and_skips_the_dead():
    torch.manual_seed(0)
    net = make_network(SPEC, "branched", context_dim=4, out_dim=4, hidden=8)
    obs, context = torch.randn(12, SPEC.obs_dim), torch.randn(12, 4)
    seen = []
    net.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    alive = _alive(12, 1)
    assert 0 < int(alive.sum()) < 12
    with torch.no_grad():
        full, part = net(obs, context), on_alive_rows(net, alive, obs, context)
    assert seen == [12, int(alive.sum())]  # the dead rows never reach the network
    assert torch.equal(part[alive], full[alive])  # bitwise: rows are independent
    assert torch.equal(part[~alive], torch.zeros(int((~alive).sum()), 4))
    with torch.no_grad():
        assert torch.equal(on_alive_rows(net, torch.ones(12, dtype=torch.bool), obs, context), full)
        none = on_alive_rows(net, torch.zeros(12, dtype=torch.bool), obs, context)
    assert torch.equal(none, torch.zeros(12, 4))
    # an input that is None (a method without context) stays None
    plain = make_network(SPEC, "branched", context_dim=0, out_dim=4, hidden=8)
    with torch.no_grad():
        assert torch.equal(on_alive_rows(plain, alive, obs, None)[alive], plain(obs)[alive])


@pytest.mark.parametrize("name", ["q", "mfq", "bmf_q", "ac", "mfac"])
def test_acting_computes_only_alive_agents_and_keeps_their_greedy_actions(name):
    """The acting policy's alive rows are those of the full pass; the draws per row are
    unchanged (one uniform per row), so training with dead slots follows the same path."""
    torch.manual_seed(0)
    algo = make_algorithm(SPEC, AlgoConfig(name=name, hidden=8, num_groups=2), radius=1.5)
    gen = torch.Generator().manual_seed(2)
    obs = torch.randn(12, SPEC.obs_dim, generator=gen)
    alive = _alive(12, 3)
    a_prev = torch.nn.functional.one_hot(torch.randint(4, (12,), generator=gen), 4).float() * alive[:, None]
    view = TeamView(obs=obs, pos=torch.rand(12, 2, generator=gen), alive=alive, a_prev=a_prev, prev_obs=obs)
    rec = algo.observe(view)
    with torch.no_grad():
        net = algo.actor if name in ("ac", "mfac") else algo.q
        full = net(obs, rec["mean_action"] if rec["mean_action"].shape[-1] else None)
    greedy = algo.policy(view, rec, None)
    want = torch.nn.functional.one_hot(full.argmax(-1), 4).float()
    assert torch.equal(greedy[alive], want[alive])
    assert (greedy[~alive].argmax(-1) == 0).all()  # dead agents idle at action 0, whatever the draws
    probs = algo.policy(view, rec, 0.3)
    assert torch.equal(probs[~alive], greedy[~alive])
    assert torch.allclose(probs.sum(-1), torch.ones(12))
    torch.manual_seed(5)
    acts = algo.act(view, rec, 0.3)
    torch.manual_seed(5)
    assert torch.equal(acts, sample_rows(algo.policy(view, rec, 0.3)))
