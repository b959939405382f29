"""Model files and resumable run state, always written atomically.

A *model file* holds what acting needs: the algorithm name, its config, the team spec, the
neighbour radius and the weights, so any checkpoint loads into an environment of another
size (zero-shot scaling). It is ``NAME.safetensors`` with ``NAME.json`` beside it
(:mod:`bmf_graph.training.model_files`); the ``NAME.pt`` files of earlier versions still load. The *run
state* (``checkpoints/last.pt``) adds optimizers, replay contents, RNG states and counters, so
``resume=RUN`` continues exactly; it is torch-saved and read back with ``weights_only=True``.
Every file is read through :mod:`bmf_graph.training.run_files`.
"""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bmf_graph.algos import Algorithm, make_algorithm
from bmf_graph.config import AlgoConfig, with_v2_defaults
from bmf_graph.envs.base import TeamSpec
from bmf_graph.files import atomic_write
from bmf_graph.training.model_files import write_model
from bmf_graph.training.model_files import read_model_payload
from bmf_graph.training.run_files import UnreadableFile, load_file

__all__ = ["atomic_save", "model_payload", "save_model", "load_model", "load_file", "UnreadableFile",
           "rng_state", "set_rng_state", "seed_everything"]


def atomic_save(obj: Any, path: Path | str) -> Path:
    """``torch.save`` into a temporary file beside ``path``, then rename over it."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def model_payload(algo: Algorithm) -> dict[str, Any]:
    return {"algo": dataclasses.asdict(algo.cfg), "spec": dataclasses.asdict(algo.spec),
            "radius": algo.radius, "state_dict": {k: v.cpu() if torch.is_tensor(v) else v for k, v in algo.state_dict().items()}}


def save_model(path: Path | str, algo: Algorithm, half: bool = False) -> Path:
    """Write ``algo``'s model file ``NAME.safetensors`` + ``NAME.json`` (``path`` names either, or
    ``NAME``); returns the ``.safetensors`` path. ``half`` stores float16 weights."""
    return write_model(path, model_payload(algo), half)


def load_model(path: Path | str, device: torch.device | str = "cpu", num_agents: int | None = None) -> Algorithm:
    """Rebuild an algorithm from a model file (safetensors or an earlier ``.pt``), in eval mode;
    ``num_agents`` resizes the team."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_model: no model file at {path}")
    payload = read_model_payload(path)
    spec = {k: tuple(v) if isinstance(v, list) else v for k, v in payload["spec"].items()}  # JSON lists
    if num_agents is not None:
        spec["num_agents"] = num_agents
    try:
        algo = make_algorithm(TeamSpec(**spec), AlgoConfig(**with_v2_defaults(payload["algo"])), payload["radius"])
        if "network" not in payload["algo"]:  # written before v3
            payload["state_dict"] = v2_state_dict(payload["state_dict"], set(algo.state_dict()))
        expected, saved = set(algo.state_dict()), set(payload["state_dict"])
        if expected != saved:
            raise ValueError(f"missing {sorted(expected - saved)[:3]}, unexpected {sorted(saved - expected)[:3]}")
        algo.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ValueError(f"load_model: {path} ({payload['algo'].get('name')}) was written by another version of "
                         f"bmf_graph ({' '.join(lines[:2]) or type(error).__name__}); retrain it or load it "
                         f"with the version that wrote it") from None
    return algo.to(device).eval()


def v2_state_dict(state: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    """A state dict written before v3 under v3's names: v2's DDPG critic held its layers itself
    (``q.trunk.*``), v3's wraps the network (``q.net.trunk.*``); other names are unchanged."""
    def rename(key: str) -> str:
        wrapped = key.replace(".", ".net.", 1)
        return wrapped if key not in expected and wrapped in expected else key
    return {rename(k): v for k, v in state.items()}


def rng_state() -> dict[str, Any]:
    """The RNG states of ``random``, numpy and torch as tensors and plain values (loadable with
    ``weights_only=True``)."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": {"version": version, "state": torch.tensor(words, dtype=torch.int64), "gauss": gauss},
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` (also the tuples that run states of earlier versions hold)."""
    py, npy = state["python"], state["numpy"]
    if isinstance(py, dict):
        py = (py["version"], tuple(int(w) for w in py["state"].tolist()), py["gauss"])
    if isinstance(npy, dict):
        npy = (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"])
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
