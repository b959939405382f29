"""Agent representation model of the group assignment, Eq. 7 of the paper (docs/method.md)."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

MODES = ("vae", "ae")


def _mlp(in_channels: int, hidden_channels: int, out_channels: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(in_channels, hidden_channels), torch.nn.ReLU(),
        torch.nn.Linear(hidden_channels, hidden_channels), torch.nn.ReLU(),
        torch.nn.Linear(hidden_channels, out_channels))


def _first_layer(mlp: torch.nn.Sequential, a: Tensor, b: Tensor) -> Tensor:
    # An MLP's first linear layer on [a, b] without building the concatenation:
    # W [a; b] + c = W_a a + W_b b + c (no copy of every observation per call).
    first, split = mlp[0], a.size(-1)
    return F.linear(a, first.weight[:, :split], first.bias) + F.linear(b, first.weight[:, split:])


class AgentVAE(torch.nn.Module):
    r"""Variational autoencoder of an agent's observation and action, trained
    as a forward model (Sec. 4.2, Eq. 7 of the paper).

    The encoder :math:`q(\mathbf{z} \mid \mathbf{o}_i, \mathbf{a}_i) =
    \mathcal{N}(\boldsymbol{\mu}_i, \operatorname{diag}
    e^{\boldsymbol{\ell}_i})` gives the latent whose mean
    :math:`\boldsymbol{\mu}_i` :class:`DynamicGrouping` clusters; the decoder
    :math:`d(\mathbf{z})` reconstructs :math:`(\mathbf{o}_i, \mathbf{a}_i)`
    and the predictor :math:`p(\mathbf{z}, \mathbf{o}_i)` regresses the target
    :math:`y_i = r_i + \gamma \bar{V}(\mathbf{o}'_i)`. Per agent

    .. math::
        \mathcal{L}_i = \lambda_{\mathrm{rec}}
        \| d(\mathbf{z}_i) - (\mathbf{o}_i, \mathbf{a}_i) \|^2
        + \lambda_{\mathrm{pred}} (p(\mathbf{z}_i, \mathbf{o}_i) - y_i)^2
        + \beta \cdot \tfrac{1}{2} \sum_{d} \left( \mu_{i,d}^2 + e^{\ell_{i,d}}
        - \ell_{i,d} - 1 \right),

    the reconstruction error summed over the features of :math:`(\mathbf{o}_i,
    \mathbf{a}_i)` (the squared norm of Eq. 7, the Gaussian log-likelihood up to
    constants) and the last term :math:`\mathrm{KL}(q \,\|\, \mathcal{N}(0, I))`
    summed over latent dimensions; :meth:`loss` averages each term over agents.
    The predictor also reads :math:`\mathbf{o}_i`, so what it needs from
    :math:`\mathbf{z}_i` is mostly the action; reconstruction is what makes the
    latent describe the agent's situation (docs/method.md gives the measured size of
    each term and of the encoder gradient it sends).
    :math:`\mathbf{z}_i = \boldsymbol{\mu}_i + e^{\boldsymbol{\ell}_i / 2}
    \odot \boldsymbol{\epsilon}` in training mode and
    :math:`\boldsymbol{\mu}_i` in eval mode.

    :obj:`mode="ae"` is the deterministic autoencoder of the BMF-AE ablation:
    the encoder gives :math:`\boldsymbol{\mu}_i` only (:obj:`logvar` is
    :obj:`None`), :math:`\mathbf{z}_i = \boldsymbol{\mu}_i` always, and the KL
    term is zero.

    Args:
        obs_dim (int): Observation size.
        action_dim (int): Action size (one-hot for discrete actions).
        latent_dim (int, optional): Latent size. (default: :obj:`32`)
        hidden_channels (int, optional): Width of the two hidden layers of the
            encoder, decoder and predictor MLPs. (default: :obj:`64`)
        mode (str, optional): :obj:`"vae"` or :obj:`"ae"`. (default: :obj:`"vae"`)
        lambda_rec (float, optional): Reconstruction weight. (default: :obj:`1.0`)
        lambda_pred (float, optional): Prediction weight. (default: :obj:`0.1`)
        beta (float, optional): KL weight. (default: :obj:`1e-3`)

    Shapes:
        - **input:** observations :math:`(*, O)`, actions :math:`(*, A)`,
          targets :math:`(*)`, mask :math:`(*)` (bool, optional)
        - **output:** :obj:`mu`, :obj:`logvar`, :obj:`z` :math:`(*, L)`,
          :obj:`recon` :math:`(*, O + A)`, :obj:`pred` :math:`(*)`
    """
    def __init__(self, obs_dim: int, action_dim: int, latent_dim: int = 32,
                 hidden_channels: int = 64, mode: str = "vae", lambda_rec: float = 1.0,
                 lambda_pred: float = 0.1, beta: float = 1e-3):
        super().__init__()
        name = self.__class__.__name__
        for arg, value in (("obs_dim", obs_dim), ("action_dim", action_dim),
                           ("latent_dim", latent_dim), ("hidden_channels", hidden_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {arg} must be an integer >= 1, got {value!r}")
        if mode not in MODES:
            raise ValueError(f"{name}: mode must be one of {MODES}, got {mode!r}")
        for arg, value in (("lambda_rec", lambda_rec), ("lambda_pred", lambda_pred),
                           ("beta", beta)):
            if not value >= 0:
                raise ValueError(f"{name}: {arg} must be >= 0, got {value!r}")
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.latent_dim = latent_dim
        self.hidden_channels = hidden_channels
        self.mode = mode
        self.lambda_rec = lambda_rec
        self.lambda_pred = lambda_pred
        self.beta = beta

        heads = 2 if mode == "vae" else 1
        self.encoder = _mlp(obs_dim + action_dim, hidden_channels, heads * latent_dim)
        self.decoder = _mlp(latent_dim, hidden_channels, obs_dim + action_dim)
        self.predictor = _mlp(latent_dim + obs_dim, hidden_channels, 1)
        self.reset_parameters()

    def reset_parameters(self):
        for module in self.modules():
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()

    def encode(self, obs: Tensor, action: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        r"""Returns the latent mean and log-variance (:obj:`None` in AE mode)."""
        return self._encode(*self._check(obs, action))

    def forward(self, obs: Tensor, action: Tensor) -> Dict[str, Optional[Tensor]]:
        r"""Returns a dict with :obj:`mu`, :obj:`logvar`, :obj:`z`, :obj:`recon`
        and :obj:`pred`."""
        return self._forward(*self._check(obs, action))

    def loss(self, obs: Tensor, action: Tensor, target: Tensor,
             mask: Optional[Tensor] = None) -> Tuple[Tensor, Dict[str, Tensor]]:
        r"""Returns the weighted total loss and its unweighted terms
        :obj:`{"rec", "pred", "kl"}`, each averaged over the agents (those where
        :obj:`mask` is :obj:`True`; zero if there are none). :obj:`target` is
        treated as a constant."""
        name = self.__class__.__name__
        obs, action = self._check(obs, action)
        shape = list(obs.shape[:-1])
        if not isinstance(target, Tensor) or list(target.shape) != shape:
            got = tuple(target.shape) if isinstance(target, Tensor) else type(target)
            raise ValueError(f"{name}: target must have shape {shape} (obs without its "
                             f"feature dimension), got {got}")
        if mask is not None and (not isinstance(mask, Tensor) or mask.dtype != torch.bool
                                 or list(mask.shape) != shape):
            got = (tuple(mask.shape), mask.dtype) if isinstance(mask, Tensor) else type(mask)
            raise ValueError(f"{name}: mask must be a bool tensor of shape {shape}, got {got}")

        out = self._forward(obs, action)
        mu, logvar = out["mu"], out["logvar"]
        # Squared error against [obs, action], one part at a time (no concatenated copy).
        recon_obs, recon_action = out["recon"].split([obs.size(-1), action.size(-1)], dim=-1)
        rec = (F.mse_loss(recon_obs, obs, reduction="none").sum(-1)
               + F.mse_loss(recon_action, action, reduction="none").sum(-1))
        pred = (out["pred"] - target.detach().to(obs.dtype)).pow(2)
        if logvar is None:
            kl = torch.zeros_like(pred)
        else:
            kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(-1)

        weight = torch.ones_like(pred) if mask is None else mask.to(pred.dtype)
        count = weight.sum().clamp(min=1)
        terms = {key: (value * weight).sum() / count
                 for key, value in (("rec", rec), ("pred", pred), ("kl", kl))}
        total = (self.lambda_rec * terms["rec"] + self.lambda_pred * terms["pred"]
                 + self.beta * terms["kl"])
        return total, terms

    def _encode(self, obs: Tensor, action: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        out = self.encoder[1:](_first_layer(self.encoder, obs, action))
        if self.mode == "ae":
            return out, None
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar

    def _forward(self, obs: Tensor, action: Tensor) -> Dict[str, Optional[Tensor]]:
        mu, logvar = self._encode(obs, action)
        z = mu
        if self.training and logvar is not None:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = self.decoder(z)
        pred = self.predictor[1:](_first_layer(self.predictor, z, obs)).squeeze(-1)
        return {"mu": mu, "logvar": logvar, "z": z, "recon": recon, "pred": pred}

    def _check(self, obs: Tensor, action: Tensor) -> Tuple[Tensor, Tensor]:
        name = self.__class__.__name__
        if not isinstance(obs, Tensor) or obs.dim() < 1 or obs.size(-1) != self.obs_dim:
            shape = tuple(obs.shape) if isinstance(obs, Tensor) else type(obs)
            raise ValueError(f"{name}: obs must have shape [*, {self.obs_dim}], got {shape}")
        if (not isinstance(action, Tensor) or action.dim() != obs.dim()
                or action.shape[:-1] != obs.shape[:-1] or action.size(-1) != self.action_dim):
            shape = tuple(action.shape) if isinstance(action, Tensor) else type(action)
            raise ValueError(f"{name}: action must have shape "
                             f"{list(obs.shape[:-1]) + [self.action_dim]}, got {shape}")
        if not obs.is_floating_point():
            obs = obs.to(torch.get_default_dtype())
        return obs, action.to(obs.dtype)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.obs_dim}, {self.action_dim}, "
                f"latent_dim={self.latent_dim}, mode={self.mode!r})")
