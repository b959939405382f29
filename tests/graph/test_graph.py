import math
import sys

import pytest
import torch

from bmf_graph.graph import radius as graph
from bmf_graph.graph import search as radius_search
from bmf_graph.graph import dense_adjacency, get_backend, neighbour_graph, radius_graph, set_backend


def brute_radius_graph(pos, r, batch=None, loop=False, max_num_neighbors=None):
    """O(N^2) reference: sources of each target sorted by (distance, index), cut at k."""
    n = pos.size(0)
    dist2 = (pos[:, None] - pos[None, :]).pow(2).sum(-1)  # [target, source]
    batch = torch.zeros(n, dtype=torch.long) if batch is None else batch
    edges = []
    for i in range(n):
        sources = [j for j in range(n) if batch[i] == batch[j]
                   and ((i == j and loop) or (i != j and dist2[i, j] < r * r))]
        if max_num_neighbors is not None:
            sources = sorted(sources, key=lambda j: (float(dist2[i, j]), j))[:max_num_neighbors]
        edges += [(j, i) for j in sorted(sources)]
    return torch.tensor(edges, dtype=torch.long).view(-1, 2).t()


@pytest.fixture(params=["dense", "cell_list", "kdtree"])
def torch_backend(request, monkeypatch):
    """Each path of the ``"torch"`` and ``"kdtree"`` backends: the dense one, the cell list and
    scipy's KD-tree."""
    monkeypatch.setattr(radius_search, "DENSE_MAX_NODES", 10 ** 9 if request.param == "dense" else 0)
    set_backend("kdtree" if request.param == "kdtree" else "torch")
    yield request.param
    set_backend("auto")


def test_radius_graph_tiny_strict(torch_backend):
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    edge_index = radius_graph(pos, 1.5)
    # 0-1 and 0-3 at distance 1, 1-3 at sqrt(2); node 2 is 2 away from node 1.
    assert edge_index.tolist() == [[1, 3, 0, 3, 0, 1], [0, 0, 1, 1, 3, 3]]
    assert radius_graph(pos, 1.0).numel() == 0  # distance exactly r is not an edge
    assert radius_graph(pos, 1.0, loop=True).tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("use_batch", [False, True])
def test_radius_graph_matches_brute_force(torch_backend, loop, use_batch):
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        n = int(torch.randint(1, 120, (1,), generator=gen))
        pos = torch.rand(n, 2, generator=gen) * 20
        pos[: n // 4] = pos[n // 4: 2 * (n // 4)]  # duplicate points
        r = float(torch.rand(1, generator=gen)) * 6
        batch = torch.randint(0, 3, (n,), generator=gen) if use_batch else None  # unsorted
        out = radius_graph(pos, r, batch, loop)
        assert out.dtype == torch.long
        assert torch.equal(out, brute_radius_graph(pos, r, batch, loop))


@pytest.mark.parametrize("k", [0, 1, 3])
def test_radius_graph_max_num_neighbors_keeps_nearest(torch_backend, k):
    gen = torch.Generator().manual_seed(1)
    pos = torch.randint(0, 12, (80, 2), generator=gen).float()  # many equal distances
    batch = torch.randint(0, 2, (80,), generator=gen)
    for loop in (False, True):
        out = radius_graph(pos, 4.0, batch, loop, max_num_neighbors=k)
        assert torch.equal(out, brute_radius_graph(pos, 4.0, batch, loop, k))


def test_radius_graph_ties_by_index(torch_backend):
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.5, 0.0]])
    out = radius_graph(pos, 1.1, max_num_neighbors=2)
    assert out[0, out[1] == 0].tolist() == [1, 4]  # nearest (4), then lowest index of the ties


def test_radius_graph_3d_and_integer_positions(torch_backend):
    gen = torch.Generator().manual_seed(2)
    pos = torch.rand(100, 3, generator=gen) * 5
    assert torch.equal(radius_graph(pos, 1.3), brute_radius_graph(pos, 1.3))
    cells = torch.randint(0, 10, (60, 2), generator=gen)
    assert torch.equal(radius_graph(cells, 2.5), brute_radius_graph(cells.float(), 2.5))


def test_radius_graph_sparse_huge_domain(torch_backend):
    # Cells of side 1e-3 over a span of 1e9: occupied cells are compressed, never enumerated.
    gen = torch.Generator().manual_seed(3)
    centres = torch.rand(30, 2, generator=gen, dtype=torch.float64) * 1e9
    pos = torch.cat([centres, centres + 4e-4, centres + torch.tensor([0.0, 1.5e-3])])
    assert torch.equal(radius_graph(pos, 1e-3), brute_radius_graph(pos, 1e-3))


def test_radius_graph_permutation_equivariant(torch_backend):
    gen = torch.Generator().manual_seed(4)
    pos = torch.rand(200, 2, generator=gen) * 30
    perm = torch.randperm(200, generator=gen)
    edges = {tuple(e) for e in radius_graph(pos, 3.0).t().tolist()}
    permuted = {(int(perm[j]), int(perm[i])) for j, i in radius_graph(pos[perm], 3.0).t().tolist()}
    assert len(edges) > 100 and permuted == edges


def test_radius_graph_empty_and_zero_radius(torch_backend):
    out = radius_graph(torch.empty(0, 2), 1.0)
    assert out.shape == (2, 0) and out.dtype == torch.long
    pos = torch.zeros(3, 2)
    assert radius_graph(pos, 0.0).shape == (2, 0)
    assert radius_graph(pos, 1.0).shape == (2, 6)


@pytest.mark.parametrize("grid", [False, True])
def test_radius_graph_dense_path_across_threshold(monkeypatch, grid):
    """Calls just below, at and above ``DENSE_MAX_NODES`` switch between the dense path and
    the cell list; edges (and their order) match each other and the brute-force reference,
    also on integer grids where many pairs lie at exactly ``r``."""
    set_backend("torch")
    gen = torch.Generator().manual_seed(9)
    limit = 40
    monkeypatch.setattr(radius_search, "DENSE_MAX_NODES", limit)
    try:
        for n in (limit - 1, limit, limit + 1):
            if grid:
                pos, r = torch.randint(0, 12, (n, 2), generator=gen).float(), 5.0  # 3-4-5
            else:
                pos, r = torch.rand(n, 2, generator=gen) * 12, 3.0
            batch = torch.randint(0, 3, (n,), generator=gen)
            for use_batch, loop, k in [(False, False, None), (True, False, None),
                                       (True, True, None), (True, False, 2), (False, True, 3)]:
                b = batch if use_batch else None
                out = radius_graph(pos, r, b, loop, k)
                monkeypatch.setattr(radius_search, "DENSE_MAX_NODES", 0)
                cell_list = radius_graph(pos, r, b, loop, k)
                monkeypatch.setattr(radius_search, "DENSE_MAX_NODES", limit)
                assert out.size(1) > 0 and torch.equal(out, cell_list)
                assert torch.equal(out, brute_radius_graph(pos, r, b, loop, k))
    finally:
        set_backend("auto")


def test_radius_graph_dense_path_is_the_default_for_small_inputs(monkeypatch):
    calls = []
    monkeypatch.setitem(graph._PAIRS, "torch",
                        lambda *args: calls.append(1) or (torch.empty(0, dtype=torch.long),) * 2)
    gen = torch.Generator().manual_seed(10)
    set_backend("torch")
    try:
        pos = torch.rand(radius_search.DENSE_MAX_NODES + 1, 2, generator=gen) * 10
        assert radius_graph(pos[1:], 2.0).size(1) > 0 and not calls
        radius_graph(pos, 2.0)
        assert calls == [1]
    finally:
        set_backend("auto")


def test_radius_graph_errors():
    pos = torch.rand(5, 2)
    with pytest.raises(ValueError, match=r"radius_graph: pos must have shape \[N, D\].*\(5,\)"):
        radius_graph(torch.rand(5), 1.0)
    with pytest.raises(ValueError, match="radius_graph: r must be a finite number >= 0, got -1"):
        radius_graph(pos, -1.0)
    with pytest.raises(ValueError, match="r must be a finite number >= 0, got nan"):
        radius_graph(pos, math.nan)
    with pytest.raises(ValueError, match="r must be a finite number >= 0, got inf"):
        radius_graph(pos, math.inf)
    bad = pos.clone()
    bad[2, 1] = math.nan
    with pytest.raises(ValueError, match="radius_graph: pos must be finite"):
        radius_graph(bad, 1.0)
    with pytest.raises(ValueError, match=r"radius_graph: batch must have shape \[5\], got \(4,\)"):
        radius_graph(pos, 1.0, batch=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="batch must be an integer tensor"):
        radius_graph(pos, 1.0, batch=torch.zeros(5))
    with pytest.raises(ValueError, match="max_num_neighbors must be None or >= 0, got -2"):
        radius_graph(pos, 1.0, max_num_neighbors=-2)


@pytest.mark.parametrize("batch_kind", ["none", "unsorted", "copies"])
def test_neighbour_graph_alive_mask(torch_backend, batch_kind):
    gen = torch.Generator().manual_seed(5)
    pos = torch.rand(50, 2, generator=gen) * 10
    batch = {"none": None, "unsorted": torch.randint(0, 2, (50,), generator=gen),
             "copies": torch.arange(5).repeat_interleave(10)}[batch_kind]  # equal contiguous blocks
    alive = torch.rand(50, generator=gen) > 0.3
    pos[~alive] = math.nan  # dead slots hold anything; they are never linked
    slots = alive.nonzero().view(-1)
    sub_batch = None if batch is None else batch[slots]
    for loop, k in [(False, None), (True, None), (False, 2)]:
        expected = slots[brute_radius_graph(pos[slots], 2.0, sub_batch, loop, k)]
        assert torch.equal(neighbour_graph(pos, 2.0, alive, batch, loop, k), expected)
    pos[alive.nonzero()[0]] = math.inf
    with pytest.raises(ValueError, match="pos must be finite"):
        neighbour_graph(pos, 2.0, alive, batch)
    pos = pos.nan_to_num(0.0, 0.0, 0.0)
    slots = alive.nonzero().view(-1)
    assert torch.equal(neighbour_graph(pos[slots], 2.0), radius_graph(pos[slots], 2.0))
    with pytest.raises(ValueError, match=r"neighbour_graph: alive must be a bool tensor"):
        neighbour_graph(pos, 2.0, alive.long())


def adjacency_edges(adj):
    """Edges ``j -> i`` of a dense ``[B, n, n]`` adjacency in node numbering ``b*n + i``."""
    b, i, j = adj.nonzero().unbind(1)
    n = adj.size(1)
    return torch.stack([b * n + j, b * n + i])


@pytest.mark.parametrize("num_copies", [1, 4])
def test_dense_adjacency_is_neighbour_graph(num_copies):
    gen = torch.Generator().manual_seed(6)
    for n in (1, 7, 30):
        pos = torch.randint(0, 12, (num_copies * n, 2), generator=gen).float()  # grid cells, ties
        alive = torch.rand(num_copies * n, generator=gen) > 0.25
        pos[~alive] = math.nan  # never read
        batch = None if num_copies == 1 else torch.arange(num_copies).repeat_interleave(n)
        adj = dense_adjacency(pos, 3.0, alive, batch)
        assert adj.shape == (num_copies, n, n) and adj.dtype == torch.bool
        assert torch.equal(adjacency_edges(adj), neighbour_graph(pos, 3.0, alive, batch))
        assert torch.equal(adjacency_edges(dense_adjacency(pos.nan_to_num(0.0), 3.0, batch=batch)),
                           radius_graph(pos.nan_to_num(0.0), 3.0, batch))


def test_dense_adjacency_only_for_small_equal_blocks(monkeypatch):
    monkeypatch.setattr(radius_search, "DENSE_MAX_NODES", 12)
    pos = torch.rand(12, 2)
    assert dense_adjacency(pos, 1.0, batch=torch.tensor([0] * 6 + [1] * 6)) is not None
    assert dense_adjacency(pos, 1.0, batch=torch.tensor([0] * 5 + [1] * 7)) is None  # unequal
    assert dense_adjacency(pos, 1.0, batch=torch.tensor([0, 1] * 6)) is None  # interleaved
    assert dense_adjacency(pos[:0], 1.0) is None
    many = torch.arange(100).repeat_interleave(6)  # 3,600 pairs: more than the edge path's 12 ** 2
    assert dense_adjacency(torch.rand(600, 2), 1.0, batch=many).shape == (100, 6, 6)
    monkeypatch.setattr(graph, "DENSE_ADJACENCY_MAX_PAIRS", 71)
    assert dense_adjacency(pos, 1.0, batch=torch.tensor([0] * 6 + [1] * 6)) is None  # 72 pairs
    monkeypatch.setattr(radius_search, "DENSE_MAX_NODES", 11)
    assert dense_adjacency(pos, 1.0) is None  # a block of 12 > 11
    with pytest.raises(ValueError, match=r"dense_adjacency: alive must be a bool tensor of shape \[12\]"):
        dense_adjacency(pos, 1.0, alive=torch.ones(11, dtype=torch.bool))
    with pytest.raises(ValueError, match="dense_adjacency: r must be a finite number >= 0, got -1.0"):
        dense_adjacency(pos, -1.0)


def test_backend_switch():
    with pytest.raises(ValueError, match=r"set_backend: name must be one of .* got 'kd'"):
        set_backend("kd")
    try:
        set_backend("torch")
        assert get_backend() == "torch"
    finally:
        set_backend("auto")
    assert get_backend() == "kdtree"
    assert get_backend("cuda") == ("cluster" if graph._cluster_available() else "torch")


def test_auto_takes_the_kdtree_on_cpu_and_the_cell_list_elsewhere(monkeypatch):
    """``"auto"`` resolves to the KD-tree for CPU tensors and, without torch-cluster, to the
    pure-torch cell list for CUDA ones."""
    monkeypatch.setattr(graph, "_cluster_available", lambda: False)
    set_backend("auto")
    try:
        assert (get_backend("cpu"), get_backend(torch.device("cuda", 0)), get_backend("meta")) == \
            ("kdtree", "torch", "torch")
        called = []
        original = graph._PAIRS["kdtree"]
        monkeypatch.setitem(graph._PAIRS, "kdtree", lambda *a: called.append(1) or original(*a))
        pos = torch.rand(radius_search.DENSE_MAX_NODES + 1, 2, generator=torch.Generator().manual_seed(5)) * 40
        assert radius_graph(pos, 2.0).size(1) > 0 and called == [1]
    finally:
        set_backend("auto")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kdtree_equals_cell_list_at_exactly_r(monkeypatch, dtype):
    """The KD-tree and the cell list give the same edges, in the same order, on integer grids
    (many pairs at exactly ``r``: 3-4-5 triangles), on radii between float neighbours of a pair's
    distance, and with an unsorted ``batch``, ``loop`` and ``max_num_neighbors``."""
    monkeypatch.setattr(radius_search, "DENSE_MAX_NODES", 0)
    gen = torch.Generator().manual_seed(12)
    grid = torch.randint(0, 15, (150, 2), generator=gen).to(dtype)
    cloud = (torch.rand(150, 2, generator=gen, dtype=torch.float64) * 15).to(dtype)
    gap = float((cloud[0] - cloud[1]).norm())  # radii just below, at and above one pair's distance
    batch = torch.randint(0, 5, (150,), generator=gen)
    try:
        for pos, r in [(grid, 5.0), (grid, 1.0), (cloud, 2.0), *[(cloud, gap * (1 + e)) for e in (-1e-7, 0, 1e-7)]]:
            for b, loop, k in [(None, False, None), (batch, False, None), (batch, True, 3)]:
                set_backend("torch")
                cell_list = radius_graph(pos, r, b, loop, k)
                set_backend("kdtree")
                assert torch.equal(radius_graph(pos, r, b, loop, k), cell_list)
                assert torch.equal(cell_list, brute_radius_graph(pos, r, b, loop, k))
    finally:
        set_backend("auto")


def test_backend_resolved_once(monkeypatch):
    """``"auto"`` tries the torch-cluster import at its first use only, not at every graph;
    ``set_backend`` forgets the outcome."""
    calls = []
    monkeypatch.setattr(graph, "_cluster_available", lambda: calls.append(1) or False)
    set_backend("auto")
    try:
        pos = torch.rand(50, 2, generator=torch.Generator().manual_seed(11)) * 10
        for _ in range(5):
            assert get_backend() == "kdtree" and get_backend("cuda") == "torch"
            radius_graph(pos, 2.0)
        assert len(calls) == 1
        set_backend("torch")
        assert get_backend("cuda") == "torch" and len(calls) == 1
        monkeypatch.setattr(graph, "_cluster_available", lambda: calls.append(1) or True)
        set_backend("auto")  # e.g. after installing torch-cluster
        assert get_backend("cuda") == "cluster" and get_backend("cuda") == "cluster"
        assert get_backend("cpu") == "kdtree"
        assert len(calls) == 2
    finally:
        set_backend("auto")


@pytest.mark.skipif(graph._cluster_available(), reason="torch-cluster is installed")
def test_cluster_backend_missing():
    with pytest.raises(ImportError, match="torch-cluster"):
        set_backend("cluster")


def test_cluster_backend_identical():
    pytest.importorskip("torch_cluster")
    gen = torch.Generator().manual_seed(6)
    pos = torch.randint(0, 40, (500, 2), generator=gen).float()
    batch = torch.randint(0, 3, (500,), generator=gen)
    try:
        for loop in (False, True):
            for k in (None, 4):
                set_backend("torch")
                expected = radius_graph(pos, 6.0, batch, loop, k)
                set_backend("cluster")
                assert torch.equal(radius_graph(pos, 6.0, batch, loop, k), expected)
    finally:
        set_backend("auto")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_radius_graph_cuda(torch_backend):
    gen = torch.Generator().manual_seed(7)
    pos = torch.rand(300, 2, generator=gen) * 20
    batch = torch.randint(0, 2, (300,), generator=gen)
    out = radius_graph(pos.cuda(), 2.0, batch.cuda(), max_num_neighbors=5)
    assert out.is_cuda
    assert torch.equal(out.cpu(), radius_graph(pos, 2.0, batch, max_num_neighbors=5))


def test_cluster_wrapper_with_capped_backend(monkeypatch):
    """The torch-cluster path against a stand-in with torch-cluster's contract: sorted batch
    required, at most ``max_num_neighbors`` sources per target (here the lowest indices)."""
    calls = []

    def capped_radius_graph(pos, r, batch=None, loop=False, max_num_neighbors=32):
        assert batch is None or bool((batch[1:] >= batch[:-1]).all())
        calls.append(max_num_neighbors)
        full = brute_radius_graph(pos, r, batch, loop)
        rank = torch.zeros_like(full[1])
        for t in full[1].unique():
            rank[full[1] == t] = torch.arange(int((full[1] == t).sum()))
        return full[:, rank < max_num_neighbors]

    fake = type(sys)("torch_cluster")
    fake.radius_graph = capped_radius_graph
    monkeypatch.setitem(sys.modules, "torch_cluster", fake)
    gen = torch.Generator().manual_seed(8)
    pos = torch.rand(150, 2, generator=gen) * 4  # dense: degrees far above the first cap
    batch = torch.randint(0, 2, (150,), generator=gen)
    try:
        set_backend("cluster")
        out = radius_graph(pos, 2.0, batch, max_num_neighbors=50)
    finally:
        set_backend("auto")
    assert torch.equal(out, brute_radius_graph(pos, 2.0, batch, max_num_neighbors=50))
    assert calls[0] == 32 and len(calls) > 1
