"""Training smoke tests: the real entry point with tiny budgets, asserting on what it wrote."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bmf_graph.algos import NonFiniteLoss
from bmf_graph.training.checkpoint import load_model
from bmf_graph.config import load_config
from bmf_graph.config.checks import ALGORITHMS, ConfigError
from bmf_graph.envs import make_env
from bmf_graph.training.logging import read_metrics
from bmf_graph.training.trainer import train
from tiny_runs import FAST, TINY, interrupted_run

ROOT = Path(__file__).resolve().parents[2]
Q_FAMILY = ("q", "mfq", "gat_mf", "bmf_q")


def tiny(tmp_path, conf, algo, *extra):
    return load_config([f"conf={conf}", f"algo={algo}", f"runs_dir={tmp_path}", *TINY[conf], *FAST, *extra])


@pytest.mark.parametrize("conf", sorted(TINY))
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_algorithm_trains_on_every_task(tmp_path, conf, algo):
    cfg = tiny(tmp_path, conf, algo, "train.episodes=2", "train.save_every=1")
    run_dir = train(cfg)
    rows = read_metrics(run_dir)
    assert [r["episode"] for r in rows] == [1.0, 2.0]
    assert all(math.isfinite(r["charts/return"]) and r["env_steps"] > 0 for r in rows)
    loss_keys = {k for r in rows for k in r if k.startswith("losses/")}
    assert loss_keys, "no update happened"
    # The mean entropy of the learning team's acting policy, for every algorithm: uniform under
    # the Q family's first epsilon (1), below log A for the actor-critics.
    teams = make_env(conf, cfg.env.kwargs).teams
    num_actions = teams[cfg.env.learn_teams[0]].num_actions
    if len(cfg.env.learn_teams) > 1:  # Pursuit: the prey's learner logs in columns of their own
        prey = teams[cfg.env.learn_teams[1]].name
        predators = {k for k in loss_keys if not k.endswith(f"_{prey}")}
        assert predators and {f"{k}_{prey}" for k in predators} <= loss_keys
    entropies = [r["charts/entropy"] for r in rows]
    assert all(0 <= h <= math.log(num_actions) + 1e-6 for h in entropies)
    if algo in Q_FAMILY and cfg.algo.exploration == "epsilon":
        assert [r["charts/epsilon"] for r in rows] == pytest.approx([1.0, 0.1])
        assert entropies[0] == pytest.approx(math.log(num_actions), rel=1e-6)
    elif algo in Q_FAMILY:  # conf/firefighter.yaml: Boltzmann
        a = cfg.algo
        assert [r["charts/temperature"] for r in rows] == pytest.approx([a.temperature_start, a.temperature_end])
    else:  # the AC family's temperature is its entropy weight, scheduled or constant
        a = cfg.algo
        start = a.entropy_coef if a.entropy_coef_start is None else a.entropy_coef_start
        assert [r["charts/temperature"] for r in rows] == pytest.approx([start, a.entropy_coef])
        assert all("charts/epsilon" not in r for r in rows)
    if algo.startswith("bmf"):
        assert {"losses/vae_rec", "losses/vae_pred"} <= loss_keys
        assert 1 <= rows[-1]["charts/groups"] <= 3
    for name in ("model_ep000001.safetensors", "model_ep000002.safetensors", "model_final.safetensors", "last.pt"):
        assert (run_dir / "checkpoints" / name).is_file()
    model = load_model(run_dir / "checkpoints" / "model_final.safetensors")
    assert model.cfg.name == algo
    assert (run_dir / "config.yaml").read_text().count(f"name: {algo}") == 1
    assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_algorithm_trains_with_copies(tmp_path, algo):
    """Three Battle episodes as a round of two copies and a round of one: every learner records
    the copies, updates, and each episode is a row."""
    rows = read_metrics(train(tiny(tmp_path, "battle", algo, "train.episodes=3", "train.envs=2")))
    assert [r["episode"] for r in rows] == [1, 2, 3] and rows[0]["perf/sps"] == rows[1]["perf/sps"]
    assert rows[0]["charts/return_red"] != rows[1]["charts/return_red"]  # two seeds, two episodes
    assert any(k.startswith("losses/") for r in rows for k in r)
    assert all(math.isfinite(r["charts/entropy"]) for r in rows)


@pytest.mark.parametrize("conf,algo,copies", [("firefighter", "bmf_q", ["train.envs=1"]),
                                               ("battle", "mfq", ["train.envs=3"]),
                                               ("firefighter", "bmf_q", ["train.envs=3", "train.worker=true"])])
def test_resume_equals_uninterrupted(tmp_path, monkeypatch, conf, algo, copies):
    """Interrupted in a round and resumed from the last checkpoint, a run writes the same rows
    as without the interruption; with copies, a round of 3 episodes, then 3, then the last 1."""
    per_round = int(copies[0].split("=")[1])
    args = ["train.episodes=7", f"train.save_every={per_round}", *copies]
    full = read_metrics(train(tiny(tmp_path / "a", conf, algo, *args)))

    run_dir = interrupted_run(tmp_path / "b", monkeypatch, per_round, tiny(tmp_path / "b", conf, algo, *args))
    assert len(read_metrics(run_dir)) == per_round
    resumed = read_metrics(train(load_config([f"resume={run_dir}"])))

    assert [r["episode"] for r in resumed] == [r["episode"] for r in full] == list(range(1, 8))
    assert any(k.startswith("losses/") for k in full[-1])
    for a, b in zip(full, resumed):
        assert {k: v for k, v in a.items() if not k.startswith("perf/")} == \
               {k: v for k, v in b.items() if not k.startswith("perf/")}


def test_the_run_state_waits_for_state_minutes_and_a_resume_repeats_what_followed(tmp_path, monkeypatch):
    """With ``train.state_minutes`` a checkpoint writes the model files but ``last.pt`` only once
    that many minutes passed since its last write; a resume from that older state cuts the later
    rows and plays them again, the same as the uninterrupted run."""
    import bmf_graph.training.trainer as trainer_module

    clock = {"now": 0.0}
    monkeypatch.setattr(trainer_module.time, "monotonic", lambda: clock["now"])
    writes = []
    original_save = trainer_module.atomic_save

    def recording_save(state, path):
        writes.append(state["episode"])
        clock["now"] += 40.0  # a write takes 40 s of the fake clock
        return original_save(state, path)

    original_round = trainer_module.Trainer.run_round

    def play(self, explore):
        clock["now"] += 30.0  # one episode a round: 30 s each
        return original_round(self, explore)

    monkeypatch.setattr(trainer_module, "atomic_save", recording_save)
    monkeypatch.setattr(trainer_module.Trainer, "run_round", play)
    args = ["train.episodes=6", "train.save_every=1", "train.envs=1", "train.state_minutes=1"]
    run_dir = train(tiny(tmp_path / "a", "firefighter", "mfq", *args))
    # 30 s per episode, 40 s per write: due at episode 2 (60 s), then 4 (60 s after the write), end
    assert writes == [2, 4, 6]
    assert len(list((run_dir / "checkpoints").glob("model_ep*.safetensors"))) == 6

    writes.clear()
    stopped = interrupted_run(tmp_path / "b", monkeypatch, 5, tiny(tmp_path / "b", "firefighter", "mfq", *args))
    assert writes == [2, 4] and len(read_metrics(stopped)) == 5
    monkeypatch.setattr(trainer_module, "atomic_save", original_save)
    monkeypatch.setattr(trainer_module.Trainer, "run_round", original_round)
    resumed = read_metrics(train(load_config([f"resume={stopped}"])))
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]
    assert [r["episode"] for r in resumed] == list(range(1, 7))
    assert strip(resumed) == strip(read_metrics(run_dir))


def test_copies_give_one_row_per_episode(tmp_path):
    """Each copy's episode is a row, counted as an episode; env_steps adds up each episode's
    steps as when the episodes are played one by one."""
    fast = [*TINY["battle"], *FAST, "algo.learning_starts=1000", "train.progress=false"]
    rows = {}
    for envs in (1, 4):
        cfg = load_config(["conf=battle", "algo=mfq", f"runs_dir={tmp_path / str(envs)}", *fast,
                           "train.episodes=4", f"train.envs={envs}", "env.kwargs.max_steps=6"])
        rows[envs] = read_metrics(train(cfg))
    one, four = rows[1], rows[4]
    assert [r["episode"] for r in four] == [1, 2, 3, 4]
    assert [r["env_steps"] for r in four] == [6, 12, 18, 24] == [r["env_steps"] for r in one]
    assert len({r["perf/sps"] for r in four}) == 1  # one round


def test_train_copies_config_errors():
    with pytest.raises(ConfigError, match="train.envs=0 is not valid"):
        load_config(["train.envs=0"])
    with pytest.raises(ConfigError, match="train.worker=true needs train.envs >= 2"):
        load_config(["train.worker=true", "train.envs=1"])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from bmf_graph.envs.firefighter import FirefighterBatchedEnv

    original_reset, original_step = FirefighterBatchedEnv.reset, FirefighterBatchedEnv.step
    resets = {"n": 0}

    def counting_reset(self, seed=None):
        resets["n"] += 1
        return original_reset(self, seed=seed)

    def poisoned_step(self, actions):
        steps, term, trunc, info = original_step(self, actions)
        if resets["n"] >= 3:  # from the third episode on
            steps[0].reward[:] = float("nan")
        return steps, term, trunc, info

    monkeypatch.setattr(FirefighterBatchedEnv, "reset", counting_reset)
    monkeypatch.setattr(FirefighterBatchedEnv, "step", poisoned_step)
    # evaluation episodes reset the env too: evaluate only at the end, which the run never reaches
    cfg = tiny(tmp_path, "firefighter", "mfq", "train.episodes=5", "train.save_every=1", "train.eval_every=5",
               "env.kwargs.max_steps=15", "algo.learning_starts=1", "algo.update_every=1")
    with pytest.raises(NonFiniteLoss, match="the reward of team 'firefighter' is not finite"):
        train(cfg)
    run_dir = next(tmp_path.iterdir())
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert state["episode"] == 2
    assert all(torch.isfinite(v).all() for k, v in state["learners"][0]["weights"].items() if v.is_floating_point())
    assert not (run_dir / "checkpoints" / "model_final.safetensors").exists()


def test_existing_run_folder_is_never_overwritten(tmp_path):
    cfg = tiny(tmp_path, "firefighter", "q", "train.episodes=1", "run_name=same")
    run_dir = train(cfg)
    before = (run_dir / "metrics.csv").read_text()
    with pytest.raises(FileExistsError, match="already exists"):
        train(cfg)
    assert (run_dir / "metrics.csv").read_text() == before


def test_train_py_command_line(tmp_path):
    result = subprocess.run([sys.executable, "train.py", "conf=firefighter", "algo=mfq", f"runs_dir={tmp_path}",
                             *TINY["firefighter"], *FAST, "train.episodes=1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.split("run folder:")[-1].split("\n")[0].strip())
    assert len(read_metrics(run_dir)) == 1 and f"bmf-train resume={run_dir}" in result.stdout
    bad = subprocess.run([sys.executable, "train.py", "algo=sarsa"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "algo.name='sarsa' is not valid" in bad.stderr
