"""KMeans at any finite scale: no overflow, no id of another team, the nearest centroid of a
brute-force float64 reference."""
import pytest
import torch

from bmf_graph.nn import KMeans


def brute_force_nearest(x, batch, centroids, k):
    """Per point, the float64 distances to its own team's k centroids."""
    c = centroids.double().view(-1, k, x.size(1))[batch]            # [N, k, D]
    return (x.double().unsqueeze(1) - c).pow(2).sum(-1)             # [N, k]


@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e19, 1e30, 2.0**120])
@pytest.mark.parametrize("warm", [False, True])
def test_batched_kmeans_at_any_scale_matches_brute_force(scale, warm):
    k = 3
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=gen)
    x[30:] += 5.0  # team 1 lies apart from team 0
    batch = torch.arange(60) // 30
    x = x * scale
    init = None
    if warm:  # e.g. the previous grouping's centroids, team 0's rows far off
        init = torch.randn(2 * k, 4, generator=gen) * scale
        init[:k] *= 1e3 if scale < 1e30 else 1.0
    labels, centroids = KMeans(k)(x, batch, generator=torch.Generator().manual_seed(1), init=init)
    assert torch.equal(labels // k, batch), "a point got an id of another team"
    assert torch.isfinite(centroids).all()
    dist = brute_force_nearest(x, batch, centroids, k)
    size = torch.bincount(labels, minlength=2 * k).view(2, k)[batch] > 0   # non-empty clusters of its team
    best = dist.masked_fill(~size, float("inf")).amin(1)
    mine = dist.gather(1, (labels % k).unsqueeze(1)).squeeze(1)
    assert torch.allclose(mine, best, rtol=1e-4, atol=0)


def test_power_of_two_scales_give_the_same_groups():
    """Scaling by 2^100 is exact, so the groups are identical to those of the unscaled points."""
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(2))
    batch = torch.arange(50) % 2
    a, ca = KMeans(4)(x, batch, generator=torch.Generator().manual_seed(0))
    b, cb = KMeans(4)(x * 2.0**100, batch, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(ca * 2.0**100, cb)
