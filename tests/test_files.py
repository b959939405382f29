"""Safe writes: temporary file + rename, the overwrite check at rename time, a full disk, and
the metrics log that a kill at any moment cannot empty."""
import errno
import os

import pytest

from bmf_graph import files
from bmf_graph.files import DiskFull, atomic_write, atomic_write_text, remove_temp_files
from bmf_graph.training.logging import RunLogger, read_metrics


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable as a plain open() would make it


def test_overwrite_check_happens_at_rename(tmp_path):
    """A file that appears while the new one is being written is kept."""
    path = tmp_path / "out.json"

    def write(f):
        path.write_text("theirs")  # another process creates the file meanwhile
        f.write(b"mine")

    with pytest.raises(FileExistsError, match="out.json exists"):
        atomic_write(path, write, overwrite=False)
    assert path.read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_disk_full_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    atomic_write_text(path, "old")

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(DiskFull, match=r"no space left on the device while writing .*config\.yaml"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_remove_temp_files(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    orphan = tmp_path / "checkpoints" / ".last.pt.abc123.tmp"
    orphan.write_bytes(b"x")
    keep = tmp_path / "checkpoints" / "last.pt"
    keep.write_bytes(b"y")
    assert remove_temp_files(tmp_path) == [orphan]
    assert keep.is_file() and not orphan.exists()


def _log(run, rows, keep_rows=None):
    logger = RunLogger(run, ["red"], keep_rows=keep_rows, tensorboard=False)
    for e in rows:
        logger.log({"episode": e, "env_steps": 10 * e, "charts/return": float(e)})
    logger.close()


def test_metrics_rows_are_appended_and_flushed(tmp_path):
    logger = RunLogger(tmp_path, ["red"], tensorboard=False)
    logger.log({"episode": 1, "env_steps": 10})
    assert [r["episode"] for r in read_metrics(tmp_path)] == [1]  # on disk before close
    logger.close()


def test_metrics_truncation_killed_at_the_rename_loses_no_row(tmp_path, monkeypatch):
    """The resume cut (to the checkpoint's episode) is a rewrite renamed over the file: a kill at
    the rename leaves the whole old file, and the next resume cuts it right."""
    _log(tmp_path, [1, 2, 3, 4, 5])
    before = (tmp_path / "metrics.csv").read_bytes()

    class Killed(BaseException):
        pass

    def killed(*_):
        raise Killed

    monkeypatch.setattr(files.os, "replace", killed)
    with pytest.raises(Killed):
        RunLogger(tmp_path, ["red"], keep_rows=3, tensorboard=False)
    assert (tmp_path / "metrics.csv").read_bytes() == before
    monkeypatch.undo()
    _log(tmp_path, [4], keep_rows=3)
    assert [r["episode"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_metrics_of_an_earlier_version_keep_their_header_on_resume(tmp_path):
    """A run whose file lacks newer columns resumes into the same header: their values go
    to TensorBoard only, and an unknown name is still refused."""
    from bmf_graph.training.logging import COLUMNS

    older = [c for c in COLUMNS if c != "charts/noise"] + ["charts/return_red"]
    (tmp_path / "metrics.csv").write_text(",".join(older) + "\n1,10,1.0" + "," * (len(older) - 3) + "\n")
    logger = RunLogger(tmp_path, ["red"], keep_rows=1, tensorboard=False)
    logger.log({"episode": 2, "env_steps": 20, "charts/return": 2.0, "charts/noise": 0.5})
    with pytest.raises(KeyError, match="unknown metrics"):
        logger.log({"episode": 3, "charts/typo": 1.0})
    logger.close()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == ",".join(older) and len(lines) == 3
    assert [r["charts/return"] for r in read_metrics(tmp_path)] == [1.0, 2.0]


def test_metrics_with_lost_rows_or_header_is_refused(tmp_path):
    _log(tmp_path, [1, 2])
    with pytest.raises(ValueError, match="holds 2 episode rows but the checkpoint is at episode 3"):
        RunLogger(tmp_path, ["red"], keep_rows=3, tensorboard=False)
    (tmp_path / "metrics.csv").write_text("")
    with pytest.raises(ValueError, match="metrics.csv does not start with the expected header"):
        RunLogger(tmp_path, ["red"], keep_rows=1, tensorboard=False)


def test_disk_full_during_training_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """ENOSPC at the second checkpoint: train.py prints one line naming the file, and last.pt of
    the first checkpoint is intact (resumable)."""
    import torch

    import train as entry
    from tiny_runs import FAST, TINY

    real, calls = files.os.fsync, []

    def fill_up(fd):
        calls.append(fd)
        if len(calls) > 6:  # config.yaml, metrics.csv, eval.csv, model_ep000001 (.json, .safetensors), last.pt
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(files.os, "fsync", fill_up)
    code = entry.main(["conf=firefighter", "algo=q", f"runs_dir={tmp_path}", *TINY["firefighter"], *FAST,
                       "train.episodes=4", "train.save_every=1"])
    assert code == 1
    run_dir = next(tmp_path.iterdir())
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["episode"] == 1
    assert not list(run_dir.rglob(".*.tmp"))


def test_disk_full_message_from_train_py(tmp_path, monkeypatch, capsys):
    import train as entry
    from tiny_runs import FAST, TINY

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    assert entry.main(["conf=firefighter", "algo=q", f"runs_dir={tmp_path}", *TINY["firefighter"], *FAST,
                       "train.episodes=1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: [Errno 28] no space left on the device while writing ") and "config.yaml" in err
