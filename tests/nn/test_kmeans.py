import numpy as np
import pytest
import torch

from bmf_graph.nn.kmeans import KMeans, dense_kmeans


def blobs(centers, size, spread=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centers = torch.tensor(centers, dtype=torch.float)
    x = centers.repeat_interleave(size, 0)
    x = x + spread * torch.randn(x.shape, generator=gen)
    truth = torch.arange(len(centers)).repeat_interleave(size)
    return x, truth


def numpy_lloyd(x, centroids, max_iter=1000):
    labels = None
    for _ in range(max_iter):
        dist = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
        new = dist.argmin(1)
        if labels is not None and (new == labels).all():
            break
        labels = new
        centroids = np.stack([x[labels == c].mean(0) if (labels == c).any() else centroids[c]
                              for c in range(len(centroids))])
    return labels, centroids


def test_kmeans_recovers_blobs():
    x, truth = blobs([[0, 0], [5, 5], [-5, 5]], size=20)
    perm = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(1))
    x, truth = x[perm], truth[perm]
    kmeans = KMeans(3)
    assert str(kmeans) == 'KMeans(3)'
    labels, centroids = kmeans(x, generator=torch.Generator().manual_seed(0))
    assert labels.dtype == torch.long and labels.shape == (60, )
    assert centroids.shape == (3, 2)
    # Same partition up to a relabelling: one label per blob, a different one each.
    mapping = {int(t): set(labels[truth == t].tolist()) for t in range(3)}
    assert all(len(v) == 1 for v in mapping.values())
    assert len(set.union(*mapping.values())) == 3
    for t in range(3):
        label = labels[truth == t][0]
        assert torch.allclose(centroids[label], x[truth == t].mean(0), atol=1e-5)


def test_kmeans_matches_numpy_lloyd_from_same_seeds():
    x = torch.randn(300, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    seeds_labels, seeds = KMeans(6, max_iter=0)(x, generator=torch.Generator().manual_seed(3))
    # k-means++ seeds are distinct data points; labels are the nearest seed.
    for seed in seeds:
        assert (x == seed).all(1).sum() == 1
    dist = torch.cdist(x, seeds)
    assert torch.equal(seeds_labels, dist.argmin(1))

    labels, centroids = KMeans(6, max_iter=1000, tol=0)(
        x, generator=torch.Generator().manual_seed(3))
    ref_labels, ref_centroids = numpy_lloyd(x.numpy(), seeds.numpy())
    assert np.array_equal(labels.numpy(), ref_labels)
    assert np.allclose(centroids.numpy(), ref_centroids, atol=1e-10)


def test_kmeans_batch_invariants():
    gen = torch.Generator().manual_seed(4)
    k, num_batch = 4, 3
    x = torch.randn(240, 2, dtype=torch.float64, generator=gen)
    batch = torch.randint(num_batch, (240, ), generator=gen)  # unsorted, same region
    labels, centroids = KMeans(k, max_iter=500, tol=0)(x, batch, generator=gen)
    assert centroids.shape == (num_batch * k, 2)
    # Team b only uses its own cluster ids.
    assert torch.equal(labels // k, batch)
    size = torch.bincount(labels, minlength=num_batch * k)
    for c in range(num_batch * k):
        if size[c] > 0:  # centroids are the means of their points
            assert torch.allclose(centroids[c], x[labels == c].mean(0), atol=1e-10)
        else:
            assert torch.equal(centroids[c], torch.zeros(2, dtype=torch.float64))
    # Every point lies in the nearest non-empty cluster of its own team.
    dist = torch.cdist(x, centroids).pow(2)
    own = (torch.arange(num_batch * k) // k)[None, :] == batch[:, None]
    dist = dist.masked_fill(~own | (size == 0)[None, :], float('inf'))
    assert torch.allclose(dist.gather(1, labels[:, None]).squeeze(1), dist.min(1).values,
                          atol=1e-10)


def test_kmeans_more_clusters_than_points():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [7.0, 7.0]])
    batch = torch.tensor([0, 0, 0, 1])
    labels, centroids = KMeans(5)(x, batch)
    assert centroids.shape == (10, 2)
    assert labels[:3].unique().numel() == 3
    assert ((labels[:3] >= 0) & (labels[:3] < 5)).all()
    assert 5 <= labels[3] < 10
    assert torch.equal(centroids[labels], x)  # each point is its own centroid
    empty = torch.ones(10, dtype=torch.bool)
    empty[labels] = False
    assert (centroids[empty] == 0).all()


def test_kmeans_duplicate_points():
    x = torch.tensor([[1.0, 2.0]] * 3 + [[4.0, 4.0]] * 3)
    for seed in range(20):
        labels, centroids = KMeans(4)(x, generator=torch.Generator().manual_seed(seed))
        assert torch.isfinite(centroids).all()
        assert labels[:3].unique().numel() == 1 and labels[3:].unique().numel() == 1
        assert labels[0] != labels[3]
        assert torch.equal(centroids[labels], x)
        assert (torch.bincount(labels, minlength=4) > 0).sum() == 2

    labels, centroids = KMeans(3)(torch.ones(5, 2))
    assert torch.equal(labels, torch.zeros(5, dtype=torch.long))
    assert torch.equal(centroids, torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))


def test_kmeans_empty_inputs_and_teams():
    labels, centroids = KMeans(3)(torch.empty(0, 4))
    assert labels.shape == (0, ) and labels.dtype == torch.long
    assert torch.equal(centroids, torch.zeros(3, 4))

    labels, centroids = KMeans(3)(torch.empty(0, 4), torch.empty(0, dtype=torch.long),
                                  num_batch=2)
    assert labels.shape == (0, ) and torch.equal(centroids, torch.zeros(6, 4))

    # Team 1 has no points: its rows are zero and nobody gets its ids.
    x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
    labels, centroids = KMeans(2)(x, torch.tensor([0, 0, 2, 2]))
    assert centroids.shape == (6, 1)
    assert torch.equal(centroids[2:4], torch.zeros(2, 1))
    assert set(labels.tolist()) == {0, 1, 4, 5}


def test_kmeans_one_dimension():
    x = torch.tensor([[10.0], [0.0], [10.1], [0.1], [0.2]])
    labels, centroids = KMeans(2)(x, generator=torch.Generator().manual_seed(0))
    assert labels[0] == labels[2] and labels[1] == labels[3] == labels[4]
    assert labels[0] != labels[1]
    assert torch.allclose(centroids[labels[0]], torch.tensor([10.05]))
    assert torch.allclose(centroids[labels[1]], torch.tensor([0.1]))


def test_kmeans_generator_reproducible():
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(5))
    batch = torch.arange(100) % 2
    first = KMeans(5)(x, batch, generator=torch.Generator().manual_seed(9))
    second = KMeans(5)(x, batch, generator=torch.Generator().manual_seed(9))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_kmeans_errors():
    with pytest.raises(ValueError, match=r"KMeans: num_clusters must be an integer >= 1, got 0"):
        KMeans(0)
    with pytest.raises(ValueError, match=r"KMeans: max_iter must be"):
        KMeans(2, max_iter=-1)
    with pytest.raises(ValueError, match=r"KMeans: x must have shape \[N, D\], got \(5,\)"):
        KMeans(2)(torch.zeros(5))
    with pytest.raises(ValueError, match=r"KMeans: x must be finite"):
        KMeans(2)(torch.tensor([[0.0], [float('nan')]]))
    with pytest.raises(ValueError, match=r"KMeans: batch must have shape \[4\].*got \(3,\)"):
        KMeans(2)(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"KMeans: batch must be an integer tensor"):
        KMeans(2)(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match=r"KMeans: batch entries must be >= 0, got -1"):
        KMeans(2)(torch.zeros(2, 2), torch.tensor([0, -1]))
    with pytest.raises(ValueError, match=r"KMeans: num_batch must exceed .*\(2\), got 2"):
        KMeans(2)(torch.zeros(2, 2), torch.tensor([0, 2]), num_batch=2)


def test_kmeans_warm_start_reaches_lloyds_fixed_point():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(400, 3, dtype=torch.float64, generator=gen)
    batch = torch.arange(2).repeat_interleave(200)
    init = torch.randn(8, 3, dtype=torch.float64, generator=gen)  # 4 per team, not data points
    labels, centroids = KMeans(4, max_iter=1000, tol=0)(x, batch, init=init)
    for b in range(2):
        team = batch == b
        ref_labels, ref_centroids = numpy_lloyd(x[team].numpy(), init[4 * b:4 * b + 4].numpy())
        assert np.array_equal(labels[team].numpy() - 4 * b, ref_labels)
        assert np.allclose(centroids[4 * b:4 * b + 4].numpy(), ref_centroids, atol=1e-10)
    # No random draw is made: the generator is not needed and results repeat exactly.
    again = KMeans(4, max_iter=1000, tol=0)(x, batch, init=init)
    assert torch.equal(again[0], labels) and torch.equal(again[1], centroids)


@pytest.mark.parametrize("tol", [0.0, 1e-4])
def test_kmeans_warm_start_from_its_fixed_point_stops_at_once(tol):
    x, _ = blobs([[0, 0], [4, 0], [0, 4], [4, 4], [2, 2]], size=30, spread=0.6)
    batch = torch.arange(150) % 2
    kmeans = KMeans(5, max_iter=1000, tol=0)
    labels, centroids = kmeans(x, batch, generator=torch.Generator().manual_seed(0))
    cold_iters = kmeans.n_iter_
    warm = KMeans(5, max_iter=1000, tol=tol)
    warm_labels, warm_centroids = warm(x, batch, init=centroids)
    assert warm.n_iter_ <= 2 < cold_iters
    assert torch.equal(warm_labels, labels)
    assert torch.allclose(warm_centroids, centroids, atol=1e-6)


def test_kmeans_stops_when_the_assignment_repeats():
    x, truth = blobs([[0, 0], [5, 5], [-5, 5]], size=20)
    kmeans = KMeans(3, max_iter=1000, tol=0)
    init = torch.tensor([[1.0, 1.0], [4.0, 4.0], [-4.0, 4.0]])
    labels, centroids = kmeans(x, init=init)
    # One step assigns the blobs, a second finds the same assignment and stops.
    assert kmeans.n_iter_ == 2
    assert torch.equal(labels, truth)
    one = KMeans(3, max_iter=1, tol=0)
    assert torch.equal(one(x, init=init)[1], centroids) and one.n_iter_ == 1


def test_kmeans_warm_start_edge_cases():
    # max_iter=0 returns the given centroids (rows of empty clusters are zero).
    x = torch.tensor([[0.0, 0.0], [0.2, 0.0], [5.0, 5.0]])
    init = torch.tensor([[0.1, 0.0], [5.0, 4.0], [50.0, 50.0]])
    labels, centroids = KMeans(3, max_iter=0)(x, init=init)
    assert labels.tolist() == [0, 0, 1]
    assert torch.allclose(centroids, torch.tensor([[0.1, 0.0], [5.0, 4.0], [0.0, 0.0]]))
    assert centroids[2].abs().sum() == 0
    # A team without points gets zero rows, whatever its initial centroids.
    labels, centroids = KMeans(2)(x, torch.tensor([0, 0, 2]), init=torch.ones(6, 2))
    assert torch.equal(centroids[2:4], torch.zeros(2, 2)) and labels[2] in (4, 5)
    # An init of another dtype is cast to x's dtype.
    labels, centroids = KMeans(2)(x.double(), init=init[:2])
    assert centroids.dtype == torch.float64 and labels.tolist() == [0, 0, 1]
    assert KMeans(2)(torch.empty(0, 2), init=torch.zeros(2, 2))[0].shape == (0, )


def test_kmeans_init_errors():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"KMeans: init must have shape \[6, 2\].*got \(3, 2\)"):
        KMeans(3)(x, torch.tensor([0, 0, 1, 1]), init=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"KMeans: init must have shape \[3, 2\].*got \(3, 3\)"):
        KMeans(3)(x, init=torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"KMeans: init must be finite"):
        KMeans(2)(x, init=torch.tensor([[0.0, 0.0], [float('inf'), 0.0]]))


def test_dense_kmeans_recovers_separated_clusters_per_set():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = torch.randint(0, 3, (4, 30), generator=gen)
    x = centres[truth] + 0.1 * torch.randn(4, 30, 2, generator=gen)
    labels = dense_kmeans(x, 3)
    for b in range(4):  # the same partition as the truth, up to the cluster ids
        same = labels[b].unsqueeze(0) == labels[b].unsqueeze(1)
        assert torch.equal(same, truth[b].unsqueeze(0) == truth[b].unsqueeze(1))


def test_dense_kmeans_fixed_point_vmap_and_edge_cases():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 25, 4, generator=gen)
    labels = dense_kmeans(x, 4, num_iter=50)
    for b in range(3):  # converged: every point lies in the cluster of its nearest mean
        means = torch.stack([x[b, labels[b] == c].mean(0) for c in labels[b].unique()])
        nearest = torch.cdist(x[b], means).argmin(1)
        assert torch.equal(labels[b].unique()[nearest], labels[b])
    assert torch.equal(torch.vmap(lambda t: dense_kmeans(t, 4, num_iter=50))(x), labels)
    few = dense_kmeans(torch.randn(2, 3, 2, generator=gen), 5)  # k > n: one point per cluster
    assert all(sorted(row.tolist()) == [0, 1, 2] for row in few)
    with pytest.raises(ValueError, match="dense_kmeans: num_clusters must be an integer >= 1, got 0"):
        dense_kmeans(x, 0)
