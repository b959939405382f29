"""Batched k-means with k-means++ seeding, in torch (docs/method.md, paper Sec. 4.2)."""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from bmf_graph.graph.search import batch_slots


class KMeans(torch.nn.Module):
    r"""k-means clustering of the rows of :obj:`x`, run separately for every
    team (entry of :obj:`batch`) and vectorised across teams.

    Seeds are drawn by k-means++ (first seed uniform, each further seed a point
    :math:`x` with probability :math:`\propto D(x)^2`, its squared distance to
    the nearest seed already drawn in its team), then Lloyd's iterations

    .. math::
        \ell_i = \operatorname*{arg\,min}_{c \in \mathcal{C}(b_i)}
        \| \mathbf{x}_i - \boldsymbol{\mu}_c \|^2, \qquad
        \boldsymbol{\mu}_c = \frac{1}{|\{i : \ell_i = c\}|}
        \sum_{i : \ell_i = c} \mathbf{x}_i

    minimise the within-cluster sum of squares, where :math:`\mathcal{C}(b)
    = \{bk, \dots, bk + k - 1\}` are the cluster ids of team :math:`b`.

    Edge cases, all NaN-free:

    - a team with at most :math:`k` distinct points puts each distinct point in
      its own cluster (duplicates share one); its remaining clusters are empty;
    - a seed that coincides with another loses its points to the lower id and
      its cluster is empty;
    - an empty cluster keeps its centroid during Lloyd's iterations, and its row
      in the returned :obj:`centroids` is zero.

    Exact ties go to the lowest cluster id. The last Lloyd step is an
    assignment, so every point lies in its nearest non-empty cluster; at
    convergence each centroid is the mean of its points. Teams are padded to
    the largest one, so memory is :math:`O(B \cdot n_{\max} \cdot (D + k))`;
    each Lloyd step is two batched matrix products.

    With :obj:`init`, Lloyd's iterations start from the given centroids instead
    (a warm start, e.g. from the previous grouping); every cluster of a team with
    points is then used, and the edge cases above hold only as far as the given
    centroids allow (two distinct points may share a cluster). Iterations stop
    once the assignment no longer changes (the centroids are then a fixed point),
    or on the :obj:`tol` criterion below; :attr:`n_iter_` counts them.

    Args:
        num_clusters (int): Number of clusters :math:`k` per team.
        max_iter (int, optional): Maximum number of Lloyd iterations; ``0``
            returns the k-means++ seeds (or :obj:`init`). (default: :obj:`50`)
        tol (float, optional): Stop when the summed squared centroid shift is at
            most :obj:`tol` times the mean per-feature variance of :obj:`x`.
            (default: :obj:`1e-4`)

    Shapes:
        - **input:** points :math:`(N, D)`, batch vector :math:`(N)` (optional),
          initial centroids :math:`(kB, D)` (optional)
        - **output:** labels :math:`(N)` (long, in :math:`[0, kB)`),
          centroids :math:`(kB, D)`, with :math:`B` the number of teams
    """
    def __init__(self, num_clusters: int, max_iter: int = 50, tol: float = 1e-4):
        super().__init__()
        if not isinstance(num_clusters, int) or num_clusters < 1:
            raise ValueError(f"KMeans: num_clusters must be an integer >= 1, "
                             f"got {num_clusters!r}")
        if not isinstance(max_iter, int) or max_iter < 0:
            raise ValueError(f"KMeans: max_iter must be an integer >= 0, got {max_iter!r}")
        if not tol >= 0:
            raise ValueError(f"KMeans: tol must be >= 0, got {tol!r}")
        self.num_clusters = num_clusters
        self.max_iter = max_iter
        self.tol = float(tol)
        self.n_iter_ = 0  # Lloyd iterations of the last call
        self.reset_parameters()

    def reset_parameters(self):
        r"""KMeans has no parameters; kept for a uniform layer interface."""

    @torch.no_grad()
    def forward(self, x: Tensor, batch: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None,
                num_batch: Optional[int] = None,
                init: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        r"""Clusters :obj:`x` per team (no gradient flows through).

        Args:
            x (torch.Tensor): Points.
            batch (torch.Tensor, optional): Team of each point, in
                :math:`[0, B)`. (default: :obj:`None`, one team)
            generator (torch.Generator, optional): Random source of the
                k-means++ draws, on the device of :obj:`x`.
                (default: :obj:`None`)
            num_batch (int, optional): Number of teams :math:`B`, for teams that
                have no points. (default: :obj:`None`, :obj:`batch.max() + 1`)
            init (torch.Tensor, optional): Initial centroids :math:`(kB, D)`,
                rows :math:`bk, \dots, bk + k - 1` for team :math:`b`, in
                place of the k-means++ seeds. (default: :obj:`None`)
        """
        x, batch, num_batch = self._check(x, batch, num_batch)
        k, (N, D) = self.num_clusters, x.shape
        if init is not None:
            init = self._check_init(init, x, num_batch)
        self.n_iter_ = 0
        if N == 0:
            return batch.clone(), x.new_zeros(num_batch * k, D)
        # Work in units of a power of two near max |x| (exact: results at ordinary scales are
        # unchanged), so no square or sum overflows, whatever the finite scale of x.
        scale = _power_of_two_scale(x if init is None else torch.cat([x, init]))
        x = x / scale
        init = None if init is None else init / scale

        dense, real, slot, offset = self._to_dense(x, batch, num_batch)
        if init is None:
            centroids, valid = self._plusplus(dense, real, generator)
        else:
            centroids = init.view(num_batch, k, D) - offset.unsqueeze(1)
            valid = real.any(1, keepdim=True).expand(num_batch, k)
        masked = None if bool(valid.all()) else ~valid.unsqueeze(2)
        padding = None if bool(real.all()) else ~real
        centred = dense if num_batch == 1 else x - x.mean(0)
        threshold = self.tol * float(centred.pow(2).mean()) if N > 1 else 0.0
        dense_t = dense.transpose(1, 2)                                    # [B, D, n_max]
        nearest, settled, n_iter = None, False, 0
        for n_iter in range(1, self.max_iter + 1):
            new = self._nearest(dense_t, centroids, masked, padding)
            if nearest is not None and torch.equal(new, nearest):
                settled = True  # same assignment: the centroids are its means already
                break
            # One-hot [B, k, n_max] of the assignment (padding slots point at row k).
            member = dense.new_zeros(num_batch, k + 1, dense.size(1))
            member = member.scatter_(1, new.unsqueeze(1), 1.0)[:, :k]
            size = member.sum(2, keepdim=True)
            update = torch.bmm(member, dense) / size.clamp(min=1)
            update = torch.where(size > 0, update, centroids)
            shift = float((update - centroids).pow(2).sum())
            centroids, nearest = update, new
            if shift <= threshold:
                break
        self.n_iter_ = n_iter
        if not settled:  # the last step is an assignment to the last centroids
            nearest = self._nearest(dense_t, centroids, masked, padding)

        labels = batch * k + nearest[batch, slot]
        size = torch.bincount(labels, minlength=num_batch * k).view(num_batch, k, 1)
        centroids = torch.where(size > 0, centroids + offset.unsqueeze(1), 0.0)
        return labels, centroids.view(-1, D) * scale

    def _to_dense(self, x: Tensor, batch: Tensor,
                  num_batch: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        # Teams laid out densely, [B, n_max, D] (zero padded), each centred on its
        # mean so that the expanded distance ||x||^2 - 2 x.c + ||c||^2 loses little
        # precision. Point i sits at dense[batch[i], slot[i]].
        count = torch.bincount(batch, minlength=num_batch)
        offset = x.new_zeros(num_batch, x.size(1)).index_add_(0, batch, x)
        offset = offset / count.clamp(min=1).unsqueeze(1).to(x.dtype)
        if num_batch == 1:  # one team: no padding, no scatter
            real = torch.ones(1, x.size(0), dtype=torch.bool, device=x.device)
            slot = torch.arange(x.size(0), device=x.device)
            return (x - offset).unsqueeze(0), real, slot, offset
        slot = batch_slots(batch, count)
        real = torch.zeros(num_batch, int(count.max()), dtype=torch.bool, device=x.device)
        real[batch, slot] = True
        dense = x.new_zeros(num_batch, real.size(1), x.size(1))
        dense[batch, slot] = x - offset[batch]
        return dense, real, slot, offset

    @staticmethod
    def _nearest(dense_t: Tensor, centroids: Tensor, masked: Optional[Tensor],
                 padding: Optional[Tensor]) -> Tensor:
        # Index [B, n_max] of each point's nearest valid centroid of its own team,
        # the lowest one on ties; padding slots get k. Distances are laid out
        # [B, k, n_max] so that the minimum over k runs along contiguous points
        # (argmin over a short strided axis is several times slower).
        k = centroids.size(1)
        dist = torch.baddbmm(centroids.pow(2).sum(-1).unsqueeze(2), centroids, dense_t,
                             alpha=-2)
        dist = dist.nan_to_num(nan=float('inf'))  # never NaN: a point always gets an id of its team
        if masked is not None:
            dist = dist.masked_fill(masked, float('inf'))
        small = torch.uint8 if k < 256 else torch.long  # narrow ranks: less memory traffic
        rank = torch.arange(k, 0, -1, dtype=small, device=dist.device)  # k - id
        hit = dist <= dist.amin(1, keepdim=True)
        nearest = k - (hit * rank.view(1, k, 1)).amax(1).long()
        return nearest if padding is None else nearest.masked_fill(padding, k)

    def _plusplus(self, dense: Tensor, real: Tensor,
                  generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
        k, (B, _, D) = self.num_clusters, dense.shape
        rows = torch.arange(B, device=dense.device)
        seeds = dense.new_zeros(B, k, D)
        valid = torch.zeros(B, k, dtype=torch.bool, device=dense.device)
        taken = torch.zeros_like(real)
        min_dist = real.to(dense.dtype)         # uniform weights for the first seed
        for c in range(k):  # k-means++ is sequential in the seeds, vectorised over points
            free = real & ~taken
            has = free.any(dim=1)
            weight = torch.where(free, min_dist, 0.0)
            # All remaining points duplicate a seed: draw uniformly among them.
            weight = torch.where((weight.sum(1) > 0).unsqueeze(1), weight, free.to(dense.dtype))
            weight[:, 0] += (~has).to(dense.dtype)  # teams with no point left: dummy draw
            pick = torch.multinomial(weight, 1, generator=generator).squeeze(1)
            taken[rows, pick] |= has
            valid[:, c] = has
            seeds[:, c] = dense[rows, pick] * has.unsqueeze(1)
            dist = (dense - seeds[:, c].unsqueeze(1)).pow(2).sum(-1)
            dist = dist.masked_fill(~has.unsqueeze(1), float('inf'))
            min_dist = dist if c == 0 else torch.minimum(min_dist, dist)
        return seeds, valid

    def _check(self, x: Tensor, batch: Optional[Tensor],
               num_batch: Optional[int]) -> Tuple[Tensor, Tensor, int]:
        name = self.__class__.__name__
        if not isinstance(x, Tensor) or x.dim() != 2:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
            raise ValueError(f"{name}: x must have shape [N, D], got {shape}")
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        if x.numel() > 0 and not all(map(math.isfinite, torch.aminmax(x))):  # NaN propagates
            raise ValueError(f"{name}: x must be finite, got NaN or inf entries")
        N = x.size(0)
        if batch is None:
            batch = torch.zeros(N, dtype=torch.long, device=x.device)
            num_batch = 1 if num_batch is None else num_batch
        else:
            if not isinstance(batch, Tensor) or batch.shape != (N,):
                shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch)
                raise ValueError(f"{name}: batch must have shape [{N}] (one entry per "
                                 f"row of x), got {shape}")
            if batch.is_floating_point() or batch.dtype == torch.bool:
                raise ValueError(f"{name}: batch must be an integer tensor, got {batch.dtype}")
            batch = batch.long()
            if N > 0 and int(batch.min()) < 0:
                raise ValueError(f"{name}: batch entries must be >= 0, got {int(batch.min())}")
            needed = int(batch.max()) + 1 if N > 0 else 0
            num_batch = needed if num_batch is None else num_batch
            if num_batch < needed:
                raise ValueError(f"{name}: num_batch must exceed the largest batch entry "
                                 f"({needed - 1}), got {num_batch}")
        if num_batch < 0:
            raise ValueError(f"{name}: num_batch must be >= 0, got {num_batch}")
        return x, batch, num_batch

    def _check_init(self, init: Tensor, x: Tensor, num_batch: int) -> Tensor:
        name, want = self.__class__.__name__, (num_batch * self.num_clusters, x.size(1))
        if not isinstance(init, Tensor) or tuple(init.shape) != want:
            shape = tuple(init.shape) if isinstance(init, Tensor) else type(init)
            raise ValueError(f"{name}: init must have shape [{want[0]}, {want[1]}] (num_batch * "
                             f"num_clusters rows, one column per feature of x), got {shape}")
        init = init.to(x.device, x.dtype)
        if init.numel() > 0 and not all(map(math.isfinite, torch.aminmax(init))):
            raise ValueError(f"{name}: init must be finite, got NaN or inf entries")
        return init

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.num_clusters})'


def dense_kmeans(x: Tensor, num_clusters: int, num_iter: int = 10) -> Tensor:
    r"""k-means of each of ``B`` independent sets of ``n`` points, with no data-dependent shape
    or branch, so it runs under ``torch.compile`` and ``torch.vmap`` (e.g. inside a TorchRL
    critic) where :class:`KMeans` cannot.

    Seeds are drawn deterministically by farthest-point traversal (point 0 first, then each
    next seed the point farthest from the seeds so far: k-means++ with its draw replaced by the
    arg max, so vmap needs no randomness), then exactly ``num_iter`` Lloyd steps; a cluster that
    loses all its points keeps its centroid. Ties go to the lowest cluster id. Not
    differentiated (the assignment is discrete).

    Args:
        x (Tensor): points :math:`(*, n, D)`.
        num_clusters (int): clusters :math:`k` per set (at most :math:`n` are used).
        num_iter (int): Lloyd steps. (default: ``10``)

    Returns:
        labels :math:`(*, n)` long in :math:`[0, k)`.
    """
    if not isinstance(num_clusters, int) or num_clusters < 1:
        raise ValueError(f"dense_kmeans: num_clusters must be an integer >= 1, got {num_clusters!r}")
    if not isinstance(x, Tensor) or x.dim() < 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x)
        raise ValueError(f"dense_kmeans: x must have shape [*, n, D], got {shape}")
    batch_shape, (n, dim) = x.shape[:-2], x.shape[-2:]
    x = x.detach().reshape(-1, n, dim)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    seeds = [x[:, 0]]
    nearest = (x - seeds[0].unsqueeze(1)).pow(2).sum(-1)                    # [B, n]
    for _ in range(1, min(num_clusters, n)):
        far = nearest.argmax(1, keepdim=True)                               # [B, 1]
        seeds.append(x.gather(1, far.unsqueeze(2).expand(-1, 1, dim)).squeeze(1))
        nearest = torch.minimum(nearest, (x - seeds[-1].unsqueeze(1)).pow(2).sum(-1))
    centroids = torch.stack(seeds, 1)                                       # [B, k', D]
    for _ in range(num_iter + 1):
        labels = torch.cdist(x, centroids).argmin(-1)                       # [B, n]
        member = (labels.unsqueeze(1) == torch.arange(centroids.size(1), device=x.device)
                  .view(1, -1, 1)).to(x.dtype)                              # [B, k', n]
        size = member.sum(2, keepdim=True)
        centroids = torch.where(size > 0, member @ x / size.clamp(min=1), centroids)
    return labels.view(*batch_shape, n)


def _power_of_two_scale(x: Tensor) -> Tensor:
    """``2^e <= max |x| < 2^(e+1)`` (1 for an all-zero ``x``), as a 0-d tensor of ``x``'s dtype:
    ``x / 2^e`` is exact and lies in ``(-2, 2)``."""
    top = x.abs().amax() if x.numel() else x.new_zeros(())
    _, exponent = torch.frexp(top)  # top = m * 2^exponent, m in [0.5, 1)
    return torch.where(top > 0, torch.ldexp(torch.ones_like(top), exponent - 1), torch.ones_like(top))
