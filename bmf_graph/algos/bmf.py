r"""Bi-level mean field interaction (BMF-Q, BMF-AC; paper Sec. 4, docs/method.md).

For agent :math:`i` in group :math:`m` (groups from k-means on VAE latents, Alg. 1):

.. math::
    \tilde a_i = \frac{1}{|\mathcal N_m(i)|} \sum_{j \in \mathcal N_m(i)} a^{t-1}_j,\qquad
    \tilde a_m = \sum_{n \ne m} w_{mn}\, \bar a_n

with :math:`\bar a_n, h_n` the mean previous action and mean latent of group :math:`n` and
:math:`w_{mn}` from :class:`~bmf_graph.nn.InterGroupAttention` (``algo.scoring``: ``gatv2``,
``gat`` or ``cosine``). The critic input is :math:`[\tilde a_i \,\|\, \tilde a_{m(i)}]` (Eq. 6).
Records keep the intra-group mean, the group ids and the pooled group inputs (never the
inter-group mean itself): the attention is recomputed at update time so it learns through the
critic loss, and target values use its target copy. Groups are formed at the env steps of
:class:`~bmf_graph.nn.DynamicGrouping`'s schedule (``algo.group_interval``), from the latents of
:math:`(o_{t-1}, a_{t-1})`. The agent VAE trains alongside on
:math:`y_i = r_i + \gamma (1 - d_i) \bar V(o'_i)` with its own optimizer.
"""
from __future__ import annotations

import torch
from torch import Tensor

from bmf_graph.algos.base import Interaction, TeamView
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec
from bmf_graph.nn import AgentVAE, DynamicGrouping, InterGroupAttention, IntraGroupMeanField
from bmf_graph.nn.inter_group import pool_groups


class BiLevelInteraction(Interaction):
    """Intra-group mean field plus pooled inter-group attention over dynamic groups."""

    agent_fields = ("mf", "group")

    @property
    def parts(self) -> tuple[int, ...]:
        """``a_intra`` and ``a_inter``, ``A`` each."""
        return (self.dim // 2, self.dim // 2)

    def __init__(self, spec: TeamSpec, cfg: AlgoConfig, radius: float):
        super().__init__(spec, cfg, radius)
        a = spec.num_actions
        self.dim = 2 * a
        self.num_groups = cfg.num_groups
        self.vae = AgentVAE(spec.obs_dim, a, latent_dim=cfg.latent_dim, hidden_channels=cfg.hidden,
                            mode="ae" if cfg.grouping == "ae" else "vae", lambda_rec=cfg.lambda_rec,
                            lambda_pred=cfg.lambda_pred, beta=cfg.beta)
        self.grouping = DynamicGrouping(cfg.num_groups, cfg.group_interval,
                                        mode="random" if cfg.grouping == "random" else "kmeans")
        self.intra = IntraGroupMeanField()
        self.attention = InterGroupAttention(cfg.latent_dim, cfg.hidden, heads=cfg.heads, scoring=cfg.scoring)
        self.add_target("attention")
        self.vae_optimizer = torch.optim.Adam(self.vae.parameters(), lr=cfg.vae_lr, fused=True)
        self.vae_every = cfg.vae_every
        self.aux_calls = 0  # critic updates seen by aux_loss (the VAE steps on every vae_every-th)

    def schema(self, num_agents: int) -> dict:
        k, a, d = self.num_groups, self.num_actions, self.vae.latent_dim
        return {"mf": ((num_agents, a), torch.float32), "group": ((num_agents,), torch.long),
                "a_grp": ((k, a), torch.float32), "h_grp": ((k, d), torch.float32), "count": ((k,), torch.long)}

    def begin_episode(self) -> None:
        self.grouping.reset()

    def observe(self, view: TeamView) -> dict[str, Tensor]:
        # Representations of (o_{t-1}, a_{t-1}) drive the grouping (Alg. 1).
        mu, _ = self.vae.encode(view.prev_obs, view.a_prev)
        group = self.grouping(mu, step=view.step, alive=view.alive, batch=view.batch)  # ids b*k.. in copy b
        intra = self.neighbour_mean(self.intra, view, group)
        alive = view.alive
        h_grp, a_grp, count, _ = pool_groups(mu[alive], view.a_prev[alive], group[alive],
                                             self.num_groups * view.num_envs)
        inter_grp, _ = self.attention.attend(h_grp, a_grp, count, self.group_batch(view.num_envs, mu.device))
        mean_action = torch.cat([intra, inter_grp[group]], dim=-1)
        # Records keep each copy's own ids 0..k-1 (a copy's record does not depend on the stacking).
        return {"mf": intra, "group": group % self.num_groups, "a_grp": a_grp, "h_grp": h_grp, "count": count,
                "mean_action": mean_action}

    def group_batch(self, entries: int, device: torch.device) -> Tensor | None:
        """Entry of each group when ``entries`` copies or records are stacked: groups
        ``b*k .. b*k+k-1`` belong to entry ``b`` (DynamicGrouping's ids); ``None`` for one."""
        if entries == 1:
            return None
        return torch.arange(entries, device=device).repeat_interleave(self.num_groups)

    def mean_action(self, rec: dict[str, Tensor], target: bool = False) -> Tensor:
        b, n = rec["group"].shape
        k = self.num_groups
        attention = self.part("attention", target)
        out, _ = attention.attend(rec["h_grp"].reshape(b * k, -1), rec["a_grp"].reshape(b * k, -1),
                                  rec["count"].reshape(b * k), self.group_batch(b, rec["group"].device))
        inter = out.reshape(b, k, -1).gather(1, rec["group"].unsqueeze(-1).expand(b, n, out.shape[-1]))
        return torch.cat([rec["mf"], inter], dim=-1)

    def aux_loss(self, rec: dict[str, Tensor], target: Tensor) -> tuple[Tensor, dict[str, float]] | None:
        self.aux_calls += 1
        if (self.aux_calls - 1) % self.vae_every:
            return None
        alive = rec["alive"].reshape(-1)  # the loss averages over alive agents: only their rows are computed
        action = rec["action"]
        action = self.action_vectors((action.reshape(-1, action.shape[-1]) if self.continuous else action.reshape(-1))[alive])
        obs = rec["obs"].reshape(-1, rec["obs"].shape[-1])[alive]
        loss, parts = self.vae.loss(obs, action, target.reshape(-1)[alive].detach())
        return loss, {k: float(v.detach()) for k, v in parts.items()}

    def step_aux(self, loss: Tensor) -> None:
        self.vae_optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.vae.parameters(), 10.0)
        self.vae_optimizer.step()

    def stats(self, rec: dict[str, Tensor]) -> dict[str, Tensor]:
        """Non-empty groups per env copy (a tensor: read once the episode is over)."""
        count = rec["count"]
        return {"charts/groups": (count > 0).sum() * self.num_groups / count.numel()}

    def training_state(self) -> dict:
        return {"vae_optimizer": self.vae_optimizer.state_dict(), "aux_calls": self.aux_calls}

    def load_training_state(self, state: dict) -> None:
        self.vae_optimizer.load_state_dict(state["vae_optimizer"])
        self.aux_calls = state.get("aux_calls", 0)
