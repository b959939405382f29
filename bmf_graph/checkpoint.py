"""Model files and resumable run state, always written atomically.

A *model file* holds what acting needs: the algorithm name, its config, the team spec, the
neighbour radius and the weights, so any checkpoint loads into an environment of another
size (zero-shot scaling). The *run state* (``checkpoints/last.pt``) adds optimizers, replay
contents, RNG states and counters, so ``resume=RUN`` continues exactly.
"""
from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bmf_graph.algos import Algorithm, make_algorithm
from bmf_graph.config import AlgoConfig
from bmf_graph.envs.base import TeamSpec


def atomic_save(obj: Any, path: Path | str) -> Path:
    """``torch.save`` into a temporary file beside ``path``, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def model_payload(algo: Algorithm) -> dict[str, Any]:
    return {"algo": dataclasses.asdict(algo.cfg), "spec": dataclasses.asdict(algo.spec),
            "radius": algo.radius, "state_dict": {k: v.cpu() if torch.is_tensor(v) else v for k, v in algo.state_dict().items()}}


def save_model(path: Path | str, algo: Algorithm) -> Path:
    """Write a model file for ``algo``."""
    return atomic_save(model_payload(algo), path)


def load_model(path: Path | str, device: torch.device | str = "cpu", num_agents: int | None = None) -> Algorithm:
    """Rebuild an algorithm from a model file, in eval mode; ``num_agents`` resizes the team."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_model: no model file at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if "state_dict" not in payload:
        raise ValueError(f"load_model: {path} is not a bmf_graph model file (no 'state_dict')")
    spec = dict(payload["spec"])
    spec["view_shape"] = tuple(spec["view_shape"])
    if num_agents is not None:
        spec["num_agents"] = num_agents
    try:
        algo = make_algorithm(TeamSpec(**spec), AlgoConfig(**payload["algo"]), payload["radius"])
        expected, saved = set(algo.state_dict()), set(payload["state_dict"])
        if expected != saved:
            raise ValueError(f"missing {sorted(expected - saved)[:3]}, unexpected {sorted(saved - expected)[:3]}")
        algo.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ValueError(f"load_model: {path} ({payload['algo'].get('name')}) was written by another version of "
                         f"bmf_graph ({' '.join(lines[:2]) or type(error).__name__}); retrain it or load it "
                         f"with the version that wrote it") from None
    return algo.to(device).eval()


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
