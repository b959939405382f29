"""Model files and resumable run state, always written atomically.

A *model file* holds what acting needs: the algorithm name, its config, the team spec, the
neighbour radius and the weights, so any checkpoint loads into an environment of another
size (zero-shot scaling). The *run state* (``checkpoints/last.pt``) adds optimizers, replay
contents, RNG states and counters, so ``resume=RUN`` continues exactly.
"""
from __future__ import annotations

import dataclasses
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bmf_graph.algos import Algorithm, make_algorithm
from bmf_graph.config import AlgoConfig, with_v2_defaults
from bmf_graph.envs.base import TeamSpec
from bmf_graph.files import atomic_write


def atomic_save(obj: Any, path: Path | str) -> Path:
    """``torch.save`` into a temporary file beside ``path``, then rename over it."""
    return atomic_write(path, lambda f: torch.save(obj, f))


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
    payload = load_file(path)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"load_model: {path} is not a bmf_graph model file (no 'state_dict')")
    spec = dict(payload["spec"])
    spec["view_shape"] = tuple(spec["view_shape"])
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
    except (TypeError, ValueError, RuntimeError) as error:
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


class UnreadableFile(ValueError):
    """A checkpoint that is truncated, corrupt or holds more than tensors and plain values."""


NUMPY_ARRAYS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype,
                *(type(np.dtype(t)) for t in (np.bool_, np.int32, np.int64, np.uint32, np.float32, np.float64))]
"""Globals of plain numpy arrays (data only, no code), allowed so that run states written before
RNG states and replay links were stored as tensors still load."""


def load_file(path: Path | str, device: torch.device | str = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: tensors, numpy arrays, numbers, strings and
    containers of them only, so loading never runs code stored in the file. A file holding other Python objects
    (a pickle payload), a truncated or corrupt file and a missing one are refused, each with
    a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        with torch.serialization.safe_globals(NUMPY_ARRAYS):
            return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):
            raise UnreadableFile(f"{path} is not a readable checkpoint (truncated or corrupt: "
                                 f"{_first_line(error)})") from None
        detail = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line), "")
        raise UnreadableFile(f"{path} holds Python objects other than tensors and plain values ({detail[:120]}); "
                             f"refusing to load it, as loading could run code. Only load files you trust; a "
                             f"bmf_graph file holds tensors and plain values only") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, IndexError) as error:
        raise UnreadableFile(f"{path} is not a readable checkpoint (truncated or corrupt: {_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


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
