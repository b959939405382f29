import torch

from bmf_graph.algos.base import boltzmann, sample_rows


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
