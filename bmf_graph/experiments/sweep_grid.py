"""The grid of a sweep: ``key=a,b,c`` overrides -> validated runs with deterministic names, and
the ``sweep.KEY=VALUE`` options (:mod:`bmf_graph.experiments.sweep` runs them)."""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field, fields, replace
from typing import Optional, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bmf_graph.config import SHORTHANDS, Config, load_config
from bmf_graph.config.checks import ConfigError

MANAGED_KEYS = ("resume", "run_name", "threads")
LAYOUTS = ("runs", "results")
SEED_FOLDER = re.compile(r"seed(\d+)")
"""A run folder of the results layout, ``{label}/seed{S}`` (match it whole)."""
GROUP_KEYS = ("conf", "algo.name", "seed")
"""Keys the summary shows in their own columns (``seed`` is averaged over)."""


@dataclass
class SweepOptions:
    """How the sweep runs; given as ``sweep.KEY=VALUE``."""

    cpus_per_run: float = field(default=1.0, metadata={
        "help": "CPUs Ray reserves per run; the run's torch threads are max(1, int(cpus_per_run))"})
    gpus_per_run: float = field(default=0.0, metadata={"help": "GPUs per run (a fraction shares one GPU)"})
    address: Optional[str] = field(default=None, metadata={
        "help": "null: start Ray on this machine; auto or ray://HOST:PORT: an existing cluster"})
    max_concurrent: Optional[int] = field(default=None, metadata={
        "help": "at most this many runs at once (null: as many as the resources allow)"})
    name: Optional[str] = field(default=None, metadata={
        "help": "sweep folder {runs_dir}/sweep__{name} (null: a hash of the run names)"})
    layout: str = field(default="runs", metadata={
        "help": "runs: {runs_dir}/{conf}__{algo}__{seed}__{hash}; results: {runs_dir}/{label}/seed{S}, "
                "the layout of results/ that RESULTS.md is generated from"})
    label: Optional[str] = field(default=None, metadata={
        "help": "layout=results only: the label folder, e.g. bmf_q-k4 (null: the algorithm's name)"})


def options_help() -> str:
    lines = [f"    {f'sweep.{f.name}=' + ('null' if f.default is None else str(f.default)):<28}{f.metadata['help']}"
             for f in fields(SweepOptions)]
    return "Sweep options:\n\n" + "\n".join(lines)


@dataclass
class Run:
    """One grid point: its overrides, validated configuration and deterministic folder name."""

    name: str
    overrides: list[str]
    cfg: Config
    group: tuple[str, ...]
    """The grid point without its seed: runs sharing it are averaged in the summary."""


def split_values(text: str) -> list[str]:
    """``"a,[1,2],'x,y'"`` -> ``["a", "[1,2]", "'x,y'"]``: commas split only outside brackets and quotes."""
    values, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"value {text!r} has an unmatched {ch!r}")
        elif ch == "," and depth == 0:
            values.append(text[start:i])
            start = i + 1
    if depth or quote:
        raise ConfigError(f"value {text!r} has an unclosed bracket or quote")
    values.append(text[start:])
    if len(values) > 1 and any(not v.strip() for v in values):
        raise ConfigError(f"value {text!r} has an empty item in its comma list")
    return values


def parse_args(argv: Sequence[str]) -> tuple[list[tuple[str, list[str]]], SweepOptions]:
    """Split ``argv`` into the grid axes ``[(key, values)]`` and the ``sweep.`` options."""
    axes: list[tuple[str, list[str]]] = []
    options: list[str] = []
    seen: dict[str, str] = {}
    for item in argv:
        if "=" not in item:
            raise ConfigError(f"argument {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        if key.startswith("sweep."):
            options.append(item)
            continue
        full = SHORTHANDS.get(key, key)
        if full in seen:
            raise ConfigError(f"{key} is given twice ({seen[full]!r} and {item!r}); give one key=a,b,c instead")
        if full in MANAGED_KEYS:
            raise ConfigError(f"{key}= is set by the sweep itself (threads comes from sweep.cpus_per_run)")
        seen[full] = item
        values = split_values(value)
        if key == "runs_dir" and len(values) > 1:
            raise ConfigError(f"runs_dir takes one folder, got {len(values)}: {value!r}")
        axes.append((key, values))
    return axes, parse_options(options)


def parse_options(items: Sequence[str]) -> SweepOptions:
    """``sweep.KEY=VALUE`` items -> validated :class:`SweepOptions`."""
    valid = ", ".join(f"sweep.{f.name}" for f in fields(SweepOptions))
    dotlist = [item[len("sweep."):] for item in items]
    try:
        opts: SweepOptions = OmegaConf.to_object(
            OmegaConf.merge(OmegaConf.structured(SweepOptions), OmegaConf.from_dotlist(dotlist)))
    except OmegaConfBaseException as error:
        raise ConfigError(f"sweep option: {str(error).splitlines()[0]}; valid options: {valid}") from error
    if not opts.cpus_per_run > 0:
        raise ConfigError(f"sweep.cpus_per_run={opts.cpus_per_run!r} is not valid; expected a positive number")
    if not opts.gpus_per_run >= 0:
        raise ConfigError(f"sweep.gpus_per_run={opts.gpus_per_run!r} is not valid; expected a non-negative number")
    if opts.max_concurrent is not None and opts.max_concurrent < 1:
        raise ConfigError(f"sweep.max_concurrent={opts.max_concurrent!r} is not valid; expected an integer >= 1")
    address = opts.address
    if address is not None and not (address == "auto" or address.startswith("ray://")
                                    or re.fullmatch(r"[\w.-]+:\d+", address)):
        raise ConfigError(f"sweep.address={address!r} is not valid; expected auto, ray://HOST:PORT or HOST:PORT")
    for key in ("name", "label"):
        value = getattr(opts, key)
        if value is not None and not re.fullmatch(r"[\w.-]+", value):
            raise ConfigError(f"sweep.{key}={value!r} is not valid; expected letters, digits, '_', '-' or '.'")
    if opts.layout not in LAYOUTS:
        raise ConfigError(f"sweep.layout={opts.layout!r} is not valid; expected one of {', '.join(LAYOUTS)}")
    if opts.label is not None and opts.layout != "results":
        raise ConfigError("sweep.label names the label folder of sweep.layout=results; add sweep.layout=results")
    return opts


def config_hash(cfg: Config) -> str:
    """Short hash of what a run computes (its configuration less paths and bookkeeping)."""
    data = OmegaConf.to_container(OmegaConf.structured(cfg))
    for key in ("runs_dir", "run_name", "resume", "threads"):
        data.pop(key)
    data["train"].pop("progress")
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def run_folder(cfg: Config, options: SweepOptions) -> str:
    """A run's folder under ``runs_dir``: ``{conf}__{algo}__{seed}__{hash}`` or, with
    ``layout=results``, ``{label}/seed{S}`` (the label defaults to the algorithm)."""
    if options.layout == "results":
        return f"{options.label or cfg.algo.name}/seed{cfg.seed}"
    return f"{cfg.conf}__{cfg.algo.name}__{cfg.seed}__{config_hash(cfg)}"


def expand(axes: list[tuple[str, list[str]]], options: SweepOptions) -> list[Run]:
    """The cartesian product of the axes, each point validated with :func:`load_config`."""
    swept = [key for key, values in axes if len(values) > 1 and SHORTHANDS.get(key, key) not in GROUP_KEYS]
    threads = max(1, int(options.cpus_per_run))
    runs, names = [], {}
    for point in itertools.product(*[values for _, values in axes]):
        overrides = [f"{key}={value}" for (key, _), value in zip(axes, point)]
        try:
            cfg = load_config(overrides)
        except ConfigError as error:
            raise ConfigError(f"grid point {' '.join(overrides)}: {error}") from None
        if cfg.device == "cuda" and options.gpus_per_run == 0:
            raise ConfigError("device=cuda needs sweep.gpus_per_run > 0 (Ray hides GPUs from tasks without one)")
        cfg = replace(cfg, threads=threads,
                      train=replace(cfg.train, progress=False))
        name = run_folder(cfg, options)
        if name in names:
            same = (f"grid points {names[name]!r} and {' '.join(overrides)!r} are the same run"
                    if options.layout == "runs" else
                    f"grid points {names[name]!r} and {' '.join(overrides)!r} both go to {name}; with "
                    f"sweep.layout=results sweep one setting per label (sweep.label=NAME) besides algo and seed")
            raise ConfigError(same)
        names[name] = " ".join(overrides)
        group = tuple(o for (key, _), o in zip(axes, overrides) if key in swept)
        runs.append(Run(name, overrides, cfg, group))
    return runs
