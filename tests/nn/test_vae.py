import pytest
import torch

from bmf_graph.nn.vae import AgentVAE


def inputs(num_agents=6, obs_dim=10, action_dim=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(num_agents, obs_dim, generator=gen)
    action = torch.nn.functional.one_hot(
        torch.randint(action_dim, (num_agents, ), generator=gen), action_dim).float()
    return obs, action, torch.randn(num_agents, generator=gen)


def set_encoder_output(vae, value):
    # The last encoder layer outputs `value` for every input.
    last = vae.encoder[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(value)


def test_agent_vae_forward():
    obs, action, _ = inputs()
    vae = AgentVAE(10, 2, latent_dim=8)
    assert str(vae) == "AgentVAE(10, 2, latent_dim=8, mode='vae')"
    assert AgentVAE(10, 2).latent_dim == 32
    out = vae(obs, action)
    assert out['mu'].shape == out['logvar'].shape == out['z'].shape == (6, 8)
    assert out['recon'].shape == (6, 12) and out['pred'].shape == (6, )
    mu, logvar = vae.encode(obs, action)
    assert torch.equal(mu, out['mu']) and torch.equal(logvar, out['logvar'])
    assert not torch.equal(out['z'], out['mu'])  # reparameterised while training
    vae.eval()
    assert torch.equal(vae(obs, action)['z'], mu)
    # First layers applied to [obs, action] and [z, obs] part by part: same as concatenated.
    with torch.no_grad():
        assert torch.allclose(vae.encoder(torch.cat([obs, action], 1))[:, :8], mu, atol=1e-6)
        assert torch.allclose(vae.predictor(torch.cat([mu, obs], 1)).squeeze(-1),
                              vae(obs, action)['pred'], atol=1e-6)

    # Leading dimensions (time, agents) pass through.
    out = vae(obs.view(2, 3, 10), action.view(2, 3, 2))
    assert out['mu'].shape == (2, 3, 8) and out['pred'].shape == (2, 3)
    assert torch.allclose(out['mu'].reshape(6, 8), mu, atol=1e-6)


def test_agent_vae_loss_terms_closed_form():
    obs, action, target = inputs()
    vae = AgentVAE(10, 2, latent_dim=3, lambda_rec=0.5, lambda_pred=2.0, beta=0.1).eval()
    mu, logvar = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([0.0, 0.2, -0.4])
    set_encoder_output(vae, torch.cat([mu, logvar]))
    total, terms = vae.loss(obs, action, target)
    # KL(N(mu, e^logvar) || N(0, 1)) summed over latent dims, same for every agent.
    kl = 0.5 * sum(m**2 + torch.exp(v) - v - 1 for m, v in zip(mu, logvar))
    assert torch.allclose(terms['kl'], kl)
    out = vae(obs, action)
    rec = ((out['recon'] - torch.cat([obs, action], 1))**2).sum(1).mean()  # squared norm, per agent
    pred = ((out['pred'] - target)**2).mean()
    assert torch.allclose(terms['rec'], rec) and torch.allclose(terms['pred'], pred)
    assert torch.allclose(total, 0.5 * rec + 2.0 * pred + 0.1 * kl)

    set_encoder_output(vae, torch.zeros(6))  # q = N(0, I): no KL
    assert vae.loss(obs, action, target)[1]['kl'] == 0


def test_agent_vae_loss_mask():
    obs, action, target = inputs(num_agents=8)
    vae = AgentVAE(10, 2).eval()
    mask = torch.tensor([True, False, True, True, False, False, True, False])
    total, terms = vae.loss(obs, action, target, mask)
    sub_total, sub_terms = vae.loss(obs[mask], action[mask], target[mask])
    assert torch.allclose(total, sub_total)
    for key in ('rec', 'pred', 'kl'):
        assert torch.allclose(terms[key], sub_terms[key])

    total, terms = vae.loss(obs, action, target, torch.zeros(8, dtype=torch.bool))
    assert total == 0 and all(value == 0 for value in terms.values())
    total, _ = vae.loss(obs[:0], action[:0], target[:0])
    assert total == 0


def test_agent_vae_ae_mode():
    obs, action, target = inputs()
    vae = AgentVAE(10, 2, latent_dim=4, mode='ae', lambda_pred=1.0)
    assert str(vae) == "AgentVAE(10, 2, latent_dim=4, mode='ae')"
    out = vae(obs, action)
    assert out['logvar'] is None
    assert torch.equal(out['z'], out['mu'])  # deterministic also while training
    assert torch.equal(vae(obs, action)['z'], out['z'])
    total, terms = vae.loss(obs, action, target)
    assert terms['kl'] == 0
    assert torch.allclose(total, terms['rec'] + terms['pred'])


def test_agent_vae_gradients_and_detached_target():
    obs, action, target = inputs()
    target.requires_grad_()
    vae = AgentVAE(10, 2)
    total, _ = vae.loss(obs, action, target)
    total.backward()
    assert target.grad is None
    for part in (vae.encoder, vae.decoder, vae.predictor):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


@pytest.mark.parametrize('mode', ['vae', 'ae'])
def test_agent_vae_learns(mode):
    torch.manual_seed(0)
    obs, action, _ = inputs(num_agents=64, obs_dim=4, action_dim=2)
    target = obs[:, 0] - 2 * action[:, 1]
    vae = AgentVAE(4, 2, latent_dim=4, hidden_channels=32, mode=mode, lambda_pred=1.0)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    first = float(vae.loss(obs, action, target)[0])
    for _ in range(300):
        optimizer.zero_grad()
        loss, _ = vae.loss(obs, action, target)
        loss.backward()
        optimizer.step()
    vae.eval()
    last, terms = vae.loss(obs, action, target)
    assert float(last) < 0.2 * first
    assert float(terms['pred']) < 0.1


def test_agent_vae_reset_parameters():
    obs, action, _ = inputs()
    vae = AgentVAE(10, 2).eval()
    torch.manual_seed(1)
    vae.reset_parameters()
    before = vae(obs, action)['pred']
    vae.reset_parameters()
    assert not torch.equal(vae(obs, action)['pred'], before)
    torch.manual_seed(1)
    vae.reset_parameters()
    assert torch.equal(vae(obs, action)['pred'], before)


def test_agent_vae_errors():
    obs, action, target = inputs()
    with pytest.raises(ValueError, match=r"AgentVAE: mode must be one of .* got 'gan'"):
        AgentVAE(10, 2, mode='gan')
    with pytest.raises(ValueError, match=r"AgentVAE: latent_dim must be an integer >= 1, got 0"):
        AgentVAE(10, 2, latent_dim=0)
    with pytest.raises(ValueError, match=r"AgentVAE: beta must be >= 0, got -1"):
        AgentVAE(10, 2, beta=-1)
    vae = AgentVAE(10, 2)
    with pytest.raises(ValueError, match=r"AgentVAE: obs must have shape \[\*, 10\], got \(6, 9\)"):
        vae(obs[:, :9], action)
    with pytest.raises(ValueError, match=r"AgentVAE: action must have shape \[6, 2\], got"):
        vae(obs, action[:5])
    with pytest.raises(ValueError, match=r"AgentVAE: target must have shape \[6\].*got \(6, 1\)"):
        vae.loss(obs, action, target.unsqueeze(1))
    with pytest.raises(ValueError, match=r"AgentVAE: mask must be a bool tensor of shape \[6\]"):
        vae.loss(obs, action, target, torch.ones(6))
