"""The context-shuffle test over every MF-family model of a results folder (``bmf-evaluate
context-table``): one row per task, method and mode, statistics over seeds.

Every ``{results}/{task}/{label}/seed{S}/`` whose run trained an algorithm that reads a context
(mfq, mfac, gat_mf, bmf_q, bmf_ac) is tested with :func:`~bmf_graph.experiments.context_shuffle.context_test`
in each mode (``permute``, ``zero``): Battle models over ``games`` games against their shuffled
selves, the other tasks over ``episodes`` episodes played intact and shuffled. The tests are kept
in ``out`` as they finish (atomically), so an interrupted table resumes where it stopped; a test
already in ``out`` with the same games is not played again. A test of a tested task whose run has
left ``results`` (a withdrawn seed) leaves ``out`` too; the other tasks' tests stay.

Per task, label and mode the table gives the mean ± std over seeds of the changed-action fraction
and of ``|ΔQ|`` relative to the Q spread, and on Battle of the kill difference (intact − shuffled)
and of the intact model's win rate; elsewhere of the return difference.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from bmf_graph.config import from_yaml
from bmf_graph.experiments.context_shuffle import context_test
from bmf_graph.experiments.results_stats import mean_std
from bmf_graph.experiments.sweep_grid import SEED_FOLDER
from bmf_graph.files import atomic_write_text
from bmf_graph.training.model_files import final_model

CONTEXT_ALGORITHMS = ("mfq", "mfac", "gat_mf", "bmf_q", "bmf_ac")
"""The algorithms whose critic reads a context."""
MODES = ("permute", "zero")
STATISTICS = {"changed": "changed_fraction", "dq": "dq_relative", "kill_difference": "kill_difference",
              "win_rate": "win_rate", "return_difference": "return_difference"}
"""Table column -> the test's result key (an interval result contributes its mean)."""


def context_models(results: Path | str, tasks: Sequence[str]) -> list[tuple[str, str, int, Path]]:
    """``(task, label, seed, model file)`` of every finished MF-family run under ``results``."""
    found = []
    for task in tasks:
        for label_dir in sorted(p for p in (Path(results) / task).glob("*") if p.is_dir()):
            for run in sorted(label_dir.iterdir(), key=lambda p: p.name):
                match = SEED_FOLDER.fullmatch(run.name)
                model = final_model(run) if match and (run / "config.yaml").is_file() else None
                if model is not None and from_yaml(run / "config.yaml", check=False).algo.name in CONTEXT_ALGORITHMS:
                    found.append((task, label_dir.name, int(match.group(1)), model))
    return found


def _scalar(value: Any) -> float:
    return float(value["mean"]) if isinstance(value, dict) else float(value)


def summarize(tests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per task, label and mode: ``seeds`` and ``{column: [mean, std]}`` over the seeds."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for test in tests:
        groups.setdefault((test["task"], test["label"], test["mode"]), []).append(test)
    rows = []
    for (task, label, mode), members in sorted(groups.items()):
        row: dict[str, Any] = {"task": task, "label": label, "mode": mode, "seeds": sorted(t["seed"] for t in members),
                               "games": members[0]["games"]}
        for column, key in STATISTICS.items():
            if key in members[0]:
                row[column] = list(mean_std([_scalar(t[key]) for t in members]))
        rows.append(row)
    return rows


def context_table(results: Path | str, out: Path | str, tasks: Sequence[str] = ("battle", "firefighter"),
                  games: int = 20, episodes: int = 4, modes: Sequence[str] = MODES, copies: int = 16,
                  test: Callable[..., dict[str, Any]] = context_test) -> dict[str, Any]:
    """Test every MF-family model of ``results`` (module docstring) and return
    ``{"tests": [...], "table": summarize(tests)}``, also written to ``out``."""
    out = Path(out)
    models = context_models(results, tasks)
    present = {(task, label, seed) for task, label, seed, _ in models}
    done = json.loads(out.read_text())["tests"] if out.is_file() else []
    done = [t for t in done if t["task"] not in tasks or (t["task"], t["label"], t["seed"]) in present]
    have = {(t["task"], t["label"], t["seed"], t["mode"], t["games"]) for t in done}
    report = None
    for task, label, seed, model in models:
        count = games if task == "battle" else episodes
        for mode in modes:
            if (task, label, seed, mode, count) in have:
                continue
            result = test(model, games=count, mode=mode, copies=copies)
            # the run's seed names the entry; the test's own seed (of its games) stays as game_seed
            done.append({**result, "game_seed": result["seed"], "task": task, "label": label, "seed": seed,
                         "model": str(model)})
            report = _save(out, done)
    return report if report is not None else _save(out, done)


def _save(out: Path, tests: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``{"tests", "table"}`` to ``out`` atomically (after every finished test) and return it."""
    report = {"tests": tests, "table": summarize(tests)}
    atomic_write_text(out, json.dumps(report, indent=2) + "\n", overwrite=True)
    return report


def table_lines(report: dict[str, Any], task: str) -> list[str]:
    """The context-shuffle rows of ``task`` as a Markdown table: per method and mode the seeds,
    the changed-action fraction and ``|ΔQ|``/spread (mean ± std over seeds), and on Battle each
    seed's kill difference (intact − shuffled, its 95 % interval over game seeds) and the pooled wins;
    elsewhere the return difference. No rows: no lines."""
    rows = [row for row in report["table"] if row["task"] == task]
    if not rows:
        return []
    battle = "kill_difference" in rows[0]
    what = ("kill difference per seed (intact − shuffled) [95 % CI over game seeds, each played from both sides] | wins–ties–losses of the intact model"
            if battle else "return difference (intact − shuffled)")
    lines = [f"| method | context | seeds | {'games' if battle else 'episodes'} per seed | changed greedy actions | "
             f"\\|ΔQ\\| / Q spread | {what} |", "|---" * (8 if battle else 7) + "|"]
    for row in rows:
        n = len(row["seeds"])
        cells = [f"{row['label']}", "permuted" if row["mode"] == "permute" else "zeroed",
                 ", ".join(str(s) for s in row["seeds"]), str(row["games"]), _percent(row["changed"], n),
                 _mean_std(row["dq"], 2, n)]
        if battle:
            tests = sorted((t for t in report["tests"] if (t["task"], t["label"], t["mode"]) == (task, row["label"], row["mode"])),
                           key=lambda t: t["seed"])
            cells.append("; ".join(f"{t['seed']}: {t['kill_difference']['mean']:+.1f} "
                                   f"[{t['kill_difference']['ci95'][0]:+.1f}, {t['kill_difference']['ci95'][1]:+.1f}]"
                                   for t in tests))
            cells.append(f"{sum(t['wins'] for t in tests)}–{sum(t['ties'] for t in tests)}–"
                         f"{sum(t['losses'] for t in tests)}")
        else:
            cells.append(_mean_std(row["return_difference"], 1, n))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _mean_std(pair: Sequence[float], digits: int, seeds: int) -> str:
    """``mean ± std`` over ``seeds`` seeds; the value alone for one seed (no spread to show)."""
    mean = f"{pair[0]:,.{digits}f}"
    return mean if seeds == 1 else f"{mean} ± {pair[1]:,.{digits}f}"


def _percent(pair: Sequence[float], seeds: int) -> str:
    return f"{_mean_std((100 * pair[0], 100 * pair[1]), 1, seeds)} %"
