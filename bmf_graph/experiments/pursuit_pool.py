"""Adversarial Pursuit scored against fixed pools, so that a predator's number does not depend on
the prey its own method trained.

Every final predator model ``RESULTS_DIR/pursuit/{method}/seed{S}/checkpoints/model_final``
(``.safetensors``, or an earlier version's ``.pt``) plays ``episodes`` episodes against each member
of the **prey pool**: random prey and every method's final prey (``model_final_prey``, the run's
second learning team); every final prey
model plays against the **predator pool**: random predators and every final predator model. A
model's score is the mean over its pool of its mean return; a method's, the mean over its seeds,
with a cluster-bootstrap 95 % interval (seeds resampled, their episodes kept together). Play is
greedy (the actor-critic family its mode), episode ``e`` with seed ``seed + e``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from bmf_graph.config.checks import ALGORITHMS
from bmf_graph.experiments.evaluate import evaluate_returns
from bmf_graph.training.model_files import FINAL, find_model
from bmf_graph.training.players import RANDOM
from bmf_graph.experiments.results_stats import cluster_bootstrap
from bmf_graph.experiments.sweep_grid import SEED_FOLDER

PREDATOR, PREY = 0, 1
PREY_STEM = "model_final_prey"


def pursuit_models(results_dir: Path | str, methods: Sequence[str] | None = None) -> dict[str, list[dict]]:
    """``{"predator": [...], "prey": [...]}``: each final model as ``{"name", "method", "path"}``."""
    root = Path(results_dir) / "pursuit"
    methods = list(methods) if methods else [m for m in ALGORITHMS if (root / m).is_dir()]
    found: dict[str, list[dict]] = {"predator": [], "prey": []}
    for method in methods:
        for run in sorted(p for p in (root / method).glob("seed*") if SEED_FOLDER.fullmatch(p.name)):
            for role, stem in (("predator", FINAL), ("prey", PREY_STEM)):
                path = find_model(run / "checkpoints", stem)
                if path is not None:
                    found[role].append({"name": f"{method}/{run.name}", "method": method, "path": str(path)})
    if not found["predator"]:
        raise FileNotFoundError(f"pursuit_pool: no final models under {root}/METHOD/seedS/checkpoints/; "
                                f"expected finished Pursuit runs")
    return found


def pursuit_pool(results_dir: Path | str, episodes: int = 10, seed: int = 0, methods: Sequence[str] | None = None,
                 device: torch.device | str = "cpu", draws: int = 1000) -> dict[str, Any]:
    """Score every final predator against the prey pool and every final prey against the
    predator pool (module docstring).

    Returns:
        ``{"prey_pool", "predator_pool", "predators": {name: {"score", "against"}}, "prey": {...},
        "methods": {"predator": {method: {"score", "low", "high", "seeds"}}, "prey": {...}}}``.
    """
    if episodes < 1:
        raise ValueError(f"pursuit_pool: episodes={episodes!r}; expected an integer >= 1")
    models = pursuit_models(results_dir, methods)
    pools = {"predator": [RANDOM] + [m["path"] for m in models["prey"]],
             "prey": [RANDOM] + [m["path"] for m in models["predator"]]}
    names = {"predator": ["random"] + [m["name"] for m in models["prey"]],
             "prey": ["random"] + [m["name"] for m in models["predator"]]}
    out: dict[str, Any] = {"episodes": episodes, "seed": seed, "prey_pool": names["predator"],
                           "predator_pool": names["prey"], "methods": {}}
    for role, team in (("predator", PREDATOR), ("prey", PREY)):
        scores: dict[str, dict] = {}
        for model in models[role]:
            against = {name: evaluate_returns(model["path"], "pursuit", None, episodes, seed, device=device, team=team,
                                              opponent=opponent)["return"]["mean"]
                       for name, opponent in zip(names[role], pools[role])}
            scores[model["name"]] = {"score": sum(against.values()) / len(against), "against": against}
        out["predators" if role == "predator" else "prey"] = scores
        by_method: dict[str, list[float]] = {}
        for model in models[role]:
            by_method.setdefault(model["method"], []).append(scores[model["name"]]["score"])
        out["methods"][role] = {method: dict(zip(("score", "low", "high"), cluster_bootstrap(values, draws)),
                                             seeds=len(values)) for method, values in by_method.items()}
    return out


def pool_lines(report: dict[str, Any]) -> list[str]:
    """The pool scores of :func:`pursuit_pool` as Markdown: one table per role, methods by score,
    each the mean over its seeds with the 95 % cluster-bootstrap interval."""
    lines = [f"Each final model plays {report['episodes']} episodes (greedy; the actor-critic family its mode) against "
             f"every member of the other role's pool: random play and every method's final model of that role "
             f"({len(report['prey_pool'])} prey, {len(report['predator_pool'])} predators). A model's score is its "
             "mean return over the pool; cells: the mean over seeds [95 % interval, seeds resampled].", ""]
    for role, title in (("predator", "predators against the prey pool"), ("prey", "prey against the predator pool")):
        methods = report["methods"].get(role, {})
        lines += [f"| method ({title}) | seeds | score [95 % CI] |", "|---|---:|---|"]
        for method, s in sorted(methods.items(), key=lambda kv: (-kv[1]["score"], kv[0])):
            lines.append(f"| {method} | {s['seeds']} | {s['score']:,.1f} [{s['low']:,.1f}, {s['high']:,.1f}] |")
        lines.append("")
    return lines
