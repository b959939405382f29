"""Model files as safetensors: ``NAME.safetensors`` (the weights) with ``NAME.json`` beside it
(what rebuilds the algorithm), read without unpickling anything.

``NAME.json`` holds ``{"format": "bmf_graph.model", "version": 1, "algo": {...}, "spec": {...},
"radius": r, "dtype": "float32" | "float16", "state": {...}}``: the algorithm's config, the team
spec, the neighbour radius (``Infinity`` for ``r = inf``, as Python's ``json`` writes it) and the
state entries that are not plain tensors (a module's extra state, e.g. the groups held by
:class:`~bmf_graph.nn.DynamicGrouping`), where each tensor is replaced by
``{"tensor": KEY}``, ``KEY`` naming it in ``NAME.safetensors``. Every other tensor of the state
dict is stored under its own key.

Training writes float32 weights. ``python -m bmf_graph.training.model_files half FILE...`` rewrites model
files (also the ``.pt`` files of earlier versions) as float16 safetensors, the form committed
under ``results/``; floating tensors are halved, integer and boolean ones kept, and loading casts
them back to the module's float32. Only a value that overflows float16 (``|w| > 65504``) is refused.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from bmf_graph.files import atomic_write, atomic_write_text
from bmf_graph.training.run_files import UnreadableFile, file_kind, first_line, load_file

FORMAT, VERSION = "bmf_graph.model", 1
SUFFIX, SPEC_SUFFIX, LEGACY_SUFFIX = ".safetensors", ".json", ".pt"
FINAL = "model_final"
"""The stem of a finished run's model file (``RUN/checkpoints/model_final.safetensors``)."""


def weights_path(path: Path | str) -> Path:
    """``NAME.safetensors`` for ``NAME``, ``NAME.safetensors``, ``NAME.json`` or ``NAME.pt``."""
    path = Path(path)
    return path.with_suffix(SUFFIX) if path.suffix in (SUFFIX, SPEC_SUFFIX, LEGACY_SUFFIX, "") else \
        path.with_name(path.name + SUFFIX)


def spec_path(path: Path | str) -> Path:
    """The JSON spec beside a model file's weights."""
    return weights_path(path).with_suffix(SPEC_SUFFIX)


def find_model(folder: Path | str, stem: str = FINAL) -> Path | None:
    """``folder/{stem}.safetensors``, else an earlier version's ``folder/{stem}.pt``, else ``None``."""
    for suffix in (SUFFIX, LEGACY_SUFFIX):
        path = Path(folder) / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def final_model(run_dir: Path | str) -> Path | None:
    """A finished run's final model file (:func:`find_model` in ``run_dir/checkpoints``)."""
    return find_model(Path(run_dir) / "checkpoints")


def model_stems(folder: Path | str) -> list[str]:
    """Names of the model files in ``folder`` (either format), sorted."""
    return sorted({p.name for p in Path(folder).glob(f"model_*{SUFFIX}")} |
                  {p.name for p in Path(folder).glob(f"model_*{LEGACY_SUFFIX}")})


def _split(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` with every tensor moved into ``tensors`` (under ``key/...``) and replaced by
    ``{"tensor": KEY}``; tuples become lists (JSON)."""
    if torch.is_tensor(value):
        tensors[key] = value
        return {"tensor": key}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"model state {key}: dict keys must be strings for a JSON spec")
        return {k: _split(v, f"{key}/{k}", tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split(v, f"{key}/{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"model state {key}: {type(value).__name__} is neither a tensor nor a plain value")


def join_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"tensor"} and isinstance(value["tensor"], str):
            return tensors[value["tensor"]]
        return {k: join_state(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [join_state(v, tensors) for v in value]
    return value


def _half(key: str, tensor: torch.Tensor) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor
    if tensor.numel() and not torch.isfinite(tensor.detach().abs().max().to(torch.float16)):
        raise ValueError(f"model state {key} has values beyond float16's range (|w| > 65504); keep it float32")
    return tensor.to(torch.float16)


MODEL_KEYS = ("algo", "spec", "radius", "state_dict")


def read_model_payload(path: Path | str) -> dict[str, Any]:
    """``{"algo", "spec", "radius", "state_dict"}`` of a model file: ``NAME.safetensors`` with
    ``NAME.json`` (:mod:`bmf_graph.training.model_files`), or an earlier version's ``NAME.pt``."""
    path = Path(path)
    if path.suffix == LEGACY_SUFFIX:
        payload = load_file(path)
        if not isinstance(payload, dict):
            raise UnreadableFile(f"{path} is not a bmf_graph model file (wrong format: it holds a "
                                 f"{type(payload).__name__}, expected a dict with {', '.join(MODEL_KEYS)})")
    else:
        payload = _read_safetensors(path)
    missing = [k for k in MODEL_KEYS if k not in payload]
    if missing:
        raise UnreadableFile(f"{path} is not a bmf_graph model file (missing key {missing[0]!r}; expected "
                             f"{', '.join(MODEL_KEYS)})")
    if not isinstance(payload["spec"], dict) or not isinstance(payload["algo"], dict) \
            or not isinstance(payload["state_dict"], dict):
        raise UnreadableFile(f"{path} is not a bmf_graph model file (wrong format: algo, spec and state_dict must "
                             f"be mappings)")
    return payload


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    weights, spec_file = weights_path(path), spec_path(path)
    for needed in (weights, spec_file):
        if not needed.is_file():
            raise FileNotFoundError(f"no file at {needed}; a model file is NAME.safetensors with NAME.json beside it")
    try:
        spec = json.loads(spec_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableFile(f"{spec_file} is not a readable model spec (truncated or corrupt: {error})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise UnreadableFile(f"{spec_file} is not a bmf_graph model spec (wrong format: expected "
                             f"\"format\": \"{FORMAT}\")")
    if spec.get("version") != VERSION:
        raise UnreadableFile(f"{spec_file} has version {spec.get('version')!r} (wrong format: this bmf_graph reads "
                             f"version {VERSION})")
    if "state" not in spec:
        raise UnreadableFile(f"{spec_file} is not a bmf_graph model spec (missing key 'state')")
    data = weights.read_bytes()
    if file_kind(data[:16]) != "safetensors":
        raise UnreadableFile(f"{weights} is not a model file (wrong format: not safetensors)" if data else
                             f"{weights} is not a model file (truncated or corrupt: the file is empty)")
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise UnreadableFile(f"{weights} is not a readable model file (truncated or corrupt: "
                             f"{first_line(error)})") from None
    try:
        state = {k: join_state(v, tensors) for k, v in spec["state"].items()}
    except (KeyError, AttributeError) as error:
        raise UnreadableFile(f"{weights} is not a bmf_graph model file (missing key: the tensor {error} that "
                             f"{spec_file.name} names)") from None
    nested = set(_nested_keys(spec["state"]))
    state.update({k: v for k, v in tensors.items() if k not in nested})
    return {**{k: spec[k] for k in MODEL_KEYS[:3] if k in spec}, "state_dict": state}


def _nested_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        if set(value) == {"tensor"}:
            return [value["tensor"]]
        return [key for v in value.values() for key in _nested_keys(v)]
    if isinstance(value, list):
        return [key for v in value for key in _nested_keys(v)]
    return []


def write_model(path: Path | str, payload: dict[str, Any], half: bool = False) -> Path:
    """Write ``payload`` (``{"algo", "spec", "radius", "state_dict"}``) as ``NAME.safetensors``
    and ``NAME.json`` (the JSON first, each atomically); returns the weights' path. ``half``
    stores floating tensors as float16."""
    from safetensors.torch import save

    weights = weights_path(path)
    tensors = {k: _half(k, v) if half else v for k, v in payload["state_dict"].items() if torch.is_tensor(v)}
    state = {k: _split(v, k, tensors) for k, v in payload["state_dict"].items() if not torch.is_tensor(v)}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    spec = {"format": FORMAT, "version": VERSION, "algo": payload["algo"], "spec": payload["spec"],
            "radius": payload["radius"], "dtype": "float16" if half else "float32", "state": state}
    atomic_write_text(spec_path(weights), json.dumps(spec, indent=1, sort_keys=True) + "\n")
    data = save(tensors, metadata={"format": FORMAT, "version": str(VERSION)})
    return atomic_write(weights, lambda f: f.write(data))


def halve(source: Path | str, out: Path | str | None = None) -> Path:
    """Rewrite the model file ``source`` (safetensors or an earlier ``.pt``) as float16
    safetensors at ``out`` (default: beside it, same stem); returns the weights' path."""
    payload = read_model_payload(source)
    return write_model(out if out is not None else weights_path(source), payload, half=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bmf_graph.training.model_files",
                                     description="Rewrite model files as float16 safetensors (the committed form).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("half", help="NAME.pt or NAME.safetensors -> NAME.safetensors + NAME.json at float16")
    p.add_argument("files", nargs="+", help="model files; each is rewritten beside itself")
    p.add_argument("--remove-pt", action="store_true", help="remove a converted .pt once its safetensors is written")
    args = parser.parse_args(argv)
    for name in args.files:
        try:
            out = halve(name)
        except (ValueError, OSError) as error:
            parser.error(str(error))
        if args.remove_pt and Path(name).suffix == LEGACY_SUFFIX:
            Path(name).unlink()
        print(out, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
