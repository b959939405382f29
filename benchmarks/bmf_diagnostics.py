"""What a trained BMF-Q model's bi-level parts do, measured on episodes it plays: non-empty
groups per step, gradient norms of the critic loss in the inter-group attention and the Q
network, the agent VAE's loss terms and the encoder gradient each term sends, and the
attention rows of one step. Prints JSON.

    python benchmarks/bmf_diagnostics.py runs/battle__bmf_q__0__TIME --episodes 2 --step 50

The model plays team 0 (its opponents, if any, are the model again), exploring as at the end of
training, and records into a fresh replay buffer; nothing is updated.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import emit  # noqa: E402

from bmf_graph.training.players import setup_play  # noqa: E402
from bmf_graph.training.rollout import play_episode  # noqa: E402


def grad_norms(loss: torch.Tensor, named: dict) -> dict:
    grads = torch.autograd.grad(loss, list(named.values()), retain_graph=True, allow_unused=True)
    return {k: 0.0 if g is None else float(g.norm()) for k, g in zip(named, grads)}


@torch.no_grad()
def dense_weight(attention, rec: dict) -> torch.Tensor:
    _, weight = attention.attend(rec["h_grp"], rec["a_grp"], rec["count"], return_weight=True)
    return weight.to_dense() if weight.is_sparse else weight


def rank_agreement(weight: torch.Tensor, nonempty: torch.Tensor) -> tuple[int, int]:
    """(row pairs ranking their shared columns in the same order, row pairs compared)."""
    groups = nonempty.nonzero().view(-1).tolist()
    same = pairs = 0
    for i, m in enumerate(groups):
        for m2 in groups[i + 1:]:
            common = [n for n in groups if n not in (m, m2)]
            if len(common) < 2:
                continue
            pairs += 1
            same += int(torch.equal(weight[m, common].argsort(), weight[m2, common].argsort()))
    return same, pairs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder of a bmf_q training run")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20, help="replay batches for the gradient norms")
    parser.add_argument("--step", type=int, default=3, help="env step whose attention rows are printed "
                        "(row pairs are compared at every step)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    checkpoint = Path(args.run)  # its final model
    env, env_name, _, policies = setup_play(checkpoint, None, None, 0, None, "cpu")
    model = policies[0]
    model.cfg.learning_starts = 10 ** 9  # record, never update
    groups, rows, ranking = [], {}, [0, 0]

    def look(t, views, recs, actions):
        weight = dense_weight(model.interaction.attention, recs[0])
        same, pairs = rank_agreement(weight, recs[0]["count"] > 0)
        ranking[0] += same
        ranking[1] += pairs
        if t == args.step and not rows:
            weight = dense_weight(model.interaction.attention, recs[0])
            nonempty = recs[0]["count"] > 0
            same, pairs = rank_agreement(weight, nonempty)
            rows.update(step=t, rows={int(m): [round(float(w), 4) for w in weight[m]] for m in nonempty.nonzero().view(-1)},
                        row_pairs_same_order=same, row_pairs=pairs)

    lengths = []
    for e in range(args.episodes):
        result = play_episode(env, policies, "cpu", seed=args.seed + e, explore=1.0, learners={0: model},
                              on_step=look)
        groups.append(float(np.mean(result.logs["charts/groups"])))
        lengths.append(result.steps)
    env.close()

    attention = dict(model.interaction.attention.named_parameters())
    head = dict(model.q.head.named_parameters())
    encoder = dict(model.interaction.vae.encoder.named_parameters())
    vae = model.interaction.vae
    totals: dict = {}
    for _ in range(args.batches):
        rec, nxt = model.buffer.sample(model.cfg.batch_steps)
        y = rec["reward"] + model.cfg.gamma * nxt["alive"].float() * model.target_value(nxt, 0.1)
        q = model.q(rec["obs"], model.interaction.mean_action(rec)).gather(-1, rec["action"].unsqueeze(-1)).squeeze(-1)
        loss = ((q - y)[rec["alive"]] ** 2).mean()
        norms = {f"attention.{k}": v for k, v in grad_norms(loss, attention).items()}
        norms.update({f"q.head.{k}": v for k, v in grad_norms(loss, head).items()})
        vae.train()
        action = torch.nn.functional.one_hot(rec["action"], model.spec.num_actions).float()
        _, terms = vae.loss(rec["obs"], action, y.detach(), mask=rec["alive"])
        weighted = {"rec": vae.lambda_rec * terms["rec"], "pred": vae.lambda_pred * terms["pred"],
                    "kl": vae.beta * terms["kl"]}
        for name, term in weighted.items():
            norms[f"vae_{name}"] = float(terms[name])
            norms[f"vae_{name}_weighted"] = float(term)
            if term.requires_grad:
                norms[f"encoder_grad_from_{name}"] = float(torch.stack(
                    [g.norm() for g in torch.autograd.grad(term, list(encoder.values()), retain_graph=True)]).norm())
        for k, v in norms.items():
            totals.setdefault(k, []).append(v)
    report = {"run": str(args.run), "env": env_name, "episodes": args.episodes, "episode_steps": lengths,
              "groups_per_step": groups, "num_groups": model.cfg.num_groups,
              "scoring": getattr(model.cfg, "scoring", "gat (v1)"), "latent_dim": model.cfg.latent_dim,
              "mean_over_batches": {k: float(np.mean(v)) for k, v in totals.items()}, "attention": rows,
              "row_pairs_same_order_all_steps": ranking[0], "row_pairs_all_steps": ranking[1]}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
