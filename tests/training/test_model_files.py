"""Model files as safetensors with a JSON spec: read by the safetensors package alone, never
unpickled, halved to float16 for committing, and ``.pt`` files of earlier versions still load."""
import json
import pickle
import subprocess
import sys

import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.training.checkpoint import load_model, model_payload, save_model
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import firefighter
from bmf_graph.training.model_files import final_model, halve, main, spec_path
from bmf_graph.training.rollout import team_view


def bmf_q(groups_held=True, radius=1.5):
    env = firefighter.batched_env(num_firefighters=6)
    algo = make_algorithm(env.teams[0], AlgoConfig(name="bmf_q", hidden=8, num_groups=2), radius=radius)
    if groups_held:  # play a few steps so DynamicGrouping holds groups (extra state with tensors)
        steps = env.reset(seed=0)
        a_prev = torch.zeros(6, env.teams[0].num_actions)
        for t in range(3):
            view = team_view(steps[0], a_prev, None, "cpu", t)
            action = algo.act(view, algo.observe(view), 0.5)
            steps = env.step([action.numpy()])[0]
    return algo


def same_weights(a, b, atol=0.0):
    return all(torch.allclose(x, y, atol=atol, rtol=0) for x, y in zip(a.state_dict().values(), b.state_dict().values())
               if torch.is_tensor(x))


def test_round_trip_keeps_weights_radius_and_held_groups(tmp_path):
    algo = bmf_q()
    path = save_model(tmp_path / "model_final.pt", algo)  # any suffix names the pair
    assert path.name == "model_final.safetensors" and spec_path(path).is_file()
    loaded = load_model(path)
    assert same_weights(loaded, algo) and loaded.radius == 1.5
    assert load_model(save_model(tmp_path / "inf", bmf_q(False, float("inf")))).radius == float("inf")
    held, back = algo.state_dict()["interaction.grouping._extra_state"], \
        loaded.state_dict()["interaction.grouping._extra_state"]
    assert held["layouts"] and held["layouts"].keys() == back["layouts"].keys()
    for key, layout in held["layouts"].items():
        assert torch.equal(layout["group"], back["layouts"][key]["group"]) and layout["step"] == back["layouts"][key]["step"]
    assert load_model(spec_path(path)).cfg == algo.cfg  # the .json names the same model
    assert final_model(tmp_path) is None and final_model(tmp_path.parent) is None


def test_the_weights_load_with_safetensors_alone_and_the_spec_is_plain_json(tmp_path):
    path = save_model(tmp_path / "m", bmf_q())
    code = ("import sys; sys.modules['torch'] = None; sys.modules['bmf_graph'] = None; "
            "from safetensors.numpy import load_file; import json; "
            f"w = load_file({str(path)!r}); s = json.load(open({str(spec_path(path))!r})); "
            "print(len(w), w['q.head.0.weight'].dtype, s['algo']['name'], s['dtype'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    count, dtype, name, stored = done.stdout.split()
    assert int(count) > 10 and (dtype, name, stored) == ("float32", "bmf_q", "float32")


def test_loading_a_safetensors_model_never_unpickles(tmp_path, monkeypatch):
    path = save_model(tmp_path / "m", bmf_q())

    def refuse(*_, **__):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert load_model(path).cfg.name == "bmf_q"


def test_half_writes_float16_that_loads_as_float32_within_its_precision(tmp_path, capsys):
    algo = bmf_q()
    old = tmp_path / "old.pt"
    torch.save(model_payload(algo), old)  # an earlier version's model file
    assert same_weights(load_model(old), algo)  # still loads (weights_only)
    assert main(["half", str(old), "--remove-pt"]) == 0 and not old.exists()
    half = tmp_path / "old.safetensors"
    from safetensors.torch import load_file

    stored = load_file(str(half))
    assert {v.dtype for k, v in stored.items() if "/" not in k and v.is_floating_point()} == {torch.float16}
    assert json.loads(spec_path(half).read_text())["dtype"] == "float16"
    loaded = load_model(half)
    assert next(loaded.parameters()).dtype == torch.float32 and same_weights(loaded, algo, atol=1e-3)
    assert half.stat().st_size < 0.7 * save_model(tmp_path / "full", algo).stat().st_size
    with torch.no_grad():
        next(algo.parameters()).fill_(1e6)
    with pytest.raises(ValueError, match="beyond float16's range"):
        halve(save_model(tmp_path / "big", algo))


@pytest.mark.parametrize("damage, cause", [
    (lambda spec: {**spec, "format": "other"}, "wrong format"),
    (lambda spec: {k: v for k, v in spec.items() if k != "algo"}, "missing key 'algo'"),
    (lambda spec: {**spec, "version": 99}, "version 99"),
])
def test_a_damaged_spec_is_one_line_naming_the_cause(tmp_path, damage, cause):
    path = save_model(tmp_path / "m", bmf_q(groups_held=False))
    spec = json.loads(spec_path(path).read_text())
    spec_path(path).write_text(json.dumps(damage(spec)))
    with pytest.raises(ValueError, match=cause) as error:
        load_model(path)
    assert "\n" not in str(error.value) and "m." in str(error.value)
    spec_path(path).unlink()
    with pytest.raises(FileNotFoundError, match=r"m\.json"):
        load_model(path)


def test_a_header_length_that_starts_like_a_pickle_is_still_safetensors(tmp_path):
    """The first 8 bytes of a safetensors file are its header's length; a length whose low byte is
    0x80 (the pickle opcode PROTO) once made the reader take the file for a torch pickle."""
    from bmf_graph.training.run_files import file_kind

    head = (128 + 256 * 3).to_bytes(8, "little") + b'{"a":'
    assert head[:1] == b"\x80" and file_kind(head) == "safetensors"
    assert file_kind(b"PK\x03\x04" + b"\x00" * 12) == "torch" and file_kind(b"") == "empty" and file_kind(b"hello\n") == "other"
