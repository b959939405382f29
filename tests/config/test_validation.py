"""Every bad value stops the run before its folder exists, in one line naming the key, the value
and what was expected; paths stay under runs_dir; resume takes only what keeps it one run."""

import pytest

from bmf_graph.config import load_config
from bmf_graph.config.checks import ConfigError
from bmf_graph.training.logging import read_metrics
from bmf_graph.training.trainer import train
from tiny_runs import FAST, TINY, interrupted_run


def start(runs_dir, *args, conf="firefighter"):
    """load_config + train of a tiny run with ``args`` on top."""
    return train(load_config([f"conf={conf}", "algo=q", f"runs_dir={runs_dir}", *TINY[conf], *FAST, *args]))


BAD = [
    (["algo.max_grad_norm=-10"], r"algo.max_grad_norm=-10.0 is not valid; expected a positive number"),
    (["algo.max_grad_norm=0"], r"algo.max_grad_norm=0.0 is not valid; expected a positive number"),
    (["threads=-3"], r"threads=-3 is not valid; expected 0 \(torch's default\) or 1\.\.\d+"),
    (["algo.learning_starts=-5"], r"algo.learning_starts=-5 is not valid; expected a non-negative number"),
    (["algo.entropy_coef=-1"], r"algo.entropy_coef=-1.0 is not valid; expected a non-negative number"),
    (["algo.entropy_coef_start=-2"], r"algo.entropy_coef_start=-2.0 is not valid; expected a non-negative number"),
    (["algo.value_coef=-1"], r"algo.value_coef=-1.0 is not valid; expected a non-negative number"),
    (["opponent.tau=5"], r"opponent.tau=5.0 is not valid; expected a number in \[0, 1\]"),
    (["algo.lr=nan"], r"algo.lr=nan is not valid; expected a finite number"),
    (["algo.gamma=inf"], r"algo.gamma=inf is not valid; expected a finite number"),
    (["algo.beta=-1"], r"algo.beta=-1.0 is not valid; expected a non-negative number"),
    (["train.state_minutes=-1"], r"train.state_minutes=-1.0 is not valid; expected a non-negative number"),
    (["train.state_minutes=inf"], r"train.state_minutes=inf is not valid; expected a finite number"),
    (["algo.buffer_size=1"], r"algo.buffer_size=1 is not valid; expected at least 2"),
    (["seed=-1"], r"seed=-1 is not valid; expected an integer in \[0, 2\*\*32\)"),
    (["train.episodes=abc"], r"train.episodes='abc' is not valid: Value 'abc' of type 'str' could not be converted"),
    (["env.learn_teams=[0,0]"], r"env.learn_teams=\[0, 0\] is not valid; expected distinct team indices"),
    (["algo.batch_steps=100000"], r"algo.batch_steps=100000 exceeds the 64 team records that algo.buffer_size=768 "
                                  r"holds at 12 agents"),
    (["env.learn_teams=[1]"], r"env.learn_teams=\[1\] is not valid; expected indices in 0..0"),
    (["conf=/abs/conf/battle"], r"conf='/abs/conf/battle' is not valid; expected the name of a shipped task file"),
    (["conf=../x"], r"conf='../x' is not valid; expected the name of a shipped task file"),
    (["run_name=../x"], r"run_name='../x' is not valid; expected a folder name inside runs_dir"),
    (["run_name=/tmp/x"], r"run_name='/tmp/x' is not valid; expected a folder name inside runs_dir"),
    (["run_name=a/../../x"], r"run_name='a/../../x' is not valid"),
    (["resume="], r"resume='' is not valid; expected a run folder"),
]


@pytest.mark.parametrize("args, match", BAD, ids=[a[0] for a, _ in BAD])
def test_bad_values_fail_before_the_run_folder_exists(tmp_path, args, match):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match=match) as error:
        start(runs, *args)
    assert "\n" not in str(error.value) and not runs.exists()


@pytest.mark.parametrize("args, match", [
    (["env.kwargs.map_size=1000", "env.kwargs.agents_per_team=null", "algo.batch_steps=1", "train.envs=16",
      "train.episodes=16"], r"the run needs about \d+\.\d GB .* but this machine has"),
    (["env.kwargs.map_size=1000", "env.kwargs.agents_per_team=null"], r"algo.batch_steps=4 exceeds the 2 team records"),
    (["env.kwargs.map_size=20", "env.kwargs.agents_per_team=500"],
     r"env.kwargs.agents_per_team=500 does not fit on env.kwargs.map_size=20; expected 1..27"),
    (["env.kwargs.preset=x"], r"env.kwargs=.* is not valid for battle: .*preset"),
])
def test_task_limits_fail_before_anything_is_built(tmp_path, args, match):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match=match):
        start(runs, *args, conf="battle")
    assert not runs.exists()


def test_device_cuda_without_cuda_is_one_line(tmp_path, capsys):
    import torch

    import train as entry

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert entry.main(["device=cuda", f"runs_dir={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: device='cuda' is not available: torch sees no CUDA device on this machine; expected auto or cpu")
    assert not any(tmp_path.iterdir())


def test_nested_run_name_stays_under_runs_dir(tmp_path):
    run_dir = start(tmp_path / "runs", "run_name=group/seed0", "train.episodes=1")
    assert run_dir == tmp_path / "runs" / "group" / "seed0" and len(read_metrics(run_dir)) == 1


def test_a_task_file_given_by_path_names_its_run_by_its_stem(tmp_path):
    """conf=/abs/path/task.yaml (a task file of one's own) writes its run under runs_dir, never
    beside the file."""
    task = tmp_path / "elsewhere" / "my_task.yaml"
    task.parent.mkdir()
    task.write_text("env:\n  name: firefighter\n")
    run_dir = train(load_config([f"conf={task}", "algo=q", f"runs_dir={tmp_path / 'runs'}", *TINY["firefighter"],
                                 *FAST, "train.episodes=1"]))
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.startswith("my_task__q__0__")
    assert sorted(p.name for p in task.parent.iterdir()) == ["my_task.yaml"]


def test_resume_extends_with_more_episodes_and_refuses_other_changes(tmp_path, monkeypatch):
    cfg = load_config(["conf=firefighter", "algo=q", f"runs_dir={tmp_path}", *TINY["firefighter"], *FAST,
                       "train.episodes=3", "train.save_every=2"])
    run_dir = interrupted_run(tmp_path, monkeypatch, 2, cfg)
    with pytest.raises(ConfigError, match=r"keeps the run's own settings; algo.lr=0.5 differs from its config.yaml "
                                          r"\(0.0001\); only train.episodes, train.progress, train.state_minutes, "
                                          r"threads may change"):
        load_config([f"resume={run_dir}", "algo.lr=0.5"])
    # the state's write cadence is not a learning setting: a run saved without it resumes under a new one
    assert load_config([f"resume={run_dir}", "train.state_minutes=5"]).train.state_minutes == 5
    with pytest.raises(ConfigError, match=r"conf='battle' differs from its config.yaml \('firefighter'\)"):
        load_config([f"resume={run_dir}", "conf=battle"])
    with pytest.raises(ConfigError, match=r"train.episodes=1 is below the 2 episodes .* has done"):
        train(load_config([f"resume={run_dir}", "train.episodes=1"]))
    assert [r["episode"] for r in read_metrics(train(load_config([f"resume={run_dir}", "train.episodes=5"])))] == \
        [1, 2, 3, 4, 5]
    assert "episodes: 5" in (run_dir / "config.yaml").read_text()


def test_non_finite_env_rewards_hit_the_nan_stop(tmp_path):
    """env.kwargs.step_reward=nan: a clean stop naming the team, not a traceback from the grouping."""
    from bmf_graph.algos import NonFiniteLoss

    with pytest.raises(NonFiniteLoss, match=r"the reward of team 'red' is not finite at step 1"):
        train(load_config(["conf=battle", "algo=bmf_q", f"runs_dir={tmp_path}", *TINY["battle"], *FAST,
                           "env.kwargs.step_reward=nan", "train.episodes=2"]))
