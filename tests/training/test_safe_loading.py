"""Model files and run states load with ``weights_only=True``: a pickle payload is refused and
never runs; corrupt files fail with one line naming them; ``last.pt`` holds only filled rows."""
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from bmf_graph.training import checkpoint
from bmf_graph.algos import NonFiniteLoss
from bmf_graph.training.checkpoint import UnreadableFile, load_file, load_model
from bmf_graph.training.model_files import read_model_payload
from bmf_graph.config import load_config
from bmf_graph.config.checks import ConfigError
from bmf_graph.training.logging import read_metrics
from bmf_graph.training.trainer import Trainer, train
from tiny_runs import FAST, TINY, interrupted_run

ROOT = Path(__file__).resolve().parents[2]


def tiny(runs_dir, conf="firefighter", *extra):
    return load_config([f"conf={conf}", "algo=q", f"runs_dir={runs_dir}", *TINY[conf], *FAST, *extra])


class Payload:
    """Unpickling this object would create ``marker``: code run by loading."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train(tiny(tmp_path_factory.mktemp("runs"), "firefighter", "train.episodes=2"))


def test_pickle_payload_in_a_model_file_is_refused_and_not_run(run_dir, tmp_path, capsys):
    from bmf_graph.cli import evaluation

    marker = tmp_path / "code_ran"
    payload = read_model_payload(run_dir / "checkpoints" / "model_final.safetensors")
    payload["spec"]["extra"] = Payload(marker)  # a model file as earlier versions wrote it, with a payload
    evil = tmp_path / "evil.pt"
    torch.save(payload, evil)
    with pytest.raises(UnreadableFile, match=r"evil\.pt holds Python objects other than tensors .*refusing"):
        load_model(evil)
    with pytest.raises(SystemExit) as exit_:
        evaluation.main(["returns", str(evil), "--env", "firefighter", "--episodes", "1"])
    assert exit_.value.code == 2 and "refusing to load it" in capsys.readouterr().err.splitlines()[-1]
    with pytest.raises(ConfigError, match=r"opponent.checkpoint=.*evil.pt.*refusing to load it"):
        train(tiny(tmp_path / "runs", "battle", "opponent.policy=checkpoint", f"opponent.checkpoint={evil}"))
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_a_model_of_another_task_is_refused_before_the_run_folder(run_dir, tmp_path):
    other = run_dir / "checkpoints" / "model_final.safetensors"  # a Firefighter model as a Battle opponent
    with pytest.raises(ConfigError, match=r"opponent.checkpoint=.*model_final.safetensors.* is not valid: .*obs_dim=2"):
        train(tiny(tmp_path / "runs", "battle", "opponent.policy=checkpoint", f"opponent.checkpoint={other}"))
    assert not (tmp_path / "runs").exists()


def test_resume_refuses_a_payload_in_last_pt(run_dir, tmp_path):
    marker = tmp_path / "code_ran"
    last = run_dir / "checkpoints" / "last.pt"
    original = last.read_bytes()
    try:
        state = torch.load(last, weights_only=True)
        state["rng"]["extra"] = Payload(marker)
        torch.save(state, last)
        with pytest.raises(UnreadableFile, match="last.pt holds Python objects"):
            train(load_config([f"resume={run_dir}"]))
    finally:
        last.write_bytes(original)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_fail_with_one_line_naming_them(run_dir, tmp_path, damage):
    good = (run_dir / "checkpoints" / "last.pt").read_bytes()
    bad = tmp_path / "model.pt"
    bad.write_bytes({"truncate": good[: len(good) // 2], "garbage": b"PK\x03\x04" + os.urandom(4096),
                     "empty": b""}[damage])
    with pytest.raises(UnreadableFile, match=r"model\.pt is not a readable checkpoint \(truncated or corrupt"):
        load_model(bad)
    message = str(pytest.raises(UnreadableFile, load_file, bad).value)
    assert "\n" not in message


def test_corrupt_last_pt_and_edited_config_fail_cleanly_on_resume(run_dir, capsys):
    import train as entry

    config = run_dir / "config.yaml"
    last = run_dir / "checkpoints" / "last.pt"
    saved_config, saved_last = config.read_text(), last.read_bytes()
    try:
        last.write_bytes(saved_last[:1000])
        assert entry.main([f"resume={run_dir}"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "last.pt is not a readable checkpoint (truncated or corrupt" in err
        last.write_bytes(saved_last)
        config.write_text(saved_config.replace("episodes: 2", "episodes: two"))
        with pytest.raises(ConfigError, match=r"train.episodes='two' is not valid.*config.yaml"):
            load_config([f"resume={run_dir}"])
        config.write_text(saved_config + "\n  bad: [\n")
        with pytest.raises(ConfigError, match=r"config.yaml is not a readable configuration"):
            load_config([f"resume={run_dir}"])
    finally:
        config.write_text(saved_config)
        last.write_bytes(saved_last)


def test_committed_model_files_load_safely():
    """Model files under results/ (safetensors, or {algo, spec, radius, state_dict} with
    weights_only=True) load."""
    files = sorted(ROOT.glob("results/**/model_final*.pt")) + sorted(ROOT.glob("results/**/model_final*.safetensors"))
    for path in files:
        assert load_model(path).spec.num_agents > 0


def test_legacy_run_state_with_numpy_arrays_still_resumes(tmp_path, monkeypatch):
    """A ``last.pt`` of an earlier version (numpy RNG state and replay links as arrays, python
    RNG state as a tuple) loads without running code and resumes."""
    run_dir = interrupted_run(tmp_path, monkeypatch, 2,
                              tiny(tmp_path, "firefighter", "train.episodes=3", "train.save_every=2"))
    last = run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    np_state = np.random.get_state()
    state["rng"]["python"], state["rng"]["numpy"] = random.getstate(), np_state
    buffer = state["learners"][0]["training"]["buffer"]
    buffer["next"], buffer["owner"] = buffer["next"].numpy(), buffer["owner"].numpy()
    torch.save(state, last)
    assert [r["episode"] for r in read_metrics(train(load_config([f"resume={run_dir}"])))] == [1, 2, 3]


def test_last_pt_holds_only_filled_rows_and_is_written_once(tmp_path, monkeypatch):
    """A replay of 125,000 records holding 22: last.pt's size follows the 22 rows; one write."""
    writes = []
    real = checkpoint.atomic_write

    def counting(path, write, overwrite=True):
        writes.append(Path(path).name)
        return real(path, write, overwrite)

    monkeypatch.setattr(checkpoint, "atomic_write", counting)
    run_dir = train(tiny(tmp_path, "battle", "train.episodes=2", "train.save_every=5", "algo.buffer_size=1000000"))
    assert writes.count("last.pt") == 1
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    buffer = state["learners"][0]["training"]["buffer"]
    assert buffer["capacity"] == 1_000_000 // 8 and len(buffer["next"]) == 22  # 2 episodes x 11 states
    data = sum(v.numel() * v.element_size() for v in buffer["data"].values())
    per_record = data / 22
    size = (run_dir / "checkpoints" / "last.pt").stat().st_size
    tensors = []  # every other tensor of the state: weights, optimizer moments, RNG states

    def collect(value):
        if isinstance(value, torch.Tensor):
            tensors.append(value.numel() * value.element_size())
        elif isinstance(value, dict):
            [collect(v) for k, v in value.items() if value is not buffer or k != "data"]
        elif isinstance(value, (list, tuple)):
            [collect(v) for v in value]

    collect(state)
    rest = sum(tensors)
    assert data < size < data + rest + 40 * per_record + 200_000  # rows, weights and optimizer, not 125,000 rows


def test_non_finite_weights_never_become_the_last_good_checkpoint(tmp_path, monkeypatch):
    """Weights blown up to 1e30 after episode 2 (their squared norm overflows): the run stops at
    the next checkpoint, naming the last good one, which exists and holds episode 2."""
    original = Trainer.metrics

    def blow_up(self, result, explore):
        if self.episode == 2:
            with torch.no_grad():
                next(self.learners[0].parameters()).fill_(1e30)
        return original(self, result, explore)

    monkeypatch.setattr(Trainer, "metrics", blow_up)
    with pytest.raises(NonFiniteLoss, match=r"weights of team 'firefighter' \(.*\) are not finite after episode 3"
                                            r".*the last good checkpoint is .*last.pt"):
        train(tiny(tmp_path, "firefighter", "train.episodes=5", "train.save_every=1"))
    run_dir = next(tmp_path.iterdir())
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["episode"] == 2
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "last.pt", "model_ep000001.json", "model_ep000001.safetensors", "model_ep000002.json",
        "model_ep000002.safetensors"]


def test_nan_stop_before_any_checkpoint_says_so(tmp_path):
    """With algo.lr=1e30 the loss is NaN in episode 1: the message says no checkpoint exists yet."""
    with pytest.raises(NonFiniteLoss, match=r"loss 'q' is nan.*no checkpoint was written before \(the first "
                                            r"follows episode 25\)"):
        train(tiny(tmp_path, "firefighter", "train.episodes=6", "algo.lr=1e30", "algo.learning_starts=1",
                   "algo.update_every=1", "train.save_every=25"))
    assert not (next(tmp_path.iterdir()) / "checkpoints").exists()


def test_evaluate_out_keeps_a_file_that_appeared_meanwhile(run_dir, tmp_path, monkeypatch, capsys):
    from bmf_graph.cli import evaluation

    out = tmp_path / "result.json"
    real = evaluation.evaluate_returns

    def slow(*args, **kwargs):
        out.write_text("theirs")  # created by someone else while this evaluation runs
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_returns", slow)
    with pytest.raises(SystemExit) as exit_:
        evaluation.main(["returns", str(run_dir / "checkpoints" / "model_final.safetensors"), "--episodes", "1",
                       "--out", str(out)])
    assert exit_.value.code == 2 and out.read_text() == "theirs"
    assert "result.json exists (it appeared while this file was being written)" in capsys.readouterr().err


def test_plot_and_zero_shot_refuse_outputs_and_sizes_they_cannot_honour(run_dir, tmp_path):
    from bmf_graph.cli.options import int_list
    from bmf_graph.experiments.evaluate import zero_shot
    from bmf_graph.experiments.plot import replay_gif

    with pytest.raises(ValueError, match=r"out='.*x.png' ends in '.png'; expected a .gif file or a folder"):
        replay_gif(run_dir / "checkpoints" / "model_final.safetensors", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(Exception, match=r"',' holds no integer"):
        int_list(",")
    with pytest.raises(ValueError, match=r"zero_shot: env_kwargs map_size=40 is not valid: every size sets its own"):
        zero_shot("model.pt", [128], env_kwargs={"map_size": 40})


def test_evaluate_and_plot_refuse_cuda_without_it(run_dir, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from bmf_graph.cli import plot as plot_cli
    from bmf_graph.cli import evaluation

    model = str(run_dir / "checkpoints" / "model_final.safetensors")
    for main, args in ((evaluation.main, ["returns", model, "--device", "cuda"]),
                       (plot_cli.main, ["gif", model, "--device", "cuda", "--out", str(tmp_path / "a.gif")])):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 2
        assert "device='cuda' is not available: torch sees no CUDA device" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
