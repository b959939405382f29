"""The README's shell commands run as written, on a fresh clone.

Every command of the README (its ``bash`` blocks, split at ``&&``, and the commands quoted in its
prose) is checked by what it calls: ``pip install`` names only extras pyproject.toml has; the
training commands give a valid configuration (the set-up one also trains, cut to a tiny run) and
``--help`` prints; the evaluate, plot, results and sweep commands parse with their own parsers; the
cheap ones (plots, ``evaluate returns``) run for real, in a folder holding ``runs/RUN``, a tiny run
of BMF-Q, once on Battle and once on Firefighter with episodes that end early. A command of an
unknown program fails the test, so a new README command must be classified here.
"""
import re
import shlex
import shutil
import tomllib
from pathlib import Path

import pytest

from bmf_graph.cli import plot as plot_cli, results as results_cli
from bmf_graph.cli import evaluation
from bmf_graph.cli import train as cli_train
from bmf_graph.config import load_config
from bmf_graph.experiments.sweep_grid import expand, parse_args
from bmf_graph.training.trainer import train
from tiny_runs import FAST, TINY

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PLACEHOLDERS = {"runs/NAME": "runs/RUN"}
"""Names the prose uses for the same run folder."""
BATTLE_ONLY = ("head-to-head", "zero-shot", "sides")
RUN_FOR_REAL = {"returns", "curves", "groups", "strip", "gif"}
"""Evaluate / plot subcommands cheap enough on a tiny run; the others only parse (they play
full-size Battle games, or need model files of older versions)."""


def readme_commands(text: str = README) -> list[str]:
    """Shell commands of the ``bash`` blocks (continuations joined, comments dropped, split at
    ``&&``) and of the prose's inline code starting with ``python``, ``pip`` or ``bmf-``."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            commands += [" ".join(part.split()) for part in line.split("&&") if part.strip()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    commands += [" ".join(m.split()) for m in re.findall(r"`((?:python |pip |bmf-)[^`]*)`", prose)]
    for old, new in PLACEHOLDERS.items():
        commands = [c.replace(old, new) for c in commands]
    return commands


COMMANDS = readme_commands()


def test_readme_commands_are_found():
    """The extraction itself: the set-up pair, the train, evaluate, plot and sweep examples."""
    assert COMMANDS[:3] == ['pip install -e ".[dev]"', "python train.py conf=firefighter", "python -m pytest -q"]
    programs = {tuple(shlex.split(c)[:3]) for c in COMMANDS}
    assert {"bmf-evaluate", "bmf-plot", "bmf-sweep", "bmf-results"} <= {p[0] for p in programs}
    assert sum(c.startswith("bmf-plot ") for c in COMMANDS) >= 4


def test_the_extraction_sees_a_broken_command():
    text = "```bash\nbmf-plot groups runs/RUN \\\n    --stepz 20 --out x/  # comment\n```\n"
    (command,) = readme_commands(text)
    assert command == "bmf-plot groups runs/RUN --stepz 20 --out x/"
    with pytest.raises(SystemExit):
        plot_cli.build_parser().parse_args(shlex.split(command)[3:])


@pytest.fixture(scope="module", params=["battle", "firefighter"])
def clone(request, tmp_path_factory):
    """A folder like a fresh clone (its tracked ``assets/``) holding ``runs/RUN``: a tiny BMF-Q
    run (Firefighter: the rules whose episodes end when the fires are out, 12 steps at most)."""
    root = tmp_path_factory.mktemp(f"clone_{request.param}")
    shutil.copytree(ROOT / "assets", root / "assets")
    ffg = ["env.kwargs.rules=ffg"] if request.param == "firefighter" else []
    train(load_config([f"conf={request.param}", f"runs_dir={root / 'runs'}", "run_name=RUN", "train.episodes=2",
                       *TINY[request.param], *FAST, *ffg]))
    return root, request.param


def check(command: str, task: str, root: Path, capsys, setup: bool = False) -> None:
    """Run or parse one README command (see the module doc); ``setup``: the set-up training job."""
    words = shlex.split(command)
    if words[0] == "pip":
        extras = re.findall(r"\[([\w,]+)\]", command)
        assert all(e in PYPROJECT["project"]["optional-dependencies"] for x in extras for e in x.split(",")), command
    elif words[:3] == ["python", "-m", "pytest"]:
        pass  # this suite
    elif words[0] in PYPROJECT["project"]["scripts"] and len(words) == 1:
        pass  # a bare entry point named in prose: declared in pyproject.toml
    elif words[:2] == ["python", "train.py"] or words[0] == "bmf-train":
        args = words[2:] if words[0] == "python" else words[1:]
        if "--help" in args:
            assert cli_train.main(args) == 0 and "algo.num_groups=" in capsys.readouterr().out
        else:
            load_config(args)
            if setup and task == "firefighter":  # the set-up job, cut to a tiny run
                assert cli_train.main(args + [f"runs_dir={root / 'setup'}", "train.episodes=2", *TINY[task],
                                              *FAST]) == 0
                assert "final return:" in capsys.readouterr().out
    elif words[0] in ("bmf-evaluate", "bmf-plot"):
        module = evaluation if words[0] == "bmf-evaluate" else plot_cli
        args = words[1:]
        if not args:
            return  # the module named in prose
        module.build_parser().parse_args(args)
        if args[0] in RUN_FOR_REAL and all(not a.endswith((".pt", ".safetensors")) or "runs/RUN" in a for a in args):
            if args[0] == "curves" or (task == "battle" or args[0] not in BATTLE_ONLY):
                module.main(args)
    elif words[0] == "bmf-results":
        results_cli.build_parser().parse_args(words[1:])  # it rewrites RESULTS.md: tests/experiments/test_results.py runs it
    elif words[0] == "bmf-sweep":
        axes, options = parse_args([w for w in words[1:] if w != "..."])
        assert expand(axes, options)  # every grid point validates
    else:
        pytest.fail(f"README command of an unknown program: {command}")


def test_readme_commands_run_as_written(clone, capsys, monkeypatch):
    root, task = clone
    monkeypatch.chdir(root)
    shutil.rmtree(root / "plots", ignore_errors=True)  # the plot commands write new files
    for index, command in enumerate(COMMANDS):
        check(command, task, root, capsys, setup=index == 1)
    assert {p.name for p in (root / "plots").iterdir()} >= {"learning_curves.png", "replay.gif", "group_strip.png"}
