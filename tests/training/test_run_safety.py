"""Run folders under stress: a real kill at the metrics rewrite, a second process on a locked
folder, temporary files left by kills."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bmf_graph.config import load_config
from bmf_graph.training.logging import read_metrics
from bmf_graph.training.runlock import RunLock, RunLocked, holder, refuse_locked_resume
from bmf_graph.training.trainer import Trainer, train
from tiny_runs import FAST, TINY, interrupted_run

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def tiny(runs_dir, *extra):
    return load_config(["conf=firefighter", "algo=q", f"runs_dir={runs_dir}", *TINY["firefighter"], *FAST, *extra])


KILL_AT_REPLACE = """
import os, signal, sys
import bmf_graph.files
from train import main
os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # SIGKILL at the first rename
main(sys.argv[1:])
"""


def test_kill_at_the_metrics_rewrite_loses_no_row(tmp_path, monkeypatch):
    """Killed (SIGKILL) at the rename of the resume's metrics rewrite: the old metrics.csv is
    whole; the next resume removes the orphaned temporary file and ends like an uninterrupted run."""
    args = ["train.episodes=5", "train.save_every=2"]
    full = read_metrics(train(tiny(tmp_path / "full", *args)))
    # 3 rows, last.pt at episode 2
    run_dir = interrupted_run(tmp_path / "cut", monkeypatch, 3, tiny(tmp_path / "cut", *args))
    before = (run_dir / "metrics.csv").read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILL_AT_REPLACE, f"resume={run_dir}"], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert (run_dir / "metrics.csv").read_bytes() == before
    assert [p.name for p in run_dir.glob(".metrics.csv.*.tmp")], "the kill did not hit the rewrite"
    resumed = read_metrics(train(load_config([f"resume={run_dir}"])))
    assert [r["episode"] for r in resumed] == [1, 2, 3, 4, 5]
    assert [r["charts/return"] for r in resumed] == [r["charts/return"] for r in full]
    assert not list(run_dir.rglob(".*.tmp"))


def test_second_process_on_a_locked_folder_is_refused(tmp_path, monkeypatch):
    """While this process holds a run folder (as a live training run does), ``train.py
    resume=RUN`` in another process stops at once with one line naming the holder's pid and
    writes nothing; once the holder is gone, resuming works."""
    run_dir = interrupted_run(tmp_path, monkeypatch, 2, tiny(tmp_path, "train.episodes=4", "train.save_every=2"))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    with RunLock(run_dir):
        refused = subprocess.run([sys.executable, "train.py", f"resume={run_dir}"], cwd=ROOT, env=ENV,
                                 capture_output=True, text=True, timeout=300)
        with pytest.raises(RunLocked, match=f"in use by process {os.getpid()}"):
            train(load_config([f"resume={run_dir}"]))
        with pytest.raises(RunLocked, match=f"in use by process {os.getpid()}"):  # train.py's check before imports
            refuse_locked_resume(["algo=q", f"resume={run_dir}"])
    refuse_locked_resume([f"resume={run_dir}"])  # free again
    assert refused.returncode == 1
    assert refused.stderr.strip() == (f"error: run folder {run_dir} is in use by process {os.getpid()} (training, "
                                      f"resuming or a sweep); wait for it to end or stop it first")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"} == before
    assert [r["episode"] for r in read_metrics(train(load_config([f"resume={run_dir}"])))] == [1, 2, 3, 4]


def test_lock_goes_with_its_process(tmp_path):
    """A process killed with SIGKILL while holding the lock leaves a lock file but no lock."""
    holding = subprocess.Popen([sys.executable, "-c", "import sys, time; from bmf_graph.training.runlock import RunLock; "
                                f"RunLock({str(tmp_path)!r}); print('locked', flush=True); time.sleep(600)"],
                               cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    assert holding.stdout.readline().strip() == "locked"
    assert holder(tmp_path) == str(holding.pid)
    holding.kill()
    holding.wait()
    assert (tmp_path / ".lock").is_file() and holder(tmp_path) is None
    with RunLock(tmp_path):
        assert holder(tmp_path) == str(os.getpid())


WITHOUT_FCNTL = """
import os, sys
sys.modules["fcntl"] = None  # as on Windows: `import fcntl` fails
from bmf_graph.cli.train import main
print(os.getpid())
from bmf_graph.training.runlock import RunLock, RunLocked
with RunLock(sys.argv[1]):
    try:
        RunLock(sys.argv[1])
    except RunLocked as error:
        print(error)
sys.exit(main(["--help"]))
"""


def test_training_command_imports_without_fcntl(tmp_path):
    """The training command and its run lock work where ``fcntl`` does not exist (Windows): the
    help prints, and a second lock on a held folder is refused with the usual line."""
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", WITHOUT_FCNTL, str(tmp_path)], cwd=tmp_path,
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    pid, refused = result.stdout.splitlines()[:2]
    assert refused == (f"run folder {tmp_path} is in use by process {pid} "
                       f"(training, resuming or a sweep); wait for it to end or stop it first")
    assert "env.radius=" in result.stdout
