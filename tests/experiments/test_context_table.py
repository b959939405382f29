"""The context-shuffle table over a results folder: which runs it tests, its statistics over
seeds, and resuming without replaying a finished test."""
import json
from pathlib import Path

import pytest

from bmf_graph.config import load_config, to_yaml
from bmf_graph.experiments.context_table import context_models, context_table


def make_run(results: Path, task: str, label: str, seed: int, algo: str, model: bool = True) -> Path:
    run = results / task / label / f"seed{seed}"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(to_yaml(load_config([f"conf={task}", f"algo={algo}", f"seed={seed}"])))
    if model:
        (run / "checkpoints" / "model_final.safetensors").write_bytes(b"")
    return run


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    make_run(root, "battle", "mfq", 3, "mfq")
    make_run(root, "battle", "mfq", 4, "mfq")
    make_run(root, "battle", "mfq", 5, "mfq", model=False)  # unfinished: no final model
    make_run(root, "battle", "q", 3, "q")  # reads no context
    make_run(root, "battle", "bmf_q-k4", 3, "bmf_q")  # an ablation label of a context method
    return root


def fake_test(calls):
    def test(model, games, mode, copies):
        calls.append((Path(model).parts[-4:-2], mode, games))
        seed = int(Path(model).parts[-3][4:])
        return {"model": str(model), "env": "battle", "mode": mode, "part": "all", "games": games, "seed": 0,
                "changed_fraction": seed / 10 + (mode == "zero"), "dq_relative": 0.5,
                "kill_difference": {"mean": float(seed), "ci95": [0.0, 2.0 * seed]}, "win_rate": 0.5}
    return test


def test_only_finished_context_methods_are_tested(results):
    assert [(task, label, seed) for task, label, seed, _ in context_models(results, ["battle", "firefighter"])] == [
        ("battle", "bmf_q-k4", 3), ("battle", "mfq", 3), ("battle", "mfq", 4)]


def test_table_statistics_are_over_seeds_and_a_rerun_plays_nothing(results, tmp_path):
    calls = []
    out = tmp_path / "context.json"
    report = context_table(results, out, ["battle"], games=6, test=fake_test(calls))
    assert len(calls) == 3 * 2 and {c[2] for c in calls} == {6}
    rows = {(r["label"], r["mode"]): r for r in report["table"]}
    mfq = rows[("mfq", "permute")]
    assert mfq["seeds"] == [3, 4] and mfq["games"] == 6
    assert mfq["changed"] == pytest.approx([0.35, 0.05]) and mfq["kill_difference"] == pytest.approx([3.5, 0.5])
    assert rows[("mfq", "zero")]["changed"] == pytest.approx([1.35, 0.05])
    assert [t["seed"] for t in report["tests"] if t["label"] == "mfq"] == [3, 3, 4, 4]
    assert all(t["game_seed"] == 0 for t in report["tests"])
    assert json.loads(out.read_text()) == report
    again = context_table(results, out, ["battle"], games=6, test=fake_test(calls))
    assert len(calls) == 6 and again == report
    context_table(results, out, ["battle"], games=8, modes=["zero"], test=fake_test(calls))  # other games: new tests
    assert len(calls) == 9


def test_a_withdrawn_run_leaves_the_table_and_other_tasks_stay(results, tmp_path):
    out = tmp_path / "context.json"
    make_run(results, "firefighter", "mfq", 7, "mfq")
    context_table(results, out, ["battle", "firefighter"], games=6, episodes=2, test=fake_test([]))
    (results / "battle" / "mfq" / "seed4" / "checkpoints" / "model_final.safetensors").unlink()
    calls = []
    report = context_table(results, out, ["battle"], games=6, test=fake_test(calls))
    assert calls == []
    assert sorted({(t["task"], t["label"], t["seed"]) for t in report["tests"]}) == [
        ("battle", "bmf_q-k4", 3), ("battle", "mfq", 3), ("firefighter", "mfq", 7)]
    assert {r["label"]: r["seeds"] for r in report["table"] if r["task"] == "battle"} == {"bmf_q-k4": [3], "mfq": [3]}
