"""Replay storage of whole-team steps, one record per env copy and step.

Each record is one team of one env copy at one step: every agent slot's observation, action,
reward, alive flag and the interaction inputs the update needs (mean actions, group ids,
pooled group inputs, ...). Several copies are recorded at once; each copy is a *stream* and
record ``i``'s successor (the same copy's next step) is kept as an explicit index
``next[i]``, so a transition ``(s, a, r, s')`` is the pair ``(i, next[i])`` and nothing is
stored twice. The tensors grow geometrically up to the capacity as records arrive, so memory
follows what is stored, and :meth:`StepBuffer.state_dict` holds only the filled rows.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

Schema = Mapping[str, tuple[tuple[int, ...], torch.dtype]]

INITIAL_ROWS = 64
"""Records allocated at the first :meth:`StepBuffer.add` (or the first add's size, if larger)."""


class StepBuffer:
    r"""Circular buffer of team-step records with per-stream successor links.

    Args:
        capacity: number of records kept (the oldest are overwritten).
        schema: ``name -> (shape of one record, dtype)``.
        device: where the tensors live.

    ``add(record, streams, first)`` writes one record per stream (env copy) and links each to
    that stream's previous record unless ``first`` (episode start). ``set_last`` fills a field
    of each stream's newest record (e.g. the reward, known one step later). ``sample(b)``
    draws ``b`` records that have a successor and returns the records and their successors,
    each a dict of ``[b, *shape]`` tensors. Successor links are host (numpy) arrays, so
    linking and sampling never wait for the device.
    """

    def __init__(self, capacity: int, schema: Schema, device: torch.device | str = "cpu"):
        if capacity < 2:
            raise ValueError(f"StepBuffer: capacity={capacity} is too small; expected at least 2")
        self.capacity = capacity
        self.schema = dict(schema)
        self.device = torch.device(device)
        self.data: dict[str, Tensor] = {}
        self.next = np.full(0, -1, dtype=np.int64)
        """Slot of each record's successor, ``-1`` if none (yet)."""
        self.owner = np.full(0, -1, dtype=np.int64)
        """Stream whose newest record a slot holds, ``-1`` if none."""
        self.last: dict[int, int] = {}
        """Stream -> slot of its newest record."""
        self.ptr = 0
        self.size = 0
        self.whole: dict[tuple[str, int], Tensor] = {}
        """Reused outputs of :meth:`sample_agents`' whole-record fields (records 0, successors 1)."""

    def __len__(self) -> int:
        return self.size

    @property
    def allocated(self) -> int:
        """Records the tensors have room for (grows up to ``capacity``)."""
        return len(self.next)

    @property
    def num_transitions(self) -> int:
        return int((self.next[:self.size] >= 0).sum())

    def _reserve(self, rows: int) -> None:
        """Grow the tensors (doubling, at most ``capacity``) until ``rows`` records fit."""
        old = self.allocated
        if rows <= old:
            return
        new = min(self.capacity, max(rows, 2 * old, INITIAL_ROWS))
        for key, (shape, dtype) in self.schema.items():
            grown = torch.zeros((new, *shape), dtype=dtype, device=self.device)
            if key in self.data:
                grown[:old] = self.data[key]
            self.data[key] = grown
        self.next = np.concatenate([self.next, np.full(new - old, -1, dtype=np.int64)])
        self.owner = np.concatenate([self.owner, np.full(new - old, -1, dtype=np.int64)])

    def add(self, record: Mapping[str, Tensor], streams: Sequence[int], first: bool) -> np.ndarray:
        """Store one record per stream: ``record[key]`` holds the ``len(streams)`` records
        stacked (``[S, *shape]`` or flattened ``[S * shape[0], ...]``). Returns their slots."""
        missing = set(self.schema) - set(record)
        if missing:
            raise KeyError(f"StepBuffer.add: record lacks {sorted(missing)}")
        count = len(streams)
        if not 1 <= count <= self.capacity:
            raise ValueError(f"StepBuffer.add: {count} streams at once; expected 1..{self.capacity} (the capacity)")
        self._reserve(min(self.capacity, self.ptr + count))
        slots = (self.ptr + np.arange(count)) % self.capacity
        for slot in slots[self.owner[slots] >= 0]:  # overwritten newest records: their streams restart
            del self.last[int(self.owner[slot])]
        self.owner[slots] = -1
        self.next[slots] = -1
        start, stop = self.ptr, self.ptr + count
        pieces = [(start, min(stop, self.capacity), 0)] + ([(0, stop - self.capacity, self.capacity - start)]
                                                            if stop > self.capacity else [])
        for key, (shape, _) in self.schema.items():
            value = record[key].reshape(count, *shape)
            for lo, hi, offset in pieces:
                self.data[key][lo:hi] = value[offset:offset + hi - lo]
        for stream, slot in zip(streams, slots):
            previous = self.last.get(stream)
            if previous is not None:
                self.owner[previous] = -1
                if not first:
                    self.next[previous] = slot
            self.last[stream] = int(slot)
            self.owner[slot] = stream
        self.ptr = stop % self.capacity
        self.size = min(self.size + count, self.capacity)
        return slots

    def set_last(self, streams: Sequence[int], key: str, value: Tensor) -> None:
        """Write ``key`` of each stream's newest record (``value`` stacked as in :meth:`add`)."""
        missing = [s for s in streams if s not in self.last]
        if missing:
            raise KeyError(f"StepBuffer.set_last: streams {missing} have no record")
        slots = torch.as_tensor([self.last[s] for s in streams], dtype=torch.long).to(self.device, non_blocking=True)
        self.data[key][slots] = value.reshape(len(streams), *self.schema[key][0]).to(self.data[key].dtype)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[dict, dict]:
        """``batch`` transitions drawn uniformly: ``(records, successors)``."""
        valid = np.flatnonzero(self.next[:self.size] >= 0)
        if valid.size == 0:
            raise RuntimeError("StepBuffer.sample: no complete transition stored yet")
        pick = torch.randint(valid.size, (batch,), generator=generator, device="cpu").numpy()
        index = valid[pick]
        following = self.next[index]
        index_t = torch.from_numpy(index).to(self.device, non_blocking=True)
        following_t = torch.from_numpy(following).to(self.device, non_blocking=True)
        return ({k: v.index_select(0, index_t) for k, v in self.data.items()},
                {k: v.index_select(0, following_t) for k, v in self.data.items()})

    def sample_agents(self, batch: int, agent_keys: Sequence[str], whole_keys: Sequence[str] = (),
                      generator: torch.Generator | None = None) -> tuple[dict, dict]:
        """``batch`` agent transitions drawn uniformly from all stored ones (an agent alive in a
        record that has a successor): ``(records, successors)``. Fields in ``agent_keys`` (one
        row per agent slot) keep the sampled agent's row only, ``[batch, 1, ...]``; the other
        fields come whole, ``[batch, *shape]``, and so do the ``whole_keys`` fields, under
        ``"whole"`` beside their agent rows. ``"agent"`` holds the sampled slots ``[batch]``.

        The ``"whole"`` tensors are gathered into storage reused from call to call, valid until
        the next call: GAT-MF's whole Battle observations are 80 MB per 256 records, and a fresh
        block that size costs its page faults on every update (measured 5x the gather itself on CPU)."""
        valid = np.flatnonzero(self.next[:self.size] >= 0)
        if valid.size == 0:
            raise RuntimeError("StepBuffer.sample_agents: no complete transition stored yet")
        valid_t = torch.from_numpy(valid).to(self.device, non_blocking=True)
        pairs = self.data["alive"].index_select(0, valid_t).nonzero()  # [P, 2]: (valid position, slot)
        if pairs.shape[0] == 0:
            raise RuntimeError("StepBuffer.sample_agents: no alive agent in the stored transitions")
        pick = torch.randint(pairs.shape[0], (batch,), generator=generator, device="cpu").to(self.device)
        chosen = pairs.index_select(0, pick)
        index, agent = valid_t.index_select(0, chosen[:, 0]), chosen[:, 1]
        following = torch.from_numpy(self.next[index.cpu().numpy()]).to(self.device, non_blocking=True)

        def take(rows: Tensor, part: int) -> dict:
            out = {k: (v[rows, agent].unsqueeze(1) if k in agent_keys else v.index_select(0, rows))
                   for k, v in self.data.items()}
            if whole_keys:
                out["whole"] = {k: self._gather_whole(k, rows, part) for k in whole_keys}
            out["agent"] = agent
            return out

        return take(index, 0), take(following, 1)

    def _gather_whole(self, key: str, rows: Tensor, part: int) -> Tensor:
        """``data[key][rows]`` into the reused tensor of ``(key, part)``."""
        source = self.data[key]
        shape = (rows.numel(), *source.shape[1:])
        out = self.whole.get((key, part))
        if out is None or out.shape != shape or out.dtype != source.dtype or out.device != source.device:
            out = self.whole[(key, part)] = torch.empty(shape, dtype=source.dtype, device=source.device)
        return torch.index_select(source, 0, rows, out=out)

    def state_dict(self) -> dict:
        """The filled rows only, as laid out (not re-ordered), so sampling after a reload draws
        the same records. Each tensor's storage is its filled rows (``torch.save`` writes whole
        storages): the allocation itself once full, else a copy."""
        n = self.size
        return {"data": {k: (v if n == len(v) else v[:n].clone()).cpu() for k, v in self.data.items()},
                "next": torch.from_numpy(self.next[:n].copy()), "owner": torch.from_numpy(self.owner[:n].copy()),
                "last": dict(self.last),
                "ptr": self.ptr, "capacity": self.capacity}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"StepBuffer: checkpoint capacity {state['capacity']} != {self.capacity}")
        n = len(state["next"])
        self.data, self.next, self.owner = {}, np.full(0, -1, dtype=np.int64), np.full(0, -1, dtype=np.int64)
        self._reserve(max(n, 1))
        for k, v in state["data"].items():
            self.data[k][:n] = v.to(self.device)
        self.next[:n], self.owner[:n] = np.asarray(state["next"]), np.asarray(state["owner"])
        self.last = {int(s): int(i) for s, i in state["last"].items()}
        self.size, self.ptr = n, state["ptr"]


def replay_records(buffer_size: int, num_agents: int) -> int:
    """Records of ``num_agents`` slots that hold ``buffer_size`` agent transitions (at least 2)."""
    return max(2, buffer_size // max(num_agents, 1))
