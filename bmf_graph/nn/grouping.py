"""Dynamic group assignment of agents, Alg. 1 of the paper (DESIGN.md §2)."""
from typing import Any, Dict, Optional

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from bmf_graph.nn.kmeans import KMeans

MODES = ("kmeans", "random")


class DynamicGrouping(torch.nn.Module):
    r"""Reassigns agents to :math:`k` groups per team every :obj:`interval`
    calls (Sec. 4.2, Alg. 1 of the paper).

    On a regrouping call the alive agents of each team :math:`b` are clustered
    by :class:`KMeans` on their latent means :math:`\boldsymbol{\mu}_i`
    (:obj:`mode="kmeans"`), or drawn uniformly from the team's groups
    (:obj:`mode="random"`, the BMF-RC ablation). Group ids are global over the
    batch, :math:`g_i \in \{bk, \dots, bk + k - 1\}`. New k-means clusters are
    matched to the previous centroids of their team by the Hungarian algorithm,

    .. math::
        \pi^{*} = \operatorname*{arg\,min}_{\pi} \sum_{c}
        \| \boldsymbol{\mu}^{\mathrm{new}}_c - \boldsymbol{\mu}^{\mathrm{old}}_{\pi(c)} \|^2,

    over the non-empty clusters of both sides, and cluster :math:`c` takes the
    id :math:`\pi^{*}(c)`; so ids stay stable while the groups drift.

    k-means starts from k-means++ seeds at the first regrouping, after
    :meth:`reset_parameters`, when :math:`N` or the number of teams changed,
    when a group of the last regrouping was empty, or when a team has at most
    :math:`k` alive agents. Otherwise it is warm-started from the centroids of
    the last regrouping (in id order): consecutive groupings differ little, so
    Lloyd's iterations converge in a few steps and the matching is mostly the
    identity (cluster :math:`c` grows from the old centroid :math:`c`).

    Calls in between return the stored groups. Dead agents keep their last
    group id (the first group of their team, :math:`bk`, if they have none);
    callers mask them out. The call after :meth:`reset`, or after the number
    of agents :math:`N` changed, regroups. With :math:`k` at least the number
    of alive agents of a team, each agent gets a group of its own.

    Args:
        num_groups (int): Number of groups :math:`k` per team.
        interval (int): Regroup every :obj:`interval` calls (:math:`I_g`).
        mode (str, optional): :obj:`"kmeans"` or :obj:`"random"`.
            (default: :obj:`"kmeans"`)
        max_iter (int, optional): Maximum Lloyd iterations of the k-means.
            (default: :obj:`50`)

    Shapes:
        - **input:** latent means :math:`(N, D)`, alive mask :math:`(N)`
          (bool, optional), batch vector :math:`(N)` (optional)
        - **output:** group ids :math:`(N)` (long, in :math:`[0, kB)`)
    """
    def __init__(self, num_groups: int, interval: int, mode: str = "kmeans",
                 max_iter: int = 50):
        super().__init__()
        name = self.__class__.__name__
        if not isinstance(num_groups, int) or num_groups < 1:
            raise ValueError(f"{name}: num_groups must be an integer >= 1, got {num_groups!r}")
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"{name}: interval must be an integer >= 1, got {interval!r}")
        if mode not in MODES:
            raise ValueError(f"{name}: mode must be one of {MODES}, got {mode!r}")
        self.num_groups = num_groups
        self.interval = interval
        self.mode = mode
        self.max_iter = max_iter
        self.kmeans = KMeans(num_groups, max_iter=max_iter)
        self._group: Optional[Tensor] = None
        self._centroids: Optional[Tensor] = None
        self._filled: Optional[Tensor] = None
        self._num_agents: Optional[int] = None  # N of the last regrouping
        self._steps = 0
        self.reset_parameters()

    def reset_parameters(self):
        r"""Forgets all state, centroids included (the next k-means is seeded
        by k-means++)."""
        self.reset()
        self._centroids = None
        self._filled = None
        self._num_agents = None

    def reset(self):
        r"""Forgets the groups so that the next call regroups (episode start).
        The last centroids are kept, so the next grouping starts from them, is
        matched to them and ids stay stable across episodes."""
        self._group = None
        self._steps = 0

    @property
    def group(self) -> Optional[Tensor]:
        r"""Current group id of every agent, :math:`(N)`, or :obj:`None`."""
        return self._group

    @property
    def centroids(self) -> Optional[Tensor]:
        r"""Group centroids of the last regrouping, :math:`(kB, D)`: k-means
        centroids, or group means of :math:`\boldsymbol{\mu}` in random mode;
        rows of groups that got no alive agent are zero."""
        return self._centroids

    def forward(self, mu: Tensor, alive: Optional[Tensor] = None,
                batch: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tensor:
        r"""Returns the group of every agent, regrouping if it is time to.

        Args:
            mu (torch.Tensor): Latent means of the agents (not differentiated).
            alive (torch.Tensor, optional): Bool mask of alive agents.
                (default: :obj:`None`, all alive)
            batch (torch.Tensor, optional): Team of each agent.
                (default: :obj:`None`, one team)
            generator (torch.Generator, optional): Random source of the
                k-means++ seeds or random groups. (default: :obj:`None`)
        """
        mu, alive, batch = self._check(mu, alive, batch)
        if self._group is not None and self._group.numel() != mu.size(0):
            self.reset()
        if self._group is None or self._steps >= self.interval:
            self._regroup(mu.detach(), alive, batch, generator)
            self._steps = 0
        self._steps += 1
        return self._group

    def _regroup(self, mu: Tensor, alive: Tensor, batch: Tensor,
                 generator: Optional[torch.Generator]):
        k, (N, D) = self.num_groups, mu.shape
        num_batch = int(batch.max()) + 1 if N > 0 else 1
        everyone = bool(alive.all())
        index = None if everyone else alive.nonzero().view(-1)
        x, x_batch = (mu, batch) if everyone else (mu[index], batch[index])
        if self.mode == "kmeans":
            init = self._warm_start(N, x_batch, num_batch, D)
            labels, centroids = self.kmeans(x, x_batch, generator, num_batch=num_batch,
                                            init=init)
        else:
            labels = x_batch * k + torch.randint(k, x_batch.shape, generator=generator,
                                                 device=mu.device)
            sums = mu.new_zeros(num_batch * k, D).index_add_(0, labels, x)
            size = torch.bincount(labels, minlength=num_batch * k).unsqueeze(-1)
            centroids = sums / size.clamp(min=1).to(mu.dtype)
        filled = torch.bincount(labels, minlength=num_batch * k) > 0

        old = self._centroids
        if self.mode == "kmeans" and old is not None and old.shape == centroids.shape:
            new_id = self._match(centroids, filled, old.to(mu.device),
                                 self._filled.to(mu.device))
            labels = new_id[labels]
            centroids = torch.empty_like(centroids).index_copy_(0, new_id, centroids)
            filled = torch.empty_like(filled).index_copy_(0, new_id, filled)

        if everyone:
            group = labels
        else:
            group = batch * k if self._group is None else self._group.clone()
            group[index] = labels
        self._group, self._centroids, self._filled = group, centroids, filled
        self._num_agents = N

    def _warm_start(self, num_agents: int, x_batch: Tensor, num_batch: int,
                    dim: int) -> Optional[Tensor]:
        # The last centroids as k-means' initial ones, or None for k-means++.
        k, old = self.num_groups, self._centroids
        if old is None or self._num_agents != num_agents \
                or tuple(old.shape) != (num_batch * k, dim) or not bool(self._filled.all()):
            return None
        size = torch.bincount(x_batch, minlength=num_batch)  # alive agents per team
        return old.to(x_batch.device) if int(size.min()) > k else None

    def _match(self, new: Tensor, new_filled: Tensor, old: Tensor,
               old_filled: Tensor) -> Tensor:
        # Hungarian matching per team between its non-empty new and old clusters;
        # unmatched new clusters take the unused ids in increasing order.
        k, D = self.num_groups, new.size(1)
        cost = (new.view(-1, k, 1, D) - old.view(-1, 1, k, D)).pow(2).sum(-1)
        cost = cost.double().cpu().numpy()
        new_filled = new_filled.view(-1, k).cpu().numpy()
        old_filled = old_filled.view(-1, k).cpu().numpy()
        new_id = np.empty(cost.shape[:2], dtype=np.int64)
        for b in range(cost.shape[0]):  # one k x k assignment problem per team
            if new_filled[b].all() and old_filled[b].all():  # the common case: no empty group
                new_id[b] = linear_sum_assignment(cost[b])[1] + b * k
                continue
            rows, cols = np.flatnonzero(new_filled[b]), np.flatnonzero(old_filled[b])
            r, c = linear_sum_assignment(cost[b][np.ix_(rows, cols)])
            target = np.full(k, -1, dtype=np.int64)
            target[rows[r]] = cols[c]
            target[target < 0] = np.setdiff1d(np.arange(k), cols[c])
            new_id[b] = target + b * k
        return torch.from_numpy(new_id).view(-1).to(new.device)

    def _check(self, mu: Tensor, alive: Optional[Tensor], batch: Optional[Tensor]):
        name = self.__class__.__name__
        if not isinstance(mu, Tensor) or mu.dim() != 2:
            shape = tuple(mu.shape) if isinstance(mu, Tensor) else type(mu)
            raise ValueError(f"{name}: mu must have shape [N, D], got {shape}")
        N = mu.size(0)
        if alive is None:
            alive = torch.ones(N, dtype=torch.bool, device=mu.device)
        elif not isinstance(alive, Tensor) or alive.shape != (N,) or alive.dtype != torch.bool:
            desc = (tuple(alive.shape), alive.dtype) if isinstance(alive, Tensor) else type(alive)
            raise ValueError(f"{name}: alive must be a bool tensor of shape [{N}], got {desc}")
        if batch is None:
            batch = torch.zeros(N, dtype=torch.long, device=mu.device)
        elif not isinstance(batch, Tensor) or batch.shape != (N,):
            shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch)
            raise ValueError(f"{name}: batch must have shape [{N}], got {shape}")
        elif batch.is_floating_point() or batch.dtype == torch.bool:
            raise ValueError(f"{name}: batch must be an integer tensor, got {batch.dtype}")
        elif N > 0 and int(batch.min()) < 0:
            raise ValueError(f"{name}: batch entries must be >= 0, got {int(batch.min())}")
        return mu, alive, batch.long()

    def get_extra_state(self) -> Dict[str, Any]:
        return {"group": self._group, "centroids": self._centroids,
                "filled": self._filled, "steps": self._steps,
                "num_agents": self._num_agents}

    def set_extra_state(self, state: Dict[str, Any]):
        self._group, self._centroids = state["group"], state["centroids"]
        self._filled, self._steps = state["filled"], int(state["steps"])
        self._num_agents = state.get("num_agents")  # absent before warm starts: k-means++

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.num_groups}, interval={self.interval}, "
                f"mode={self.mode!r})")
