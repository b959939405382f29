"""Dynamic group assignment of agents, Alg. 1 of the paper (docs/method.md)."""
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from bmf_graph.nn.kmeans import KMeans

MODES = ("kmeans", "random")
Layout = Tuple[int, int]  # (number of agents N, number of teams B)


@dataclass
class _Grouping:
    """What :class:`DynamicGrouping` holds for one layout."""

    group: Optional[Tensor] = None      # [N] ids of the current groups (None: none held)
    centroids: Optional[Tensor] = None  # [kB, D] of the last regrouping
    filled: Optional[Tensor] = None     # [kB] bool, the groups of the last regrouping with agents
    step: int = -1                      # env step of the last regrouping


class DynamicGrouping(torch.nn.Module):
    r"""Assigns the agents of each team to :math:`k` groups, anew at the environment steps
    :math:`t = 1, 1 + I_g, 1 + 2 I_g, \dots` of an episode (Sec. 4.2, Alg. 1 of the paper).

    Step :math:`t = 1` is the first with a previous action, so the latents
    :math:`\boldsymbol{\mu}_i` of :math:`(o_{t-1}, a_{t-1})` carry what the agents did. On a
    regrouping the alive agents of each team :math:`b` are clustered by :class:`KMeans` on
    their latent means (:obj:`mode="kmeans"`), or drawn uniformly from the team's groups
    (:obj:`mode="random"`, the BMF-RC ablation). Group ids are global over the batch,
    :math:`g_i \in \{bk, \dots, bk + k - 1\}`. New k-means clusters are matched to the
    previous centroids of their team by the Hungarian algorithm,

    .. math::
        \pi^{*} = \operatorname*{arg\,min}_{\pi} \sum_{c}
        \| \boldsymbol{\mu}^{\mathrm{new}}_c - \boldsymbol{\mu}^{\mathrm{old}}_{\pi(c)} \|^2,

    over the non-empty clusters of both sides, and cluster :math:`c` takes the id
    :math:`\pi^{*}(c)`; so ids stay stable while the groups drift.

    The schedule follows the step passed in, never the number of calls: a call regroups when
    a scheduled step lies in :math:`(t_{\mathrm{last}}, t]` (:math:`t_{\mathrm{last}}` = step of
    the grouping held), when :math:`t < t_{\mathrm{last}}` (a new episode), or when it holds no
    grouping for the call's layout (:math:`N` agents in :math:`B` teams): at :math:`t = 0`
    after :meth:`reset`, or the first time a layout is seen. Each layout keeps its own groups,
    so calls of several sizes may alternate (acting on one environment, on stacked copies)
    without disturbing each other. Other calls return the groups held.

    k-means starts from k-means++ seeds the first time a layout regroups, after
    :meth:`reset_parameters`, when a group of the layout's last regrouping was empty, or when
    a team has at most :math:`k` alive agents. Otherwise it is warm-started from the layout's
    last centroids (in id order): consecutive groupings differ little, so Lloyd's iterations
    converge in a few steps and the matching is mostly the identity.

    Dead agents keep their last group id (the first group of their team, :math:`bk`, if they
    have none); callers mask them out. With :math:`k` at least the number of alive agents of a
    team, each agent gets a group of its own. The state (groups, centroids, steps per layout)
    is part of :meth:`state_dict`.

    Args:
        num_groups (int): Number of groups :math:`k` per team.
        interval (int): Steps between regroupings (:math:`I_g`).
        mode (str, optional): :obj:`"kmeans"` or :obj:`"random"`.
            (default: :obj:`"kmeans"`)
        max_iter (int, optional): Maximum Lloyd iterations of the k-means.
            (default: :obj:`50`)

    Shapes:
        - **input:** latent means :math:`(N, D)`, step :math:`t` (int), alive mask
          :math:`(N)` (bool, optional), batch vector :math:`(N)` (optional)
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
        self._layouts: Dict[Layout, _Grouping] = {}
        self._last: Optional[Layout] = None
        self.reset_parameters()

    def reset_parameters(self):
        r"""Forgets all state, centroids included (the next k-means is seeded
        by k-means++)."""
        self._layouts = {}
        self._last = None

    def reset(self):
        r"""Forgets the groups so that the next call regroups (episode start).
        The last centroids are kept, so the next grouping starts from them, is
        matched to them and ids stay stable across episodes."""
        for state in self._layouts.values():
            state.group, state.step = None, -1

    def last_scheduled(self, step: int) -> int:
        r"""The latest scheduled step :math:`1 + j I_g \le t` (``0`` for :math:`t = 0`)."""
        return 0 if step < 1 else 1 + (step - 1) // self.interval * self.interval

    @property
    def group(self) -> Optional[Tensor]:
        r"""Group id of every agent of the last call's layout, :math:`(N)`, or :obj:`None`."""
        return None if self._last is None else self._layouts[self._last].group

    @property
    def centroids(self) -> Optional[Tensor]:
        r"""Group centroids of the last call's layout at its last regrouping, :math:`(kB, D)`:
        k-means centroids, or group means of :math:`\boldsymbol{\mu}` in random mode; rows of
        groups that got no alive agent are zero."""
        return None if self._last is None else self._layouts[self._last].centroids

    def forward(self, mu: Tensor, step: int, alive: Optional[Tensor] = None,
                batch: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> Tensor:
        r"""Returns the group of every agent, regrouping if the schedule says so.

        Args:
            mu (torch.Tensor): Latent means of the agents (not differentiated).
            step (int): Environment step :math:`t` of the episode (``0`` at reset).
            alive (torch.Tensor, optional): Bool mask of alive agents.
                (default: :obj:`None`, all alive)
            batch (torch.Tensor, optional): Team of each agent.
                (default: :obj:`None`, one team)
            generator (torch.Generator, optional): Random source of the
                k-means++ seeds or random groups. (default: :obj:`None`)
        """
        mu, alive, batch = self._check(mu, alive, batch)
        if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
            raise ValueError(f"{self.__class__.__name__}: step must be an integer >= 0, got {step!r}")
        num_batch = int(batch.max()) + 1 if mu.size(0) > 0 else 1
        layout = (mu.size(0), num_batch)
        state = self._layouts.setdefault(layout, _Grouping())
        if state.group is None or step < state.step or self.last_scheduled(step) > state.step:
            self._regroup(state, mu.detach(), alive, batch, num_batch, generator)
            state.step = int(step)
        self._last = layout
        return state.group

    def _regroup(self, state: _Grouping, mu: Tensor, alive: Tensor, batch: Tensor,
                 num_batch: int, generator: Optional[torch.Generator]):
        k, (N, D) = self.num_groups, mu.shape
        everyone = bool(alive.all())
        index = None if everyone else alive.nonzero().view(-1)
        x, x_batch = (mu, batch) if everyone else (mu[index], batch[index])
        if self.mode == "kmeans":
            init = self._warm_start(state, x_batch, num_batch, D)
            labels, centroids = self.kmeans(x, x_batch, generator, num_batch=num_batch,
                                            init=init)
        else:
            labels = x_batch * k + torch.randint(k, x_batch.shape, generator=generator,
                                                 device=mu.device)
            sums = mu.new_zeros(num_batch * k, D).index_add_(0, labels, x)
            size = torch.bincount(labels, minlength=num_batch * k).unsqueeze(-1)
            centroids = sums / size.clamp(min=1).to(mu.dtype)
        filled = torch.bincount(labels, minlength=num_batch * k) > 0

        old = state.centroids
        if self.mode == "kmeans" and old is not None and old.shape == centroids.shape:
            new_id = self._match(centroids, filled, old.to(mu.device),
                                 state.filled.to(mu.device))
            labels = new_id[labels]
            centroids = torch.empty_like(centroids).index_copy_(0, new_id, centroids)
            filled = torch.empty_like(filled).index_copy_(0, new_id, filled)

        if everyone:
            group = labels
        else:
            group = batch * k if state.group is None else state.group.clone()
            group[index] = labels
        state.group, state.centroids, state.filled = group, centroids, filled

    def _warm_start(self, state: _Grouping, x_batch: Tensor, num_batch: int,
                    dim: int) -> Optional[Tensor]:
        # The layout's last centroids as k-means' initial ones, or None for k-means++.
        k, old = self.num_groups, state.centroids
        if old is None or tuple(old.shape) != (num_batch * k, dim) or not bool(state.filled.all()):
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
        layouts = {f"{n},{b}": dict(vars(state)) for (n, b), state in self._layouts.items()}
        return {"layouts": layouts, "last": self._last}

    def set_extra_state(self, state: Dict[str, Any]):
        if "layouts" not in state:
            raise ValueError(f"{self.__class__.__name__}: the saved state has keys "
                             f"{sorted(state)}; expected 'layouts' (written by an older version)")
        self._layouts = {tuple(int(v) for v in key.split(",")): _Grouping(**value)
                         for key, value in state["layouts"].items()}
        self._last = None if state["last"] is None else tuple(state["last"])

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.num_groups}, interval={self.interval}, "
                f"mode={self.mode!r})")
