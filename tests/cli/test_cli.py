"""The commands: ``--help`` generated from the config dataclasses, task files by name or path,
the end-of-run summary, and the console entry points pyproject.toml declares."""
import dataclasses
import importlib
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bmf_graph import config
from bmf_graph.cli import settings as cli_settings
from bmf_graph.cli.train import main, run_summary, usage
from bmf_graph.training.evaluation import read_eval
from bmf_graph.config import CONF_DIR, load_config
from bmf_graph.config.checks import ConfigError
from bmf_graph.training.logging import final_mean, read_metrics
from tiny_runs import FAST, TINY, interrupted_run

ROOT = Path(__file__).resolve().parents[2]


def leaf_fields(values=None, prefix=""):
    """Every setting key of Config, walking its nested sections (the reference for --help)."""
    values = config.Config() if values is None else values
    for f in dataclasses.fields(values):
        value = getattr(values, f.name)
        yield from leaf_fields(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]


def test_help_lists_every_setting_with_its_doc_and_value(capsys):
    keys = list(leaf_fields())
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for key, value, doc in cli_settings.settings(load_config([])):
        assert doc, f"{key} has no docstring in config.py"
        first = doc.splitlines()[0].replace("``", "`")
        assert f"\n  {key}={cli_settings._show(value)}" in text and first in text, key
    assert sorted(k for k, _, _ in cli_settings.settings()) == sorted(keys)  # every field, none invented
    assert "  algo.num_groups=8    [default 4]" in text            # conf=firefighter's value over the default
    assert "  env.radius=inf" in usage(["conf=battle", "--help"])   # the values of the arguments given


def test_field_docs_read_the_string_under_each_field():
    @dataclasses.dataclass
    class Example:
        a: int = 1
        """Doc of a,
        on two lines."""
        b: int = 2
        c: str = "x"
        """Doc of c."""

    assert cli_settings.field_docs(Example) == {"a": "Doc of a,\non two lines.", "c": "Doc of c."}


def test_task_files_are_package_data_and_conf_takes_a_path(tmp_path, monkeypatch):
    assert CONF_DIR == ROOT / "conf"  # a checkout's top-level conf/ (tests/test_packaging.py: the wheel's)
    assert {"firefighter", "battle", "pursuit"} <= set(config.conf_names())
    monkeypatch.chdir(tmp_path)                                           # names work from any folder
    assert load_config(["conf=battle"]).env.name == "battle"
    own = tmp_path / "mine.yaml"
    own.write_text("env:\n  name: battle\nalgo:\n  num_groups: 3\n")
    cfg = load_config([f"conf={own}", "seed=2"])
    assert (cfg.conf, cfg.env.name, cfg.algo.num_groups, cfg.seed) == ("mine", "battle", 3, 2)
    with pytest.raises(ConfigError, match=r"conf='nope' has no file nope.yaml; expected one of battle, firefighter"):
        load_config(["conf=nope"])
    with pytest.raises(ConfigError, match=r"conf='missing.yaml' is not a file"):
        load_config(["conf=missing.yaml"])


def test_end_of_run_summary(tmp_path, capsys):
    args = ["conf=firefighter", "algo=q", f"runs_dir={tmp_path}", "run_name=r", *TINY["firefighter"], *FAST,
            "train.episodes=12", "train.envs=4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    run = tmp_path / "r"
    returns = [row["charts/return"] for row in read_metrics(run)]
    best = max(range(12), key=returns.__getitem__)
    assert f"run folder:   {run}\n" in out
    assert f"final return: {final_mean(returns):.2f} (training return, exploring: mean of the last 2 of 12 " \
           f"episodes)" in out
    last = read_eval(run)[-1]
    assert f"eval return:  {last['eval/return_greedy']:.2f} ± {last['eval/return_std_greedy']:.2f} (frozen policy, " \
           f"greedy, 10 evaluation episodes after episode 12)" in out
    assert f"best return:  {returns[best]:.2f} (episode {best + 1})" in out
    assert f"bmf-evaluate returns {run} " in out and f"bmf-plot curves {run} " in out
    assert f"bmf-train resume={run} " in out
    assert "episodes:     12 (" in out and " s\n" in out
    text = run_summary(run, 75.4)
    assert " in 1 min 15 s" in text and not math.isnan(final_mean(returns))
    assert main(args) == 1 and "already exists" in capsys.readouterr().err   # nothing overwritten
    assert "bmf-plot groups" not in out                                      # Q draws no groups


def test_summary_of_a_bmf_run_and_of_a_finished_resume(tmp_path, capsys, monkeypatch):
    """A BMF run's summary names ``bmf-plot groups``; resuming it once finished trains nothing,
    says so, and leaves its files as they were; an interrupted run resumed says nothing of the kind."""
    args = ["conf=firefighter", "algo=bmf_q", f"runs_dir={tmp_path}", "run_name=r", *TINY["firefighter"], *FAST,
            "train.episodes=3"]
    assert main(args) == 0
    run = tmp_path / "r"
    assert f"  bmf-plot groups {run} --step -1 --out {run / 'plots'}/" in capsys.readouterr().out
    metrics = (run / "metrics.csv").read_bytes()
    assert main([f"resume={run}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{run} had already finished its 3 episodes; nothing was trained ")
    assert (run / "metrics.csv").read_bytes() == metrics
    cut = interrupted_run(tmp_path / "cut", monkeypatch, 2, load_config([*args[:2], f"runs_dir={tmp_path / 'cut'}",
                                                                         *args[3:], "train.save_every=1"]))
    assert main([f"resume={cut}"]) == 0
    out = capsys.readouterr().out
    assert "already finished" not in out and "episodes:     3 (" in out


def test_console_entry_points_exist_and_return_exit_codes(monkeypatch, capsys):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) >= {"bmf-train", "bmf-evaluate", "bmf-plot", "bmf-sweep"}
    for name, target in scripts.items():
        module, func = target.split(":")
        entry = getattr(importlib.import_module(module), func)
        monkeypatch.setattr(sys, "argv", [name, "--help"])
        try:
            status = entry()
        except SystemExit as exit_info:  # argparse's --help
            status = exit_info.code
        assert status == 0, name
        text = capsys.readouterr().out
        assert ("usage" in text.lower()) if name not in ("bmf-train", "bmf-sweep") else "algo.num_groups=" in text


def test_train_py_help_from_any_folder(tmp_path):
    """``python train.py --help`` prints the settings; the root script only wraps the package."""
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "algo.num_groups=" in result.stdout and "Shipped task files" in result.stdout


def test_license_and_citation_files():
    """LICENSE is the MIT text pyproject.toml declares; CITATION.cff cites the library and the paper."""
    import yaml

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "bmf_graph authors" in license_text
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["version"] == project["version"] and cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    assert paper["title"] == "Bi-level Mean Field: Dynamic Grouping for Large-Scale MARL"
    assert [a["family-names"] for a in paper["authors"]] == ["Zheng", "Zhou", "Xu", "Song", "Liu"]
    assert paper["year"] == 2025 and "ECAI" in paper["conference"]["name"]
