"""Replay storage of whole-team steps in preallocated tensors.

Each record is one team at one environment step: every agent slot's observation, action,
reward, alive flag and the interaction inputs the update needs (mean actions, group ids,
pooled group inputs, ...). The successor of record ``i`` is record ``i + 1`` of the same
episode, so a transition ``(s, a, r, s')`` is the pair ``(i, i + 1)`` and nothing is stored twice.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

Schema = Mapping[str, tuple[tuple[int, ...], torch.dtype]]


class StepBuffer:
    r"""Circular buffer of team-step records with successor links.

    Args:
        capacity: number of records (environment steps) kept.
        schema: ``name -> (shape of one record, dtype)``.
        device: where the tensors live.

    ``add(record, first)`` writes a record and links it to the previous one unless ``first``
    (episode start). ``sample(b)`` draws ``b`` records that have a successor and returns the
    records and their successors, each a dict of ``[b, *shape]`` tensors.
    """

    def __init__(self, capacity: int, schema: Schema, device: torch.device | str = "cpu"):
        if capacity < 2:
            raise ValueError(f"StepBuffer: capacity={capacity} is too small; expected at least 2")
        self.capacity = capacity
        self.device = torch.device(device)
        self.data = {k: torch.zeros((capacity, *shape), dtype=dtype, device=self.device)
                     for k, (shape, dtype) in schema.items()}
        self.has_next = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.ptr = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    @property
    def num_transitions(self) -> int:
        return int(self.has_next.sum())

    def add(self, record: Mapping[str, Tensor], first: bool) -> int:
        """Store ``record`` (every schema key) at the next slot; returns its index."""
        missing = set(self.data) - set(record)
        if missing:
            raise KeyError(f"StepBuffer.add: record lacks {sorted(missing)}")
        index = self.ptr
        for key, value in record.items():
            self.data[key][index] = value
        self.has_next[index] = False
        self.has_next[(index - 1) % self.capacity] = (not first) and self.size > 0
        self.ptr = (index + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return index

    def set(self, index: int, key: str, value: Tensor) -> None:
        """Fill a field known only after the step (e.g. the reward)."""
        self.data[key][index] = value

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[dict, dict]:
        """``batch`` transitions drawn uniformly: ``(records, successors)``."""
        valid = self.has_next.nonzero().squeeze(1)
        if valid.numel() == 0:
            raise RuntimeError("StepBuffer.sample: no complete transition stored yet")
        pick = torch.randint(valid.numel(), (batch,), generator=generator, device="cpu").to(valid.device)
        index = valid[pick]
        following = (index + 1) % self.capacity
        return ({k: v[index] for k, v in self.data.items()},
                {k: v[following] for k, v in self.data.items()})

    def state_dict(self) -> dict:
        """Slots as laid out (not re-ordered), so sampling after a reload draws the same records."""
        n = self.size
        return {"data": {k: v[:n].cpu() for k, v in self.data.items()}, "has_next": self.has_next[:n].cpu(),
                "ptr": self.ptr, "capacity": self.capacity}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"StepBuffer: checkpoint capacity {state['capacity']} != {self.capacity}")
        n = state["has_next"].shape[0]
        for k, v in state["data"].items():
            self.data[k][:n] = v.to(self.device)
        self.has_next.zero_()
        self.has_next[:n] = state["has_next"].to(self.device)
        self.size, self.ptr = n, state["ptr"]
