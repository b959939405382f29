import io

import numpy as np
import pytest
import torch

from bmf_graph.algos.replay import INITIAL_ROWS, StepBuffer, replay_records

SCHEMA = {"x": ((3,), torch.float32), "a": ((3,), torch.long)}


def record(*values: float) -> dict:
    """Records of several streams at once, stacked: ``x`` = value, ``a`` = int(value)."""
    x = torch.tensor(values, dtype=torch.float32)[:, None].expand(-1, 3)
    return {"x": x.reshape(-1), "a": x.long().reshape(-1)}  # flattened, as a stacked view gives them


def fill(buf: StepBuffer, episodes: list[int], stream: int = 0, start: int = 0) -> int:
    value = start
    for length in episodes:
        for t in range(length):
            buf.add(record(value), [stream], first=t == 0)
            value += 1
    return value


def links(buf: StepBuffer) -> dict[float, float]:
    """record value -> successor value, for every stored transition."""
    x = buf.data["x"][:, 0]
    return {float(x[i]): float(x[j]) for i, j in enumerate(buf.next[:buf.size]) if j >= 0}


def test_successor_is_next_step_of_same_episode():
    buf = StepBuffer(16, SCHEMA)
    fill(buf, [4, 3])  # records 0..3 | 4..6
    assert links(buf) == {0: 1, 1: 2, 2: 3, 4: 5, 5: 6}
    rec, nxt = buf.sample(200, torch.Generator().manual_seed(0))
    assert torch.equal(nxt["x"][:, 0], rec["x"][:, 0] + 1)
    assert set(rec["x"][:, 0].tolist()) == {0.0, 1.0, 2.0, 4.0, 5.0}


def test_streams_link_within_their_own_copy():
    """Three copies recorded together, then two (copy 1 ended), then a second part alone:
    every successor is the same copy's next step."""
    buf = StepBuffer(64, SCHEMA)
    buf.add(record(0, 100, 200), [0, 1, 2], first=True)
    buf.add(record(1, 101, 201), [0, 1, 2], first=False)
    buf.add(record(7), [5], first=True)  # another part of the copies
    buf.add(record(2, 202), [0, 2], first=False)
    buf.add(record(8), [5], first=False)
    buf.add(record(3, 203), [0, 2], first=False)
    assert links(buf) == {0: 1, 1: 2, 2: 3, 100: 101, 200: 201, 201: 202, 202: 203, 7: 8}
    assert buf.num_transitions == 8
    buf.add(record(50, 60), [0, 1], first=True)  # a new episode never links to the old one
    assert 3 not in links(buf) and 101 not in links(buf)


def test_set_last_fills_each_streams_newest_record():
    buf = StepBuffer(8, SCHEMA)
    buf.add(record(1, 2), [4, 9], first=True)
    buf.add(record(3), [4], first=False)
    buf.set_last([9, 4], "x", torch.tensor([[90.0] * 3, [40.0] * 3]))
    assert buf.data["x"][:3, 0].tolist() == [1.0, 90.0, 40.0]
    with pytest.raises(KeyError, match=r"streams \[7\] have no record"):
        buf.set_last([7], "x", torch.zeros(3))


def test_wraparound_never_links_across_overwritten_slots():
    buf = StepBuffer(5, SCHEMA)
    fill(buf, [4, 4])  # values 0..7; slots hold 5,6,7,3,4 -> 3 is the end of ep 1, 4 starts ep 2
    assert len(buf) == 5 and buf.allocated == 5
    rec, nxt = buf.sample(500, torch.Generator().manual_seed(1))
    assert torch.equal(nxt["x"][:, 0], rec["x"][:, 0] + 1)
    assert set(rec["x"][:, 0].tolist()) == {4.0, 5.0, 6.0}


def test_a_stream_whose_newest_record_was_overwritten_starts_over():
    buf = StepBuffer(4, SCHEMA)
    buf.add(record(0), [0], first=True)
    buf.add(record(10, 11, 12), [1, 2, 3], first=True)
    buf.add(record(20, 21), [1, 2], first=False)  # overwrites 0 (stream 0's newest) and 10
    assert links(buf) == {11: 21} and 0 not in buf.last
    buf.add(record(1), [0], first=False)  # stream 0's predecessor is gone: no link; 11 is overwritten
    assert links(buf) == {} and buf.data["x"][buf.last[0], 0] == 1.0


def test_grows_geometrically_up_to_capacity_and_keeps_its_records():
    buf = StepBuffer(300, SCHEMA)
    buf.add(record(0), [0], first=True)
    assert buf.allocated == INITIAL_ROWS and buf.data["x"].shape[0] == INITIAL_ROWS
    end = fill(buf, [INITIAL_ROWS], start=1)
    assert buf.allocated == 2 * INITIAL_ROWS
    fill(buf, [300], start=end)
    assert buf.allocated == 300 and len(buf) == 300
    x = buf.data["x"][:, 0]
    assert sorted(x.tolist()) == list(range(end + 300 - 300, end + 300))  # the newest 300 records
    assert all(x[j] == x[i] + 1 for i, j in enumerate(buf.next) if j >= 0)


def test_state_dict_round_trip_samples_identically_and_is_compact():
    buf = StepBuffer(1000, {"obs": ((64, 100), torch.float32), "a": ((64,), torch.long)})
    for t in range(10):
        buf.add({"obs": torch.full((2 * 64, 100), float(t)), "a": torch.full((2 * 64,), t)}, [0, 1], first=t == 0)
    state = buf.state_dict()
    data_bytes = 20 * 64 * (100 * 4 + 8)
    stored = sum(v.untyped_storage().nbytes() for v in state["data"].values())
    assert stored == data_bytes  # the filled rows, not the 64-row allocation
    file = io.BytesIO()
    torch.save(state, file)
    assert data_bytes < len(file.getvalue()) < 1.05 * data_bytes + 10_000

    other = StepBuffer(1000, {"obs": ((64, 100), torch.float32), "a": ((64,), torch.long)})
    other.load_state_dict(torch.load(io.BytesIO(file.getvalue()), weights_only=False))
    a = buf.sample(50, torch.Generator().manual_seed(3))
    b = other.sample(50, torch.Generator().manual_seed(3))
    assert torch.equal(a[0]["obs"], b[0]["obs"]) and torch.equal(a[1]["a"], b[1]["a"])
    for target in (buf, other):
        target.add({"obs": torch.zeros(64, 100), "a": torch.zeros(64, dtype=torch.long)}, [1], first=False)
    assert np.array_equal(buf.next[:buf.size], other.next[:other.size]) and buf.last == other.last


def test_replay_records_holds_the_agent_transitions():
    assert replay_records(128_000, 64) == 2000 and replay_records(128_000, 1024) == 125
    assert replay_records(10, 64) == 2


def test_errors():
    with pytest.raises(ValueError, match="capacity=1"):
        StepBuffer(1, SCHEMA)
    buf = StepBuffer(4, SCHEMA)
    with pytest.raises(RuntimeError, match="no complete transition"):
        buf.sample(2)
    with pytest.raises(KeyError, match="lacks"):
        buf.add({"x": torch.zeros(3)}, [0], first=True)
    with pytest.raises(ValueError, match="5 streams at once; expected 1..4"):
        buf.add(record(*range(5)), list(range(5)), first=True)
    with pytest.raises(ValueError, match="checkpoint capacity 4 != 8"):
        StepBuffer(8, SCHEMA).load_state_dict(buf.state_dict())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_buffer_on_cuda_links_and_samples_like_on_cpu():
    cpu, gpu = StepBuffer(16, SCHEMA), StepBuffer(16, SCHEMA, device="cuda")
    for buf, device in ((cpu, "cpu"), (gpu, "cuda")):
        for t in range(6):
            buf.add({k: v.to(device) for k, v in record(t, 10 + t).items()}, [0, 1], first=t == 0)
        buf.set_last([0, 1], "x", torch.ones(6, device=device))
    a = cpu.sample(20, torch.Generator().manual_seed(0))
    b = gpu.sample(20, torch.Generator().manual_seed(0))
    assert all(torch.equal(a[i][k], b[i][k].cpu()) for i in (0, 1) for k in SCHEMA)
    assert b[0]["x"].device.type == "cuda"
