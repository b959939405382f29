"""The one reader of run files: per-episode CSVs (``metrics.csv``, ``eval.csv``), checkpoints
(``last.pt``) and model files (safetensors with a JSON spec, or an earlier version's ``.pt``).

Whatever is wrong with a file becomes one :class:`UnreadableFile` line naming it and the cause:
*payload refused* (a pickle that would run code), *truncated or corrupt*, *wrong format* (not the
kind of file expected) or *missing key*; a CSV error also names the first bad line. Nothing here
unpickles anything but tensors and plain values (``torch.load(weights_only=True)``), and
safetensors model files are never unpickled at all.
"""
from __future__ import annotations

import csv
import math
import pickle
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch



class UnreadableFile(ValueError):
    """A run file that is truncated, corrupt, of another format, lacks a key or holds more than
    tensors and plain values."""


NUMPY_ARRAYS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype,
                *(type(np.dtype(t)) for t in (np.bool_, np.int32, np.int64, np.uint32, np.float32, np.float64))]
"""Globals of plain numpy arrays (data only, no code), allowed so that run states written before
RNG states and replay links were stored as tensors still load."""

ZIP, PICKLE = b"PK\x03\x04", b"\x80"


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


def file_kind(head: bytes) -> str:
    """What the first bytes of a file say it is: torch, safetensors, empty or other."""
    if not head:
        return "empty"
    # safetensors first: its 8-byte header length may itself begin with the pickle opcode 0x80
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head.startswith(ZIP) or head.startswith(PICKLE):
        return "torch"
    return "other"


def load_file(path: Path | str, device: torch.device | str = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: tensors, numpy arrays, numbers, strings and
    containers of them only, so loading never runs code stored in the file. A pickle payload, a
    plain pickle, a truncated, corrupt, empty or foreign file and a missing one are refused, each
    with a one-line error naming the file and the cause."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    with path.open("rb") as f:
        kind = file_kind(f.read(16))
    if kind == "empty":
        raise UnreadableFile(f"{path} is not a readable checkpoint (truncated or corrupt: the file is empty)")
    if kind != "torch":
        what = "safetensors, not a torch file" if kind == "safetensors" else "neither a torch file nor safetensors"
        raise UnreadableFile(f"{path} is not a checkpoint (wrong format: {what})")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(NUMPY_ARRAYS):
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error) or "Unsupported operand" in str(error):
            detail = next((line.strip() for line in str(error).splitlines() if "Unsupported" in line), "")
            raise UnreadableFile(f"{path} holds Python objects other than tensors and plain values ({detail[:120]}); "
                                 f"refusing to load it (payload refused), as loading could run code. Only load "
                                 f"files you trust; a bmf_graph file holds tensors and plain values only") from None
        raise UnreadableFile(f"{path} is not a readable checkpoint (truncated or corrupt: {first_line(error)})") from None
    except Exception as error:  # noqa: BLE001 - torch's readers raise many kinds on damaged bytes
        raise UnreadableFile(f"{path} is not a readable checkpoint (truncated or corrupt: {first_line(error)})") from None


# ---------------------------------------------------------------------------------------- CSV
def _parse(path: Path, required: Sequence[str]) -> tuple[list[str], list[tuple[int, Any]]]:
    """The header and ``(line, row)`` per data line, ``row`` a dict of floats or, for a bad line,
    the reason it is bad (a string)."""
    try:
        with path.open(newline="") as f:
            lines = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as error:
        raise UnreadableFile(f"{path} is not a readable CSV file (wrong format: {first_line(error)})") from None
    if not lines or not lines[0]:
        raise UnreadableFile(f"{path} is empty (truncated or corrupt); expected a header starting with "
                             f"{','.join(required) or 'the column names'}")
    header = lines[0]
    missing = [c for c in required if c not in header]
    if missing:
        raise UnreadableFile(f"{path} has no {missing[0]!r} column (missing key; its header starts "
                             f"{','.join(header[:3])[:80]})")
    rows: list[tuple[int, Any]] = []
    for number, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(header):
            rows.append((number, f"{len(cells)} fields, expected {len(header)}"))
            continue
        try:
            row = {k: float(v) for k, v in zip(header, cells) if v != ""}
        except ValueError:
            bad = next(v for v in cells if v != "" and not _is_number(v))
            rows.append((number, f"{bad[:40]!r} is not a number"))
            continue
        absent = [c for c in required if c not in row]
        rows.append((number, f"its {absent[0]!r} cell is empty") if absent else (number, row))
    return header, rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path: Path | str, required: Sequence[str] = ("episode",)) -> list[dict[str, float]]:
    """Rows of a per-episode CSV (or of ``metrics.csv`` in a run folder) as dicts of floats, empty
    cells left out. A file without rows, without a ``required`` column, or with a line of the wrong
    number of fields or a non-number is refused, naming the file and that line."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    _, rows = _parse(path, required)
    for number, row in rows:
        if isinstance(row, str):
            raise UnreadableFile(f"{path} line {number} is not a valid row (truncated or corrupt: {row})")
    return [row for _, row in rows]


def check_episode_rows(path: Path | str, count: int, column: str = "episode",
                       last_row: Mapping[str, float] | None = None) -> int:
    """Check, before a resume writes anything, that the first ``count`` data rows of the
    per-episode CSV ``path`` are well formed and number ``column`` as ``1, 2, ..., count`` (each
    once, in order), and that row ``count`` holds ``last_row``'s values (e.g. the checkpoint's
    ``env_steps``). Rows after ``count`` were written after the checkpoint and are cut by the
    resume, so they may be anything (a kill can leave half a line). Returns the number of data
    lines; raises :class:`UnreadableFile` naming the file and its first bad line.

    ``count`` is the checkpoint's counter for this file: ``metrics.csv``'s is the episode counter;
    a file of other units passes its own counter and ``column``."""
    path = Path(path)
    _, rows = _parse(path, (column,))
    if len(rows) < count:
        raise UnreadableFile(f"{path} holds {len(rows)} rows but the checkpoint is at {column} {count}; rows "
                             f"were lost (truncated or corrupt)")
    for expected, (number, row) in enumerate(rows[:count], start=1):
        if isinstance(row, str):
            raise UnreadableFile(f"{path} line {number} is not a valid row (truncated or corrupt: {row}); "
                                 f"the checkpoint is at {column} {count}")
        if row[column] != expected:
            raise UnreadableFile(f"{path} line {number} has {column} {_show(row[column])} where {expected} was "
                                 f"expected ({column}s must run 1..{count} once each, as the checkpoint counts); "
                                 f"rows were duplicated, lost or edited")
    if count and last_row:
        number, row = rows[count - 1]
        for key, value in last_row.items():
            if key in row and row[key] != value:
                raise UnreadableFile(f"{path} line {number} has {key} {_show(row[key])} but the checkpoint has "
                                     f"{_show(value)}; the file and the checkpoint belong to different runs")
    return len(rows)


def _show(value: float) -> str:
    return str(int(value)) if math.isfinite(value) and value == int(value) else repr(value)
