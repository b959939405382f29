"""RESULTS.md generator on tiny hand-made artifacts whose numbers can be written down."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bmf_graph.experiments import results
from bmf_graph.cli import results as results_cli
from bmf_graph.config import Config, to_yaml
from bmf_graph.training.logging import RunLogger
from bmf_graph.experiments.results_stats import claim_comparisons, claim_word, collect, compare, final_returns, verdict
from bmf_graph.experiments.winrate import WinTable, wilson_interval


def make_run(root: Path, task: str, label: str, seed: int, returns: list[float], episodes: int | None = None,
             kills: list[tuple[float, float]] | None = None, final: bool = True) -> Path:
    """A run folder with ``config.yaml``, one metrics row per return and (``final``) a model file."""
    run = root / task / label / f"seed{seed}"
    (run / "checkpoints").mkdir(parents=True)
    cfg = Config(seed=seed)
    cfg.env.name = "battle" if kills is not None else "firefighter"
    cfg.algo.name = label.split("-")[0]
    cfg.train.episodes = episodes or len(returns)
    (run / "config.yaml").write_text(to_yaml(cfg))
    teams = ["red", "blue"] if kills is not None else ["firefighters"]
    logger = RunLogger(run, teams, tensorboard=False)
    for e, ret in enumerate(returns):
        row = {"episode": e + 1, "env_steps": 10 * (e + 1), "charts/return": ret, f"charts/return_{teams[0]}": ret}
        if kills is not None:
            row.update({"charts/return_blue": -ret, "charts/kills_red": kills[e][0], "charts/kills_blue": kills[e][1]})
        logger.log(row)
    logger.close()
    if final:
        (run / "checkpoints" / "model_final.pt").write_bytes(b"")
    return run


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    # 20 episodes: the final return is the mean of the last 2.
    for seed, level in enumerate([-10.0, -11.0, -12.0]):
        make_run(root, "firefighter", "bmf_q", seed, [-50.0] * 18 + [level, level + 2])
        make_run(root, "firefighter", "q", seed, [-50.0] * 18 + [level - 20, level - 18])
    make_run(root, "firefighter", "mfq", 0, [-30.0] * 10, episodes=100, final=False)  # interrupted
    kills = [(3.0, 1.0)] * 9 + [(1.0, 4.0)]  # last 10 %: one episode, a loss
    make_run(root, "battle", "bmf_q", 0, [float(e) for e in range(10)], kills=kills)
    return root


def test_final_values_and_completeness(artifacts: Path):
    groups = collect(artifacts)
    ff = groups["firefighter"]
    assert [r.final_return for r in ff["bmf_q"]] == [-9.0, -10.0, -11.0]
    assert [r.final_return for r in ff["q"]] == [-29.0, -30.0, -31.0]
    assert all(r.complete for r in ff["bmf_q"]) and not ff["mfq"][0].complete
    battle = groups["battle"]["bmf_q"][0]
    assert (battle.final_return, battle.kills, battle.deaths, battle.win_rate) == (9.0, 1.0, 4.0, 0.0)


def test_comparison_against_brute_force(artifacts: Path):
    from scipy import stats

    groups = collect(artifacts)
    by_other = {c.other: c for c in compare(final_returns(groups["firefighter"]), "bmf_q")}
    assert by_other["q"].difference == pytest.approx(20.0)
    mine, theirs = [-9.0, -10.0, -11.0], [-29.0, -30.0, -31.0]
    assert by_other["q"].welch_p == pytest.approx(stats.ttest_ind(mine, theirs, equal_var=False).pvalue)
    assert by_other["q"].mannwhitney_p == pytest.approx(0.05)  # 3 v 3, complete separation: 1/20
    assert np.isnan(by_other["mfq"].welch_p)  # one seed: no test


def test_claim_words_take_the_strongest_objection():
    values = {"bmf_q": [10.0, 11.0, 12.0], "ahead": [0.0, 1.0, 2.0], "close": [9.0, 11.5, 12.0],
              "behind": [20.0, 21.0, 22.0], "one": [0.0]}
    found = claim_comparisons(values, "bmf_q", ["ahead", "close", "behind", "one", "missing"])
    assert {label: c.word for label, c in found.items()} == {
        "ahead": "reproduces", "close": "not shown", "behind": "does not reproduce", "one": "open"}
    assert claim_word(found, ["ahead"]) == "reproduces"
    assert claim_word(found, ["ahead", "close"]) == "not shown"
    assert claim_word(found, ["ahead", "one"]) == "open"
    assert claim_word(found, ["ahead", "missing"]) == "open"  # not run yet: nothing is settled
    assert claim_word(found, ["one", "behind", "close"]) == "does not reproduce"
    assert verdict(values, "bmf_q", ["behind", "ahead", "close", "missing"]) == (
        "For bmf_q the claim does not reproduce: significantly ahead of ahead; ahead of close, not "
        "significantly; behind behind. Not run yet: missing.")


def test_render_tables_and_verdicts(artifacts: Path, tmp_path: Path):
    text = results.render(artifacts, "assets", figures=False)
    assert "| bmf_q | 3 | 3 | 20 | -10.0 ± 0.8 |" in text
    assert "| q | 3 | 3 | 20 | -30.0 ± 0.8 |" in text
    assert "| mfq | 1 | 0 | 10 | -30.0 |" in text
    assert "| firefighter | 3 | 7 | 6 | 10–20 |" in text
    assert "| bmf_q | 1 | 1 | 10 | 9.0 | 1.0 | 4.0 | 0.00 |" in text
    assert "| q | +20.0 | <0.001 | 0.050 | 3 v 3 | reproduces |" in text  # p is written <0.001 or 0.xyz
    assert "| mfq | +20.0 | — | — | 3 v 1 | open |" in text
    assert ("**Here.** For bmf_q the claim stays open: significantly ahead of q; mfq: too few seeds for a test. "
            "Not run yet: ac, mfac, gat_mf.") in text
    assert "Battle head-to-head" in text and "Not run yet (no JSON files under `results/battle/head_to_head/`)." in text
    assert "Not run yet (no runs under `results/pursuit/`)." in text
    assert "Fixed policies" not in text
    policies = {"command": "python benchmarks/firefighter_policies.py",
                "policies": {"random": {"mean": -3692.5, "std": 552.1}}}
    (artifacts / "firefighter" / "policies.json").write_text(json.dumps(policies))
    text = results.render(artifacts, "assets", figures=False)
    assert ("| q | 3 | 3 | 20 | -30.0 ± 0.8 |\n\nFixed policies for scale (not learned; "
            "`python benchmarks/firefighter_policies.py`): random -3,692.5 ± 552.1.\n") in text
    assert set(collect(artifacts)["firefighter"]) == {"bmf_q", "q", "mfq"}  # the file is not a run


def test_ablation_claim_reads_convergence_speed_too(tmp_path: Path):
    """Same final values, later convergence: the final return cannot tell the ablations apart, the
    mean return over all episodes (the area under the curve) can."""
    root = tmp_path / "results"
    for seed in range(3):
        make_run(root, "battle_ablations", "bmf_q", seed, [0.0] + [10.0 + seed] * 9)
        for label in ("bmf_q-rc", "bmf_q-ae"):
            make_run(root, "battle_ablations", label, seed, [0.0] * 9 + [9.0 + seed])
    text = results.render(root, "assets", figures=False)
    assert "| bmf_q | 3 | 3 | 10 | 11.0 ± 0.8 | 9.9 ± 0.7 |" in text  # means 9, 9.9, 10.8
    assert "| bmf_q-rc | 3 | 3 | 10 | 10.0 ± 0.8 | 1.0 ± 0.1 |" in text
    assert "bmf_q against each other method (mean training return over all episodes; positive: bmf_q ahead)" in text
    assert "| bmf_q-rc | +8.9 | 0.003 | 0.050 | 3 v 3 | reproduces |" in text
    assert ("**Here, by final training return.** For bmf_q the claim is not shown: ahead of bmf_q-rc and bmf_q-ae, "
            "not significantly.") in text
    assert ("**Here, by mean training return over all episodes.** For bmf_q the claim reproduces: significantly ahead of "
            "bmf_q-rc and bmf_q-ae.") in text


def test_same_bytes_twice_and_cli(artifacts: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out1, out2 = tmp_path / "a.md", tmp_path / "b.md"
    assert results_cli.main(["--results", str(artifacts), "--out", str(out1), "--assets", "figs"]) == 0
    assert results_cli.main(["--results", str(artifacts), "--out", str(out2), "--assets", "figs"]) == 0
    assert out1.read_bytes() == out2.read_bytes()
    assert "![firefighter learning curves](figs/results_firefighter.png)" in out1.read_text()
    assert (tmp_path / "figs" / "results_battle.png").stat().st_size > 0
    elsewhere = tmp_path / "elsewhere" / "c.md"  # figures go beside the text, so its links hold
    elsewhere.parent.mkdir()
    assert results_cli.main(["--results", str(artifacts), "--out", str(elsewhere), "--assets", "pics"]) == 0
    assert elsewhere.read_text() == out1.read_text().replace("figs/", "pics/")
    assert (elsewhere.parent / "pics" / "results_battle.png").stat().st_size > 0
    assert not (tmp_path / "pics").exists()


def head_to_head_file(folder: Path, seed: int, players: list[str], wins: list[list[int]],
                      ties: list[list[int]] | None = None, games: list[dict] | None = None) -> None:
    """``folder/seed{seed}.json`` as ``evaluate head-to-head --out`` writes it (50 games a pair)."""
    names = [f"{p}/seed{seed}" for p in players]
    ties = ties or [[0] * len(players) for _ in players]
    table = WinTable(names, np.array(wins), np.array(ties)).to_dict()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed{seed}.json").write_text(json.dumps({"games_per_pair": 50, "table": table,
                                                         "games": games or []}))


def test_head_to_head_and_zero_shot_sections(artifacts: Path, tmp_path: Path):
    games = [{"left": "bmf_q/seed10", "winner": "bmf_q/seed10"}, {"left": "mfq/seed10", "winner": "mfq/seed10"},
             {"left": "mfq/seed10", "winner": "bmf_q/seed10"}, {"left": "mfq/seed10", "winner": None}]
    head_to_head_file(artifacts / "battle" / "head_to_head", 10, ["bmf_q", "mfq"], [[0, 30], [20, 0]], games=games)
    shots = artifacts / "battle" / "zero_shot"
    shots.mkdir()
    for seed, value in enumerate([100.0, 200.0]):
        data = {"sizes": [{"agents": 288, "return": {"mean": value}, "win_rate": value / 200},
                          {"agents": 2048, "return": {"mean": -value}, "win_rate": 1.0}]}
        (shots / f"bmf_q__seed{seed}__random.json").write_text(json.dumps(data))
    (shots / "mfq__seed0__random.json").write_text(json.dumps({"sizes": [{"agents": 288, "return": {"mean": 5.0}}]}))
    (shots / "mfq__seed0__scripted.json").write_text(json.dumps({"sizes": [{"agents": 288, "return": {"mean": 7.0}}]}))
    text = results.render(artifacts, "assets", figures=False)
    assert "Against `scripted`, Battle's scripted team (`docs/protocol.md`, the league's yardstick)" in text
    assert "Every pair of final models (seed 10) played 50 games" in text
    assert "| | bmf_q | mfq | mean |" in text and "| bmf_q | — | 0.60 [0.46, 0.72] | 0.60 |" in text
    assert "the team that started on the left won 2 of the 3 decisive games (67%)." in text
    assert "| agents | mfq | bmf_q | paper:" in text  # the paper's order, not the alphabet
    assert "Against `random`, a team acting uniformly at random: mean return" in text
    assert "**The paper's claim.** BMF generalizes zero-shot across scales" in text
    assert "| agents | method | q | mfq | ac | mfac | gat_mf | claim |" in text
    assert "| 288 | bmf_q | — | +145.0 (2 v 1 seeds) | — | — | — | open |" in text
    assert "| 2,048 | bmf_q | — | — | — | — | — | — (not in Table 2) |" in text
    assert "| 288 | 5.0 | 150.0 ± 50.0 | 137.54 ± 306.07 / 91.91 ± 108.44 / 565.83 ± 181.58 / 550.96 ± 68.01 / 613.19 ± 169.70 |" in text
    assert "| 2,048 | — | -150.0 ± 50.0 | — |" in text
    # win rates beside the returns: a game won at a negative return counts as won
    wins = text.split("Win rate against `random` in the same games, mean ± std over seeds:")[1].split("\n\n")[1]
    assert wins.splitlines() == ["| agents | mfq | bmf_q |", "|---|---|---|", "| 288 | — | 0.75 ± 0.25 |",
                                 "| 2,048 | — | 1.00 ± 0.00 |"]
    assert "Win rate against `scripted`" not in text  # its file has no win rates


def test_head_to_head_pools_the_seeds_files_by_method(artifacts: Path):
    folder = artifacts / "battle" / "head_to_head"
    head_to_head_file(folder, 10, ["bmf_q", "mfq", "q"], [[0, 30, 40], [20, 0, 25], [10, 25, 0]])
    head_to_head_file(folder, 11, ["bmf_q", "mfq"], [[0, 20], [28, 0]], ties=[[0, 2], [2, 0]])
    text = results.render(artifacts, "assets", figures=False)
    assert "Every pair of final models (seeds 10, 11) played 50 games per seed" in text
    assert "| | bmf_q | mfq | q | mean | per seed [95 % CI over seeds] |" in text
    low, high = wilson_interval(50, 100)  # bmf_q v mfq: 30 + 20 wins in 50 + 50 games, 2 of them ties
    assert f"| bmf_q | — | 0.50 [{low:.2f}, {high:.2f}] | 0.80 [0.67, 0.89] | 0.65 | 0.70 · 0.40 [0.40, 0.70] |" in text
    assert "| q | 0.20 [0.11, 0.33] | 0.50 [0.37, 0.63] | — | 0.35 | 0.35 · — |" in text
    assert "The side matters" not in text  # no game records, no side line


def test_table1_rows_and_relative_cost(artifacts: Path):
    rows = [{"method": "bmf_q", "seconds": [50.0, 70.0], "peak_mib": [400.0, 400.0]},
            {"method": "gat_mf (dense)", "seconds": [80.0, 120.0], "peak_mib": [500.0, 500.0]}]
    (artifacts / "table1.json").write_text(json.dumps({"setting": "two seeds", "rows": rows}))
    text = results.render(artifacts, "assets", figures=False)
    assert "| bmf_q | 60.0 ± 10.0 | 400.0 ± 0.0 | 18655 ± 715.3 | 1780 ± 0.0 |" in text
    # 60 / 100 - 1 and 400 / 500 - 1; the paper's 18655 / 27162 - 1 and 1780 / 2116 - 1
    assert "| gat_mf (dense) | 100.0 ± 20.0 | 500.0 ± 0.0 | 27162 ± 1421.8 | 2116 ± 0.0 |" in text
    assert ("BMF-Q against gat_mf (dense): time -40.0 %, memory -20.0 % (the paper: time -31.3 %, memory -15.9 % "
            "against GAT-MF's released code") in text


def test_ablations_meet_the_default_at_their_own_budget_not_the_main_runs(artifacts: Path):
    make_run(artifacts, "battle_ablations", "bmf_q-rc", 0, [1.0] * 5, kills=[(1.0, 0.0)] * 5)
    ablations = results.render(artifacts, "assets", figures=False).split("## Battle ablations")[1].split("\n## ")[0]
    assert "| bmf_q |" not in ablations  # the main 10-episode run explored longer: not mixed in
    assert "**Here, by final training return.** Not run yet: no bmf_q runs." in ablations
    for seed, value in ((0, 3.0), (1, 3.2)):
        make_run(artifacts, "battle_ablations", "bmf_q", seed, [value] * 5, kills=[(2.0, 0.0)] * 5)
    make_run(artifacts, "battle_ablations", "bmf_q-rc", 1, [1.1] * 5, kills=[(1.0, 0.0)] * 5)
    ablations = results.render(artifacts, "assets", figures=False).split("## Battle ablations")[1].split("\n## ")[0]
    assert "| bmf_q | 2 | 2 | 5 | 3.1 ± 0.1 |" in ablations and "`bmf_q` here is the default BMF-Q" in ablations
    assert "For bmf_q the claim stays open: significantly ahead of bmf_q-rc. Not run yet: bmf_q-ae." in ablations


def test_bad_inputs(artifacts: Path, tmp_path: Path):
    shots = artifacts / "battle" / "zero_shot"
    shots.mkdir()
    (shots / "oops.json").write_text("{}")
    with pytest.raises(ValueError, match="zero-shot file 'oops.json' is not named"):
        results.render(artifacts, "assets", figures=False)
    with pytest.raises(SystemExit):
        results_cli.main(["--results", str(tmp_path / "missing"), "--out", str(tmp_path / "r.md")])


def test_committed_results_md_is_generated_from_committed_results(tmp_path: Path):
    """RESULTS.md is exactly what ``bmf-results`` writes from ``results/``."""
    root = Path(__file__).resolve().parents[2]
    text = results.render(root / "results", "assets", figure_dir=tmp_path)
    assert text == (root / "RESULTS.md").read_text()


def test_zero_shot_bars_drawn_and_linked(artifacts: Path, tmp_path: Path):
    shots = artifacts / "battle" / "zero_shot"
    shots.mkdir()
    for label in ("bmf_q", "mfq"):
        data = {"sizes": [{"agents": 288, "return": {"mean": 1.0}}, {"agents": 512, "return": {"mean": 2.0}}]}
        (shots / f"{label}__seed10__random.json").write_text(json.dumps(data))
    text = results.render(artifacts, "figs", figure_dir=tmp_path / "figs")
    assert "![zero-shot against random](figs/results_zero_shot_random.png)" in text
    assert (tmp_path / "figs" / "results_zero_shot_random.png").stat().st_size > 0
    assert "results_zero_shot" not in results.render(artifacts, "figs", figures=False)  # no figure, no link


def test_pictures_play_the_lowest_seed_model_once(artifacts: Path, tmp_path: Path, monkeypatch):
    import bmf_graph.experiments.plot as plot

    make_run(artifacts, "battle", "bmf_q", 11, [1.0] * 10, kills=[(1.0, 0.0)] * 10)
    stray = artifacts / "battle" / "bmf_q" / "seed_old" / "checkpoints"  # not a seed{S} folder: ignored
    stray.mkdir(parents=True)
    (stray / "model_final.pt").write_bytes(b"")
    calls = []

    def fake(kind):
        def draw(model, out, **kwargs):
            calls.append((kind, Path(model).parent.parent.name, Path(out).name, kwargs["seed"]))
            Path(out).write_bytes(b"x")
        return draw

    monkeypatch.setattr(plot, "group_strip", fake("strip"))
    monkeypatch.setattr(plot, "replay_gif", fake("gif"))
    figs = tmp_path / "figs"
    text = results.render(artifacts, "figs", figure_dir=figs)  # pictures off: nothing played
    assert calls == [] and "![bmf_q groups over a battle episode](figs/results_battle_groups.png)" in text
    assert results.render(artifacts, "figs", figure_dir=figs, pictures=True) == text
    assert calls == [("strip", "seed0", "results_battle_groups.png", 0), ("gif", "seed0", "results_battle.gif", 0)]
    results.render(artifacts, "figs", figure_dir=figs, pictures=True)
    assert len(calls) == 2  # drawn only when missing
    (artifacts / "battle" / "bmf_q").rename(artifacts / "battle" / "mfq2")
    assert "Not drawn yet (no finished `results/battle/bmf_q/seed*/` run)." in results.render(artifacts, figures=False)


def test_league_and_frozen_sections(artifacts: Path, tmp_path: Path):
    league = artifacts / "battle" / "league"
    league.mkdir(parents=True)
    summary = {"games": 30, "games_expected": 60, "complete": False, "games_per_pair": 10, "anchor": "random",
               "bootstrap_draws": 100, "models": {"random": 0.0, "scripted": 150.0, "mfq/seed1": 300.0,
                                                  "mfq/seed2": 340.0},
               "yardsticks": {"random": 0.0, "scripted": 150.0},
               "methods": {"mfq": {"rating": 320.0, "low": 300.0, "high": 340.0, "models": 2}},
               "against": {"mfq": {"scripted": {"win_rate": 0.75, "low": 0.5, "high": 1.0, "per_seed": [0.5, 1.0]}}}}
    (league / "ratings.json").write_text(json.dumps(summary))
    frozen = {"episodes": 2, "seed": 0, "modes": {"greedy": "g", "T=0.5": "t", "sampled": "s"},
              "fixed_policies": {"random": {"mean": -3000.0, "std": 5.0}},
              "models": {"mfq": {f"seed{s}": {m: {"mean": v} for m, v in (("greedy", -1500.0 - s), ("T=0.5", -900.0),
                                                                           ("sampled", -1400.0))} for s in (1, 2)}}}
    (artifacts / "firefighter" / "frozen_eval.json").write_text(json.dumps(frozen))
    text = results.render(artifacts, "figs", figure_dir=tmp_path / "figs")
    assert "## Battle league (the ranking)" in text and "| mfq | 2 | 320 [300, 340] | 0.75 [0.50, 1.00] | — |" in text
    assert "not finished (30 of 60 games)" in text
    assert "![league ratings](figs/results_league.png)" in text
    assert "| mfq | 2 | -1,502 ± 0 | -900 ± 0 | -1,400 ± 0 | -1,502 (seed2) |" in text
    assert "| fixed: random | — | -3,000 ± 5 (over episodes) | | | |" in text
    assert (tmp_path / "figs" / "results_league.png").stat().st_size > 0
    assert (tmp_path / "figs" / "results_firefighter_frozen.png").stat().st_size > 0
    assert text.index("## Battle league") < text.index("## Battle head-to-head")


def test_final_evaluation_returns_get_a_dot_and_interval_figure(artifacts: Path, tmp_path: Path):
    from bmf_graph.training.evaluation import EvalLog

    assert "results_firefighter_final_eval" not in results.render(artifacts, "figs", figure_dir=tmp_path / "a")
    for seed, value in enumerate([-5.0, -7.0, -6.0]):
        log = EvalLog(artifacts / "firefighter" / "bmf_q" / f"seed{seed}")
        log.write({"episode": 10, "trained_episodes": 10, "episodes": 2, "eval/return_greedy": value - 1})
        log.write({"episode": 20, "trained_episodes": 20, "episodes": 2, "eval/return_greedy": value})
    groups = results.collect(artifacts)["firefighter"]
    assert results.final_eval_returns(groups) == {"bmf_q": [-5.0, -7.0, -6.0]}
    text = results.render(artifacts, "figs", figure_dir=tmp_path / "b")
    assert "![firefighter final evaluation returns](figs/results_firefighter_final_eval.png)" in text
    assert (tmp_path / "b" / "results_firefighter_final_eval.png").stat().st_size > 0


def write_eval(run: Path, greedy: float) -> None:
    """An ``eval.csv`` with one evaluation whose greedy return is ``greedy``."""
    from bmf_graph.training.evaluation import COLUMNS

    row = {"evaluation": 1, "episode": 20, "trained_episodes": 20, "episodes": 10, "eval/return_greedy": greedy}
    (run / "eval.csv").write_text(",".join(COLUMNS) + "\n" + ",".join(str(row.get(c, "")) for c in COLUMNS) + "\n")


def test_evaluation_returns_rank_the_table_and_training_returns_are_labelled(artifacts: Path):
    """With ``eval.csv`` the table ranks by the frozen policy's return (here q ahead, though its
    training return is 20 lower) and the comparisons test it first; the training return stays, labelled."""
    for seed in range(3):
        write_eval(artifacts / "firefighter" / "bmf_q" / f"seed{seed}", -100.0 - seed)
        write_eval(artifacts / "firefighter" / "q" / f"seed{seed}", -50.0 - seed)
    section = results.render(artifacts, "assets", figures=False).split("## Firefighter")[1].split("\n## ")[0]
    assert "| method | seeds | complete | episodes | final evaluation return | final training return |" in section
    assert section.index("| q | 3 | 3 | 20 | -51.0 ± 0.8 | -30.0 ± 0.8 |") < section.index("| bmf_q | 3 | 3 | 20 | -101.0 ± 0.8 |")
    evaluation = section.index("bmf_q against each other method (final evaluation return; positive: bmf_q ahead)")
    assert evaluation < section.index("bmf_q against each other method (final training return; positive: bmf_q ahead)")
    assert "| mfq | 1 | 0 | 10 | — | -30.0 |" in section  # no evaluation yet: a dash, not a number


def test_context_test_rows_sit_under_their_task(artifacts: Path):
    """``results/context.json`` (``bmf-evaluate context-table``) puts each task's rows under its table;
    Battle rows give every seed's kill difference with its interval and the pooled wins; a row of
    one seed shows its values without a spread."""
    from bmf_graph.experiments.context_table import summarize

    def test(task, seed, mode, changed, **extra):
        return {"task": task, "label": "bmf_q", "seed": seed, "mode": mode, "games": 4, "changed_fraction": changed,
                "dq_relative": 0.5, **extra}

    tests = [test("firefighter", s, "zero", c, return_difference={"mean": d, "ci95": [d - 1, d + 1]})
             for s, c, d in [(0, 0.1, 10.0), (1, 0.3, 30.0)]]
    tests += [test("battle", 0, "permute", 0.25, kill_difference={"mean": 3.0, "ci95": [1.0, 5.0]}, win_rate=0.75,
                   wins=3, ties=0, losses=1)]
    (artifacts / "context.json").write_text(json.dumps({"tests": tests, "table": summarize(tests)}))
    text = results.render(artifacts, "assets", figures=False)
    ff = text.split("## Firefighter")[1].split("\n## ")[0]
    battle = text.split("## Battle")[1].split("\n## ")[0]
    assert "| bmf_q | zeroed | 0, 1 | 4 | 20.0 ± 10.0 % | 0.50 ± 0.00 | 20.0 ± 10.0 |" in ff
    assert "| bmf_q | permuted | 0 | 4 | 25.0 % | 0.50 | 0: +3.0 [+1.0, +5.0] | 3–0–1 |" in battle
    assert "| bmf_q | permuted" not in ff and "| bmf_q | zeroed" not in battle
    (artifacts / "context.json").unlink()
    assert "Context-shuffle test" not in results.render(artifacts, "assets", figures=False)


def test_pursuit_pool_scores_get_their_section(artifacts: Path):
    """``results/pursuit/pools.json`` becomes a table per role, methods by score; runs without it
    say how to make it; no Pursuit folder, no section."""
    assert "against the fixed pools" not in results.render(artifacts, "assets", figures=False)
    make_run(artifacts, "pursuit", "bmf_q", 0, [1.0] * 10)
    text = results.render(artifacts, "assets", figures=False)
    assert "Not run yet (no `results/pursuit/pools.json`" in text
    report = {"episodes": 3, "seed": 0, "prey_pool": ["random", "q/seed0", "bmf_q/seed0"],
              "predator_pool": ["random", "q/seed0", "bmf_q/seed0"],
              "methods": {"predator": {"q": {"score": 5.0, "low": 4.0, "high": 6.0, "seeds": 2},
                                       "bmf_q": {"score": 7.5, "low": 7.0, "high": 8.0, "seeds": 2}},
                          "prey": {"q": {"score": -1.0, "low": -2.0, "high": 0.0, "seeds": 2}}}}
    (artifacts / "pursuit" / "pools.json").write_text(json.dumps(report))
    section = results.render(artifacts, "assets", figures=False).split("## Adversarial Pursuit against the fixed pools")[1]
    assert "3 episodes" in section and "(3 prey, 3 predators)" in section
    assert section.index("| bmf_q | 2 | 7.5 [7.0, 8.0] |") < section.index("| q | 2 | 5.0 [4.0, 6.0] |")
    assert "| method (prey against the predator pool) | seeds | score [95 % CI] |\n|---|---:|---|\n| q | 2 | -1.0 [-2.0, 0.0] |" in section
