"""Model files: a file whose parameter layout this version does not have fails in one line."""
import pytest
import torch

from bmf_graph.algos import make_algorithm
from bmf_graph.training.checkpoint import load_model, model_payload, save_model
from bmf_graph.config import AlgoConfig
from bmf_graph.envs import firefighter


def test_model_file_round_trip_and_older_layouts(tmp_path):
    spec = firefighter.batched_env(num_firefighters=6).teams[0]
    algo = make_algorithm(spec, AlgoConfig(name="bmf_q", hidden=8, num_groups=2), radius=1.5)
    path = save_model(tmp_path / "model.pt", algo)
    loaded = load_model(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.parameters(), algo.parameters()))

    # An older file: the static attention's parameters, no target copy.
    payload = model_payload(algo)
    state = payload["state_dict"]
    for key in [k for k in state if k.startswith(("interaction.attention.", "interaction.target_attention."))]:
        del state[key]
    state["interaction.attention.att_src"] = torch.zeros(1, 1, 8)
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"^load_model: .*old.pt \(bmf_q\) was written by another version of "
                                         r"bmf_graph \(missing \['interaction.attention.att', .*unexpected "
                                         r"\['interaction.attention.att_src'\]\); retrain it"):
        load_model(tmp_path / "old.pt")
    # A setting this version does not know.
    payload = model_payload(algo)
    payload["algo"]["attention_kind"] = "static"
    torch.save(payload, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match=r"unknown.pt \(bmf_q\) was written by another version .*attention_kind"):
        load_model(tmp_path / "unknown.pt")
