"""Damaged run files, full disks, memory limits and odd values, each through the command a user
runs: the exit status, one error line naming the file or key, and nothing changed on disk.

Only the entry points are imported (``train.py``, ``bmf_graph.experiments.plot``, ``bmf_graph.experiments.results``,
``bmf_graph.experiments.evaluate``), so this file also runs against earlier versions, where these cases
failed."""
import os
import pickle
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train as entry
from tiny_runs import FAST, TINY, interrupted_run

ROOT = Path(__file__).resolve().parents[2]
CODE = Path(entry.__file__).resolve().parent  # the checkout under test (subprocesses run its code)
ENV = {**os.environ, "PYTHONPATH": str(CODE)}
TINY_FF = ["conf=firefighter", "algo=q", *TINY["firefighter"], *FAST]


def snapshot(folder):
    """Every file's bytes (the lock file, which holds the last holder's pid, aside)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and p.name != ".lock"}


def one_line(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err
    return err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 6-episode run (checkpoints after episodes 2, 4 and 6)."""
    runs = tmp_path_factory.mktemp("finished")
    assert entry.main([*TINY_FF, f"runs_dir={runs}", "run_name=r6", "train.episodes=6", "train.save_every=2"]) == 0
    return runs / "r6"


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run to damage."""
    return Path(shutil.copytree(finished, tmp_path / "r6"))


def metrics_lines(run):
    return (run / "metrics.csv").read_text().splitlines(keepends=True)


def refused_resume(run, capsys, *words):
    before = snapshot(run)
    assert entry.main([f"resume={run}", "train.episodes=8"]) != 0
    one_line(capsys, *words)
    assert snapshot(run) == before


# ------------------------------------------------------------------ resume verifies first
def test_a_duplicated_row_is_refused_before_anything_is_written(run, capsys):
    lines = metrics_lines(run)
    (run / "metrics.csv").write_text("".join(lines[:4] + lines[3:]))  # sed -i '4p'
    refused_resume(run, capsys, "metrics.csv line 5 has episode 3 where 4 was expected")


def test_a_negative_checkpoint_counter_is_refused(run, capsys):
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["episode"] = -3
    torch.save(state, last)
    refused_resume(run, capsys, "last.pt has the counter episode=-3; expected an integer >= 0")


def test_a_counter_beyond_the_planned_episodes_is_refused(run, capsys):
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["episode"] = 1000
    torch.save(state, last)
    refused_resume(run, capsys, "last.pt has the counter episode=1000", "plans 6 episodes")


@pytest.mark.parametrize("damage, words", [
    (lambda lines: lines[:2] + lines[5:], ["metrics.csv holds 3 rows but the checkpoint is at episode 6"]),
    (lambda lines: [], ["metrics.csv is empty"]),
    (lambda lines: [line.split(",", 1)[1] for line in lines], ["metrics.csv has no 'episode' column"]),
    (lambda lines: lines[:3] + ["garbage,row\n"] + lines[3:], ["metrics.csv line 4 is not a valid row",
                                                                "2 fields"]),
    (lambda lines: lines[:3] + ["5,500\n"] + lines[3:], ["metrics.csv line 4 is not a valid row"]),
    (lambda lines: lines[:3] + [lines[3].replace(lines[3].split(",")[2], "abc", 1)] + lines[4:],
     ["metrics.csv line 4 is not a valid row", "'abc' is not a number"]),
], ids=["rows-lost", "empty", "no-episode-column", "junk-row", "short-row", "non-number"])
def test_a_damaged_metrics_file_is_one_line_and_config_yaml_keeps_its_episodes(run, capsys, damage, words):
    (run / "metrics.csv").write_text("".join(damage(metrics_lines(run))))
    refused_resume(run, capsys, *words)
    assert "episodes: 6\n" in (run / "config.yaml").read_text()


def test_half_a_row_after_the_checkpoint_is_cut_by_the_resume(run, capsys):
    """A kill while a row past the last checkpoint was being appended leaves half a line; the
    resume cuts it with the other rows past the checkpoint and continues."""
    (run / "metrics.csv").write_text("".join(metrics_lines(run)) + "7,7")
    assert entry.main([f"resume={run}", "train.episodes=8"]) == 0
    episodes = [line.split(",")[0] for line in metrics_lines(run)[1:]]
    assert episodes == [str(e) for e in range(1, 9)]


# ------------------------------------------------------------------ readers
@pytest.mark.parametrize("text", ["garbage,row\n", "5,500\n", ""], ids=["junk-row", "short-row", "empty"])
def test_plot_and_results_refuse_a_damaged_metrics_file_in_one_line(run, tmp_path, capsys, text):
    from bmf_graph.cli import plot as plot_cli, results as results_cli

    lines = metrics_lines(run)
    (run / "metrics.csv").write_text("".join(lines[:3] + [text] + lines[3:]) if text else "")
    with pytest.raises(SystemExit) as exit_:
        plot_cli.main(["curves", str(run), "--out", str(tmp_path / "c.png")])
    assert exit_.value.code == 2 and not (tmp_path / "c.png").exists()
    assert "metrics.csv" in capsys.readouterr().err.strip().splitlines()[-1]
    seed = tmp_path / "results" / "firefighter" / "q" / "seed0"
    shutil.copytree(run, seed)
    with pytest.raises(SystemExit) as exit_:
        results_cli.main(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "R.md"), "--no-figures"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err and "metrics.csv" in err.strip().splitlines()[-1]
    assert not (tmp_path / "R.md").exists()


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _model_cases(run, tmp_path):
    good = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # any torch file, for its bytes
    cases = {"hello": (b"hello\n", "wrong format"),
             "payload": (pickle.dumps({"x": Payload(tmp_path / "ran")}), "payload refused")}
    path = tmp_path / "good.pt"
    torch.save({"spec": {}, "radius": 1.0, "state_dict": {}}, path)
    cases["no-algo"] = (path.read_bytes(), "missing key 'algo'")
    torch.save(good["episode"], path)
    flipped = bytearray((run / "checkpoints" / "last.pt").read_bytes())
    for i in range(0, 64, 3):
        flipped[i] ^= 0xFF
    cases["flipped"] = (bytes(flipped), "wrong format")
    cases["truncated"] = ((run / "checkpoints" / "last.pt").read_bytes()[:5000], "truncated or corrupt")
    return cases


@pytest.mark.parametrize("case", ["hello", "payload", "no-algo", "flipped", "truncated"])
def test_evaluate_names_the_cause_of_a_bad_model_file(run, tmp_path, capsys, case):
    from bmf_graph.cli import evaluation

    data, cause = _model_cases(run, tmp_path)[case]
    bad = tmp_path / "t.pt"
    bad.write_bytes(data)
    with pytest.raises(SystemExit) as exit_:
        evaluation.main(["returns", str(bad), "--env", "firefighter", "--episodes", "1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "t.pt" in err.splitlines()[-1] and cause in err.splitlines()[-1]
    assert not (tmp_path / "ran").exists()


def test_a_damaged_safetensors_model_is_one_line(run, tmp_path, capsys):
    from bmf_graph.cli import evaluation

    weights = run / "checkpoints" / "model_final.safetensors"
    for damage, cause in ((lambda b: b[: len(b) // 2], "truncated or corrupt"), (lambda b: b"hello\n", "wrong format")):
        bad = tmp_path / "m.safetensors"
        bad.write_bytes(damage(weights.read_bytes()))
        shutil.copy(weights.with_suffix(".json"), bad.with_suffix(".json"))
        with pytest.raises(SystemExit) as exit_:
            evaluation.main(["returns", str(bad), "--env", "firefighter", "--episodes", "1"])
        assert exit_.value.code == 2 and cause in capsys.readouterr().err.splitlines()[-1]


def test_results_pictures_with_a_payload_model_is_one_line(run, tmp_path, capsys):
    from bmf_graph.cli import results as results_cli

    seed = tmp_path / "results" / "battle" / "bmf_q" / "seed0"
    shutil.copytree(run, seed)
    for path in (seed / "checkpoints").glob("model_final.*"):
        path.unlink()
    (seed / "checkpoints" / "model_final.pt").write_bytes(pickle.dumps({"x": Payload(tmp_path / "ran")}))
    with pytest.raises(SystemExit) as exit_:
        results_cli.main(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "R.md"), "--pictures"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err and "payload refused" in err.splitlines()[-1]
    assert not (tmp_path / "ran").exists() and not (tmp_path / "R.md").exists()


# ------------------------------------------------------------------ disk and memory
FILE_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from train import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_file_size_limit_at_a_checkpoint_is_the_disk_full_line_and_keeps_the_last_one(tmp_path):
    """Under ``ulimit -f`` the first checkpoint fits and the second's replay does not: torch.save
    fails inside its zip writer, and the error is still the one DiskFull line."""
    args = [*TINY_FF, "run_name=r", "train.episodes=4", "train.save_every=2"]
    sizes = []
    for episodes in (2, 4):  # last.pt after 2 and after 4 episodes (the replay grows with them)
        assert entry.main([*args, f"runs_dir={tmp_path / str(episodes)}", f"train.episodes={episodes}"]) == 0
        sizes.append((tmp_path / str(episodes) / "r" / "checkpoints" / "last.pt").stat().st_size)
    assert sizes[0] < sizes[1]
    done = subprocess.run([sys.executable, "-c", FILE_LIMIT, str(sum(sizes) // 2), *args, f"runs_dir={tmp_path}"],
                          cwd=CODE, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and "the file-size limit (ulimit -f) was reached while writing" in err, err
    assert torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)["episode"] == 2
    assert (tmp_path / "r" / "checkpoints" / "last.pt").stat().st_size == sizes[0]
    assert not list((tmp_path / "r").rglob(".*.tmp"))


def test_a_torch_save_that_hits_a_full_disk_is_disk_full(tmp_path):
    code = ("import resource, sys, torch; from bmf_graph.training.checkpoint import atomic_save; "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000)); "
            f"atomic_save({{'x': torch.zeros(10**6)}}, {str(tmp_path / 'big.pt')!r})")
    done = subprocess.run([sys.executable, "-c", code], cwd=CODE, env=ENV, capture_output=True, text=True, timeout=300)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("bmf_graph.files.DiskFull: [Errno 27] the file-size limit (ulimit -f) was reached"), last
    assert list(tmp_path.iterdir()) == []


ADDRESS_LIMIT = """
import resource, sys
import torch  # the address space a run starts with
used = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (used + 2**30, resource.RLIM_INFINITY))
from train import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_memory_check_respects_the_address_space_limit(tmp_path):
    """``ulimit -v`` a GB above what Python and torch take: Battle on map 300 is refused before
    its folder exists, naming the limit, instead of failing in the replay."""
    done = subprocess.run([sys.executable, "-c", ADDRESS_LIMIT, "conf=battle", "threads=1", "env.kwargs.map_size=300",
                           f"runs_dir={tmp_path / 'runs'}"], cwd=CODE, env=ENV, capture_output=True, text=True,
                          timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, err
    assert "the address-space limit (ulimit -v) leaves" in err and not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ values and paths
@pytest.mark.parametrize("args, words", [
    (["algo.network=mlp", "algo.hidden=100000000"], ["algo.hidden=100000000"]),  # mlp: hidden sizes the critic
    (["threads=100000"], ["threads=100000 is not valid"]),
    (["seed=4294967296"], ["seed=4294967296 is not valid; expected an integer in [0, 2**32)"]),
    (["env.kwargs.num_firefighters=100000000"], ["env.kwargs.num_firefighters=100000000 places 100,000,000 agents"]),
    (["algo=bmf_q", "algo.num_groups=1000000"], ["algo.num_groups=1000000 exceeds the 12 agents"]),
    (["runs_dir=/proc/x"], ["runs_dir='/proc/x' is not valid"]),
    (["runs_dir=bmf_graph"], ["runs_dir='bmf_graph' is not valid: it is inside the installed bmf_graph package"]),
], ids=["hidden", "threads", "seed", "agents", "groups", "runs_dir-proc", "runs_dir-package"])
def test_too_large_or_odd_values_fail_before_the_run_folder_exists(tmp_path, capsys, monkeypatch, args, words):
    monkeypatch.chdir(CODE)
    runs = [a for a in args if a.startswith("runs_dir=")] or [f"runs_dir={tmp_path / 'runs'}"]
    inside = CODE / "bmf_graph" / "odd"
    assert not inside.exists()
    try:
        assert entry.main([*TINY_FF, *runs, *args, "run_name=odd"]) == 2
        one_line(capsys, *words)
        assert not (tmp_path / "runs").exists() and not inside.exists()
    finally:
        shutil.rmtree(inside, ignore_errors=True)  # a version that wrote a run into the package


def test_battle_map_too_large_names_map_size(tmp_path, capsys):
    assert entry.main(["conf=battle", "algo=q", *FAST, f"runs_dir={tmp_path / 'runs'}", "env.kwargs.map_size=100000",
                       "env.kwargs.agents_per_team=null"]) == 2
    one_line(capsys, "env.kwargs.map_size=100000 places")
    assert not (tmp_path / "runs").exists()


def test_runs_dir_that_is_a_file_or_read_only_names_the_key(tmp_path, capsys):
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0\n")
    assert entry.main([*TINY_FF, f"runs_dir={a_file}"]) == 2
    one_line(capsys, f"runs_dir='{a_file}' is not valid", "is a file")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        if os.access(read_only, os.W_OK):  # root writes anyway: a read-only file system stands in
            read_only = Path("/sys/fs/bmf_graph_runs")
        assert entry.main([*TINY_FF, f"runs_dir={read_only}"]) == 2
        one_line(capsys, f"runs_dir='{read_only}' is not valid")
        assert not read_only.exists() or not any(read_only.iterdir())
    finally:
        (tmp_path / "ro").chmod(0o755)


# ------------------------------------------------------------------ stuck runs
def test_a_run_stopped_before_its_first_checkpoint_restarts_in_place(tmp_path, capsys, monkeypatch):
    from bmf_graph.config import load_config

    run = interrupted_run(tmp_path, monkeypatch, 2, load_config([*TINY_FF, f"runs_dir={tmp_path}", "run_name=stuck",
                                                                 "train.episodes=3", "train.save_every=25"]))
    assert not (run / "checkpoints" / "last.pt").exists() and len(metrics_lines(run)) == 3
    assert entry.main([f"resume={run}"]) == 0
    assert "no checkpoint yet (checkpoints/last.pt); restarting the run from episode 1 in place" in capsys.readouterr().err
    assert [line.split(",")[0] for line in metrics_lines(run)[1:]] == ["1", "2", "3"]


def test_a_run_stopped_by_nan_before_its_first_checkpoint_is_not_stuck(tmp_path, capsys):
    args = [*TINY_FF, f"runs_dir={tmp_path}", "run_name=nan", "train.episodes=3", "train.save_every=25",
            "algo.lr=1e30", "algo.learning_starts=1", "algo.update_every=1"]
    assert entry.main(args) == 1
    one_line(capsys, "no checkpoint was written before")
    assert entry.main([f"resume={tmp_path / 'nan'}"]) == 1  # it restarts, and the same lr stops it again
    err = capsys.readouterr().err
    assert "restarting the run from episode 1 in place" in err and "already exists" not in err


def test_overwrite_replaces_a_run_folder_and_only_a_run_folder(finished, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(finished, runs / "r6")
    assert entry.main([*TINY_FF, f"runs_dir={runs}", "run_name=r6", "train.episodes=2"]) == 1
    one_line(capsys, "already exists", "overwrite=true")
    assert entry.main([*TINY_FF, f"runs_dir={runs}", "run_name=r6", "train.episodes=2", "overwrite=true"]) == 0
    assert [line.split(",")[0] for line in metrics_lines(runs / "r6")[1:]] == ["1", "2"]
    assert not (runs / "r6" / "checkpoints" / "model_ep000006.safetensors").exists()
    (runs / "other").mkdir()
    (runs / "other" / "notes.txt").write_text("mine")
    assert entry.main([*TINY_FF, f"runs_dir={runs}", "run_name=other", "overwrite=true"]) == 2
    one_line(capsys, "which is not a run folder")
    assert (runs / "other" / "notes.txt").read_text() == "mine"


def test_a_duplicated_eval_row_is_refused_before_anything_is_written(run, capsys):
    """eval.csv numbers its evaluations 1, 2, ... as last.pt counts them (``evaluations``)."""
    lines = (run / "eval.csv").read_text().splitlines(keepends=True)
    assert len(lines) >= 2 and lines[1].startswith("1,")
    (run / "eval.csv").write_text("".join(lines[:2] + lines[1:]))
    refused_resume(run, capsys, "eval.csv line 3 has evaluation 1 where 2 was expected")


def test_an_eval_file_with_rows_lost_is_refused(run, capsys):
    lines = (run / "eval.csv").read_text().splitlines(keepends=True)
    (run / "eval.csv").write_text(lines[0])
    refused_resume(run, capsys, "eval.csv holds 0 rows but the checkpoint is at evaluation")
