"""Plots: learning curves from hand-written and trained runs, the learned group graph of tiny
BMF checkpoints, replay GIFs; every test checks the data drawn, not only the file."""
import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bmf_graph.experiments import group_graph, plot
from bmf_graph.cli import plot as plot_cli
from bmf_graph.config import AlgoConfig, Config, EnvConfig, load_config, to_yaml
from bmf_graph.training.logging import COLUMNS, read_metrics
from bmf_graph.training.trainer import train
from tiny_runs import FAST, TINY



@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs: ``runs[(conf, algo, seed)]`` -> run folder."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for conf, algo, seed in [("firefighter", "bmf_q", 0), ("firefighter", "bmf_q", 1), ("firefighter", "mfq", 0),
                             ("battle", "bmf_q", 0)]:
        # Firefighter with rules="ffg": its observed levels tell agents apart, so the group
        # tests below see several groups (under the paper's rules a greedy team whose houses
        # all burn sees identical flags, acts alike and may form a single group)
        ffg = ["env.kwargs.rules=ffg"] if conf == "firefighter" else []
        cfg = load_config([f"conf={conf}", f"algo={algo}", f"seed={seed}", f"runs_dir={root / conf}",
                           f"run_name={algo}_{seed}", "train.episodes=3", *TINY[conf], *FAST, *ffg])
        out[(conf, algo, seed)] = train(cfg)
    return out


def model(run_dir):
    return run_dir / "checkpoints" / "model_final.safetensors"


def fake_run(root, name, algo, returns, grouping="vae", k=4, steps=None, seed=0, lr=1e-3, conf="firefighter"):
    """A run folder with a config.yaml and a metrics.csv of known returns."""
    run = root / name
    run.mkdir(parents=True)
    cfg = Config(conf=conf, seed=seed, env=EnvConfig(name=conf),
                 algo=AlgoConfig(name=algo, grouping=grouping, num_groups=k, lr=lr))
    (run / "config.yaml").write_text(to_yaml(cfg))
    with (run / "metrics.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for e, ret in enumerate(returns):
            row = {"episode": e + 1, "env_steps": (steps or [10 * (e + 1) for e in range(len(returns))])[e],
                   "charts/return": ret}
            w.writerow([row.get(c, "") for c in COLUMNS])
    return run


# ----------------------------------------------------------------------- learning curves
def test_learning_curves_mean_and_std_over_seeds_per_algorithm(tmp_path):
    src = tmp_path / "runs"
    fake_run(src, "mfq_0", "mfq", [1, 2, 3])
    fake_run(src, "mfq_1", "mfq", [3, 4, 5, 9], seed=1)   # longer run: only shared episodes count
    fake_run(src, "bmf_0", "bmf_q", [0, 0, 6])
    fake_run(src, "bmf_rc_0", "bmf_q", [2, 2, 2], grouping="random")
    result = plot.learning_curves([src], tmp_path / "out")
    assert result.path == tmp_path / "out" / "learning_curves.png" and Path(result) == result.path
    assert sorted(result.curves) == ["bmf_q (random)", "bmf_q (vae)", "mfq"]
    mfq = result.curves["mfq"]
    np.testing.assert_allclose(mfq.x, [1, 2, 3])
    np.testing.assert_allclose(mfq.mean, [2, 3, 4])
    np.testing.assert_allclose(mfq.std, [1, 1, 1])
    ax = result.figure.axes[0]
    assert len(ax.lines) == 3 and len(ax.collections) == 3   # one line and one ±std band per algorithm
    drawn = {line.get_label(): line.get_ydata() for line in ax.lines}
    np.testing.assert_allclose(drawn["MFQ (n=2)"], [2, 3, 4])          # the paper's names in the legend
    np.testing.assert_allclose(drawn["BMF-Q (vae) (n=1)"], [0, 0, 6])
    assert ax.get_ylabel() == "episode return of the learning team" and ax.get_title().startswith("Firefighter")
    with Image.open(result.path) as img:
        assert img.size[0] > 300 and img.size[1] > 200
    with pytest.raises(FileExistsError, match="learning_curves.png.*overwrite"):
        plot.learning_curves([src], tmp_path / "out")
    smoothed = plot.learning_curves([src / "mfq_0"], tmp_path / "s.png", smooth=2, overwrite=True)
    np.testing.assert_allclose(smoothed.curves["mfq"].mean, [1, 1.5, 2.5])


def test_learning_curves_labels_k_sweeps_and_env_steps_axis(tmp_path):
    fake_run(tmp_path, "k2", "bmf_q", [0, 2], k=2, steps=[10, 30])
    fake_run(tmp_path, "k8", "bmf_q", [4, 4], k=8, steps=[20, 40])
    result = plot.learning_curves([tmp_path / "k2", tmp_path / "k8"], tmp_path / "k.png", x="env_steps")
    assert sorted(result.curves) == ["bmf_q k=2", "bmf_q k=8"]
    np.testing.assert_allclose(result.curves["bmf_q k=2"].x, [10, 30])
    np.testing.assert_allclose(result.curves["bmf_q k=8"].x, [20, 40])
    fake_run(tmp_path, "lr", "mfq", [1], lr=0.01)
    fake_run(tmp_path, "lr_1", "mfq", [1], lr=0.01, seed=1)
    fake_run(tmp_path, "lr_2", "mfq", [1], lr=0.1)
    labels = plot.run_labels([tmp_path / n for n in ("k2", "k8", "lr", "lr_1", "lr_2")])
    assert labels == ["bmf_q k=2", "bmf_q k=8", "mfq lr=0.01", "mfq lr=0.01", "mfq lr=0.1"]
    with pytest.raises(ValueError, match="x='time'"):
        plot.learning_curves([tmp_path / "k2"], tmp_path / "t.png", x="time")
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        plot.learning_curves([tmp_path / "missing"], tmp_path / "m.png")


def test_learning_curves_from_trained_runs(runs, tmp_path):
    dirs = [runs[("firefighter", a, s)] for a, s in [("bmf_q", 0), ("bmf_q", 1), ("mfq", 0)]]
    result = plot.learning_curves(dirs, tmp_path / "curves.png")
    assert sorted(result.curves) == ["bmf_q", "mfq"] and len(result.curves["bmf_q"].runs) == 2
    returns = np.array([[r["charts/return"] for r in read_metrics(d)] for d in dirs[:2]])
    np.testing.assert_allclose(result.curves["bmf_q"].mean, returns.mean(0))
    assert result.path.stat().st_size > 0


def test_learning_curves_one_panel_per_task(tmp_path):
    """Runs of two tasks: a panel each (their returns have other scales), curves keyed as
    run_labels gives them, each panel holding only its task's lines."""
    fake_run(tmp_path, "ff", "mfq", [-100, -90])
    fake_run(tmp_path, "b0", "bmf_q", [1, 2], conf="battle")
    fake_run(tmp_path, "b1", "bmf_q", [3, 4], conf="battle", seed=1)
    result = plot.learning_curves([tmp_path], tmp_path / "c.png")
    assert sorted(result.curves) == ["battle: bmf_q", "firefighter: mfq"]
    battle, ff = result.figure.axes
    assert battle.get_title().startswith("Battle") and ff.get_title().startswith("Firefighter")
    assert [line.get_label() for line in battle.lines] == ["BMF-Q (n=2)"]
    np.testing.assert_allclose(battle.lines[0].get_ydata(), [2, 3])
    assert [line.get_label() for line in ff.lines] == ["MFQ (n=1)"]
    assert plot.display_label("battle: gat_mf k=2") == "GAT-MF k=2"


# ----------------------------------------------------------------------- group graph
def test_group_graph_firefighter_draws_groups_edges_and_attention(runs, tmp_path):
    result = plot.group_graph(model(runs[("firefighter", "bmf_q", 0)]), tmp_path, step=4)
    assert result.path == tmp_path / "group_graph.png" and result.path.stat().st_size > 0
    (snap,), (drawn,) = result.snapshots, result.drawn
    k = snap.num_groups
    assert snap.step == 4 and len(snap.pos) == 12
    assert 2 <= k <= 3, "by step 4 the k-means has split the team (step 0 is one group: identical inputs)"
    assert len(drawn.agents) == k                                   # one scatter per non-empty group
    assert sorted(len(c.get_offsets()) for c in drawn.agents) == sorted(snap.count[snap.count > 0].tolist())
    assert len(drawn.group_nodes.get_offsets()) == k
    assert len(drawn.arrows) == k * (k - 1)                         # softmax weights are all > 0
    nonempty = snap.count > 0
    np.testing.assert_allclose(snap.weight[nonempty][:, nonempty].sum(1), 1.0 if k > 1 else 0.0, atol=1e-5)
    widths = [a.get_linewidth() for a in drawn.arrows]
    assert np.all(np.diff(np.array(widths)[np.argsort(drawn.arrow_weights)]) >= 0)  # width grows with w_mn
    # Intra-group edges: exactly the radius-graph pairs (r = 1.5) inside a group.
    d = np.linalg.norm(snap.pos[:, None] - snap.pos[None], axis=-1)
    same = snap.group[:, None] == snap.group[None]
    expected = {(j, i) for j in range(12) for i in range(12) if i != j and d[j, i] < 1.5 and same[j, i]}
    assert set(map(tuple, snap.edges.T.tolist())) == expected
    assert 0 < len(expected) < 24                                  # some, not all, ring neighbours
    assert len(drawn.edges.get_segments()) == len(expected)
    for m in np.flatnonzero(nonempty):
        np.testing.assert_allclose(snap.group_pos[m], snap.pos[snap.group == m].mean(0), atol=1e-5)
    assert snap.houses is not None and len(snap.houses[0]) == 12
    np.testing.assert_array_equal(drawn.houses.get_array(), snap.houses[1])  # houses coloured by level
    bar = result.figure.axes[-1]                                             # the fire-level colour bar
    assert len(result.figure.axes) == 2 and bar.get_ylabel() == "fire level"
    assert bar.get_ylim() == (0, snap.houses[2])
    assert all(a.get_zorder() > drawn.group_nodes.get_zorder() for a in drawn.arrows)  # arrows above the nodes
    ax = result.figure.axes[0]
    assert ax.get_title().startswith("BMF-Q on Firefighter, seed 0, t = 4: ") and "\n" not in ax.get_title()
    assert not result.figure.get_suptitle() and ax.get_aspect() == 1.0
    width, height = result.figure.get_size_inches() * 120
    assert 700 <= width <= 1100 and 450 <= height <= 700                     # reads at 100 %


def test_group_colours_stay_clear_of_the_fire_scale_and_the_other_team():
    """Every group colour lies far (RGB distance > 0.25) from every fire-level colour
    (YlOrRd), far (> 0.2) from the other team's grey, and the 16 first colours differ from each other."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    colors = group_graph.group_colors(24)[:, :3]
    fire = colormaps["YlOrRd"](np.linspace(0, 1, 64))[:, :3]
    assert np.linalg.norm(colors[:, None] - fire[None], axis=-1).min() > 0.25
    assert np.linalg.norm(colors - np.array(to_rgb(group_graph.OTHERS_COLOR)), axis=-1).min() > 0.2
    first = colors[:16]
    assert np.linalg.norm(first[:, None] - first[None], axis=-1)[~np.eye(16, dtype=bool)].min() > 0.1
    assert group_graph.plural(1, "agent") == "1 agent" and group_graph.plural(2, "group") == "2 groups"


def test_group_graph_of_a_vmas_model(tmp_path):
    """``bmf-plot groups`` on a VMAS run (continuous positions, no map): the VMAS task is
    accepted by name and drawn in world units around its agents."""
    pytest.importorskip("vmas")
    cfg = load_config(["conf=vmas_crowd_navigation", f"runs_dir={tmp_path / 'runs'}", "run_name=bmf_ac",
                       "train.episodes=1", "env.kwargs.n_agents=12", "env.kwargs.max_steps=4", *FAST])
    run = train(cfg)
    result = plot_cli.main(["groups", str(run), "--env", "vmas", "--env-kwargs", "max_steps=3", "--step", "2",
                        "--out", str(tmp_path / "plots")])
    (snap,), (drawn,) = result.snapshots, result.drawn
    ax = result.figure.axes[0]
    assert snap.map_size is None and ax.get_xlabel() == "x (world units)" and ax.get_title().startswith("BMF-AC on VMAS")
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < snap.pos[:, 0].min() and snap.pos[:, 0].max() < x1 and y0 < snap.pos[:, 1].min()
    assert len(drawn.agents) == snap.num_groups >= 1


def test_group_strip_negative_steps_count_from_the_episode_end(runs, tmp_path):
    result = plot.group_strip(model(runs[("firefighter", "bmf_q", 1)]), tmp_path / "s.png", steps=[1, -1],
                              env_kwargs={"max_steps": 6})
    assert [s.step for s in result.snapshots] == [1, 5]
    with pytest.raises(ValueError, match="has 6 steps; choose steps in -6..5"):
        plot.group_strip(model(runs[("firefighter", "bmf_q", 1)]), tmp_path / "t.png", steps=[-7],
                         env_kwargs={"max_steps": 6})


def test_group_strip_battle_draws_learner_groups_and_grey_opponents(runs, tmp_path):
    result = plot.group_strip(model(runs[("battle", "bmf_q", 0)]), tmp_path / "strip.png", steps=[0, 2, 5])
    assert [s.step for s in result.snapshots] == [0, 2, 5]
    assert len(result.figure.axes) == 3
    for snap, drawn, ax in zip(result.snapshots, result.drawn, result.figure.axes):
        assert len(drawn.agents) == snap.num_groups
        assert sum(len(c.get_offsets()) for c in drawn.agents) == len(snap.pos) <= 8
        assert len(drawn.others.get_offsets()) == len(snap.others) > 0
        assert drawn.others.get_facecolor()[0][:3] == pytest.approx([0.6, 0.6, 0.6])
        assert (ax.get_xlim(), ax.get_ylim()) == ((-0.5, 19.5), (19.5, -0.5))  # the whole map, rows downwards
        assert ax.get_aspect() == 1.0 and ax.get_xlabel() == "x (cells)"
        assert ax.get_title() == f"t = {snap.step}: {snap.num_groups} group{'s' * (snap.num_groups != 1)}, " \
                                 f"{len(snap.pos)} agent{'s' * (len(snap.pos) != 1)}"
    assert result.figure.get_suptitle() == "BMF-Q on Battle, seed 0"              # one heading line
    labels = [t.get_text() for t in result.figure.legends[0].get_texts()]
    assert "other team" in labels and "attention n → m, w = 1" in labels and "group node, 50% of the team" in labels
    assert {f"group {m}" for s in result.snapshots for m in np.flatnonzero(s.count > 0)} == \
        {label for label in labels if label.startswith("group ") and "node" not in label}
    with pytest.raises(ValueError, match="ended after 10 steps"):
        plot.group_strip(model(runs[("battle", "bmf_q", 0)]), tmp_path / "late.png", steps=[13])


def test_group_strip_spreads_panels_over_the_episode(runs, tmp_path):
    result = plot.group_strip(model(runs[("firefighter", "bmf_q", 1)]), tmp_path / "s.png", panels=3,
                              env_kwargs={"max_steps": 5})
    assert [s.step for s in result.snapshots] == [0, 2, 4]
    assert len(result.drawn) == 3


def test_group_graph_needs_a_bmf_model(runs, tmp_path):
    with pytest.raises(ValueError, match="'mfq'; expected a BMF model"):
        plot.group_graph(model(runs[("firefighter", "mfq", 0)]), tmp_path)


# ----------------------------------------------------------------------- GIF and CLI
def test_replay_gif_battle(runs, tmp_path):
    path = plot.replay_gif(model(runs[("battle", "bmf_q", 0)]), tmp_path, opponent="random")
    with Image.open(path) as gif:
        assert gif.n_frames >= 2 and gif.size[0] > 100
    with pytest.raises(FileExistsError, match="replay.gif"):
        plot.replay_gif(model(runs[("battle", "bmf_q", 0)]), tmp_path)


def test_cli_curves_and_groups(runs, tmp_path, capsys):
    out = tmp_path / "assets"
    plot_cli.main(["curves", str(runs[("firefighter", "bmf_q", 0)].parent), "--out", str(out), "--smooth", "2"])
    plot_cli.main(["groups", str(runs[("firefighter", "bmf_q", 0)]), "--step", "-1", "--out", str(out)])  # a run folder
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "learning_curves.png"), str(out / "group_graph.png")]
    assert all(Path(p).stat().st_size > 0 for p in printed)
    with pytest.raises(SystemExit) as exit_info:
        plot_cli.main(["groups", str(model(runs[("firefighter", "bmf_q", 0)])), "--out", str(out)])
    assert exit_info.value.code == 2 and "overwrite" in capsys.readouterr().err
    assert not math.isnan(plot.smooth_series(np.array([1.0]), 3)[0])


def test_evaluation_curves_read_eval_csv_with_seed_bands(tmp_path):
    from bmf_graph.training.evaluation import EvalLog

    src = tmp_path / "runs"
    for seed, values in enumerate([[-5.0, -3.0], [-7.0, -1.0]]):
        run = fake_run(src, f"mfq_{seed}", "mfq", [0, 0, 0, 0], seed=seed)
        log = EvalLog(run)
        for point, value in zip((2, 4), values):
            log.write({"episode": point, "trained_episodes": point, "episodes": 3, "eval/return_greedy": value})
    result = plot.learning_curves([src], tmp_path / "e.png", metric="eval/return_greedy")
    curve = result.curves["mfq"]
    np.testing.assert_allclose(curve.x, [2, 4])
    np.testing.assert_allclose(curve.mean, [-6, -2])
    np.testing.assert_allclose(curve.std, [1, 1])
    assert result.figure.axes[0].get_ylabel() == "evaluation return (frozen policy, greedy)"
    with pytest.raises(ValueError, match="per evaluation episode; expected x='episode'"):
        plot.learning_curves([src], tmp_path / "f.png", metric="eval/return_greedy", x="env_steps")
    with pytest.raises(ValueError, match="no values of metric='eval/return_mode'"):
        plot.learning_curves([src], tmp_path / "g.png", metric="eval/return_mode")
