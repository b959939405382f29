r"""The numbers of RESULTS.md: per-run summaries read from ``metrics.csv`` and comparisons over seeds.

A run's *final* values average its last 10 % of episodes (at least one), as the sweep summary:
the return ``charts/return`` of the learning team and, in Battle, its kills, its deaths (the
opponent's kills) and its win rate against the opponent (episodes with more kills than deaths).
Its *mean* return averages every episode: the area under the learning curve over its length,
which rewards converging early as well as ending high.
Comparisons over seeds use Welch's t-test (two-sided) and the Mann–Whitney U test (one-sided:
is the reference ahead?).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import stats

from bmf_graph.config import Config, from_yaml
from bmf_graph.config.checks import ALGORITHMS
from bmf_graph.training.logging import final_mean
from bmf_graph.training.model_files import final_model
from bmf_graph.training.run_files import read_csv as read_metrics
from bmf_graph.experiments.sweep_grid import SEED_FOLDER
from bmf_graph.training.evaluation import read_eval

REFERENCE_LABELS = ("bmf_q", "bmf_ac")
"""Labels compared against every other method of a task, the first present."""
ALPHA = 0.05


@dataclass
class Run:
    """One training run's summary."""

    path: Path
    label: str
    seed: int
    cfg: Config
    episodes: int
    complete: bool
    final_return: float
    mean_return: float
    kills: float | None = None
    deaths: float | None = None
    win_rate: float | None = None


def read_run(path: Path, label: str) -> Run:
    """Summarise the run folder ``path`` (``seed{S}``)."""
    cfg = from_yaml(path / "config.yaml", check=False)
    rows = read_metrics(path)
    if not rows:
        raise ValueError(f"results: {path / 'metrics.csv'} has no rows; expected one row per training episode")
    finished = final_model(path) is not None
    returns = [r["charts/return"] for r in rows]
    run = Run(path, label, int(SEED_FOLDER.fullmatch(path.name).group(1)), cfg, len(rows),
              finished and len(rows) >= cfg.train.episodes, final_mean(returns), float(np.mean(returns)))
    # Team names in env order: the per-team return columns, which every row fills, in header order.
    team_order = [k[len("charts/return_"):] for k in rows[0] if k.startswith("charts/return_")]
    if len(team_order) == 2 and cfg.env.name == "battle":
        mine = f"charts/kills_{team_order[cfg.env.learn_teams[0]]}"
        theirs = next(c for c in (f"charts/kills_{t}" for t in team_order) if c != mine)
        kills = [r.get(mine, 0.0) for r in rows]
        deaths = [r.get(theirs, 0.0) for r in rows]
        run.kills, run.deaths = final_mean(kills), final_mean(deaths)
        run.win_rate = final_mean([float(k > d) for k, d in zip(kills, deaths)])
    return run


def collect(results: Path) -> dict[str, dict[str, list[Run]]]:
    """``{task: {label: [runs sorted by seed]}}`` for every ``results/{task}/{label}/seed{S}/``."""
    out: dict[str, dict[str, list[Run]]] = {}
    for task_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        for label_dir in sorted(p for p in task_dir.iterdir() if p.is_dir()):
            runs = [read_run(p, label_dir.name) for p in label_dir.iterdir()
                    if p.is_dir() and SEED_FOLDER.fullmatch(p.name) and (p / "metrics.csv").is_file()]
            if runs:
                out.setdefault(task_dir.name, {})[label_dir.name] = sorted(runs, key=lambda r: r.seed)
    return out


def method_order(labels: Iterable[str]) -> list[str]:
    """The paper's methods in the order of its tables (q, mfq, ac, mfac, gat_mf, bmf_q, bmf_ac),
    then any other label alphabetically."""
    return sorted(set(labels), key=lambda label: (ALGORITHMS.index(label) if label in ALGORITHMS else len(ALGORITHMS),
                                                   label))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation (``ddof=0``) of the finite values; NaN when there are none."""
    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    return (float(a.mean()), float(a.std())) if a.size else (math.nan, math.nan)


def cluster_bootstrap(per_seed: Sequence[float], draws: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean over seeds of per-seed values (e.g. a model's win rate over its games) and the 95 %
    percentile interval of that mean over ``draws`` resamplings of the seeds with replacement:
    a cluster bootstrap, in which the games of a seed stay together and the seed is the unit."""
    values = np.asarray(per_seed, dtype=float)
    if values.size == 0 or not np.isfinite(values).all() or draws < 1:
        raise ValueError(f"cluster_bootstrap: got {values.size} per-seed values and draws={draws!r}; expected "
                         f"at least one finite value and draws >= 1")
    index = np.random.default_rng(seed).integers(0, values.size, size=(draws, values.size))
    means = values[index].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def fmt(values: Sequence[float], digits: int = 1) -> str:
    """``mean ± std`` (a single value alone); ``—`` when there is none."""
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "—"
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return f"{mean:.{digits}f}" if len(finite) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass
class Comparison:
    """The reference method against ``other`` over seeds."""

    other: str
    difference: float
    welch_p: float
    mannwhitney_p: float
    seeds: tuple[int, int]

    def row(self) -> str:
        return (f"| {self.other} | {self.difference:+.1f} | {p_value(self.welch_p)} | {p_value(self.mannwhitney_p)} | "
                f"{self.seeds[0]} v {self.seeds[1]} |")

    def cell(self) -> str:
        """``+41.8 (p 0.483)``, or the seed counts when there is no test."""
        test = f"p {p_value(self.welch_p)}" if not math.isnan(self.welch_p) else f"{self.seeds[0]} v {self.seeds[1]} seeds"
        return f"{self.difference:+.1f} ({test})"

    @property
    def word(self) -> str:
        """What this comparison says of a claim that the reference is ahead: *reproduces* (Welch
        p < :data:`ALPHA`), *not shown* (ahead, not significantly), *does not reproduce* (behind)
        or *open* (fewer than two seeds on a side: no test)."""
        if math.isnan(self.welch_p):
            return "open"
        if self.ahead:
            return "reproduces"
        return "not shown" if self.difference > 0 else "does not reproduce"

    @property
    def ahead(self) -> bool:
        """Ahead with Welch's p below :data:`ALPHA` (two seeds at least on each side). The
        one-sided Mann–Whitney p is reported beside it; with 3 v 3 seeds it cannot go below 0.05."""
        return self.difference > 0 and self.welch_p < ALPHA


def p_value(p: float) -> str:
    """``0.012``, ``<0.001`` or ``—`` (no test)."""
    return "—" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def compare(values: dict[str, list[float]], reference: str) -> list[Comparison]:
    """``reference`` against every other label, on their values per seed (final returns, or
    zero-shot returns at one size)."""
    mine = values[reference]
    out = []
    for label in sorted(values):
        if label == reference:
            continue
        theirs = values[label]
        welch = mannwhitney = math.nan
        if len(mine) >= 2 and len(theirs) >= 2:
            welch = float(stats.ttest_ind(mine, theirs, equal_var=False).pvalue)
            mannwhitney = float(stats.mannwhitneyu(mine, theirs, alternative="greater").pvalue)
        out.append(Comparison(label, mean_std(mine)[0] - mean_std(theirs)[0], welch, mannwhitney,
                              (len(mine), len(theirs))))
    return out


def final_returns(groups: dict[str, list[Run]]) -> dict[str, list[float]]:
    """``{label: [final return per seed]}``, what :func:`compare` and :func:`verdict` read."""
    return {label: [r.final_return for r in runs] for label, runs in groups.items()}


def final_eval_returns(groups: dict[str, list[Run]]) -> dict[str, list[float]]:
    """Per label, each run's last evaluation return of its frozen policy (``eval.csv``: greedy for
    the Q family, the mode for the actor-critic family); runs without one are left out."""
    out: dict[str, list[float]] = {}
    for label, runs in groups.items():
        for run in runs:
            rows = read_eval(run.path) if (run.path / "eval.csv").is_file() else []
            value = next((rows[-1][k] for k in ("eval/return_greedy", "eval/return_mode") if rows and k in rows[-1]),
                         None)
            if value is not None:
                out.setdefault(label, []).append(value)
    return out


def mean_returns(groups: dict[str, list[Run]]) -> dict[str, list[float]]:
    """``{label: [mean return over all episodes per seed]}``: convergence speed, for :func:`compare`."""
    return {label: [r.mean_return for r in runs] for label, runs in groups.items()}


WORDS = ("does not reproduce", "open", "not shown", "reproduces")
"""A claim's words, the strongest objection first: the claim's word is the first one any of its
comparisons says, except that it *reproduces* only when every comparison does."""


def claim_comparisons(values: dict[str, list[float]], reference: str,
                      against: Sequence[str]) -> dict[str, Comparison]:
    """``reference`` against each label of ``against`` present in ``values``, in that order."""
    found = {c.other: c for c in compare(values, reference)}
    return {label: found[label] for label in against if label in found}


def claim_word(found: dict[str, Comparison], against: Sequence[str]) -> str:
    """The word of a claim that the reference is ahead of every label of ``against``, from the
    comparisons ``found`` (:data:`WORDS`; a label not run yet leaves the claim open)."""
    words = {found[label].word if label in found else "open" for label in against}
    return next(word for word in WORDS if word in words)


def verdict(values: dict[str, list[float]], reference: str, against: Sequence[str]) -> str:
    """One sentence: the claim's word for ``reference`` and whom it is ahead of or behind."""
    found = claim_comparisons(values, reference, against)
    missing = [label for label in against if label not in values]
    tail = f" Not run yet: {', '.join(missing)}." if missing else ""
    if not found:
        return f"{reference} has nothing to compare with yet." + tail
    phrases = {"reproduces": "significantly ahead of {}", "not shown": "ahead of {}, not significantly",
               "does not reproduce": "behind {}", "open": "{}: too few seeds for a test"}
    parts = []
    for kind, phrase in phrases.items():
        labels = [label for label, c in found.items() if c.word == kind]
        if labels:
            parts.append(phrase.format(_and(labels)))
    word = claim_word(found, against)
    verb = {"not shown": "is not shown", "open": "stays open"}.get(word, word)
    return f"For {reference} the claim {verb}: " + "; ".join(parts) + "." + tail


def _and(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def claim_verdict(values: dict[str, list[float]], references: Sequence[str], against: Sequence[str]) -> str:
    """:func:`verdict` for each label of ``references`` present in ``values``, joined; empty when
    none is present."""
    return " ".join(verdict(values, label, against) for label in references if label in values)


ZERO_SHOT_FILE = re.compile(r"^(?P<label>.+)__seed(?P<seed>\d+)__(?P<opponent>.+)\.json$")


def zero_shot_rows(folder: Path) -> dict[str, dict[str, dict[int, dict[str, list[float]]]]]:
    """``{measure: {opponent: {agents: {label: [value per seed]}}}}`` from
    ``{label}__seed{S}__{opp}.json`` files written by ``bmf-evaluate zero-shot --out``, read once:
    ``"return"``, each seed's mean return per game, and ``"win_rate"`` (sizes without one are left
    out of that table)."""
    tables: dict[str, dict[str, dict[int, dict[str, list[float]]]]] = {"return": {}, "win_rate": {}}
    if not folder.is_dir():
        return tables
    for path in sorted(folder.glob("*.json")):
        match = ZERO_SHOT_FILE.match(path.name)
        if match is None:
            raise ValueError(f"results: zero-shot file {path.name!r} is not named {{label}}__seed{{S}}__{{opponent}}.json")
        data = json.loads(path.read_text())
        for row in data["sizes"]:
            values = {"return": row["return"]["mean"], "win_rate": row.get("win_rate")}
            for measure, value in values.items():
                if value is not None:
                    cells = tables[measure].setdefault(match["opponent"], {}).setdefault(int(row["agents"]), {})
                    cells.setdefault(match["label"], []).append(float(value))
    return tables


FROZEN_MODES = ("greedy", "T=0.5", "sampled")


def frozen_eval_lines(data: dict) -> list[str]:
    """The Firefighter frozen-policy table of ``results/firefighter/frozen_eval.json``
    (``benchmarks/firefighter_frozen.py``): per method, the mean ± std over seeds of each
    model's mean evaluation return in each mode, and the worst seed's greedy return; the fixed
    policies below (mean ± std over their episodes)."""
    lines = [f"Frozen policies, no training: {data['episodes']} evaluation episodes per model and mode (seeds "
             f"{data['seed']}..{data['seed'] + data['episodes'] - 1}); mean ± std over seeds of each model's mean. "
             f"*greedy*: {data['modes']['greedy']}; *T = 0.5*: {data['modes']['T=0.5']}; *sampled*: "
             f"{data['modes']['sampled']}.", "",
             "| method | seeds | greedy | T = 0.5 | sampled (as trained) | greedy, worst seed |",
             "|---|---:|---|---|---|---|"]
    for method, seeds in data["models"].items():
        cells = ["{:,.0f} ± {:,.0f}".format(*mean_std([s[mode]["mean"] for s in seeds.values()]))
                 for mode in FROZEN_MODES]
        worst = min(seeds, key=lambda k: seeds[k]["greedy"]["mean"])
        lines.append(f"| {method} | {len(seeds)} | {' | '.join(cells)} | {seeds[worst]['greedy']['mean']:,.0f} "
                     f"({worst}) |")
    for name, value in data["fixed_policies"].items():
        lines.append(f"| fixed: {name} | — | {value['mean']:,.0f} ± {value['std']:,.0f} (over episodes) | | | |")
    return lines
