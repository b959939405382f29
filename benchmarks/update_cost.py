"""Where one replayed update's time goes, per algorithm, on Battle 64 v 64 records.

    python benchmarks/update_cost.py [--algos bmf_q mfq gat_mf q] [--updates 40] [--out FILE.json] [KEY=VALUE ...]

A :class:`Trainer` with the shipped Battle settings (plus any ``KEY=VALUE`` overrides, e.g.
``algo.vae_every=1``) fills its replay with one round of 40-step episodes, then the phases of
:meth:`QLearner.update` are run one by one ``--updates`` times on one torch thread and timed in
process CPU seconds (steadier than wall time on a shared machine): sampling ``batch_steps``
records and their successors (``algo.sampling``: ``batch_size`` agent transitions, or
``batch_steps`` whole team records), the target pass (online and target
networks on ``o'``), the online pass (critic input and Q on ``o``), the critic's backward and
Adam step, the agent VAE's forward, backward and step (on the updates it trains on), and the
soft target updates. Milliseconds per update; prints JSON.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from bmf_graph.algos.base import soft_update
from bmf_graph.config import load_config
from bmf_graph.training.trainer import Trainer

from report import emit

Q_FAMILY = ("q", "mfq", "gat_mf", "bmf_q", "ac", "mfac", "bmf_ac")


def breakdown(algo: str, updates: int, overrides: list[str], tmp: Path) -> dict:
    cfg = load_config(["conf=battle", f"algo={algo}", f"runs_dir={tmp}", f"run_name={algo}", "train.progress=false",
                       "train.max_steps=40", "train.episodes=8", "train.envs=8", "algo.learning_starts=1000000",
                       "device=cpu", "threads=1", *overrides])
    trainer = Trainer(cfg)
    try:
        trainer.run_round(0.5)
        learner = trainer.learners[0]
        interaction = learner.interaction
        spent: dict[str, float] = defaultdict(float)
        for i in range(updates + 5):  # the first five are not counted
            clock = {"t": time.process_time()}

            def lap(name: str) -> None:
                now = time.process_time()
                if i >= 5:
                    spent[name] += now - clock["t"]
                clock["t"] = now

            rec, nxt = learner.sample()
            lap("sample")
            value = learner.target_value(nxt, 0.5)
            lap("target pass")
            y = rec["reward"] + learner.cfg.gamma * nxt["alive"].float() * value
            q = learner.q(rec["obs"], interaction.mean_action(rec)).gather(-1, rec["action"].unsqueeze(-1)).squeeze(-1)
            loss = ((q - y)[rec["alive"]] ** 2).mean()
            lap("online pass")
            aux = interaction.aux_loss(rec, y)
            lap("vae forward")
            learner.optimizer.zero_grad()
            loss.backward()
            lap("critic backward")
            torch.nn.utils.clip_grad_norm_(learner.optimizer.param_groups[0]["params"], learner.cfg.max_grad_norm)
            learner.optimizer.step()
            lap("critic step")
            learner.after_critic_update(rec, 0.5)
            lap("actor step")
            if aux is not None:
                interaction.step_aux(aux[0])
            lap("vae backward and step")
            soft_update(learner.q_target, learner.q, learner.cfg.tau)
            interaction.soft_update(learner.cfg.tau)
            lap("soft target updates")
        ms = {k: 1000 * v / updates for k, v in spent.items()}
        return {"algo": algo, "ms_per_update": {**ms, "total": sum(ms.values())}}
    finally:
        trainer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=list(Q_FAMILY), choices=Q_FAMILY)
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--out", type=Path)
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE settings over conf/battle.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [breakdown(a, args.updates, args.overrides, Path(tmp)) for a in args.algos]
    emit({"benchmark": "update_cost", "task": "battle 64v64", "overrides": args.overrides, "results": rows}, args.out)


if __name__ == "__main__":
    main()
