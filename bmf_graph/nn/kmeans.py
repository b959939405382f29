"""Batched k-means with k-means++ seeding, in torch (DESIGN.md §2, paper Sec. 4.2)."""
from typing import Optional, Tuple

import torch
from torch import Tensor


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

    Args:
        num_clusters (int): Number of clusters :math:`k` per team.
        max_iter (int, optional): Maximum number of Lloyd iterations; ``0``
            returns the k-means++ seeds. (default: :obj:`50`)
        tol (float, optional): Stop when the summed squared centroid shift is at
            most :obj:`tol` times the mean per-feature variance of :obj:`x`.
            (default: :obj:`1e-4`)

    Shapes:
        - **input:** points :math:`(N, D)`, batch vector :math:`(N)` (optional)
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
        self.reset_parameters()

    def reset_parameters(self):
        r"""KMeans has no parameters; kept for a uniform layer interface."""

    @torch.no_grad()
    def forward(self, x: Tensor, batch: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None,
                num_batch: Optional[int] = None) -> Tuple[Tensor, Tensor]:
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
        """
        x, batch, num_batch = self._check(x, batch, num_batch)
        k, (N, D) = self.num_clusters, x.shape
        if N == 0:
            return batch.clone(), x.new_zeros(num_batch * k, D)

        dense, real, slot, offset = self._to_dense(x, batch, num_batch)
        centroids, valid = self._plusplus(dense, real, generator)
        threshold = self.tol * float(x.var(0, correction=0).mean()) if N > 1 else 0.0
        for _ in range(self.max_iter):
            one_hot = self._assign(dense, real, centroids, valid)
            size = one_hot.sum(1).unsqueeze(-1)                             # [B, k, 1]
            update = torch.bmm(one_hot.transpose(1, 2), dense) / size.clamp(min=1)
            update = torch.where(size > 0, update, centroids)
            shift = float((update - centroids).pow(2).sum())
            centroids = update
            if shift <= threshold:
                break

        one_hot = self._assign(dense, real, centroids, valid)
        labels = batch * k + one_hot[batch, slot].argmax(-1)
        size = one_hot.sum(1).unsqueeze(-1)
        centroids = torch.where(size > 0, centroids + offset.unsqueeze(1), 0.0)
        return labels, centroids.view(-1, D)

    @staticmethod
    def _to_dense(x: Tensor, batch: Tensor,
                  num_batch: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        # Teams laid out densely, [B, n_max, D] (zero padded), each centred on its
        # mean so that the expanded distance ||x||^2 - 2 x.c + ||c||^2 loses little
        # precision. Point i sits at dense[batch[i], slot[i]].
        count = torch.bincount(batch, minlength=num_batch)
        order = torch.argsort(batch, stable=True)
        first = torch.cumsum(count, 0) - count
        slot = torch.empty_like(batch)
        slot[order] = torch.arange(x.size(0), device=x.device) - first[batch[order]]
        real = torch.zeros(num_batch, int(count.max()), dtype=torch.bool, device=x.device)
        real[batch, slot] = True
        offset = x.new_zeros(num_batch, x.size(1)).index_add_(0, batch, x)
        offset = offset / count.clamp(min=1).unsqueeze(1).to(x.dtype)
        dense = x.new_zeros(num_batch, real.size(1), x.size(1))
        dense[batch, slot] = x - offset[batch]
        return dense, real, slot, offset

    @staticmethod
    def _assign(dense: Tensor, real: Tensor, centroids: Tensor, valid: Tensor) -> Tensor:
        # One-hot [B, n_max, k] of each point's nearest valid centroid of its own team
        # (rows of padding slots are zero).
        dist = torch.baddbmm(centroids.pow(2).sum(-1).unsqueeze(1), dense,
                             centroids.transpose(1, 2), alpha=-2)
        dist = dist.masked_fill(~valid.unsqueeze(1), float('inf'))
        nearest = dist.argmin(-1, keepdim=True)
        return torch.zeros_like(dist).scatter_(2, nearest, real.unsqueeze(-1).to(dist.dtype))

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
        if not bool(torch.isfinite(x).all()):
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

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.num_clusters})'
