import pytest
import torch

from bmf_graph.buffer import StepBuffer

SCHEMA = {"x": ((3,), torch.float32), "a": ((3,), torch.long)}


def record(value: float) -> dict:
    return {"x": torch.full((3,), value), "a": torch.full((3,), int(value), dtype=torch.long)}


def fill(buf: StepBuffer, episodes: list[int]) -> None:
    value = 0
    for length in episodes:
        for t in range(length):
            buf.add(record(value), first=t == 0)
            value += 1


def test_successor_is_next_step_of_same_episode():
    buf = StepBuffer(16, SCHEMA)
    fill(buf, [4, 3])  # records 0..3 | 4..6
    assert buf.has_next.tolist()[:7] == [True, True, True, False, True, True, False]
    rec, nxt = buf.sample(200, torch.Generator().manual_seed(0))
    assert torch.equal(nxt["x"][:, 0], rec["x"][:, 0] + 1)
    assert set(rec["x"][:, 0].tolist()) == {0.0, 1.0, 2.0, 4.0, 5.0}


def test_wraparound_never_links_across_overwritten_slots():
    buf = StepBuffer(5, SCHEMA)
    fill(buf, [4, 4])  # values 0..7; slots hold 5,6,7,3,4 -> 3 is the end of ep 1, 4 starts ep 2
    assert len(buf) == 5
    rec, nxt = buf.sample(500, torch.Generator().manual_seed(1))
    assert torch.equal(nxt["x"][:, 0], rec["x"][:, 0] + 1)
    assert set(rec["x"][:, 0].tolist()) == {4.0, 5.0, 6.0}


def test_set_fills_a_field_after_the_step():
    buf = StepBuffer(4, SCHEMA)
    i = buf.add(record(1), first=True)
    buf.set(i, "x", torch.tensor([7.0, 8.0, 9.0]))
    assert buf.data["x"][i].tolist() == [7.0, 8.0, 9.0]


def test_state_dict_round_trip_samples_identically():
    buf = StepBuffer(6, SCHEMA)
    fill(buf, [5, 4])
    other = StepBuffer(6, SCHEMA)
    other.load_state_dict(buf.state_dict())
    a = buf.sample(50, torch.Generator().manual_seed(3))
    b = other.sample(50, torch.Generator().manual_seed(3))
    assert torch.equal(a[0]["x"], b[0]["x"]) and torch.equal(a[1]["a"], b[1]["a"])
    other.add(record(100), first=False)
    buf.add(record(100), first=False)
    assert torch.equal(buf.has_next, other.has_next)


def test_errors():
    with pytest.raises(ValueError, match="capacity=1"):
        StepBuffer(1, SCHEMA)
    buf = StepBuffer(4, SCHEMA)
    with pytest.raises(RuntimeError, match="no complete transition"):
        buf.sample(2)
    with pytest.raises(KeyError, match="lacks"):
        buf.add({"x": torch.zeros(3)}, first=True)
